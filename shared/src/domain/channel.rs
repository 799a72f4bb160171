//! Channels: a tenant's WhatsApp number, Facebook page, Instagram account or WeChat account.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::domain::ids::{ChannelId, TenantId};

/// Longest external id accepted (Meta ids are at most ~20 digits, WeChat ids ~15 chars).
const MAX_EXTERNAL_ID_LEN: usize = 128;
/// Longest channel display name.
const MAX_NAME_CHARS: usize = 100;
/// Longest credential value (Meta long-lived tokens are ~200-300 characters).
const MAX_SECRET_LEN: usize = 2048;
/// WeChat lets an account answer for 48 h; the product's default is 24 h (SPEC §4).
const WECHAT_MAX_WINDOW_HOURS: u8 = 48;
const WECHAT_DEFAULT_WINDOW_HOURS: u8 = 24;

/// The messaging platform behind a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelType {
    /// WhatsApp Business Cloud API; external id = phone_number_id.
    Whatsapp,
    /// Facebook Messenger; external id = page id.
    Messenger,
    /// Instagram messaging; external id = Instagram account id.
    Instagram,
    /// WeChat Official Account; external id = the account's original id (`gh_…`).
    Wechat,
}

impl ChannelType {
    /// Every channel type.
    pub const ALL: [Self; 4] = [
        Self::Whatsapp,
        Self::Messenger,
        Self::Instagram,
        Self::Wechat,
    ];

    /// The lowercase name used in the API and in keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Whatsapp => "whatsapp",
            Self::Messenger => "messenger",
            Self::Instagram => "instagram",
            Self::Wechat => "wechat",
        }
    }

    /// Parses the lowercase name.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "whatsapp" => Some(Self::Whatsapp),
            "messenger" => Some(Self::Messenger),
            "instagram" => Some(Self::Instagram),
            "wechat" => Some(Self::Wechat),
            _ => None,
        }
    }

    fn is_meta(self) -> bool {
        !matches!(self, Self::Wechat)
    }
}

impl fmt::Display for ChannelType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A connected channel as the API shows it. Credentials are never part of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Channel {
    /// Our id.
    pub id: ChannelId,
    /// Owner. Not serialized: a tenant only ever sees its own channels.
    #[serde(skip)]
    pub tenant_id: TenantId,
    /// Platform.
    #[serde(rename = "type")]
    pub channel_type: ChannelType,
    /// The provider's id of the account (unique across the deployment).
    pub external_id: String,
    /// Display name.
    pub name: String,
    /// WhatsApp Business Account id (templates live there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waba_id: Option<String>,
    /// Messenger/Instagram: may a human agent answer from 24 h to 7 days (HUMAN_AGENT tag).
    pub human_agent: bool,
    /// Customer service window length in hours (24, or WeChat's configurable value).
    pub window_hours: u8,
    /// When it was connected.
    #[serde(serialize_with = "crate::domain::time::serialize_rfc3339")]
    pub created_at: DateTime<Utc>,
}

/// A credential value: never printed, never serialized into a response.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for an adapter that must store or use it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A channel's provider credentials. Write-only through the API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// Meta: the system-user or page access token.
    pub access_token: Option<Secret>,
    /// Meta: the app secret when it differs from the deployment's; WeChat: the AppSecret.
    pub app_secret: Option<Secret>,
    /// WeChat: the AppID.
    pub app_id: Option<Secret>,
    /// WeChat: the server-configuration token used in webhook signatures.
    pub token: Option<Secret>,
    /// WeChat: the EncodingAESKey for encrypted mode (optional).
    pub encoding_aes_key: Option<Secret>,
}

/// The body of `POST /channels`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectChannel {
    /// Platform.
    #[serde(rename = "type")]
    pub channel_type: ChannelType,
    /// The provider's id of the account.
    pub external_id: String,
    /// Display name.
    pub name: String,
    /// Provider credentials (write-only).
    pub credentials: Credentials,
    /// WhatsApp only.
    #[serde(default)]
    pub waba_id: Option<String>,
    /// Messenger/Instagram only.
    #[serde(default)]
    pub human_agent: Option<bool>,
    /// WeChat only.
    #[serde(default)]
    pub window_hours: Option<u8>,
}

impl ConnectChannel {
    /// Checks the request against the platform's rules and builds the channel to store.
    pub fn into_channel(
        self,
        tenant_id: TenantId,
        id: ChannelId,
        now: DateTime<Utc>,
    ) -> Result<(Channel, Credentials), Error> {
        let kind = self.channel_type;
        let external_id = parse_external_id(kind, &self.external_id)?;
        let name = parse_name(&self.name)?;
        check_credentials(kind, &self.credentials)?;

        let waba_id = match (kind, self.waba_id) {
            (ChannelType::Whatsapp, Some(w)) => Some(parse_meta_id("waba_id", &w)?),
            (_, None) => None,
            (_, Some(_)) => return Err(only_for("waba_id", "whatsapp")),
        };
        // Messenger grants HUMAN_AGENT to page inboxes by default; Instagram needs the
        // permission approved for the app, so it is off unless the admin says so.
        let human_agent = match (kind, self.human_agent) {
            (ChannelType::Messenger | ChannelType::Instagram, Some(flag)) => flag,
            (ChannelType::Messenger, None) => true,
            (_, None) => false,
            (_, Some(_)) => return Err(only_for("human_agent", "messenger and instagram")),
        };
        let window_hours = match (kind, self.window_hours) {
            (ChannelType::Wechat, Some(h)) if (1..=WECHAT_MAX_WINDOW_HOURS).contains(&h) => h,
            (ChannelType::Wechat, Some(_)) => {
                return Err(Error::validation(
                    "invalid_window_hours",
                    format!("window_hours must be from 1 to {WECHAT_MAX_WINDOW_HOURS}"),
                ));
            }
            (ChannelType::Wechat, None) => WECHAT_DEFAULT_WINDOW_HOURS,
            (_, None) => 24,
            (_, Some(_)) => return Err(only_for("window_hours", "wechat")),
        };

        let channel = Channel {
            id,
            tenant_id,
            channel_type: kind,
            external_id,
            name,
            waba_id,
            human_agent,
            window_hours,
            created_at: now,
        };
        Ok((channel, self.credentials))
    }
}

fn only_for(field: &str, types: &str) -> Error {
    Error::validation(
        "field_not_allowed",
        format!("{field} applies only to {types} channels"),
    )
}

/// A WeChat original id (原始ID) starts with `gh_` (WeChat Official Account admin
/// console, "Account details"). The prefix also keeps it apart from Meta's numeric ids,
/// which share the deployment-wide claim on an external id: a WeChat channel, proven by
/// its AppID/AppSecret alone, must never hold a Page's, an account's or a number's id.
const WECHAT_ID_PREFIX: &str = "gh_";

fn parse_external_id(kind: ChannelType, raw: &str) -> Result<String, Error> {
    if kind.is_meta() {
        return parse_meta_id("external_id", raw);
    }
    let ok = raw.len() <= MAX_EXTERNAL_ID_LEN
        && raw.strip_prefix(WECHAT_ID_PREFIX).is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        });
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(Error::validation(
            "invalid_external_id",
            "a WeChat external_id is the account's original id: gh_ then letters, digits, _ or -, e.g. gh_1a2b3c4d5e6f",
        ))
    }
}

/// Meta object ids (phone_number_id, page id, IG account id, WABA id) are positive
/// decimal integers, written without leading zeros (as Graph and its webhooks write them):
/// one spelling per account, so the deployment-wide claim on an id cannot be doubled by
/// another spelling of it.
fn parse_meta_id(field: &'static str, raw: &str) -> Result<String, Error> {
    let ok = !raw.is_empty()
        && raw.len() <= 32
        && !raw.starts_with('0')
        && raw.bytes().all(|b| b.is_ascii_digit());
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(Error::validation(
            if field == "external_id" {
                "invalid_external_id"
            } else {
                "invalid_waba_id"
            },
            format!("{field} must be the numeric id Meta shows for the account"),
        ))
    }
}

fn parse_name(raw: &str) -> Result<String, Error> {
    let name = raw.trim();
    let count = name.chars().count();
    if count == 0 || count > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(Error::validation(
            "invalid_name",
            format!("name must be 1 to {MAX_NAME_CHARS} characters without control characters"),
        ));
    }
    Ok(name.to_owned())
}

fn check_credentials(kind: ChannelType, c: &Credentials) -> Result<(), Error> {
    let fields = [
        ("access_token", &c.access_token),
        ("app_secret", &c.app_secret),
        ("app_id", &c.app_id),
        ("token", &c.token),
        ("encoding_aes_key", &c.encoding_aes_key),
    ];
    let (required, allowed): (&[&str], &[&str]) = match kind {
        ChannelType::Wechat => (
            &["app_id", "app_secret", "token"],
            &["app_id", "app_secret", "token", "encoding_aes_key"],
        ),
        _ => (&["access_token"], &["access_token", "app_secret"]),
    };
    for (name, value) in fields {
        match value {
            Some(_) if !allowed.contains(&name) => {
                return Err(Error::validation(
                    "invalid_credentials",
                    format!("credentials.{name} does not apply to {kind} channels"),
                ));
            }
            Some(secret) => {
                let v = secret.expose();
                if v.is_empty() || v.len() > MAX_SECRET_LEN || v.chars().any(char::is_control) {
                    return Err(Error::validation(
                        "invalid_credentials",
                        format!(
                            "credentials.{name} must be 1 to {MAX_SECRET_LEN} printable characters"
                        ),
                    ));
                }
            }
            None if required.contains(&name) => {
                return Err(Error::validation(
                    "invalid_credentials",
                    format!("{kind} channels need credentials.{name}"),
                ));
            }
            None => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: serde_json::Value) -> Result<(Channel, Credentials), Error> {
        let req: ConnectChannel = serde_json::from_value(json).expect("well-formed request");
        req.into_channel(
            TenantId::parse("acme").unwrap(),
            ChannelId::generate(),
            Utc::now(),
        )
    }

    #[test]
    fn whatsapp_channel_needs_an_access_token() {
        let err = request(serde_json::json!({
            "type": "whatsapp", "external_id": "1065", "name": "Sales", "credentials": {}
        }))
        .unwrap_err();
        assert_eq!(err.code(), "invalid_credentials");
    }

    #[test]
    fn whatsapp_channel_is_built_with_a_24_hour_window() {
        let (channel, creds) = request(serde_json::json!({
            "type": "whatsapp", "external_id": "106540352242922", "name": " Sales ",
            "credentials": {"access_token": "EAAG"}, "waba_id": "102290129340398"
        }))
        .unwrap();
        assert_eq!(channel.name, "Sales");
        assert_eq!(channel.window_hours, 24);
        assert!(!channel.human_agent);
        assert_eq!(creds.access_token.unwrap().expose(), "EAAG");
    }

    #[test]
    fn messenger_defaults_to_human_agent_and_instagram_does_not() {
        let (m, _) = request(serde_json::json!({
            "type": "messenger", "external_id": "1", "name": "Page", "credentials": {"access_token": "t"}
        }))
        .unwrap();
        let (i, _) = request(serde_json::json!({
            "type": "instagram", "external_id": "2", "name": "IG", "credentials": {"access_token": "t"}
        }))
        .unwrap();
        assert!(m.human_agent);
        assert!(!i.human_agent);
    }

    #[test]
    fn wechat_window_is_configurable_up_to_48_hours() {
        let base = serde_json::json!({
            "type": "wechat", "external_id": "gh_1a2b3c", "name": "WX",
            "credentials": {"app_id": "wx1", "app_secret": "s", "token": "t"}
        });
        let (c, _) = request(base.clone()).unwrap();
        assert_eq!(c.window_hours, 24);
        let mut with_48 = base.clone();
        with_48["window_hours"] = 48.into();
        assert_eq!(request(with_48).unwrap().0.window_hours, 48);
        let mut with_49 = base;
        with_49["window_hours"] = 49.into();
        assert_eq!(request(with_49).unwrap_err().code(), "invalid_window_hours");
    }

    #[test]
    fn fields_of_another_platform_are_refused() {
        let err = request(serde_json::json!({
            "type": "whatsapp", "external_id": "1", "name": "n",
            "credentials": {"access_token": "t"}, "window_hours": 24
        }))
        .unwrap_err();
        assert_eq!(err.code(), "field_not_allowed");
        let err = request(serde_json::json!({
            "type": "whatsapp", "external_id": "1", "name": "n",
            "credentials": {"access_token": "t", "token": "x"}
        }))
        .unwrap_err();
        assert_eq!(err.code(), "invalid_credentials");
    }

    #[test]
    fn meta_external_ids_are_numeric() {
        let err = request(serde_json::json!({
            "type": "messenger", "external_id": "page#1", "name": "n", "credentials": {"access_token": "t"}
        }))
        .unwrap_err();
        assert_eq!(err.code(), "invalid_external_id");
    }

    #[test]
    fn meta_ids_with_leading_zeros_are_another_spelling_and_refused() {
        for id in ["0", "01029384756", "00"] {
            let err = request(serde_json::json!({
                "type": "messenger", "external_id": id, "name": "n", "credentials": {"access_token": "t"}
            }))
            .unwrap_err();
            assert_eq!(err.code(), "invalid_external_id", "{id}");
        }
        let err = request(serde_json::json!({
            "type": "whatsapp", "external_id": "1065", "name": "n", "waba_id": "0102",
            "credentials": {"access_token": "t"}
        }))
        .unwrap_err();
        assert_eq!(err.code(), "invalid_waba_id");
    }

    #[test]
    fn wechat_external_ids_are_original_ids_never_meta_ids() {
        let body = |id: &str| {
            serde_json::json!({
                "type": "wechat", "external_id": id, "name": "WX",
                "credentials": {"app_id": "wx1", "app_secret": "s", "token": "t"}
            })
        };
        for id in [
            "1029384756",
            "106540352242922",
            "gh_",
            "gh-1a2b",
            "GH_1a2b",
            "wx_1a2b",
            "",
        ] {
            let err = request(body(id)).unwrap_err();
            assert_eq!(err.code(), "invalid_external_id", "{id}");
        }
        assert_eq!(
            request(body("gh_1a2b3c4d5e6f")).unwrap().0.external_id,
            "gh_1a2b3c4d5e6f"
        );
    }

    #[test]
    fn blank_or_control_names_are_refused() {
        for name in ["", "   ", "a\u{0}b", &"x".repeat(101)] {
            let err = request(serde_json::json!({
                "type": "whatsapp", "external_id": "1", "name": name, "credentials": {"access_token": "t"}
            }))
            .unwrap_err();
            assert_eq!(err.code(), "invalid_name");
        }
    }

    #[test]
    fn unknown_fields_are_refused_by_the_parser() {
        let parsed: Result<ConnectChannel, _> = serde_json::from_value(serde_json::json!({
            "type": "whatsapp", "external_id": "1", "name": "n",
            "credentials": {"access_token": "t"}, "owner": "x"
        }));
        assert!(parsed.is_err());
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let creds = Credentials {
            access_token: Some(Secret::new("EAAGsecret")),
            ..Credentials::default()
        };
        assert!(!format!("{creds:?}").contains("EAAGsecret"));
    }
}
