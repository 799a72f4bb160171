//! The browser harness on a page served here (no local stack): a phone viewport, the page
//! checks finding nothing on a good page and each problem on a bad one, a click, a form,
//! a screenshot, and two browsers with fake cameras at once (as a call needs).

use std::time::Duration;

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use integration_tests::browser::{Browser, Options, Viewport};

/// A strict policy: scripts, styles and form posts from this origin only.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const GOOD: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Book a visit</title><link rel="stylesheet" href="/app.css"><script src="/app.js" defer></script>
</head><body><main>
<h1>Book a visit</h1>
<form method="post" action="/hello">
  <label for="name">Your name</label>
  <input id="name" name="name" autocomplete="name" required>
  <label><input type="checkbox" name="remind"> Remind me the day before</label>
  <button type="button" id="hello">Say hello</button>
  <button>Book</button>
</form>
<p id="status" role="status"></p>
</main></body></html>"#;

const CSS: &str = "body { font: 16px/1.5 sans-serif; margin: 0 16px; } \
                   input, button { display: block; min-height: 44px; min-width: 44px; \
                   margin: 8px 0; font: inherit; } input[type=checkbox] { display: inline; min-height: 0; min-width: 0; } \
                   label { display: block; min-height: 44px; }";

const JS: &str = "document.getElementById('hello').addEventListener('click', () => { \
                  document.getElementById('status').textContent = 'Hello!'; });";

const BAD: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Bad</title><link rel="stylesheet" href="/bad.css"><script src="/bad.js"></script>
</head><body>
<input id="nameless" placeholder="Name">
<button id="tiny"></button>
<div id="wide">wide</div>
<script>document.title = 'inline ran';</script>
</body></html>"#;

async fn hello(body: String) -> Html<String> {
    let name = body
        .split('&')
        .find_map(|pair| pair.strip_prefix("name="))
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>();
    Html(format!(
        "<!doctype html><title>Booked</title><p id=greeting>Booked for {name}</p>"
    ))
}

/// Serves the pages on a free loopback port (each with the CSP header): the base URL.
async fn serve() -> String {
    let csp = |body: &'static str, kind: &'static str| {
        move || async move {
            (
                [
                    (header::CONTENT_TYPE, kind),
                    (header::CONTENT_SECURITY_POLICY, CSP),
                ],
                body,
            )
                .into_response()
        }
    };
    let app = Router::new()
        .route("/", get(csp(GOOD, "text/html; charset=utf-8")))
        .route("/app.css", get(csp(CSS, "text/css")))
        .route("/app.js", get(csp(JS, "text/javascript")))
        .route("/bad", get(csp(BAD, "text/html; charset=utf-8")))
        .route(
            "/bad.css",
            get(csp(
                "#tiny { width: 10px; height: 10px; padding: 0 } #wide { width: 600px }",
                "text/css",
            )),
        )
        .route(
            "/bad.js",
            get(csp("console.error('bad page script');", "text/javascript")),
        )
        .route("/hello", axum::routing::post(hello))
        .route(
            "/favicon.ico",
            get(|| async { axum::http::StatusCode::NO_CONTENT }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// Width and height of a PNG, from its IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    (word(16), word(20))
}

#[tokio::test]
async fn a_phone_page_is_checked_clicked_submitted_and_photographed() {
    let base = serve().await;
    let browser = Browser::start(Options::phone()).await;
    browser.goto(&base).await;

    assert_eq!(browser.viewport().await, (375, 667));
    assert!(!browser.horizontal_overflow().await);
    assert_eq!(browser.unlabelled_controls().await, Vec::<String>::new());
    assert_eq!(browser.small_tap_targets(44).await, Vec::<String>::new());

    browser.click("#hello").await;
    browser
        .wait_for(
            "return document.getElementById('status').textContent === 'Hello!'",
            Duration::from_secs(2),
        )
        .await;
    assert_eq!(browser.text("#status").await, "Hello!");
    let png = browser.screenshot("browser-smoke-phone").await;
    assert_eq!(
        png_size(&std::fs::read(&png).expect("the screenshot")),
        (750, 1334)
    );
    assert_eq!(browser.csp_violations().await, Vec::<String>::new());
    assert_eq!(browser.console_errors().await, Vec::<String>::new());

    browser.fill("#name", "Ana").await;
    browser.submit("form").await;
    browser.wait_for_selector("#greeting").await;
    assert_eq!(browser.text("#greeting").await, "Booked for Ana");
}

#[tokio::test]
async fn the_checks_find_each_problem_of_a_bad_page() {
    let base = serve().await;
    let browser = Browser::start(Options::phone()).await;
    browser.goto(&format!("{base}/bad")).await;

    assert!(browser.horizontal_overflow().await);
    assert_eq!(
        browser.unlabelled_controls().await,
        ["input#nameless[type=text]", "button#tiny"]
    );
    let small = browser.small_tap_targets(24).await;
    assert!(small.contains(&"button#tiny 10x10".to_owned()), "{small:?}");
    assert_eq!(browser.csp_violations().await, ["script-src-elem inline"]);
    assert_ne!(browser.eval("return document.title").await, "inline ran");
    let errors = browser.console_errors().await;
    assert!(
        errors.iter().any(|e| e.contains("bad page script")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("security: ") && e.contains("Content Security Policy")),
        "{errors:?}"
    );

    // A phone obeys the page's viewport tag; a desktop viewport is exact too.
    browser.set_viewport(Viewport::DESKTOP).await;
    browser.goto(&base).await;
    assert_eq!(browser.viewport().await, (1280, 800));
}

#[tokio::test]
async fn two_browsers_with_fake_cameras_run_at_once() {
    let base = serve().await;
    let (a, b) = tokio::join!(
        Browser::start(Options::default().with_fake_media()),
        Browser::start(Options::default().with_fake_media()),
    );
    tokio::join!(a.goto(&base), b.goto(&base));
    // `execute/sync` waits for a returned promise.
    let camera = "return navigator.mediaDevices.getUserMedia({video: true, audio: true})\
                  .then((s) => [s.getVideoTracks().length, s.getAudioTracks().length])";
    let (in_a, in_b) = tokio::join!(a.eval(camera), b.eval(camera));
    assert_eq!(in_a, serde_json::json!([1, 1]));
    assert_eq!(in_b, serde_json::json!([1, 1]));
    assert_eq!(a.viewport().await, (1280, 800));
}
