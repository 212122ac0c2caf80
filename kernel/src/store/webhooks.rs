//! Webhooks, stored as the JSON definition their user gave, with the devices they are limited to indexed beside.

use super::StoreError;
use super::secrets;
use hookwire_actors::domain::ids::{DeviceId, GroupId, WebhookId};
use sqlx::{AnyPool, Row};

/// A stored webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRow {
    /// The id.
    pub id: WebhookId,
    /// Its group.
    pub group_id: GroupId,
    /// The definition JSON.
    pub definition: String,
    /// Creation time, epoch milliseconds.
    pub created_at: i64,
    /// Last change, epoch milliseconds.
    pub updated_at: i64,
    /// Its run-time state (failures, disabled); the kernel fills it in, queries here leave the default.
    pub state: super::webhook_state::WebhookStateRow,
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<WebhookRow, StoreError> {
    Ok(WebhookRow {
        id: WebhookId::from_trusted(row.try_get("id")?),
        group_id: GroupId::from_trusted(row.try_get("group_id")?),
        definition: row.try_get("definition")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        state: Default::default(),
    })
}

async fn replace_devices(
    connection: &mut sqlx::AnyConnection,
    webhook_id: &WebhookId,
    devices: &[DeviceId],
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM webhook_devices WHERE webhook_id = $1")
        .bind(webhook_id.as_str())
        .execute(&mut *connection)
        .await?;
    for device in devices {
        sqlx::query("INSERT INTO webhook_devices (webhook_id, device_id) VALUES ($1, $2)")
            .bind(webhook_id.as_str())
            .bind(device.as_str())
            .execute(&mut *connection)
            .await?;
    }
    Ok(())
}

/// A webhook to insert, with the devices it is limited to and, when it signs, its signing secret.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    /// The webhook.
    pub row: WebhookRow,
    /// The devices it is limited to.
    pub devices: Vec<DeviceId>,
    /// Its signing secret, when it signs.
    pub signing_secret: Option<String>,
}

async fn insert_one(connection: &mut sqlx::AnyConnection, webhook: &NewWebhook) -> Result<(), StoreError> {
    let row = &webhook.row;
    sqlx::query("INSERT INTO webhooks (id, group_id, definition, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(row.id.as_str())
        .bind(row.group_id.as_str())
        .bind(row.definition.as_str())
        .bind(row.created_at)
        .bind(row.updated_at)
        .execute(&mut *connection)
        .await?;
    replace_devices(connection, &row.id, &webhook.devices).await?;
    if let Some(secret) = &webhook.signing_secret {
        secrets::ensure_current_secret(connection, &row.id, secret, row.created_at).await?;
    }
    Ok(())
}

/// Inserts a webhook, the devices it is limited to and, when it signs, its signing secret.
pub async fn insert_webhook(
    pool: &AnyPool,
    webhook: &WebhookRow,
    devices: &[DeviceId],
    signing_secret: Option<&str>,
) -> Result<(), StoreError> {
    let new = NewWebhook {
        row: webhook.clone(),
        devices: devices.to_vec(),
        signing_secret: signing_secret.map(str::to_owned),
    };
    insert_webhooks(pool, std::slice::from_ref(&new)).await
}

/// Inserts webhooks in one transaction: all of them, or none when one fails.
pub async fn insert_webhooks(pool: &AnyPool, webhooks: &[NewWebhook]) -> Result<(), StoreError> {
    let mut transaction = pool.begin().await?;
    for webhook in webhooks {
        insert_one(&mut transaction, webhook).await?;
    }
    transaction.commit().await?;
    Ok(())
}

/// What [`update_webhook`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookUpdate {
    /// There is no such webhook.
    NotFound,
    /// The definition was replaced; `secret_installed` is true when the signing secret given became the current
    /// one (the webhook had none: signing was just turned on).
    Replaced {
        /// The signing secret given is now the current one.
        secret_installed: bool,
    },
}

/// Replaces a webhook's definition. With a signing secret, the webhook keeps its current secret or, having none,
/// gets this one; without, its secrets are deleted.
pub async fn update_webhook(
    pool: &AnyPool,
    id: &WebhookId,
    definition: &str,
    devices: &[DeviceId],
    updated_at: i64,
    signing_secret: Option<&str>,
) -> Result<WebhookUpdate, StoreError> {
    let mut transaction = pool.begin().await?;
    let result = sqlx::query("UPDATE webhooks SET definition = $1, updated_at = $2 WHERE id = $3")
        .bind(definition)
        .bind(updated_at)
        .bind(id.as_str())
        .execute(&mut *transaction)
        .await?;
    if result.rows_affected() == 0 {
        return Ok(WebhookUpdate::NotFound);
    }
    replace_devices(&mut transaction, id, devices).await?;
    let secret_installed = match signing_secret {
        Some(secret) => secrets::ensure_current_secret(&mut transaction, id, secret, updated_at).await?,
        None => {
            secrets::delete_secrets(&mut transaction, id).await?;
            false
        }
    };
    transaction.commit().await?;
    Ok(WebhookUpdate::Replaced { secret_installed })
}

/// Gets a webhook.
pub async fn get_webhook(pool: &AnyPool, id: &WebhookId) -> Result<Option<WebhookRow>, StoreError> {
    let row = sqlx::query("SELECT id, group_id, definition, created_at, updated_at FROM webhooks WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Lists a group's webhooks, or those limited to one of its devices, oldest first.
pub async fn list_webhooks(
    pool: &AnyPool,
    group_id: &GroupId,
    device_id: Option<&DeviceId>,
) -> Result<Vec<WebhookRow>, StoreError> {
    let rows =
        match device_id {
            None => sqlx::query(
                "SELECT id, group_id, definition, created_at, updated_at FROM webhooks WHERE group_id = $1 ORDER BY id",
            )
            .bind(group_id.as_str())
            .fetch_all(pool)
            .await?,
            Some(device_id) => {
                sqlx::query(
                    "SELECT id, group_id, definition, created_at, updated_at FROM webhooks WHERE group_id = $1 \
                 AND id IN (SELECT webhook_id FROM webhook_devices WHERE device_id = $2) ORDER BY id",
                )
                .bind(group_id.as_str())
                .bind(device_id.as_str())
                .fetch_all(pool)
                .await?
            }
        };
    rows.iter().map(from_row).collect()
}

/// Every webhook of every group (at start, to build the index).
pub async fn list_all_webhooks(pool: &AnyPool) -> Result<Vec<WebhookRow>, StoreError> {
    let rows = sqlx::query("SELECT id, group_id, definition, created_at, updated_at FROM webhooks ORDER BY id")
        .fetch_all(pool)
        .await?;
    rows.iter().map(from_row).collect()
}

/// What changes when any webhook or signing secret is created, updated or deleted: the number of webhooks, the
/// latest `updated_at`, and the number of signing secrets. Kernels sharing a database compare it to learn that
/// another one changed the webhooks.
pub async fn fingerprint(pool: &AnyPool) -> Result<(i64, i64, i64), StoreError> {
    let row = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM webhooks), (SELECT COALESCE(MAX(updated_at), 0) FROM webhooks), \
         (SELECT COUNT(*) FROM webhook_secrets)",
    )
    .fetch_one(pool)
    .await?;
    Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
}

/// Deletes a webhook; false when there was none.
pub async fn delete_webhook(pool: &AnyPool, id: &WebhookId) -> Result<bool, StoreError> {
    Ok(delete_webhooks(pool, std::slice::from_ref(id)).await?.is_none())
}

/// Deletes webhooks in one transaction, all or none: when one of them does not exist, nothing is deleted and its
/// index in `ids` is returned.
pub async fn delete_webhooks(pool: &AnyPool, ids: &[WebhookId]) -> Result<Option<usize>, StoreError> {
    let mut transaction = pool.begin().await?;
    for (index, id) in ids.iter().enumerate() {
        sqlx::query("DELETE FROM webhook_devices WHERE webhook_id = $1")
            .bind(id.as_str())
            .execute(&mut *transaction)
            .await?;
        let result =
            sqlx::query("DELETE FROM webhooks WHERE id = $1").bind(id.as_str()).execute(&mut *transaction).await?;
        if result.rows_affected() == 0 {
            transaction.rollback().await?;
            return Ok(Some(index));
        }
    }
    transaction.commit().await?;
    Ok(None)
}
