//! A whole local stack inside one process, on the caller's runtime: moto, the template's
//! resources, the provider sandbox and the dev server with the event and schedule
//! stand-ins, wired the way `make dev` and the integration tests wire them (the functions
//! call the sandbox, the sandbox posts webhooks to the dev server). For benches that
//! measure the stack end to end; [`Hooks`] lets them observe the event handlers and the
//! sandbox.

use std::collections::HashMap;

use crate::devserver::{DevServer, EventRule};
use crate::moto::Moto;
use crate::sandbox::{Sandbox, SandboxConfig};
use crate::template::{self, Template};
use crate::{BoxError, LOCAL_REGION, LocalSettings, bootstrap, schedules, standin};

/// Wraps one event rule (its handler, typically) before the stand-in delivers to it.
pub type RuleHook = Box<dyn Fn(EventRule) -> EventRule + Send>;
/// Wraps the sandbox's router (a timing layer, typically).
pub type RouterHook = Box<dyn FnOnce(axum::Router) -> axum::Router + Send>;

/// Observation points of a stack; the default observes nothing.
#[derive(Default)]
pub struct Hooks {
    /// Applied to every event rule of the template.
    pub event_rule: Option<RuleHook>,
    /// Applied to the sandbox's router before it serves.
    pub sandbox: Option<RouterHook>,
    /// When set, every AWS request goes through a proxy that fails DynamoDB requests at
    /// these rates ([`crate::faults`]).
    pub dynamodb_faults: Option<std::sync::Arc<crate::faults::DynamoFaults>>,
}

/// A running stack. Its servers are tasks of the runtime that started it; moto stops when
/// this is dropped.
pub struct LocalStack {
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
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _moto: Moto,
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts a stack on free loopback ports. `overrides` are the template's secrets and
/// deploy parameters (`META_APP_SECRET`, …); the provider URLs point at the sandbox, which
/// signs its webhooks with `META_APP_SECRET`.
///
/// # Errors
/// Moto does not start, a resource cannot be created, a function does not build, or a
/// port cannot be bound.
pub async fn start(
    jwt_secret: &str,
    overrides: &[(&str, &str)],
    hooks: Hooks,
) -> Result<LocalStack, BoxError> {
    let moto = Moto::start(0)?;
    let mut overrides: HashMap<String, String> = overrides
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let sandbox = Sandbox::new(SandboxConfig {
        meta_app_secret: overrides
            .get("META_APP_SECRET")
            .cloned()
            .unwrap_or_default(),
        ..SandboxConfig::default()
    });
    let sandbox_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sandbox_url = format!("http://{}", sandbox_listener.local_addr()?);
    overrides.insert("META_GRAPH_URL".into(), format!("{sandbox_url}/graph"));
    overrides.insert("WECHAT_API_URL".into(), format!("{sandbox_url}/wechat"));
    overrides.insert("STRIPE_API_URL".into(), format!("{sandbox_url}/stripe"));
    let router = match hooks.sandbox {
        Some(wrap) => wrap(sandbox.router()),
        None => sandbox.router(),
    };
    let mut tasks = vec![tokio::spawn(async move {
        if let Err(e) = axum::serve(sandbox_listener, router).await {
            tracing::error!(error = %e, "the provider sandbox stopped");
        }
    })];

    let aws_endpoint = match hooks.dynamodb_faults.clone() {
        Some(faults) => {
            let (url, task) = crate::faults::start(moto.endpoint(), faults).await?;
            tasks.push(task);
            url
        }
        None => moto.endpoint(),
    };
    let settings = LocalSettings {
        port: 0,
        aws_endpoint,
        jwt_secret: jwt_secret.to_owned(),
        overrides,
    };
    // Bound first: the public pages' links name its address.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base_url = format!("http://{}", listener.local_addr()?);
    let mut settings = settings;
    settings
        .overrides
        .insert("PUBLIC_BASE_URL".into(), base_url.clone());
    settings.overrides.insert("STUN_URLS".into(), String::new());
    let template = Template::load(&template::default_path(), LOCAL_REGION)?;
    // The WebSocket API's stand-in is on the same server (SIGNALING_URL,
    // SIGNALING_MANAGEMENT_URL).
    let authority = listener.local_addr()?.to_string();
    settings
        .overrides
        .extend(crate::devserver::ws::signaling_overrides(
            &template, &authority,
        )?);
    bootstrap::create_resources(&template, &settings.sdk_config()).await?;
    let server = DevServer::new(&template, &settings)?;
    let rules = match &hooks.event_rule {
        Some(wrap) => server.event_rules().into_iter().map(wrap).collect(),
        None => server.event_rules(),
    };
    tasks.extend(standin::start(&settings.sdk_config(), rules).await?);
    if let Some(target) = server.schedule_target() {
        tasks.push(schedules::start(&settings.sdk_config(), target));
    }
    tasks.push(tokio::spawn(async move {
        if let Err(e) = server.serve(listener, std::future::pending()).await {
            tracing::error!(error = %e, "the dev server stopped");
        }
    }));
    sandbox.set_webhook_base(base_url.clone());
    Ok(LocalStack {
        base_url,
        sandbox_url,
        sandbox,
        settings,
        template,
        tasks,
        _moto: moto,
    })
}
