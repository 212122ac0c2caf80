//! A small HTTP client for the web console, as a browser without JavaScript: it keeps the session cookie, reads
//! the CSRF token from the pages, and can send what a forged cross-site form would.

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// An answer of the console.
#[derive(Debug)]
pub struct Page {
    /// The status.
    pub status: u16,
    /// The `Location` header of a redirect.
    pub location: Option<String>,
    /// The `Set-Cookie` header, if any.
    pub set_cookie: Option<String>,
    /// The body.
    pub body: String,
}

impl Page {
    /// The value of the first `name="csrf"` hidden field.
    pub fn csrf(&self) -> Option<String> {
        let start = self.body.find(r#"name="csrf" value=""#)? + r#"name="csrf" value=""#.len();
        let end = self.body[start..].find('"')?;
        Some(self.body[start..start + end].to_owned())
    }
}

/// A console client with its cookie.
#[derive(Debug, Clone)]
pub struct ConsoleClient {
    base: String,
    cookie: Option<String>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl ConsoleClient {
    /// A client of the console at `base` (`http://127.0.0.1:PORT`), not signed in.
    pub fn new(base: &str) -> Self {
        ConsoleClient {
            base: base.trim_end_matches('/').to_owned(),
            cookie: None,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Signs in with a token; panics when the console refuses it.
    pub async fn sign_in(base: &str, token: &str) -> Self {
        let mut client = ConsoleClient::new(base);
        let page = client.post("/signin", &[("token", token)], &[]).await;
        assert_eq!(page.status, 303, "sign-in refused: {}", page.body);
        let cookie = page.set_cookie.expect("a session cookie");
        client.cookie = Some(cookie.split(';').next().expect("cookie pair").to_owned());
        client
    }

    /// The same session, sent to another console (another kernel on the same database).
    pub fn with_base(&self, base: &str) -> Self {
        ConsoleClient { base: base.trim_end_matches('/').to_owned(), ..self.clone() }
    }

    /// The session cookie (`name=value`).
    pub fn cookie(&self) -> Option<&str> {
        self.cookie.as_deref()
    }

    /// GETs a path.
    pub async fn get(&self, path: &str) -> Page {
        self.send(http::Method::GET, path, Vec::new(), &[]).await
    }

    /// POSTs a form to a path, with extra headers.
    pub async fn post(&self, path: &str, form: &[(&str, &str)], headers: &[(&str, &str)]) -> Page {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let mut all = vec![("content-type", "application/x-www-form-urlencoded")];
        all.extend_from_slice(headers);
        self.send(http::Method::POST, path, body.into_bytes(), &all).await
    }

    /// POSTs a form with the CSRF token read from `page_path`, as the console's own form would.
    pub async fn post_form(&self, page_path: &str, path: &str, form: &[(&str, &str)]) -> Page {
        let csrf = self.get(page_path).await.csrf().expect("a page with a form");
        let mut fields = vec![("csrf", csrf.as_str())];
        fields.extend_from_slice(form);
        self.post(path, &fields, &[]).await
    }

    async fn send(&self, method: http::Method, path: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> Page {
        let mut request = http::Request::builder().method(method).uri(format!("{}{path}", self.base));
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::from(body))).expect("request");
        let response = self.client.request(request).await.expect("the console answers");
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let (status, location, set_cookie) = (response.status().as_u16(), header("location"), header("set-cookie"));
        let body = response.into_body().collect().await.expect("body").to_bytes();
        Page { status, location, set_cookie, body: String::from_utf8_lossy(&body).into_owned() }
    }
}
