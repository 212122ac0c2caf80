//! The web console: what every webhook did, fixing it, and building one from a template, in a browser. Served by
//! `hookwired` itself on its own HTTP listener (`console_listen`, default `127.0.0.1:8090`).
//!
//! The stack is the smallest that does it well: server-rendered HTML over the hyper server already in the graph
//! (a small router here, no framework), strings escaped by [`html::escape`], the 30-day chart drawn as inline
//! SVG on the server, and a few lines of vanilla JavaScript for the live event stream (Server-Sent Events). Every
//! asset is inside the binary (`include_str!`): nothing is fetched from elsewhere, and nothing but Rust builds it.
//!
//! Access is exactly the API's: a session holds the admin token it signed in with (server-side; the browser
//! holds only a random session id) and every request is authenticated again and authorized with the kernel's own
//! checks ([`Principal::require`], [`Kernel::require_object`]), so a viewer sees and cannot change, and a group
//! token never sees another group. Every change is a `POST` carrying the session's CSRF token, from the console's
//! own origin (`Origin` and `Sec-Fetch-Site` are checked when the browser sends them).

mod chart;
mod html;
mod live;
mod pages;
pub mod session;
pub mod throttle;

use crate::Kernel;
use crate::auth::Principal;
use crate::error::KernelError;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use session::{COOKIE_NAME, Sessions};
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;
use tokio::net::TcpListener;

/// The largest request body the console reads (a webhook definition being edited is the largest).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Live event streams open at once across all sessions; more are refused with 503.
pub const MAX_LIVE_STREAMS: usize = 100;

const STYLESHEET: &str = include_str!("assets/console.css");
const SCRIPT: &str = include_str!("assets/console.js");

/// A response body: whole pages, or the live stream.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;
/// A console response.
pub type Response = hyper::Response<Body>;

/// The console's settings.
#[derive(Debug, Clone)]
pub struct ConsoleSettings {
    /// How long a session lasts.
    pub session_ttl: Duration,
    /// Sessions held at once.
    pub max_sessions: usize,
    /// Mark the session cookie `Secure` (the console is reached over TLS through a proxy).
    pub secure_cookie: bool,
    /// Failed sign-ins allowed a minute from one client address (0: no limit).
    pub signin_failures: u32,
    /// Failed sign-ins allowed a minute from all addresses together (0: no limit).
    pub signin_failures_global: u32,
}

/// The console's state.
#[derive(Debug)]
pub struct Console {
    kernel: Arc<Kernel>,
    sessions: Sessions,
    secure_cookie: bool,
    live_streams: Arc<AtomicUsize>,
    throttle: throttle::SignInThrottle,
}

/// A request, read whole: its form (for `POST`) and query decoded.
#[derive(Debug)]
pub struct Request {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    form: Vec<(String, String)>,
    headers: HeaderMap,
    /// The client's address (a proxy's, behind one).
    peer: IpAddr,
}

impl Request {
    /// A query parameter; the last one wins.
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query.iter().rev().find(|(name, _)| name == key).map(|(_, value)| value.as_str())
    }

    /// A form field; the last one wins.
    pub fn form(&self, key: &str) -> Option<&str> {
        self.form.iter().rev().find(|(name, _)| name == key).map(|(_, value)| value.as_str())
    }

    fn cookie(&self, name: &str) -> Option<&str> {
        self.headers.get_all(header::COOKIE).iter().filter_map(|value| value.to_str().ok()).find_map(|cookies| {
            cookies.split(';').find_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                (key == name).then_some(value)
            })
        })
    }
}

/// A signed-in request's principal and session.
#[derive(Debug)]
pub struct Signed {
    /// Who the session acts as.
    pub who: Principal,
    /// The session's CSRF token.
    pub csrf: String,
    session_id: String,
}

impl Signed {
    /// The page helpers' view of it.
    pub fn viewer(&self) -> html::Viewer<'_> {
        html::Viewer { who: &self.who, csrf: &self.csrf }
    }
}

/// Serves the console on `listener` until the kernel shuts down (or the task is aborted).
pub async fn serve(listener: TcpListener, kernel: Arc<Kernel>, settings: ConsoleSettings) {
    let console = Arc::new(Console {
        sessions: Sessions::new(kernel.store.pool().clone(), settings.session_ttl, settings.max_sessions),
        secure_cookie: settings.secure_cookie,
        live_streams: Arc::default(),
        throttle: throttle::SignInThrottle::new(settings.signin_failures, settings.signin_failures_global),
        kernel,
    });
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => (stream, peer.ip()),
                Err(error) => {
                    tracing::warn!(%error, "console: could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shut_down(console.kernel.shutting_down.clone()) => return,
        };
        let console = console.clone();
        tokio::spawn(async move {
            let shutting_down = console.kernel.shutting_down.clone();
            let service_console = console.clone();
            let service = service_fn(move |request| {
                let console = service_console.clone();
                async move { Ok::<_, Infallible>(console.handle(request, peer).await) }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder = builder.http1_only();
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            // A connection (a live stream, say) must not hold the kernel past its shutdown.
            tokio::select! {
                _ = connection => {}
                _ = shut_down(shutting_down) => {}
            }
        });
    }
}

/// Completes when the kernel begins to shut down.
pub(crate) async fn shut_down(mut shutting_down: tokio::sync::watch::Receiver<bool>) {
    let _ = shutting_down.wait_for(|down| *down).await.is_ok();
}

impl Console {
    async fn handle(&self, request: hyper::Request<hyper::body::Incoming>, peer: IpAddr) -> Response {
        let (parts, body) = request.into_parts();
        let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return with_headers(plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")),
        };
        let decode = |text: &[u8]| form_urlencoded::parse(text).into_owned().collect::<Vec<_>>();
        let is_form = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
        let request = Request {
            method: parts.method,
            path: parts.uri.path().to_owned(),
            query: decode(parts.uri.query().unwrap_or("").as_bytes()),
            form: if is_form { decode(&body) } else { Vec::new() },
            headers: parts.headers,
            peer,
        };
        with_headers(self.route(&request).await)
    }

    async fn route(&self, request: &Request) -> Response {
        let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
        let is_post = request.method == Method::POST;
        if is_post && !same_origin(&request.headers) {
            return plain(StatusCode::FORBIDDEN, "refused: a change must come from the console's own pages");
        }
        match (&request.method, segments.as_slice()) {
            (&Method::GET, ["assets", "console.css"]) => return asset("text/css; charset=utf-8", STYLESHEET),
            (&Method::GET, ["assets", "console.js"]) => return asset("text/javascript; charset=utf-8", SCRIPT),
            (&Method::GET, ["signin"]) => return pages::sign_in_page(None),
            (&Method::POST, ["signin"]) => return self.sign_in(request).await,
            _ => {}
        }
        let signed = match self.signed(request).await {
            Ok(signed) => signed,
            Err(response) => return response,
        };
        if is_post {
            let csrf_ok = request.form("csrf").is_some_and(|csrf| session::same_secret(csrf, &signed.csrf));
            if !csrf_ok {
                return plain(
                    StatusCode::FORBIDDEN,
                    "refused: the form's CSRF token is missing or wrong; reload the page",
                );
            }
        }
        if is_post && segments.as_slice() == ["signout"] {
            if let Err(error) = self.sessions.close(&signed.session_id).await {
                return error_page(&signed, error.into());
            }
            let mut response = redirect("/signin");
            response.headers_mut().insert(header::SET_COOKIE, self.cookie("", 0));
            return response;
        }
        match pages::route(self, &signed, request, &segments).await {
            Ok(response) => response,
            Err(error) => error_page(&signed, error),
        }
    }

    /// The session of the request's cookie, its token authenticated again; otherwise the sign-in page.
    async fn signed(&self, request: &Request) -> Result<Signed, Response> {
        let to_sign_in = || {
            if request.method == Method::GET && request.path != "/" {
                redirect("/signin")
            } else if request.method == Method::GET {
                pages::sign_in_page(None)
            } else {
                plain(StatusCode::UNAUTHORIZED, "signed out: sign in again")
            }
        };
        let Some(session_id) = request.cookie(COOKIE_NAME) else {
            return Err(to_sign_in());
        };
        let unavailable = |error: KernelError| plain(StatusCode::SERVICE_UNAVAILABLE, &public_message(&error));
        let Some(session) = self.sessions.get(session_id).await.map_err(|error| unavailable(error.into()))? else {
            return Err(to_sign_in());
        };
        match self.kernel.admin.authenticate_hash(&self.kernel.store, &session.token_hash).await {
            Ok(who) => Ok(Signed { who, csrf: session.csrf, session_id: session_id.to_owned() }),
            Err(KernelError::Unauthenticated(_)) => {
                self.sessions.close(session_id).await.map_err(|error| unavailable(error.into()))?;
                Err(to_sign_in())
            }
            Err(error) => Err(unavailable(error)),
        }
    }

    async fn authenticate(&self, token: &str) -> Result<Principal, KernelError> {
        let mut metadata = tonic::metadata::MetadataMap::new();
        let value = tonic::metadata::MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| KernelError::Unauthenticated("authorization: unknown token".into()))?;
        metadata.insert("authorization", value);
        self.kernel.admin.authenticate(&self.kernel.store, &metadata).await
    }

    async fn sign_in(&self, request: &Request) -> Response {
        if let Err(refusal) = self.throttle.check(request.peer) {
            tracing::info!(peer = %request.peer, ?refusal, "console: sign-in refused, too many failures");
            let mut response = pages::sign_in_page(Some(&refusal.message()));
            *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            response.headers_mut().insert(header::RETRY_AFTER, refusal.retry_after_secs().into());
            return response;
        }
        let token = request.form("token").unwrap_or("").trim();
        if token.is_empty() || token.len() > 512 {
            self.throttle.failed(request.peer);
            return pages::sign_in_page(Some("Give a root or group admin token."));
        }
        match self.authenticate(token).await {
            Ok(who) => {
                let id = match self.sessions.open(token).await {
                    Ok(id) => id,
                    Err(error) => return pages::sign_in_page(Some(&public_message(&error.into()))),
                };
                let target = match &who {
                    Principal::Root => "/groups".to_owned(),
                    Principal::Group { group_id, .. } => format!("/groups/{group_id}"),
                };
                tracing::info!(principal = %describe(&who), "console: signed in");
                let mut response = redirect(&target);
                response.headers_mut().insert(header::SET_COOKIE, self.cookie(&id, self.sessions.ttl().as_secs()));
                response
            }
            Err(KernelError::Unauthenticated(_)) => {
                self.throttle.failed(request.peer);
                tracing::info!(peer = %request.peer, "console: sign-in refused");
                pages::sign_in_page(Some("That token is not a valid root or group admin token."))
            }
            Err(error) => pages::sign_in_page(Some(&public_message(&error))),
        }
    }

    fn cookie(&self, id: &str, max_age_secs: u64) -> http::HeaderValue {
        let secure = if self.secure_cookie { "; Secure" } else { "" };
        let cookie = format!("{COOKIE_NAME}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}");
        http::HeaderValue::from_str(&cookie).unwrap_or_else(|_| http::HeaderValue::from_static(""))
    }
}

/// Who a principal is, for logs (never its token).
fn describe(who: &Principal) -> String {
    match who {
        Principal::Root => "root".to_owned(),
        Principal::Group { token_id, group_id, role } => format!("{token_id} ({} of {group_id})", role.as_str()),
    }
}

/// Whether a `POST` comes from the console's own pages, as far as the browser says: `Sec-Fetch-Site` must be
/// `same-origin` (or `none`, typed by the user) and `Origin`, when sent, must name the host the request was sent
/// to. A forged cross-site form fails here before its CSRF token is even looked at.
fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    if let Some(site) = text("sec-fetch-site")
        && site != "same-origin"
        && site != "none"
    {
        return false;
    }
    match (text("origin"), text("host")) {
        (None, _) => true,
        (Some(origin), Some(host)) => {
            origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) == Some(host)
        }
        (Some(_), None) => false,
    }
}

/// The message an error shows: its own for the caller's mistakes, a general one for failures inside.
fn public_message(error: &KernelError) -> String {
    match error {
        KernelError::Store(store) => {
            tracing::warn!(error = %store, "console: storage error");
            "storage unavailable, retry later".to_owned()
        }
        other => other.to_string(),
    }
}

fn error_page(signed: &Signed, error: KernelError) -> Response {
    let status = match &error {
        KernelError::InvalidArgument(_) => StatusCode::BAD_REQUEST,
        KernelError::NotFound(_) => StatusCode::NOT_FOUND,
        KernelError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        KernelError::PermissionDenied(_) => StatusCode::FORBIDDEN,
        KernelError::DeadlineExceeded(_) => StatusCode::GATEWAY_TIMEOUT,
        KernelError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    let body =
        format!(r#"{}<p><a href="/">Back to the console</a></p>"#, html::message("error", &public_message(&error)));
    let title = status.canonical_reason().unwrap_or("Error");
    page_with_status(status, html::page(title, Some(&signed.viewer()), &[], &body))
}

/// A `200` HTML page.
pub fn page_response(html: String) -> Response {
    page_with_status(StatusCode::OK, html)
}

/// An HTML page with a status.
pub fn page_with_status(status: StatusCode, html: String) -> Response {
    let mut response = hyper::Response::new(full(html));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("text/html; charset=utf-8"));
    response
}

/// A `303 See Other` to `location` (after a change, so that reloading does not repeat it).
pub fn redirect(location: &str) -> Response {
    let mut response = hyper::Response::new(full(String::new()));
    *response.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(value) = http::HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// A plain-text answer.
pub fn plain(status: StatusCode, text: &str) -> Response {
    let mut response = hyper::Response::new(full(format!("{text}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

fn asset(content_type: &'static str, text: &'static str) -> Response {
    let mut response = hyper::Response::new(Full::new(Bytes::from_static(text.as_bytes())).boxed_unsync());
    response.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    response.headers_mut().insert(header::CACHE_CONTROL, http::HeaderValue::from_static("max-age=3600"));
    response
}

fn full(text: String) -> Body {
    Full::new(Bytes::from(text)).boxed_unsync()
}

/// Headers every answer carries: nothing inline may run, no framing, no sniffing, no referrer to other sites, no caching of pages.
fn with_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name: &'static str, value: &'static str| {
        headers.entry(name).or_insert(http::HeaderValue::from_static(value));
    };
    set(
        headers,
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "x-frame-options", "DENY");
    // `same-origin`, not `no-referrer`: under `no-referrer` Chromium sends `Origin: null` with its own forms.
    set(headers, "referrer-policy", "same-origin");
    set(headers, "cache-control", "no-store");
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_address_is_an_address_or_off() {
        use crate::settings::parse_console_listen;
        assert_eq!(parse_console_listen("off").unwrap(), None);
        assert_eq!(parse_console_listen("").unwrap(), None);
        assert_eq!(parse_console_listen("0.0.0.0:9000").unwrap(), Some("0.0.0.0:9000".parse().unwrap()));
        assert!(parse_console_listen("nowhere").unwrap_err().starts_with("console_listen:"));
        let settings: crate::settings::Settings = toml::from_str("console_listen = \"off\"").unwrap();
        assert_eq!(settings.console_listen.0, None);
        assert_eq!(crate::settings::Settings::default().console_listen.0, Some("127.0.0.1:8090".parse().unwrap()));
    }

    #[test]
    fn only_same_origin_posts_pass() {
        let mut headers = HeaderMap::new();
        assert!(same_origin(&headers), "a client that sends neither header (curl) is left to the CSRF token");
        headers.insert("host", "127.0.0.1:8090".parse().unwrap());
        headers.insert("origin", "http://127.0.0.1:8090".parse().unwrap());
        assert!(same_origin(&headers));
        headers.insert("origin", "http://evil.example".parse().unwrap());
        assert!(!same_origin(&headers));
        headers.insert("origin", "http://127.0.0.1:8090".parse().unwrap());
        headers.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(!same_origin(&headers));
    }
}
