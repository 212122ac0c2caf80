//! Console sessions, kept in the database (`console_sessions`) so that every kernel on it knows them: behind a
//! load balancer, a session opened through one kernel works through the others, and sessions survive a restart.
//! Only hashes are stored: the SHA-256 of the session id (the browser's cookie, random) and of the admin token it
//! signed in with. Every request authenticates that token hash again with the kernel's own
//! [`AdminAuth`](crate::auth::AdminAuth), so a token revoked, or its group deleted, ends the session's access at
//! once. The browser holds only the session id, in an `HttpOnly`, `SameSite=Strict` cookie; each session has its
//! own CSRF token that every change must carry. At most `max_sessions` are held across all kernels (signing in
//! beyond ends the oldest); expired ones are deleted at each sign-in.

use crate::auth;
use crate::store::StoreError;
use crate::store::console::{self as sql, SessionRow};
use hookwire_actors::domain::time;
use sqlx::AnyPool;
use std::time::Duration;

/// The name of the session cookie.
pub const COOKIE_NAME: &str = "hookwire_session";

/// One signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// The SHA-256 of the admin token it signed in with.
    pub token_hash: String,
    /// The CSRF token forms must carry.
    pub csrf: String,
}

/// The sessions, in the database.
#[derive(Debug)]
pub struct Sessions {
    pool: AnyPool,
    ttl: Duration,
    max_sessions: usize,
}

impl Sessions {
    /// Sessions stored in `pool` that last `ttl`, at most `max_sessions` at once (the oldest ends first).
    pub fn new(pool: AnyPool, ttl: Duration, max_sessions: usize) -> Self {
        Sessions { pool, ttl, max_sessions: max_sessions.max(1) }
    }

    /// How long a session lasts.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Opens a session for an authenticated token; returns its id, for the cookie.
    pub async fn open(&self, token: &str) -> Result<String, StoreError> {
        let id = auth::generate_token("");
        let now = time::now_ms();
        let ttl_ms = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        let row = SessionRow { token_hash: auth::hash_token(token), csrf: auth::generate_token("") };
        let max = i64::try_from(self.max_sessions).unwrap_or(i64::MAX);
        sql::insert_session(&self.pool, &auth::hash_token(&id), &row, now, now.saturating_add(ttl_ms), max).await?;
        Ok(id)
    }

    /// The live session of an id.
    pub async fn get(&self, id: &str) -> Result<Option<Session>, StoreError> {
        let row = sql::get_session(&self.pool, &auth::hash_token(id), time::now_ms()).await?;
        Ok(row.map(|row| Session { token_hash: row.token_hash, csrf: row.csrf }))
    }

    /// Ends a session.
    pub async fn close(&self, id: &str) -> Result<(), StoreError> {
        sql::delete_session(&self.pool, &auth::hash_token(id)).await
    }
}

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[tokio::test]
    async fn sessions_are_bounded_expire_close_and_keep_only_hashes() {
        let directory = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}", directory.path().join("db").display())).await.unwrap();
        let sessions = Sessions::new(store.pool().clone(), Duration::from_secs(60), 2);
        let first = sessions.open("a").await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
        let second = sessions.open("b").await.unwrap();
        assert_eq!(sessions.get(&first).await.unwrap().unwrap().token_hash, auth::hash_token("a"));
        tokio::time::sleep(Duration::from_millis(2)).await;
        let third = sessions.open("c").await.unwrap();
        assert!(sessions.get(&first).await.unwrap().is_none(), "the oldest session ends when the bound is reached");
        assert_eq!(sql::count_sessions(store.pool()).await.unwrap(), 2);
        sessions.close(&second).await.unwrap();
        assert!(sessions.get(&second).await.unwrap().is_none());
        assert!(sessions.get(&third).await.unwrap().is_some());
        let stored: Vec<(String, String)> =
            sqlx::query_as("SELECT id_hash, token_hash FROM console_sessions").fetch_all(store.pool()).await.unwrap();
        assert_eq!(stored, [(auth::hash_token(&third), auth::hash_token("c"))], "neither the id nor the token");
        let expired = Sessions::new(store.pool().clone(), Duration::ZERO, 2);
        let id = expired.open("a").await.unwrap();
        assert!(expired.get(&id).await.unwrap().is_none());
        assert!(same_secret("abc", "abc") && !same_secret("abc", "abd") && !same_secret("abc", "ab"));
    }
}
