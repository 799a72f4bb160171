//! Proof that a channel is the tenant's, asked of the provider with the credentials given
//! at `POST /channels`, before anything is stored (so nobody can claim another business's
//! number, page or account by naming its id).
//!
//! - WhatsApp: `GET /{waba_id}/phone_numbers` with the token must list the phone number
//!   id (Cloud API, "Phone Numbers" of a WhatsApp Business Account; pages followed by their
//!   `after` cursor, at most [`MAX_PAGES`]).
//! - Messenger: `GET /{page_id}/subscribed_apps` answers only to a token of that Page
//!   (Graph API Page reference: it needs a Page access token with `pages_manage_metadata`).
//! - Instagram: `GET /{ig_user_id}?fields=id,username` must answer with that id (the
//!   account is visible only to tokens of its linked Page).
//! - WeChat: `POST cgi-bin/stable_token` must give a token for the AppID/AppSecret (normal
//!   mode: it never cuts the account's current token short), got and kept as a send would.
//!
//! With a Meta `app_secret`, every call carries `appsecret_proof` (HMAC-SHA256 of the token
//! keyed by the app secret, hex), so Meta also checks that the secret belongs to the
//! token's app.

use reqwest::RequestBuilder;
use serde_json::Value;

use super::Channels;
use crate::Error;
use crate::domain::channel::{Channel, ChannelType, Credentials};
use crate::domain::outbound::Attempt;
use crate::ports::ChannelVerifier;

/// Most pages of a WABA's phone numbers read (100 numbers a page).
pub const MAX_PAGES: usize = 10;

/// The error of a channel the provider would not vouch for (422), with its reason.
fn not_verified(message: impl Into<String>) -> Error {
    Error::validation("channel_not_verified", message)
}

/// `appsecret_proof`: HMAC-SHA256 of the access token keyed by the app secret, lower-case
/// hex (Graph API, "Securing requests").
pub fn appsecret_proof(app_secret: &str, access_token: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(app_secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(access_token.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The error of a provider answer that is not the provider's answer to the call (502):
/// an HTML page, an empty body, a JSON of another shape. It proves nothing.
fn unreadable(provider: &'static str, what: &str) -> Error {
    Error::Upstream {
        provider,
        message: format!("the answer about {what} is not one the API gives"),
    }
}

/// `text` with every credential value in it replaced: a provider's message may quote the
/// token or secret it was given, and credentials are never shown nor logged.
fn redact(text: &str, credentials: &Credentials) -> String {
    let secrets = [
        &credentials.access_token,
        &credentials.app_secret,
        &credentials.app_id,
        &credentials.token,
        &credentials.encoding_aes_key,
    ];
    secrets
        .into_iter()
        .flatten()
        .map(|s| s.expose())
        .filter(|s| !s.is_empty())
        .fold(text.to_owned(), |text, secret| text.replace(secret, "***"))
}

/// A Graph GET with the channel's token (and proof when there is an app secret): the JSON
/// object Graph answered, or why Meta refused (422 `channel_not_verified` with Meta's
/// words, credentials masked), or a 502 when Meta failed, could not be reached, or gave
/// something that is not a Graph answer. A 2xx carrying Graph's `error` object is a
/// refusal: only an answer proves.
async fn graph_get(
    request: RequestBuilder,
    credentials: &Credentials,
    what: &str,
) -> Result<Value, Error> {
    let token = credentials
        .access_token
        .as_ref()
        .map(|t| t.expose())
        .unwrap_or_default();
    let mut request = request.bearer_auth(token);
    if let Some(secret) = &credentials.app_secret {
        request = request.query(&[("appsecret_proof", appsecret_proof(secret.expose(), token))]);
    }
    let refused = |message: &str| {
        not_verified(format!(
            "Meta did not show {what} to this access token: {}",
            redact(message, credentials)
        ))
    };
    match super::graph::admin(request).await {
        Ok(body) if body.get("error").is_some() => Err(refused(
            body["error"]["message"].as_str().unwrap_or("no details"),
        )),
        Ok(body) if body.is_object() => Ok(body),
        Ok(_) => Err(unreadable("Graph", what)),
        Err(Error::Validation { message, .. }) => Err(refused(&message)),
        Err(Error::Upstream { provider, message }) => Err(Error::Upstream {
            provider,
            message: redact(&message, credentials),
        }),
        Err(other) => Err(other),
    }
}

impl Channels {
    async fn verify_whatsapp(
        &self,
        channel: &Channel,
        credentials: &Credentials,
    ) -> Result<(), Error> {
        let http = self.admin_client()?;
        let Some(waba) = channel.waba_id.as_deref() else {
            return Err(Error::validation(
                "waba_id_required",
                "a WhatsApp channel needs the waba_id its phone number is under (shown in WhatsApp Manager)",
            ));
        };
        let url = format!("{}/{waba}/phone_numbers", self.urls.graph);
        let mut after: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut request = http
                .get(&url)
                .query(&[("fields", "id,display_phone_number"), ("limit", "100")]);
            if let Some(cursor) = &after {
                request = request.query(&[("after", cursor)]);
            }
            let what = format!("the WABA {waba}");
            let page = graph_get(request, credentials, &what).await?;
            let Some(listed) = page["data"].as_array() else {
                return Err(unreadable("Graph", &what));
            };
            if listed
                .iter()
                .any(|n| n["id"] == channel.external_id.as_str())
            {
                return Ok(());
            }
            // Another page only while Meta says there is one.
            if page["paging"]["next"].is_null() {
                break;
            }
            match page["paging"]["cursors"]["after"].as_str() {
                Some(cursor) if !cursor.is_empty() => after = Some(cursor.to_owned()),
                _ => break,
            }
        }
        Err(not_verified(format!(
            "the phone number {} is not under the WABA {waba} for this access token",
            channel.external_id
        )))
    }

    /// Meta answers the edge (`{"data": [apps…]}`) only to a token of the Page; any other
    /// answer, even a 200, proves nothing.
    async fn verify_page(&self, channel: &Channel, credentials: &Credentials) -> Result<(), Error> {
        let http = self.admin_client()?;
        let url = format!(
            "{}/{}/subscribed_apps",
            self.urls.graph, channel.external_id
        );
        let what = format!("the Page {}", channel.external_id);
        let answer = graph_get(http.get(url), credentials, &what).await?;
        if answer["data"].is_array() {
            Ok(())
        } else {
            Err(unreadable("Graph", &what))
        }
    }

    async fn verify_instagram(
        &self,
        channel: &Channel,
        credentials: &Credentials,
    ) -> Result<(), Error> {
        let http = self.admin_client()?;
        let url = format!("{}/{}", self.urls.graph, channel.external_id);
        let what = format!("the Instagram account {}", channel.external_id);
        let account = graph_get(
            http.get(url).query(&[("fields", "id,username")]),
            credentials,
            &what,
        )
        .await?;
        if account["id"] == channel.external_id.as_str() {
            Ok(())
        } else {
            Err(not_verified(format!("Meta did not show {what}")))
        }
    }

    /// The token is got the way a send gets it (the deployment's shared one when the
    /// process keeps tokens in the table), so the channel's first send finds it there.
    async fn verify_wechat(
        &self,
        channel: &Channel,
        credentials: &Credentials,
    ) -> Result<(), Error> {
        let client = super::wechat::Client {
            http: self.admin_client()?,
            base: &self.urls.wechat,
            tokens: &self.wechat_tokens,
        };
        let routed = crate::ports::RoutedChannel {
            channel: channel.clone(),
            credentials: credentials.clone(),
        };
        match client.token(&routed, None).await {
            Ok(_) => Ok(()),
            Err(Attempt::Failed(refused)) => Err(not_verified(format!(
                "WeChat gave no access token for this AppID and AppSecret ({}: {})",
                refused.code,
                redact(&refused.reason, credentials)
            ))),
            Err(_) => Err(Error::Upstream {
                provider: "WeChat",
                message: "no answer to the access token request".into(),
            }),
        }
    }
}

impl ChannelVerifier for Channels {
    async fn verify(&self, channel: &Channel, credentials: &Credentials) -> Result<(), Error> {
        match channel.channel_type {
            ChannelType::Whatsapp => self.verify_whatsapp(channel, credentials).await,
            ChannelType::Messenger => self.verify_page(channel, credentials).await,
            ChannelType::Instagram => self.verify_instagram(channel, credentials).await,
            ChannelType::Wechat => self.verify_wechat(channel, credentials).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_messages_never_carry_the_credentials_on() {
        use crate::domain::channel::Secret;
        let credentials = Credentials {
            access_token: Some(Secret::new("EAAG-token")),
            app_secret: Some(Secret::new("app-secret")),
            ..Credentials::default()
        };
        assert_eq!(
            redact(
                "Malformed access token EAAG-token (app-secret, EAAG-token)",
                &credentials
            ),
            "Malformed access token *** (***, ***)"
        );
        assert_eq!(
            redact("nothing to hide", &Credentials::default()),
            "nothing to hide"
        );
    }

    #[test]
    fn appsecret_proof_is_the_hex_hmac_of_the_token_keyed_by_the_secret() {
        // HMAC-SHA256(key "secret", message "token"), computed with Python's hmac module.
        assert_eq!(
            appsecret_proof("secret", "token"),
            "e941110e3d2bfe82621f0e3e1434730d7305d106c5f68c87165d0b27a4611a4a"
        );
    }
}
