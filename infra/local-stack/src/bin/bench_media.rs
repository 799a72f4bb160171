//! `make bench`, media validation: a 16 MB MP4 (moov at the end, the worst layout) put in
//! quarantine on moto, validated by the media handler in a child process whose peak RSS is
//! its own; prints bytes read from S3 to decide and peak memory against the budgets.

use std::collections::HashMap;
use std::process::Command;

use chrono::Utc;
use local_stack::moto::Moto;
use local_stack::template::{self, Template};
use local_stack::{BoxError, LOCAL_REGION, LocalSettings, bootstrap};
use shared::adapters::dynamo::DynamoStore;
use shared::domain::ids::TenantId;
use shared::domain::media::{MediaKind, MediaRecord, MediaStatus, quarantine_key};
use shared::ports::MediaStore;

const SIZE: usize = 16 * 1024 * 1024 - 4096;
const RSS_BUDGET_KB: u64 = 64 * 1024;

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_owned)
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

async fn validate(env: HashMap<String, String>) -> Result<(), BoxError> {
    let app = media::App::from_source(&env, local_stack::functions::local_credentials())?;
    let event = serde_json::json!({
        "version": "0", "id": "bench", "detail-type": "Object Created", "source": "aws.s3",
        "account": "123456789012", "time": Utc::now().to_rfc3339(), "region": LOCAL_REGION,
        "resources": [], "detail": {"version": "0", "bucket": {"name": env["MEDIA_BUCKET"]},
        "object": {"key": quarantine_key(&TenantId::parse("bench")?, "01BENCHMP4"), "size": SIZE}}
    });
    let validation = media::validate_event(&app, &event).await?;
    println!(
        "{} {} {} {}",
        validation.outcome,
        validation.bytes_read,
        validation.reads,
        peak_rss_kb()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--validate") {
        let env: HashMap<String, String> = serde_json::from_str(&args[2])?;
        return validate(env).await;
    }
    let moto = Moto::start(0)?;
    let settings = LocalSettings::from_env(moto.endpoint())?;
    let template = Template::load(&template::default_path(), LOCAL_REGION)?;
    let sdk = settings.sdk_config();
    bootstrap::create_resources(&template, &sdk).await?;
    let function = template
        .functions()?
        .into_iter()
        .find(|f| f.binary == "media")
        .ok_or("no media function in template.yaml")?;
    let mut env = template.resolve_environment(&function, &settings.overrides)?;
    env.extend(settings.lambda_environment());

    let tenant = TenantId::parse("bench")?;
    DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        env["TABLE_NAME"].clone(),
    )
    .create_media(&MediaRecord {
        id: "01BENCHMP4".into(),
        tenant_id: tenant.clone(),
        status: MediaStatus::Pending,
        filename: "clip.mp4".into(),
        mime_type: "video/mp4".into(),
        kind: MediaKind::Video,
        size: SIZE as u64,
        sha256: None,
        reason_code: None,
        reason: None,
        created_at: Utc::now(),
        inbound: false,
        version: None,
    })
    .await?;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    s3.put_object()
        .bucket(&env["MEDIA_BUCKET"])
        .key(quarantine_key(&tenant, "01BENCHMP4"))
        .content_type("video/mp4")
        .body(local_stack::media_files::mp4(SIZE).into())
        .send()
        .await?;

    let out = Command::new(std::env::current_exe()?)
        .arg("--validate")
        .arg(serde_json::to_string(&env)?)
        .output()?;
    let line = String::from_utf8_lossy(&out.stdout);
    let parts: Vec<&str> = line.split_whitespace().collect();
    let [outcome, bytes, reads, rss] = parts[..] else {
        return Err(format!("validator failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    };
    let bytes: u64 = bytes.parse()?;
    let rss: u64 = rss.parse()?;
    println!(
        "\nMedia validation of a {:.1} MB MP4 (moov at the end) over moto\n",
        SIZE as f64 / 1048576.0
    );
    println!("| figure | measured | budget | result |");
    println!("|---|---|---|---|");
    println!(
        "| verdict | {outcome} | valid | {} |",
        if outcome == "valid" { "pass" } else { "FAIL" }
    );
    println!(
        "| bytes read from S3 to decide | {bytes} ({:.2}% of the file, {reads} ranged GETs) | headers only | {} |",
        bytes as f64 * 100.0 / SIZE as f64,
        if bytes < (SIZE as u64) / 16 {
            "pass"
        } else {
            "FAIL"
        }
    );
    println!(
        "| peak RSS of the validating process | {:.1} MB | <= 64 MB | {} |",
        rss as f64 / 1024.0,
        if rss <= RSS_BUDGET_KB { "pass" } else { "FAIL" }
    );
    drop(moto);
    if outcome != "valid" || rss > RSS_BUDGET_KB || bytes >= (SIZE as u64) / 16 {
        return Err("media validation is over budget".into());
    }
    Ok(())
}
