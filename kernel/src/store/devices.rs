//! Devices. Only a hash of each device's token is stored.

use super::StoreError;
use crate::listing::Page;
use hookwire_actors::domain::ids::{DeviceId, GroupId, WebhookId};
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

/// A page of a group's devices, optionally only those whose name contains `name_contains` (ignoring the case of
/// ASCII letters on SQLite, of every letter on PostgreSQL), and how many match in all.
pub async fn list_devices_page(
    pool: &AnyPool,
    group_id: &GroupId,
    name_contains: &str,
    page: &Page,
) -> Result<(Vec<DeviceRow>, u64), StoreError> {
    let pattern = like_pattern(name_contains);
    let condition = "WHERE group_id = $1 AND LOWER(name) LIKE $2 ESCAPE '\\'";
    let sql = format!("{} {} LIMIT $3 OFFSET $4", select_devices(condition), page.order_by_sql());
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(group_id.as_str())
        .bind(pattern.as_str())
        .bind(i64::from(page.limit))
        .bind(i64::from(page.offset))
        .fetch_all(pool)
        .await?;
    let count_sql = format!("SELECT COUNT(*) AS total FROM devices {condition}");
    let total: i64 = sqlx::query(sqlx::AssertSqlSafe(count_sql))
        .bind(group_id.as_str())
        .bind(pattern.as_str())
        .fetch_one(pool)
        .await?
        .try_get("total")?;
    Ok((rows.iter().map(from_row).collect::<Result<_, _>>()?, u64::try_from(total).unwrap_or(0)))
}

/// A `LIKE` pattern matching names that contain `text` (lower-cased), with `%`, `_` and `\` escaped by `\`.
fn like_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for character in text.to_lowercase().chars() {
        if matches!(character, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(character);
    }
    pattern.push('%');
    pattern
}

/// Replaces a device's name and `PRODUCT_*` fields; false when there is no such device.
pub async fn update_device(pool: &AnyPool, device: &DeviceRow) -> Result<bool, StoreError> {
    let result =
        sqlx::query("UPDATE devices SET name = $1, product_id = $2, firmware_version = $3, owner = $4 WHERE id = $5")
            .bind(device.name.as_str())
            .bind(device.product_id.as_str())
            .bind(device.firmware_version.as_str())
            .bind(device.owner.as_str())
            .bind(device.id.as_str())
            .execute(pool)
            .await?;
    Ok(result.rows_affected() > 0)
}

/// Replaces a device's token hash; false when there is no such device.
pub async fn set_token_hash(pool: &AnyPool, id: &DeviceId, token_hash: &str) -> Result<bool, StoreError> {
    let result = sqlx::query("UPDATE devices SET token_hash = $1 WHERE id = $2")
        .bind(token_hash)
        .bind(id.as_str())
        .execute(pool)
        .await?;
    Ok(result.rows_affected() > 0)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards_and_lower_case() {
        assert_eq!(like_pattern(""), "%%");
        assert_eq!(like_pattern("Ab"), "%ab%");
        assert_eq!(like_pattern("50%_x\\"), "%50\\%\\_x\\\\%");
    }
}
