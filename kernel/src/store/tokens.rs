//! Admin tokens scoped to one group. Only a hash of each token is stored.

use super::StoreError;
use crate::auth::{Role, TokenId};
use hookwire_actors::domain::ids::GroupId;
use sqlx::{AnyPool, Row};

/// A stored group token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    /// The id.
    pub id: TokenId,
    /// The group it acts on.
    pub group_id: GroupId,
    /// A human name.
    pub name: String,
    /// What it may do there.
    pub role: Role,
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    /// Creation time, epoch milliseconds.
    pub created_at: i64,
    /// Last use, epoch milliseconds, written at most once a minute.
    pub last_used_at: Option<i64>,
}

const COLUMNS: &str = "id, group_id, name, role, token_hash, created_at, last_used_at";

fn from_row(row: &sqlx::any::AnyRow) -> Result<TokenRow, StoreError> {
    let role: String = row.try_get("role")?;
    Ok(TokenRow {
        id: TokenId::from_trusted(row.try_get("id")?),
        group_id: GroupId::from_trusted(row.try_get("group_id")?),
        name: row.try_get("name")?,
        role: Role::parse(&role).ok_or_else(|| StoreError::Internal(format!("admin_tokens.role: `{role}`")))?,
        token_hash: row.try_get("token_hash")?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
    })
}

fn select_tokens(condition: &str) -> String {
    format!("SELECT {COLUMNS} FROM admin_tokens {condition}")
}

/// Inserts a token.
pub async fn insert_token(pool: &AnyPool, token: &TokenRow) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO admin_tokens (id, group_id, name, role, token_hash, created_at, last_used_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(token.id.as_str())
    .bind(token.group_id.as_str())
    .bind(token.name.as_str())
    .bind(token.role.as_str())
    .bind(token.token_hash.as_str())
    .bind(token.created_at)
    .bind(token.last_used_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// Gets a token.
pub async fn get_token(pool: &AnyPool, id: &TokenId) -> Result<Option<TokenRow>, StoreError> {
    let sql = select_tokens("WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id.as_str()).fetch_optional(pool).await?;
    row.as_ref().map(from_row).transpose()
}

/// Finds the token whose hash is `token_hash`.
pub async fn find_by_token_hash(pool: &AnyPool, token_hash: &str) -> Result<Option<TokenRow>, StoreError> {
    let sql = select_tokens("WHERE token_hash = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(token_hash).fetch_optional(pool).await?;
    row.as_ref().map(from_row).transpose()
}

/// Lists a group's tokens, oldest first.
pub async fn list_tokens(pool: &AnyPool, group_id: &GroupId) -> Result<Vec<TokenRow>, StoreError> {
    let sql = select_tokens("WHERE group_id = $1 ORDER BY id");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(group_id.as_str()).fetch_all(pool).await?;
    rows.iter().map(from_row).collect()
}

/// Deletes a token; false when there was none.
pub async fn delete_token(pool: &AnyPool, id: &TokenId) -> Result<bool, StoreError> {
    let result = sqlx::query("DELETE FROM admin_tokens WHERE id = $1").bind(id.as_str()).execute(pool).await?;
    Ok(result.rows_affected() > 0)
}

/// Records that a token was used at `now_ms`.
pub async fn touch_token(pool: &AnyPool, id: &TokenId, now_ms: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE admin_tokens SET last_used_at = $1 WHERE id = $2")
        .bind(now_ms)
        .bind(id.as_str())
        .execute(pool)
        .await?;
    Ok(())
}
