//! Builds the HTTP request of one delivery from a compiled webhook and an event, as Particle does: the render
//! context, the default fields, `json`/`form`/`body`/GET query, headers, Basic auth and the User-Agent.

use crate::definition::{CompiledJson, CompiledWebhook, FieldTemplate, JsonTemplate};
use crate::event::Event;
use crate::ids::DeviceId;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value};
use std::sync::Arc;

/// The most bytes of a request or response body the attempt log keeps.
pub const MAX_LOGGED_BODY_BYTES: usize = 4096;

/// Header names whose values never reach the attempt log.
const SECRET_HEADER_WORDS: [&str; 7] = ["authorization", "cookie", "token", "secret", "key", "password", "signature"];

/// Headers as a JSON object for the attempt log, with the values of credentials and signatures masked. A header
/// sent more than once shows its last value, at the place of its first. Written straight to the string (no JSON
/// tree in between): it runs twice per attempt.
pub fn headers_for_log(headers: &HeaderMap) -> String {
    struct Logged<'a>(&'a HeaderMap);

    impl serde::Serialize for Logged<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_map(self.0.keys().map(|name| {
                let name = name.as_str();
                let shown = if SECRET_HEADER_WORDS.iter().any(|word| name.contains(word)) {
                    std::borrow::Cow::Borrowed("***")
                } else {
                    let last = self.0.get_all(name).iter().next_back().map_or(&b""[..], HeaderValue::as_bytes);
                    String::from_utf8_lossy(last)
                };
                (name, shown)
            }))
        }
    }

    serde_json::to_string(&Logged(headers)).unwrap_or_else(|_| "{}".to_owned())
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

/// A request ready to send.
#[derive(Debug, Clone)]
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

/// Builds the request for one delivery.
pub fn build_request(
    webhook: &CompiledWebhook,
    event: &Event,
    context: &Value,
) -> Result<RenderedRequest, RenderError> {
    let render = |template: &FieldTemplate| template.template.render(context);
    let is_get = webhook.method == http::Method::GET;
    let is_blynk = webhook.definition.dialect == Some(crate::definition::DialectName::Blynk);
    let mut headers = HeaderMap::new();
    headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));

    // Query string: the webhook's `query`, then for GET the form fields and the defaults.
    let mut query = form_urlencoded::Serializer::new(String::new());
    let mut has_query = false;
    let mut append_pairs = |pairs: &[(FieldTemplate, FieldTemplate)],
                            query: &mut form_urlencoded::Serializer<String>| {
        for (key, value) in pairs {
            query.append_pair(&render(key), &render(value));
            has_query = true;
        }
    };
    append_pairs(&webhook.query, &mut query);

    let mut body = Bytes::new();
    if is_get {
        if let Some(form) = &webhook.form {
            append_pairs(form, &mut query);
        }
        if webhook.add_defaults {
            for (key, value) in default_fields(event) {
                query.append_pair(key, &value);
                has_query = true;
            }
        }
    } else if let Some(json) = &webhook.json {
        body = render_json_body(json, webhook.add_defaults, event, context)?;
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    } else if let Some(template) = &webhook.body {
        body = Bytes::from(render(template));
    } else if webhook.form.is_some() || webhook.add_defaults {
        let mut form = form_urlencoded::Serializer::new(String::new());
        let mut names = Vec::new();
        for (key, value) in webhook.form.iter().flatten() {
            let key = render(key);
            form.append_pair(&key, &render(value));
            names.push(key);
        }
        if webhook.add_defaults {
            for (key, value) in default_fields(event) {
                if !names.iter().any(|name| name == key) {
                    form.append_pair(key, &value);
                }
            }
        }
        body = Bytes::from(form.finish());
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
    }

    if let Some((username, password)) = &webhook.auth {
        let credentials = format!("{}:{}", render(username), render(password));
        let value = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(credentials));
        let value =
            HeaderValue::try_from(value).map_err(|_| render_error(username, "rendered to an invalid header value"))?;
        headers.insert(header::AUTHORIZATION, value);
    }
    for (name, value) in &webhook.headers {
        let header_name = HeaderName::from_bytes(render(name).as_bytes())
            .map_err(|_| render_error(name, "rendered to an invalid header name"))?;
        let header_value = HeaderValue::try_from(render(value))
            .map_err(|_| render_error(value, "rendered to an invalid header value"))?;
        headers.insert(header_name, header_value);
    }

    // Blynk sends a body only with a content type (`json` and `form` set theirs; `body` needs one in `headers`).
    if is_blynk && !headers.contains_key(header::CONTENT_TYPE) {
        body = Bytes::new();
    }

    let mut url = render(&webhook.url);
    if has_query {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&query.finish());
    }
    let uri: http::Uri =
        url.parse().map_err(|error| render_error(&webhook.url, format!("not a valid URL: {error}")))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none_or(str::is_empty) {
        return Err(render_error(&webhook.url, "must be an http or https URL with a host"));
    }

    Ok(RenderedRequest { method: webhook.method.clone(), uri, headers, body })
}

fn render_json_body(
    json: &CompiledJson,
    add_defaults: bool,
    event: &Event,
    context: &Value,
) -> Result<Bytes, RenderError> {
    let mut value = match json {
        CompiledJson::Value(template) => render_json(template, context),
        CompiledJson::Text(template) => {
            let text = template.template.render(context);
            if !add_defaults {
                return Ok(Bytes::from(text));
            }
            serde_json::from_str(&text)
                .map_err(|error| render_error(template, format!("did not render to JSON: {error}")))?
        }
    };
    if add_defaults && let Value::Object(map) = &mut value {
        for (key, field) in default_fields(event) {
            map.entry(key).or_insert(Value::String(field));
        }
    }
    Ok(Bytes::from(serde_json::to_vec(&value).unwrap_or_default()))
}

fn render_json(template: &JsonTemplate, context: &Value) -> Value {
    match template {
        JsonTemplate::Literal(value) => value.clone(),
        JsonTemplate::String(template) => Value::String(template.render(context)),
        JsonTemplate::Array(items) => Value::Array(items.iter().map(|item| render_json(item, context)).collect()),
        JsonTemplate::Object(entries) => {
            Value::Object(entries.iter().map(|(key, item)| (key.render(context), render_json(item, context))).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::WebhookDefinition;
    use crate::ids::{GroupId, WebhookId};

    fn build(definition: &str, name: &str, data: &str) -> (RenderedRequest, Event) {
        let webhook = CompiledWebhook::compile(
            WebhookId::generate(),
            GroupId::generate(),
            WebhookDefinition::from_json(definition).unwrap(),
        )
        .unwrap();
        let event = Event::new(GroupId::generate(), Some(DeviceId::generate()), name.into(), data.into(), 0);
        let context = render_context(&event, &DeviceProfile::default());
        (build_request(&webhook, &event, &context).unwrap(), event)
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
        let logged: Value = serde_json::from_str(&headers_for_log(&headers)).unwrap();
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
        assert_eq!(headers_for_log(&repeated), r#"{"x-a":"2","x-b":"\"q\"","cookie":"***"}"#);
        assert_eq!(body_for_log(&Bytes::from(vec![b'x'; 10_000])).len(), MAX_LOGGED_BODY_BYTES);
        assert_eq!(body_for_log(&Bytes::from_static(b"short")), "short");
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
        let error = build_request(&webhook, &event, &render_context(&event, &DeviceProfile::default())).unwrap_err();
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
        let error = build_request(&webhook, &event, &render_context(&event, &DeviceProfile::default())).unwrap_err();
        assert_eq!(&*error.field, "url");
    }
}
