//! A real browser for page tests: Debian's headless `chromium`, driven over WebDriver by
//! `chromedriver` (both installed by `make browser`, a prerequisite of `make test`).
//!
//! Each [`Browser`] runs its own chromedriver (on a port the system picks, loopback only)
//! and its own chromium with a fresh profile, so several can run at once (two for a call).
//! Dropping it ends the session, stops that chromedriver by its PID and removes the profile.
//!
//! The methods are test steps: each panics with what it tried when it fails, and waits
//! poll (no fixed sleeps). Page checks ([`Browser::horizontal_overflow`],
//! [`Browser::unlabelled_controls`], [`Browser::small_tap_targets`],
//! [`Browser::console_errors`], [`Browser::csp_violations`]) are in `checks.rs`.
//!
//! ```no_run
//! # async fn demo(url: &str) {
//! use integration_tests::browser::{Browser, Options};
//! let browser = Browser::start(Options::phone()).await;
//! browser.goto(url).await;
//! assert_eq!(browser.viewport().await, (375, 667));
//! assert!(!browser.horizontal_overflow().await);
//! browser.click("button#book").await;
//! let png = browser.screenshot("booking-phone").await;
//! # }
//! ```

mod checks;
mod driver;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

pub use driver::CHROMEDRIVER;

/// Where Debian's `chromium` package puts the browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Chromium flags for a call page: a fake camera and microphone, permission prompts
/// answered yes.
pub const FAKE_MEDIA_ARGS: [&str; 2] = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
];

/// Default wait of [`Browser::wait_for`] and of page loads and scripts (generous: two
/// browsers and the stack share 2 cores with the rest of the suite in CI).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a wait polls.
const POLL: Duration = Duration::from_millis(50);

/// The CSS layout viewport a page sees (`window.innerWidth` × `window.innerHeight`), set
/// exactly with DevTools' `Emulation.setDeviceMetricsOverride`: a headless window's size
/// is no substitute (chromium 156 keeps windows at least 500 px wide and its window size
/// includes 143 px of browser UI in height).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Viewport {
    /// CSS pixels.
    pub width: u32,
    /// CSS pixels.
    pub height: u32,
    /// Device pixels per CSS pixel (screenshots are this many times larger).
    pub scale: f64,
    /// A phone: the page's `<meta name="viewport">` is obeyed (without it a page lays
    /// out 980 px wide, as on a real phone) and touch input is emulated.
    pub mobile: bool,
}

impl Viewport {
    /// A 375×667 phone (iPhone SE / 8) at 2× density.
    pub const PHONE: Self = Self {
        width: 375,
        height: 667,
        scale: 2.0,
        mobile: true,
    };
    /// A 1280×800 laptop.
    pub const DESKTOP: Self = Self {
        width: 1280,
        height: 800,
        scale: 1.0,
        mobile: false,
    };
}

/// How [`Browser::start`] starts chromium.
#[derive(Debug, Clone)]
pub struct Options {
    /// The viewport of the first page (change it with [`Browser::set_viewport`]).
    pub viewport: Viewport,
    /// Chromium flags added to the fixed ones (see [`Browser::start`]).
    pub args: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            viewport: Viewport::DESKTOP,
            args: Vec::new(),
        }
    }
}

impl Options {
    /// A [`Viewport::PHONE`] browser.
    pub fn phone() -> Self {
        Self {
            viewport: Viewport::PHONE,
            ..Self::default()
        }
    }

    /// With a fake camera and microphone ([`FAKE_MEDIA_ARGS`]).
    pub fn with_fake_media(mut self) -> Self {
        self.args.extend(FAKE_MEDIA_ARGS.map(String::from));
        self
    }
}

/// One headless chromium session (see the module docs).
pub struct Browser {
    client: Client,
    /// For the chromedriver extensions fantoccini does not speak (DevTools, browser log).
    http: reqwest::Client,
    session_url: String,
    /// Every browser-log entry read so far (chromedriver hands each out once).
    log: std::sync::Mutex<Vec<Value>>,
    // Declared last: dropped after the client, it deletes the session and stops chromedriver.
    _driver: driver::Driver,
}

impl Browser {
    /// Starts chromedriver and a chromium session: `/usr/bin/chromium --headless=new
    /// --no-sandbox --disable-gpu --disable-quic --no-first-run
    /// --disable-background-networking --disable-component-update --disable-sync
    /// --user-data-dir=<fresh temp folder>` and `options.args` (chromium's own background
    /// connections would be refused by the closed network here), with page-load and
    /// script timeouts of [`DEFAULT_TIMEOUT`], the browser log on, and the viewport set.
    ///
    /// # Panics
    ///
    /// When chromium or chromedriver is missing (`make browser` installs both) or the
    /// session does not open.
    pub async fn start(options: Options) -> Self {
        let profile = std::env::temp_dir().join(format!("chromium-test-{}", ulid::Ulid::new()));
        let dir = profile.clone();
        // Blocking: it waits for chromedriver's first lines.
        let mut driver = match tokio::task::spawn_blocking(move || driver::Driver::start(dir)).await
        {
            Ok(driver) => driver,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        let mut args: Vec<String> = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ]
        .map(String::from)
        .to_vec();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.extend(options.args);
        let timeout_ms = DEFAULT_TIMEOUT.as_millis() as u64;
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
            "timeouts": {"pageLoad": timeout_ms, "script": timeout_ms},
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("capabilities are an object")
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url())
            .await
            .unwrap_or_else(|e| panic!("no chromium session ({CHROMIUM}): {e}"));
        let session = client
            .session_id()
            .await
            .ok()
            .flatten()
            .expect("a new session has an id");
        let session_url = format!("{}/session/{session}", driver.url());
        driver.set_session(session);
        // The driver deletes the session itself on drop, even without a runtime.
        client.persist().await.expect("persist the session");
        let browser = Self {
            client,
            http: reqwest::Client::new(),
            session_url,
            log: std::sync::Mutex::new(Vec::new()),
            _driver: driver,
        };
        browser.install_recorder().await;
        browser.set_viewport(options.viewport).await;
        browser
    }

    /// The fantoccini client, for anything this API does not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Sets the layout viewport of this and later pages (reload a page already open
    /// to apply `mobile`'s `<meta name="viewport">` handling).
    pub async fn set_viewport(&self, viewport: Viewport) {
        self.devtools(
            "Emulation.setDeviceMetricsOverride",
            json!({
                "width": viewport.width, "height": viewport.height,
                "deviceScaleFactor": viewport.scale, "mobile": viewport.mobile,
            }),
        )
        .await;
        self.devtools(
            "Emulation.setTouchEmulationEnabled",
            json!({"enabled": viewport.mobile, "maxTouchPoints": if viewport.mobile { 5 } else { 1 }}),
        )
        .await;
    }

    /// `(window.innerWidth, window.innerHeight)` of the page, in CSS pixels. On a mobile
    /// viewport it is the viewport's size only for a page that fits it: chromium lays out
    /// a page without `<meta name="viewport">` 980 px wide, and zooms out on a page wider
    /// than the screen (see [`Browser::horizontal_overflow`]).
    pub async fn viewport(&self) -> (u64, u64) {
        let size = self
            .eval("return [window.innerWidth, window.innerHeight]")
            .await;
        match (size[0].as_u64(), size[1].as_u64()) {
            (Some(w), Some(h)) => (w, h),
            _ => panic!("viewport: {size}"),
        }
    }

    /// Opens `url` and waits for its load event.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// The page's URL now.
    pub async fn url(&self) -> String {
        let url = self.client.current_url().await.expect("current url");
        url.to_string()
    }

    /// Runs `js` as the body of a function in the page (`return` gives the value back;
    /// `arguments` is empty) and returns its JSON value.
    pub async fn eval(&self, js: &str) -> Value {
        self.client
            .execute(js, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("eval `{js}`: {e}"))
    }

    /// Clicks the first element matching the CSS `selector` (chromedriver waits for a
    /// navigation the click starts).
    pub async fn click(&self, selector: &str) {
        self.find(selector)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {selector}: {e}"));
    }

    /// Replaces the value of the field matching `selector` by typing `value` into it.
    pub async fn fill(&self, selector: &str, value: &str) {
        let field = self.find(selector).await;
        field
            .clear()
            .await
            .unwrap_or_else(|e| panic!("clear {selector}: {e}"));
        field
            .send_keys(value)
            .await
            .unwrap_or_else(|e| panic!("type into {selector}: {e}"));
    }

    /// Submits the form matching `selector` as a user does: a click on its first submit
    /// button (`<button>` without a type, `type=submit`), else `form.requestSubmit()`;
    /// both run the form's validation and submit handlers.
    pub async fn submit(&self, selector: &str) {
        let form = self.find(selector).await;
        let button = form
            .find(Locator::Css(
                "button:not([type]), button[type=submit], input[type=submit]",
            ))
            .await;
        match button {
            Ok(button) => button
                .click()
                .await
                .unwrap_or_else(|e| panic!("submit {selector}: {e}")),
            Err(_) => {
                let element = serde_json::to_value(&form).expect("element reference");
                self.client
                    .execute("arguments[0].requestSubmit()", vec![element])
                    .await
                    .unwrap_or_else(|e| panic!("submit {selector}: {e}"));
            }
        }
    }

    /// The rendered text (`innerText`) of the first element matching `selector`.
    pub async fn text(&self, selector: &str) -> String {
        self.find(selector)
            .await
            .text()
            .await
            .unwrap_or_else(|e| panic!("text of {selector}: {e}"))
    }

    /// Whether an element matches `selector` now.
    pub async fn exists(&self, selector: &str) -> bool {
        let found = self
            .client
            .execute(
                "return document.querySelector(arguments[0]) !== null",
                vec![json!(selector)],
            )
            .await
            .unwrap_or_else(|e| panic!("query {selector}: {e}"));
        found == Value::Bool(true)
    }

    /// Waits until `js` (a function body, as in [`Browser::eval`]) returns a truthy
    /// value, polling every 50 ms; returns that value. Errors while the page changes
    /// (a navigation under way) count as "not yet".
    ///
    /// # Panics
    ///
    /// After `timeout`, naming `js` and its last value.
    pub async fn wait_for(&self, js: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let last = self.client.execute(js, Vec::new()).await;
            if let Ok(value) = &last {
                if truthy(value) {
                    return value.clone();
                }
            }
            if Instant::now() > deadline {
                panic!("waited {timeout:?} for `{js}`: last {last:?}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits ([`DEFAULT_TIMEOUT`]) until an element matches `selector`.
    pub async fn wait_for_selector(&self, selector: &str) {
        let js = format!(
            "return document.querySelector({}) !== null",
            json!(selector)
        );
        self.wait_for(&js, DEFAULT_TIMEOUT).await;
    }

    /// Saves a PNG of the viewport as `<target dir>/screenshots/<name>.png` (replacing
    /// one of that name) and returns its path. `name` keeps ASCII letters, digits, `-`
    /// and `_`; other characters become `_`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let safe: String = name
            .chars()
            .map(|c| match c {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' => c,
                _ => '_',
            })
            .collect();
        let path = dir.join(format!("{safe}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    async fn find(&self, selector: &str) -> fantoccini::elements::Element {
        self.client
            .find(Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("no element matches {selector}: {e}"))
    }

    /// A chromedriver extension command: `POST {session}/{path}` with `body`; its `value`.
    async fn extension(&self, path: &str, body: Value) -> Value {
        let url = format!("{}/{path}", self.session_url);
        let answer: Value = self
            .http
            .post(&url)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        if answer["value"]["error"].is_string() {
            panic!("{path} {body}: {answer}");
        }
        answer["value"].clone()
    }

    /// Runs a DevTools protocol command in the session's page.
    pub async fn devtools(&self, command: &str, params: Value) -> Value {
        self.extension(
            "goog/cdp/execute",
            json!({"cmd": command, "params": params}),
        )
        .await
    }
}

/// `<target dir>/screenshots`: `CARGO_TARGET_DIR` when it is absolute, else found from the
/// test binary's path (`<target dir>/<profile>/deps/<binary>`).
pub fn screenshots_dir() -> PathBuf {
    let configured = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from);
    if let Some(dir) = configured.filter(|d| d.is_absolute()) {
        return dir.join("screenshots");
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "deps"))
        .and_then(|deps| deps.parent()?.parent())
        .map(|target| target.join("screenshots"))
        .unwrap_or_else(|| std::env::temp_dir().join("screenshots"))
}

/// JavaScript truthiness of a JSON value.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}
