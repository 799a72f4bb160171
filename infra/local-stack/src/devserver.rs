//! The dev server: API Gateway (HTTP API) on 127.0.0.1, built from template.yaml.
//!
//! Each request is matched against the template's `HttpApi` routes the way API Gateway
//! matches them (static segments before `{param}` before `{proxy+}`), the JWT is verified
//! for routes without `Authorizer: NONE`, and the function's handler gets the payload 2.0
//! event JSON AWS would send, parsed by `lambda_http` exactly as in Lambda. The template's
//! WebSocket APIs are served beside it ([`ws`]).

pub mod ws;
mod ws_connection;
pub mod ws_event;
mod ws_management;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body as AxumBody, to_bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response as AxumResponse};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lambda_http::Body;
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value, json};
use tracing::info;

use crate::functions::{self, EventHandler, Handler, WsHandler};
use crate::template::{LOCAL_ACCOUNT_ID, Template};
use crate::{BoxError, LocalSettings, token};

/// API Gateway's payload limit for HTTP APIs.
pub const MAX_PAYLOAD: usize = 10 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Static(String),
    Param(String),
    Greedy(String),
}

impl Segment {
    fn rank(&self) -> u8 {
        match self {
            Self::Static(_) => 0,
            Self::Param(_) => 1,
            Self::Greedy(_) => 2,
        }
    }
}

struct Route {
    method: String,
    template_path: String,
    segments: Vec<Segment>,
    public: bool,
    handler: Handler,
}

fn parse_path(path: &str) -> Vec<Segment> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => match name.strip_suffix('+') {
                    Some(greedy) => Segment::Greedy(greedy.to_owned()),
                    None => Segment::Param(name.to_owned()),
                },
                None => Segment::Static(s.to_owned()),
            },
        )
        .collect()
}

fn match_path(segments: &[Segment], path: &str) -> Option<HashMap<String, String>> {
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut params = HashMap::new();
    for (i, segment) in segments.iter().enumerate() {
        match segment {
            Segment::Greedy(name) => {
                if i >= parts.len() {
                    return None;
                }
                params.insert(name.clone(), decode(&parts[i..].join("/")));
                return Some(params);
            }
            Segment::Static(s) if parts.get(i) == Some(&s.as_str()) => {}
            Segment::Param(name) if i < parts.len() => {
                params.insert(name.clone(), decode(parts[i]));
            }
            _ => return None,
        }
    }
    (parts.len() == segments.len()).then_some(params)
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// The dev server's routing table and token secret.
pub struct DevServer {
    routes: Vec<Route>,
    jwt_secret: String,
    event_rules: Vec<EventRule>,
    schedule_target: Option<crate::schedules::ScheduleTarget>,
    websocket: ws::WsGateway,
}

/// An `EventBridgeRule` of a function: its resolved pattern and handler.
#[derive(Clone)]
pub struct EventRule {
    /// `<logical id>-<n>`, for naming the local queue and rule.
    pub name: String,
    /// The event pattern, resolved to local names.
    pub pattern: Value,
    /// The bus (`None`: the default bus, where S3 events go).
    pub bus: Option<String>,
    /// The function's event handler.
    pub handler: EventHandler,
}

/// Media is fetched from loopback whenever a provider URL points there (the provider
/// sandbox, or a stand-in of one's own), for a function that fetches media at all.
fn allow_loopback_media(env: &mut HashMap<String, String>) {
    const FLAG: &str = "MEDIA_FETCH_ALLOW_LOOPBACK";
    let Some(explicit) = env.get(FLAG).map(|v| v == "true") else {
        return;
    };
    let providers = ["META_GRAPH_URL", "WECHAT_API_URL"]
        .into_iter()
        .filter_map(|name| env.get(name).map(String::as_str));
    if shared::domain::fetch::loopback_fetch_allowed(providers, explicit) {
        env.insert(FLAG.to_owned(), "true".to_owned());
    }
}

/// The event handler of one function of the template (by its binary), built as the dev
/// server builds it: tests deliver events to it directly (re-deliveries, concurrency).
pub fn event_handler(
    template: &Template,
    settings: &LocalSettings,
    binary: &str,
) -> Result<functions::EventHandler, BoxError> {
    built(template, settings, binary)?
        .event
        .ok_or_else(|| format!("{binary} handles no events").into())
}

/// The handlers of `binary`, built with its local environment as the dev server builds
/// them (a fresh app: tests call a handler directly with the events AWS would send).
///
/// # Errors
/// The template has no such function, or its environment does not build it.
pub fn built(
    template: &Template,
    settings: &LocalSettings,
    binary: &str,
) -> Result<functions::Built, BoxError> {
    let function = template
        .functions()?
        .into_iter()
        .find(|f| f.binary == binary)
        .ok_or_else(|| format!("template.yaml has no function with binary {binary}"))?;
    let mut env = template.resolve_environment(&function, &settings.overrides)?;
    env.extend(settings.lambda_environment());
    allow_loopback_media(&mut env);
    functions::build(binary, &env)
}

impl DevServer {
    /// Builds every function of the template with its local environment.
    pub fn new(template: &Template, settings: &LocalSettings) -> Result<Self, BoxError> {
        let mut routes = Vec::new();
        let mut event_rules = Vec::new();
        let mut schedule_target = None;
        let mut ws_handlers: HashMap<String, WsHandler> = HashMap::new();
        for function in template.functions()? {
            let mut env = template.resolve_environment(&function, &settings.overrides)?;
            env.extend(settings.lambda_environment());
            allow_loopback_media(&mut env);
            let built = functions::build(&function.binary, &env)?;
            if let Some(handler) = built.websocket.clone() {
                ws_handlers.insert(function.logical_id.clone(), handler);
            }
            // What EventBridge Scheduler invokes: the function the schedules name
            // (`SCHEDULER_TARGET_ARN` is this function's own ARN in its environment).
            if function.binary == "scheduler"
                && let (Some(group), Some(handler)) =
                    (env.get("SCHEDULE_GROUP_NAME"), built.event.clone())
            {
                schedule_target = Some(crate::schedules::ScheduleTarget {
                    group: group.clone(),
                    handler,
                });
            }
            for (i, (pattern, bus)) in function.event_rules.iter().enumerate() {
                let handler = built.event.clone().ok_or_else(|| {
                    format!(
                        "{} has an EventBridgeRule but no event handler",
                        function.logical_id
                    )
                })?;
                event_rules.push(EventRule {
                    name: format!("{}-{i}", function.logical_id),
                    pattern: template.resolve_deep(pattern)?,
                    bus: match bus {
                        Some(b) => match template.resolve(b)? {
                            crate::template::Resolved::Text(name) => Some(name),
                            crate::template::Resolved::Secret => {
                                return Err("bus named by a secret".into());
                            }
                        },
                        None => None,
                    },
                    handler,
                });
            }
            for r in &function.routes {
                let handler = built.http.clone().ok_or_else(|| {
                    format!(
                        "{} has HTTP routes but no HTTP handler",
                        function.logical_id
                    )
                })?;
                routes.push(Route {
                    method: r.method.clone(),
                    template_path: r.path.clone(),
                    segments: parse_path(&r.path),
                    public: r.public,
                    handler,
                });
            }
        }
        // Most specific first, as API Gateway chooses.
        routes.sort_by(|a, b| {
            let rank = |r: &Route| r.segments.iter().map(Segment::rank).collect::<Vec<_>>();
            rank(a)
                .cmp(&rank(b))
                .then(b.segments.len().cmp(&a.segments.len()))
                .then((a.method == "ANY").cmp(&(b.method == "ANY")))
        });
        Ok(Self {
            routes,
            jwt_secret: settings.jwt_secret.clone(),
            event_rules,
            schedule_target,
            websocket: ws::WsGateway::new(&template.websocket_apis()?, &ws_handlers)?,
        })
    }

    /// The functions' EventBridge rules, for the local stand-in.
    pub fn event_rules(&self) -> Vec<EventRule> {
        self.event_rules.clone()
    }

    /// The schedule group and the handler its schedules invoke (for the schedule
    /// stand-in), when the template has a scheduler function.
    pub fn schedule_target(&self) -> Option<crate::schedules::ScheduleTarget> {
        self.schedule_target.clone()
    }

    fn find(&self, method: &Method, path: &str) -> Option<(&Route, HashMap<String, String>)> {
        self.routes.iter().find_map(|r| {
            let method_ok = r.method == "ANY" || r.method == method.as_str();
            if !method_ok {
                return None;
            }
            match_path(&r.segments, path).map(|params| (r, params))
        })
    }

    /// The stages of the template's WebSocket APIs (`ws`: `ws://<dev server>/ws`).
    pub fn websocket_stages(&self) -> Vec<String> {
        self.websocket.stages()
    }

    /// The axum router serving every route, the WebSocket stages' before the HTTP API's.
    pub fn router(self) -> axum::Router {
        let websocket = self.websocket.router();
        websocket.merge(
            axum::Router::new()
                .fallback(dispatch)
                .with_state(Arc::new(self)),
        )
    }

    /// Serves on `listener` until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), BoxError> {
        axum::serve(
            listener,
            self.router()
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await?;
        Ok(())
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> AxumResponse {
    let body = json!({"error": {"code": code, "message": message}}).to_string();
    (status, [("content-type", "application/json")], body).into_response()
}

async fn dispatch(
    State(server): State<Arc<DevServer>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: axum::extract::Request,
) -> AxumResponse {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let method = parts.method.clone();
    let path = parts.uri.path().to_owned();
    let response = match to_bytes(body, MAX_PAYLOAD).await {
        Ok(bytes) => invoke(&server, parts, &bytes, peer).await,
        Err(_) => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body is larger than API Gateway's 10 MB limit",
        ),
    };
    info!(
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    response
}

async fn invoke(
    server: &DevServer,
    parts: axum::http::request::Parts,
    body: &[u8],
    peer: SocketAddr,
) -> AxumResponse {
    let Some((route, path_params)) = server.find(&parts.method, parts.uri.path()) else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no route matches this method and path",
        );
    };
    let claims = if route.public {
        None
    } else {
        match bearer_claims(&parts.headers, &server.jwt_secret) {
            Ok(claims) => Some(claims),
            Err(message) => return error(StatusCode::UNAUTHORIZED, "unauthorized", message),
        }
    };
    let event = api_gateway_event(route, &parts, body, path_params, claims, peer);
    let request = match lambda_http::request::from_str(&event.to_string()) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &format!("the request cannot be expressed as an API Gateway event: {e}"),
            );
        }
    };
    let request_id = event["requestContext"]["requestId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let response = (route.handler)(request).await;
    let (lparts, lbody) = response.into_parts();
    let bytes = match lbody {
        Body::Empty => Vec::new(),
        Body::Text(t) => t.into_bytes(),
        Body::Binary(b) => b,
        _ => Vec::new(),
    };
    let mut out = AxumResponse::new(AxumBody::from(bytes));
    *out.status_mut() = lparts.status;
    *out.headers_mut() = lparts.headers;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        out.headers_mut().insert("apigw-requestid", v);
    }
    out
}

/// Verifies `Authorization: Bearer <jwt>` and returns the claims as API Gateway passes them
/// (every value a string).
fn bearer_claims(headers: &HeaderMap, secret: &str) -> Result<Map<String, Value>, &'static str> {
    let header = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or("a bearer token is required")?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or("the Authorization header must be `Bearer <token>`")?;
    let claims =
        token::verify(secret, token.trim()).map_err(|_| "the token is invalid or expired")?;
    Ok(claims
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s,
                Value::Array(items) => format!(
                    "[{}]",
                    items
                        .iter()
                        .map(|i| i
                            .as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| i.to_string()))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
                other => other.to_string(),
            };
            (k, Value::String(text))
        })
        .collect())
}

fn is_textual(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return true };
    let ct = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    ct.starts_with("text/")
        || ct.ends_with("+json")
        || ct.ends_with("+xml")
        || matches!(
            ct.as_str(),
            "application/json"
                | "application/xml"
                | "application/x-www-form-urlencoded"
                | "application/javascript"
        )
}

fn api_gateway_event(
    route: &Route,
    parts: &axum::http::request::Parts,
    body: &[u8],
    path_params: HashMap<String, String>,
    claims: Option<Map<String, Value>>,
    peer: SocketAddr,
) -> Value {
    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == "cookie" {
            cookies.extend(
                value
                    .split(';')
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty()),
            );
            continue;
        }
        match headers.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), Value::String(value));
            }
        }
    }
    let raw_query = parts.uri.query().unwrap_or("");
    let mut query: Map<String, Value> = Map::new();
    for (k, v) in form_urlencoded::parse(raw_query.as_bytes()) {
        match query.get_mut(k.as_ref()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            _ => {
                query.insert(k.into_owned(), Value::String(v.into_owned()));
            }
        }
    }
    let content_type = parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok());
    let (body, base64) = match std::str::from_utf8(body) {
        _ if body.is_empty() => (Value::Null, false),
        Ok(text) if is_textual(content_type) => (Value::String(text.to_owned()), false),
        _ => (Value::String(STANDARD.encode(body)), true),
    };
    let now = chrono::Utc::now();
    let method = parts.method.as_str();
    let route_key = format!("{} {}", route.method, route.template_path);
    let host = parts
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_owned();
    let mut context = json!({
        "accountId": LOCAL_ACCOUNT_ID,
        "apiId": "local",
        "domainName": host,
        "domainPrefix": host.split('.').next().unwrap_or("local"),
        "http": {
            "method": method,
            "path": parts.uri.path(),
            "protocol": "HTTP/1.1",
            "sourceIp": peer.ip().to_string(),
            "userAgent": parts.headers.get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or(""),
        },
        "requestId": ulid::Ulid::new().to_string(),
        "routeKey": route_key,
        "stage": "$default",
        "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
        "timeEpoch": now.timestamp_millis(),
    });
    if let Some(claims) = claims {
        context["authorizer"] = json!({"jwt": {"claims": claims, "scopes": null}});
    }
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": parts.uri.path(),
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": context,
        "isBase64Encoded": base64,
    });
    if !cookies.is_empty() {
        event["cookies"] = json!(cookies);
    }
    if !query.is_empty() {
        event["queryStringParameters"] = Value::Object(query);
    }
    if !path_params.is_empty() {
        event["pathParameters"] = json!(path_params);
    }
    if !body.is_null() {
        event["body"] = body;
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_and_greedy_segments_match_like_api_gateway() {
        let p = parse_path("/conversations/{id}/messages");
        let got = match_path(&p, "/conversations/c%201/messages").unwrap();
        assert_eq!(got["id"], "c 1");
        assert!(match_path(&p, "/conversations/c1").is_none());
        assert!(match_path(&p, "/conversations/c1/messages/x").is_none());
        let g = parse_path("/files/{proxy+}");
        assert_eq!(match_path(&g, "/files/a/b").unwrap()["proxy"], "a/b");
        assert!(match_path(&g, "/files").is_none());
    }

    #[test]
    fn media_is_fetched_from_loopback_whenever_a_provider_url_points_there() {
        let env = |graph: &str, flag: &str| {
            let mut env: HashMap<String, String> = [
                ("META_GRAPH_URL", graph),
                ("WECHAT_API_URL", "https://api.weixin.qq.com"),
                ("MEDIA_FETCH_ALLOW_LOOPBACK", flag),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
            allow_loopback_media(&mut env);
            env["MEDIA_FETCH_ALLOW_LOOPBACK"].clone()
        };
        // The template's "false" gives way to a provider on loopback, sandbox or not.
        assert_eq!(env("http://127.0.0.1:3100/graph", "false"), "true");
        assert_eq!(env("http://localhost:4010/graph", "false"), "true");
        assert_eq!(env("https://graph.facebook.com/v21.0", "false"), "false");
        assert_eq!(env("https://graph.facebook.com/v21.0", "true"), "true");
        // A function that fetches no media gets no flag.
        let mut webhook: HashMap<String, String> = [(
            "META_GRAPH_URL".to_owned(),
            "http://127.0.0.1:3100/graph".to_owned(),
        )]
        .into();
        allow_loopback_media(&mut webhook);
        assert!(!webhook.contains_key("MEDIA_FETCH_ALLOW_LOOPBACK"));
    }

    /// The WebSocket stages answer beside the HTTP API: the management API's 410 for an
    /// unknown connection, the HTTP API's own 404 for everything else.
    #[tokio::test]
    async fn websocket_stages_are_served_beside_the_http_api() {
        let template = Template::parse(
            r#"
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Metadata: {BuildProperties: {Binary: calls}}
  Api:
    Type: AWS::ApiGatewayV2::Api
    Properties: {ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.action}
  Integration:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref Api
      IntegrationType: AWS_PROXY
      IntegrationUri: !Sub arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/${Fn.Arn}/invocations
  Route:
    Type: AWS::ApiGatewayV2::Route
    Properties: {ApiId: !Ref Api, RouteKey: $default, Target: !Sub "integrations/${Integration}"}
  Stage:
    Type: AWS::ApiGatewayV2::Stage
    Properties: {ApiId: !Ref Api, StageName: ws}
"#,
            "us-east-1",
        )
        .unwrap();
        let handler: WsHandler = Arc::new(|_| Box::pin(async { json!({"statusCode": 200}) }));
        let handlers = HashMap::from([("Fn".to_owned(), handler)]);
        let server = DevServer {
            routes: Vec::new(),
            jwt_secret: "secret".into(),
            event_rules: Vec::new(),
            schedule_target: None,
            websocket: ws::WsGateway::new(&template.websocket_apis().unwrap(), &handlers).unwrap(),
        };
        assert_eq!(server.websocket_stages(), vec!["ws".to_owned()]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(server.serve(listener, std::future::pending()));
        let http = reqwest::Client::new();
        let gone = http
            .post(format!("{base}/ws/@connections/AAAAAAAAAAAAAAA%3D"))
            .body("hi")
            .send()
            .await
            .unwrap();
        assert_eq!(gone.status(), 410);
        assert_eq!(gone.headers()["x-amzn-errortype"], "GoneException");
        let missing = http.get(format!("{base}/health")).send().await.unwrap();
        assert_eq!(missing.status(), 404);
        let body: Value = missing.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found");
    }

    #[test]
    fn utf8_json_goes_as_text_and_binary_as_base64() {
        assert!(is_textual(Some("application/json; charset=utf-8")));
        assert!(is_textual(None));
        assert!(!is_textual(Some("image/png")));
    }
}
