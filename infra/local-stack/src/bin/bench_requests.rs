//! `make bench`, AWS requests per operation: the webhook, outbound and media handlers over
//! moto with an SDK interceptor counting every request they send (the outbound function
//! talks to the provider sandbox).

use chrono::Utc;
use lambda_http::Request;
use local_stack::bench::{self, CountedClients};
use local_stack::counter::RequestCounter;
use local_stack::moto::Moto;
use local_stack::template::{self, Template};
use local_stack::{BoxError, LOCAL_REGION, LocalSettings, bootstrap};
use serde_json::{Value, json};
use shared::adapters::dynamo::DynamoStore;
use shared::domain::inbound::{InboundMessage, WebhookItem};
use shared::domain::message::{Direction, MessageKind};

const APP_SECRET: &str = "bench-app-secret";

fn request(event: serde_json::Value) -> Result<Request, BoxError> {
    Ok(lambda_http::request::from_str(&event.to_string())?)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let moto = Moto::start(0)?;
    let mut settings = LocalSettings::from_env(moto.endpoint())?;
    settings
        .overrides
        .insert("META_APP_SECRET".into(), APP_SECRET.into());
    let sandbox =
        local_stack::sandbox::Sandbox::new(local_stack::sandbox::SandboxConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sandbox_url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(sandbox.clone().serve(listener));
    settings
        .overrides
        .insert("META_GRAPH_URL".into(), format!("{sandbox_url}/graph"));
    let template = Template::load(&template::default_path(), LOCAL_REGION)?;
    let sdk = settings.sdk_config();
    bootstrap::create_resources(&template, &sdk).await?;

    let env = bench::function_env(&template, &settings, "webhook")?;
    let counter = RequestCounter::default();
    let clients = CountedClients::new(&sdk, &counter);
    let config = shared::config::Config::from_source(&env)?;
    let app = webhook::App::with_clients(
        &env,
        &config,
        clients.dynamodb.clone(),
        clients.eventbridge.clone(),
    )?;

    // A connected WhatsApp channel.
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        env["TABLE_NAME"].clone(),
    );
    let phone = "1065403522";
    let channel = bench::whatsapp_channel(&store, phone).await?;

    let mut rows: Vec<(&str, Vec<String>, usize)> = Vec::new();
    let send = |body: String| {
        let app = &app;
        async move {
            let event = bench::meta_webhook_event("/webhooks/whatsapp", &body, APP_SECRET);
            let response = webhook::handle(app, request(event)?).await;
            if response.status() != 200 {
                return Err(BoxError::from(format!(
                    "webhook answered {}",
                    response.status()
                )));
            }
            Ok::<_, BoxError>(())
        }
    };
    send(bench::whatsapp_text(
        phone,
        "15551230001",
        "wamid.bench.cold",
        "hello",
    ))
    .await?;
    rows.push((
        "inbound text, first for the process (directory read)",
        counter.take(),
        3,
    ));
    send(bench::whatsapp_text(
        phone,
        "15551230002",
        "wamid.bench.warm",
        "hello",
    ))
    .await?;
    rows.push(("inbound text", counter.take(), 3));
    send(bench::whatsapp_text(
        phone,
        "15551230002",
        "wamid.bench.warm",
        "hello",
    ))
    .await?;
    rows.push(("inbound text, re-delivered", counter.take(), 3));

    // An outbound message recorded, then its status.
    let outbound = InboundMessage {
        provider_message_id: "wamid.bench.out".into(),
        customer: "15551230002".into(),
        customer_name: None,
        direction: Direction::Outbound,
        kind: MessageKind::Text,
        text: Some("reply".into()),
        media: None,
        reply_to: None,
        timestamp: Some(Utc::now()),
        opens_window: false,
        raw: serde_json::Value::Null,
    };
    let ingested = shared::service::ingest::ingest_items(
        &store,
        &channel,
        vec![WebhookItem::Message(outbound)],
        Utc::now(),
    )
    .await;
    if let Some(e) = ingested.error {
        return Err(e.into());
    }
    counter.take();
    send(bench::whatsapp_status(
        phone,
        "15551230002",
        "wamid.bench.out",
        "delivered",
    ))
    .await?;
    rows.push(("status update, message exists", counter.take(), 2));
    send(bench::whatsapp_status(
        phone,
        "15551230002",
        "wamid.bench.out",
        "delivered",
    ))
    .await?;
    rows.push(("status update, repeated (stale)", counter.take(), 2));
    send(bench::whatsapp_status(
        phone,
        "15551230002",
        "wamid.bench.unknown",
        "delivered",
    ))
    .await?;
    rows.push((
        "status update, message not recorded yet (kept)",
        counter.take(),
        2,
    ));

    // An agent answers the customer who wrote above: outbound text.
    let outbound_env = bench::function_env(&template, &settings, "outbound")?;
    let outbound_app = outbound::App::with_clients(
        &outbound_env,
        &config,
        clients.dynamodb.clone(),
        clients.s3.clone(),
        local_stack::functions::local_credentials(),
    )?;
    let conversation = shared::domain::conversation::conversation_id(&channel.id, "15551230002");
    for (name, text) in [
        (
            "outbound text, first for the process (directory read)",
            "Thanks, on it",
        ),
        ("outbound text", "Your order ships today"),
    ] {
        counter.take();
        let body = json!({"kind": "text", "text": text}).to_string();
        let path = format!("/conversations/{conversation}/messages");
        let event = bench::agent_event(
            "POST",
            "/conversations/{id}/messages",
            &path,
            json!({"id": conversation}),
            &body,
        );
        let response = outbound::handle(&outbound_app, request(event)?).await;
        if response.status() != 202 {
            return Err(format!("outbound answered {}", response.status()).into());
        }
        rows.push((name, counter.take(), 3));
    }
    if sandbox.outbox(Some(phone), None).len() != 2 {
        return Err("the sandbox did not receive both sends".into());
    }

    // Media: the upload form, the browser's upload (not ours), then validation.
    let media_env = bench::function_env(&template, &settings, "media")?;
    let media_app = media::App::with_clients(
        &media_env,
        &config,
        clients.dynamodb.clone(),
        clients.s3.clone(),
        local_stack::functions::local_credentials(),
    )?;
    let png = local_stack::media_files::png(0);
    let form = json!({"filename": "photo.png", "content_type": "image/png", "size": png.len()})
        .to_string();
    let upload_form = request(bench::agent_event(
        "POST",
        "/media",
        "/media",
        Value::Null,
        &form,
    ))?;
    counter.take();
    let response = media::handle_http(&media_app, upload_form).await;
    if response.status() != 201 {
        return Err(format!("POST /media answered {}", response.status()).into());
    }
    let ticket: serde_json::Value = serde_json::from_slice(response.body().as_ref())?;
    let form_requests = counter.take();
    let key = ticket["upload"]["fields"]["key"]
        .as_str()
        .ok_or("no key")?
        .to_owned();
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    )
    .put_object()
    .bucket(&media_env["MEDIA_BUCKET"])
    .key(&key)
    .content_type("image/png")
    .body(png.clone().into())
    .send()
    .await?;
    let event = json!({
        "version": "0", "id": "bench", "detail-type": "Object Created", "source": "aws.s3",
        "account": "123456789012", "time": Utc::now().to_rfc3339(), "region": LOCAL_REGION,
        "resources": [], "detail": {"version": "0", "bucket": {"name": media_env["MEDIA_BUCKET"]},
        "object": {"key": key, "size": png.len()}}
    });
    let validation = media::validate_event(&media_app, &event).await?;
    if validation.outcome != "valid" {
        return Err(format!("the upload was {}", validation.outcome).into());
    }
    let mut sent = form_requests;
    sent.extend(counter.take());
    rows.push(("media upload -> valid (form, then validation)", sent, 4));

    println!("\nAWS requests per operation (handlers over moto, counted at the SDK)\n");
    println!("| operation | requests | budget | result | sent |");
    println!("|---|---|---|---|---|");
    let mut failed = false;
    for (name, sent, budget) in &rows {
        let ok = sent.len() <= *budget;
        failed |= !ok;
        let reads = sent
            .iter()
            .filter(|op| {
                op.starts_with("Get") || op.starts_with("Query") || op.starts_with("Batch")
            })
            .count();
        println!(
            "| {name} | {} | <= {budget} | {} | {} |",
            sent.len(),
            if ok { "pass" } else { "FAIL" },
            if reads == 0 {
                sent.join(", ")
            } else {
                format!("{} ({reads} read)", sent.join(", "))
            },
        );
    }
    drop(moto);
    if failed {
        return Err("an operation is over its request budget".into());
    }
    Ok(())
}
