//! The TCP connector under every host's TLS layer: straight to the destination, or through an HTTP `CONNECT`
//! proxy (`outbound_proxy`).
//!
//! Both ways keep the egress rules of [`crate::domain::egress`]. A proxy would normally resolve the destination's name
//! itself, out of reach of the connect-time check; so the connector resolves the name here, checks every address,
//! and asks the proxy to tunnel to the checked address (`CONNECT 203.0.113.7:443`), never to the name. The proxy
//! therefore never resolves anything, a DNS answer that changes between the check and the connection cannot
//! matter, and TLS still verifies the certificate against the destination's name (the TLS layer above sees the
//! original URI). The proxy's own address is the operator's choice and is not checked.

use crate::domain::egress::{DnsFailure, EgressPolicy, EgressResolver};
use base64::Engine as _;
use http::{HeaderValue, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::rt::TokioIo;
use std::error::Error as _;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tower_service::Service;

/// An outbound proxy: `http://[user:password@]host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundProxy {
    /// `http://host:port`, without credentials.
    pub uri: Uri,
    /// `Basic ...` when the URL carried credentials.
    authorization: Option<HeaderValue>,
}

impl OutboundProxy {
    /// Reads a proxy URL. Only `http://` proxies are supported (the tunnel to an `https://` destination is still
    /// TLS end to end).
    pub fn parse(url: &str) -> Result<OutboundProxy, String> {
        let (scheme, rest) =
            url.split_once("://").ok_or_else(|| format!("outbound_proxy: `{url}` is not a URL (http://host:port)"))?;
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(format!("outbound_proxy: scheme `{scheme}` is not supported, only http:// proxies"));
        }
        let rest = rest.trim_end_matches('/');
        let (credentials, authority) = match rest.rsplit_once('@') {
            Some((credentials, authority)) => (Some(credentials), authority),
            None => (None, rest),
        };
        if authority.is_empty() || authority.contains('/') {
            return Err(format!("outbound_proxy: `{url}` must be http://host:port with no path"));
        }
        let uri = Uri::from_str(&format!("http://{authority}"))
            .map_err(|error| format!("outbound_proxy: `{authority}`: {error}"))?;
        if uri.port_u16().is_none() {
            return Err(format!("outbound_proxy: `{url}` has no port (http://host:port)"));
        }
        let authorization = credentials
            .map(|credentials| {
                let decoded = percent_decode(credentials);
                let encoded = base64::engine::general_purpose::STANDARD.encode(decoded);
                HeaderValue::from_str(&format!("Basic {encoded}"))
                    .map_err(|_| "outbound_proxy: credentials are not valid header text".to_owned())
            })
            .transpose()?;
        Ok(OutboundProxy { uri, authorization })
    }

    /// The proxy for logs, without credentials.
    pub fn display(&self) -> String {
        self.uri.to_string().trim_end_matches('/').to_owned()
    }
}

/// Decodes `%XX` escapes of URL userinfo.
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'%')
            .then(|| bytes.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                index += 3;
            }
            None => {
                decoded.push(bytes[index]);
                index += 1;
            }
        }
    }
    decoded
}

/// A failure of the proxy itself (it refused the tunnel, or broke the handshake); classified `ECONNREFUSED`.
#[derive(Debug, thiserror::Error)]
#[error("outbound proxy {proxy} could not open a tunnel to {target}: {reason}")]
pub struct ProxyFailure {
    /// The proxy.
    pub proxy: String,
    /// The address the tunnel was asked for.
    pub target: String,
    /// What went wrong.
    pub reason: String,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The connector: direct, or tunnelled through a proxy.
#[derive(Clone)]
pub enum EgressConnector {
    /// Straight to the destination, resolving through the egress-checking resolver.
    Direct(HttpConnector<EgressResolver>),
    /// Through a `CONNECT` proxy, to an address resolved and checked here.
    Proxied(Box<ProxiedConnector>),
}

impl std::fmt::Debug for EgressConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EgressConnector::Direct(_) => f.write_str("EgressConnector::Direct"),
            EgressConnector::Proxied(proxied) => write!(f, "EgressConnector::Proxied({})", proxied.proxy_name),
        }
    }
}

/// The proxied form's parts.
#[derive(Clone)]
pub struct ProxiedConnector {
    resolver: EgressResolver,
    policy: Arc<EgressPolicy>,
    tunnel: Tunnel<HttpConnector>,
    proxy_name: Arc<str>,
    connect_timeout: Duration,
}

impl EgressConnector {
    /// A connector applying `policy`, through `proxy` when there is one. `connect_timeout` bounds the TCP
    /// connection (to the destination, or to the proxy and the tunnel's handshake).
    pub fn new(policy: Arc<EgressPolicy>, proxy: Option<&OutboundProxy>, connect_timeout: Duration) -> Self {
        match proxy {
            None => {
                let mut http = HttpConnector::new_with_resolver(EgressResolver::new(policy));
                http.enforce_http(false);
                http.set_nodelay(true);
                http.set_connect_timeout(Some(connect_timeout));
                EgressConnector::Direct(http)
            }
            Some(proxy) => {
                let mut http = HttpConnector::new();
                http.set_nodelay(true);
                http.set_connect_timeout(Some(connect_timeout));
                let mut tunnel = Tunnel::new(proxy.uri.clone(), http);
                if let Some(authorization) = &proxy.authorization {
                    tunnel = tunnel.with_auth(authorization.clone());
                }
                EgressConnector::Proxied(Box::new(ProxiedConnector {
                    resolver: EgressResolver::new(policy.clone()),
                    policy,
                    tunnel,
                    proxy_name: Arc::from(proxy.display()),
                    connect_timeout,
                }))
            }
        }
    }
}

impl Service<Uri> for EgressConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self {
            EgressConnector::Direct(http) => http.poll_ready(context).map_err(Into::into),
            EgressConnector::Proxied(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, destination: Uri) -> Self::Future {
        match self {
            EgressConnector::Direct(http) => {
                let connecting = http.call(destination);
                Box::pin(async move { connecting.await.map_err(Into::into) })
            }
            EgressConnector::Proxied(proxied) => {
                let proxied = proxied.clone();
                Box::pin(async move {
                    let timeout = proxied.connect_timeout;
                    match tokio::time::timeout(timeout, proxied.connect(destination)).await {
                        Ok(result) => result,
                        Err(_) => Err(Box::new(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("no tunnel through the outbound proxy within {}s", timeout.as_secs_f32()),
                        )) as BoxError),
                    }
                })
            }
        }
    }
}

impl ProxiedConnector {
    /// Resolves and checks the destination, then opens the tunnel to the checked address.
    async fn connect(mut self, destination: Uri) -> Result<TokioIo<TcpStream>, BoxError> {
        let host = destination.host().ok_or("destination has no host")?;
        let port = destination.port_u16().unwrap_or(if destination.scheme_str() == Some("https") { 443 } else { 80 });
        let address = match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            Ok(literal) => {
                self.policy.check(literal)?;
                SocketAddr::new(literal, port)
            }
            Err(_) => {
                let name = Name::from_str(host)
                    .map_err(|error| DnsFailure { host: host.to_owned(), reason: error.to_string() })?;
                let mut addresses = self.resolver.call(name).await?;
                let first = addresses
                    .next()
                    .ok_or_else(|| DnsFailure { host: host.to_owned(), reason: "no addresses".into() })?;
                SocketAddr::new(first.ip(), port)
            }
        };
        let target: Uri = format!("http://{address}").parse()?;
        self.tunnel.call(target).await.map_err(|error| {
            // Reaching the proxy failed (refused, timed out): the cause is in the chain, for the error class.
            if error.source().is_some() {
                return Box::new(error) as BoxError;
            }
            Box::new(ProxyFailure {
                proxy: self.proxy_name.to_string(),
                target: address.to_string(),
                reason: error.to_string(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_are_read_with_their_credentials_and_refused_when_unusable() {
        let proxy = OutboundProxy::parse("http://proxy.internal:3128").unwrap();
        assert_eq!(proxy.display(), "http://proxy.internal:3128");
        assert_eq!(proxy.authorization, None);
        let proxy = OutboundProxy::parse("http://us%40er:p%3Ass@10.0.0.5:8080/").unwrap();
        assert_eq!(proxy.display(), "http://10.0.0.5:8080");
        let expected = base64::engine::general_purpose::STANDARD.encode("us@er:p:ss");
        assert_eq!(proxy.authorization.unwrap().to_str().unwrap(), format!("Basic {expected}"));
        for (url, words) in [
            ("proxy:3128", "is not a URL"),
            ("https://proxy:3128", "only http:// proxies"),
            ("socks5://proxy:1080", "only http:// proxies"),
            ("http://proxy", "has no port"),
            ("http://proxy:3128/path", "no path"),
        ] {
            let error = OutboundProxy::parse(url).unwrap_err();
            assert!(error.starts_with("outbound_proxy: ") && error.contains(words), "{url}: {error}");
        }
    }
}
