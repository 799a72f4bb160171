//! After acceptance: each part goes to the provider with bounded, jittered retries inside
//! the send's deadline, and is settled once.

use std::future::Future;
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::domain::sniff::Blob;

use super::Outbound;
use super::accept::Resolved;
use crate::Error;
use crate::domain::channel::ChannelType;
use crate::domain::inbound::answered_alias;
use crate::domain::message::DeliveryError;
use crate::domain::outbound::{Attempt, Content, Delivery, Part, RetryPolicy};
use crate::ports::{
    ChannelSender, CustomerAliases, MediaUpload, ObjectStore, OutboundStore, Outgoing,
    PendingMessage, RoutedChannel, SendOutcome,
};

/// How long a presigned media link given to Meta stays valid (it fetches at send time).
const MEDIA_LINK_TTL: Duration = Duration::from_secs(15 * 60);

/// How long a send may take in all, and one provider call at most: retries and later parts
/// start only while a whole call still fits, so every message is settled before the
/// function's own timeout.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    /// When the last provider call must have ended.
    pub at: Instant,
    /// The cap on one provider call.
    pub call: Duration,
}

impl Deadline {
    fn fits(&self, wait: Duration) -> bool {
        Instant::now() + wait + self.call <= self.at
    }
}

/// Where and how the accepted messages of one send go.
pub(super) struct Plan<'a> {
    pub(super) channel: &'a RoutedChannel,
    pub(super) conversation_id: &'a str,
    pub(super) customer: &'a str,
    pub(super) resolved: &'a Resolved,
    pub(super) delivery: Delivery,
}

fn jitter() -> f64 {
    f64::from(ulid::Ulid::new().random() as u16) / 65536.0
}

fn exhausted(code: &str, attempts: u32) -> DeliveryError {
    let base = DeliveryError::explain("retries_exhausted", None);
    DeliveryError {
        code: code.to_owned(),
        reason: format!("{} ({attempts} attempts)", base.reason),
        hint: base.hint,
    }
}

/// Runs `call` with bounded, jittered retries of transient failures within the deadline.
async fn with_retries<T, F, Fut>(
    mut call: F,
    retry: RetryPolicy,
    deadline: Deadline,
) -> Result<T, SendOutcome>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Attempt>>,
{
    let mut retries = 0;
    if !deadline.fits(Duration::ZERO) {
        return Err(SendOutcome::Failed(DeliveryError::explain(
            "send_timeout",
            None,
        )));
    }
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            Err(Attempt::Accepted(_)) => {
                return Err(SendOutcome::Failed(DeliveryError::explain(
                    "unexpected_answer",
                    None,
                )));
            }
            Err(Attempt::Failed(error)) => return Err(SendOutcome::Failed(error)),
            Err(Attempt::Unknown) => return Err(SendOutcome::Unknown),
            Err(Attempt::RefreshToken) => {
                return Err(SendOutcome::Failed(DeliveryError::explain("42001", None)));
            }
            Err(Attempt::Retry { code, after }) => {
                match retry
                    .delay(retries, after, jitter())
                    .filter(|w| deadline.fits(*w))
                {
                    Some(wait) => {
                        tokio::time::sleep(wait).await;
                        retries += 1;
                    }
                    None => return Err(SendOutcome::Failed(exhausted(&code, retries + 1))),
                }
            }
        }
    }
}

async fn read_all(objects: &impl ObjectStore, key: &str) -> Result<Vec<u8>, SendOutcome> {
    let unreachable = || SendOutcome::Failed(DeliveryError::explain("131053", None));
    let mut blob = objects
        .open(key, None)
        .await
        .map_err(|_| unreachable())?
        .ok_or_else(unreachable)?
        .blob;
    let len = blob.len();
    blob.read_at(0, len).await.map_err(|_| unreachable())
}

impl<S, D, C, O> Outbound<S, D, C, O>
where
    S: OutboundStore + CustomerAliases,
    C: ChannelSender,
    O: ObjectStore,
{
    fn deadline(&self) -> Deadline {
        Deadline {
            at: Instant::now() + self.settings.budget,
            call: self.settings.call_timeout,
        }
    }

    /// Where the provider finds a part's media: a presigned link (Meta fetches it) or an
    /// uploaded media id (WeChat).
    async fn media_source(
        &self,
        plan: &Plan<'_>,
        kind: crate::domain::outbound::OutboundKind,
        deadline: Deadline,
    ) -> Result<String, SendOutcome> {
        let media = plan
            .resolved
            .media
            .as_ref()
            .ok_or_else(|| SendOutcome::Failed(DeliveryError::explain("131053", None)))?;
        let key = media.clean_key();
        if plan.channel.channel.channel_type != ChannelType::Wechat {
            return self
                .objects
                .presign_download(&key, MEDIA_LINK_TTL)
                .await
                .map_err(|_| SendOutcome::Failed(DeliveryError::explain("131053", None)));
        }
        let bytes = read_all(&self.objects, &key).await?;
        let file = MediaUpload {
            kind,
            filename: &media.filename,
            mime_type: &media.mime_type,
            bytes: &bytes,
        };
        // An upload reaches no customer: any failure short of a refusal is retried.
        let upload = || async {
            self.channels
                .upload_media(plan.channel, &file)
                .await
                .map_err(|a| match a {
                    Attempt::Unknown => Attempt::Retry {
                        code: "upload".into(),
                        after: None,
                    },
                    other => other,
                })
        };
        with_retries(upload, self.settings.retry, deadline).await
    }

    /// WhatsApp may resolve the number sent to into another `wa_id` (Brazilian mobiles
    /// without their ninth digit): that id is linked to this conversation before the send
    /// is settled, so the customer's reply and the statuses, which come from it, land
    /// here. A failed link is logged; the send stays sent.
    async fn link_answered_recipient(&self, plan: &Plan<'_>, answered: Option<&str>) {
        let Some(wa_id) = answered_alias(plan.customer, answered) else {
            return;
        };
        if let Err(e) = self
            .store
            .alias_customer(&plan.channel.channel, &wa_id, plan.customer)
            .await
        {
            tracing::error!(error = %e, conversation_id = %plan.conversation_id, "linking the wa_id WhatsApp answered failed");
        }
    }

    /// Sends one part with retries; what came of it.
    async fn deliver(
        &self,
        plan: &Plan<'_>,
        part: &Part,
        reference: &str,
        deadline: Deadline,
    ) -> SendOutcome {
        let source;
        let content = match part {
            Part::Text(t) => Content::Text(t),
            Part::Ask { text, options } => Content::Ask { text, options },
            Part::Template(call) => {
                let Some(template) = plan.resolved.template.as_ref() else {
                    return SendOutcome::Failed(DeliveryError::explain("132001", None));
                };
                Content::Template {
                    name: &call.name,
                    language: &call.language,
                    components: template.send_components(&call.parameters),
                }
            }
            Part::Media { kind, caption } => {
                source = match self.media_source(plan, *kind, deadline).await {
                    Ok(s) => s,
                    Err(outcome) => return outcome,
                };
                Content::Media {
                    kind: *kind,
                    source: &source,
                    caption: caption.as_deref(),
                    filename: plan
                        .resolved
                        .media
                        .as_ref()
                        .map_or("", |m| m.filename.as_str()),
                }
            }
        };
        let message = Outgoing {
            to: plan.customer,
            content,
            delivery: plan.delivery,
            reference,
        };
        let call = || async {
            match self.channels.send(plan.channel, &message).await {
                Attempt::Accepted(receipt) => Ok(receipt),
                other => Err(other),
            }
        };
        match with_retries(call, self.settings.retry, deadline).await {
            Ok(receipt) => {
                self.link_answered_recipient(plan, receipt.recipient.as_deref())
                    .await;
                SendOutcome::Sent(receipt.id)
            }
            Err(outcome) => outcome,
        }
    }

    /// A message the provider took whose settle failed, recorded at least as of unknown
    /// outcome (one plain update): left without an outcome, a repeat would take it over
    /// and send it again; the provider's status (or echo), which carries our reference,
    /// maps it back. `None` when the outcome was not `Sent` or this write failed too.
    async fn settle_unknown(
        &self,
        plan: &Plan<'_>,
        message: &PendingMessage,
        outcome: &SendOutcome,
    ) -> Option<SendOutcome> {
        if !matches!(outcome, SendOutcome::Sent(_)) {
            return None;
        }
        let tenant = &plan.channel.channel.tenant_id;
        let unknown = SendOutcome::Unknown;
        match self
            .store
            .settle(tenant, plan.conversation_id, message, &unknown, Utc::now())
            .await
        {
            Ok(()) => Some(unknown),
            Err(e) => {
                tracing::error!(message_id = %message.id, error = %e, "recording a sent message as of unknown outcome failed");
                None
            }
        }
    }

    /// Sends the accepted messages one after the other and settles each.
    pub(super) async fn deliver_all(
        &self,
        plan: &Plan<'_>,
        parts: &[Part],
        pending: &[PendingMessage],
    ) -> Result<Vec<SendOutcome>, Error> {
        let tenant = &plan.channel.channel.tenant_id;
        let deadline = self.deadline();
        let mut first_error = None;
        let mut outcomes = Vec::with_capacity(pending.len());
        for (part, message) in parts.iter().zip(pending) {
            let reference = format!("{}#{}", message.created_at, message.id);
            let outcome = self.deliver(plan, part, &reference, deadline).await;
            tracing::info!(
                message_id = %message.id,
                outcome = match &outcome {
                    SendOutcome::Sent(_) => "sent",
                    SendOutcome::Failed(_) => "failed",
                    SendOutcome::Unknown => "outcome_unknown",
                },
                "outbound message settled"
            );
            // A part that could not be recorded does not stop the next one.
            let outcome = match self
                .store
                .settle(tenant, plan.conversation_id, message, &outcome, Utc::now())
                .await
            {
                Ok(()) => outcome,
                Err(e) => {
                    tracing::error!(message_id = %message.id, error = %e, "settling a sent message failed");
                    match self.settle_unknown(plan, message, &outcome).await {
                        Some(unknown) => unknown,
                        None => {
                            first_error.get_or_insert(e);
                            outcome
                        }
                    }
                }
            };
            outcomes.push(outcome);
        }
        first_error.map_or(Ok(outcomes), Err)
    }
}
