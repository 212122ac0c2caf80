//! A real browser for the console's tests: headless Chromium driven over the W3C WebDriver protocol through
//! `chromedriver` (Debian's `chromium` and `chromium-driver` packages). The protocol is JSON over HTTP, so this
//! speaks it with the hyper client already in the graph rather than a WebDriver crate (whose dependency trees
//! are many times this file). [`Browser::start`] returns `None` when no chromedriver is installed, so a
//! developer without Chromium still runs the rest of the suite; CI sets `HOOKWIRE_REQUIRE_BROWSER=1`, which
//! turns that into a failure.

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

/// The key of an element reference in WebDriver answers.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process and one browser session.
#[derive(Debug)]
pub struct Browser {
    driver: tokio::process::Child,
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    _profile: tempfile::TempDir,
}

/// An element of the page.
#[derive(Debug, Clone)]
pub struct Element(String);

fn find_binary(candidates: &[&str]) -> Option<String> {
    candidates.iter().find(|path| Path::new(path).exists()).map(|path| (*path).to_owned())
}

impl Browser {
    /// Starts chromedriver and a headless Chromium at 1280x900, or `None` when they are not installed (a
    /// failure instead when `HOOKWIRE_REQUIRE_BROWSER` is set).
    pub async fn start() -> Option<Browser> {
        let required = std::env::var_os("HOOKWIRE_REQUIRE_BROWSER").is_some_and(|value| value != "0");
        let driver = find_binary(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]);
        let chromium = find_binary(&["/usr/bin/chromium", "/usr/bin/chromium-browser"]);
        let (Some(driver), Some(chromium)) = (driver, chromium) else {
            assert!(!required, "HOOKWIRE_REQUIRE_BROWSER is set but chromium or chromedriver is not installed");
            eprintln!("skipping the browser part: install chromium and chromium-driver to run it");
            return None;
        };
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            listener.local_addr().expect("address").port()
        };
        let child = tokio::process::Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().expect("a browser profile folder");
        let mut browser = Browser {
            driver: child,
            base: format!("http://127.0.0.1:{port}"),
            client: Client::builder(TokioExecutor::new()).build_http(),
            _profile: profile,
        };
        let args = json!([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1280,900",
            format!("--user-data-dir={}", browser._profile.path().display()),
        ]);
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let mut session = None;
        for _ in 0..100 {
            if let Ok(answer) = browser.raw(http::Method::POST, "/session", Some(capabilities.clone())).await {
                session = answer["value"]["sessionId"].as_str().map(str::to_owned);
                if session.is_some() {
                    break;
                }
                panic!("chromedriver refused the session: {answer}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let session = session.expect("chromedriver did not start within 10 s");
        browser.base = format!("{}/session/{session}", browser.base);
        Some(browser)
    }

    async fn raw(&self, method: http::Method, path: &str, body: Option<Value>) -> Result<Value, String> {
        let bytes = body.map(|body| body.to_string()).unwrap_or_default();
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|error| error.to_string())?;
        let response = self.client.request(request).await.map_err(|error| error.to_string())?;
        let body = response.into_body().collect().await.map_err(|error| error.to_string())?.to_bytes();
        serde_json::from_slice(&body).map_err(|error| error.to_string())
    }

    async fn call(&self, method: http::Method, path: &str, body: Option<Value>) -> Value {
        let answer = self.raw(method, path, body).await.expect("chromedriver answers");
        if answer["value"].get("error").is_some() {
            panic!("webdriver {path}: {}", answer["value"]);
        }
        answer["value"].clone()
    }

    /// Opens a URL and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.call(http::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.call(http::Method::GET, "/url", None).await.as_str().unwrap_or_default().to_owned()
    }

    /// The page's source as the browser holds it now.
    pub async fn source(&self) -> String {
        self.call(http::Method::GET, "/source", None).await.as_str().unwrap_or_default().to_owned()
    }

    /// Resizes the window.
    pub async fn resize(&self, width: u32, height: u32) {
        self.call(http::Method::POST, "/window/rect", Some(json!({"width": width, "height": height}))).await;
    }

    /// Finds an element by CSS selector, waiting up to 5 s for it to appear.
    pub async fn find(&self, selector: &str) -> Element {
        for _ in 0..50 {
            if let Some(element) = self.try_find(selector).await {
                return element;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no element {selector} on {}\n{}", self.url().await, self.source().await);
    }

    /// Finds an element by CSS selector, if it is there now.
    pub async fn try_find(&self, selector: &str) -> Option<Element> {
        let answer = self
            .raw(http::Method::POST, "/element", Some(json!({"using": "css selector", "value": selector})))
            .await
            .ok()?;
        answer["value"][ELEMENT_KEY].as_str().map(|id| Element(id.to_owned()))
    }

    /// Types into an element after clearing it.
    pub async fn fill(&self, selector: &str, text: &str) {
        let element = self.find(selector).await;
        self.call(http::Method::POST, &format!("/element/{}/clear", element.0), Some(json!({}))).await;
        self.call(http::Method::POST, &format!("/element/{}/value", element.0), Some(json!({"text": text}))).await;
    }

    /// Clicks an element.
    pub async fn click(&self, selector: &str) {
        let element = self.find(selector).await;
        self.call(http::Method::POST, &format!("/element/{}/click", element.0), Some(json!({}))).await;
    }

    /// The visible text of an element.
    pub async fn text(&self, selector: &str) -> String {
        let element = self.find(selector).await;
        self.call(http::Method::GET, &format!("/element/{}/text", element.0), None)
            .await
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// Runs a script in the page and returns its value.
    pub async fn script(&self, script: &str) -> Value {
        self.call(http::Method::POST, "/execute/sync", Some(json!({"script": script, "args": []}))).await
    }

    /// Presses Tab `times` times and returns the id of the focused element.
    pub async fn tab(&self, times: usize) -> String {
        let keys: String = std::iter::repeat_n('\u{E004}', times).collect();
        let actions = json!({"actions": [{"type": "key", "id": "keyboard", "actions":
            keys.chars().flat_map(|key| [json!({"type": "keyDown", "value": key.to_string()}), json!({"type": "keyUp", "value": key.to_string()})]).collect::<Vec<_>>()
        }]});
        self.call(http::Method::POST, "/actions", Some(actions)).await;
        self.script(
            "return document.activeElement ? (document.activeElement.id || document.activeElement.textContent) : ''",
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Waits up to 10 s until the page's source contains `text`.
    pub async fn wait_for_text(&self, text: &str) {
        for _ in 0..100 {
            if self.source().await.contains(text) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{text:?} did not appear on {}\n{}", self.url().await, self.source().await);
    }

    /// Saves a PNG screenshot of the window to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let data = self.call(http::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD.decode(data.as_str().unwrap_or_default()).expect("base64");
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("screenshot folder");
        }
        std::fs::write(path, png).expect("write the screenshot");
    }

    /// Ends the browser session and chromedriver.
    pub async fn quit(mut self) {
        let _ = self.raw(http::Method::DELETE, "", None).await;
        let _ = self.driver.kill().await;
    }
}
