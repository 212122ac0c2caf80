//! `hookwire receive`: a local webhook receiver. It prints every request it gets (method, path, query, headers,
//! body) and answers with a chosen status and body, so that a webhook can be tried out without a real service.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::GlobalArgs;
use crate::output::LinePrinter;

pub const EXAMPLES: &str = "\
Examples:
  hookwire receive --listen 127.0.0.1:8080
  hookwire receive --listen 127.0.0.1:8080 --status 200 --body '{\"temp\": 21}' --count 1";

const COLUMNS: &[&str] = &["method", "path", "query", "body"];

#[derive(Debug, Args)]
pub struct ReceiveArgs {
    /// The address to listen on
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: SocketAddr,
    /// The status to answer with
    #[arg(long, default_value_t = 200)]
    status: u16,
    /// The body to answer with
    #[arg(long, default_value = "")]
    body: String,
    /// Exit after printing N requests [default: run until interrupted]
    #[arg(long, value_name = "N")]
    count: Option<u64>,
}

/// Serves until `--count` requests were printed or the process is interrupted.
pub async fn run(args: ReceiveArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let status = hyper::StatusCode::from_u16(args.status).context("--status: not an HTTP status")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    eprintln!("receiving on http://{}", listener.local_addr()?);
    let mut requests = serve(listener, status, Bytes::from(args.body));
    let mut printer = LinePrinter::new(global.output, COLUMNS);
    let mut num_printed = 0;
    while args.count.is_none_or(|count| num_printed < count) {
        let Some(request) = requests.recv().await else {
            break;
        };
        printer.print(&request)?;
        num_printed += 1;
    }
    Ok(())
}

/// Serves every connection of `listener` in the background, answering `status` and `body`; each request arrives on
/// the returned channel as JSON (method, path, query, headers, body).
pub fn serve(
    listener: tokio::net::TcpListener,
    status: hyper::StatusCode,
    body: Bytes,
) -> mpsc::UnboundedReceiver<Value> {
    let (sender, requests) = mpsc::unbounded_channel::<Value>();
    let reply = Arc::new((status, body));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (sender, reply) = (sender.clone(), reply.clone());
            tokio::spawn(async move {
                let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let (sender, reply) = (sender.clone(), reply.clone());
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body.collect().await.map(|collected| collected.to_bytes()).unwrap_or_default();
                        let headers: Map<String, Value> = parts
                            .headers
                            .iter()
                            .map(|(name, value)| {
                                (name.to_string(), Value::from(String::from_utf8_lossy(value.as_bytes())))
                            })
                            .collect();
                        let _ = sender.send(json!({
                            "method": parts.method.as_str(),
                            "path": parts.uri.path(),
                            "query": parts.uri.query().unwrap_or_default(),
                            "headers": headers,
                            "body": String::from_utf8_lossy(&body),
                        }));
                        let (status, body) = (reply.0, reply.1.clone());
                        let response = hyper::Response::builder().status(status).body(Full::new(body));
                        Ok::<_, Infallible>(response.unwrap_or_default())
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    requests
}
