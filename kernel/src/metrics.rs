//! The metrics endpoint: `GET /metrics` on `--metrics-listen` answers the metrics of
//! [`hookwire_actors::services::metrics::Metrics`], with the scrape-time values (host states, queue depths, sessions) read
//! first, in the format the scraper asks for: OpenMetrics when its `Accept` names `application/openmetrics-text`
//! (Prometheus does), else the Prometheus text format 0.0.4 (`curl`, `promtool check metrics`). Any other path is
//! 404. Plain HTTP/1.1; put it on a private address.

use bytes::Bytes;
use hookwire_actors::actors::registry::Services;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::Arc;
use tokio::net::TcpListener;

/// The content type of the OpenMetrics text format, which Prometheus asks for.
const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of the Prometheus text format 0.0.4, for every other scraper.
const PROMETHEUS_TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

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
    let text = scrape(services).await;
    if accepts_openmetrics(request.headers()) {
        reply(200, OPENMETRICS_CONTENT_TYPE, text)
    } else {
        reply(200, PROMETHEUS_TEXT_CONTENT_TYPE, to_prometheus_text(&text))
    }
}

/// True when the `Accept` header names OpenMetrics with a quality above zero.
fn accepts_openmetrics(headers: &http::HeaderMap) -> bool {
    headers.get_all(http::header::ACCEPT).iter().filter_map(|value| value.to_str().ok()).any(|accept| {
        accept.split(',').any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let is_openmetrics =
                parts.next().is_some_and(|media| media.eq_ignore_ascii_case("application/openmetrics-text"));
            let quality = parts
                .filter_map(|parameter| parameter.strip_prefix("q="))
                .find_map(|quality| quality.parse::<f64>().ok())
                .unwrap_or(1.0);
            is_openmetrics && quality > 0.0
        })
    })
}

/// Rewrites an OpenMetrics exposition as Prometheus text 0.0.4: a counter's `HELP` and `TYPE` name its samples
/// (`x_total`), and the `# UNIT` and `# EOF` lines, which 0.0.4 does not have, go.
fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> =
        openmetrics.lines().filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
    let mut text = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let comment = ["# HELP ", "# TYPE "].into_iter().find_map(|kind| Some((kind, line.strip_prefix(kind)?)));
        match comment {
            Some((kind, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let suffix = if counters.contains(name) { "_total" } else { "" };
                text.push_str(&format!("{kind}{name}{suffix} {tail}"));
            }
            None => text.push_str(line),
        }
        text.push('\n');
    }
    text
}

/// Reads the scrape-time values and encodes every metric. Host states are read from the registry's shared
/// activity, not asked of each host actor, so a scrape costs no message per host.
pub async fn scrape(services: &Services) -> String {
    let registry = &services.registry;
    services.metrics.refresh(&registry.host_states(), &registry.snapshot());
    services.metrics.encode()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_is_answered_only_to_who_asks_for_it() {
        let accept = |value: &'static str| {
            let mut headers = http::HeaderMap::new();
            headers.insert(http::header::ACCEPT, http::HeaderValue::from_static(value));
            accepts_openmetrics(&headers)
        };
        let prometheus = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(accept(prometheus));
        assert!(!accept("text/plain; version=0.0.4"));
        assert!(!accept("*/*"));
        assert!(!accept("application/openmetrics-text;q=0"));
        assert!(!accepts_openmetrics(&http::HeaderMap::new()));
    }

    #[test]
    fn prometheus_text_names_counters_by_their_samples_and_has_no_eof() {
        let openmetrics = "# HELP hookwire_events Events.\n# TYPE hookwire_events counter\nhookwire_events_total 4\n\
                           # HELP hookwire_sessions Sessions.\n# TYPE hookwire_sessions gauge\nhookwire_sessions 1\n# EOF\n";
        assert_eq!(
            to_prometheus_text(openmetrics),
            "# HELP hookwire_events_total Events.\n# TYPE hookwire_events_total counter\nhookwire_events_total 4\n\
             # HELP hookwire_sessions Sessions.\n# TYPE hookwire_sessions gauge\nhookwire_sessions 1\n"
        );
    }
}
