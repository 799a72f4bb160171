//! Test harness: one local stack per test process — moto on a free loopback port, the
//! template's resources, the provider sandbox and the dev server — shared by every test,
//! each of which uses its own tenant (and provider accounts) so they run in parallel.
//!
//! The dev server runs on its own runtime thread so it outlives any single test's runtime.
//! Moto stops by itself when the test process exits (its launcher watches its parent).

use std::sync::OnceLock;

use local_stack::devserver::DevServer;
use local_stack::moto::Moto;
use local_stack::sandbox::{ChaosSettings, Fault, Sandbox, SandboxConfig};
use local_stack::template::{self, Template};
use local_stack::token::{AgentClaims, mint};
use local_stack::{LOCAL_REGION, LocalSettings, bootstrap};
use serde_json::Value;

pub use local_stack;

pub mod browser;

/// Secrets the test stack runs with (not the dev defaults, so nothing depends on them).
pub const JWT_SECRET: &str = "test-jwt-secret";
/// `META_APP_SECRET` of the test stack.
pub const META_APP_SECRET: &str = "test-app-secret";
/// `META_VERIFY_TOKEN` of the test stack.
pub const META_VERIFY_TOKEN: &str = "test-verify-token";

/// The name of the dev server's threads (its runtime's workers and blocking threads).
pub const DEV_SERVER_THREAD: &str = "dev-server";

/// The running local stack.
pub struct TestStack {
    /// `http://127.0.0.1:<port>` of the dev server.
    pub base_url: String,
    /// `http://127.0.0.1:<port>` of the provider sandbox.
    pub sandbox_url: String,
    /// The provider sandbox (shares its state with the one serving).
    pub sandbox: Sandbox,
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

/// An S3 client for the emulator (path-style addressing, as moto serves it).
pub fn s3_client() -> aws_sdk_s3::Client {
    let sdk = stack().settings.sdk_config();
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    )
}

/// The provider sandbox of the stack (Graph API and WeChat API on loopback): its outbox,
/// failure injection and webhooks, called directly.
pub fn sandbox() -> &'static Sandbox {
    &stack().sandbox
}

/// Makes the provider sandbox serve a file: `GET {graph}/{id}` answers like the Graph API
/// (url, mime_type, sha256, file_size; it needs the channel's bearer token, as Meta's
/// does), `GET /files/{id}` and WeChat's `media/get` return the bytes.
pub fn sandbox_put(id: &str, bytes: Vec<u8>, mime: &str) {
    sandbox().put_file(id, bytes, mime);
}

/// The sandbox's base URL.
pub fn sandbox_url() -> String {
    stack().sandbox_url.clone()
}

/// The send calls the sandbox recorded for an account (phone_number_id, page / Instagram
/// id, WeChat appid), oldest first, as the JSON `GET /sandbox/outbox` gives.
pub fn sandbox_outbox(account: &str) -> Vec<Value> {
    sandbox()
        .outbox(Some(account), None)
        .iter()
        .map(|item| serde_json::to_value(item).expect("an outbox item is JSON"))
        .collect()
}

/// Queues failures for the next send calls to an account, in the JSON form of
/// `POST /sandbox/fail` (`{"status":429,"retry_after":1}`, `{"errcode":45015}`,
/// `{"delay_ms":3000}`, …).
pub fn sandbox_fail(account: &str, next: Vec<Value>) {
    let faults = next
        .iter()
        .map(|f| Fault::parse(f).unwrap_or_else(|e| panic!("fault {f}: {e}")));
    sandbox().fail_next(account, faults.collect::<Vec<_>>());
}

/// Makes sends to an account fail at random with a seed; both rates zero turns it off.
pub fn sandbox_chaos(account: &str, transient_rate: f64, permanent_rate: f64, seed: u64) {
    sandbox()
        .set_chaos(
            account,
            ChaosSettings {
                transient_rate,
                permanent_rate,
                seed,
            },
        )
        .expect("chaos rates are 0..=1");
}

fn start() -> TestStack {
    let moto = Moto::start(0).expect("moto starts (run through `make test`, which installs it)");
    let sandbox = Sandbox::new(SandboxConfig {
        meta_app_secret: META_APP_SECRET.to_owned(),
        ..SandboxConfig::default()
    });
    let serving = sandbox.clone();
    let (sandbox_tx, sandbox_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("sandbox runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind sandbox");
            sandbox_tx
                .send(listener.local_addr().expect("addr"))
                .expect("harness waits");
            serving.serve(listener).await.expect("sandbox serves");
        });
    });
    let sandbox_url = format!("http://{}", sandbox_rx.recv().expect("sandbox starts"));
    // Bound first: the public pages' links (PUBLIC_BASE_URL) name the dev server.
    let server_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    server_listener
        .set_nonblocking(true)
        .expect("a non-blocking listener");
    let server_addr = server_listener.local_addr().expect("bound address");
    let public_base_url = format!("http://{server_addr}");
    let settings = LocalSettings {
        port: 0,
        aws_endpoint: moto.endpoint(),
        jwt_secret: JWT_SECRET.to_owned(),
        overrides: [
            ("PUBLIC_BASE_URL", public_base_url.as_str()),
            ("META_APP_SECRET", META_APP_SECRET),
            ("META_VERIFY_TOKEN", META_VERIFY_TOKEN),
            ("META_GRAPH_URL", &format!("{sandbox_url}/graph")),
            ("WECHAT_API_URL", &format!("{sandbox_url}/wechat")),
            ("STRIPE_API_URL", &format!("{sandbox_url}/stripe")),
            ("SIGNALING_URL", &format!("ws://{server_addr}/ws")),
            (
                "SIGNALING_MANAGEMENT_URL",
                &format!("http://{server_addr}/ws"),
            ),
            ("STUN_URLS", ""),
            ("MEDIA_FETCH_ALLOW_LOOPBACK", "true"),
            // Only the sandbox: fixture URLs pointing at Meta's CDN are refused at once.
            ("MEDIA_FETCH_ALLOWED_HOSTS", "localhost"),
            // Below the sandbox's injected delays (`{"delay_ms": 2500}`) so timeouts are
            // testable; far above its normal answer time.
            ("OUTBOUND_CALL_TIMEOUT_MS", "2000"),
            // Retries of injected transient failures back off from 20 ms, not 250 ms.
            ("OUTBOUND_RETRY_BASE_MS", "20"),
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
            // Named, so that tests can tell the server's panics from their own.
            .thread_name(DEV_SERVER_THREAD)
            .enable_all()
            .build()
            .expect("dev server runtime");
        runtime.block_on(async move {
            bootstrap::create_resources(&server_template, &server_settings.sdk_config())
                .await
                .expect("template resources are created in moto");
            let server = DevServer::new(&server_template, &server_settings)
                .expect("the dev server builds every function");
            let _standin =
                local_stack::standin::start(&server_settings.sdk_config(), server.event_rules())
                    .await
                    .expect("the event stand-in starts");
            let _schedules = server
                .schedule_target()
                .map(|target| local_stack::schedules::start(&server_settings.sdk_config(), target));
            let listener =
                tokio::net::TcpListener::from_std(server_listener).expect("a tokio listener");
            tx.send(server_addr).expect("harness waits");
            server
                .serve(listener, std::future::pending())
                .await
                .expect("dev server runs");
        });
    });
    let addr = rx.recv().expect("dev server starts");
    // The sandbox started first (the functions need its URL): now it learns the dev server's.
    sandbox.set_webhook_base(format!("http://{addr}"));
    TestStack {
        base_url: format!("http://{addr}"),
        sandbox_url,
        sandbox,
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

/// `PUT` of an optional JSON value, as `bearer`.
pub async fn put_as(path: &str, bearer: &str, body: Option<&Value>) -> Reply {
    call(
        "PUT",
        path,
        Some(bearer),
        body.map(|b| b.to_string().into_bytes()),
    )
    .await
}

/// `PATCH` of a JSON value, as `bearer`.
pub async fn patch_as(path: &str, bearer: &str, body: &Value) -> Reply {
    call(
        "PATCH",
        path,
        Some(bearer),
        Some(body.to_string().into_bytes()),
    )
    .await
}

/// `DELETE`, as `bearer`.
pub async fn delete_as(path: &str, bearer: &str) -> Reply {
    call("DELETE", path, Some(bearer), None).await
}

/// A connected channel of a test tenant.
#[derive(Debug, Clone)]
pub struct TestChannel {
    /// The tenant.
    pub tenant: String,
    /// Our channel id.
    pub id: String,
    /// The provider account id.
    pub external_id: String,
    /// The WeChat token (signatures), for WeChat channels.
    pub wechat_token: String,
}

impl TestChannel {
    /// An admin token of the channel's tenant.
    pub fn admin(&self) -> String {
        token(&self.tenant, "admin")
    }
}

/// Lets the body's access token control its Meta account in the sandbox (as the business
/// would have it in Meta Business Manager), so `POST /channels` can prove it.
pub fn grant_meta(body: &Value) {
    let Some(access_token) = body["credentials"]["access_token"].as_str() else {
        return;
    };
    let id = body["external_id"].as_str().unwrap_or_default().to_owned();
    let mut assets = local_stack::sandbox::MetaAssets {
        access_token: access_token.to_owned(),
        app_secret: body["credentials"]["app_secret"]
            .as_str()
            .map(str::to_owned),
        ..Default::default()
    };
    match body["type"].as_str() {
        Some("whatsapp") => {
            assets.waba_id = body["waba_id"].as_str().map(str::to_owned);
            assets.phone_number_ids = vec![id];
        }
        Some("messenger") => assets.page_ids = vec![id],
        Some("instagram") => assets.instagram_ids = vec![id],
        _ => return,
    }
    if assets.waba_id.is_none() && !assets.phone_number_ids.is_empty() {
        return;
    }
    sandbox().grant_meta(assets).expect("a sandbox grant");
}

/// Connects a channel of `kind` for a new tenant through the API.
pub async fn connect(kind: &str) -> TestChannel {
    connect_for(&unique_tenant(), kind, serde_json::json!({})).await
}

/// Connects a channel of `kind` for `tenant`, with extra fields merged into the body.
pub async fn connect_for(tenant: &str, kind: &str, extra: Value) -> TestChannel {
    let wechat_token = format!("wx-token-{}", ulid::Ulid::new());
    let (external_id, credentials) = match kind {
        "wechat" => (
            format!("gh_{}", &ulid::Ulid::new().to_string().to_lowercase()[..12]),
            serde_json::json!({"app_id": "wx123", "app_secret": "wx-secret", "token": wechat_token}),
        ),
        _ => (
            unique_meta_id(),
            serde_json::json!({"access_token": "EAAG-test"}),
        ),
    };
    let mut body = serde_json::json!({
        "type": kind, "external_id": external_id, "name": format!("{kind} test"), "credentials": credentials,
    });
    if kind == "whatsapp" {
        body["waba_id"] = Value::String(unique_meta_id());
    }
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    grant_meta(&body);
    let reply = post_json("/channels", Some(&token(tenant, "admin")), &body).await;
    assert_eq!(reply.status, 201, "connect {kind}: {}", reply.text);
    TestChannel {
        tenant: tenant.to_owned(),
        id: reply.body["id"].as_str().expect("channel id").to_owned(),
        external_id,
        wechat_token,
    }
}

/// The fixture corpus folder.
pub fn fixtures_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/webhooks")
}

/// Placeholder values for one rendering of a fixture.
#[derive(Debug, Clone)]
pub struct FixtureVars {
    /// The business account id (phone_number_id / page / IG id / WeChat id).
    pub account: String,
    /// The customer id at the provider.
    pub sender: String,
    /// Unique part of provider message ids.
    pub msg_id: String,
    /// Epoch seconds of the message.
    pub timestamp: i64,
    /// Provider id of an earlier message that statuses refer to.
    pub ref_id: String,
}

impl FixtureVars {
    /// Fresh values for a channel, timestamped now.
    pub fn new(channel: &TestChannel, wechat: bool) -> Self {
        let u = ulid::Ulid::new();
        Self {
            account: channel.external_id.clone(),
            sender: if wechat {
                format!("oUser{}", &u.to_string()[..16])
            } else {
                unique_meta_id()
            },
            msg_id: if wechat {
                format!("{}", u.0 % 10u128.pow(18))
            } else {
                u.to_string()
            },
            timestamp: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_secs() as i64,
            ref_id: format!("wamid.REF{}", ulid::Ulid::new()),
        }
    }

    /// Substitutes every placeholder.
    pub fn render(&self, template: &str) -> String {
        template
            .replace("{{PHONE_NUMBER_ID}}", &self.account)
            .replace("{{PAGE_ID}}", &self.account)
            .replace("{{IG_ID}}", &self.account)
            .replace("{{WECHAT_ID}}", &self.account)
            .replace("{{WABA_ID}}", "102290129340398")
            .replace("{{SENDER}}", &self.sender)
            .replace("{{MSG_ID}}", &self.msg_id)
            .replace("{{TIMESTAMP_MS}}", &(self.timestamp * 1000).to_string())
            .replace("{{TIMESTAMP}}", &self.timestamp.to_string())
            .replace("{{REF_ID}}", &self.ref_id)
    }
}

/// A fixture's text.
pub fn fixture(path: &str) -> String {
    std::fs::read_to_string(fixtures_dir().join(path))
        .unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// `X-Hub-Signature-256` of a body with the test stack's app secret.
pub fn meta_signature(body: &[u8]) -> String {
    shared::adapters::channels::graph::sign(META_APP_SECRET, body)
}

/// Posts a Meta webhook with the given signature header (or none).
pub async fn post_meta_with(provider: &str, body: Vec<u8>, signature: Option<String>) -> Reply {
    let client = reqwest::Client::new();
    let mut request = client
        .post(format!("{}/webhooks/{provider}", stack().base_url))
        .header("content-type", "application/json")
        .body(body);
    if let Some(sig) = signature {
        request = request.header("x-hub-signature-256", sig);
    }
    let response = request.send().await.expect("dev server answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply { status, body, text }
}

/// Posts a correctly signed Meta webhook.
pub async fn post_meta(provider: &str, body: &str) -> Reply {
    let sig = meta_signature(body.as_bytes());
    post_meta_with(provider, body.as_bytes().to_vec(), Some(sig)).await
}

/// The query string WeChat adds: timestamp, nonce and signature for a token.
pub fn wechat_query(token: &str) -> String {
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        .to_string();
    let nonce = format!("{}", ulid::Ulid::new().0 % 1_000_000_000);
    let signature =
        shared::adapters::channels::wechat::webhook::signature(token, &timestamp, &nonce);
    format!("timestamp={timestamp}&nonce={nonce}&signature={signature}")
}

/// Posts a signed WeChat message to a channel.
pub async fn post_wechat(channel: &TestChannel, xml: &str) -> Reply {
    let path = format!(
        "/webhooks/wechat/{}?{}",
        channel.id,
        wechat_query(&channel.wechat_token)
    );
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{}{path}", stack().base_url))
        .header("content-type", "text/xml")
        .body(xml.to_owned())
        .send()
        .await
        .expect("dev server answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply { status, body, text }
}

/// Every conversation of a tenant (all pages).
pub async fn all_conversations(tenant: &str) -> Vec<Value> {
    let admin = token(tenant, "admin");
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/conversations?limit=100&cursor={c}"),
            None => "/conversations?limit=100".to_owned(),
        };
        let reply = get(&path, Some(&admin)).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        out.extend(reply.body["items"].as_array().cloned().unwrap_or_default());
        match reply.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

/// Every message of a conversation (all pages, newest first).
pub async fn all_messages(tenant: &str, conversation_id: &str) -> Vec<Value> {
    let admin = token(tenant, "admin");
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let base = format!("/conversations/{conversation_id}/messages?limit=100");
        let path = match &cursor {
            Some(c) => format!("{base}&cursor={c}"),
            None => base,
        };
        let reply = get(&path, Some(&admin)).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        out.extend(reply.body["items"].as_array().cloned().unwrap_or_default());
        match reply.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

/// Every message of every conversation of a tenant.
pub async fn all_tenant_messages(tenant: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for c in all_conversations(tenant).await {
        out.extend(all_messages(tenant, c["id"].as_str().expect("id")).await);
    }
    out
}

/// The system messages of a conversation with `event` (newest first).
pub async fn system_events(tenant: &str, conversation: &str, event: &str) -> Vec<Value> {
    all_messages(tenant, conversation)
        .await
        .into_iter()
        .filter(|m| m["direction"] == "system" && m["event"] == event)
        .collect()
}

/// A conversation as an agent of `tenant` reads it (`GET /conversations/{id}`, 200).
pub async fn conversation_view(tenant: &str, id: &str) -> Value {
    let reply = get(
        &format!("/conversations/{id}"),
        Some(&token(tenant, "agent")),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body
}

/// The conversation ids the first page of `GET /conversations?{query}` answers an agent.
pub async fn listed_ids(tenant: &str, query: &str) -> Vec<String> {
    let reply = get(
        &format!("/conversations?{query}"),
        Some(&token(tenant, "agent")),
    )
    .await;
    assert_eq!(reply.status, 200, "{query}: {}", reply.text);
    reply.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Makes `id` an agent of the channel's tenant (`Agent <id>`).
pub async fn make_agent(channel: &TestChannel, id: &str) {
    let body = serde_json::json!({"name": format!("Agent {id}"), "role": "agent"});
    let reply = put_as(&format!("/agents/{id}"), &channel.admin(), Some(&body)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

/// Adds `name` to the channel's tenant's label catalog.
pub async fn make_label(channel: &TestChannel, name: &str) {
    let body = serde_json::json!({"name": name, "color": "#3b82f6"});
    let reply = post_json("/labels", Some(&channel.admin()), &body).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
}

/// A customer of `channel` who wrote `hours_ago`: the conversation id and their id.
pub async fn customer_wrote(channel: &TestChannel, kind: &str, hours_ago: i64) -> (String, String) {
    let (id, vars) = customer_wrote_as(channel, kind, hours_ago).await;
    (id, vars.sender)
}

/// [`customer_wrote`], with the fixture's variables the customer wrote with (to write
/// again as the same customer).
pub async fn customer_wrote_as(
    channel: &TestChannel,
    kind: &str,
    hours_ago: i64,
) -> (String, FixtureVars) {
    let mut vars = FixtureVars::new(channel, kind == "wechat");
    vars.timestamp = (chrono::Utc::now() - chrono::Duration::hours(hours_ago)).timestamp();
    let reply = match kind {
        "wechat" => post_wechat(channel, &vars.render(&fixture("wechat/text.xml"))).await,
        _ => post_meta(kind, &vars.render(&fixture(&format!("{kind}/text.json")))).await,
    };
    assert_eq!(reply.status, 200, "{}", reply.text);
    let id = shared::domain::conversation::conversation_id(
        &shared::domain::ids::ChannelId::parse(&channel.id).expect("channel id"),
        &vars.sender,
    );
    (id, vars)
}

/// Saves a bot as the channel's tenant's admin (`PUT /bots/{id}`, 200 or 201): the bot.
pub async fn put_bot(channel: &TestChannel, id: &str, bot: &Value) -> Value {
    let reply = put_as(&format!("/bots/{id}"), &channel.admin(), Some(bot)).await;
    assert!(matches!(reply.status, 200 | 201), "PUT bot: {}", reply.text);
    reply.body
}

/// A WhatsApp text webhook from `vars.sender` saying `text` (the text fixture, rewritten).
pub fn whatsapp_text(vars: &FixtureVars, text: &str) -> String {
    let mut body: Value =
        serde_json::from_str(&vars.render(&fixture("whatsapp/text.json"))).expect("fixture");
    body["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] =
        Value::String(text.to_owned());
    body.to_string()
}

/// The sends the sandbox accepted for one customer of `account`, oldest first.
pub fn accepted_sends_to(account: &str, customer: &str) -> Vec<Value> {
    let mut items: Vec<Value> = sandbox_outbox(account)
        .into_iter()
        .filter(|i| i["to"] == customer && i["status"] == 200 && i["injected"] != true)
        .collect();
    items.sort_by_key(|i| i["seq"].as_u64());
    items
}

/// Waits (10 s at most) until the conversation has `count` system messages with `event`.
pub async fn wait_events(
    tenant: &str,
    conversation: &str,
    event: &str,
    count: usize,
) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let found = system_events(tenant, conversation, event).await;
        if found.len() >= count || std::time::Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// `POST /conversations/{conversation}/scheduled-messages` as an agent of the tenant.
pub async fn schedule_message(channel: &TestChannel, conversation: &str, body: &Value) -> Reply {
    post_json(
        &format!("/conversations/{conversation}/scheduled-messages"),
        Some(&token(&channel.tenant, "agent")),
        body,
    )
    .await
}

/// The scheduler function's event handler, built as the dev server builds it.
pub fn scheduler_handler() -> local_stack::functions::EventHandler {
    local_stack::devserver::event_handler(&stack().template, &stack().settings, "scheduler")
        .expect("the scheduler function builds")
}

/// The input EventBridge Scheduler gives the scheduler function for a scheduled message.
pub fn fire_input(tenant: &str, id: &str) -> Value {
    serde_json::json!({"kind": "scheduled_message", "tenant_id": tenant, "scheduled_id": id})
}

/// Delivers an event to a function's handler as Lambda's asynchronous invocation does: a
/// delivery that fails because a send of another delivery of the same event is not settled
/// yet (it is running) is delivered again a moment later, up to 50 times; any other answer
/// is returned. Tests that deliver an event more than once (Scheduler and EventBridge
/// deliver at least once) go through this.
pub async fn deliver(
    handler: &local_stack::functions::EventHandler,
    input: Value,
) -> Result<(), String> {
    let mut tries = 0;
    loop {
        match handler(input.clone()).await {
            Err(e) if e.contains("not settled yet") && tries < 50 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            answer => return answer,
        }
    }
}
