//! Signed requests, as Standard Webhooks (<https://www.standardwebhooks.com>) defines them. Every request of a
//! webhook with `x-signing` carries three headers:
//!
//! - `webhook-id`: the delivery id, the same on every attempt of one delivery (a receiver deduplicates on it);
//! - `webhook-timestamp`: unix seconds when the attempt was sent (a receiver refuses stale ones);
//! - `webhook-signature`: `v1,<base64 of HMAC-SHA256 over "{id}.{timestamp}.{body}">`, one per key, separated by
//!   spaces: after a rotation the previous key signs too until its grace period ends, so that a receiver holding
//!   either secret verifies.
//!
//! A secret is `whsec_` followed by the standard base64 of the key bytes (hookwire makes 32 random bytes). The
//! kernel stores secrets and hands their keys to compiled webhooks; nothing here prints a key, `Debug` included.

use crate::domain::definition::CompiledWebhook;
use crate::domain::ids::DeliveryId;
use crate::domain::request::{RenderError, RenderedRequest};
use base64::Engine as _;
use http::header::{HeaderName, HeaderValue};
use ring::hmac;
use std::fmt;
use std::sync::Arc;

/// The prefix of every signing secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// The header carrying the delivery id.
pub const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
/// The header carrying the send time, unix seconds.
pub const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
/// The header carrying the signatures.
pub const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");
/// Fewest key bytes accepted (the Standard Webhooks minimum).
const MIN_KEY_BYTES: usize = 24;
/// Most key bytes accepted (the Standard Webhooks maximum).
const MAX_KEY_BYTES: usize = 64;

/// Why a secret cannot sign. The message never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Not `whsec_` followed by standard base64.
    #[error("not a signing secret (expected `whsec_` followed by base64)")]
    Malformed,
    /// A key shorter or longer than Standard Webhooks allows.
    #[error("signing key of {0} bytes (expected 24 to 64)")]
    BadLength(usize),
}

/// Formats key bytes as a secret: `whsec_` and their standard base64.
pub fn format_secret(key: &[u8]) -> String {
    format!("{SECRET_PREFIX}{}", base64::engine::general_purpose::STANDARD.encode(key))
}

/// One HMAC-SHA256 key.
pub struct SigningKey {
    key: hmac::Key,
}

impl SigningKey {
    /// Reads a `whsec_...` secret.
    pub fn from_secret(secret: &str) -> Result<SigningKey, SecretError> {
        let encoded = secret.strip_prefix(SECRET_PREFIX).ok_or(SecretError::Malformed)?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|_| SecretError::Malformed)?;
        if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&bytes.len()) {
            return Err(SecretError::BadLength(bytes.len()));
        }
        Ok(SigningKey { key: hmac::Key::new(hmac::HMAC_SHA256, &bytes) })
    }

    /// The `v1,<base64>` signature of `{id}.{timestamp}.{body}`.
    fn signature(&self, signed_prefix: &[u8], body: &[u8]) -> String {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(signed_prefix);
        context.update(body);
        format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(context.sign().as_ref()))
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

/// The keys a webhook signs with: its current key and, after rotations, the previous ones until their grace
/// periods end.
pub struct SigningKeys {
    current: SigningKey,
    /// Previous keys with the end of their grace period, epoch milliseconds.
    previous: Vec<(SigningKey, i64)>,
}

impl SigningKeys {
    /// Keys with only a current key.
    pub fn new(current: SigningKey) -> SigningKeys {
        SigningKeys { current, previous: Vec::new() }
    }

    /// Adds a previous key that signs too until `expires_at_ms` (epoch milliseconds).
    pub fn with_previous(mut self, key: SigningKey, expires_at_ms: i64) -> SigningKeys {
        self.previous.push((key, expires_at_ms));
        self
    }

    /// How many keys sign at `now_ms`.
    pub fn num_signing_at(&self, now_ms: i64) -> usize {
        1 + self.previous.iter().filter(|(_, expires_at_ms)| *expires_at_ms > now_ms).count()
    }
}

impl fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let previous_expiries: Vec<i64> = self.previous.iter().map(|(_, expires_at_ms)| *expires_at_ms).collect();
        f.debug_struct("SigningKeys")
            .field("current", &self.current)
            .field("previous_expiries", &previous_expiries)
            .finish()
    }
}

/// Signs a request: sets `webhook-id`, `webhook-timestamp` and `webhook-signature` (the current key's signature,
/// then those of previous keys whose grace period has not ended at `timestamp_secs`), replacing any header of
/// those names the definition set.
pub fn sign(request: &mut RenderedRequest, delivery_id: &DeliveryId, timestamp_secs: i64, keys: &SigningKeys) {
    let signed_prefix = format!("{delivery_id}.{timestamp_secs}.");
    let now_ms = timestamp_secs.saturating_mul(1000);
    let mut signatures = keys.current.signature(signed_prefix.as_bytes(), &request.body);
    for (key, expires_at_ms) in &keys.previous {
        if *expires_at_ms > now_ms {
            signatures.push(' ');
            signatures.push_str(&key.signature(signed_prefix.as_bytes(), &request.body));
        }
    }
    // Delivery ids, decimal digits and base64 are all valid header text.
    let values = [
        (WEBHOOK_ID, HeaderValue::from_str(delivery_id.as_str())),
        (WEBHOOK_TIMESTAMP, HeaderValue::from_str(&timestamp_secs.to_string())),
        (WEBHOOK_SIGNATURE, HeaderValue::try_from(signatures)),
    ];
    for (name, value) in values {
        if let Ok(value) = value {
            request.headers.insert(name, value);
        }
    }
}

/// Signs a delivery's request when its webhook has `x-signing`, at `timestamp_secs`. A webhook that should sign
/// but has no key (its secret is missing from the store) fails the attempt as a render error rather than send
/// an unsigned request.
pub fn sign_delivery(
    webhook: &CompiledWebhook,
    mut request: RenderedRequest,
    delivery_id: &DeliveryId,
    timestamp_secs: i64,
) -> Result<RenderedRequest, RenderError> {
    if !webhook.definition.signs() {
        return Ok(request);
    }
    let Some(keys) = webhook.signing.as_deref() else {
        return Err(RenderError {
            field: Arc::from("x-signing"),
            reason: "the webhook has no signing secret; rotate it to make one".into(),
        });
    };
    sign(&mut request, delivery_id, timestamp_secs, keys);
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::HeaderMap;

    fn request(body: &'static str) -> RenderedRequest {
        RenderedRequest {
            method: http::Method::POST,
            uri: "http://sink/".parse().unwrap(),
            headers: HeaderMap::new(),
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    fn keys(secret: &str) -> SigningKeys {
        SigningKeys::new(SigningKey::from_secret(secret).unwrap())
    }

    fn signature_of(secret: &str, id: &str, timestamp_secs: i64, body: &str) -> String {
        let signed_prefix = format!("{id}.{timestamp_secs}.");
        SigningKey::from_secret(secret).unwrap().signature(signed_prefix.as_bytes(), body.as_bytes())
    }

    #[test]
    fn signatures_match_the_standard_webhooks_test_vectors() {
        // From the official libraries' tests (Python, JavaScript and others; then the Rust library).
        assert_eq!(
            signature_of(
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                r#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(
            signature_of(
                "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1_649_367_553,
                r#"{"email":"test@example.com","username":"test_user"}"#
            ),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn a_signed_request_carries_the_delivery_id_the_timestamp_and_the_signature() {
        let secret = format_secret(&[7; 32]);
        let delivery_id = DeliveryId::generate();
        let mut signed = request("event=a&data=b");
        signed.headers.insert(WEBHOOK_ID, HeaderValue::from_static("spoofed by the definition"));
        sign(&mut signed, &delivery_id, 1_700_000_000, &keys(&secret));
        assert_eq!(signed.headers[WEBHOOK_ID], delivery_id.as_str());
        assert_eq!(signed.headers[WEBHOOK_TIMESTAMP], "1700000000");
        let expected = signature_of(&secret, delivery_id.as_str(), 1_700_000_000, "event=a&data=b");
        assert_eq!(signed.headers[WEBHOOK_SIGNATURE], expected.as_str());
        assert_eq!(signed.headers.get_all(WEBHOOK_ID).iter().count(), 1);
    }

    #[test]
    fn a_previous_key_signs_too_until_its_grace_period_ends() {
        let (old, new) = (format_secret(&[1; 32]), format_secret(&[2; 32]));
        let rotated = keys(&new).with_previous(SigningKey::from_secret(&old).unwrap(), 1_700_000_100_000);
        let delivery_id = DeliveryId::generate();

        let mut during_grace = request("x");
        sign(&mut during_grace, &delivery_id, 1_700_000_099, &rotated);
        let both = format!(
            "{} {}",
            signature_of(&new, delivery_id.as_str(), 1_700_000_099, "x"),
            signature_of(&old, delivery_id.as_str(), 1_700_000_099, "x")
        );
        assert_eq!(during_grace.headers[WEBHOOK_SIGNATURE], both.as_str());
        assert_eq!(rotated.num_signing_at(1_700_000_099_000), 2);

        let mut after_grace = request("x");
        sign(&mut after_grace, &delivery_id, 1_700_000_100, &rotated);
        let only_new = signature_of(&new, delivery_id.as_str(), 1_700_000_100, "x");
        assert_eq!(after_grace.headers[WEBHOOK_SIGNATURE], only_new.as_str());
    }

    #[test]
    fn malformed_secrets_are_refused_without_being_repeated() {
        assert_eq!(SigningKey::from_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap_err(), SecretError::Malformed);
        assert_eq!(SigningKey::from_secret("whsec_not base64!").unwrap_err(), SecretError::Malformed);
        assert_eq!(SigningKey::from_secret(&format_secret(&[0; 8])).unwrap_err(), SecretError::BadLength(8));
        assert!(!SecretError::Malformed.to_string().contains("whsec_not"));
        let secret = format_secret(&[9; 32]);
        assert_eq!(secret.len(), "whsec_".len() + 44);
        assert!(SigningKey::from_secret(&secret).is_ok());
    }

    #[test]
    fn keys_never_print() {
        let secret = format_secret(&[3; 32]);
        let rotated = keys(&secret).with_previous(SigningKey::from_secret(&secret).unwrap(), 5);
        let printed = format!("{rotated:?}");
        let encoded = secret.trim_start_matches(SECRET_PREFIX);
        assert!(!printed.contains(encoded) && !printed.contains("3, 3"), "{printed}");
        assert_eq!(printed, "SigningKeys { current: SigningKey(***), previous_expiries: [5] }");
    }

    #[test]
    fn x_signing_is_a_flag_that_round_trips_without_any_secret() {
        use crate::domain::definition::WebhookDefinition;
        let text = r#"{"event":"a","url":"http://sink/","x-signing":true}"#;
        let definition = WebhookDefinition::from_json(text).unwrap();
        assert!(definition.signs());
        assert_eq!(definition.to_json(), text);
        assert!(!WebhookDefinition::from_json(r#"{"event":"a","url":"http://sink/"}"#).unwrap().signs());
        let error = WebhookDefinition::from_json(r#"{"event":"a","url":"http://sink/","x-signing":"whsec_x"}"#);
        assert!(error.is_err(), "the flag is a boolean, not a secret");
    }

    #[test]
    fn only_webhooks_with_x_signing_are_signed_and_a_missing_key_fails_the_attempt() {
        let compile = |json: &str| {
            let definition = crate::domain::definition::WebhookDefinition::from_json(json).unwrap();
            CompiledWebhook::compile(
                crate::domain::ids::WebhookId::generate(),
                crate::domain::ids::GroupId::generate(),
                definition,
            )
            .unwrap()
        };
        let delivery_id = DeliveryId::generate();
        let plain = compile(r#"{"event":"a","url":"http://sink/"}"#);
        let unsigned = sign_delivery(&plain, request("x"), &delivery_id, 1).unwrap();
        assert!(unsigned.headers.get(WEBHOOK_SIGNATURE).is_none());

        let mut signing = compile(r#"{"event":"a","url":"http://sink/","x-signing":true}"#);
        let error = sign_delivery(&signing, request("x"), &delivery_id, 1).unwrap_err();
        assert_eq!(&*error.field, "x-signing");
        signing.signing = Some(Arc::new(keys(&format_secret(&[4; 32]))));
        let signed = sign_delivery(&signing, request("x"), &delivery_id, 1).unwrap();
        assert!(signed.headers[WEBHOOK_SIGNATURE].to_str().unwrap().starts_with("v1,"));
    }
}
