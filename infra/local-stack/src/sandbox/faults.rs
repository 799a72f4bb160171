//! Failure injection: queued faults per account, seeded random chaos, and the answers a
//! provider gives when it fails.

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Answer, Api, SandboxError, trace_id};

/// Longest injected delay (a test that waits longer is a mistake).
const MAX_DELAY_MS: u64 = 120_000;

/// One injected behaviour for the next send call to an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// `{"status": 429|500|503|4xx, "retry_after"?, "code"?, "error_subcode"?, "message"?}`:
    /// a Graph error with that HTTP status (429 carries `Retry-After` when `retry_after`
    /// is given). On a WeChat account a 429 or 5xx is `{"errcode":-1}` (system error) and a
    /// 4xx is `errcode` = `code` (45015 when no code).
    Status {
        /// HTTP status, 400..=599.
        status: u16,
        /// `Retry-After` seconds.
        retry_after: Option<u64>,
        /// Graph error code (default by status: 130429 or 613, 1, 2, 100, 190).
        code: Option<i64>,
        /// Graph `error_subcode`.
        subcode: Option<i64>,
        /// Error text (default by code).
        message: Option<String>,
    },
    /// `{"errcode": N, "errmsg"?}`: a WeChat error answered with HTTP 200 (on a Graph
    /// account: a 400 with code N).
    Errcode {
        /// WeChat errcode.
        errcode: i64,
        /// Error text (default: WeChat's for the code).
        errmsg: Option<String>,
    },
    /// `{"delay_ms": N}`: wait, then process the call normally (it is accepted).
    Delay {
        /// Milliseconds, at most two minutes.
        ms: u64,
    },
}

fn field_u64(o: &Map<String, Value>, key: &str) -> Result<Option<u64>, String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("{key} must be a non-negative integer")),
    }
}

fn field_i64(o: &Map<String, Value>, key: &str) -> Result<Option<i64>, String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| format!("{key} must be an integer")),
    }
}

fn field_string(o: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{key} must be a string")),
    }
}

fn only_keys(o: &Map<String, Value>, allowed: &[&str]) -> Result<(), String> {
    match o.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "unknown key {k:?} (expected {})",
            allowed.join(", ")
        )),
        None => Ok(()),
    }
}

impl Fault {
    /// Reads a fault from its JSON form (see the variants); the reason when malformed.
    pub fn parse(value: &Value) -> Result<Self, String> {
        let o = value.as_object().ok_or("a fault is a JSON object")?;
        if o.contains_key("delay_ms") {
            only_keys(o, &["delay_ms"])?;
            let ms = field_u64(o, "delay_ms")?.unwrap_or(0);
            if ms > MAX_DELAY_MS {
                return Err(format!("delay_ms is at most {MAX_DELAY_MS}"));
            }
            return Ok(Self::Delay { ms });
        }
        if o.contains_key("errcode") {
            only_keys(o, &["errcode", "errmsg"])?;
            return Ok(Self::Errcode {
                errcode: field_i64(o, "errcode")?.ok_or("errcode must be an integer")?,
                errmsg: field_string(o, "errmsg")?,
            });
        }
        only_keys(
            o,
            &["status", "retry_after", "code", "error_subcode", "message"],
        )?;
        let status = field_u64(o, "status")?.ok_or("a fault needs status, errcode or delay_ms")?;
        if !(400..=599).contains(&status) {
            return Err("status must be 400..=599".into());
        }
        Ok(Self::Status {
            status: status as u16,
            retry_after: field_u64(o, "retry_after")?,
            code: field_i64(o, "code")?,
            subcode: field_i64(o, "error_subcode")?,
            message: field_string(o, "message")?,
        })
    }

    /// The answer a provider gives for this fault (not for [`Fault::Delay`]).
    pub(super) fn answer(&self, api: Api) -> Answer {
        match (self, api) {
            (Self::Delay { .. }, _) => Answer::json(StatusCode::OK, json!({})),
            (
                Self::Status {
                    status,
                    code,
                    message,
                    ..
                },
                Api::Wechat,
            ) => {
                let transient = *status == 429 || *status >= 500;
                let errcode = if transient { -1 } else { code.unwrap_or(45015) };
                let errmsg = match message {
                    Some(m) if !transient => m.clone(),
                    _ => wechat_errmsg(errcode).to_owned(),
                };
                Answer::wechat(json!({"errcode": errcode, "errmsg": errmsg}))
            }
            (Self::Errcode { errcode, errmsg }, Api::Wechat) => Answer::wechat(json!({
                "errcode": errcode,
                "errmsg": errmsg.clone().unwrap_or_else(|| wechat_errmsg(*errcode).to_owned()),
            })),
            (Self::Errcode { errcode, errmsg }, _) => graph_error(
                api,
                StatusCode::BAD_REQUEST,
                GraphError {
                    code: *errcode,
                    subcode: None,
                    message: errmsg.as_deref().unwrap_or("Injected error"),
                    details: None,
                },
            ),
            (
                Self::Status {
                    status,
                    retry_after,
                    code,
                    subcode,
                    message,
                },
                _,
            ) => {
                let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST);
                let (default_code, default_message) = match status.as_u16() {
                    429 if api == Api::Whatsapp => (130429, "Rate limit hit"),
                    429 => (613, "Calls to this api have exceeded the rate limit."),
                    500 => (1, "An unknown error occurred"),
                    s if s >= 500 => (2, "Service temporarily unavailable"),
                    401 => (190, "Invalid OAuth access token"),
                    _ => (100, "Invalid parameter"),
                };
                let code = code.unwrap_or(default_code);
                let text = message.as_deref().unwrap_or(match code {
                    c if c == default_code => default_message,
                    c => graph_title(c),
                });
                let mut answer = graph_error(
                    api,
                    status,
                    GraphError {
                        code,
                        subcode: *subcode,
                        message: text,
                        details: None,
                    },
                );
                answer.retry_after = *retry_after;
                answer
            }
        }
    }
}

/// WeChat's `errmsg` for the codes a sandbox user meets (WeChat's own spelling, typo
/// of 40006 included).
pub(super) fn wechat_errmsg(errcode: i64) -> &'static str {
    match errcode {
        -1 => "system error",
        0 => "ok",
        40001 => "invalid credential, access_token is invalid or not latest",
        40002 => "invalid grant_type",
        40003 => "invalid openid",
        40004 => "invalid media type",
        40005 => "invalid file type",
        40006 => "invalid meida size",
        40007 => "invalid media_id",
        40008 => "invalid message type",
        40009 => "invalid image size",
        40010 => "invalid voice size",
        40011 => "invalid video size",
        40125 => "invalid appsecret",
        41001 => "access_token missing",
        41002 => "appid missing",
        41004 => "appsecret missing",
        41005 => "media data missing",
        42001 => "access_token expired",
        43004 => "require subscribe",
        44001 => "empty media data",
        44002 => "empty post data",
        44003 => "empty news data",
        44004 => "empty content",
        45008 => "article size out of limit",
        45009 => "reach max api daily quota limit",
        45015 => "response out of time limit or subscription is canceled",
        45047 => "out of response count limit",
        47001 => "data format error",
        48001 => "api unauthorized",
        _ => "error",
    }
}

/// Titles of the Graph / WhatsApp codes SPEC §4 names.
pub(super) fn graph_title(code: i64) -> &'static str {
    match code {
        1 => "An unknown error occurred",
        2 => "Service temporarily unavailable",
        100 => "Invalid parameter",
        190 => "Invalid OAuth access token",
        470 => {
            "Message failed to send because more than 24 hours have passed since the customer last replied to this number"
        }
        613 => "Calls to this api have exceeded the rate limit.",
        130429 => "Rate limit hit",
        131000 => "Something went wrong",
        131009 => "Parameter value is not valid",
        131026 => "Message undeliverable",
        131047 => "Re-engagement message",
        131051 => "Unsupported message type",
        131052 => "Media download error",
        131053 => "Media upload error",
        131056 => "(Business Account, Consumer Account) pair rate limit hit",
        132000 => "Number of parameters does not match the expected number of params",
        132001 => "Template name does not exist in the translation",
        132015 => "Template is paused",
        132016 => "Template is disabled",
        _ => "Error",
    }
}

/// The parts of a Graph error body.
pub(super) struct GraphError<'a> {
    pub(super) code: i64,
    pub(super) subcode: Option<i64>,
    /// Text after `(#code) `.
    pub(super) message: &'a str,
    /// WhatsApp `error_data.details` (default: the message).
    pub(super) details: Option<&'a str>,
}

/// A Graph API error answer: `{"error": {"message": "(#code) …", "type", "code",
/// "error_subcode"?, "error_data"? (WhatsApp), "is_transient"? (5xx), "fbtrace_id"}}`.
pub(super) fn graph_error(api: Api, status: StatusCode, e: GraphError<'_>) -> Answer {
    let mut error = json!({
        "message": format!("(#{}) {}", e.code, e.message),
        "type": "OAuthException",
        "code": e.code,
        "fbtrace_id": trace_id(),
    });
    if let Some(subcode) = e.subcode {
        error["error_subcode"] = json!(subcode);
    }
    if api == Api::Whatsapp && e.code != 190 {
        error["error_data"] = json!({
            "messaging_product": "whatsapp",
            "details": e.details.unwrap_or(e.message),
        });
    }
    if status.is_server_error() {
        error["is_transient"] = json!(true);
    }
    Answer::json(status, json!({ "error": error }))
}

/// Random failures for one account.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct ChaosSettings {
    /// Share of sends failing transiently (429 with `Retry-After: 0`, 500, 503 in turn).
    #[serde(default)]
    pub transient_rate: f64,
    /// Share failing permanently (WhatsApp 131026, Messenger 100/2018001, WeChat 45015).
    #[serde(default)]
    pub permanent_rate: f64,
    /// The random sequence's seed: the same seed and calls give the same failures.
    #[serde(default)]
    pub seed: u64,
}

impl ChaosSettings {
    pub(super) fn check(&self) -> Result<(), SandboxError> {
        let rate = |r: f64| (0.0..=1.0).contains(&r);
        if !rate(self.transient_rate)
            || !rate(self.permanent_rate)
            || self.transient_rate + self.permanent_rate > 1.0
        {
            return Err(SandboxError::bad_request(
                "invalid_rate",
                "transient_rate and permanent_rate are 0..=1 and add up to at most 1",
            ));
        }
        Ok(())
    }

    pub(super) fn is_off(&self) -> bool {
        self.transient_rate == 0.0 && self.permanent_rate == 0.0
    }
}

/// SplitMix64: small, seedable, and the same on every platform.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Chaos of one account: its rates and random state.
#[derive(Debug, Clone)]
pub(super) struct Chaos {
    settings: ChaosSettings,
    rng: SplitMix64,
    transient_turn: usize,
}

impl Chaos {
    pub(super) fn new(settings: ChaosSettings) -> Self {
        Self {
            settings,
            rng: SplitMix64(settings.seed),
            transient_turn: 0,
        }
    }

    /// The fault for the next call, if this one fails.
    pub(super) fn draw(&mut self, api: Api) -> Option<Fault> {
        let roll = self.rng.next_f64();
        if roll < self.settings.transient_rate {
            let (status, retry_after) =
                [(429, Some(0)), (500, None), (503, None)][self.transient_turn % 3];
            self.transient_turn += 1;
            return Some(Fault::Status {
                status,
                retry_after,
                code: None,
                subcode: None,
                message: None,
            });
        }
        if roll < self.settings.transient_rate + self.settings.permanent_rate {
            return Some(match api {
                Api::Whatsapp => Fault::Status {
                    status: 400,
                    retry_after: None,
                    code: Some(131026),
                    subcode: None,
                    message: Some("Message undeliverable".into()),
                },
                Api::Messenger => Fault::Status {
                    status: 400,
                    retry_after: None,
                    code: Some(100),
                    subcode: Some(2018001),
                    message: Some("No matching user found".into()),
                },
                Api::Wechat => Fault::Errcode {
                    errcode: 45015,
                    errmsg: None,
                },
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_from_their_json_forms() {
        assert_eq!(
            Fault::parse(&json!({"status": 429, "retry_after": 1})),
            Ok(Fault::Status {
                status: 429,
                retry_after: Some(1),
                code: None,
                subcode: None,
                message: None
            })
        );
        assert_eq!(
            Fault::parse(&json!({"errcode": 45047})),
            Ok(Fault::Errcode {
                errcode: 45047,
                errmsg: None
            })
        );
        assert_eq!(
            Fault::parse(&json!({"delay_ms": 3000})),
            Ok(Fault::Delay { ms: 3000 })
        );
    }

    #[test]
    fn malformed_faults_are_refused_with_a_reason() {
        for bad in [
            json!("429"),
            json!({}),
            json!({"status": 200}),
            json!({"status": "429"}),
            json!({"status": 429, "retry": 1}),
            json!({"delay_ms": -1}),
            json!({"delay_ms": 1_000_000}),
            json!({"errcode": "x"}),
        ] {
            assert!(Fault::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_whatsapp_rate_limit_carries_retry_after_and_code_130429() {
        let answer = Fault::parse(&json!({"status": 429, "retry_after": 1}))
            .unwrap()
            .answer(Api::Whatsapp);
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(answer.retry_after, Some(1));
        assert_eq!(answer.body["error"]["code"], 130429);
        assert_eq!(answer.body["error"]["message"], "(#130429) Rate limit hit");
        assert_eq!(
            answer.body["error"]["error_data"]["messaging_product"],
            "whatsapp"
        );
    }

    #[test]
    fn server_errors_are_transient_and_wechat_sees_a_system_error() {
        let fault = Fault::parse(&json!({"status": 503})).unwrap();
        let graph = fault.answer(Api::Messenger);
        assert_eq!(graph.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(graph.body["error"]["code"], 2);
        assert_eq!(graph.body["error"]["is_transient"], true);
        let wechat = fault.answer(Api::Wechat);
        assert_eq!(wechat.status, StatusCode::OK);
        assert_eq!(
            wechat.body,
            json!({"errcode": -1, "errmsg": "system error"})
        );
    }

    #[test]
    fn a_permanent_whatsapp_failure_has_its_code_and_details() {
        let answer = Fault::parse(
            &json!({"status": 400, "code": 131026, "message": "Message undeliverable"}),
        )
        .unwrap()
        .answer(Api::Whatsapp);
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert_eq!(answer.body["error"]["code"], 131026);
        assert_eq!(
            answer.body["error"]["error_data"]["details"],
            "Message undeliverable"
        );
        let wechat = Fault::parse(&json!({"errcode": 45015}))
            .unwrap()
            .answer(Api::Wechat);
        assert_eq!(
            wechat.body["errmsg"],
            "response out of time limit or subscription is canceled"
        );
    }

    #[test]
    fn chaos_with_the_same_seed_fails_the_same_calls() {
        let settings = ChaosSettings {
            transient_rate: 0.3,
            permanent_rate: 0.1,
            seed: 42,
        };
        let run = || {
            let mut chaos = Chaos::new(settings);
            (0..200)
                .map(|_| chaos.draw(Api::Whatsapp))
                .collect::<Vec<_>>()
        };
        let first = run();
        assert_eq!(first, run());
        let failed = first.iter().filter(|f| f.is_some()).count();
        assert!((50..=110).contains(&failed), "{failed} of 200 failed");
        let other = {
            let mut chaos = Chaos::new(ChaosSettings {
                seed: 7,
                ..settings
            });
            (0..200)
                .map(|_| chaos.draw(Api::Whatsapp))
                .collect::<Vec<_>>()
        };
        assert_ne!(first, other);
    }

    #[test]
    fn chaos_rates_outside_zero_to_one_are_refused() {
        let bad = ChaosSettings {
            transient_rate: 0.8,
            permanent_rate: 0.5,
            seed: 0,
        };
        assert!(bad.check().is_err());
        assert!(
            ChaosSettings {
                transient_rate: -0.1,
                ..bad
            }
            .check()
            .is_err()
        );
    }
}
