//! Signing secrets of webhooks with `x-signing`. Each webhook that signs has one current secret (`expires_at` NULL)
//! and, after rotations, previous secrets that keep signing until their `expires_at`. Expired rows are never
//! read and are pruned at the next rotation. Secrets are bound as parameters, so they never appear in SQL logs.

use super::StoreError;
use hookwire_actors::domain::ids::{GroupId, WebhookId};
use sqlx::{AnyConnection, AnyPool, Row};
use std::fmt;

/// A stored secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretRow {
    /// The webhook it signs for.
    pub webhook_id: WebhookId,
    /// `whsec_...`
    pub secret: String,
    /// Creation time, epoch milliseconds.
    pub created_at: i64,
    /// End of its grace period, epoch milliseconds; `None` for the current secret.
    pub expires_at: Option<i64>,
}

impl fmt::Debug for SecretRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretRow")
            .field("webhook_id", &self.webhook_id)
            .field("secret", &"***")
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<SecretRow, StoreError> {
    Ok(SecretRow {
        webhook_id: WebhookId::from_trusted(row.try_get("webhook_id")?),
        secret: row.try_get("secret")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

/// Makes `secret` the webhook's current secret unless it has one; true when it did.
pub async fn ensure_current_secret(
    connection: &mut AnyConnection,
    webhook_id: &WebhookId,
    secret: &str,
    created_at: i64,
) -> Result<bool, StoreError> {
    let existing = sqlx::query("SELECT 1 FROM webhook_secrets WHERE webhook_id = $1 AND expires_at IS NULL")
        .bind(webhook_id.as_str())
        .fetch_optional(&mut *connection)
        .await?;
    if existing.is_some() {
        return Ok(false);
    }
    sqlx::query("INSERT INTO webhook_secrets (webhook_id, secret, created_at, expires_at) VALUES ($1, $2, $3, NULL)")
        .bind(webhook_id.as_str())
        .bind(secret)
        .bind(created_at)
        .execute(&mut *connection)
        .await?;
    Ok(true)
}

/// Deletes every secret of a webhook (signing was turned off).
pub async fn delete_secrets(connection: &mut AnyConnection, webhook_id: &WebhookId) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM webhook_secrets WHERE webhook_id = $1")
        .bind(webhook_id.as_str())
        .execute(&mut *connection)
        .await?;
    Ok(())
}

/// Makes `secret` a webhook's current secret: the current one, if any, keeps signing until `old_expires_at`, as do
/// older ones until then at the latest (so that a grace of 0 retires every old secret at once), and secrets whose
/// grace period ended by `now` are deleted.
pub async fn rotate_secret(
    pool: &AnyPool,
    webhook_id: &WebhookId,
    secret: &str,
    now: i64,
    old_expires_at: i64,
) -> Result<(), StoreError> {
    let mut transaction = pool.begin().await?;
    sqlx::query(
        "UPDATE webhook_secrets SET expires_at = $1 WHERE webhook_id = $2 AND (expires_at IS NULL OR expires_at > $1)",
    )
    .bind(old_expires_at)
    .bind(webhook_id.as_str())
    .execute(&mut *transaction)
    .await?;
    sqlx::query("DELETE FROM webhook_secrets WHERE webhook_id = $1 AND expires_at IS NOT NULL AND expires_at <= $2")
        .bind(webhook_id.as_str())
        .bind(now)
        .execute(&mut *transaction)
        .await?;
    sqlx::query("INSERT INTO webhook_secrets (webhook_id, secret, created_at, expires_at) VALUES ($1, $2, $3, NULL)")
        .bind(webhook_id.as_str())
        .bind(secret)
        .bind(now)
        .execute(&mut *transaction)
        .await?;
    transaction.commit().await?;
    Ok(())
}

/// The secrets of a group's webhooks that still sign at `now`: current ones and those in their grace period.
pub async fn list_group_secrets(pool: &AnyPool, group_id: &GroupId, now: i64) -> Result<Vec<SecretRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT s.webhook_id, s.secret, s.created_at, s.expires_at FROM webhook_secrets s \
         JOIN webhooks w ON w.id = s.webhook_id \
         WHERE w.group_id = $1 AND (s.expires_at IS NULL OR s.expires_at > $2) ORDER BY s.webhook_id, s.created_at",
    )
    .bind(group_id.as_str())
    .bind(now)
    .fetch_all(pool)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Every secret that still signs at `now` (at start, to build the index).
pub async fn list_all_secrets(pool: &AnyPool, now: i64) -> Result<Vec<SecretRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT webhook_id, secret, created_at, expires_at FROM webhook_secrets \
         WHERE expires_at IS NULL OR expires_at > $1 ORDER BY webhook_id, created_at",
    )
    .bind(now)
    .fetch_all(pool)
    .await?;
    rows.iter().map(from_row).collect()
}
