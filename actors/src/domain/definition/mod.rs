//! Webhook definitions in Particle's webhook JSON vocabulary, with hookwire's own fields prefixed `x-`, and their
//! compiled form: every template parsed once, at create time, so that delivery only renders.
//!
//! A definition round-trips: what was given is stored and exported as it was (absent fields stay absent), so a
//! Particle file imports unchanged and an exported file creates an identical webhook. Unknown fields are refused
//! by name.
//!
//! - this module: the definition as written ([`WebhookDefinition`]) and why one is refused;
//! - `retry.rs`: `x-retry`, read field by field and validated into a retry policy;
//! - `compiled.rs`: the compiled form ([`CompiledWebhook`]) and the checks made while compiling;
//! - `runtime.rs`: a webhook's run-time state (failures in a row, disabled, deliveries in memory).

mod compiled;
mod retry;
mod runtime;
#[cfg(test)]
mod tests;

pub use compiled::{
    BLYNK_FAILURE_LIMIT, BLYNK_MIN_INTERVAL_MS, CompiledJson, CompiledWebhook, FieldTemplate, JsonTemplate,
    MAX_MIN_INTERVAL_MS,
};
pub use retry::RetryDefinition;
pub use runtime::{MAX_DELIVERIES_IN_MEMORY, WebhookRuntime};

use crate::domain::template::Dialect;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The HTTP methods a webhook may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RequestType {
    /// GET: no body; defaults and `query` go into the query string.
    #[serde(alias = "get")]
    Get,
    /// POST, the default.
    #[default]
    #[serde(alias = "post")]
    Post,
    /// PUT.
    #[serde(alias = "put")]
    Put,
    /// PATCH.
    #[serde(alias = "patch")]
    Patch,
    /// DELETE.
    #[serde(alias = "delete")]
    Delete,
}

impl RequestType {
    /// The `http` method.
    pub fn method(self) -> http::Method {
        match self {
            RequestType::Get => http::Method::GET,
            RequestType::Post => http::Method::POST,
            RequestType::Put => http::Method::PUT,
            RequestType::Patch => http::Method::PATCH,
            RequestType::Delete => http::Method::DELETE,
        }
    }
}

/// HTTP Basic credentials; both are templates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// The user name.
    pub username: String,
    /// The password.
    #[serde(default)]
    pub password: String,
}

/// A webhook's `json` field: an object whose keys and string values are templates, or one string template that
/// must render to JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum JsonField {
    /// `"json": {"key": "{{{PARTICLE_EVENT_VALUE}}}"}`
    Object(Map<String, Value>),
    /// `"json": "{\"key\": {{{PARTICLE_EVENT_VALUE}}}}"`
    Template(String),
}

/// A webhook as its user wrote it: Particle's fields plus hookwire's `x-` fields.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WebhookDefinition {
    /// Case-sensitive prefix of the event names that trigger the webhook; empty matches every event. Particle's
    /// older name for it, `eventName`, is read too (and written back as `event`).
    #[serde(alias = "eventName")]
    pub event: String,
    /// The destination URL, a template.
    pub url: String,
    /// The method, POST when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_type: Option<RequestType>,
    /// Only events of this device trigger the webhook.
    #[serde(default, rename = "deviceID", skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// A JSON body; exclusive with `form` and `body`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<JsonField>,
    /// A form body (`application/x-www-form-urlencoded`); exclusive with `json` and `body`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<Map<String, Value>>,
    /// Query parameters appended to the URL, for any method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<Map<String, Value>>,
    /// A raw body template, sent with no content type of its own; exclusive with `json` and `form`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Extra headers; names and values are templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Map<String, Value>>,
    /// HTTP Basic credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<BasicAuth>,
    /// When true, the default fields (`event`, `data`, `published_at`, `coreid`) are not added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_defaults: Option<bool>,
    /// When false, the destination's TLS certificate is not verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject_unauthorized: Option<bool>,
    /// Renders the response body (the JSON response is the context) before it becomes `hook-response` events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_template: Option<String>,
    /// The topic of `hook-response` events, a template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_topic: Option<String>,
    /// The topic of `hook-error` events, a template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_response_topic: Option<String>,
    /// Send the response as one event instead of 512-byte chunks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unchunked: Option<bool>,
    /// Send a binary response as a `data:` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_url_response_event: Option<bool>,
    /// A disabled webhook never fires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// A human name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Particle's "only my devices" flag. Accepted so that Particle files import unchanged; hookwire webhooks
    /// only ever see their own group's devices, so it has no further effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mydevices: Option<bool>,
    /// The template dialect, `mustache` (default) or `blynk`.
    #[serde(default, rename = "x-dialect", skip_serializing_if = "Option::is_none")]
    pub dialect: Option<Dialect>,
    /// Several devices whose events trigger the webhook (with `deviceID`, the union).
    #[serde(default, rename = "x-devices", skip_serializing_if = "Option::is_none")]
    pub devices: Option<Vec<String>>,
    /// Free-form metadata, for the user's own bookkeeping and filters.
    #[serde(default, rename = "x-metadata", skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// Responses and errors go only to the device whose event triggered the webhook (default true).
    #[serde(default, rename = "x-onlyTriggeringDevice", skip_serializing_if = "Option::is_none")]
    pub only_triggering_device: Option<bool>,
    /// Sign every request as Standard Webhooks does (`webhook-id`, `webhook-timestamp`, `webhook-signature`). The
    /// secret is made by the server and never part of the definition: exporting shows only this flag.
    #[serde(default, rename = "x-signing", skip_serializing_if = "Option::is_none")]
    pub signing: Option<bool>,
    /// Rate quota: the least time between two requests of this webhook, in milliseconds (0 or absent: none).
    #[serde(default, rename = "x-minIntervalMs", skip_serializing_if = "Option::is_none")]
    pub min_interval_ms: Option<u64>,
    /// What happens to events over the quota: `queue` (the default: they wait their turn, up to a bound) or `drop`.
    #[serde(default, rename = "x-quotaOverflow", skip_serializing_if = "Option::is_none")]
    pub quota_overflow: Option<QuotaOverflow>,
    /// Consecutive failed deliveries that disable the webhook until it is enabled again (0 or absent: never).
    #[serde(default, rename = "x-failureLimit", skip_serializing_if = "Option::is_none")]
    pub failure_limit: Option<u32>,
    /// Retries of failed deliveries; absent, a delivery has one attempt, as on Particle.
    #[serde(default, rename = "x-retry", skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryDefinition>,
}

/// What happens to an event over a webhook's rate quota (`x-quotaOverflow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuotaOverflow {
    /// It waits in the webhook's queue (bounded by the `quota_queue_limit` setting; beyond it, dropped).
    #[default]
    Queue,
    /// It is dropped, recorded and reported with a `hook-error`.
    Drop,
}

/// Why a definition is refused. The message starts with the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct DefinitionError {
    /// The field at fault, as a JSON path (`json.temp`, `headers.X-Key`).
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl DefinitionError {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        DefinitionError { field: field.into(), reason: reason.into() }
    }
}

/// Largest definition accepted, in bytes of JSON.
pub const MAX_DEFINITION_BYTES: usize = 64 * 1024;

/// A definition read from its author's text, with the fields that were ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedDefinition {
    /// The definition.
    pub definition: WebhookDefinition,
    /// Particle's read-only fields the text held (`id`, `created_at`, ...): accepted and not stored.
    pub ignored_fields: Vec<String>,
}

impl WebhookDefinition {
    /// Parses a definition from JSON, refusing unknown fields by name (all of them, each at its line and
    /// column) and ignoring Particle's read-only fields.
    pub fn from_json(text: &str) -> Result<Self, DefinitionError> {
        Self::import(text).map(|imported| imported.definition)
    }

    /// Parses a definition from its author's text: as [`WebhookDefinition::from_json`], and says which of
    /// Particle's read-only fields were ignored. Leading whitespace does not count towards the size limit (an
    /// element of a file of several definitions arrives preceded by the lines before it, so that lines and
    /// columns in errors are those of the file).
    pub fn import(text: &str) -> Result<ImportedDefinition, DefinitionError> {
        if text.trim_start().len() > MAX_DEFINITION_BYTES {
            return Err(DefinitionError::new("definition", "larger than 64 KiB"));
        }
        let value: Value = serde_json::from_str(text).map_err(Self::refusal)?;
        let fields = crate::domain::fields::top_level_fields(text).unwrap_or_default();
        let ignored_fields = crate::domain::fields::check_fields(&fields)?;
        let definition = match value {
            Value::Object(mut map) if !ignored_fields.is_empty() => {
                for field in &ignored_fields {
                    map.remove(field);
                }
                serde_json::from_value(Value::Object(map)).map_err(Self::refusal)?
            }
            // Read from the text itself, so that a position in an error is one in the author's text.
            _ => serde_json::from_str(text).map_err(Self::refusal)?,
        };
        Ok(ImportedDefinition { definition, ignored_fields })
    }

    /// The refusal of a definition serde could not read, naming the field when the message does.
    fn refusal(error: serde_json::Error) -> DefinitionError {
        let message = error.to_string();
        // Fields read by hand (`x-retry`) say which of their parts is at fault: `x-retry.attempts: ...`.
        if message.starts_with("x-")
            && let Some((field, reason)) = message.split_once(": ")
        {
            let reason = reason.rsplit_once(" at line ").map_or(reason, |(reason, _)| reason);
            return DefinitionError::new(field, reason);
        }
        let field = message
            .split('`')
            .nth(1)
            .filter(|_| message.starts_with("unknown field") || message.starts_with("missing field"))
            .unwrap_or("definition")
            .to_owned();
        DefinitionError::new(field, message)
    }

    /// Serialises the definition as its user wrote it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// True unless `disabled` is set.
    pub fn is_enabled(&self) -> bool {
        !self.disabled.unwrap_or(false)
    }

    /// True when `x-signing` is set: requests are signed.
    pub fn signs(&self) -> bool {
        self.signing.unwrap_or(false)
    }
}
