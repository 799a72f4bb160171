//! Test harness: one local stack per test process — moto on a free loopback port, the
//! template's resources, and the dev server — shared by every test, each of which uses its
//! own tenant so they run in parallel.
//!
//! The dev server runs on its own runtime thread so it outlives any single test's runtime.
//! Moto stops by itself when the test process exits (its launcher watches its parent).

use std::sync::OnceLock;

use local_stack::devserver::DevServer;
use local_stack::moto::Moto;
use local_stack::template::{self, Template};
use local_stack::token::{AgentClaims, mint};
use local_stack::{LOCAL_REGION, LocalSettings, bootstrap};
use serde_json::Value;

pub use local_stack;

/// Secrets the test stack runs with (not the dev defaults, so nothing depends on them).
pub const JWT_SECRET: &str = "test-jwt-secret";
/// `META_APP_SECRET` of the test stack.
pub const META_APP_SECRET: &str = "test-app-secret";
/// `META_VERIFY_TOKEN` of the test stack.
pub const META_VERIFY_TOKEN: &str = "test-verify-token";

/// The running local stack.
pub struct TestStack {
    /// `http://127.0.0.1:<port>` of the dev server.
    pub base_url: String,
    /// The settings the functions were built with.
    pub settings: LocalSettings,
    /// The parsed template.
    pub template: Template,
    _moto: Moto,
}

static STACK: OnceLock<TestStack> = OnceLock::new();

/// The stack, started on first use.
pub fn stack() -> &'static TestStack {
    STACK.get_or_init(|| {
        std::thread::spawn(start)
            .join()
            .expect("the local stack starts")
    })
}

fn start() -> TestStack {
    let moto = Moto::start(0).expect("moto starts (run through `make test`, which installs it)");
    let settings = LocalSettings {
        port: 0,
        aws_endpoint: moto.endpoint(),
        jwt_secret: JWT_SECRET.to_owned(),
        overrides: [
            ("META_APP_SECRET", META_APP_SECRET),
            ("META_VERIFY_TOKEN", META_VERIFY_TOKEN),
            ("META_GRAPH_URL", "http://127.0.0.1:9/graph"),
            ("WECHAT_API_URL", "http://127.0.0.1:9/wechat"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
    };
    let template =
        Template::load(&template::default_path(), LOCAL_REGION).expect("template.yaml parses");
    let (tx, rx) = std::sync::mpsc::channel();
    let server_settings = settings.clone();
    let server_template = template.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("dev server runtime");
        runtime.block_on(async move {
            bootstrap::create_resources(&server_template, &server_settings.sdk_config())
                .await
                .expect("template resources are created in moto");
            let server = DevServer::new(&server_template, &server_settings)
                .expect("the dev server builds every function");
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind a loopback port");
            tx.send(listener.local_addr().expect("bound address"))
                .expect("harness waits");
            server
                .serve(listener, std::future::pending())
                .await
                .expect("dev server runs");
        });
    });
    let addr = rx.recv().expect("dev server starts");
    TestStack {
        base_url: format!("http://{addr}"),
        settings,
        template,
        _moto: moto,
    }
}

/// A tenant id no other test uses.
pub fn unique_tenant() -> String {
    format!("t-{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// A fresh numeric Meta id (external ids are unique deployment-wide).
pub fn unique_meta_id() -> String {
    let n = ulid::Ulid::new().0 % 10u128.pow(17);
    format!("1{n:017}")
}

/// A valid agent token for the test stack.
pub fn token(tenant: &str, role: &str) -> String {
    mint(JWT_SECRET, &AgentClaims::new(tenant, role, "agent-1", 600)).expect("token")
}

/// A JSON response: status and parsed body (`Value::Null` when not JSON).
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Parsed JSON body, or the text as a JSON string when not JSON.
    pub body: Value,
    /// Raw body.
    pub text: String,
}

impl Reply {
    /// `error.code` of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

/// Sends a request to the dev server.
pub async fn call(method: &str, path: &str, bearer: Option<&str>, body: Option<Vec<u8>>) -> Reply {
    let client = reqwest::Client::new();
    let url = format!("{}{path}", stack().base_url);
    let mut request = client.request(method.parse().expect("method"), url);
    if let Some(t) = bearer {
        request = request.bearer_auth(t);
    }
    if let Some(b) = body {
        request = request.header("content-type", "application/json").body(b);
    }
    let response = request.send().await.expect("dev server answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply { status, body, text }
}

/// `GET` with an optional token.
pub async fn get(path: &str, bearer: Option<&str>) -> Reply {
    call("GET", path, bearer, None).await
}

/// `POST` of a JSON value.
pub async fn post_json(path: &str, bearer: Option<&str>, body: &Value) -> Reply {
    call("POST", path, bearer, Some(body.to_string().into_bytes())).await
}
