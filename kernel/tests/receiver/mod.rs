//! A webhook destination for the process tests: an HTTP server on a loopback port that records the body of every
//! request and answers 200, after a delay when asked. The end-to-end suite has a fuller one (`FakeReceiver` in
//! `tests/`); the kernel's own tests keep this small one so that the kernel does not depend on the crate that
//! depends on it.

// Each test binary that includes this module uses part of it.
#![allow(dead_code)]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// A running receiver; it serves until the test ends.
pub struct Receiver {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    bodies: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    /// Starts a receiver that answers every request with 200 after `delay`.
    pub async fn start(delay: Duration) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the receiver");
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let recorded = bodies.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                        let recorded = recorded.clone();
                        async move {
                            let body =
                                request.into_body().collect().await.map(|body| body.to_bytes()).unwrap_or_default();
                            recorded.lock().unwrap().push(String::from_utf8_lossy(&body).into_owned());
                            tokio::time::sleep(delay).await;
                            Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::new())))
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver { base_url, bodies }
    }

    /// The bodies of the requests received so far, in arrival order.
    pub fn bodies(&self) -> Vec<String> {
        self.bodies.lock().unwrap().clone()
    }

    /// Waits until at least `num` requests arrived or `timeout` passed, and returns how many arrived.
    pub async fn wait_for(&self, num: usize, timeout: Duration) -> usize {
        let _ = tokio::time::timeout(timeout, async {
            while self.bodies.lock().unwrap().len() < num {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        self.bodies.lock().unwrap().len()
    }
}
