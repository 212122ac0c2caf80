use crate::domain::ids::{DeviceId, GroupId, WebhookId};
use crate::domain::policy::Backoff;
use std::time::Duration;

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
    assert_eq!((overridden.method, overridden.min_interval, overridden.failure_limit), (http::Method::POST, None, 0));
    let particle = compile(r#"{"event":"V1","url":"http://x/"}"#).unwrap();
    assert!(!particle.is_success_status(302));
}

#[test]
fn a_literal_destination_is_found_only_when_the_host_is_written_out() {
    let destination = |url: &str| compile(&format!(r#"{{"event":"a","url":"{url}"}}"#)).unwrap().literal_destination();
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
    for url in ["http://user:pw@x/", "https://user@x:8443/p", "http://{{u}}:{{p}}@x/", "http://u:{{{p}}}@{{{h}}}/"] {
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
        WebhookDefinition::from_json(r#"{"event":"a","url":"http://x/","x-quotaOverflow":"later"}"#).unwrap_err().field,
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
