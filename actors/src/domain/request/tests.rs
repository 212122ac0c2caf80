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
    let error =
        build_request(&webhook, &event, &render_context(&event, &DeviceProfile::default()), RenderLimits::default())
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
