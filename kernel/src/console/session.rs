//! Console sessions, held in memory and bounded. A session keeps the admin token it was opened with, so that
//! every request is checked again by the kernel's own [`AdminAuth`](crate::auth::AdminAuth): a token revoked, or
//! its group deleted, ends the session's access at once. The browser holds only a random session id in an
//! `HttpOnly`, `SameSite=Strict` cookie; the token never leaves the server again. Sessions are keyed by the
//! SHA-256 of their id, and each has its own CSRF token that every change must carry.

use crate::auth;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The name of the session cookie.
pub const COOKIE_NAME: &str = "hookwire_session";

/// One signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// The admin token it signed in with (server-side only).
    pub token: String,
    /// The CSRF token forms must carry.
    pub csrf: String,
    opened_at: Instant,
    expires_at: Instant,
}

/// The open sessions.
#[derive(Debug)]
pub struct Sessions {
    by_id_hash: Mutex<HashMap<String, Session>>,
    ttl: Duration,
    max_sessions: usize,
}

impl Sessions {
    /// Sessions that last `ttl`, at most `max_sessions` at once (the oldest ends first).
    pub fn new(ttl: Duration, max_sessions: usize) -> Self {
        Sessions { by_id_hash: Mutex::default(), ttl, max_sessions: max_sessions.max(1) }
    }

    /// How long a session lasts.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Opens a session for an authenticated token; returns its id, for the cookie.
    pub fn open(&self, token: &str) -> String {
        let id = auth::generate_token("");
        let now = Instant::now();
        let session = Session {
            token: token.to_owned(),
            csrf: auth::generate_token(""),
            opened_at: now,
            expires_at: now + self.ttl,
        };
        let mut sessions = self.by_id_hash.lock().unwrap_or_else(|poison| poison.into_inner());
        if sessions.len() >= self.max_sessions {
            sessions.retain(|_, session| session.expires_at > now);
        }
        while sessions.len() >= self.max_sessions {
            let oldest = sessions.iter().min_by_key(|(_, session)| session.opened_at).map(|(key, _)| key.clone());
            match oldest {
                Some(key) => sessions.remove(&key),
                None => break,
            };
        }
        sessions.insert(auth::hash_token(&id), session);
        id
    }

    /// The live session of an id; an expired one is removed.
    pub fn get(&self, id: &str) -> Option<Session> {
        let key = auth::hash_token(id);
        let mut sessions = self.by_id_hash.lock().unwrap_or_else(|poison| poison.into_inner());
        match sessions.get(&key) {
            Some(session) if session.expires_at > Instant::now() => Some(session.clone()),
            Some(_) => {
                sessions.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends a session.
    pub fn close(&self, id: &str) {
        self.by_id_hash.lock().unwrap_or_else(|poison| poison.into_inner()).remove(&auth::hash_token(id));
    }

    /// How many sessions are held.
    pub fn len(&self) -> usize {
        self.by_id_hash.lock().unwrap_or_else(|poison| poison.into_inner()).len()
    }

    /// True when none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_bounded_expire_and_close() {
        let sessions = Sessions::new(Duration::from_secs(60), 2);
        let first = sessions.open("a");
        let second = sessions.open("b");
        assert_eq!(sessions.get(&first).unwrap().token, "a");
        let third = sessions.open("c");
        assert!(sessions.get(&first).is_none(), "the oldest session ends when the bound is reached");
        assert_eq!(sessions.len(), 2);
        sessions.close(&second);
        assert!(sessions.get(&second).is_none());
        assert!(sessions.get(&third).is_some());
        let expired = Sessions::new(Duration::ZERO, 2);
        let id = expired.open("a");
        assert!(expired.get(&id).is_none());
        assert!(same_secret("abc", "abc") && !same_secret("abc", "abd") && !same_secret("abc", "ab"));
    }
}
