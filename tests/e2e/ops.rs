//! Operating the server: gRPC health and reflection, so that load balancers and grpcurl work out of the box.

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
