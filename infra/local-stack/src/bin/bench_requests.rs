//! `make bench`, AWS requests per operation: the webhook and outbound handlers over moto
//! with an SDK interceptor counting every request they send (the outbound function talks
//! to the provider sandbox).

use std::collections::HashMap;

use chrono::Utc;
use lambda_http::Request;
use local_stack::counter::RequestCounter;
use local_stack::moto::Moto;
use local_stack::template::{self, Template};
use local_stack::{BoxError, LOCAL_REGION, LocalSettings, bootstrap};
use serde_json::json;
use shared::adapters::dynamo::DynamoStore;
use shared::domain::channel::{Channel, ChannelType, Credentials, Secret};
use shared::domain::ids::{ChannelId, TenantId};
use shared::domain::inbound::{InboundMessage, WebhookItem};
use shared::domain::message::{Direction, MessageKind};
use shared::ports::ChannelStore;

const APP_SECRET: &str = "bench-app-secret";

/// A small valid PNG (64×48).
fn png_file() -> Vec<u8> {
    let mut f = b"\x89PNG\r\n\x1a\n".to_vec();
    f.extend([0, 0, 0, 13]);
    f.extend(b"IHDR");
    f.extend(64u32.to_be_bytes());
    f.extend(48u32.to_be_bytes());
    f.extend([8, 2, 0, 0, 0, 0x12, 0x34, 0x56, 0x78]);
    f.extend([0, 0, 0, 4]);
    f.extend(b"IDAT");
    f.extend([0x78, 0x9c, 0x63, 0x00, 0xde, 0xad, 0xbe, 0xef]);
    f.extend([0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82]);
    f
}

fn event(path: &str, body: &str) -> Result<Request, BoxError> {
    let signature = shared::domain::meta::sign(APP_SECRET, body.as_bytes());
    let raw = json!({
        "version": "2.0",
        "routeKey": format!("POST {path}"),
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "x-hub-signature-256": signature},
        "requestContext": {
            "accountId": "123456789012", "apiId": "bench", "domainName": "bench", "domainPrefix": "bench",
            "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench"},
            "requestId": ulid::Ulid::new().to_string(), "routeKey": format!("POST {path}"),
            "stage": "$default", "time": "24/Nov/2026:00:00:00 +0000", "timeEpoch": 0
        },
        "body": body,
        "isBase64Encoded": false
    });
    Ok(lambda_http::request::from_str(&raw.to_string())?)
}

fn whatsapp_text(phone_number_id: &str, customer: &str, wamid: &str) -> String {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": phone_number_id},
        "contacts": [{"profile": {"name": "Bench"}, "wa_id": customer}],
        "messages": [{"from": customer, "id": wamid, "timestamp": Utc::now().timestamp().to_string(),
                      "type": "text", "text": {"body": "hello"}}]}}]}]})
    .to_string()
}

fn whatsapp_status(phone_number_id: &str, customer: &str, wamid: &str, status: &str) -> String {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": phone_number_id},
        "statuses": [{"id": wamid, "status": status, "timestamp": Utc::now().timestamp().to_string(),
                      "recipient_id": customer}]}}]}]})
    .to_string()
}

/// An agent's `POST /conversations/{id}/messages`, as API Gateway hands it over after the
/// JWT authorizer.
fn send_event(conversation: &str, body: &str) -> Result<Request, BoxError> {
    let path = format!("/conversations/{conversation}/messages");
    let route = "POST /conversations/{id}/messages";
    let raw = json!({
        "version": "2.0",
        "routeKey": route,
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "pathParameters": {"id": conversation},
        "requestContext": {
            "accountId": "123456789012", "apiId": "bench", "domainName": "bench", "domainPrefix": "bench",
            "authorizer": {"jwt": {"claims": {"sub": "agent-1", "tenant_id": "bench", "role": "agent"}, "scopes": null}},
            "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench"},
            "requestId": ulid::Ulid::new().to_string(), "routeKey": route,
            "stage": "$default", "time": "24/Nov/2026:00:00:00 +0000", "timeEpoch": 0
        },
        "body": body,
        "isBase64Encoded": false
    });
    Ok(lambda_http::request::from_str(&raw.to_string())?)
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

    let function = template
        .functions()?
        .into_iter()
        .find(|f| f.binary == "webhook")
        .ok_or("no webhook function in template.yaml")?;
    let mut env: HashMap<String, String> =
        template.resolve_environment(&function, &settings.overrides)?;
    env.extend(settings.lambda_environment());

    let counter = RequestCounter::default();
    let dynamo = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .interceptor(counter.clone())
            .build(),
    );
    let events = aws_sdk_eventbridge::Client::from_conf(
        aws_sdk_eventbridge::config::Builder::from(&sdk)
            .interceptor(counter.clone())
            .build(),
    );
    let config = shared::config::Config::from_source(&env)?;
    let app = webhook::App::with_clients(&env, &config, dynamo, events)?;

    // A connected WhatsApp channel.
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        env["TABLE_NAME"].clone(),
    );
    let phone = "1065403522";
    let channel = Channel {
        id: ChannelId::generate(),
        tenant_id: TenantId::parse("bench")?,
        channel_type: ChannelType::Whatsapp,
        external_id: phone.into(),
        name: "bench".into(),
        waba_id: None,
        human_agent: false,
        window_hours: 24,
        created_at: Utc::now(),
    };
    let credentials = Credentials {
        access_token: Some(Secret::new("x")),
        ..Credentials::default()
    };
    store.create_channel(&channel, &credentials).await?;

    let mut rows: Vec<(&str, Vec<String>, usize)> = Vec::new();
    let send = |body: String| {
        let app = &app;
        async move {
            let response = webhook::handle(app, event("/webhooks/whatsapp", &body)?).await;
            if response.status() != 200 {
                return Err(BoxError::from(format!(
                    "webhook answered {}",
                    response.status()
                )));
            }
            Ok::<_, BoxError>(())
        }
    };
    send(whatsapp_text(phone, "15551230001", "wamid.bench.cold")).await?;
    rows.push((
        "inbound text, first for the process (directory read)",
        counter.take(),
        3,
    ));
    send(whatsapp_text(phone, "15551230002", "wamid.bench.warm")).await?;
    rows.push(("inbound text", counter.take(), 3));
    send(whatsapp_text(phone, "15551230002", "wamid.bench.warm")).await?;
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
    send(whatsapp_status(
        phone,
        "15551230002",
        "wamid.bench.out",
        "delivered",
    ))
    .await?;
    rows.push(("status update, message exists", counter.take(), 2));
    send(whatsapp_status(
        phone,
        "15551230002",
        "wamid.bench.out",
        "delivered",
    ))
    .await?;
    rows.push(("status update, repeated (stale)", counter.take(), 2));
    send(whatsapp_status(
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
    let function = template
        .functions()?
        .into_iter()
        .find(|f| f.binary == "outbound")
        .ok_or("no outbound function in template.yaml")?;
    let mut outbound_env: HashMap<String, String> =
        template.resolve_environment(&function, &settings.overrides)?;
    outbound_env.extend(settings.lambda_environment());
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .interceptor(counter.clone())
            .build(),
    );
    let dynamo = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .interceptor(counter.clone())
            .build(),
    );
    let outbound_app = outbound::App::with_clients(
        &outbound_env,
        &config,
        dynamo,
        s3,
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
        let response = outbound::handle(&outbound_app, send_event(&conversation, &body)?).await;
        if response.status() != 202 {
            return Err(format!("outbound answered {}", response.status()).into());
        }
        rows.push((name, counter.take(), 3));
    }
    if sandbox.outbox(Some(phone), None).len() != 2 {
        return Err("the sandbox did not receive both sends".into());
    }

    // Media: the upload form, the browser's upload (not ours), then validation.
    let function = template
        .functions()?
        .into_iter()
        .find(|f| f.binary == "media")
        .ok_or("no media function in template.yaml")?;
    let mut media_env: HashMap<String, String> =
        template.resolve_environment(&function, &settings.overrides)?;
    media_env.extend(settings.lambda_environment());
    let counted_s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .interceptor(counter.clone())
            .build(),
    );
    let counted_dynamo = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .interceptor(counter.clone())
            .build(),
    );
    let media_app = media::App::with_clients(
        &media_env,
        &config,
        counted_dynamo,
        counted_s3,
        local_stack::functions::local_credentials(),
    )?;
    let png = png_file();
    let form = json!({"filename": "photo.png", "content_type": "image/png", "size": png.len()})
        .to_string();
    let request = lambda_http::request::from_str(
        &serde_json::to_string(&json!({
            "version": "2.0", "routeKey": "POST /media", "rawPath": "/media", "rawQueryString": "",
            "headers": {"content-type": "application/json"},
            "requestContext": {
                "accountId": "123456789012", "apiId": "bench", "domainName": "bench", "domainPrefix": "bench",
                "authorizer": {"jwt": {"claims": {"sub": "agent-1", "tenant_id": "bench", "role": "agent"}, "scopes": null}},
                "http": {"method": "POST", "path": "/media", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench"},
                "requestId": "bench-media", "routeKey": "POST /media", "stage": "$default",
                "time": "24/Nov/2026:00:00:00 +0000", "timeEpoch": 0
            },
            "body": form, "isBase64Encoded": false
        }))?,
    )
    .map_err(|e| format!("media event: {e}"))?;
    counter.take();
    let response = media::handle_http(&media_app, request).await;
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
