//! The dev server's stand-in of API Gateway's WebSocket API, end to end in process: a
//! template of the calls function's shape, a stand-in handler (accepts `$connect` with
//! `?token=good`, relays `signal` frames to the other connections through the management
//! API with the real `aws-sdk-apigatewaymanagement` client, records every event) and
//! tokio-tungstenite clients.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::config::Region;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use futures::{SinkExt, StreamExt};
use lambda_http::aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use local_stack::devserver::ws::{WsGateway, signaling_overrides};
use local_stack::devserver::ws_event::FRAME_LIMIT;
use local_stack::functions::WsHandler;
use local_stack::template::Template;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// The resources the calls function declares (the contract's shape).
const TEMPLATE: &str = r#"
Resources:
  CallsFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: calls
  SignalingApi:
    Type: AWS::ApiGatewayV2::Api
    Properties:
      Name: signaling
      ProtocolType: WEBSOCKET
      RouteSelectionExpression: "$request.body.action"
  SignalingIntegration:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref SignalingApi
      IntegrationType: AWS_PROXY
      IntegrationUri: !Sub arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${CallsFunction.Arn}/invocations
  ConnectRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties:
      ApiId: !Ref SignalingApi
      RouteKey: $connect
      Target: !Sub integrations/${SignalingIntegration}
  DisconnectRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties:
      ApiId: !Ref SignalingApi
      RouteKey: $disconnect
      Target: !Sub integrations/${SignalingIntegration}
  SignalRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties:
      ApiId: !Ref SignalingApi
      RouteKey: signal
      Target: !Sub integrations/${SignalingIntegration}
  EchoRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties:
      ApiId: !Ref SignalingApi
      RouteKey: echo
      Target: !Sub integrations/${SignalingIntegration}
  SignalingStage:
    Type: AWS::ApiGatewayV2::Stage
    Properties:
      ApiId: !Ref SignalingApi
      StageName: ws
"#;

/// What the stand-in handler saw and did.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<Value>>,
    peers: Mutex<Vec<String>>,
    gone: Mutex<Vec<String>>,
}

impl Recorder {
    fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    fn of(&self, connection_id: &str, route_key: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| {
                e["requestContext"]["connectionId"] == connection_id
                    && e["requestContext"]["routeKey"] == route_key
            })
            .collect()
    }

    /// Waits (5 s at most) until `connection_id` has an event of `route_key`.
    async fn wait_for(&self, connection_id: &str, route_key: &str) -> Value {
        for _ in 0..250 {
            if let Some(event) = self.of(connection_id, route_key).pop() {
                return event;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "no {route_key} event for {connection_id}: {:?}",
            self.events()
        );
    }
}

fn management_client(addr: SocketAddr) -> Client {
    let config = aws_sdk_apigatewaymanagement::Config::builder()
        .behavior_version_latest()
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "test"))
        .endpoint_url(format!("http://{addr}/ws"))
        .build();
    Client::from_conf(config)
}

fn stand_in(recorder: Arc<Recorder>, client: Client) -> WsHandler {
    Arc::new(move |event: Value| {
        let recorder = recorder.clone();
        let client = client.clone();
        Box::pin(async move {
            recorder.events.lock().unwrap().push(event.clone());
            let context = &event["requestContext"];
            let id = context["connectionId"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let body: Value = event["body"]
                .as_str()
                .and_then(|b| serde_json::from_str(b).ok())
                .unwrap_or_default();
            match context["routeKey"].as_str().unwrap_or_default() {
                "$connect" if event["queryStringParameters"]["token"] == "good" => {
                    recorder.peers.lock().unwrap().push(id);
                    json!({"statusCode": 200})
                }
                "$connect" => json!({"statusCode": 403, "body": "bad token"}),
                "$disconnect" => {
                    recorder.peers.lock().unwrap().retain(|p| *p != id);
                    json!({"statusCode": 200})
                }
                "signal" => {
                    if let Some(ms) = body["sleep_ms"].as_u64() {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                    }
                    let others: Vec<String> = recorder
                        .peers
                        .lock()
                        .unwrap()
                        .iter()
                        .filter(|p| **p != id)
                        .cloned()
                        .collect();
                    for other in others {
                        let data = json!({"from": id, "payload": body["payload"]}).to_string();
                        let sent = client
                            .post_to_connection()
                            .connection_id(&other)
                            .data(Blob::new(data))
                            .send()
                            .await;
                        if let Err(e) = sent
                            && e.as_service_error().is_some_and(|e| e.is_gone_exception())
                        {
                            recorder.gone.lock().unwrap().push(other);
                        }
                    }
                    json!({"statusCode": 200})
                }
                "echo" => json!({"statusCode": 200, "body": format!("echo {}", body["payload"])}),
                _ => json!({"statusCode": 200}),
            }
        })
    })
}

struct Gateway {
    addr: SocketAddr,
    recorder: Arc<Recorder>,
    client: Client,
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

impl Gateway {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let recorder = Arc::new(Recorder::default());
        let client = management_client(addr);
        let handlers = HashMap::from([(
            "CallsFunction".to_owned(),
            stand_in(recorder.clone(), client.clone()),
        )]);
        let apis = Template::parse(TEMPLATE, "us-east-1")
            .unwrap()
            .websocket_apis()
            .unwrap();
        let gateway = WsGateway::new(&apis, &handlers).unwrap();
        assert_eq!(gateway.stages(), vec!["ws".to_owned()]);
        let router = gateway.router();
        tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        Self {
            addr,
            recorder,
            client,
        }
    }

    /// Connects with `?token=good`; returns the socket and its connection id.
    async fn connect(&self) -> (Socket, String) {
        let before: Vec<String> = self.recorder.peers.lock().unwrap().clone();
        let (socket, response) = connect_async(format!("ws://{}/ws?token=good", self.addr))
            .await
            .unwrap();
        assert_eq!(response.status(), 101);
        let id = self
            .recorder
            .peers
            .lock()
            .unwrap()
            .iter()
            .find(|p| !before.contains(p))
            .cloned()
            .expect("the $connect handler saw the connection");
        (socket, id)
    }
}

/// The next text frame (5 s at most).
async fn next_text(socket: &mut Socket) -> String {
    match tokio::time::timeout(Duration::from_secs(5), socket.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => text.as_str().to_owned(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// The close frame the server sends (5 s at most), answered as a browser answers it.
async fn close_code(socket: &mut Socket) -> u16 {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), socket.next()).await {
            Ok(Some(Ok(Message::Close(Some(frame))))) => {
                // Reading on sends tungstenite's close reply, ending the handshake.
                while let Ok(Some(Ok(_))) =
                    tokio::time::timeout(Duration::from_secs(5), socket.next()).await
                {
                }
                return u16::from(frame.code);
            }
            Ok(Some(Ok(Message::Text(_)))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

fn signal(payload: &str) -> Message {
    Message::text(json!({"action": "signal", "payload": payload}).to_string())
}

#[test]
fn the_functions_reach_the_stage_the_template_declares() {
    let template = Template::parse(TEMPLATE, "us-east-1").unwrap();
    let overrides = signaling_overrides(&template, "127.0.0.1:3000").unwrap();
    assert_eq!(
        overrides,
        vec![
            (
                "SIGNALING_URL".to_owned(),
                "ws://127.0.0.1:3000/ws".to_owned()
            ),
            (
                "SIGNALING_MANAGEMENT_URL".to_owned(),
                "http://127.0.0.1:3000/ws".to_owned()
            ),
        ]
    );
    let bare = Template::parse("Resources: {}\n", "us-east-1").unwrap();
    assert!(
        signaling_overrides(&bare, "127.0.0.1:3000")
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connect_answers_the_handlers_status_and_never_disconnects() {
    let gateway = Gateway::start().await;
    let refused = connect_async(format!("ws://{}/ws?token=bad", gateway.addr)).await;
    match refused {
        Err(WsError::Http(response)) => {
            assert_eq!(response.status(), 403);
            assert_eq!(response.body().as_deref(), Some(&b"bad token"[..]));
        }
        other => panic!("expected a 403 refusal, got {other:?}"),
    }
    let events = gateway.recorder.events();
    assert_eq!(events.len(), 1, "{events:?}");
    let connect = &events[0];
    assert_eq!(connect["queryStringParameters"], json!({"token": "bad"}));
    let id = connect["requestContext"]["connectionId"].as_str().unwrap();
    // A refused connection does not exist for the management API.
    let gone = gateway
        .client
        .post_to_connection()
        .connection_id(id)
        .data(Blob::new("hello"))
        .send()
        .await
        .unwrap_err();
    assert!(gone.as_service_error().unwrap().is_gone_exception());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(gateway.recorder.events().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_relay_signals_through_the_management_api() {
    let gateway = Gateway::start().await;
    let (mut agent, agent_id) = gateway.connect().await;
    let (mut customer, customer_id) = gateway.connect().await;
    assert_ne!(agent_id, customer_id);

    agent.send(signal("offer")).await.unwrap();
    let got: Value = serde_json::from_str(&next_text(&mut customer).await).unwrap();
    assert_eq!(got, json!({"from": agent_id, "payload": "offer"}));
    customer.send(signal("answer")).await.unwrap();
    let got: Value = serde_json::from_str(&next_text(&mut agent).await).unwrap();
    assert_eq!(got, json!({"from": customer_id, "payload": "answer"}));

    // The handler got the event API Gateway sends, typed as the calls function reads it.
    let message = gateway.recorder.wait_for(&agent_id, "signal").await;
    let typed: ApiGatewayWebsocketProxyRequest = serde_json::from_value(message).unwrap();
    let context = &typed.request_context;
    assert_eq!(context.event_type.as_deref(), Some("MESSAGE"));
    assert_eq!(context.stage.as_deref(), Some("ws"));
    assert_eq!(
        context.domain_name.as_deref(),
        Some(gateway.addr.to_string().as_str())
    );
    assert!(context.message_id.is_some());
    let connect = &gateway.recorder.of(&agent_id, "$connect")[0];
    assert_eq!(
        connect["requestContext"]["connectedAt"].as_i64(),
        Some(context.connected_at)
    );

    // GetConnection.
    let info = gateway
        .client
        .get_connection()
        .connection_id(&agent_id)
        .send()
        .await
        .unwrap();
    assert_eq!(info.identity().unwrap().source_ip(), Some("127.0.0.1"));
    assert!(info.connected_at().unwrap() <= info.last_active_at().unwrap());

    // An action without a route (and no $default): API Gateway's Forbidden frame.
    agent
        .send(Message::text(r#"{"action":"nope"}"#))
        .await
        .unwrap();
    let error: Value = serde_json::from_str(&next_text(&mut agent).await).unwrap();
    assert_eq!(error["message"], "Forbidden");
    assert_eq!(error["connectionId"], agent_id.as_str());
    assert!(error["requestId"].is_string());
    // A response body goes back to the sender.
    agent
        .send(Message::text(r#"{"action":"echo","payload":"hi"}"#))
        .await
        .unwrap();
    assert_eq!(next_text(&mut agent).await, "echo \"hi\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_over_32_kb_closes_with_1009_without_calling_the_handler() {
    let gateway = Gateway::start().await;
    let (mut client, id) = gateway.connect().await;
    let (mut peer, _) = gateway.connect().await;
    // Exactly at the limit goes through.
    let wrapper = json!({"action": "signal", "payload": ""}).to_string().len();
    let at_limit = "x".repeat(FRAME_LIMIT - wrapper);
    client.send(signal(&at_limit)).await.unwrap();
    let got: Value = serde_json::from_str(&next_text(&mut peer).await).unwrap();
    assert_eq!(got["payload"].as_str().unwrap().len(), at_limit.len());

    client.send(signal(&"x".repeat(33 * 1024))).await.unwrap();
    assert_eq!(close_code(&mut client).await, 1009);
    let disconnect = gateway.recorder.wait_for(&id, "$disconnect").await;
    assert_eq!(disconnect["requestContext"]["disconnectStatusCode"], 1009);
    assert_eq!(gateway.recorder.of(&id, "signal").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_over_the_128_kb_message_limit_closes_the_connection_too() {
    let gateway = Gateway::start().await;
    let (mut client, id) = gateway.connect().await;
    // The server stops reading mid-frame: the client sees 1009 or, when the socket's
    // unread bytes reset it first, an error; either way the handler gets 1009.
    let _ = client.send(signal(&"x".repeat(200 * 1024))).await;
    let disconnect = gateway.recorder.wait_for(&id, "$disconnect").await;
    assert_eq!(disconnect["requestContext"]["disconnectStatusCode"], 1009);
    assert!(gateway.recorder.of(&id, "signal").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_frame_closes_with_1003() {
    let gateway = Gateway::start().await;
    let (mut client, id) = gateway.connect().await;
    client.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(close_code(&mut client).await, 1003);
    gateway.recorder.wait_for(&id, "$disconnect").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_comes_once_and_the_connection_is_gone_after_close() {
    let gateway = Gateway::start().await;
    let (mut leaver, leaver_id) = gateway.connect().await;
    let (mut stayer, stayer_id) = gateway.connect().await;

    // The client closes.
    leaver
        .close(Some(CloseFrame {
            code: CloseCode::Away,
            reason: "bye".into(),
        }))
        .await
        .unwrap();
    let disconnect = gateway.recorder.wait_for(&leaver_id, "$disconnect").await;
    assert_eq!(disconnect["requestContext"]["eventType"], "DISCONNECT");
    assert_eq!(disconnect["requestContext"]["disconnectStatusCode"], 1001);
    assert_eq!(disconnect["requestContext"]["disconnectReason"], "bye");
    let typed: ApiGatewayWebsocketProxyRequest = serde_json::from_value(disconnect).unwrap();
    assert_eq!(typed.request_context.disconnect_status_code, Some(1001));
    let client = &gateway.client;
    let post = client
        .post_to_connection()
        .connection_id(&leaver_id)
        .data(Blob::new("late"))
        .send()
        .await
        .unwrap_err();
    assert!(post.as_service_error().unwrap().is_gone_exception());
    let get = client
        .get_connection()
        .connection_id(&leaver_id)
        .send()
        .await
        .unwrap_err();
    assert!(get.as_service_error().unwrap().is_gone_exception());

    // The server closes it (DeleteConnection).
    client
        .delete_connection()
        .connection_id(&stayer_id)
        .send()
        .await
        .unwrap();
    assert_eq!(close_code(&mut stayer).await, 1000);
    gateway.recorder.wait_for(&stayer_id, "$disconnect").await;
    let again = client
        .delete_connection()
        .connection_id(&stayer_id)
        .send()
        .await
        .unwrap_err();
    assert!(again.as_service_error().unwrap().is_gone_exception());

    tokio::time::sleep(Duration::from_millis(200)).await;
    for id in [&leaver_id, &stayer_id] {
        assert_eq!(gateway.recorder.of(id, "$disconnect").len(), 1, "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_left_is_gone_for_the_relay_and_events_keep_their_order() {
    let gateway = Gateway::start().await;
    let (mut sender, sender_id) = gateway.connect().await;
    let (peer, peer_id) = gateway.connect().await;
    // Each invocation sleeps less than the one before: order comes from the gateway.
    for i in 0..8u64 {
        let frame = json!({"action": "signal", "payload": i.to_string(), "sleep_ms": 40 - 5 * i});
        sender.send(Message::text(frame.to_string())).await.unwrap();
    }
    for _ in 0..250 {
        if gateway.recorder.of(&sender_id, "signal").len() == 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let order: Vec<String> = gateway
        .recorder
        .of(&sender_id, "signal")
        .iter()
        .map(|e| {
            let body: Value = serde_json::from_str(e["body"].as_str().unwrap()).unwrap();
            body["payload"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(order, (0..8).map(|i| i.to_string()).collect::<Vec<_>>());

    // The peer's socket drops without a close frame: 1006, and the relay meets 410.
    drop(peer);
    let disconnect = gateway.recorder.wait_for(&peer_id, "$disconnect").await;
    assert_eq!(disconnect["requestContext"]["disconnectStatusCode"], 1006);
    gateway.recorder.peers.lock().unwrap().push(peer_id.clone());
    sender.send(signal("late")).await.unwrap();
    for _ in 0..250 {
        if !gateway.recorder.gone.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(*gateway.recorder.gone.lock().unwrap(), vec![peer_id]);
}
