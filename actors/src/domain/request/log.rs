//! What the attempt log, logs and answers may show of a request or response: credentials masked, bodies cut.

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue};
use serde_json::{Map, Value};
use std::sync::Arc;

/// The most bytes of a request or response body the attempt log keeps.
pub const MAX_LOGGED_BODY_BYTES: usize = 4096;

/// Name parts that mark a header or query parameter as a credential, whatever the operator adds (`mask_names`).
pub const DEFAULT_MASK_WORDS: [&str; 10] =
    ["auth", "token", "key", "secret", "pass", "session", "cookie", "signature", "access", "credential"];

/// What a masked value shows.
pub const MASKED: &str = "***";

/// Which header and query parameter values never reach a log or an answer: those whose name contains, ignoring
/// case, one of [`DEFAULT_MASK_WORDS`] or of the operator's own words.
#[derive(Debug, Clone)]
pub struct LogMask {
    /// Lowercase.
    words: Arc<[String]>,
}

impl Default for LogMask {
    fn default() -> Self {
        LogMask::new(&[])
    }
}

impl LogMask {
    /// The default words and `extra` ones (empty ones are left out).
    pub fn new(extra: &[String]) -> Self {
        let defaults = DEFAULT_MASK_WORDS.iter().map(|word| (*word).to_owned());
        let extra = extra.iter().map(|word| word.trim().to_lowercase()).filter(|word| !word.is_empty());
        LogMask { words: defaults.chain(extra).collect() }
    }

    /// Whether the value of a header or query parameter of this name is a secret.
    pub fn is_secret(&self, name: &str) -> bool {
        let name = name.to_lowercase();
        self.words.iter().any(|word| name.contains(word.as_str()))
    }
}

/// Headers as a JSON object for the attempt log, with the values of credentials and signatures masked. A header
/// sent more than once shows its last value, at the place of its first. Written straight to the string (no JSON
/// tree in between): it runs twice per attempt.
pub fn headers_for_log(headers: &HeaderMap, mask: &LogMask) -> String {
    struct Logged<'a>(&'a HeaderMap, &'a LogMask);

    impl serde::Serialize for Logged<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_map(self.0.keys().map(|name| {
                let name = name.as_str();
                let shown = if self.1.is_secret(name) {
                    std::borrow::Cow::Borrowed(MASKED)
                } else {
                    let last = self.0.get_all(name).iter().next_back().map_or(&b""[..], HeaderValue::as_bytes);
                    String::from_utf8_lossy(last)
                };
                (name, shown)
            }))
        }
    }

    serde_json::to_string(&Logged(headers, mask)).unwrap_or_else(|_| "{}".to_owned())
}

/// Masks again the secret values of headers already logged as a JSON object of strings (by [`headers_for_log`],
/// possibly by an older version or with fewer words): attempts read back are shown under the current words.
pub fn mask_logged_headers(json: &str, mask: &LogMask) -> String {
    let Ok(mut headers) = serde_json::from_str::<Map<String, Value>>(json) else {
        return json.to_owned();
    };
    let mut changed = false;
    for (name, value) in headers.iter_mut() {
        if mask.is_secret(name) && value.as_str() != Some(MASKED) {
            *value = Value::String(MASKED.to_owned());
            changed = true;
        }
    }
    if !changed {
        return json.to_owned();
    }
    serde_json::to_string(&headers).unwrap_or_else(|_| "{}".to_owned())
}

/// A URL (or URL template) as logs and answers show it: without userinfo (`user:password@`, which is never sent
/// either), without fragment, and with the values of query parameters whose names are secrets masked.
pub fn url_for_log(url: &str, mask: &LogMask) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(index) => url.split_at(index + 3),
        None => ("", url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let tail = tail.split_once('#').map_or(tail, |(before, _)| before);
    let (path, query) = match tail.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (tail, None),
    };
    let mut logged = String::with_capacity(url.len());
    logged.push_str(scheme);
    logged.push_str(host);
    logged.push_str(path);
    if let Some(query) = query {
        logged.push('?');
        for (index, pair) in query.split('&').enumerate() {
            if index > 0 {
                logged.push('&');
            }
            let is_secret = match pair.split_once('=') {
                Some((raw_name, _)) => {
                    let name = form_urlencoded::parse(raw_name.as_bytes()).next().map(|(name, _)| name);
                    mask.is_secret(raw_name) || name.is_some_and(|name| mask.is_secret(&name))
                }
                None => false,
            };
            match pair.split_once('=') {
                Some((raw_name, _)) if is_secret => {
                    logged.push_str(raw_name);
                    logged.push('=');
                    logged.push_str(MASKED);
                }
                _ => logged.push_str(pair),
            }
        }
    }
    logged
}

/// The part of a body the attempt log keeps (a shared slice, not a copy).
pub fn body_for_log(body: &Bytes) -> Bytes {
    body.slice(..body.len().min(MAX_LOGGED_BODY_BYTES))
}
