//! Just enough of the W3C WebDriver protocol to drive headless Chromium through
//! chromedriver (Debian's `chromium-driver`): open pages, find elements, type, click, read.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The key W3C WebDriver names an element by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver and one browser session, both ended when dropped.
pub struct Browser {
    driver: Child,
    base: String,
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub fn start(
        chromedriver: &std::path::Path,
        chromium: &std::path::Path,
    ) -> Result<Self, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("chromedriver does not run: {e}"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let mut browser = Self {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
            runtime,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while browser.call("GET", "/status", None).is_err() {
            if Instant::now() > deadline {
                return Err("chromedriver did not come up".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let session = browser.call(
            "POST",
            "/session",
            Some(json!({ "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium,
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run"]
                }
            }}})),
        )?;
        let id = session["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no session: {session}"))?;
        browser.base = format!("{}/session/{id}", browser.base);
        Ok(browser)
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "GET" => self.client.get(&url),
            "DELETE" => self.client.delete(&url),
            _ => self
                .client
                .post(&url)
                .header("content-type", "application/json")
                .body(body.unwrap_or_else(|| json!({})).to_string()),
        };
        let answer: Value = self.runtime.block_on(async {
            let response = request.send().await.map_err(|e| e.to_string())?;
            let text = response.text().await.map_err(|e| e.to_string())?;
            serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))
        })?;
        match answer["value"].get("error") {
            Some(error) => Err(format!(
                "{method} {path}: {error}: {}",
                answer["value"]["message"]
            )),
            None => Ok(answer["value"].clone()),
        }
    }

    /// Opens `url` and waits for it to load.
    pub fn open(&self, url: &str) -> Result<(), String> {
        self.call("POST", "/url", Some(json!({ "url": url })))
            .map(drop)
    }

    /// Where the browser is now.
    pub fn url(&self) -> Result<String, String> {
        Ok(self
            .call("GET", "/url", None)?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// The page's HTML once it contains `text` (a form's answer arrives after the click
    /// returns), or an error after 10 s.
    pub fn source_with(&self, text: &str) -> Result<String, String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let source = self.source()?;
            if source.contains(text) || Instant::now() > deadline {
                return Ok(source);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The page's HTML as the browser holds it.
    pub fn source(&self) -> Result<String, String> {
        Ok(self
            .call("GET", "/source", None)?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    fn element(&self, css: &str) -> Result<String, String> {
        let found = self.call(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        )?;
        found[ELEMENT]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("no element `{css}`"))
    }

    /// The value of attribute `name` of every element matching `css`.
    pub fn attributes(&self, css: &str, name: &str) -> Result<Vec<String>, String> {
        let found = self.call(
            "POST",
            "/elements",
            Some(json!({ "using": "css selector", "value": css })),
        )?;
        let mut values = Vec::new();
        for element in found.as_array().into_iter().flatten() {
            let id = element[ELEMENT].as_str().unwrap_or_default();
            let value = self.call("GET", &format!("/element/{id}/attribute/{name}"), None)?;
            values.extend(value.as_str().map(str::to_string));
        }
        Ok(values)
    }

    /// Clicks the element matching `css` (a button submits its form).
    pub fn click(&self, css: &str) -> Result<(), String> {
        let id = self.element(css)?;
        self.call("POST", &format!("/element/{id}/click"), None)
            .map(drop)
    }

    /// Types `text` into the field matching `css`.
    pub fn type_into(&self, css: &str, text: &str) -> Result<(), String> {
        let id = self.element(css)?;
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .map(drop)
    }

    /// Sets a field's value directly (a date field's typing order depends on the locale).
    pub fn set_value(&self, css: &str, value: &str) -> Result<(), String> {
        let script = "document.querySelector(arguments[0]).value = arguments[1];";
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [css, value] })),
        )
        .map(drop)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.call("DELETE", "", None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
