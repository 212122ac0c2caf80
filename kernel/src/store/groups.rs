//! Groups.

use super::StoreError;
use crate::listing::Page;
use hookwire_actors::domain::ids::GroupId;
use sqlx::{AnyPool, Row};

/// A stored group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRow {
    /// The id.
    pub id: GroupId,
    /// The name.
    pub name: String,
    /// Creation time, epoch milliseconds.
    pub created_at: i64,
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<GroupRow, StoreError> {
    Ok(GroupRow {
        id: GroupId::from_trusted(row.try_get("id")?),
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Inserts a group.
pub async fn insert_group(pool: &AnyPool, group: &GroupRow) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO groups (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(group.id.as_str())
        .bind(group.name.as_str())
        .bind(group.created_at)
        .execute(pool)
        .await?;
    Ok(())
}

/// Gets a group.
pub async fn get_group(pool: &AnyPool, id: &GroupId) -> Result<Option<GroupRow>, StoreError> {
    let row = sqlx::query("SELECT id, name, created_at FROM groups WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// A page of the groups and how many there are.
pub async fn list_groups_page(pool: &AnyPool, page: &Page) -> Result<(Vec<GroupRow>, u64), StoreError> {
    let sql = format!("SELECT id, name, created_at FROM groups {} LIMIT $1 OFFSET $2", page.order_by_sql());
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(i64::from(page.limit))
        .bind(i64::from(page.offset))
        .fetch_all(pool)
        .await?;
    let total: i64 = sqlx::query("SELECT COUNT(*) AS total FROM groups").fetch_one(pool).await?.try_get("total")?;
    Ok((rows.iter().map(from_row).collect::<Result<_, _>>()?, u64::try_from(total).unwrap_or(0)))
}

/// Renames a group; false when there is none.
pub async fn rename_group(pool: &AnyPool, id: &GroupId, name: &str) -> Result<bool, StoreError> {
    let result =
        sqlx::query("UPDATE groups SET name = $1 WHERE id = $2").bind(name).bind(id.as_str()).execute(pool).await?;
    Ok(result.rows_affected() > 0)
}

/// Deletes a group with its devices and webhooks; false when there was none.
pub async fn delete_group(pool: &AnyPool, id: &GroupId) -> Result<bool, StoreError> {
    let mut transaction = pool.begin().await?;
    sqlx::query("DELETE FROM webhook_devices WHERE webhook_id IN (SELECT id FROM webhooks WHERE group_id = $1)")
        .bind(id.as_str())
        .execute(&mut *transaction)
        .await?;
    sqlx::query("DELETE FROM webhooks WHERE group_id = $1").bind(id.as_str()).execute(&mut *transaction).await?;
    sqlx::query("DELETE FROM devices WHERE group_id = $1").bind(id.as_str()).execute(&mut *transaction).await?;
    let result = sqlx::query("DELETE FROM groups WHERE id = $1").bind(id.as_str()).execute(&mut *transaction).await?;
    transaction.commit().await?;
    Ok(result.rows_affected() > 0)
}
