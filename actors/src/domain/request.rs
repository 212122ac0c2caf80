//! Builds the HTTP request of one delivery from a compiled webhook and an event, as Particle does: the render
//! context, the default fields, `json`/`form`/`body`/GET query, headers, Basic auth and the User-Agent.
//!
//! Every template of one request renders against one [`RenderBudget`], with the default fields counted in it, so
//! the whole request is bounded whatever the webhook and the event: over the budget, building stops at once with a
//! [`RenderError`] naming the field and the budget, and the delivery fails with class `RENDER`.

use crate::domain::definition::{CompiledJson, CompiledWebhook, FieldTemplate, JsonTemplate};
use crate::domain::event::Event;
use crate::domain::ids::DeviceId;
use crate::domain::template::{BudgetExceeded, RenderBudget, RenderLimits};
use base64::Engine as _;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
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

/// Builds the template context of an event: the event data's keys when it is a JSON object, overlaid with the
/// predefined variables (which win, so that data cannot spoof `PARTICLE_DEVICE_ID`).
pub fn render_context(event: &Event, profile: &DeviceProfile) -> Value {
    // Only data that starts as an object can become one: other data is not parsed at all.
    let parsed = event.data.trim_start().starts_with('{').then(|| serde_json::from_str::<Value>(&event.data));
    let mut context = match parsed {
        Some(Ok(Value::Object(map))) => map,
        _ => Map::with_capacity(10),
    };
    let device_id = event.device_id.as_ref().map_or("api", DeviceId::as_str);
    let published_at = event.published_at();
    let event_json = event_json(event, device_id, &published_at, profile);
    let predefined = [
        ("PARTICLE_DEVICE_ID", device_id.to_owned()),
        ("PARTICLE_EVENT_NAME", event.name.clone()),
        ("PARTICLE_EVENT_VALUE", event.data.clone()),
        ("PARTICLE_PUBLISHED_AT", published_at.clone()),
        ("PARTICLE_EVENT_ID", event.id.to_string()),
        ("PRODUCT_ID", profile.product_id.clone()),
        ("PRODUCT_USER_ID", profile.owner.clone()),
        ("PRODUCT_VERSION", profile.firmware_version.clone()),
        ("PARTICLE_EVENT_BASE64", base64::engine::general_purpose::STANDARD.encode(&event_json)),
        ("PARTICLE_EVENT_JSON", event_json),
        // Particle's legacy names (from when it was Spark), still found in old webhooks: their twins' values.
        ("SPARK_CORE_ID", device_id.to_owned()),
        ("SPARK_EVENT_NAME", event.name.clone()),
        ("SPARK_EVENT_VALUE", event.data.clone()),
        ("SPARK_PUBLISHED_AT", published_at),
    ];
    for (key, value) in predefined {
        context.insert(key.to_owned(), Value::String(value));
    }
    Value::Object(context)
}

/// `PARTICLE_EVENT_JSON`: the whole event as one JSON object, as Particle's "the entire event (name, value,
/// published at, etc) as a JSON string". Its keys, in this order: `name`, `data`, `ttl`, `published_at`, `coreid`
/// (the device id, `api` for a test event), then only when the device has them `productID`, `version` (its
/// firmware version) and `userid` (its owner), as Particle's event stream names them.
fn event_json(event: &Event, device_id: &str, published_at: &str, profile: &DeviceProfile) -> String {
    let mut object = Map::with_capacity(8);
    object.insert("name".to_owned(), Value::String(event.name.clone()));
    object.insert("data".to_owned(), Value::String(event.data.clone()));
    object.insert("ttl".to_owned(), Value::from(event.ttl));
    object.insert("published_at".to_owned(), Value::String(published_at.to_owned()));
    object.insert("coreid".to_owned(), Value::String(device_id.to_owned()));
    let product_fields =
        [("productID", &profile.product_id), ("version", &profile.firmware_version), ("userid", &profile.owner)];
    for (key, value) in product_fields {
        if !value.is_empty() {
            object.insert(key.to_owned(), Value::String(value.clone()));
        }
    }
    Value::Object(object).to_string()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::definition::WebhookDefinition;
    use crate::domain::ids::{GroupId, WebhookId};

    fn build(definition: &str, name: &str, data: &str) -> (RenderedRequest, Event) {
        let webhook = CompiledWebhook::compile(
            WebhookId::generate(),
            GroupId::generate(),
            WebhookDefinition::from_json(definition).unwrap(),
        )
        .unwrap();
        let event = Event::new(GroupId::generate(), Some(DeviceId::generate()), name.into(), data.into(), 0);
        let context = render_context(&event, &DeviceProfile::default());
        (build_request(&webhook, &event, &context, RenderLimits::default()).unwrap(), event)
    }

    #[test]
    fn the_default_request_is_a_form_post_of_the_four_fields() {
        let (request, event) = build(r#"{"event":"demo","url":"http://sink/"}"#, "demo", "my data");
        assert_eq!(request.method, http::Method::POST);
        assert_eq!(request.headers[header::CONTENT_TYPE], "application/x-www-form-urlencoded");
        let expected = format!(
            "event=demo&data=my+data&published_at={}&coreid={}",
            event.published_at().replace(':', "%3A"),
            event.device_id.unwrap()
        );
        assert_eq!(request.body, expected);
        assert!(request.headers[header::USER_AGENT].to_str().unwrap().starts_with("hookwire/"));
    }

    #[test]
    fn the_attempt_log_masks_credentials_and_signatures_and_bounds_bodies() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic c2VjcmV0"));
        headers.insert("x-api-key", HeaderValue::from_static("k"));
        headers.insert("webhook-signature", HeaderValue::from_static("v1,abc"));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let logged: Value = serde_json::from_str(&headers_for_log(&headers, &LogMask::default())).unwrap();
        assert_eq!(logged["authorization"], "***");
        assert_eq!(logged["x-api-key"], "***");
        assert_eq!(logged["webhook-signature"], "***");
        assert_eq!(logged["content-type"], "application/json");
        // The same text as the JSON tree it replaced: a repeated header keeps its first place and its last value.
        let mut repeated = HeaderMap::new();
        repeated.append("x-a", HeaderValue::from_static("1"));
        repeated.append("x-b", HeaderValue::from_static("\"q\""));
        repeated.append("x-a", HeaderValue::from_static("2"));
        repeated.append("cookie", HeaderValue::from_static("c"));
        assert_eq!(headers_for_log(&repeated, &LogMask::default()), r#"{"x-a":"2","x-b":"\"q\"","cookie":"***"}"#);
        assert_eq!(body_for_log(&Bytes::from(vec![b'x'; 10_000])).len(), MAX_LOGGED_BODY_BYTES);
        assert_eq!(body_for_log(&Bytes::from_static(b"short")), "short");
    }

    #[test]
    fn every_name_that_suggests_a_credential_is_masked_and_the_operator_adds_more() {
        let mask = LogMask::new(&["Tenant".to_owned(), " ".to_owned()]);
        let mut headers = HeaderMap::new();
        for name in ["x-auth", "x-access", "x-pass", "x-session-id", "proxy-authorization", "x-tenant", "x-trace"] {
            headers.insert(HeaderName::from_static(name), HeaderValue::from_static("v"));
        }
        let logged: Value = serde_json::from_str(&headers_for_log(&headers, &mask)).unwrap();
        for name in ["x-auth", "x-access", "x-pass", "x-session-id", "proxy-authorization", "x-tenant"] {
            assert_eq!(logged[name], "***", "{name}");
        }
        assert_eq!(logged["x-trace"], "v");
        assert!(!LogMask::default().is_secret("x-tenant"));
        let old_row = r#"{"x-auth":"a","x-trace":"t","authorization":"***"}"#;
        assert_eq!(mask_logged_headers(old_row, &mask), r#"{"x-auth":"***","x-trace":"t","authorization":"***"}"#);
        assert_eq!(mask_logged_headers(r#"{"x-trace":"t"}"#, &mask), r#"{"x-trace":"t"}"#);
    }

    #[test]
    fn logged_urls_have_no_userinfo_and_mask_secret_query_values() {
        let mask = LogMask::default();
        assert_eq!(
            url_for_log("http://user:pw@127.0.0.1:8080/p/a?token=t1&api_key=k&plain=1&Access%5FCode=c&x#frag", &mask),
            "http://127.0.0.1:8080/p/a?token=***&api_key=***&plain=1&Access%5FCode=***&x"
        );
        assert_eq!(url_for_log("https://example.com", &mask), "https://example.com");
        assert_eq!(url_for_log("http://{{u}}:{{p}}@h/x?sig={{s}}", &mask), "http://h/x?sig={{s}}");
        assert_eq!(url_for_log("http://h/?signature={{s}}", &mask), "http://h/?signature=***");
        let request = RenderedRequest {
            method: http::Method::GET,
            uri: "http://h/?token=secret-value".parse().unwrap(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
        };
        assert!(!format!("{request:?}").contains("secret-value"));
    }

    #[test]
    fn a_url_that_renders_credentials_is_a_render_error_that_does_not_show_them() {
        let webhook = CompiledWebhook::compile(
            WebhookId::generate(),
            GroupId::generate(),
            WebhookDefinition::from_json(r#"{"event":"x","url":"http://{{{creds}}}example.com/"}"#).unwrap(),
        )
        .unwrap();
        let event = Event::new(GroupId::generate(), None, "x".into(), r#"{"creds":"user:pw@"}"#.into(), 0);
        let error = build_request(
            &webhook,
            &event,
            &render_context(&event, &DeviceProfile::default()),
            RenderLimits::default(),
        )
        .unwrap_err();
        assert_eq!(&*error.field, "url");
        assert!(error.reason.contains("auth") && !error.to_string().contains("pw"), "{error}");
    }

    #[test]
    fn predefined_variables_win_over_data_keys() {
        let (request, event) = build(
            r#"{"event":"x","url":"http://sink/","body":"{{{PARTICLE_DEVICE_ID}}}"}"#,
            "x",
            r#"{"PARTICLE_DEVICE_ID":"spoof"}"#,
        );
        assert_eq!(request.body, event.device_id.unwrap().to_string());
    }

    #[test]
    fn the_event_json_and_base64_are_the_whole_event_and_spark_names_are_their_twins() {
        let (request, event) = build(
            r#"{"event":"x","url":"http://sink/","body":"{{{PARTICLE_EVENT_JSON}}}|{{{PARTICLE_EVENT_BASE64}}}|{{{SPARK_EVENT_VALUE}}}|{{{SPARK_PUBLISHED_AT}}}"}"#,
            "x",
            "21.5",
        );
        let body = std::str::from_utf8(&request.body).unwrap();
        let parts: Vec<&str> = body.split('|').collect();
        let expected = serde_json::json!({
            "name": "x", "data": "21.5", "ttl": 60, "published_at": event.published_at(),
            "coreid": event.device_id.as_ref().unwrap().to_string(),
        });
        assert_eq!(serde_json::from_str::<Value>(parts[0]).unwrap(), expected);
        assert_eq!(base64::engine::general_purpose::STANDARD.decode(parts[1]).unwrap(), parts[0].as_bytes());
        assert_eq!(parts[2..], ["21.5", event.published_at().as_str()]);

        let profile = DeviceProfile { product_id: "4711".into(), firmware_version: "3".into(), ..Default::default() };
        let with_product: Value =
            serde_json::from_str(render_context(&event, &profile)["PARTICLE_EVENT_JSON"].as_str().unwrap()).unwrap();
        assert_eq!((&with_product["productID"], &with_product["version"]), (&Value::from("4711"), &Value::from("3")));
        assert!(with_product.get("userid").is_none(), "product fields only when set");
    }

    #[test]
    fn a_blynk_request_has_a_body_only_with_a_content_type() {
        let blynk = r#""x-dialect":"blynk","requestType":"POST","body":"v=/pin/""#;
        let (without, _) = build(&format!(r#"{{"event":"V1","url":"http://sink/",{blynk}}}"#), "V1", "7");
        assert!(without.body.is_empty() && !without.headers.contains_key(header::CONTENT_TYPE));
        let (with, _) = build(
            &format!(r#"{{"event":"V1","url":"http://sink/",{blynk},"headers":{{"Content-Type":"text/plain"}}}}"#),
            "V1",
            "7",
        );
        assert_eq!(with.body, "v=7");
        let (defaults, _) =
            build(r#"{"event":"V1","url":"http://sink/","x-dialect":"blynk","requestType":"PUT"}"#, "V1", "7");
        assert!(defaults.body.is_empty(), "no Particle default form either");
    }

    #[test]
    fn get_has_no_body_and_puts_defaults_and_query_in_the_url() {
        let (request, _) = build(
            r#"{"event":"x","url":"http://sink/g?a=1","requestType":"GET","query":{"k":"{{{v}}}"}}"#,
            "x",
            r#"{"v":"a b"}"#,
        );
        assert!(request.body.is_empty());
        let query = request.uri.query().unwrap();
        assert!(query.starts_with("a=1&k=a+b&event=x&data="), "{query}");
    }

    #[test]
    fn a_json_string_template_with_defaults_must_render_to_json() {
        let webhook = CompiledWebhook::compile(
            WebhookId::generate(),
            GroupId::generate(),
            WebhookDefinition::from_json(r#"{"event":"x","url":"http://sink/","json":"{{{PARTICLE_EVENT_VALUE}}}"}"#)
                .unwrap(),
        )
        .unwrap();
        let event = Event::new(GroupId::generate(), None, "x".into(), "not json".into(), 0);
        let context = render_context(&event, &DeviceProfile::default());
        let error = build_request(&webhook, &event, &context, RenderLimits::default()).unwrap_err();
        assert_eq!(&*error.field, "json");
    }

    #[test]
    fn a_url_that_renders_without_a_host_is_a_render_error() {
        let webhook = CompiledWebhook::compile(
            WebhookId::generate(),
            GroupId::generate(),
            WebhookDefinition::from_json(r#"{"event":"x","url":"http://{{{h}}}/"}"#).unwrap(),
        )
        .unwrap();
        let event = Event::new(GroupId::generate(), None, "x".into(), "{}".into(), 0);
        let context = render_context(&event, &DeviceProfile::default());
        let error = build_request(&webhook, &event, &context, RenderLimits::default()).unwrap_err();
        assert_eq!(&*error.field, "url");
    }
}
