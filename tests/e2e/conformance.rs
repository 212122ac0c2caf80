//! Particle conformance: every case of `tests/conformance/particle/cases.json` (requests) and its
//! `response_cases` (events that answers become) runs against a real kernel and a real receiver.

use crate::support::is_iso8601_ms;
use futures::future::join_all;
use hookwire_tests::{FakeReceiver, RecordedRequest, Reply, TestKernel};
use serde_json::Value;
use std::time::Duration;

const CASES: &str = include_str!("../conformance/particle/cases.json");

/// What a case's placeholders stand for.
struct Names {
    sink: String,
    device_id: String,
    other_device_id: String,
}

impl Names {
    fn substitute(&self, text: &str) -> String {
        text.replace("http://SINK", &self.sink)
            .replace("$OTHER_DEVICE_ID", &self.other_device_id)
            .replace("$DEVICE_ID", &self.device_id)
    }

    fn substitute_json(&self, value: &Value) -> Value {
        match value {
            Value::String(text) => Value::String(self.substitute(text)),
            Value::Array(items) => Value::Array(items.iter().map(|item| self.substitute_json(item)).collect()),
            Value::Object(map) => Value::Object(
                map.iter().map(|(key, item)| (self.substitute(key), self.substitute_json(item))).collect(),
            ),
            other => other.clone(),
        }
    }

    /// Compares an expected value (with `$TS` and `$EVENT_ID` wildcards) to an actual one.
    fn value_matches(&self, expected: &str, actual: &str) -> bool {
        match expected {
            "$TS" => is_iso8601_ms(actual),
            "$EVENT_ID" => !actual.is_empty(),
            _ => self.substitute(expected) == actual,
        }
    }

    fn json_matches(&self, expected: &Value, actual: &Value) -> bool {
        match (expected, actual) {
            (Value::String(expected), Value::String(actual)) => self.value_matches(expected, actual),
            (Value::Object(expected), Value::Object(actual)) => {
                expected.len() == actual.len()
                    && expected
                        .iter()
                        .all(|(key, value)| actual.get(key).is_some_and(|actual| self.json_matches(value, actual)))
            }
            (Value::Array(expected), Value::Array(actual)) => {
                expected.len() == actual.len() && expected.iter().zip(actual).all(|(e, a)| self.json_matches(e, a))
            }
            (expected, actual) => expected == actual,
        }
    }

    /// Compares decoded key/value pairs in any order.
    fn pairs_match(&self, expected: &Value, actual: &[(String, String)]) -> Result<(), String> {
        let expected: Vec<(String, String)> = expected
            .as_array()
            .expect("pairs")
            .iter()
            .map(|pair| (pair[0].as_str().expect("key").to_owned(), pair[1].as_str().expect("value").to_owned()))
            .collect();
        let mut unmatched: Vec<&(String, String)> = actual.iter().collect();
        for (key, value) in &expected {
            let position = unmatched
                .iter()
                .position(|(actual_key, actual_value)| actual_key == key && self.value_matches(value, actual_value));
            match position {
                Some(position) => {
                    unmatched.remove(position);
                }
                None => return Err(format!("missing {key}={value} in {actual:?}")),
            }
        }
        if unmatched.is_empty() { Ok(()) } else { Err(format!("unexpected pairs {unmatched:?}")) }
    }
}

fn check_request(names: &Names, expect: &Value, request: &RecordedRequest) -> Result<(), String> {
    if let Some(method) = expect.get("method").and_then(Value::as_str)
        && request.method != method
    {
        return Err(format!("method {} instead of {method}", request.method));
    }
    if let Some(path) = expect.get("path").and_then(Value::as_str) {
        let path = names.substitute(path);
        if request.path != path {
            return Err(format!("path {} instead of {path}", request.path));
        }
    }
    for (name, value) in expect.get("headers").and_then(Value::as_object).into_iter().flatten() {
        let expected = value.as_str().expect("header value");
        match request.header(name) {
            Some(actual) if names.value_matches(expected, actual) => {}
            actual => return Err(format!("header {name}: {actual:?} instead of {expected}")),
        }
    }
    if let Some(form) = expect.get("form") {
        names.pairs_match(form, &request.form()).map_err(|error| format!("form: {error}"))?;
    }
    if let Some(query) = expect.get("query") {
        names.pairs_match(query, &request.query_pairs()).map_err(|error| format!("query: {error}"))?;
    }
    if let Some(json) = expect.get("json") {
        let actual: Value =
            serde_json::from_slice(&request.body).map_err(|error| format!("body is not JSON: {error}"))?;
        if !names.json_matches(json, &actual) {
            return Err(format!("json {actual} instead of {json}"));
        }
    }
    if let Some(body) = expect.get("body").and_then(Value::as_str) {
        let body = names.substitute(body);
        if request.text() != body {
            return Err(format!("body {:?} instead of {body:?}", request.text()));
        }
    }
    Ok(())
}

async fn run_request_case(kernel: &TestKernel, case: &Value) -> Result<(), String> {
    let receiver = FakeReceiver::start().await;
    let fixture = kernel.fixture().await;
    let (other_device_id, _) = fixture.another_device().await;
    let names = Names { sink: receiver.base_url.clone(), device_id: fixture.device_id.clone(), other_device_id };
    let webhook = names.substitute_json(&case["webhook"]);
    fixture
        .admin
        .create_webhook(fixture.group_id.clone(), webhook.to_string())
        .await
        .map_err(|error| format!("create: {error}"))?;
    let publish = &case["publish"];
    let data = publish["data"].as_str().unwrap_or_default();
    kernel
        .device(&fixture.device_token)
        .await
        .publish(publish["name"].as_str().expect("name"), data)
        .await
        .map_err(|error| format!("publish: {error}"))?;
    let expect = &case["expect"];
    if expect.get("no_request").and_then(Value::as_bool) == Some(true) {
        let requests = receiver.wait_for(1, Duration::from_secs(2)).await;
        return if requests.is_empty() { Ok(()) } else { Err(format!("expected no request, got {requests:?}")) };
    }
    let requests = receiver.wait_for(1, Duration::from_secs(10)).await;
    let request = requests.first().ok_or("no request arrived within 10 s")?;
    check_request(&names, expect, request)
}

async fn run_response_case(kernel: &TestKernel, case: &Value) -> Result<(), String> {
    let receiver = FakeReceiver::start().await;
    let respond = &case["respond"];
    let body = match respond.get("body_repeat") {
        Some(repeat) => repeat[0]
            .as_str()
            .expect("text")
            .repeat(usize::try_from(repeat[1].as_u64().expect("count")).expect("count")),
        None => respond["body"].as_str().unwrap_or_default().to_owned(),
    };
    let status = u16::try_from(respond["status"].as_u64().expect("status")).expect("status");
    receiver.reply_with(Reply { status, body: body.into(), ..Reply::default() });
    let fixture = kernel.fixture().await;
    let names =
        Names { sink: receiver.base_url.clone(), device_id: fixture.device_id.clone(), other_device_id: String::new() };
    fixture
        .admin
        .create_webhook(fixture.group_id.clone(), names.substitute_json(&case["webhook"]).to_string())
        .await
        .map_err(|error| format!("create: {error}"))?;
    let mut session =
        kernel.device(&fixture.device_token).await.open_session().await.map_err(|error| error.to_string())?;
    let listen = names.substitute(case["listen"].as_str().expect("listen"));
    session.subscribe(listen.clone()).await.map_err(|error| error.to_string())?;
    let publish = &case["publish"];
    session
        .publish(publish["name"].as_str().expect("name"), publish["data"].as_str().unwrap_or_default())
        .await
        .map_err(|error| format!("publish: {error}"))?;

    let expected = case["expect_events"].as_array().expect("expect_events");
    let forbidden: Vec<String> = case
        .get("forbid_events")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|name| names.substitute(name.as_str().expect("name")))
        .collect();
    let mut received = Vec::new();
    // Collect until every expected event came, then a little longer to catch forbidden or extra ones.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut settle_until = None;
    loop {
        let until = settle_until.unwrap_or(deadline);
        match tokio::time::timeout_at(until, session.next_event()).await {
            Ok(Ok(Some(event))) if event.name.starts_with(&listen) => received.push(event),
            Ok(Ok(Some(_))) => {}
            Ok(other) => return Err(format!("session ended: {other:?}")),
            Err(_) => break,
        }
        if settle_until.is_none() && received.len() >= expected.len() {
            settle_until = Some(tokio::time::Instant::now() + Duration::from_millis(300));
        }
    }
    if let Some(event) =
        received.iter().find(|event| forbidden.iter().any(|name| event.name.starts_with(name.as_str())))
    {
        return Err(format!("forbidden event {}", event.name));
    }
    if received.len() != expected.len() {
        let names: Vec<&str> = received.iter().map(|event| event.name.as_str()).collect();
        return Err(format!("expected {} events, received {names:?}", expected.len()));
    }
    for (expected, event) in expected.iter().zip(&received) {
        let name = names.substitute(expected["name"].as_str().expect("name"));
        if event.name != name {
            return Err(format!("event {} instead of {name}", event.name));
        }
        if let Some(data) = expected.get("data").and_then(Value::as_str)
            && event.data != data
        {
            return Err(format!("{name}: data {:?} instead of {data:?}", event.data));
        }
        if let Some(length) = expected.get("data_len").and_then(Value::as_u64)
            && event.data.len() as u64 != length
        {
            return Err(format!("{name}: {} bytes instead of {length}", event.data.len()));
        }
        if let Some(part) = expected.get("data_contains").and_then(Value::as_str)
            && !event.data.contains(part)
        {
            return Err(format!("{name}: {:?} does not contain {part:?}", event.data));
        }
    }
    Ok(())
}

fn report(kind: &str, cases: &[Value], outcomes: Vec<Result<(), String>>) {
    let failures: Vec<String> = cases
        .iter()
        .zip(outcomes)
        .filter_map(|(case, outcome)| {
            outcome.err().map(|error| format!("  {}: {error}", case["name"].as_str().unwrap_or("?")))
        })
        .collect();
    assert!(failures.is_empty(), "{} of {} {kind} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_particle_request_case_produces_the_documented_request() {
    let suite: Value = serde_json::from_str(CASES).unwrap();
    let cases = suite["cases"].as_array().unwrap();
    assert!(cases.len() >= 21);
    let kernel = TestKernel::spawn().await;
    let outcomes = join_all(cases.iter().map(|case| run_request_case(&kernel, case))).await;
    report("request", cases, outcomes);
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_particle_response_case_produces_the_documented_events() {
    let suite: Value = serde_json::from_str(CASES).unwrap();
    let cases = suite["response_cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    let kernel = TestKernel::spawn().await;
    let outcomes = join_all(cases.iter().map(|case| run_response_case(&kernel, case))).await;
    report("response", cases, outcomes);
    kernel.stop().await;
}
