//! What users of Particle, Blynk and Mainflux bring with them works unchanged (issue 15), and the first hour's
//! server-side dead ends are gone: each test here is a case written from those systems' own documents.

use crate::support::{event_named, sync};
use hookwire_client::Error;
use hookwire_client::proto;
use hookwire_tests::{FakeReceiver, TestKernel};
use serde_json::{Value, json};
use std::time::Duration;
use tonic::Code;

fn refusal<T: std::fmt::Debug>(result: Result<T, Error>) -> (Code, String) {
    match result.expect_err("the call must be refused") {
        Error::Status(status) => (status.code(), status.message().to_owned()),
        other => panic!("expected a status, got {other:?}"),
    }
}

/// Particle: "`PARTICLE_EVENT_JSON`: the entire event (name, value, published at, etc) as a JSON string", and
/// `PARTICLE_EVENT_BASE64` the same Base64-encoded; the legacy `SPARK_` names are their `PARTICLE_` twins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn particle_event_json_and_base64_are_the_whole_event_and_spark_names_still_render() {
    use base64::Engine as _;
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start().await;
    let fixture = kernel.fixture().await;
    let update = proto::UpdateDeviceRequest {
        id: fixture.device_id.clone(),
        product_id: Some("4711".into()),
        firmware_version: Some("3".into()),
        ..Default::default()
    };
    fixture.admin.update_device(update).await.unwrap();
    fixture
        .webhook(json!({
            "event": "reading",
            "url": receiver.base_url,
            "body": "{{{PARTICLE_EVENT_JSON}}}",
            "headers": {
                "X-Event-Base64": "{{{PARTICLE_EVENT_BASE64}}}",
                "X-Spark": "{{{SPARK_EVENT_VALUE}}}|{{{SPARK_PUBLISHED_AT}}}",
                "X-Particle": "{{{PARTICLE_EVENT_VALUE}}}|{{{PARTICLE_PUBLISHED_AT}}}"
            }
        }))
        .await;
    kernel.device(&fixture.device_token).await.publish("reading", "21.5").await.unwrap();

    let request = receiver.first_request().await;
    let event = request.json();
    let published_at = event["published_at"].as_str().expect("published_at").to_owned();
    assert!(crate::support::is_iso8601_ms(&published_at), "{event}");
    assert_eq!(
        event,
        json!({"name": "reading", "data": "21.5", "ttl": 60, "published_at": published_at,
               "coreid": fixture.device_id, "productID": "4711", "version": "3"}),
        "the whole event; product fields only when set"
    );
    let base64 = request.header("x-event-base64").expect("the Base64 header");
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(base64).unwrap(), request.body);
    assert_eq!(request.header("x-spark"), request.header("x-particle"));
    assert_eq!(request.header("x-spark"), Some(format!("21.5|{published_at}").as_str()));
    kernel.stop().await;
}

/// A webhook as Particle's API lists it, with the alias of Particle's reference example (`eventName`) and the
/// read-only fields its API adds, creates as it is; the answer names what was ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_as_particles_api_lists_it_creates_and_the_answer_names_the_ignored_fields() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start().await;
    let fixture = kernel.fixture().await;
    let listed = format!(
        r#"{{
  "id": "5a0e3b7ac5a3e1c8b84f2e10",
  "eventName": "temp",
  "url": "{}/particle",
  "requestType": "POST",
  "created_at": "2017-11-16T22:05:14.521Z",
  "hookUrl": "https://api.particle.io/v1/webhooks/5a0e3b7ac5a3e1c8b84f2e10",
  "integration_type": "Webhook",
  "noDefaults": false
}}"#,
        receiver.base_url
    );
    let created = fixture.admin.create_webhook(&fixture.group_id, listed).await.unwrap();
    assert_eq!(created.ignored_fields, ["id", "created_at", "hookUrl", "integration_type"]);
    assert_eq!(created.event, "temp");
    let stored: Value = serde_json::from_str(&created.definition_json).unwrap();
    assert!(stored.get("id").is_none() && stored.get("hookUrl").is_none(), "read-only fields are not stored");
    assert!(fixture.admin.get_webhook(&created.id).await.unwrap().ignored_fields.is_empty(), "said once");

    kernel.device(&fixture.device_token).await.publish("temperature", "20").await.unwrap();
    assert_eq!(receiver.first_request().await.path, "/particle");
    kernel.stop().await;
}

/// Every unknown field is named at once, at its line and column in the text as given, with a "did you mean".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_unknown_field_is_refused_at_once_at_its_place_with_a_suggestion() {
    let kernel = TestKernel::spawn().await;
    let fixture = kernel.fixture().await;
    let text = "{\n  \"event\": \"temp\",\n  \"url\": \"https://example.com/t\",\n  \"reponseTopic\": \"x\",\n  \"colour\": \"red\"\n}";
    let (code, message) = refusal(fixture.admin.create_webhook(&fixture.group_id, text).await);
    assert_eq!(code, Code::InvalidArgument);
    assert_eq!(
        message,
        "reponseTopic: unknown field (line 4, column 3), did you mean `responseTopic`?; colour: unknown field (line 5, \
         column 3)"
    );
    // In a batch, every refused definition is named.
    let batch = vec![
        r#"{"event": "a", "url": "https://example.com/", "evnt": "x"}"#.to_owned(),
        r#"{"event": "b", "url": "https://example.com/"}"#.to_owned(),
        r#"{"event": "c", "url": "https://example.com/", "deviceId": "x"}"#.to_owned(),
    ];
    let (code, message) = refusal(fixture.admin.batch_create_webhooks(&fixture.group_id, batch).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(
        message.contains("webhooks[0].evnt: unknown field (line 1, column 47), did you mean `event`?"),
        "{message}"
    );
    assert!(message.contains("webhooks[2].deviceId: unknown field") && message.contains("`deviceID`"), "{message}");
    assert!(fixture.admin.list_webhooks(&fixture.group_id, None).await.unwrap().is_empty(), "all or nothing");
    kernel.stop().await;
}

/// Product firmware subscribes to `<device id>/hook-response/<event name>`: with a 64-byte event name, the
/// longest Particle allows, that prefix must be accepted and the answer must arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firmware_subscribes_to_its_own_hook_response_for_an_event_name_of_64_bytes() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start().await;
    receiver.respond(200, "sunny");
    let fixture = kernel.fixture().await;
    let name = "weather_forecast_for_the_greenhouse_in_the_north_field_section_7";
    assert_eq!(name.len(), 64);
    fixture.webhook(json!({"event": name, "url": receiver.base_url})).await;
    let mut session = kernel.device(&fixture.device_token).await.open_session().await.unwrap();
    session.subscribe(format!("{}/hook-response/{name}", fixture.device_id)).await.unwrap();
    sync(&mut session).await;
    session.publish(name, "go").await.unwrap();
    let answer = event_named(&mut session, &format!("{}/hook-response/{name}/0", fixture.device_id)).await;
    assert_eq!(answer.data, "sunny");
    kernel.stop().await;
}

/// Particle's Test button: the test event comes from device `api`, so its answer is `api/hook-response/...`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_button_answers_on_the_test_devices_topics() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start().await;
    receiver.respond(200, "pong");
    let fixture = kernel.fixture().await;
    let webhook_id = fixture.webhook(json!({"event": "ping", "url": receiver.base_url})).await;
    let mut events = fixture.admin.subscribe(&fixture.group_id, "api/").await.unwrap();
    let tested = fixture.admin.test_webhook(&webhook_id, None).await.unwrap();
    assert!(tested.succeeded, "{tested:?}");
    let event = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("the answer within 10 s")
        .unwrap()
        .expect("stream open");
    assert_eq!((event.name.as_str(), event.data.as_str()), ("api/hook-response/ping/0", "pong"));
    kernel.stop().await;
}

/// Blynk: `GET` by default, without Particle's default fields; a body only with a `Content-Type`; `200` and `302`
/// are success; one request a second and disabled after 10 failures in a row unless the `x-` fields say otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blynk_webhook_behaves_as_blynk_by_default() {
    let kernel = TestKernel::spawn().await;
    let receiver = FakeReceiver::start().await;
    receiver.respond(302, "");
    let fixture = kernel.fixture().await;
    let url = format!("{}/update?value=/pin/", receiver.base_url);
    let plain = fixture.webhook(json!({"event": "V1", "url": url, "x-dialect": "blynk"})).await;
    let tested = fixture.admin.test_webhook(&plain, Some("7".into())).await.unwrap();
    assert!(tested.succeeded, "302 is a success for Blynk: {tested:?}");
    assert_eq!(tested.attempt.as_ref().map(|attempt| attempt.request_method.as_str()), Some("GET"));
    let without_type = json!({"event": "V2", "url": receiver.base_url, "x-dialect": "blynk", "requestType": "PUT",
                              "body": "/pin/", "x-minIntervalMs": 0});
    let without_type = fixture.webhook(without_type).await;
    fixture.admin.test_webhook(&without_type, Some("8".into())).await.unwrap();
    let with_type = json!({"event": "V3", "url": receiver.base_url, "x-dialect": "blynk", "requestType": "PUT",
                           "body": "/pin/", "headers": {"Content-Type": "text/plain"}, "x-minIntervalMs": 0});
    let with_type = fixture.webhook(with_type).await;
    fixture.admin.test_webhook(&with_type, Some("9".into())).await.unwrap();
    let requests = receiver.wait_for(3, Duration::from_secs(10)).await;
    assert_eq!(requests[0].query.as_deref(), Some("value=7"));
    assert!(requests[1].body.is_empty(), "no Content-Type, no body: {:?}", requests[1].body);
    assert_eq!(requests[2].text(), "9");

    // One request a second: a second event at once is over the quota (dropped here, so that it shows at once).
    fixture
        .webhook(json!({"event": "V4", "url": receiver.base_url, "x-dialect": "blynk", "x-quotaOverflow": "drop"}))
        .await;
    let mut session = kernel.device(&fixture.device_token).await.open_session().await.unwrap();
    session.subscribe(format!("{}/hook-error/V4", fixture.device_id)).await.unwrap();
    sync(&mut session).await;
    session.publish("V4", "1").await.unwrap();
    session.publish("V4", "2").await.unwrap();
    let error = event_named(&mut session, &format!("{}/hook-error/V4/0", fixture.device_id)).await;
    assert!(error.data.contains("at most one request every 1000 ms"), "{}", error.data);

    // Ten failures in a row disable it (without a quota here, so that they come quickly).
    let failing = FakeReceiver::start().await;
    failing.respond(500, "down");
    let failing_id = fixture
        .webhook(json!({"event": "V5", "url": failing.base_url, "x-dialect": "blynk", "x-minIntervalMs": 0}))
        .await;
    for value in 0..10 {
        session.publish("V5", value.to_string()).await.unwrap();
    }
    failing.wait_for(10, Duration::from_secs(20)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let webhook = loop {
        let webhook = fixture.admin.get_webhook(&failing_id).await.unwrap();
        if webhook.auto_disabled || tokio::time::Instant::now() > deadline {
            break webhook;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((webhook.auto_disabled, webhook.disabled_reason.as_str()), (true, "10 consecutive failures"));
    kernel.stop().await;
}

/// A webhook whose URL names a literal address the egress rules refuse is refused when created, with the words
/// its deliveries would fail with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_naming_a_refused_address_is_refused_at_create_time() {
    let kernel = TestKernel::spawn().await;
    let fixture = kernel.fixture().await;
    let (code, message) =
        refusal(fixture.admin.create_webhook(&fixture.group_id, r#"{"event": "a", "url": "http://10.0.0.5/x"}"#).await);
    assert_eq!(code, Code::InvalidArgument);
    assert_eq!(
        message,
        "url: destination 10.0.0.5: 10.0.0.5 is in the blocked range 10.0.0.0/8 (allow it with --allow-destination)"
    );
    let (code, _) =
        refusal(fixture.admin.create_webhook(&fixture.group_id, r#"{"event": "a", "url": "http://[::1]:80/"}"#).await);
    assert_eq!(code, Code::InvalidArgument);
    // Allowed ranges (loopback, in the test kernel) and names, checked when they resolve, are accepted.
    fixture.webhook(json!({"event": "a", "url": "http://127.0.0.1:9/x"})).await;
    fixture.webhook(json!({"event": "a", "url": "http://{{{host}}}/x"})).await;
    kernel.stop().await;
}

/// Python's grpcio reflection client and other older tools speak reflection v1alpha only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_v1alpha_lists_the_services_beside_v1() {
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
    let kernel = TestKernel::spawn().await;
    let channel = tonic::transport::Endpoint::from_shared(kernel.endpoint.clone()).unwrap().connect().await.unwrap();
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("v1alpha is served")
        .into_inner();
    let response = responses.message().await.unwrap().expect("a reflection answer");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer {response:?}");
    };
    let listed: Vec<String> = list.service.into_iter().map(|service| service.name).collect();
    assert!(listed.iter().any(|name| name == "hookwire.v1.WebhookService"), "{listed:?}");
    kernel.stop().await;
}

/// Fetches `url` with a plain HTTP/1.0 GET and an `Accept` header; returns the head and the body.
async fn http_get(url: &str, accept: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = tokio::net::TcpStream::connect(authority).await.unwrap();
    let request = format!("GET {path} HTTP/1.0\r\nhost: {authority}\r\naccept: {accept}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    (head.to_ascii_lowercase(), body.to_owned())
}

/// `/metrics` answers each scraper in its format: Prometheus text 0.0.4 unless OpenMetrics is asked for. Every
/// family has `HELP` and `TYPE` under the name of its samples (what `promtool check metrics` wants), and every
/// documented family without a host label is there from the start (the per-host ones come with the first host).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_negotiate_the_format_and_every_documented_family_is_there_from_the_start() {
    let kernel = TestKernel::spawn_with(|settings| settings.metrics_listen = Some(([127, 0, 0, 1], 0).into())).await;
    let url = kernel.metrics_url.clone().expect("a metrics endpoint");

    let (head, text) = http_get(&url, "text/plain; version=0.0.4").await;
    assert!(head.contains("content-type: text/plain; version=0.0.4"), "{head}");
    assert!(!text.contains("# EOF"), "{text}");
    let declared: Vec<(&str, &str)> =
        text.lines().filter_map(|line| line.strip_prefix("# TYPE ")?.split_once(' ')).collect();
    for (name, kind) in &declared {
        assert!(text.contains(&format!("# HELP {name} ")), "{name} has no HELP:\n{text}");
        if *kind == "counter" {
            assert!(name.ends_with("_total"), "a counter is declared under its samples' name: {name}");
        }
    }
    for family in [
        "hookwire_events_total",
        "hookwire_deliveries_dropped_total",
        "hookwire_journal_commit_duration_seconds",
        "hookwire_journal_write_failures_total",
        "hookwire_journal_queue_depth",
        "hookwire_device_sessions",
        "hookwire_webhook_actors",
        "hookwire_host_actors",
    ] {
        assert!(declared.iter().any(|(name, _)| *name == family), "{family} missing:\n{text}");
    }
    for class in ["QUOTA", "DISABLED"] {
        let series = format!("hookwire_deliveries_dropped_total{{class=\"{class}\"}} 0");
        assert!(text.lines().any(|line| line == series), "{series} missing:\n{text}");
    }

    let (head, text) = http_get(&url, "application/openmetrics-text;version=1.0.0,text/plain;q=0.5").await;
    assert!(head.contains("content-type: application/openmetrics-text"), "{head}");
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    kernel.stop().await;
}
