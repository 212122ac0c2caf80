//! Builds the HTTP request of one delivery from a compiled webhook and an event, as Particle does: the render
//! context, the default fields, `json`/`form`/`body`/GET query, headers, Basic auth and the User-Agent.
//!
//! Every template of one request renders against one [`RenderBudget`], with the default fields counted in it, so
//! the whole request is bounded whatever the webhook and the event: over the budget, building stops at once with a
//! [`RenderError`] naming the field and the budget, and the delivery fails with class `RENDER`.
//!
//! What the attempt log may show of a request (masked credentials, cut bodies) is in `log.rs`.

mod context;
mod log;
#[cfg(test)]
mod tests;

pub use context::{ContextNeeds, render_context, render_context_for};

pub use log::{
    DEFAULT_MASK_WORDS, LogMask, MASKED, MAX_LOGGED_BODY_BYTES, body_for_log, headers_for_log, mask_logged_headers,
    url_for_log,
};

use crate::domain::definition::{CompiledJson, CompiledWebhook, FieldTemplate, JsonTemplate};
use crate::domain::event::Event;
use crate::domain::ids::DeviceId;
use crate::domain::template::{BudgetExceeded, RenderBudget, RenderLimits};
use base64::Engine as _;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use std::sync::Arc;

/// The `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("hookwire/", env!("CARGO_PKG_VERSION"), " (+webhooks)");

/// What a device tells about itself to templates: the `PRODUCT_*` variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceProfile {
    /// The device.
    pub id: Option<DeviceId>,
    /// `PRODUCT_ID`.
    pub product_id: String,
    /// `PRODUCT_VERSION`.
    pub firmware_version: String,
    /// `PRODUCT_USER_ID`.
    pub owner: String,
}

/// A request ready to send. Its `Debug` shows the URL as logs do ([`url_for_log`]) and header names only, so a
/// request that reaches a log line never shows a credential.
#[derive(Clone)]
pub struct RenderedRequest {
    /// The method.
    pub method: http::Method,
    /// The absolute URL.
    pub uri: http::Uri,
    /// The headers.
    pub headers: HeaderMap,
    /// The body (empty for GET).
    pub body: Bytes,
}

impl std::fmt::Debug for RenderedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderedRequest")
            .field("method", &self.method)
            .field("uri", &url_for_log(&self.uri.to_string(), &LogMask::default()))
            .field("headers", &self.headers.keys().map(HeaderName::as_str).collect::<Vec<_>>())
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// Why a request could not be rendered: a delivery error of class `RENDER`, never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct RenderError {
    /// The webhook field whose rendering failed.
    pub field: Arc<str>,
    /// Why.
    pub reason: String,
}

fn render_error(field: &FieldTemplate, reason: impl Into<String>) -> RenderError {
    RenderError { field: field.field.clone(), reason: reason.into() }
}

/// The error of a request over its render budget, naming the field being written when it ran out.
fn over_budget(field: &str) -> impl FnOnce(BudgetExceeded) -> RenderError + '_ {
    move |over| RenderError { field: field.into(), reason: over.to_string() }
}

/// Renders one field's template against the request's budget.
fn render(template: &FieldTemplate, context: &Value, budget: &mut RenderBudget) -> Result<String, RenderError> {
    template.template.render(context, budget).map_err(over_budget(&template.field))
}

/// The four default fields, in Particle's order.
fn default_fields(event: &Event) -> [(&'static str, String); 4] {
    [
        ("event", event.name.clone()),
        ("data", event.data.clone()),
        ("published_at", event.published_at()),
        ("coreid", event.device_id.as_ref().map_or_else(|| "api".to_owned(), ToString::to_string)),
    ]
}

/// Builds the request for one delivery, within `limits` for the whole of it: every rendering spends one budget,
/// the default fields are counted in it, and no body or URL larger than `limits.max_bytes` comes out.
pub fn build_request(
    webhook: &CompiledWebhook,
    event: &Event,
    context: &Value,
    limits: RenderLimits,
) -> Result<RenderedRequest, RenderError> {
    let mut budget = RenderBudget::new(limits);
    let budget = &mut budget;
    let is_get = webhook.method == http::Method::GET;
    let is_blynk = webhook.definition.dialect == Some(crate::domain::template::Dialect::Blynk);
    let mut headers = HeaderMap::new();
    headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));

    // Query string: the webhook's `query`, then for GET the form fields and the defaults.
    let mut query = form_urlencoded::Serializer::new(String::new());
    let mut has_query = false;
    let mut append_pairs = |pairs: &[(FieldTemplate, FieldTemplate)],
                            query: &mut form_urlencoded::Serializer<String>,
                            budget: &mut RenderBudget|
     -> Result<(), RenderError> {
        for (key, value) in pairs {
            query.append_pair(&render(key, context, budget)?, &render(value, context, budget)?);
            has_query = true;
        }
        Ok(())
    };
    append_pairs(&webhook.query, &mut query, budget)?;

    let mut body = Bytes::new();
    if is_get {
        if let Some(form) = &webhook.form {
            append_pairs(form, &mut query, budget)?;
        }
        if webhook.add_defaults {
            for (key, value) in default_fields(event) {
                budget.spend_bytes(key.len() + value.len()).map_err(over_budget("query"))?;
                query.append_pair(key, &value);
                has_query = true;
            }
        }
    } else if let Some(json) = &webhook.json {
        body = render_json_body(json, webhook.add_defaults, event, context, budget)?;
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    } else if let Some(template) = &webhook.body {
        body = Bytes::from(render(template, context, budget)?);
    } else if webhook.form.is_some() || webhook.add_defaults {
        let mut form = form_urlencoded::Serializer::new(String::new());
        let mut names = Vec::new();
        for (key, value) in webhook.form.iter().flatten() {
            let rendered_key = render(key, context, budget)?;
            form.append_pair(&rendered_key, &render(value, context, budget)?);
            names.push(rendered_key);
        }
        if webhook.add_defaults {
            for (key, value) in default_fields(event) {
                if !names.iter().any(|name| name == key) {
                    budget.spend_bytes(key.len() + value.len()).map_err(over_budget("form"))?;
                    form.append_pair(key, &value);
                }
            }
        }
        body = Bytes::from(form.finish());
        // Percent-encoding may triple what was rendered: the body itself is held to the budget too.
        budget.check_total(body.len()).map_err(over_budget("form"))?;
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
    }

    if let Some((username, password)) = &webhook.auth {
        let credentials = format!("{}:{}", render(username, context, budget)?, render(password, context, budget)?);
        let value = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(credentials));
        let value =
            HeaderValue::try_from(value).map_err(|_| render_error(username, "rendered to an invalid header value"))?;
        headers.insert(header::AUTHORIZATION, value);
    }
    for (name, value) in &webhook.headers {
        let header_name = HeaderName::from_bytes(render(name, context, budget)?.as_bytes())
            .map_err(|_| render_error(name, "rendered to an invalid header name"))?;
        let header_value = HeaderValue::try_from(render(value, context, budget)?)
            .map_err(|_| render_error(value, "rendered to an invalid header value"))?;
        headers.insert(header_name, header_value);
    }

    // Blynk sends a body only with a content type (`json` and `form` set theirs; `body` needs one in `headers`).
    if is_blynk && !headers.contains_key(header::CONTENT_TYPE) {
        body = Bytes::new();
    }

    let mut url = render(&webhook.url, context, budget)?;
    if has_query {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&query.finish());
    }
    budget.check_total(url.len()).map_err(over_budget("url"))?;
    let uri: http::Uri =
        url.parse().map_err(|error| render_error(&webhook.url, format!("not a valid URL: {error}")))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none_or(str::is_empty) {
        return Err(render_error(&webhook.url, "must be an http or https URL with a host"));
    }
    // A template can render credentials into the URL; they would be dropped in silence (and show in logs).
    if uri.authority().is_some_and(|authority| authority.as_str().contains('@')) {
        return Err(render_error(
            &webhook.url,
            "rendered with credentials (user:password@), which are refused: use `auth`",
        ));
    }

    Ok(RenderedRequest { method: webhook.method.clone(), uri, headers, body })
}

fn render_json_body(
    json: &CompiledJson,
    add_defaults: bool,
    event: &Event,
    context: &Value,
    budget: &mut RenderBudget,
) -> Result<Bytes, RenderError> {
    let mut value = match json {
        CompiledJson::Value(template) => render_json(template, context, budget).map_err(over_budget("json"))?,
        CompiledJson::Text(template) => {
            let text = render(template, context, budget)?;
            if !add_defaults {
                return Ok(Bytes::from(text));
            }
            serde_json::from_str(&text)
                .map_err(|error| render_error(template, format!("did not render to JSON: {error}")))?
        }
    };
    if add_defaults && let Value::Object(map) = &mut value {
        for (key, field) in default_fields(event) {
            if !map.contains_key(key) {
                budget.spend_bytes(key.len() + field.len()).map_err(over_budget("json"))?;
                map.insert(key.to_owned(), Value::String(field));
            }
        }
    }
    let body = serde_json::to_vec(&value).unwrap_or_default();
    // Escaping in JSON strings may grow what was rendered: the body itself is held to the budget too.
    budget.check_total(body.len()).map_err(over_budget("json"))?;
    Ok(Bytes::from(body))
}

fn render_json(template: &JsonTemplate, context: &Value, budget: &mut RenderBudget) -> Result<Value, BudgetExceeded> {
    Ok(match template {
        JsonTemplate::Literal(value) => {
            // A literal is written as it is: its size counts (bounded by the definition's own size).
            budget.spend_bytes(literal_size(value))?;
            value.clone()
        }
        JsonTemplate::String(template) => Value::String(template.render(context, budget)?),
        JsonTemplate::Array(items) => {
            Value::Array(items.iter().map(|item| render_json(item, context, budget)).collect::<Result<_, _>>()?)
        }
        JsonTemplate::Object(entries) => Value::Object(
            entries
                .iter()
                .map(|(key, item)| Ok((key.render(context, budget)?, render_json(item, context, budget)?)))
                .collect::<Result<_, BudgetExceeded>>()?,
        ),
    })
}

/// The bytes a literal (number, boolean, null) takes in JSON.
fn literal_size(value: &Value) -> usize {
    match value {
        Value::Number(number) => number.to_string().len(),
        Value::Bool(true) | Value::Null => 4,
        Value::Bool(false) => 5,
        other => other.to_string().len(),
    }
}
