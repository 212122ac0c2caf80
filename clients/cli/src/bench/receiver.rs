//! The bench's HTTP receiver (the webhooks' destination) and the raw HTTP ceiling measured against it.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// What the receiver saw.
#[derive(Debug, Default)]
pub(super) struct Received {
    /// Deliveries by the index of the kernel their event was published to (the kernel that delivered them).
    pub(super) per_kernel: Vec<AtomicU64>,
    pub(super) num_deliveries: AtomicU64,
    pub(super) num_ceiling: AtomicU64,
    pub(super) latencies_us: Mutex<Vec<u64>>,
    /// When the first delivery arrived, nanoseconds since the run began (0: none yet).
    pub(super) first_delivery_ns: AtomicU64,
    /// When the latest delivery arrived, nanoseconds since the run began.
    pub(super) last_delivery_ns: AtomicU64,
}

impl Received {
    /// Nothing received yet, from `num_kernels` kernels.
    pub(super) fn new(num_kernels: usize) -> Self {
        Received { per_kernel: (0..num_kernels).map(|_| AtomicU64::new(0)).collect(), ..Received::default() }
    }
}

/// Starts the receiver on `listener`: 204 to everything; `/hook/...` bodies carry the send time of their event.
pub(super) fn start_receiver(
    listener: tokio::net::TcpListener,
    epoch: Instant,
    received: Arc<Received>,
) -> anyhow::Result<String> {
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let received = received.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let received = received.clone();
                    async move {
                        let is_delivery = request.uri().path().starts_with("/hook/");
                        let body = request.into_body().collect().await.map(|body| body.to_bytes()).unwrap_or_default();
                        if is_delivery {
                            let now = epoch.elapsed().as_nanos();
                            let now_ns = u64::try_from(now).unwrap_or(u64::MAX).max(1);
                            let _ = received.first_delivery_ns.compare_exchange(
                                0,
                                now_ns,
                                Ordering::Relaxed,
                                Ordering::Relaxed,
                            );
                            received.last_delivery_ns.fetch_max(now_ns, Ordering::Relaxed);
                            received.num_deliveries.fetch_add(1, Ordering::Relaxed);
                            let text = std::str::from_utf8(&body).unwrap_or_default();
                            let (sent, kernel) = text.split_once(' ').unwrap_or((text, ""));
                            if let Some(count) =
                                kernel.parse::<usize>().ok().and_then(|kernel| received.per_kernel.get(kernel))
                            {
                                count.fetch_add(1, Ordering::Relaxed);
                            }
                            if let Ok(sent) = sent.parse::<u128>() {
                                let latency_us = u64::try_from(now.saturating_sub(sent) / 1000).unwrap_or(u64::MAX);
                                received.latencies_us.lock().expect("latencies").push(latency_us);
                            }
                        } else {
                            received.num_ceiling.fetch_add(1, Ordering::Relaxed);
                        }
                        let response = hyper::Response::builder().status(204).body(Empty::<Bytes>::new());
                        Ok::<_, Infallible>(response.unwrap_or_default())
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(url)
}

/// Measures what a plain keep-alive HTTP/1.1 client achieves against the receiver at `concurrency`.
pub(super) async fn raw_ceiling(
    url: &str,
    concurrency: usize,
    duration: Duration,
    received: &Received,
) -> anyhow::Result<f64> {
    let client: hyper_util::client::legacy::Client<_, Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(concurrency)
            .build_http();
    let uri: hyper::Uri = format!("{url}/ceiling").parse()?;
    let before = received.num_ceiling.load(Ordering::Relaxed);
    let start = Instant::now();
    let deadline = start + duration;
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (client, uri) = (client.clone(), uri.clone());
        workers.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let request =
                    hyper::Request::post(uri.clone()).body(Full::new(Bytes::from_static(b"1234567890123")))?;
                let response = client.request(request).await?;
                response.into_body().collect().await?;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for worker in workers {
        worker.await??;
    }
    let num = received.num_ceiling.load(Ordering::Relaxed) - before;
    Ok(num as f64 / start.elapsed().as_secs_f64())
}
