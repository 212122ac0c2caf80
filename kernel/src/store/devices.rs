//! Devices. Only a hash of each device's token is stored.

use super::StoreError;
use hookwire_actors::ids::{DeviceId, GroupId, WebhookId};
use sqlx::{AnyPool, Row};

/// A stored device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    /// The id.
    pub id: DeviceId,
    /// Its group.
    pub group_id: GroupId,
    /// A human name.
    pub name: String,
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    /// `PRODUCT_ID`.
    pub product_id: String,
    /// `PRODUCT_VERSION`.
    pub firmware_version: String,
    /// `PRODUCT_USER_ID`.
    pub owner: String,
    /// Creation time, epoch milliseconds.
    pub created_at: i64,
}

const COLUMNS: &str = "id, group_id, name, token_hash, product_id, firmware_version, owner, created_at";

fn from_row(row: &sqlx::any::AnyRow) -> Result<DeviceRow, StoreError> {
    Ok(DeviceRow {
        id: DeviceId::from_trusted(row.try_get("id")?),
        group_id: GroupId::from_trusted(row.try_get("group_id")?),
        name: row.try_get("name")?,
        token_hash: row.try_get("token_hash")?,
        product_id: row.try_get("product_id")?,
        firmware_version: row.try_get("firmware_version")?,
        owner: row.try_get("owner")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Inserts a device.
pub async fn insert_device(pool: &AnyPool, device: &DeviceRow) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO devices (id, group_id, name, token_hash, product_id, firmware_version, owner, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(device.id.as_str())
    .bind(device.group_id.as_str())
    .bind(device.name.as_str())
    .bind(device.token_hash.as_str())
    .bind(device.product_id.as_str())
    .bind(device.firmware_version.as_str())
    .bind(device.owner.as_str())
    .bind(device.created_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// Gets a device.
pub async fn get_device(pool: &AnyPool, id: &DeviceId) -> Result<Option<DeviceRow>, StoreError> {
    let sql = select_devices("WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id.as_str()).fetch_optional(pool).await?;
    row.as_ref().map(from_row).transpose()
}

/// Finds the device a token belongs to, by the token's hash.
pub async fn find_by_token_hash(pool: &AnyPool, token_hash: &str) -> Result<Option<DeviceRow>, StoreError> {
    let sql = select_devices("WHERE token_hash = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(token_hash).fetch_optional(pool).await?;
    row.as_ref().map(from_row).transpose()
}

/// Lists a group's devices, oldest first.
pub async fn list_devices(pool: &AnyPool, group_id: &GroupId) -> Result<Vec<DeviceRow>, StoreError> {
    let sql = select_devices("WHERE group_id = $1 ORDER BY id");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(group_id.as_str()).fetch_all(pool).await?;
    rows.iter().map(from_row).collect()
}

fn select_devices(condition: &str) -> String {
    format!("SELECT {COLUMNS} FROM devices {condition}")
}

/// Deletes a device and the webhooks limited to it alone; returns whether it existed and the deleted webhooks.
pub async fn delete_device(pool: &AnyPool, id: &DeviceId) -> Result<(bool, Vec<WebhookId>), StoreError> {
    let mut transaction = pool.begin().await?;
    let webhook_ids: Vec<WebhookId> = sqlx::query(
        "SELECT webhook_id FROM webhook_devices WHERE device_id = $1 \
         AND webhook_id NOT IN (SELECT webhook_id FROM webhook_devices WHERE device_id <> $1)",
    )
    .bind(id.as_str())
    .fetch_all(&mut *transaction)
    .await?
    .iter()
    .map(|row| row.try_get::<String, _>("webhook_id").map(|id| WebhookId::from_trusted(&id)))
    .collect::<Result<_, _>>()?;
    for webhook_id in &webhook_ids {
        sqlx::query("DELETE FROM webhook_devices WHERE webhook_id = $1")
            .bind(webhook_id.as_str())
            .execute(&mut *transaction)
            .await?;
        sqlx::query("DELETE FROM webhooks WHERE id = $1").bind(webhook_id.as_str()).execute(&mut *transaction).await?;
    }
    let result = sqlx::query("DELETE FROM devices WHERE id = $1").bind(id.as_str()).execute(&mut *transaction).await?;
    transaction.commit().await?;
    Ok((result.rows_affected() > 0, webhook_ids))
}
