//! The metrics endpoint: `GET /metrics` on `--metrics-listen` answers the Prometheus text exposition
//! (OpenMetrics) of [`hookwire_actors::metrics::Metrics`], with the scrape-time values (host states, queue depths,
//! sessions) read first. Any other path is 404. Plain HTTP/1.1; put it on a private address.

use bytes::Bytes;
use hookwire_actors::supervisor::Services;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::Arc;
use tokio::net::TcpListener;

/// The content type of the OpenMetrics text format, which Prometheus reads.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Connections the metrics endpoint serves at once; more wait in the listen backlog. A scraper needs one.
const MAX_CONNECTIONS: usize = 64;

/// Time a metrics client has to send its request's headers.
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves metrics on `listener` until the task is aborted.
pub async fn serve(listener: TcpListener, services: Arc<Services>) {
    let places = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(place) = places.clone().acquire_owned().await else { return };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of file descriptors, say: wait rather than spin, and keep serving once it passes.
            Err(error) => {
                tracing::warn!(%error, "metrics endpoint: could not accept a connection");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let services = services.clone();
        tokio::spawn(async move {
            let _place = place;
            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let services = services.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(&request, &services).await) }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new()).http1_only();
            builder.http1().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
            let _ = builder.serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn answer(request: &hyper::Request<hyper::body::Incoming>, services: &Services) -> hyper::Response<Full<Bytes>> {
    let reply = |status: u16, content_type: &str, body: String| {
        hyper::Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_default()
    };
    if request.uri().path() != "/metrics" {
        return reply(404, "text/plain", "not found: metrics are at /metrics\n".into());
    }
    if request.method() != http::Method::GET && request.method() != http::Method::HEAD {
        return reply(405, "text/plain", "method not allowed: GET /metrics\n".into());
    }
    reply(200, CONTENT_TYPE, scrape(services).await)
}

/// Reads the scrape-time values and encodes every metric. Host states are read from the registry's shared
/// activity, not asked of each host actor, so a scrape costs no message per host.
pub async fn scrape(services: &Services) -> String {
    let supervisor = &services.supervisor;
    services.metrics.refresh(&supervisor.host_states(), &supervisor.snapshot());
    services.metrics.encode()
}
