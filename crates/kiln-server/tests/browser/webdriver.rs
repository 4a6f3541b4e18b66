//! A small W3C WebDriver client: chromedriver started on a free port (in its own process
//! group, so the Chromium it launches goes with it), one headless session, and the handful of
//! commands the tests use.

use serde_json::{json, Value};
use std::os::unix::process::CommandExt as _;
use std::time::{Duration, Instant};

/// The key W3C WebDriver names an element reference by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A headless Chromium driven through its own chromedriver.
pub struct Browser {
    process: std::process::Child,
    session: String,
    client: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver and every Chromium process it started share its process group.
        let group = self.process.id() as i32;
        // SAFETY: kill(2) with a negative pid signals our own child's process group.
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = self.process.wait();
    }
}

/// An element of the current page.
#[derive(Debug, Clone)]
pub struct Element(String);

fn program(names: &[&str]) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

impl Browser {
    /// A fresh headless Chromium (its own profile) of `width`×`height`, or a panic that
    /// says what to install.
    pub async fn start(width: u32, height: u32) -> Browser {
        let driver = program(&["chromedriver"])
            .expect("chromedriver is not installed (apt-get install chromium chromium-driver)");
        let chromium = std::env::var_os("KILN_CHROMIUM")
            .map(std::path::PathBuf::from)
            .or_else(|| program(&["chromium", "chromium-browser", "google-chrome"]))
            .expect("Chromium is not installed (apt-get install chromium)");
        let port = free_port();
        let process = std::process::Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("client");
        let profile = tempfile::tempdir().expect("profile dir");
        let mut browser = Browser {
            process,
            session: format!("http://127.0.0.1:{port}"),
            client,
            _profile: profile,
        };
        browser.wait_ready().await;
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                    "--disable-gpu", "--no-first-run", "--disable-extensions",
                    "--enable-precise-memory-info",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", browser._profile.path().display()),
                ],
            },
        }}});
        let created = browser.call("POST", "/session", capabilities).await;
        let id = created["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        browser.session = format!("{}/session/{id}", browser.session);
        browser
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = self
                .client
                .get(format!("{}/status", self.session))
                .send()
                .await
                .ok()
                .filter(|response| response.status().is_success());
            if ready.is_some() {
                return;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One command; its `value`, or a panic with WebDriver's error.
    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.session);
        let request = match method {
            "GET" => self.client.get(url),
            "DELETE" => self.client.delete(url),
            _ => self.client.post(url).json(&body),
        };
        let response = request.send().await.expect("webdriver request");
        let status = response.status();
        let reply: Value = response.json().await.expect("webdriver json");
        assert!(status.is_success(), "{method} {path}: {reply}");
        reply["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url })).await;
    }

    pub async fn current_url(&self) -> String {
        let url = self.call("GET", "/url", Value::Null).await;
        url.as_str().unwrap_or_default().to_owned()
    }

    /// Runs `script` (a function body; `arguments` are `args`) and returns what it returns.
    pub async fn script(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({ "script": script, "args": args }),
        )
        .await
    }

    /// Runs an async `script` that ends by calling `arguments[arguments.length - 1]`.
    pub async fn script_async(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/async",
            json!({ "script": script, "args": args }),
        )
        .await
    }

    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let found = self
            .call(
                "POST",
                "/elements",
                json!({ "using": "css selector", "value": css }),
            )
            .await;
        found
            .as_array()
            .map(|elements| {
                elements
                    .iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(|id| Element(id.to_owned())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first element matching `css`, waited for up to `timeout`.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> Element {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(element) = self.find_all(css).await.into_iter().next() {
                return element;
            }
            if Instant::now() > deadline {
                let page = self
                    .script("return document.documentElement.outerHTML;", json!([]))
                    .await;
                panic!(
                    "no {css} within {timeout:?} on {}: {page}",
                    self.current_url().await
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn find(&self, css: &str) -> Element {
        self.wait_for(css, Duration::from_secs(5)).await
    }

    /// Waits until `script` returns a truthy value, and returns it.
    pub async fn wait_until(&self, what: &str, script: &str, args: Value) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let value = self.script(script, args.clone()).await;
            let truthy = !matches!(&value, Value::Null | Value::Bool(false))
                && value != json!(0)
                && value != json!("");
            if truthy {
                return value;
            }
            if Instant::now() > deadline {
                let main = self
                    .script(
                        "return document.querySelector('main').innerHTML;",
                        json!([]),
                    )
                    .await;
                panic!(
                    "{what}: not within 30 s on {}: {main}",
                    self.current_url().await
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn click(&self, element: &Element) {
        self.call("POST", &format!("/element/{}/click", element.0), json!({}))
            .await;
    }

    pub async fn type_into(&self, element: &Element, text: &str) {
        self.call(
            "POST",
            &format!("/element/{}/value", element.0),
            json!({ "text": text }),
        )
        .await;
    }

    pub async fn clear(&self, element: &Element) {
        self.call("POST", &format!("/element/{}/clear", element.0), json!({}))
            .await;
    }

    /// The cookies of the current page's site, HttpOnly ones included.
    pub async fn cookies(&self) -> Vec<(String, String)> {
        let cookies = self.call("GET", "/cookie", Value::Null).await;
        cookies
            .as_array()
            .map(|all| {
                all.iter()
                    .map(|c| {
                        let field = |key: &str| c[key].as_str().unwrap_or_default().to_owned();
                        (field("name"), field("value"))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The element's rendered text, its runs of white space (line breaks) made one space.
    pub async fn text(&self, element: &Element) -> String {
        let text = self
            .call("GET", &format!("/element/{}/text", element.0), Value::Null)
            .await;
        let words: Vec<&str> = text
            .as_str()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        words.join(" ")
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine as _;
        let encoded = self.call("GET", "/screenshot", Value::Null).await;
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap_or_default())
            .expect("a base64 PNG")
    }
}
