//! `make bench`, payments (SPEC §11): the `payments` handler called directly with API
//! Gateway events over moto (Stripe: the provider sandbox's, in process), an SDK
//! interceptor recording every AWS request.
//!
//! AWS requests per payment request (goal ≤ 4 besides Stripe's call and the send's own) and
//! per webhook event (goal ≤ 2 besides the thank-you's send), and the handler's time for
//! each over moto.

use std::time::Instant;

use chrono::Utc;
use lambda_http::Request;
use local_stack::bench::{self, CountedClients};
use local_stack::counter::{Recorded, RequestCounter};
use local_stack::moto::Moto;
use local_stack::sandbox::{Sandbox, SandboxConfig};
use local_stack::template::{self, Template};
use local_stack::{BoxError, LOCAL_REGION, LocalSettings, bootstrap};
use serde_json::{Value, json};
use shared::adapters::dynamo::DynamoStore;

/// The WhatsApp channel's phone number id (tenant `bench`, that of `bench::agent_event`).
const PHONE: &str = "1065403588";
/// The Stripe account (secret key) and the webhook secret of tenant `bench`.
const SECRET_KEY: &str = "sk_test_bench";
const WEBHOOK_SECRET: &str = "whsec_bench_secret";

fn request(event: &Value) -> Result<Request, BoxError> {
    Ok(lambda_http::request::from_str(&event.to_string())?)
}

struct Row {
    name: &'static str,
    recorded: Recorded,
    /// Its own requests before the send's, and after them.
    own: (usize, usize),
    budget: usize,
    ms: f64,
}

struct Bench {
    app: payments::App,
    counter: RequestCounter,
}

impl Bench {
    async fn call(&self, event: Value) -> Result<(u16, Value, Recorded, f64), BoxError> {
        let request = request(&event)?;
        self.counter.take_recorded();
        let started = Instant::now();
        let response = payments::handle_http(&self.app, request).await;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let recorded = self.counter.take_recorded();
        let status = response.status().as_u16();
        let body = serde_json::from_slice(response.body().as_ref()).unwrap_or(Value::Null);
        Ok((status, body, recorded, ms))
    }

    async fn agent(
        &self,
        method: &str,
        route: &str,
        path: &str,
        id: Option<&str>,
        body: &Value,
    ) -> Result<(u16, Value, Recorded, f64), BoxError> {
        let params = id.map_or(Value::Null, |id| json!({"id": id}));
        self.call(bench::agent_event(
            method,
            route,
            path,
            params,
            &body.to_string(),
        ))
        .await
    }

    /// A Stripe event about `payment` as Stripe posts it, signed with the tenant's secret.
    async fn stripe_event(
        &self,
        kind: &str,
        payment: &Value,
    ) -> Result<(u16, Value, Recorded, f64), BoxError> {
        let body = json!({
            "id": format!("evt_bench_{}", ulid::Ulid::new()), "object": "event", "type": kind,
            "data": {"object": {"id": payment["session_id"], "object": "checkout.session",
                "payment_status": "paid", "amount_total": payment["amount"], "currency": "usd",
                "metadata": {"tenant_id": "bench", "payment_id": payment["id"],
                    "conversation_id": payment["conversation_id"], "description": payment["description"]}}}
        })
        .to_string();
        let signature =
            shared::domain::stripe::sign(WEBHOOK_SECRET, Utc::now().timestamp(), body.as_bytes());
        let headers = json!({"content-type": "application/json", "stripe-signature": signature});
        self.call(bench::api_event(
            "POST",
            "/webhooks/stripe/{tenant_id}",
            "/webhooks/stripe/bench",
            json!({"tenant_id": "bench"}),
            headers,
            &body,
            false,
        ))
        .await
    }
}

fn expect(what: &str, status: u16, wanted: u16, body: &Value) -> Result<(), BoxError> {
    if status == wanted {
        Ok(())
    } else {
        Err(format!("{what} answered {status}, not {wanted}: {body}").into())
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned()),
        ))
        .with_writer(std::io::stderr)
        .init();
    let moto = Moto::start(0)?;
    let mut settings = LocalSettings::from_env(moto.endpoint())?;
    let sandbox = Sandbox::new(SandboxConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sandbox_url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(sandbox.clone().serve(listener));
    for (name, value) in [
        ("META_GRAPH_URL", format!("{sandbox_url}/graph")),
        ("STRIPE_API_URL", format!("{sandbox_url}/stripe")),
        ("PUBLIC_BASE_URL", "http://127.0.0.1:3000".to_owned()),
    ] {
        settings.overrides.insert(name.to_owned(), value);
    }
    let template = Template::load(&template::default_path(), LOCAL_REGION)?;
    let sdk = settings.sdk_config();
    bootstrap::create_resources(&template, &sdk).await?;
    let env = bench::function_env(&template, &settings, "payments")?;
    let config = shared::config::Config::from_source(&env)?;
    let counter = RequestCounter::default();
    let clients = CountedClients::new(&sdk, &counter);
    let app = payments::App::with_clients(
        &env,
        &config,
        clients.dynamodb.clone(),
        clients.s3.clone(),
        local_stack::functions::local_credentials(),
    )?;
    let bench = Bench { app, counter };
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        env["TABLE_NAME"].clone(),
    );
    let channel = bench::whatsapp_channel(&store, PHONE).await?;
    let customers = ["15551237001", "15551237002"];
    bench::customers_wrote(&store, &channel, &customers).await?;
    let customer = |c: &str| shared::domain::conversation::customer_id(&channel.id, c);

    // Settings and a product, as an admin would (the bench's agent token is not an admin's:
    // written through the store).
    use shared::ports::PaymentStore;
    let tenant = shared::domain::ids::TenantId::parse("bench")?;
    let paid_settings = shared::domain::payment::PaymentSettings::default().apply(
        &serde_json::from_value(json!({"provider": "stripe", "currency": "USD",
            "secret_key": SECRET_KEY, "webhook_secret": WEBHOOK_SECRET}))?,
    )?;
    store
        .put_payment_settings(&tenant, &paid_settings, Utc::now())
        .await?;
    let now = shared::domain::time::rfc3339(&Utc::now());
    let product = serde_json::from_value::<shared::domain::payment::ProductRequest>(
        json!({"name": "Cleaning", "price": 8000, "currency": "USD"}),
    )?
    .product(shared::domain::payment::product_id(), now.clone(), &now)?;
    store.create_product(&tenant, &product).await?;

    let ask = |c: &str| {
        let path = format!("/customers/{c}/payments");
        let body = json!({"items": [{"product_id": product.id, "quantity": 2}]});
        let c = c.to_owned();
        let bench = &bench;
        async move {
            bench
                .agent("POST", "/customers/{id}/payments", &path, Some(&c), &body)
                .await
        }
    };
    // Warm the process, moto and the sandbox (not counted).
    let (status, warm, _, _) = ask(&customer(customers[0])).await?;
    expect("payment request", status, 201, &warm)?;
    bench
        .stripe_event("checkout.session.completed", &warm)
        .await?;

    let mut rows = Vec::new();
    let (status, payment, recorded, ms) = ask(&customer(customers[1])).await?;
    expect("payment request", status, 201, &payment)?;
    // The settings, settings and products in one read and the conversation as the send
    // reads it (at once), the transaction (payment + system message), then the send's own,
    // then the message's id recorded.
    rows.push(Row {
        name: "payment request (a link sent)",
        recorded,
        own: (3, 1),
        budget: 4,
        ms,
    });
    let (status, body, recorded, ms) = bench
        .stripe_event("checkout.session.completed", &payment)
        .await?;
    expect("webhook", status, 200, &body)?;
    rows.push(Row {
        name: "webhook: checkout.session.completed (paid; thank-you sent)",
        recorded,
        own: (2, 0),
        budget: 2,
        ms,
    });
    let (status, body, recorded, ms) = bench
        .stripe_event("checkout.session.expired", &payment)
        .await?;
    expect("webhook", status, 200, &body)?;
    rows.push(Row {
        name: "webhook: a late checkout.session.expired (nothing moves)",
        recorded,
        own: (2, 0),
        budget: 2,
        ms,
    });

    println!(
        "\nPayments: AWS requests per operation (handler over moto, counted at the SDK; Stripe's call not counted)\n"
    );
    println!(
        "| operation | own requests | budget | result | the send's | ms over moto | requests |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut ok = true;
    for row in &rows {
        let ops: Vec<&str> = row
            .recorded
            .sent
            .iter()
            .map(|s| s.operation.as_str())
            .collect();
        // The payment request's last request is its own (the message id recorded).
        let own = (row.own.0 + row.own.1).min(ops.len());
        let pass = own <= row.budget;
        ok &= pass;
        println!(
            "| {} | {own} | <= {} | {} | {} | {:.0} | {} |",
            row.name,
            row.budget,
            if pass { "pass" } else { "FAIL" },
            ops.len() - own,
            row.ms,
            ops.join(", ")
        );
    }
    let stats = sandbox.stripe_stats();
    println!(
        "Checkout Sessions made per idempotency key: max {}",
        stats
            .sessions_per_idempotency_key
            .values()
            .max()
            .copied()
            .unwrap_or(0)
    );
    drop(moto);
    if !ok {
        return Err("a payments figure missed its budget".into());
    }
    Ok(())
}
