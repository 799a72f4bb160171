//! `make dev`: moto, the template's resources, the provider sandbox on
//! 127.0.0.1:$SANDBOX_PORT (default 3100) and the dev server on 127.0.0.1:$PORT.
//! Ctrl-C stops everything it started.
//!
//! The functions call the sandbox instead of Meta and WeChat unless `META_GRAPH_URL` /
//! `WECHAT_API_URL` are set.

use local_stack::devserver::{DevServer, ws};
use local_stack::moto::Moto;
use local_stack::sandbox::{Sandbox, SandboxConfig};
use local_stack::template::{self, Template};
use local_stack::{BoxError, LOCAL_REGION, LocalSettings, bootstrap};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    shared::telemetry::init();
    let moto_port = std::env::var("MOTO_PORT")
        .ok()
        .map(|p| p.parse::<u16>())
        .transpose()
        .map_err(|_| "MOTO_PORT must be a port number")?
        .unwrap_or(0);
    let mut moto = Moto::start(moto_port)?;
    let result = run(&moto).await;
    moto.stop();
    result
}

/// Default port of the provider sandbox.
const DEFAULT_SANDBOX_PORT: u16 = 3100;

async fn run(moto: &Moto) -> Result<(), BoxError> {
    let mut settings = LocalSettings::from_env(moto.endpoint())?;
    let sandbox_port = std::env::var("SANDBOX_PORT")
        .ok()
        .map(|p| p.parse::<u16>())
        .transpose()
        .map_err(|_| "SANDBOX_PORT must be a port number")?
        .unwrap_or(DEFAULT_SANDBOX_PORT);
    let sandbox_listener = tokio::net::TcpListener::bind(("127.0.0.1", sandbox_port))
        .await
        .map_err(|e| {
            format!("cannot listen on 127.0.0.1:{sandbox_port} for the provider sandbox (set SANDBOX_PORT): {e}")
        })?;
    let sandbox_url = format!("http://{}", sandbox_listener.local_addr()?);
    let providers = use_sandbox(&mut settings, &sandbox_url);
    let sandbox = Sandbox::new(SandboxConfig {
        meta_app_secret: settings
            .overrides
            .get("META_APP_SECRET")
            .cloned()
            .unwrap_or_default(),
        ..SandboxConfig::default()
    });
    let serving = sandbox.clone();
    tokio::spawn(async move {
        if let Err(e) = serving.serve(sandbox_listener).await {
            tracing::error!(error = %e, "the provider sandbox stopped");
        }
    });

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", settings.port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e}", settings.port))?;
    let port = listener.local_addr()?.port();
    // Invitation and call links point at this server unless PUBLIC_BASE_URL says otherwise.
    let public =
        std::env::var("PUBLIC_BASE_URL").unwrap_or_else(|_| format!("http://127.0.0.1:{port}"));
    settings.overrides.insert("PUBLIC_BASE_URL".into(), public);
    // No STUN server is reachable here: two browsers on one machine need none.
    settings.overrides.insert("STUN_URLS".into(), String::new());
    let template = Template::load(&template::default_path(), LOCAL_REGION)?;
    // The WebSocket API is served by this server too: the call pages connect to
    // SIGNALING_URL (set it to reach the server through a tunnel, like PUBLIC_BASE_URL), the
    // functions post to SIGNALING_MANAGEMENT_URL.
    for (name, url) in ws::signaling_overrides(&template, &format!("127.0.0.1:{port}"))? {
        let url = match name.as_str() {
            "SIGNALING_URL" => std::env::var(&name).unwrap_or(url),
            _ => url,
        };
        settings.overrides.insert(name, url);
    }
    bootstrap::create_resources(&template, &settings.sdk_config()).await?;
    let server = DevServer::new(&template, &settings)?;
    let _standin =
        local_stack::standin::start(&settings.sdk_config(), server.event_rules()).await?;
    // Due schedules (scheduled messages, snooze ends) fire within about a second.
    let _schedules = server
        .schedule_target()
        .map(|target| local_stack::schedules::start(&settings.sdk_config(), target));
    sandbox.set_webhook_base(format!("http://127.0.0.1:{port}"));
    let signaling = match settings.overrides.get("SIGNALING_URL") {
        Some(url) => format!("signaling (WebSocket API): {url}?token=<call token>\n"),
        None => String::new(),
    };
    eprintln!(
        "\nchatroom dev server: http://127.0.0.1:{port}   (AWS emulator: {aws})\n\
         try: curl http://127.0.0.1:{port}/health\n\
         token: make token TENANT=acme ROLE=admin\n\
         provider sandbox: {sandbox_url}   ({providers})\n\
         let a token control a WhatsApp number (POST /channels proves it before connecting):\n  \
         curl -XPOST {sandbox_url}/sandbox/meta/assets \\\n    \
         -d '{{\"access_token\":\"EAAG-demo\",\"waba_id\":\"<waba_id>\",\"phone_number_ids\":[\"<phone_number_id>\"]}}'\n\
         chat as a customer (once that WhatsApp channel is connected):\n  \
         curl -XPOST {sandbox_url}/sandbox/customer-message \\\n    \
         -d '{{\"channel\":\"whatsapp\",\"account\":\"<phone_number_id>\",\"from\":\"15550001111\",\"name\":\"Ana\",\"text\":\"hi\"}}'\n\
         what was sent: curl {sandbox_url}/sandbox/outbox\n\
         {signaling}\
         Ctrl-C stops everything.\n",
        aws = moto.endpoint()
    );
    server
        .serve(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}

/// Points the provider URLs the environment leaves unset at the sandbox; says which
/// providers the functions will call. Media is fetched from loopback whenever a provider
/// URL points there (the dev server's rule), so a stand-in of one's own works too.
fn use_sandbox(settings: &mut LocalSettings, sandbox_url: &str) -> String {
    let mut used = Vec::new();
    for (name, path, provider) in [
        ("META_GRAPH_URL", "graph", "Graph API"),
        ("WECHAT_API_URL", "wechat", "WeChat API"),
        ("STRIPE_API_URL", "stripe", "Stripe API"),
    ] {
        if std::env::var_os(name).is_none() {
            settings
                .overrides
                .insert(name.to_owned(), format!("{sandbox_url}/{path}"));
            used.push(provider);
        }
    }
    for name in ["MEDIA_FETCH_ALLOW_LOOPBACK", "MEDIA_FETCH_ALLOWED_HOSTS"] {
        if let Ok(value) = std::env::var(name) {
            settings.overrides.insert(name.to_owned(), value);
        }
    }
    match used.as_slice() {
        [] => "not used: META_GRAPH_URL, WECHAT_API_URL and STRIPE_API_URL are set".to_owned(),
        used => format!("stands in for the {}", used.join(", ")),
    }
}
