//! What `hookwire webhook` prints: a stored webhook as one object (its own fields, its run-time state, then its
//! definition's fields), the outcome of `webhook test`, and the table columns of each.

use anyhow::{Context, bail};
use hookwire_client::proto;
use serde_json::{Map, Value, json};

use crate::output::{Format, print_document};

/// The table columns of a stored webhook.
pub(super) const COLUMNS: &[&str] = &["id", "name", "event", "url", "disabled", "auto_disabled"];
/// The table columns of an answer that shows a new signing secret, which must not be left out.
pub(super) const SECRET_COLUMNS: &[&str] = &["id", "signing_secret", "name", "event", "url"];
/// The table columns of `webhook test`.
pub(super) const TEST_COLUMNS: &[&str] = &["succeeded", "status", "error_class", "duration_ms", "response_body"];

/// What `webhook test` prints: the outcome, then the attempt as the attempt log shows it, the response body as
/// text (invalid UTF-8 replaced).
pub(super) fn test_json(tested: &proto::TestWebhookResponse) -> Value {
    let attempt = tested.attempt.clone().unwrap_or_default();
    let status = (attempt.response_status != 0).then_some(attempt.response_status);
    let error_class = Some(attempt.error_class).filter(|class| !class.is_empty());
    let error_message = Some(attempt.error_message).filter(|message| !message.is_empty());
    let response_headers: Map<String, Value> =
        attempt.response_headers.into_iter().map(|(name, value)| (name, Value::String(value))).collect();
    json!({
        "succeeded": tested.succeeded,
        "event_id": tested.event_id,
        "delivery_id": attempt.delivery_id,
        "attempt_id": attempt.id,
        "request_method": attempt.request_method,
        "request_url": attempt.request_url,
        "status": status,
        "error_class": error_class,
        "error_message": error_message,
        "duration_ms": attempt.duration_ms,
        "response_headers": response_headers,
        "response_body": String::from_utf8_lossy(&attempt.response_body),
    })
}

/// Prints one webhook answer; in a table, a new signing secret gets a column of its own.
pub(super) fn print_webhook(format: Format, webhook: proto::Webhook) -> anyhow::Result<()> {
    let columns = if webhook.signing_secret.is_empty() { COLUMNS } else { SECRET_COLUMNS };
    print_document(format, &webhook_json(webhook)?, columns)?;
    Ok(())
}

/// The stored webhook as one object: its own fields, then its definition's.
pub(super) fn webhook_json(webhook: proto::Webhook) -> anyhow::Result<Value> {
    let Value::Object(definition_fields) = definition(&webhook)? else {
        bail!("webhook {}: the stored definition is not a JSON object", webhook.id);
    };
    let mut fields = Map::new();
    fields.insert("id".to_owned(), Value::String(webhook.id));
    fields.insert("group_id".to_owned(), Value::String(webhook.group_id));
    fields.insert("created_at".to_owned(), Value::String(webhook.created_at));
    fields.insert("updated_at".to_owned(), Value::String(webhook.updated_at));
    if !webhook.signing_secret.is_empty() {
        fields.insert("signing_secret".to_owned(), Value::String(webhook.signing_secret));
    }
    fields.insert("auto_disabled".to_owned(), Value::Bool(webhook.auto_disabled));
    let disabled_reason = Some(webhook.disabled_reason).filter(|reason| !reason.is_empty());
    fields.insert("disabled_reason".to_owned(), disabled_reason.map_or(Value::Null, Value::String));
    fields.insert("consecutive_failures".to_owned(), Value::from(webhook.consecutive_failures));
    if !webhook.ignored_fields.is_empty() {
        fields.insert("ignored_fields".to_owned(), Value::from(webhook.ignored_fields));
    }
    for (key, value) in definition_fields {
        // Definitions have no such keys today; should one appear, the stored webhook's own field wins.
        fields.entry(key).or_insert(value);
    }
    Ok(Value::Object(fields))
}

/// The webhook's definition JSON, parsed.
pub(super) fn definition(webhook: &proto::Webhook) -> anyhow::Result<Value> {
    serde_json::from_str(&webhook.definition_json)
        .with_context(|| format!("webhook {}: the stored definition is not JSON", webhook.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored_webhook(definition_json: &str) -> proto::Webhook {
        proto::Webhook {
            id: "whk_1".to_owned(),
            group_id: "grp_1".to_owned(),
            definition_json: definition_json.to_owned(),
            created_at: "2026-11-22T10:34:05.123Z".to_owned(),
            updated_at: "2026-11-22T10:35:00.000Z".to_owned(),
            signing_secret: String::new(),
            ..proto::Webhook::default()
        }
    }

    #[test]
    fn a_stored_webhook_prints_its_own_fields_then_its_definition() {
        let webhook = stored_webhook(r#"{"url": "https://example.com/t", "event": "temp", "disabled": true}"#);
        let printed = webhook_json(webhook).unwrap();
        let keys: Vec<&str> = printed.as_object().unwrap().keys().map(String::as_str).collect();
        let state = ["auto_disabled", "disabled_reason", "consecutive_failures"];
        assert_eq!(
            keys,
            [&["id", "group_id", "created_at", "updated_at"][..], &state, &["url", "event", "disabled"]].concat()
        );
        assert_eq!(printed["id"], "whk_1");
        assert_eq!(printed["updated_at"], "2026-11-22T10:35:00.000Z");
        assert_eq!(printed["disabled"], true);
    }

    #[test]
    fn a_new_signing_secret_prints_after_the_stored_fields_and_only_when_set() {
        let mut webhook = stored_webhook(r#"{"event": "temp", "x-signing": true}"#);
        assert!(webhook_json(webhook.clone()).unwrap().get("signing_secret").is_none());
        webhook.signing_secret = "whsec_abc".to_owned();
        let printed = webhook_json(webhook).unwrap();
        let keys: Vec<&str> = printed.as_object().unwrap().keys().map(String::as_str).collect();
        let state = ["auto_disabled", "disabled_reason", "consecutive_failures"];
        assert_eq!(
            keys,
            [&["id", "group_id", "created_at", "updated_at", "signing_secret"][..], &state, &["event", "x-signing"]]
                .concat()
        );
        assert_eq!(printed["signing_secret"], "whsec_abc");
    }

    #[test]
    fn a_definition_cannot_overwrite_the_stored_fields() {
        let webhook = stored_webhook(r#"{"id": "whk_other", "event": "temp"}"#);
        let printed = webhook_json(webhook).unwrap();
        assert_eq!(printed["id"], "whk_1");
    }

    #[test]
    fn a_definition_that_is_not_an_object_is_an_error() {
        let error = webhook_json(stored_webhook("[1, 2]")).unwrap_err();
        assert_eq!(error.to_string(), "webhook whk_1: the stored definition is not a JSON object");
    }

    #[test]
    fn a_webhook_disabled_at_run_time_prints_its_state() {
        let webhook = proto::Webhook {
            auto_disabled: true,
            disabled_reason: "5 consecutive failures".to_owned(),
            consecutive_failures: 5,
            ..stored_webhook(r#"{"event": "temp"}"#)
        };
        let printed = webhook_json(webhook).unwrap();
        assert_eq!(printed["auto_disabled"], true);
        assert_eq!(printed["disabled_reason"], "5 consecutive failures");
        assert_eq!(printed["consecutive_failures"], 5);
        let healthy = webhook_json(stored_webhook(r#"{"event": "temp"}"#)).unwrap();
        assert_eq!((&healthy["auto_disabled"], &healthy["disabled_reason"]), (&Value::Bool(false), &Value::Null));
    }
}
