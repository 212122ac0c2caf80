//! The run-time state of webhooks (table `webhook_state`): consecutive failed deliveries and why a webhook is
//! disabled at run time. The journal writes it as deliveries end (in `journal.rs`, with the batch); admin calls
//! write it here; the kernel reads it once at start, after which the webhooks' [`WebhookRuntime`] holds it.
//!
//! [`WebhookRuntime`]: hookwire_actors::domain::definition::WebhookRuntime

use super::StoreError;
use hookwire_actors::domain::ids::WebhookId;
use sqlx::{AnyPool, Row};
use std::collections::HashMap;

/// A webhook's run-time state; the default (no row) is no failures, enabled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookStateRow {
    /// Consecutive failed deliveries.
    pub consecutive_failures: u32,
    /// Why the webhook is disabled at run time; `None` when it is not.
    pub disabled_reason: Option<String>,
}

/// Every stored state, by webhook (at start, to build the index).
pub async fn list_all_states(pool: &AnyPool) -> Result<HashMap<WebhookId, WebhookStateRow>, StoreError> {
    let rows = sqlx::query("SELECT webhook_id, consecutive_failures, disabled_reason FROM webhook_state")
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|row| {
            let webhook_id = WebhookId::from_trusted(row.try_get("webhook_id")?);
            let consecutive_failures = u32::try_from(row.try_get::<i64, _>("consecutive_failures")?).unwrap_or(0);
            let disabled_reason = row.try_get("disabled_reason")?;
            Ok((webhook_id, WebhookStateRow { consecutive_failures, disabled_reason }))
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(StoreError::from)
}

/// Gets one webhook's stored state (the default when it has none).
pub async fn get_state(pool: &AnyPool, webhook_id: &WebhookId) -> Result<WebhookStateRow, StoreError> {
    let row = sqlx::query("SELECT consecutive_failures, disabled_reason FROM webhook_state WHERE webhook_id = $1")
        .bind(webhook_id.as_str())
        .fetch_optional(pool)
        .await?;
    let Some(row) = row else {
        return Ok(WebhookStateRow::default());
    };
    Ok(WebhookStateRow {
        consecutive_failures: u32::try_from(row.try_get::<i64, _>("consecutive_failures")?).unwrap_or(0),
        disabled_reason: row.try_get("disabled_reason")?,
    })
}

/// Stores a webhook's state; false when there is no such webhook.
pub async fn save_state(
    pool: &AnyPool,
    webhook_id: &WebhookId,
    state: &WebhookStateRow,
    updated_at: i64,
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "INSERT INTO webhook_state (webhook_id, consecutive_failures, disabled_reason, updated_at) \
         SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM webhooks WHERE id = $1) \
         ON CONFLICT (webhook_id) DO UPDATE SET consecutive_failures = excluded.consecutive_failures, \
         disabled_reason = excluded.disabled_reason, updated_at = excluded.updated_at",
    )
    .bind(webhook_id.as_str())
    .bind(i64::from(state.consecutive_failures))
    .bind(state.disabled_reason.as_deref())
    .bind(updated_at)
    .execute(pool)
    .await?;
    Ok(result.rows_affected() > 0)
}
