//! WeChat access tokens across processes: several `Channels` built separately (each with
//! its own DynamoDB client, sharing only the table in moto), sending and fetching customer
//! media for one account at once, against a provider sandbox of their own whose tokens
//! live seconds instead of two hours.

use std::sync::Arc;
use std::time::{Duration, Instant};

use integration_tests::stack;
use local_stack::sandbox::{Sandbox, SandboxConfig, Stats};
use serde_json::json;
use shared::adapters::channels::wechat::TokenTimings;
use shared::adapters::channels::{Channels, ProviderUrls};
use shared::adapters::dynamo::DynamoStore;
use shared::adapters::fetch::GuardedFetcher;
use shared::domain::channel::{Channel, ChannelType, Credentials, Secret};
use shared::domain::fetch::FetchPolicy;
use shared::domain::ids::{ChannelId, TenantId};
use shared::domain::outbound::{Attempt, Content, Delivery, Receipt};
use shared::ports::{ChannelSender, FetchBody, Outgoing, ProviderMedia, RoutedChannel};
use tokio::sync::Barrier;

/// The sandbox's token life here, and when the processes renew (inside the sandbox's
/// renewal window, as the deployment renews 4 minutes before WeChat's 2 hours run out).
const LIFETIME: Duration = Duration::from_secs(6);
const RENEWAL: Duration = Duration::from_secs(3);
const TIMINGS: TokenTimings = TokenTimings {
    refresh_before: Duration::from_secs(2),
    lease: Duration::from_secs(5),
    wait: Duration::from_secs(3),
};

/// A provider sandbox of this test's own (its token life is not the stack's).
async fn own_sandbox(config: SandboxConfig) -> (Sandbox, String) {
    let sandbox = Sandbox::new(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(sandbox.clone().serve(listener));
    (sandbox, url)
}

/// One process: its own DynamoDB client and provider clients, the shared table.
fn process(sandbox_url: &str, timings: TokenTimings) -> Channels {
    let sdk = stack().settings.sdk_config();
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        stack().template.local_name("ChatTable").unwrap(),
    );
    Channels::new(
        ProviderUrls {
            graph: format!("{sandbox_url}/graph"),
            wechat: format!("{sandbox_url}/wechat"),
        },
        Duration::from_secs(5),
    )
    .unwrap()
    .with_wechat_token_timings(store, timings)
}

fn fetcher() -> GuardedFetcher {
    GuardedFetcher::new(FetchPolicy {
        allowed_hosts: vec!["localhost".into()],
        allow_loopback: true,
    })
    .unwrap()
}

/// A WeChat channel with an AppID no other test uses.
fn wechat_account() -> (RoutedChannel, String) {
    let app = format!("wx{}", &ulid::Ulid::new().to_string().to_lowercase()[..14]);
    let channel = RoutedChannel {
        channel: Channel {
            id: ChannelId::generate(),
            tenant_id: TenantId::parse(&integration_tests::unique_tenant()).unwrap(),
            channel_type: ChannelType::Wechat,
            external_id: app.clone(),
            name: "wechat".into(),
            waba_id: None,
            human_agent: false,
            window_hours: 48,
            created_at: chrono::Utc::now(),
        },
        credentials: Credentials {
            app_id: Some(Secret::new(app.clone())),
            app_secret: Some(Secret::new("wx-secret")),
            ..Credentials::default()
        },
    };
    (channel, app)
}

async fn send_text(channels: &Channels, channel: &RoutedChannel, text: &str) -> Attempt {
    channels
        .send(
            channel,
            &Outgoing {
                to: "oCustomer1",
                content: Content::Text(text),
                delivery: Delivery::Response,
                reference: "r",
            },
        )
        .await
}

async fn fetch_media(
    channels: &Channels,
    fetcher: &GuardedFetcher,
    channel: &RoutedChannel,
    media_id: &str,
) -> Result<Vec<u8>, String> {
    let media = shared::domain::events::EventMedia {
        provider_media_id: Some(media_id.to_owned()),
        ..Default::default()
    };
    let mut body = channels.open_media(fetcher, channel, &media).await?.body;
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next_chunk().await? {
        bytes.extend(chunk);
    }
    Ok(bytes)
}

fn count(stats: &Stats, app: &str) -> (u64, u64, u64) {
    let of = |m: &std::collections::BTreeMap<String, u64>| m.get(app).copied().unwrap_or(0);
    (
        of(&stats.token_fetches),
        of(&stats.stable_token_fetches),
        of(&stats.stable_tokens_issued),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_processes_sending_and_fetching_media_fetch_one_wechat_token_per_lifetime() {
    let (sandbox, url) = own_sandbox(SandboxConfig {
        wechat_token_lifetime: LIFETIME,
        wechat_stable_renewal: RENEWAL,
        ..SandboxConfig::default()
    })
    .await;
    let (channel, app) = wechat_account();
    let image = vec![0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3, 0xFF, 0xD9];
    sandbox.put_file("wxm-image", image.clone(), "image/jpeg");
    let video = local_stack::media_files::mp4(256 * 1024);
    sandbox.put_file("wxm-video", video.clone(), "video/mp4");

    const PROCESSES: usize = 10;
    let run_for = LIFETIME * 2 + Duration::from_secs(1);
    let barrier = Arc::new(Barrier::new(PROCESSES));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..PROCESSES {
        let (barrier, channel, url) = (barrier.clone(), channel.clone(), url.clone());
        let (image, video) = (image.clone(), video.clone());
        tasks.push(tokio::spawn(async move {
            let channels = process(&url, TIMINGS);
            let fetcher = fetcher();
            barrier.wait().await;
            let until = Instant::now() + run_for;
            let mut calls = 0u32;
            while Instant::now() < until {
                match calls % 3 {
                    0 => assert_eq!(
                        send_text(&channels, &channel, "hello").await,
                        Attempt::Accepted(Receipt::default()),
                        "process {p}"
                    ),
                    1 => assert_eq!(
                        fetch_media(&channels, &fetcher, &channel, "wxm-image").await,
                        Ok(image.clone()),
                        "process {p}"
                    ),
                    _ => assert_eq!(
                        fetch_media(&channels, &fetcher, &channel, "wxm-video")
                            .await
                            .map(|b| b.len()),
                        Ok(video.len()),
                        "process {p}"
                    ),
                }
                calls += 1;
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            calls
        }));
    }
    let mut calls = 0;
    for task in tasks {
        calls += task.await.expect("a process ran through");
    }
    let elapsed = started.elapsed();

    let (all, stable, issued) = count(&sandbox.stats(), &app);
    assert_eq!(all, stable, "no cgi-bin/token call");
    assert_eq!(
        stable, issued,
        "every fetch brought a new token: none was fetched twice"
    );
    // One fetch per token life (each is renewed `refresh_before` ahead of its end).
    let lives = elapsed.as_secs_f64() / (LIFETIME - TIMINGS.refresh_before).as_secs_f64();
    assert!(
        stable >= 2 && stable as f64 <= lives.ceil() + 1.0,
        "{stable} token fetches in {elapsed:?} ({lives:.1} token lives)"
    );
    // Token lives begun during the run (the last one just started).
    let begun = lives.ceil();
    let per_life = stable as f64 / begun;
    let deployed_renewal = 7200.0 - 240.0;
    eprintln!(
        "wechat token fetches, one account, {PROCESSES} processes sending and fetching media: \
         {stable} in {:.1} s ({calls} calls, {begun} token lifetimes begun) = {per_life:.2} per \
         token lifetime, i.e. {:.2} per hour with WeChat's 7200 s tokens renewed 240 s early \
         (cgi-bin/token calls: {})",
        elapsed.as_secs_f64(),
        per_life * 3600.0 / deployed_renewal,
        all - stable,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_wechat_refuses_is_replaced_once_across_processes() {
    let (sandbox, url) = own_sandbox(SandboxConfig::default()).await;
    let (channel, app) = wechat_account();
    let image = vec![0xFF, 0xD8, 0xFF, 0xE0, 9, 0xFF, 0xD9];
    sandbox.put_file("wxm-refused", image.clone(), "image/jpeg");
    const PROCESSES: usize = 6;
    let processes: Vec<_> = (0..PROCESSES)
        .map(|_| process(&url, TokenTimings::default()))
        .collect();
    for channels in &processes {
        assert_eq!(
            send_text(channels, &channel, "warm").await,
            Attempt::Accepted(Receipt::default())
        );
    }
    assert_eq!(count(&sandbox.stats(), &app).1, 1, "one token for all");

    // Someone else force-refreshes the account: the token every process holds dies now.
    let forced: serde_json::Value = reqwest::Client::new()
        .post(format!("{url}/wechat/cgi-bin/stable_token"))
        .json(&json!({"grant_type": "client_credential", "appid": app,
                      "secret": "wx-secret", "force_refresh": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(forced["access_token"].is_string(), "{forced}");

    let barrier = Arc::new(Barrier::new(PROCESSES));
    let mut tasks = Vec::new();
    for (p, channels) in processes.into_iter().enumerate() {
        let (barrier, channel, image) = (barrier.clone(), channel.clone(), image.clone());
        tasks.push(tokio::spawn(async move {
            let fetcher = fetcher();
            barrier.wait().await;
            if p % 2 == 0 {
                assert_eq!(
                    send_text(&channels, &channel, "after").await,
                    Attempt::Accepted(Receipt::default()),
                    "process {p}"
                );
            } else {
                assert_eq!(
                    fetch_media(&channels, &fetcher, &channel, "wxm-refused").await,
                    Ok(image),
                    "process {p}"
                );
            }
        }));
    }
    for task in tasks {
        task.await.expect("a process ran through");
    }
    let (all, stable, _) = count(&sandbox.stats(), &app);
    assert_eq!(
        stable, 3,
        "the first token, the forced one, and one refresh across {PROCESSES} processes"
    );
    assert_eq!(all, stable);
}

#[tokio::test]
async fn the_token_lease_goes_to_one_process_and_only_while_the_token_is_the_one_to_replace() {
    use shared::adapters::channels::wechat::{Lease, Replacing};
    let sdk = stack().settings.sdk_config();
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        stack().template.local_name("ChatTable").unwrap(),
    );
    let (_, app) = wechat_account();
    let now = chrono::Utc::now().timestamp_millis();
    let lease = |holder: &str, replacing: Replacing| Lease {
        holder: holder.into(),
        now_ms: now,
        until_ms: now + 15_000,
        replacing,
    };
    let due = Replacing::Due {
        expiring_before_ms: now + 240_000,
    };
    assert_eq!(store.wechat_token(&app).await.unwrap(), None);
    assert!(
        store
            .lease_wechat_token(&app, &lease("p1", due.clone()))
            .await
            .unwrap()
    );
    assert!(
        !store
            .lease_wechat_token(&app, &lease("p2", due.clone()))
            .await
            .unwrap(),
        "held"
    );
    assert!(
        !store
            .save_wechat_token(&app, "p2", "B", now, now + 7_200_000)
            .await
            .unwrap(),
        "only the holder stores"
    );
    assert!(
        store
            .save_wechat_token(&app, "p1", "A", now, now + 7_200_000)
            .await
            .unwrap()
    );
    let stored = store.wechat_token(&app).await.unwrap().unwrap();
    assert_eq!(stored.token.as_deref(), Some("A"));
    assert_eq!(stored.expires_at_ms, now + 7_200_000);
    assert!(stored.lease_until_ms.is_none(), "the save ends the lease");

    // A fresh token is not due; a refusal of another token replaces nothing.
    assert!(
        !store
            .lease_wechat_token(&app, &lease("p3", due))
            .await
            .unwrap()
    );
    assert!(
        !store
            .lease_wechat_token(&app, &lease("p3", Replacing::Refused("old".into())))
            .await
            .unwrap()
    );
    // The refused token is still the stored one: one process gets the lease.
    assert!(
        store
            .lease_wechat_token(&app, &lease("p4", Replacing::Refused("A".into())))
            .await
            .unwrap()
    );
    assert!(
        !store
            .lease_wechat_token(&app, &lease("p5", Replacing::Refused("A".into())))
            .await
            .unwrap()
    );
    // A failed fetch releases it for the next process.
    assert!(store.release_wechat_token(&app, "p4").await.unwrap());
    assert!(
        store
            .lease_wechat_token(&app, &lease("p5", Replacing::Refused("A".into())))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn another_tenants_channel_with_the_same_appid_but_not_its_secret_never_gets_the_token() {
    let (_sandbox, url) = own_sandbox(SandboxConfig::default()).await;
    let (owner, _) = wechat_account();
    let mut intruder = owner.clone();
    intruder.channel.id = ChannelId::generate();
    intruder.channel.tenant_id = TenantId::parse(&integration_tests::unique_tenant()).unwrap();
    intruder.credentials.app_secret = Some(Secret::new("wrong"));
    let one = process(&url, TokenTimings::default());
    assert_eq!(
        send_text(&one, &owner, "hello").await,
        Attempt::Accepted(Receipt::default())
    );
    // Another process (the table only) and the same process (its cache as well).
    let other = process(&url, TokenTimings::default());
    for channels in [&other, &one] {
        assert_ne!(
            send_text(channels, &intruder, "spam").await,
            Attempt::Accepted(Receipt::default()),
            "an AppID alone must not open the account's token"
        );
    }
}
