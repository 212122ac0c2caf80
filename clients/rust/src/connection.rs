//! What both clients share: reading an endpoint, opening the channel, and the interceptor that sends the token.

use std::fmt;
use std::time::Duration;

use tonic::codegen::http::uri::InvalidUri;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::{Error, Result};

/// How long opening the connection may take before `connect` gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A channel that sends the bearer token with every call.
pub(crate) type AuthenticatedChannel = InterceptedService<Channel, BearerToken>;

/// Opens a channel to `endpoint` and prepares the interceptor that authenticates calls with `token`.
pub(crate) async fn connect(endpoint: &str, token: &str) -> Result<(Channel, BearerToken)> {
    let bearer_token = BearerToken::new(token)?;
    let channel = endpoint_config(endpoint)?.connect().await?;
    Ok((channel, bearer_token))
}

/// Adds `authorization: Bearer <token>` to every request.
#[derive(Clone)]
pub(crate) struct BearerToken {
    header_value: MetadataValue<Ascii>,
}

impl BearerToken {
    fn new(token: &str) -> Result<Self> {
        // Checked here because metadata also takes bytes above ASCII, which the server cannot read as text.
        if !token.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err(Error::InvalidToken);
        }
        let mut header_value: MetadataValue<Ascii> =
            format!("Bearer {token}").parse().map_err(|_| Error::InvalidToken)?;
        header_value.set_sensitive(true);
        Ok(Self { header_value })
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        request.metadata_mut().insert("authorization", self.header_value.clone());
        Ok(request)
    }
}

// Written by hand so that the token never ends up in a log through a client's `Debug`.
impl fmt::Debug for BearerToken {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("BearerToken(<redacted>)")
    }
}

/// Builds the channel configuration for an endpoint; TLS for `https://`.
fn endpoint_config(text: &str) -> Result<Endpoint> {
    let uri = endpoint_uri(text)?;
    let is_https = uri.scheme_str() == Some("https");
    let endpoint = Endpoint::from(uri)
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("hookwire-client/", env!("CARGO_PKG_VERSION")))?;
    if !is_https {
        return Ok(endpoint);
    }
    #[cfg(feature = "tls")]
    {
        let tls_config = tonic::transport::ClientTlsConfig::new().with_webpki_roots();
        Ok(endpoint.tls_config(tls_config)?)
    }
    #[cfg(not(feature = "tls"))]
    {
        Err(Error::InvalidEndpoint(format!("`{}`: https needs hookwire-client's `tls` feature", text.trim())))
    }
}

/// Reads `http://host:port`, `https://host:port` or a bare `host:port` (taken as `http://`).
fn endpoint_uri(text: &str) -> Result<Uri> {
    let text = text.trim();
    if text.is_empty() {
        return Err(Error::InvalidEndpoint("``: expected http://host:port, https://host:port or host:port".to_owned()));
    }
    let invalid = |reason: &str| Error::InvalidEndpoint(format!("`{text}`: {reason}"));
    let with_scheme = if text.contains("://") { text.to_owned() } else { format!("http://{text}") };
    let uri: Uri = with_scheme.parse().map_err(|error: InvalidUri| invalid(&error.to_string()))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(invalid("the scheme must be http or https"));
    }
    let (Some(authority), Some(host)) = (uri.authority(), uri.host()) else {
        return Err(invalid("no host"));
    };
    if host.is_empty() {
        return Err(invalid("no host"));
    }
    if authority.as_str().contains('@') {
        return Err(invalid("credentials in the endpoint are not supported: pass a token"));
    }
    // The URI parser accepts any text after the colon; a port it cannot read would only fail later.
    let has_port_text = authority.as_str().len() > host.len();
    if has_port_text && authority.port_u16().is_none() {
        return Err(invalid("the port must be a number from 0 to 65535"));
    }
    let has_path = uri.path() != "/" && !uri.path().is_empty();
    if has_path || uri.query().is_some() {
        return Err(invalid("an endpoint has no path or query: give only scheme, host and port"));
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> String {
        endpoint_uri(text).unwrap().to_string()
    }

    fn refusal(text: &str) -> String {
        match endpoint_uri(text) {
            Err(Error::InvalidEndpoint(reason)) => reason,
            other => panic!("expected InvalidEndpoint for {text:?}, got {other:?}"),
        }
    }

    #[test]
    fn an_http_endpoint_is_taken_as_given() {
        assert_eq!(parsed("http://127.0.0.1:50051"), "http://127.0.0.1:50051/");
        assert_eq!(parsed("http://hookwire.internal:8080/"), "http://hookwire.internal:8080/");
    }

    #[test]
    fn an_https_endpoint_is_taken_as_given() {
        assert_eq!(parsed("https://hookwire.example.com"), "https://hookwire.example.com/");
        assert_eq!(parsed("https://hookwire.example.com:443"), "https://hookwire.example.com:443/");
    }

    #[test]
    fn a_bare_host_and_port_is_taken_as_http() {
        assert_eq!(parsed("localhost:50051"), "http://localhost:50051/");
        assert_eq!(parsed("127.0.0.1:50051"), "http://127.0.0.1:50051/");
        assert_eq!(parsed("[::1]:50051"), "http://[::1]:50051/");
    }

    #[test]
    fn surrounding_whitespace_is_ignored() {
        assert_eq!(parsed("  localhost:50051\n"), "http://localhost:50051/");
    }

    #[test]
    fn an_empty_endpoint_is_refused() {
        assert!(refusal("").contains("expected http://host:port"));
        assert!(refusal("   ").contains("expected http://host:port"));
    }

    #[test]
    fn another_scheme_is_refused() {
        assert!(refusal("ftp://localhost:21").contains("the scheme must be http or https"));
        assert!(refusal("unix:///tmp/hookwire.sock").starts_with("`unix:///tmp/hookwire.sock`"));
    }

    #[test]
    fn a_bad_port_is_refused() {
        assert!(refusal("localhost:port").contains("the port must be a number"));
        assert!(refusal("http://localhost:99999").contains("the port must be a number"));
        assert!(refusal("localhost:").contains("the port must be a number"));
    }

    #[test]
    fn an_endpoint_without_a_host_is_refused() {
        assert!(refusal("http://").starts_with("`http://`: "));
        assert!(refusal("http://:50051").starts_with("`http://:50051`: "));
    }

    #[test]
    fn a_path_or_query_is_refused() {
        assert!(refusal("http://localhost:50051/api").contains("no path or query"));
        assert!(refusal("localhost:50051?x=1").contains("no path or query"));
    }

    #[test]
    fn credentials_in_the_endpoint_are_refused() {
        assert!(refusal("http://user:secret@localhost:50051").contains("credentials"));
    }

    #[test]
    fn a_token_that_is_not_visible_ascii_is_refused() {
        assert!(matches!(BearerToken::new("tok\nen"), Err(Error::InvalidToken)));
        assert!(matches!(BearerToken::new("tøken"), Err(Error::InvalidToken)));
        assert!(matches!(BearerToken::new("two words"), Err(Error::InvalidToken)));
        assert!(BearerToken::new("hw_0123456789abcdef").is_ok());
    }

    #[test]
    fn the_interceptor_sends_the_bearer_token() {
        let mut bearer_token = BearerToken::new("secret").unwrap();
        let request = bearer_token.call(tonic::Request::new(())).unwrap();
        assert_eq!(request.metadata().get("authorization").unwrap(), "Bearer secret");
    }

    #[test]
    fn the_token_does_not_show_in_debug_output() {
        let bearer_token = BearerToken::new("secret").unwrap();
        assert!(!format!("{bearer_token:?}").contains("secret"));
    }
}
