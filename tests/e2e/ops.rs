//! Operating the server: gRPC health and reflection, so that load balancers and grpcurl work out of the box, and
//! the Prometheus metrics endpoint.

use crate::support::{http_get, sample};
use hookwire_tests::TestKernel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_every_service_serving_and_reflection_lists_them() {
    let kernel = TestKernel::spawn().await;
    let channel = tonic::transport::Endpoint::from_shared(kernel.endpoint.clone()).unwrap().connect().await.unwrap();
    let services = [
        "hookwire.v1.DeviceService",
        "hookwire.v1.GroupService",
        "hookwire.v1.DeviceAdminService",
        "hookwire.v1.WebhookService",
        "hookwire.v1.EventService",
        "hookwire.v1.DeliveryService",
        "hookwire.v1.TokenService",
    ];

    let mut health = HealthClient::new(channel.clone());
    for service in std::iter::once("").chain(services) {
        let status = health.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner().status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }

    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    let response = responses.message().await.unwrap().expect("a reflection answer");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer {response:?}");
    };
    let listed: Vec<String> = list.service.into_iter().map(|service| service.name).collect();
    for service in services.iter().chain(&["grpc.health.v1.Health"]) {
        assert!(listed.iter().any(|name| name == service), "{service} missing from {listed:?}");
    }

    // Reflection also serves the descriptors, which is what lets grpcurl call the services.
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol("hookwire.v1.DeviceService".into())),
    };
    let mut responses = ServerReflectionClient::new(
        tonic::transport::Endpoint::from_shared(kernel.endpoint.clone()).unwrap().connect().await.unwrap(),
    )
    .server_reflection_info(tokio_stream::iter([request]))
    .await
    .unwrap()
    .into_inner();
    let response = responses.message().await.unwrap().expect("a reflection answer");
    assert!(
        matches!(response.message_response, Some(MessageResponse::FileDescriptorResponse(ref files)) if !files.file_descriptor_proto.is_empty()),
        "{response:?}"
    );
    kernel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_events_and_attempts_by_host_outcome_and_class_and_show_host_state() {
    let kernel = TestKernel::spawn_with(|settings| settings.metrics_listen = Some(([127, 0, 0, 1], 0).into())).await;
    let metrics_url = kernel.metrics_url.clone().expect("a metrics endpoint");
    let healthy = hookwire_tests::FakeReceiver::start().await;
    healthy.respond(200, "ok");
    let failing = hookwire_tests::FakeReceiver::start().await;
    failing.respond(503, "down");
    let fixture = kernel.fixture().await;
    fixture.webhook(serde_json::json!({"event": "ok", "url": healthy.base_url})).await;
    fixture.webhook(serde_json::json!({"event": "bad", "url": failing.base_url})).await;
    let mut session = kernel.device(&fixture.device_token).await.open_session().await.unwrap();
    session.subscribe(format!("{}/hook-", fixture.device_id)).await.unwrap();
    crate::support::sync(&mut session).await;

    for _ in 0..2 {
        session.publish("ok", "x").await.unwrap();
        crate::support::event_named(&mut session, &format!("{}/hook-response/ok/0", fixture.device_id)).await;
    }
    session.publish("bad", "x").await.unwrap();
    crate::support::event_named(&mut session, &format!("{}/hook-error/bad/0", fixture.device_id)).await;
    session.publish("unmatched", "x").await.unwrap();
    crate::support::sync(&mut session).await;

    let (status, text) = http_get(&metrics_url).await;
    assert_eq!(status, "HTTP/1.0 200 OK", "{text}");
    assert_eq!(sample(&text, "hookwire_events_total"), Some(4.0), "{text}");
    let (ok_host, bad_host) = (healthy.base_url.as_str(), failing.base_url.as_str());
    let attempts = |host: &str, outcome: &str, class: &str| {
        sample(&text, &format!("hookwire_attempts_total{{host=\"{host}\",outcome=\"{outcome}\",class=\"{class}\"}}"))
    };
    assert_eq!(attempts(ok_host, "success", ""), Some(2.0), "{text}");
    assert_eq!(attempts(ok_host, "failure", "http_5xx"), Some(0.0), "{text}");
    assert_eq!(attempts(bad_host, "failure", "http_5xx"), Some(1.0), "{text}");
    assert_eq!(attempts(bad_host, "success", ""), Some(0.0), "{text}");
    let count = |host: &str| sample(&text, &format!("hookwire_attempt_duration_seconds_count{{host=\"{host}\"}}"));
    assert_eq!((count(ok_host), count(bad_host)), (Some(2.0), Some(1.0)), "{text}");
    for host in [ok_host, bad_host] {
        assert_eq!(sample(&text, &format!("hookwire_host_sleeping{{host=\"{host}\"}}")), Some(0.0), "{text}");
        assert_eq!(sample(&text, &format!("hookwire_host_in_flight{{host=\"{host}\"}}")), Some(0.0), "{text}");
    }
    let window_failures = format!("hookwire_host_window_failures{{host=\"{bad_host}\"}}");
    assert_eq!(sample(&text, &window_failures), Some(1.0), "{text}");
    assert_eq!(sample(&text, "hookwire_device_sessions"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "hookwire_host_actors"), Some(2.0), "{text}");
    assert!(sample(&text, "hookwire_journal_commit_duration_seconds_count").is_some_and(|n| n >= 1.0), "{text}");
    assert!(text.contains("# HELP hookwire_attempts_total Delivery attempts by destination host"), "{text}");

    let (status, _) = http_get(&metrics_url.replace("/metrics", "/other")).await;
    assert_eq!(status, "HTTP/1.0 404 Not Found");
    kernel.stop().await;
}
