//! [`FakeProxy`]: a real HTTP `CONNECT` proxy on loopback that records which targets it was asked to tunnel to
//! (and the `Proxy-Authorization` sent), then pipes bytes both ways; or refuses every tunnel with 403.

use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One `CONNECT` request the proxy received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelRequest {
    /// The target, as written after `CONNECT`.
    pub target: String,
    /// The `Proxy-Authorization` header, if any.
    pub authorization: Option<String>,
}

/// A running proxy; stops when dropped.
#[derive(Debug)]
pub struct FakeProxy {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    requests: Arc<Mutex<Vec<TunnelRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeProxy {
    /// Starts a proxy that opens every tunnel it is asked for.
    pub async fn start() -> FakeProxy {
        FakeProxy::launch(true).await
    }

    /// Starts a proxy that answers every `CONNECT` with 403.
    pub async fn start_refusing() -> FakeProxy {
        FakeProxy::launch(false).await
    }

    async fn launch(opens_tunnels: bool) -> FakeProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a port");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, recorded.clone(), opens_tunnels));
            }
        });
        FakeProxy { url, requests, task }
    }

    /// The `CONNECT` requests received so far.
    pub fn requests(&self) -> Vec<TunnelRequest> {
        self.requests.lock().expect("lock").clone()
    }
}

/// Reads one `CONNECT` head, records it, and tunnels (or refuses).
async fn serve(stream: TcpStream, requests: Arc<Mutex<Vec<TunnelRequest>>>, opens_tunnels: bool) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).await.is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let (Some("CONNECT"), Some(target)) = (parts.next(), parts.next()) else {
        let _ = reader.get_mut().write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n").await;
        return;
    };
    let mut request = TunnelRequest { target: target.to_owned(), authorization: None };
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header).await {
            Ok(0) | Err(_) => return,
            Ok(_) if header.trim().is_empty() => break,
            Ok(_) => {
                if let Some((name, value)) = header.split_once(':')
                    && name.eq_ignore_ascii_case("proxy-authorization")
                {
                    request.authorization = Some(value.trim().to_owned());
                }
            }
        }
    }
    requests.lock().expect("lock").push(request.clone());
    let mut client = reader.into_inner();
    if !opens_tunnels {
        let _ = client.write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n").await;
        return;
    }
    let Ok(mut upstream) = TcpStream::connect(&request.target).await else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n").await;
        return;
    };
    if client.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n").await.is_ok() {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    }
}
