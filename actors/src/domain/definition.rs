//! Webhook definitions in Particle's webhook JSON vocabulary, with hookwire's own fields prefixed `x-`, and their
//! compiled form: every template parsed once, at create time, so that delivery only renders.
//!
//! A definition round-trips: what was given is stored and exported as it was (absent fields stay absent), so a
//! Particle file imports unchanged and an exported file creates an identical webhook. Unknown fields are refused
//! by name.

use crate::domain::ids::{DeviceId, GroupId, WebhookId};
use crate::domain::policy::{Backoff, RetryPolicy};
use crate::domain::template::{Dialect, Template};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

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

/// `x-retry` as written: `{"attempts": N, "backoff": [ms, ...]}` or `{"attempts": N, "base": ms, "cap": ms}`, with
/// `"jitter"` (default true). Read field by field, so that every refusal names its field (`x-retry.attempts`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct RetryDefinition {
    /// Attempts in all, the first included: 1 to 20.
    pub attempts: u32,
    /// The delays between attempts, in milliseconds; the last one repeats.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Vec<u64>>,
    /// Exponential delays: the first, in milliseconds; each next one doubles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<u64>,
    /// Exponential delays: the longest, in milliseconds (default one hour).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cap: Option<u64>,
    /// Randomise each delay between half of it and all of it (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter: Option<bool>,
}

impl RetryDefinition {
    /// Reads the fields of an `x-retry` object, refusing unknown ones and wrong types by name.
    fn from_fields(fields: &Map<String, Value>) -> Result<Self, DefinitionError> {
        let millis = |name: &str, value: &Value| {
            value.as_u64().ok_or_else(|| {
                DefinitionError::new(format!("x-retry.{name}"), "must be a whole number of milliseconds")
            })
        };
        let mut retry = RetryDefinition::default();
        let mut has_attempts = false;
        for (name, value) in fields {
            match name.as_str() {
                "attempts" => {
                    retry.attempts = value
                        .as_u64()
                        .and_then(|attempts| u32::try_from(attempts).ok())
                        .ok_or_else(|| DefinitionError::new("x-retry.attempts", "must be a whole number"))?;
                    has_attempts = true;
                }
                "backoff" => {
                    let delays = value.as_array().ok_or_else(|| {
                        DefinitionError::new("x-retry.backoff", "must be a list of delays in milliseconds")
                    })?;
                    let delays = delays
                        .iter()
                        .enumerate()
                        .map(|(index, delay)| millis(&format!("backoff.{index}"), delay))
                        .collect::<Result<_, _>>()?;
                    retry.backoff = Some(delays);
                }
                "base" => retry.base = Some(millis("base", value)?),
                "cap" => retry.cap = Some(millis("cap", value)?),
                "jitter" => {
                    let jitter = value
                        .as_bool()
                        .ok_or_else(|| DefinitionError::new("x-retry.jitter", "must be true or false"))?;
                    retry.jitter = Some(jitter);
                }
                _ => {
                    return Err(DefinitionError::new(
                        format!("x-retry.{name}"),
                        "unknown field, expected one of attempts, backoff, base, cap, jitter",
                    ));
                }
            }
        }
        if !has_attempts {
            return Err(DefinitionError::new("x-retry.attempts", "missing: the number of attempts, 1 to 20"));
        }
        Ok(retry)
    }

    /// Validates the policy and compiles it.
    pub fn policy(&self) -> Result<RetryPolicy, DefinitionError> {
        use crate::domain::policy::{DEFAULT_RETRY_CAP_MS, MAX_ATTEMPTS, MAX_RETRY_DELAY_MS};
        let too_long =
            |field: &str| DefinitionError::new(field, format!("must be at most {MAX_RETRY_DELAY_MS} (a day)"));
        if !(1..=MAX_ATTEMPTS).contains(&self.attempts) {
            return Err(DefinitionError::new("x-retry.attempts", format!("must be from 1 to {MAX_ATTEMPTS}")));
        }
        let backoff = match (&self.backoff, self.base) {
            (Some(_), Some(_)) => {
                return Err(DefinitionError::new("x-retry.base", "give either backoff or base (with cap), not both"));
            }
            (None, None) if self.attempts > 1 => {
                return Err(DefinitionError::new(
                    "x-retry.backoff",
                    "missing: give a backoff schedule ([ms, ...]) or an exponential base (base, cap)",
                ));
            }
            (None, None) => Backoff::Schedule(Vec::new()),
            (Some(delays), None) => {
                if self.cap.is_some() {
                    return Err(DefinitionError::new("x-retry.cap", "only applies with base"));
                }
                if delays.is_empty() && self.attempts > 1 {
                    return Err(DefinitionError::new("x-retry.backoff", "must hold at least one delay"));
                }
                if delays.len() >= MAX_ATTEMPTS as usize {
                    return Err(DefinitionError::new(
                        "x-retry.backoff",
                        format!("must hold at most {} delays", MAX_ATTEMPTS - 1),
                    ));
                }
                if let Some(index) = delays.iter().position(|delay| *delay > MAX_RETRY_DELAY_MS) {
                    return Err(too_long(&format!("x-retry.backoff.{index}")));
                }
                Backoff::Schedule(delays.iter().copied().map(Duration::from_millis).collect())
            }
            (None, Some(base)) => {
                let cap = self.cap.unwrap_or(DEFAULT_RETRY_CAP_MS.max(base));
                if base == 0 {
                    return Err(DefinitionError::new("x-retry.base", "must be at least 1"));
                }
                if base > MAX_RETRY_DELAY_MS {
                    return Err(too_long("x-retry.base"));
                }
                if cap < base {
                    return Err(DefinitionError::new("x-retry.cap", "must be at least base"));
                }
                if cap > MAX_RETRY_DELAY_MS {
                    return Err(too_long("x-retry.cap"));
                }
                Backoff::Exponential { base: Duration::from_millis(base), cap: Duration::from_millis(cap) }
            }
        };
        Ok(RetryPolicy { attempts: self.attempts, backoff, jitter: self.jitter.unwrap_or(true) })
    }
}

impl<'de> Deserialize<'de> for RetryDefinition {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let Value::Object(fields) = Value::deserialize(deserializer)? else {
            return Err(serde::de::Error::custom(
                "x-retry: must be an object such as {\"attempts\": 3, \"backoff\": [1000]}",
            ));
        };
        RetryDefinition::from_fields(&fields).map_err(serde::de::Error::custom)
    }
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

/// A template with the field it came from, for render errors that name it.
#[derive(Debug, Clone)]
pub struct FieldTemplate {
    /// The field (`url`, `form.field1`).
    pub field: Arc<str>,
    /// The parsed template.
    pub template: Template,
}

/// The compiled `json` field.
#[derive(Debug, Clone)]
pub enum CompiledJson {
    /// A JSON value whose object keys and strings are templates.
    Value(JsonTemplate),
    /// One template that renders to JSON text.
    Text(FieldTemplate),
}

/// A JSON value with templates in its keys and strings.
#[derive(Debug, Clone)]
pub enum JsonTemplate {
    /// A value without strings (number, bool, null) is sent as it is.
    Literal(Value),
    /// A string template: renders to a JSON string.
    String(Template),
    /// An array of templates.
    Array(Vec<JsonTemplate>),
    /// An object whose keys are templates too.
    Object(Vec<(Template, JsonTemplate)>),
}

/// A webhook ready to deliver: the definition and its templates parsed. Shared by reference through the index.
#[derive(Debug)]
pub struct CompiledWebhook {
    /// The webhook.
    pub id: WebhookId,
    /// Its group.
    pub group_id: GroupId,
    /// The definition as stored.
    pub definition: WebhookDefinition,
    /// The devices it is limited to (empty: every device of the group).
    pub devices: Vec<DeviceId>,
    /// The method.
    pub method: http::Method,
    /// The URL template.
    pub url: FieldTemplate,
    /// The `json` field.
    pub json: Option<CompiledJson>,
    /// The `form` fields.
    pub form: Option<Vec<(FieldTemplate, FieldTemplate)>>,
    /// The `query` fields.
    pub query: Vec<(FieldTemplate, FieldTemplate)>,
    /// The `body` template.
    pub body: Option<FieldTemplate>,
    /// Header names and values.
    pub headers: Vec<(FieldTemplate, FieldTemplate)>,
    /// Basic credentials.
    pub auth: Option<(FieldTemplate, FieldTemplate)>,
    /// Whether the defaults are merged in.
    pub add_defaults: bool,
    /// `responseTemplate`.
    pub response_template: Option<FieldTemplate>,
    /// `responseTopic`.
    pub response_topic: Option<FieldTemplate>,
    /// `errorResponseTopic`.
    pub error_response_topic: Option<FieldTemplate>,
    /// Responses go only to the triggering device.
    pub only_triggering_device: bool,
    /// TLS certificates are verified.
    pub verify_tls: bool,
    /// The keys that sign requests (`x-signing`): filled by the kernel from its store, never from the definition.
    pub signing: Option<Arc<crate::domain::signing::SigningKeys>>,
    /// The rate quota (`x-minIntervalMs`): the least time between two requests; `None` for no quota.
    pub min_interval: Option<Duration>,
    /// What happens to events over the quota.
    pub quota_overflow: QuotaOverflow,
    /// Consecutive failed deliveries that disable the webhook (`x-failureLimit`); 0 for never.
    pub failure_limit: u32,
    /// The retry policy (`x-retry`); `None`: one attempt per delivery.
    pub retry: Option<RetryPolicy>,
    /// What the webhook's deliveries have done to it: shared by every compiled version of the webhook (the index
    /// carries it over when the webhook is edited) and by the deliveries in flight.
    pub runtime: Arc<WebhookRuntime>,
}

/// A Blynk webhook's `x-minIntervalMs` when it gives none: Blynk sends at most one request a second.
pub const BLYNK_MIN_INTERVAL_MS: u64 = 1000;
/// A Blynk webhook's `x-failureLimit` when it gives none: Blynk disables a webhook after 10 failures in a row.
pub const BLYNK_FAILURE_LIMIT: u32 = 10;

/// The largest `x-minIntervalMs`: one day.
pub const MAX_MIN_INTERVAL_MS: u64 = 86_400_000;

/// A webhook's run-time state: its consecutive failed deliveries, and whether (and why) it was disabled at run
/// time, by its failure limit, a `410 Gone` or an admin. Matching reads it with one atomic load; the webhook actor
/// and admin calls change it; the kernel stores it (table `webhook_state`) so that it survives restarts.
///
/// It also bounds the webhook's deliveries held in memory ([`MAX_DELIVERIES_IN_MEMORY`]): each new delivery takes
/// a permit, given back when it ends or waits for a retry. A publish that finds none waits (its device session
/// pauses, never the kernel), so a webhook slower than its events delays the devices that feed it instead of
/// growing without bound; the deliveries are durable either way.
#[derive(Debug)]
pub struct WebhookRuntime {
    disabled: AtomicBool,
    consecutive_failures: AtomicU32,
    disabled_reason: std::sync::Mutex<Option<String>>,
    deliveries: Arc<tokio::sync::Semaphore>,
}

/// The most deliveries of one webhook held in memory (dispatched, not yet finished, not waiting for a retry).
pub const MAX_DELIVERIES_IN_MEMORY: usize = 4096;

impl Default for WebhookRuntime {
    fn default() -> Self {
        WebhookRuntime::new(0, None)
    }
}

impl WebhookRuntime {
    /// The state as stored.
    pub fn new(consecutive_failures: u32, disabled_reason: Option<String>) -> Self {
        WebhookRuntime {
            disabled: AtomicBool::new(disabled_reason.is_some()),
            consecutive_failures: AtomicU32::new(consecutive_failures),
            disabled_reason: std::sync::Mutex::new(disabled_reason),
            deliveries: Arc::new(tokio::sync::Semaphore::new(MAX_DELIVERIES_IN_MEMORY)),
        }
    }

    /// A place for one more delivery in memory, if there is one now.
    pub fn try_admit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.deliveries.clone().try_acquire_owned().ok()
    }

    /// A place for one more delivery in memory, waiting for one.
    pub async fn admit(&self) -> tokio::sync::OwnedSemaphorePermit {
        let deliveries = self.deliveries.clone();
        deliveries.acquire_owned().await.expect("the semaphore of deliveries is never closed")
    }

    /// Sets the state to what was stored (at start, before any delivery).
    pub fn restore(&self, consecutive_failures: u32, disabled_reason: Option<String>) {
        let mut reason = self.reason();
        self.disabled.store(disabled_reason.is_some(), Ordering::Relaxed);
        *reason = disabled_reason;
        self.consecutive_failures.store(consecutive_failures, Ordering::Relaxed);
    }

    fn reason(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.disabled_reason.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// True when the webhook was disabled at run time.
    pub fn is_disabled(&self) -> bool {
        self.disabled.load(Ordering::Relaxed)
    }

    /// Why it was disabled, when it is.
    pub fn disabled_reason(&self) -> Option<String> {
        self.reason().clone()
    }

    /// Consecutive failed deliveries so far.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures.load(Ordering::Relaxed)
    }

    /// Counts one more failed delivery; returns the new count.
    pub fn record_failure(&self) -> u32 {
        self.consecutive_failures.fetch_add(1, Ordering::Relaxed).saturating_add(1)
    }

    /// A successful delivery ends the run of failures; true when there was one (the state changed). Costs one
    /// atomic load when there was none.
    pub fn record_success(&self) -> bool {
        self.consecutive_failures.load(Ordering::Relaxed) != 0
            && self.consecutive_failures.swap(0, Ordering::Relaxed) != 0
    }

    /// Disables the webhook for `reason`; false when it already was (the first reason stays).
    pub fn disable(&self, reason: String) -> bool {
        let mut current = self.reason();
        if current.is_some() {
            return false;
        }
        *current = Some(reason);
        self.disabled.store(true, Ordering::Relaxed);
        true
    }

    /// Enables the webhook again and resets its count of failures.
    pub fn enable(&self) {
        let mut current = self.reason();
        *current = None;
        self.consecutive_failures.store(0, Ordering::Relaxed);
        self.disabled.store(false, Ordering::Relaxed);
    }
}

impl CompiledWebhook {
    /// Validates a definition and parses its templates. Every refusal names the field at fault.
    pub fn compile(
        id: WebhookId,
        group_id: GroupId,
        definition: WebhookDefinition,
    ) -> Result<CompiledWebhook, DefinitionError> {
        let dialect = definition.dialect.unwrap_or_default();
        let parse = |field: &str, source: &str| -> Result<FieldTemplate, DefinitionError> {
            Template::parse(source, dialect)
                .map(|template| FieldTemplate { field: field.into(), template })
                .map_err(|error| DefinitionError::new(field, error.to_string()))
        };

        if definition.event.len() > crate::domain::event::MAX_NAME_BYTES {
            return Err(DefinitionError::new("event", "must be at most 64 bytes"));
        }
        if definition.name.as_ref().is_some_and(|name| name.chars().count() > 200) {
            return Err(DefinitionError::new("name", "must be at most 200 characters"));
        }
        let bodies = [definition.json.is_some(), definition.form.is_some(), definition.body.is_some()];
        if bodies.iter().filter(|present| **present).count() > 1 {
            return Err(DefinitionError::new("json", "json, form and body are mutually exclusive: give at most one"));
        }

        let url = parse("url", &definition.url)?;
        validate_url(&url.template)?;

        let mut devices = Vec::new();
        if let Some(device) = &definition.device_id {
            devices.push(DeviceId::parse(device).map_err(|error| DefinitionError::new("deviceID", error.to_string()))?);
        }
        for (index, device) in definition.devices.iter().flatten().enumerate() {
            let device = DeviceId::parse(device)
                .map_err(|error| DefinitionError::new(format!("x-devices.{index}"), error.to_string()))?;
            if !devices.contains(&device) {
                devices.push(device);
            }
        }

        let json = match &definition.json {
            None => None,
            Some(JsonField::Template(source)) => Some(CompiledJson::Text(parse("json", source)?)),
            Some(JsonField::Object(map)) => {
                Some(CompiledJson::Value(compile_json(&Value::Object(map.clone()), "json", dialect)?))
            }
        };
        let form = definition.form.as_ref().map(|map| compile_pairs(map, "form", &parse)).transpose()?;
        let query =
            definition.query.as_ref().map(|map| compile_pairs(map, "query", &parse)).transpose()?.unwrap_or_default();
        let body = definition.body.as_deref().map(|source| parse("body", source)).transpose()?;
        let headers = definition
            .headers
            .as_ref()
            .map(|map| compile_pairs(map, "headers", &parse))
            .transpose()?
            .unwrap_or_default();
        for (name, _) in &headers {
            if name.template.is_static() && http::HeaderName::from_bytes(name.template.source().as_bytes()).is_err() {
                return Err(DefinitionError::new(&*name.field, "not a valid header name"));
            }
        }
        let auth = definition
            .auth
            .as_ref()
            .map(|auth| {
                Ok::<_, DefinitionError>((
                    parse("auth.username", &auth.username)?,
                    parse("auth.password", &auth.password)?,
                ))
            })
            .transpose()?;
        let response_template =
            definition.response_template.as_deref().map(|source| parse("responseTemplate", source)).transpose()?;
        let response_topic =
            definition.response_topic.as_deref().map(|source| parse("responseTopic", source)).transpose()?;
        let error_response_topic =
            definition.error_response_topic.as_deref().map(|source| parse("errorResponseTopic", source)).transpose()?;
        // Blynk's own limits are a Blynk webhook's defaults: one request a second, disabled after 10 failures.
        let is_blynk = dialect == Dialect::Blynk;
        let min_interval_ms = definition.min_interval_ms.unwrap_or(if is_blynk { BLYNK_MIN_INTERVAL_MS } else { 0 });
        if min_interval_ms > MAX_MIN_INTERVAL_MS {
            return Err(DefinitionError::new(
                "x-minIntervalMs",
                format!("must be at most {MAX_MIN_INTERVAL_MS} (a day)"),
            ));
        }
        let min_interval = (min_interval_ms > 0).then(|| Duration::from_millis(min_interval_ms));
        let retry = definition.retry.as_ref().map(RetryDefinition::policy).transpose()?;

        Ok(CompiledWebhook {
            id,
            group_id,
            devices,
            method: definition
                .request_type
                .unwrap_or(if is_blynk { RequestType::Get } else { RequestType::Post })
                .method(),
            url,
            json,
            form,
            query,
            body,
            headers,
            auth,
            // Blynk has no default fields: a Blynk webhook adds Particle's only when it says `"noDefaults": false`.
            add_defaults: !definition.no_defaults.unwrap_or(is_blynk),
            response_template,
            response_topic,
            error_response_topic,
            only_triggering_device: definition.only_triggering_device.unwrap_or(true),
            verify_tls: definition.reject_unauthorized.unwrap_or(true),
            signing: None,
            min_interval,
            quota_overflow: definition.quota_overflow.unwrap_or_default(),
            failure_limit: definition.failure_limit.unwrap_or(if is_blynk { BLYNK_FAILURE_LIMIT } else { 0 }),
            retry,
            runtime: Arc::default(),
            definition,
        })
    }

    /// The address the URL names when its host is a literal IP address written out in full (not from a template),
    /// so that the egress rules can refuse it when the webhook is created.
    pub fn literal_destination(&self) -> Option<std::net::IpAddr> {
        let template = &self.url.template;
        let prefix = template.static_prefix();
        let scheme_end = prefix.find("://")? + 3;
        let rest = &prefix[scheme_end..];
        let authority_end = rest.find(['/', '?', '#']);
        // With a template after the host, the host may go on in it: only a host that ends in the text counts.
        if authority_end.is_none() && !template.is_static() {
            return None;
        }
        let authority = &rest[..authority_end.unwrap_or(rest.len())];
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, host_port)| host_port);
        let host = match host_port.strip_prefix('[') {
            Some(bracketed) => bracketed.split_once(']')?.0,
            None => host_port.split(':').next()?,
        };
        host.parse().ok()
    }

    /// Whether an answer with this status is a success: 2xx, and for a Blynk webhook also 302 (Blynk counts 200
    /// and 302 as success).
    pub fn is_success_status(&self, status: u16) -> bool {
        (200..300).contains(&status) || (status == 302 && self.definition.dialect == Some(Dialect::Blynk))
    }

    /// True when an event of this name from this device triggers the webhook.
    pub fn matches(&self, name: &str, device_id: Option<&DeviceId>) -> bool {
        self.definition.is_enabled()
            && !self.runtime.is_disabled()
            && name.starts_with(self.definition.event.as_str())
            && (self.devices.is_empty() || device_id.is_some_and(|device| self.devices.contains(device)))
            && !crate::domain::event::is_hook_event(name)
    }
}

/// Refuses URLs whose static part is not `http://` or `https://` followed by a host, or that do not parse when
/// they have no template at all.
fn validate_url(url: &Template) -> Result<(), DefinitionError> {
    let prefix = url.static_prefix();
    let lower = prefix.to_ascii_lowercase();
    let rest = ["https://", "http://"].iter().find_map(|scheme| lower.strip_prefix(scheme));
    let Some(rest) = rest else {
        return Err(DefinitionError::new("url", "must start with http:// or https://"));
    };
    // The authority as written (templates included): userinfo there is never sent as credentials (hyper drops it)
    // and would show in logs, so it is refused with the way that works.
    let source = url.source();
    let after_scheme = source.find("://").map_or(source, |index| &source[index + 3..]);
    let authority = &after_scheme[..after_scheme.find(['/', '?', '#']).unwrap_or(after_scheme.len())];
    if authority.contains('@') {
        return Err(DefinitionError::new(
            "url",
            "must not hold credentials (user:password@): use `auth` for HTTP Basic authentication, or `headers`",
        ));
    }
    if url.is_static() {
        if rest.is_empty() || rest.starts_with('/') {
            return Err(DefinitionError::new("url", "has no host"));
        }
        let uri: http::Uri =
            url.source().parse().map_err(|error| DefinitionError::new("url", format!("not a valid URL: {error}")))?;
        if uri.host().is_none_or(str::is_empty) {
            return Err(DefinitionError::new("url", "has no host"));
        }
    }
    Ok(())
}

type Parse<'a> = dyn Fn(&str, &str) -> Result<FieldTemplate, DefinitionError> + 'a;

fn compile_pairs(
    map: &Map<String, Value>,
    field: &str,
    parse: &Parse<'_>,
) -> Result<Vec<(FieldTemplate, FieldTemplate)>, DefinitionError> {
    map.iter()
        .map(|(key, value)| {
            let path = format!("{field}.{key}");
            let value = match value {
                Value::String(text) => text.clone(),
                Value::Number(number) => number.to_string(),
                Value::Bool(flag) => flag.to_string(),
                _ => {
                    return Err(DefinitionError::new(path, "must be a string, a number or a boolean"));
                }
            };
            Ok((parse(&path, key)?, parse(&path, &value)?))
        })
        .collect()
}

fn compile_json(value: &Value, path: &str, dialect: Dialect) -> Result<JsonTemplate, DefinitionError> {
    let parse = |path: &str, source: &str| {
        Template::parse(source, dialect).map_err(|error| DefinitionError::new(path, error.to_string()))
    };
    Ok(match value {
        Value::String(source) => JsonTemplate::String(parse(path, source)?),
        Value::Array(items) => JsonTemplate::Array(
            items
                .iter()
                .enumerate()
                .map(|(index, item)| compile_json(item, &format!("{path}.{index}"), dialect))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => JsonTemplate::Object(
            map.iter()
                .map(|(key, item)| {
                    let child = format!("{path}.{key}");
                    Ok((parse(&child, key)?, compile_json(item, &child, dialect)?))
                })
                .collect::<Result<_, DefinitionError>>()?,
        ),
        literal => JsonTemplate::Literal(literal.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(json: &str) -> Result<CompiledWebhook, DefinitionError> {
        CompiledWebhook::compile(WebhookId::generate(), GroupId::generate(), WebhookDefinition::from_json(json)?)
    }

    #[test]
    fn a_particle_definition_round_trips_unchanged() {
        let text = r#"{"event":"temp","url":"https://example.com/x","requestType":"GET","mydevices":true,"query":{"a":"{{{b}}}"},"x-metadata":{"k":"v"}}"#;
        let definition = WebhookDefinition::from_json(text).unwrap();
        let exported = definition.to_json();
        assert_eq!(WebhookDefinition::from_json(&exported).unwrap(), definition);
        let as_value = |text: &str| serde_json::from_str::<Value>(text).unwrap();
        assert_eq!(as_value(&exported), as_value(text), "nothing added, nothing lost");
    }

    #[test]
    fn unknown_and_missing_fields_are_refused_by_name() {
        let error = WebhookDefinition::from_json(r#"{"event":"a","url":"http://x/","colour":"red"}"#).unwrap_err();
        assert_eq!(error.field, "colour");
        let error = WebhookDefinition::from_json(r#"{"event":"a"}"#).unwrap_err();
        assert_eq!(error.field, "url");
    }

    #[test]
    fn particle_aliases_and_read_only_fields_import_and_every_unknown_field_is_named_at_its_place() {
        let listed = "{\n  \"id\": \"5f0c\",\n  \"eventName\": \"temp\",\n  \"url\": \"https://x/\",\n  \"created_at\": \"2020-01-01T00:00:00.000Z\",\n  \"hookUrl\": \"https://api.particle.io/v1/webhooks/5f0c\",\n  \"integration_type\": \"Webhook\"\n}";
        let imported = WebhookDefinition::import(listed).unwrap();
        assert_eq!(imported.definition.event, "temp");
        assert_eq!(imported.ignored_fields, ["id", "created_at", "hookUrl", "integration_type"]);
        assert_eq!(imported.definition.to_json(), r#"{"event":"temp","url":"https://x/"}"#, "nothing of them stored");
        let error = WebhookDefinition::from_json(
            "{\"event\": \"a\", \"url\": \"http://x/\",\n \"reponseTopic\": \"t\", \"colour\": 1}",
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "reponseTopic: unknown field (line 2, column 2), did you mean `responseTopic`?; colour: unknown field (line \
             2, column 23)"
        );
    }

    #[test]
    fn blynk_webhooks_default_to_get_and_blynk_limits_and_count_302_as_success() {
        let blynk = compile(r#"{"event":"V1","url":"http://x/","x-dialect":"blynk"}"#).unwrap();
        assert_eq!(blynk.method, http::Method::GET);
        assert_eq!((blynk.min_interval, blynk.failure_limit), (Some(Duration::from_secs(1)), 10));
        assert!(!blynk.add_defaults, "Blynk has no default fields");
        assert!(blynk.is_success_status(200) && blynk.is_success_status(302) && !blynk.is_success_status(301));
        let overridden = compile(
            r#"{"event":"V1","url":"http://x/","x-dialect":"blynk","requestType":"POST","x-minIntervalMs":0,"x-failureLimit":0}"#,
        )
        .unwrap();
        assert_eq!(
            (overridden.method, overridden.min_interval, overridden.failure_limit),
            (http::Method::POST, None, 0)
        );
        let particle = compile(r#"{"event":"V1","url":"http://x/"}"#).unwrap();
        assert!(!particle.is_success_status(302));
    }

    #[test]
    fn a_literal_destination_is_found_only_when_the_host_is_written_out() {
        let destination =
            |url: &str| compile(&format!(r#"{{"event":"a","url":"{url}"}}"#)).unwrap().literal_destination();
        assert_eq!(destination("http://10.0.0.5/x"), Some("10.0.0.5".parse().unwrap()));
        assert_eq!(destination("http://127.0.0.1:8080"), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(destination("http://[::1]:80/{{{a}}}"), Some("::1".parse().unwrap()));
        assert_eq!(destination("http://10.0.0.5{{{a}}}/"), None);
        assert_eq!(destination("https://example.com/"), None);
    }

    #[test]
    fn json_form_and_body_are_mutually_exclusive() {
        let error = compile(r#"{"event":"a","url":"http://x/","json":{"a":"b"},"body":"x"}"#).unwrap_err();
        assert!(error.to_string().contains("mutually exclusive"), "{error}");
    }

    #[test]
    fn bad_urls_templates_methods_and_headers_are_refused_naming_the_field() {
        assert_eq!(compile(r#"{"event":"a","url":"ftp://x/"}"#).unwrap_err().field, "url");
        assert_eq!(compile(r#"{"event":"a","url":"{{{host}}}/x"}"#).unwrap_err().field, "url");
        assert_eq!(compile(r#"{"event":"a","url":"http:///x"}"#).unwrap_err().field, "url");
        assert!(compile(r#"{"event":"a","url":"http://x/{{{PARTICLE_DEVICE_ID}}}"}"#).is_ok());
        for url in ["http://user:pw@x/", "https://user@x:8443/p", "http://{{u}}:{{p}}@x/", "http://u:{{{p}}}@{{{h}}}/"]
        {
            let error = compile(&format!(r#"{{"event":"a","url":"{url}"}}"#)).unwrap_err();
            assert_eq!(error.field, "url", "{url}");
            assert!(error.to_string().contains("`auth`"), "{error}");
        }
        assert!(compile(r#"{"event":"a","url":"http://x/p?email=a@b.c"}"#).is_ok(), "an @ after the host is fine");
        assert_eq!(compile(r#"{"event":"a","url":"http://x/","body":"{{#a}}"}"#).unwrap_err().field, "body");
        assert_eq!(compile(r#"{"event":"a","url":"http://x/","form":{"k":"{{x"}}"#).unwrap_err().field, "form.k");
        assert_eq!(
            compile(r#"{"event":"a","url":"http://x/","headers":{"Bad Name":"v"}}"#).unwrap_err().field,
            "headers.Bad Name"
        );
        assert_eq!(
            WebhookDefinition::from_json(r#"{"event":"a","url":"http://x/","requestType":"FETCH"}"#).unwrap_err().field,
            "definition"
        );
        assert_eq!(compile(r#"{"event":"a","url":"http://x/","deviceID":"abc"}"#).unwrap_err().field, "deviceID");
    }

    #[test]
    fn matching_is_a_case_sensitive_prefix_with_an_optional_device_filter() {
        let device = DeviceId::generate();
        let other = DeviceId::generate();
        let webhook = compile(&format!(r#"{{"event":"temp","url":"http://x/","deviceID":"{device}"}}"#)).unwrap();
        assert!(webhook.matches("temperature", Some(&device)));
        assert!(!webhook.matches("Temp", Some(&device)));
        assert!(!webhook.matches("high_temp", Some(&device)));
        assert!(!webhook.matches("temp", Some(&other)));
        let everything = compile(r#"{"event":"","url":"http://x/"}"#).unwrap();
        assert!(everything.matches("anything", None));
        assert!(!everything.matches("hook-sent/anything", None));
        let disabled = compile(r#"{"event":"temp","url":"http://x/","disabled":true}"#).unwrap();
        assert!(!disabled.matches("temp", None));
    }

    #[test]
    fn policy_fields_round_trip_and_compile() {
        let text = r#"{"event":"a","url":"http://x/","x-minIntervalMs":250,"x-quotaOverflow":"drop","x-failureLimit":5,"x-retry":{"attempts":3,"backoff":[10,20],"jitter":false}}"#;
        let definition = WebhookDefinition::from_json(text).unwrap();
        let as_value = |text: &str| serde_json::from_str::<Value>(text).unwrap();
        assert_eq!(as_value(&definition.to_json()), as_value(text), "nothing added, nothing lost");
        let webhook = compile(text).unwrap();
        assert_eq!(webhook.min_interval, Some(Duration::from_millis(250)));
        assert_eq!(webhook.quota_overflow, QuotaOverflow::Drop);
        assert_eq!(webhook.failure_limit, 5);
        let retry = webhook.retry.unwrap();
        assert_eq!((retry.attempts, retry.jitter), (3, false));
        assert_eq!(retry.backoff, Backoff::Schedule(vec![Duration::from_millis(10), Duration::from_millis(20)]));

        let exponential = compile(r#"{"event":"a","url":"http://x/","x-retry":{"attempts":5,"base":100}}"#).unwrap();
        let retry = exponential.retry.unwrap();
        assert!(retry.jitter, "jitter is on by default");
        let cap = Duration::from_millis(crate::domain::policy::DEFAULT_RETRY_CAP_MS);
        assert_eq!(retry.backoff, Backoff::Exponential { base: Duration::from_millis(100), cap });

        let plain = compile(r#"{"event":"a","url":"http://x/","x-minIntervalMs":0}"#).unwrap();
        assert_eq!((plain.min_interval, plain.failure_limit, plain.retry), (None, 0, None), "no policy at all");
        assert_eq!(plain.quota_overflow, QuotaOverflow::Queue);
    }

    #[test]
    fn bad_policy_fields_are_refused_naming_the_field() {
        let field = |json: &str| compile(json).unwrap_err().field;
        let retry = |retry: &str| field(&format!(r#"{{"event":"a","url":"http://x/","x-retry":{retry}}}"#));
        assert_eq!(retry(r#"{"attempts":0,"backoff":[1]}"#), "x-retry.attempts");
        assert_eq!(retry(r#"{"attempts":21,"backoff":[1]}"#), "x-retry.attempts");
        assert_eq!(retry(r#"{"attempts":"3","backoff":[1]}"#), "x-retry.attempts");
        assert_eq!(retry(r#"{"backoff":[1]}"#), "x-retry.attempts");
        assert_eq!(retry(r#"{"attempts":3}"#), "x-retry.backoff");
        assert_eq!(retry(r#"{"attempts":3,"backoff":[]}"#), "x-retry.backoff");
        assert_eq!(retry(r#"{"attempts":3,"backoff":[1,-2]}"#), "x-retry.backoff.1");
        assert_eq!(retry(r#"{"attempts":3,"backoff":[1,86400001]}"#), "x-retry.backoff.1");
        assert_eq!(retry(r#"{"attempts":3,"backoff":[1],"base":5}"#), "x-retry.base");
        assert_eq!(retry(r#"{"attempts":3,"backoff":[1],"cap":5}"#), "x-retry.cap");
        assert_eq!(retry(r#"{"attempts":3,"base":0}"#), "x-retry.base");
        assert_eq!(retry(r#"{"attempts":3,"base":100,"cap":50}"#), "x-retry.cap");
        assert_eq!(retry(r#"{"attempts":3,"base":100,"jitter":"yes"}"#), "x-retry.jitter");
        assert_eq!(retry(r#"{"attempts":3,"base":100,"colour":"red"}"#), "x-retry.colour");
        assert_eq!(retry("[3]"), "x-retry");
        let error = compile(r#"{"event":"a","url":"http://x/","x-retry":{"attempts":30,"base":1}}"#).unwrap_err();
        assert_eq!(error.to_string(), "x-retry.attempts: must be from 1 to 20");
        assert_eq!(field(r#"{"event":"a","url":"http://x/","x-minIntervalMs":86400001}"#), "x-minIntervalMs");
        assert_eq!(
            WebhookDefinition::from_json(r#"{"event":"a","url":"http://x/","x-quotaOverflow":"later"}"#)
                .unwrap_err()
                .field,
            "definition"
        );
    }

    #[test]
    fn a_webhook_disabled_at_run_time_stops_matching_until_enabled() {
        let webhook = compile(r#"{"event":"temp","url":"http://x/","x-failureLimit":2}"#).unwrap();
        let runtime = &webhook.runtime;
        assert!(!runtime.record_success(), "nothing to reset");
        assert_eq!((runtime.record_failure(), runtime.record_failure()), (1, 2));
        assert!(runtime.disable("2 consecutive failures".into()));
        assert!(!runtime.disable("410 Gone from x".into()), "the first reason stays");
        assert!(!webhook.matches("temp", None));
        assert_eq!(runtime.disabled_reason().as_deref(), Some("2 consecutive failures"));
        runtime.enable();
        assert!(webhook.matches("temp", None));
        assert_eq!((runtime.consecutive_failures(), runtime.disabled_reason()), (0, None));
        runtime.record_failure();
        assert!(runtime.record_success(), "a success ends a run of failures");
        let stored = WebhookRuntime::new(3, Some("disabled by an admin".into()));
        assert!(stored.is_disabled() && stored.consecutive_failures() == 3);
    }
}
