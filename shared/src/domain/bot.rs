//! Chatbots (SPEC §8): a bot's definition and its validation, trigger matching, and the
//! decision of one bot turn. Everything here is pure; the runner in
//! [`crate::service::bots`] reads, claims the turn and sends.
//!
//! A turn starts at an inbound customer message. With no bot running, the enabled bots whose
//! trigger matches are ranked by `priority` and the first starts at its first step. A
//! running bot waits at an `ask` step: the customer's answer (a button, list row or quick
//! reply id, the option's number or its title) moves it to that option's `next`; anything
//! else repeats the question once, then hands over. `reply` steps chain through `next`
//! within one turn; a bot with no step left has completed. Every stop blocks the
//! conversation for bots until it is closed (and so reopened).

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};

use aho_corasick::{AhoCorasick, Anchored, Input, StartKind};
use chrono::{DateTime, Duration, Utc};
use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::domain::actor::Actor;
use crate::domain::channel::ChannelType;
use crate::domain::outbound::{MAX_CAPTION_CHARS, OutboundKind, ReplyOption, SendMessage};
use crate::domain::text::fold;

/// Most options of an `ask` step (WhatsApp's list: 10 rows).
pub const MAX_OPTIONS: usize = 10;
/// Most reply buttons WhatsApp shows; more options go out as a list.
pub const WHATSAPP_MAX_BUTTONS: usize = 3;
/// Longest WhatsApp reply button title (Cloud API, interactive `button`).
pub const WHATSAPP_BUTTON_TITLE_CHARS: usize = 20;
/// Longest WhatsApp list row title (Cloud API, interactive `list`).
pub const WHATSAPP_ROW_TITLE_CHARS: usize = 24;
/// Longest Messenger/Instagram quick reply title (Messenger Platform, quick replies).
pub const QUICK_REPLY_TITLE_CHARS: usize = 20;
/// Longest option title in a WeChat numbered menu (a product limit: one line on a phone).
pub const WECHAT_OPTION_TITLE_CHARS: usize = 60;
/// Longest option id (WhatsApp's button and row ids allow 256 and 200 characters).
pub const MAX_OPTION_ID_CHARS: usize = 200;
/// Most steps in a bot.
pub const MAX_STEPS: usize = 50;
/// Longest step id.
pub const MAX_STEP_ID_CHARS: usize = 64;
/// Longest bot name.
pub const MAX_NAME_CHARS: usize = 100;
/// Most keywords of a keyword trigger (500 of 100 characters fit the API's 64 KB body).
pub const MAX_KEYWORDS: usize = 500;
/// Longest keyword.
pub const MAX_KEYWORD_CHARS: usize = 100;
/// Most exit keywords.
pub const MAX_EXIT_KEYWORDS: usize = 20;
/// Longest regex pattern, in characters.
pub const MAX_PATTERN_CHARS: usize = 500;
/// Largest compiled regex program, in bytes (`regex` crate `size_limit`): a costly
/// pattern (huge repetitions) is refused at save instead of slowing every message.
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;
/// Largest lazy DFA cache per regex, in bytes (`regex` crate `dfa_size_limit`).
pub const REGEX_DFA_SIZE_LIMIT: usize = 1024 * 1024;
/// Exit keywords when a bot names none.
pub const DEFAULT_EXIT_KEYWORDS: [&str; 2] = ["agent", "human"];
/// Minutes a bot waits for an answer when a bot names no timeout.
pub const DEFAULT_TIMEOUT_MINUTES: u32 = 30;
/// Longest timeout: 7 days.
pub const MAX_TIMEOUT_MINUTES: u32 = 7 * 24 * 60;
/// Most messages one turn sends: WeChat's 5 replies per customer message (errors 45015,
/// 45047), applied everywhere so a bot behaves alike on every channel.
pub const MAX_SENDS_PER_TURN: usize = 5;
/// Longest text of a step (WhatsApp's text limit; an `ask` body is at most 1024).
pub const MAX_STEP_TEXT_CHARS: usize = 4096;
/// Longest `ask` question (WhatsApp interactive body text).
pub const MAX_QUESTION_CHARS: usize = 1024;
/// Spacing of a turn's messages from its base time, in milliseconds, so that its system
/// messages and sends list in order.
pub const TURN_STEP_MS: i64 = 10;

/// The time of a turn's `n`th message from its base time `at` (0: `bot_started`).
pub fn turn_time(at: DateTime<Utc>, n: usize) -> DateTime<Utc> {
    at + Duration::milliseconds(TURN_STEP_MS.saturating_mul(i64::try_from(n).unwrap_or(1000)))
}

/// How keywords match the customer's text (case and accents ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeywordMatch {
    /// The whole message is the keyword (surrounding punctuation ignored).
    Exact,
    /// The keyword appears anywhere in the message.
    #[default]
    Contains,
    /// The message begins with the keyword.
    StartsWith,
}

/// What starts a bot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerType {
    /// One of `keywords` matches.
    Keyword,
    /// `pattern` matches (case-insensitive).
    Regex,
    /// The conversation's first customer message.
    FirstMessage,
    /// A message outside the tenant's business hours (settings, in its time zone).
    OutsideHours,
}

/// `trigger` of a bot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// The kind of trigger.
    #[serde(rename = "type")]
    pub trigger_type: TriggerType,
    /// Keywords (`keyword`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
    /// How keywords match (`keyword`; default `contains`).
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub keyword_match: Option<KeywordMatch>,
    /// The pattern (`regex`, Rust `regex` syntax, matched ignoring case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
}

/// `reply`, `ask` or `handover`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepType {
    /// Sends a text or media, then goes on to `next` (or completes).
    Reply,
    /// Sends a question with options and waits for the answer.
    Ask,
    /// Stops the bot and leaves the conversation to agents (optionally assigned).
    Handover,
}

/// An option of an `ask` step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotOption {
    /// Id, unique in its step: the button, row or quick reply id.
    pub id: String,
    /// What the customer sees.
    pub title: String,
    /// The step it leads to; none: the bot completes.
    #[serde(default)]
    pub next: Option<String>,
}

/// A step of a bot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Id, unique in the bot (1–64 of `A-Z a-z 0-9 _ -`).
    pub id: String,
    /// What the step does.
    #[serde(rename = "type")]
    pub step_type: StepType,
    /// Text (`reply`: the message or the media's caption; `ask`: the question;
    /// `handover`: an optional message before agents take over).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// A `valid` media record (`reply`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_id: Option<String>,
    /// The media's send kind (image, video, audio, file, sticker): filled at save from the
    /// media record when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<OutboundKind>,
    /// Options (`ask`, 1–10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<BotOption>,
    /// The next step (`reply`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// The agent to assign at a `handover` (an agent of the tenant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assign_to: Option<String>,
}

fn default_true() -> bool {
    true
}

fn default_exit_keywords() -> Vec<String> {
    DEFAULT_EXIT_KEYWORDS
        .iter()
        .map(|k| (*k).to_owned())
        .collect()
}

fn default_timeout() -> u32 {
    DEFAULT_TIMEOUT_MINUTES
}

/// `PUT /bots/{id}`: a bot as an admin writes it. `id`, `created_at` and `updated_at`
/// may be echoed back from a `GET` (the id must then be the path's); they are not written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotInput {
    /// Echoed id (must equal the path's).
    #[serde(default)]
    pub id: Option<String>,
    /// Name shown to agents.
    pub name: String,
    /// Whether it may start (default true).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Channels it runs on (empty: all).
    #[serde(default)]
    pub channel_ids: Vec<String>,
    /// Rank among bots whose triggers match (larger wins).
    #[serde(default)]
    pub priority: i32,
    /// What starts it.
    pub trigger: Trigger,
    /// Its steps; the first is where it starts.
    pub steps: Vec<Step>,
    /// Messages that stop it (whole message, case and accents ignored).
    #[serde(default = "default_exit_keywords")]
    pub exit_keywords: Vec<String>,
    /// Minutes it waits for an answer before it stops.
    #[serde(default = "default_timeout")]
    pub timeout_minutes: u32,
    /// Ignored (read-only).
    #[serde(default)]
    pub created_at: Option<serde_json::Value>,
    /// Ignored (read-only).
    #[serde(default)]
    pub updated_at: Option<serde_json::Value>,
}

/// A bot as stored and shown (`GET /bots/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bot {
    /// Id (1–64 of `A-Z a-z 0-9 _ -`, chosen by the admin).
    pub id: String,
    /// Name shown to agents.
    pub name: String,
    /// Whether it may start.
    pub enabled: bool,
    /// Channels it runs on (empty: all).
    pub channel_ids: Vec<String>,
    /// Rank among bots whose triggers match (larger wins; ties: the smaller id).
    pub priority: i32,
    /// What starts it.
    pub trigger: Trigger,
    /// Its steps; the first is where it starts.
    pub steps: Vec<Step>,
    /// Messages that stop it.
    pub exit_keywords: Vec<String>,
    /// Minutes it waits for an answer before it stops.
    pub timeout_minutes: u32,
    /// First saved (RFC 3339).
    pub created_at: String,
    /// Last saved (RFC 3339).
    pub updated_at: String,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::validation("invalid_bot", message)
}

/// Whether `id` is a valid bot or step id: 1–64 of `A-Z a-z 0-9 _ -`.
pub fn valid_id(id: &str) -> bool {
    (1..=MAX_STEP_ID_CHARS).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks a bot id from a path.
///
/// # Errors
/// 422 `invalid_bot_id`.
pub fn parse_bot_id(id: &str) -> Result<String, Error> {
    if valid_id(id) {
        Ok(id.to_owned())
    } else {
        Err(Error::validation(
            "invalid_bot_id",
            "a bot id is 1-64 of A-Z, a-z, 0-9, _ and -",
        ))
    }
}

/// The longest option title `channel` shows for an `ask` with `count` options.
pub fn option_title_limit(channel: ChannelType, count: usize) -> usize {
    match channel {
        ChannelType::Whatsapp if count <= WHATSAPP_MAX_BUTTONS => WHATSAPP_BUTTON_TITLE_CHARS,
        ChannelType::Whatsapp => WHATSAPP_ROW_TITLE_CHARS,
        ChannelType::Messenger | ChannelType::Instagram => QUICK_REPLY_TITLE_CHARS,
        ChannelType::Wechat => WECHAT_OPTION_TITLE_CHARS,
    }
}

/// The regex of a `regex` trigger, within the size limits.
///
/// # Errors
/// The `regex` crate's message (syntax, or a compiled size over the limits).
pub fn compile_pattern(pattern: &str) -> Result<Regex, String> {
    if pattern.chars().count() > MAX_PATTERN_CHARS {
        return Err(format!("longer than {MAX_PATTERN_CHARS} characters"));
    }
    RegexBuilder::new(pattern)
        .case_insensitive(true)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_DFA_SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => {
                "too costly (its compiled form exceeds the size limit)".to_owned()
            }
            other => other
                .to_string()
                .lines()
                .last()
                .unwrap_or("invalid")
                .trim()
                .to_owned(),
        })
}

/// Text as matched against keywords: folded (case, accents, spaces) and stripped of
/// surrounding punctuation, so "Agent!" is "agent" and "¿Precio?" is "precio".
pub fn normalize(text: &str) -> String {
    fold(text).trim_matches(is_punctuation).to_owned()
}

/// Punctuation and spaces trimmed around a message before matching: ASCII punctuation and
/// the marks common in the product's languages (Spanish, Chinese, Japanese, quotes). Emoji
/// stay: a keyword may be one.
fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
        || c.is_whitespace()
        || "¿¡。、，！？：；“”‘’«»…·・「」『』【】（）".contains(c)
}

fn check_text(step: &str, what: &str, text: &str, max: usize) -> Result<(), Error> {
    if text.trim().is_empty() {
        return Err(invalid(format!("step `{step}`: {what} is empty")));
    }
    if text.chars().count() > max {
        return Err(invalid(format!(
            "step `{step}`: {what} is longer than {max} characters"
        )));
    }
    Ok(())
}

impl BotInput {
    /// The bot to store under `id` at `now` (`created_at` from the stored one, if any),
    /// checked as a whole for the channel types it may run on.
    ///
    /// # Errors
    /// 422 `invalid_bot` naming the field or step: a bad name, id or count, a `next`
    /// that is not a step, a step no path reaches, replies that loop without asking, an
    /// option title too long for one of `channel_types`, more than 10 options, a trigger
    /// without keywords or pattern, a regex that does not compile or is too costly, a
    /// timeout outside 1–10080 minutes; 422 `invalid_bot_id` when the echoed id differs.
    pub fn into_bot(
        self,
        id: &str,
        channel_types: &[ChannelType],
        created_at: Option<String>,
        now: &str,
    ) -> Result<Bot, Error> {
        if self.id.as_deref().is_some_and(|echoed| echoed != id) {
            return Err(Error::validation(
                "invalid_bot_id",
                "the body's id differs from the path's",
            ));
        }
        let name = self.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(invalid(format!(
                "name must be 1-{MAX_NAME_CHARS} characters"
            )));
        }
        check_trigger(&self.trigger)?;
        if !(1..=MAX_TIMEOUT_MINUTES).contains(&self.timeout_minutes) {
            return Err(invalid(format!(
                "timeout_minutes must be 1-{MAX_TIMEOUT_MINUTES}"
            )));
        }
        if self.exit_keywords.len() > MAX_EXIT_KEYWORDS
            || self
                .exit_keywords
                .iter()
                .any(|k| normalize(k).is_empty() || k.chars().count() > 40)
        {
            return Err(invalid(format!(
                "exit_keywords: at most {MAX_EXIT_KEYWORDS}, each 1-40 characters with a letter or digit"
            )));
        }
        let mut seen = HashSet::new();
        for c in &self.channel_ids {
            if !seen.insert(c) {
                return Err(invalid(format!("channel_ids: `{c}` is listed twice")));
            }
        }
        check_steps(&self.steps, channel_types)?;
        let bot = Bot {
            id: id.to_owned(),
            name,
            enabled: self.enabled,
            channel_ids: self.channel_ids,
            priority: self.priority,
            trigger: self.trigger,
            steps: self.steps,
            exit_keywords: self.exit_keywords,
            timeout_minutes: self.timeout_minutes,
            created_at: created_at.unwrap_or_else(|| now.to_owned()),
            updated_at: now.to_owned(),
        };
        // What is saved is what the runner can run.
        CompiledBot::new(bot.clone()).map_err(|_| {
            invalid("trigger: the keywords cannot be matched (too many or too long once folded)")
        })?;
        Ok(bot)
    }
}

fn check_trigger(t: &Trigger) -> Result<(), Error> {
    let only = |ok: bool, what: &str| {
        if ok {
            Ok(())
        } else {
            Err(invalid(format!("trigger: {what}")))
        }
    };
    match t.trigger_type {
        TriggerType::Keyword => {
            only(t.pattern.is_none(), "a keyword trigger takes no pattern")?;
            only(
                (1..=MAX_KEYWORDS).contains(&t.keywords.len()),
                &format!("a keyword trigger needs 1-{MAX_KEYWORDS} keywords"),
            )?;
            for k in &t.keywords {
                only(
                    !normalize(k).is_empty() && k.chars().count() <= MAX_KEYWORD_CHARS,
                    &format!(
                        "each keyword is 1-{MAX_KEYWORD_CHARS} characters with more than punctuation"
                    ),
                )?;
            }
            Ok(())
        }
        TriggerType::Regex => {
            only(
                t.keywords.is_empty() && t.keyword_match.is_none(),
                "a regex trigger takes no keywords or match",
            )?;
            let pattern = t
                .pattern
                .as_deref()
                .ok_or_else(|| invalid("trigger: a regex trigger needs a pattern"))?;
            compile_pattern(pattern)
                .map(|_| ())
                .map_err(|why| invalid(format!("trigger: the pattern is {why}")))
        }
        TriggerType::FirstMessage | TriggerType::OutsideHours => only(
            t.keywords.is_empty() && t.keyword_match.is_none() && t.pattern.is_none(),
            "this trigger takes no keywords, match or pattern",
        ),
    }
}

fn check_steps(steps: &[Step], channel_types: &[ChannelType]) -> Result<(), Error> {
    if steps.is_empty() || steps.len() > MAX_STEPS {
        return Err(invalid(format!("steps: a bot has 1-{MAX_STEPS} steps")));
    }
    let mut index = HashMap::new();
    for (i, s) in steps.iter().enumerate() {
        if !valid_id(&s.id) {
            return Err(invalid(format!(
                "step {i}: an id is 1-{MAX_STEP_ID_CHARS} of A-Z, a-z, 0-9, _ and -"
            )));
        }
        if index.insert(s.id.as_str(), i).is_some() {
            return Err(invalid(format!("step `{}`: the id is used twice", s.id)));
        }
    }
    for s in steps {
        check_step(s, channel_types)?;
        let targets = s
            .next
            .iter()
            .chain(s.options.iter().filter_map(|o| o.next.as_ref()));
        for next in targets {
            if !index.contains_key(next.as_str()) {
                return Err(invalid(format!(
                    "step `{}`: next `{}` is not a step of this bot",
                    s.id,
                    next.chars().take(64).collect::<String>()
                )));
            }
        }
    }
    // Every step must be reachable from the first.
    let mut reached = vec![false; steps.len()];
    let mut stack = vec![0usize];
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut reached[i], true) {
            continue;
        }
        let s = &steps[i];
        for next in s
            .next
            .iter()
            .chain(s.options.iter().filter_map(|o| o.next.as_ref()))
        {
            stack.push(index[next.as_str()]);
        }
    }
    if let Some(i) = reached.iter().position(|r| !r) {
        return Err(invalid(format!(
            "step `{}`: no path from the first step reaches it",
            steps[i].id
        )));
    }
    // A chain of replies runs within one turn: it must not loop.
    for (start, s) in steps.iter().enumerate() {
        let mut hops = 0;
        let mut step = s;
        while step.step_type == StepType::Reply {
            let Some(next) = &step.next else { break };
            let at = index[next.as_str()];
            step = &steps[at];
            hops += 1;
            if at == start || hops > steps.len() {
                return Err(invalid(format!(
                    "step `{}`: replies lead back to it without an ask, so the bot would never stop",
                    s.id
                )));
            }
        }
    }
    // What one turn sends from each place a turn starts (the first step, each option's
    // next): at most MAX_SENDS_PER_TURN messages before the customer can answer.
    let entries = std::iter::once(0).chain(
        steps
            .iter()
            .flat_map(|s| s.options.iter().filter_map(|o| o.next.as_ref()))
            .map(|next| index[next.as_str()]),
    );
    for start in entries {
        let mut sends = 0;
        let mut at = Some(start);
        let mut hops = 0;
        while let Some(i) = at.filter(|_| hops <= steps.len()) {
            let step = &steps[i];
            hops += 1;
            match step.step_type {
                StepType::Reply => {
                    sends += 1;
                    at = step.next.as_ref().map(|n| index[n.as_str()]);
                }
                StepType::Ask => {
                    sends += 1;
                    at = None;
                }
                StepType::Handover => {
                    sends += usize::from(step.text.is_some());
                    at = None;
                }
            }
        }
        if sends > MAX_SENDS_PER_TURN {
            return Err(invalid(format!(
                "step `{}`: {sends} messages in a row from here; a turn sends at most {MAX_SENDS_PER_TURN} (WeChat's replies per customer message) before the customer can answer",
                steps[start].id
            )));
        }
    }
    Ok(())
}

fn check_step(s: &Step, channel_types: &[ChannelType]) -> Result<(), Error> {
    let id = s.id.as_str();
    let refuse = |what: &str| Err(invalid(format!("step `{id}`: {what}")));
    if s.step_type != StepType::Handover && s.assign_to.is_some() {
        return refuse("assign_to is only for handover steps");
    }
    if s.step_type != StepType::Ask && !s.options.is_empty() {
        return refuse("options are only for ask steps");
    }
    if s.step_type != StepType::Reply && (s.media_id.is_some() || s.kind.is_some()) {
        return refuse("media is only for reply steps");
    }
    match s.step_type {
        StepType::Reply => {
            if s.media_id.is_none() && s.kind.is_some() {
                return refuse("kind needs a media_id");
            }
            if s.kind == Some(OutboundKind::Text) || s.kind == Some(OutboundKind::Template) {
                return refuse("kind is the media's: image, video, audio, file or sticker");
            }
            match (&s.text, &s.media_id) {
                (None, None) => refuse("a reply needs text or a media_id"),
                // With media the text is its caption (WhatsApp's limit).
                (Some(t), Some(_)) => check_text(id, "the caption", t, MAX_CAPTION_CHARS),
                (Some(t), None) => check_text(id, "text", t, MAX_STEP_TEXT_CHARS),
                (None, Some(_)) => Ok(()),
            }
        }
        StepType::Ask => {
            if s.next.is_some() {
                return refuse("an ask moves on through its options' next, not its own");
            }
            check_text(
                id,
                "the question",
                s.text.as_deref().unwrap_or(""),
                MAX_QUESTION_CHARS,
            )?;
            if s.options.is_empty() || s.options.len() > MAX_OPTIONS {
                return refuse(&format!("an ask has 1-{MAX_OPTIONS} options"));
            }
            let mut ids = HashSet::new();
            let mut titles = HashSet::new();
            for o in &s.options {
                if o.id.trim().is_empty()
                    || o.id.trim() != o.id
                    || o.id.chars().count() > MAX_OPTION_ID_CHARS
                {
                    return refuse(&format!(
                        "an option id is 1-{MAX_OPTION_ID_CHARS} characters, without spaces at either end"
                    ));
                }
                if !ids.insert(o.id.as_str()) {
                    return refuse(&format!("option id `{}` is used twice", o.id));
                }
                if normalize(&o.title).is_empty() {
                    return refuse("an option title needs a letter or digit");
                }
                if !titles.insert(normalize(&o.title)) {
                    return refuse(&format!("two options are titled `{}`", o.title));
                }
                for channel in channel_types {
                    let max = option_title_limit(*channel, s.options.len());
                    if o.title.chars().count() > max {
                        return refuse(&format!(
                            "option `{}`: the title is longer than {max} characters, the limit on {channel}",
                            o.id
                        ));
                    }
                }
            }
            Ok(())
        }
        StepType::Handover => {
            if s.next.is_some() {
                return refuse("a handover ends the bot: it has no next");
            }
            match &s.text {
                Some(t) => check_text(id, "text", t, MAX_STEP_TEXT_CHARS),
                None => Ok(()),
            }
        }
    }
}

/// How a bot's keywords or pattern are matched, built once per bot version.
#[derive(Debug, Clone)]
enum Matcher {
    Exact(HashSet<String>),
    /// An Aho-Corasick automaton of the normalized keywords: one pass over the text
    /// whatever their number.
    Contains(AhoCorasick),
    /// The same, anchored at the start of the text.
    StartsWith(AhoCorasick),
    Pattern(Regex),
    FirstMessage,
    OutsideHours,
}

/// A bot ready to match: its definition with the trigger compiled.
#[derive(Debug, Clone)]
pub struct CompiledBot {
    /// The definition.
    pub bot: Bot,
    matcher: Matcher,
    exits: HashSet<String>,
}

impl CompiledBot {
    /// Compiles a stored bot.
    ///
    /// # Errors
    /// `Internal` when a stored pattern no longer compiles (it was checked at save).
    pub fn new(bot: Bot) -> Result<Self, Error> {
        let automaton = |anchored: bool| -> Result<AhoCorasick, Error> {
            let words: Vec<String> = bot
                .trigger
                .keywords
                .iter()
                .map(|k| normalize(k))
                .filter(|k| !k.is_empty())
                .collect();
            let kind = if anchored {
                StartKind::Anchored
            } else {
                StartKind::Unanchored
            };
            AhoCorasick::builder()
                .start_kind(kind)
                .build(words)
                .map_err(|e| Error::Internal(format!("bot {} keywords: {e}", bot.id)))
        };
        let matcher = match bot.trigger.trigger_type {
            TriggerType::Keyword => match bot.trigger.keyword_match.unwrap_or_default() {
                KeywordMatch::Exact => {
                    Matcher::Exact(bot.trigger.keywords.iter().map(|k| normalize(k)).collect())
                }
                KeywordMatch::Contains => Matcher::Contains(automaton(false)?),
                KeywordMatch::StartsWith => Matcher::StartsWith(automaton(true)?),
            },
            TriggerType::Regex => Matcher::Pattern(
                compile_pattern(bot.trigger.pattern.as_deref().unwrap_or_default())
                    .map_err(|e| Error::Internal(format!("bot {} pattern: {e}", bot.id)))?,
            ),
            TriggerType::FirstMessage => Matcher::FirstMessage,
            TriggerType::OutsideHours => Matcher::OutsideHours,
        };
        let exits = bot.exit_keywords.iter().map(|k| normalize(k)).collect();
        Ok(Self {
            bot,
            matcher,
            exits,
        })
    }

    /// Whether this bot may run on `channel_id`.
    pub fn runs_on(&self, channel_id: &str) -> bool {
        self.bot.channel_ids.is_empty() || self.bot.channel_ids.iter().any(|c| c == channel_id)
    }

    /// Whether the trigger matches `message` (with `normalized` its [`normalize`]d text).
    fn triggers(&self, message: &InboundTurn<'_>, normalized: &str) -> bool {
        let text = message.text.unwrap_or("");
        match &self.matcher {
            Matcher::Exact(set) => !normalized.is_empty() && set.contains(normalized),
            Matcher::Contains(ac) => !normalized.is_empty() && ac.is_match(normalized),
            Matcher::StartsWith(ac) => {
                !normalized.is_empty()
                    && ac
                        .find(Input::new(normalized).anchored(Anchored::Yes))
                        .is_some()
            }
            Matcher::Pattern(re) => !text.is_empty() && re.is_match(text),
            Matcher::FirstMessage => message.first_message,
            Matcher::OutsideHours => !message.business_open,
        }
    }

    fn step(&self, id: &str) -> Option<&Step> {
        self.bot.steps.iter().find(|s| s.id == id)
    }
}

/// The bot running on a conversation, as stored on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveBot {
    /// The bot.
    pub bot_id: String,
    /// Its name when it started.
    pub name: String,
    /// When it started.
    pub since: DateTime<Utc>,
    /// The `ask` step it waits at.
    pub step: String,
    /// How often the question was asked (1, then 2 after one unrecognized answer).
    pub asked: u8,
    /// When it last asked: the timeout counts from here.
    pub waiting_since: DateTime<Utc>,
    /// Minutes it waits for an answer.
    pub timeout_minutes: u32,
}

impl ActiveBot {
    /// When it stops waiting.
    pub fn deadline(&self) -> DateTime<Utc> {
        self.waiting_since + Duration::minutes(i64::from(self.timeout_minutes))
    }

    /// Whether it still runs at `now` (its timeout not passed).
    pub fn runs_at(&self, now: DateTime<Utc>) -> bool {
        now < self.deadline()
    }
}

/// A conversation's bot state: the running bot, whether bots are blocked (one stopped
/// since the conversation was last closed), and a version every bot write bumps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BotRun {
    /// The running bot.
    pub active: Option<ActiveBot>,
    /// A bot stopped since the conversation was last closed: none starts again until then.
    pub blocked: bool,
    /// Bumped by every write of the bot state (turn claims condition on it).
    pub version: u64,
}

/// The inbound message a turn answers.
#[derive(Debug, Clone, Copy)]
pub struct InboundTurn<'a> {
    /// Channel type of the conversation.
    pub channel: ChannelType,
    /// Channel id.
    pub channel_id: &'a str,
    /// The customer's id (the actor of an exit keyword).
    pub customer_id: &'a str,
    /// The message text (for a button or quick reply: its title).
    pub text: Option<&'a str>,
    /// The id of the option chosen with a button, list row or quick reply.
    pub answer: Option<&'a str>,
    /// The provider's time of the message.
    pub at: DateTime<Utc>,
    /// Whether it is the conversation's first customer message.
    pub first_message: bool,
    /// Whether the business is open at `at` (settings).
    pub business_open: bool,
    /// Whether an agent has read or answered the conversation since the customer's
    /// messages (its unread count is 0): no bot starts then (a late event, or an agent
    /// already on it).
    pub agent_caught_up: bool,
}

/// Why a bot stopped (`reason` of `bot_exited`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitReason {
    /// An agent pressed Exit Bot.
    ExitBot,
    /// An agent replied in the conversation.
    AgentReplied,
    /// A `handover` step.
    Handover,
    /// The customer wrote an exit keyword.
    ExitKeyword,
    /// No answer within `timeout_minutes`.
    Timeout,
    /// No step left.
    Completed,
    /// The question was not answered twice.
    Unanswered,
    /// It could not reply: outside the customer service window or WeChat's quota spent.
    WindowClosed,
    /// The bot was disabled, deleted or changed so that its step is gone.
    BotChanged,
    /// The send path refused its message (e.g. media no longer valid).
    SendFailed,
}

impl ExitReason {
    /// The API code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ExitBot => "exit_bot",
            Self::AgentReplied => "agent_replied",
            Self::Handover => "handover",
            Self::ExitKeyword => "exit_keyword",
            Self::Timeout => "timeout",
            Self::Completed => "completed",
            Self::Unanswered => "unanswered",
            Self::WindowClosed => "window_closed",
            Self::BotChanged => "bot_changed",
            Self::SendFailed => "send_failed",
        }
    }

    /// Readable text for the `bot_exited` system message.
    pub fn text(self, bot_name: &str) -> String {
        let why = match self {
            Self::ExitBot => "stopped by an agent (Exit Bot)",
            Self::AgentReplied => "stopped: an agent replied",
            Self::Handover => "handed the conversation over to agents",
            Self::ExitKeyword => "stopped: the customer asked for a person",
            Self::Timeout => "stopped: no answer in time",
            Self::Completed => "finished",
            Self::Unanswered => "handed over: the question was not answered",
            Self::WindowClosed => {
                "did not reply: the customer service window is closed (or WeChat's reply quota is spent)"
            }
            Self::BotChanged => "stopped: the bot was changed, disabled or deleted",
            Self::SendFailed => "stopped: its message could not be sent",
        };
        format!("Bot “{bot_name}” {why}")
    }
}

/// How a bot stops at the end of a turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// Why.
    pub reason: ExitReason,
    /// Who stopped it.
    pub actor: Actor,
    /// When (a timeout: its deadline, in the past).
    pub at: DateTime<Utc>,
    /// The agent a handover assigns.
    pub assign_to: Option<String>,
}

/// What a turn does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    /// The bot acting (id, name).
    pub bot_id: String,
    /// Its name.
    pub bot_name: String,
    /// Whether it starts with this turn (a `bot_started` system message).
    pub starts: bool,
    /// Messages to send, in order, as the bot.
    pub sends: Vec<SendMessage>,
    /// The bot state after the turn: waiting at an ask, or `None` with an exit.
    pub waiting: Option<ActiveBot>,
    /// How it stops, if it does.
    pub exit: Option<Exit>,
    /// Whether the stop blocks bots until the conversation is closed: a bot that ran
    /// stopped; not a bot that could not start.
    pub blocks: bool,
}

/// The decision for one inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No bot acts (none running or matching, bots blocked, or standby).
    Nothing,
    /// A bot acts.
    Turn(Box<Turn>),
}

/// Whether a bot may send `count` free-form messages now (window and quota, as the send
/// path will check them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendAllowance {
    /// Free-form sends are allowed now (`free_form` window mode).
    pub free_form: bool,
    /// How many more replies the channel takes (WeChat's quota; `usize::MAX` elsewhere).
    pub replies_left: usize,
}

/// Decides one bot turn for an inbound customer message (SPEC §8), given the tenant's
/// bots, the conversation's bot state and what may be sent now.
pub fn decide<B: std::borrow::Borrow<CompiledBot>>(
    bots: &[B],
    run: &BotRun,
    message: &InboundTurn<'_>,
    allowance: SendAllowance,
) -> Decision {
    let normalized = normalize(message.text.unwrap_or(""));
    let customer = Actor::Customer {
        id: message.customer_id.to_owned(),
    };
    if let Some(active) = &run.active {
        let running = bots
            .iter()
            .map(Borrow::borrow)
            .find(|b: &&CompiledBot| b.bot.id == active.bot_id && b.bot.enabled)
            .filter(|b| b.runs_on(message.channel_id));
        let stop = |reason, actor, at| {
            Decision::Turn(Box::new(Turn {
                bot_id: active.bot_id.clone(),
                bot_name: active.name.clone(),
                starts: false,
                sends: Vec::new(),
                waiting: None,
                exit: Some(Exit {
                    reason,
                    actor,
                    at,
                    assign_to: None,
                }),
                blocks: true,
            }))
        };
        let Some(bot) = running else {
            return stop(ExitReason::BotChanged, Actor::System, message.at);
        };
        if !active.runs_at(message.at) {
            return stop(ExitReason::Timeout, Actor::System, active.deadline());
        }
        let Some(ask) = bot
            .step(&active.step)
            .filter(|s| s.step_type == StepType::Ask)
        else {
            return stop(ExitReason::BotChanged, Actor::System, message.at);
        };
        // A tapped button follows its option even when its title is an exit keyword.
        let tapped = message
            .answer
            .is_some_and(|id| ask.options.iter().any(|o| o.id == id));
        if !tapped && bot.exits.contains(&normalized) {
            return stop(ExitReason::ExitKeyword, customer, message.at);
        }
        let mut turn = Box::new(Turn {
            bot_id: bot.bot.id.clone(),
            bot_name: active.name.clone(),
            starts: false,
            sends: Vec::new(),
            waiting: None,
            exit: None,
            blocks: true,
        });
        match chosen(ask, message, &normalized) {
            Some(option) => run_from(
                bot,
                option.next.as_deref(),
                active.since,
                message,
                &mut turn,
            ),
            None if active.asked < 2 => {
                turn.sends.push(ask_message(ask));
                turn.waiting = Some(ActiveBot {
                    asked: active.asked + 1,
                    waiting_since: message.at,
                    ..active.clone()
                });
            }
            None => {
                turn.exit = Some(Exit {
                    reason: ExitReason::Unanswered,
                    actor: Actor::Bot {
                        id: bot.bot.id.clone(),
                    },
                    at: message.at,
                    assign_to: None,
                });
            }
        }
        return within_allowance(turn, message.channel, allowance, message.at);
    }
    if run.blocked || message.agent_caught_up {
        return Decision::Nothing;
    }
    let winner = bots
        .iter()
        .map(Borrow::borrow)
        .filter(|b: &&CompiledBot| b.bot.enabled && b.runs_on(message.channel_id))
        .filter(|b| b.triggers(message, &normalized))
        .max_by(|a, b| {
            a.bot
                .priority
                .cmp(&b.bot.priority)
                .then_with(|| b.bot.id.cmp(&a.bot.id))
        });
    let Some(bot) = winner else {
        return Decision::Nothing;
    };
    let mut turn = Box::new(Turn {
        bot_id: bot.bot.id.clone(),
        bot_name: bot.bot.name.clone(),
        starts: true,
        sends: Vec::new(),
        waiting: None,
        exit: None,
        blocks: true,
    });
    let first = bot.bot.steps.first().map(|s| s.id.as_str());
    run_from(bot, first, message.at, message, &mut turn);
    within_allowance(turn, message.channel, allowance, message.at)
}

/// A bot that cannot send what the turn needs does nothing but stop, saying why.
fn within_allowance(
    mut turn: Box<Turn>,
    channel: ChannelType,
    allowance: SendAllowance,
    at: DateTime<Utc>,
) -> Decision {
    // What the channel receives: a caption it cannot carry is a second message.
    let messages: usize = turn
        .sends
        .iter()
        .map(|m| m.parts(channel).map_or(1, |p| p.len()))
        .sum();
    if turn.sends.is_empty() || (allowance.free_form && messages <= allowance.replies_left) {
        return Decision::Turn(turn);
    }
    turn.sends.clear();
    turn.waiting = None;
    // A bot that could not say its first word did not start: no `bot_started`, and bots
    // may start on a later message.
    if turn.starts {
        turn.starts = false;
        turn.blocks = false;
    }
    turn.exit = Some(Exit {
        reason: ExitReason::WindowClosed,
        actor: Actor::System,
        at,
        assign_to: None,
    });
    Decision::Turn(turn)
}

/// Runs steps from `from` until an ask waits, a handover, or no step is left.
fn run_from(
    bot: &CompiledBot,
    from: Option<&str>,
    since: DateTime<Utc>,
    message: &InboundTurn<'_>,
    turn: &mut Turn,
) {
    let me = Actor::Bot {
        id: bot.bot.id.clone(),
    };
    let mut next = from;
    loop {
        let step = match next.and_then(|id| bot.step(id)) {
            Some(step) if turn.sends.len() < MAX_SENDS_PER_TURN => step,
            Some(_) | None => {
                turn.exit = Some(Exit {
                    reason: ExitReason::Completed,
                    actor: me,
                    at: message.at,
                    assign_to: None,
                });
                return;
            }
        };
        match step.step_type {
            StepType::Reply => {
                turn.sends.push(reply_message(step));
                next = step.next.as_deref();
            }
            StepType::Ask => {
                turn.sends.push(ask_message(step));
                turn.waiting = Some(ActiveBot {
                    bot_id: bot.bot.id.clone(),
                    name: turn.bot_name.clone(),
                    since,
                    step: step.id.clone(),
                    asked: 1,
                    waiting_since: message.at,
                    timeout_minutes: bot.bot.timeout_minutes,
                });
                return;
            }
            StepType::Handover => {
                if let Some(text) = &step.text {
                    turn.sends.push(text_message(text));
                }
                turn.exit = Some(Exit {
                    reason: ExitReason::Handover,
                    actor: me,
                    at: message.at,
                    assign_to: step.assign_to.clone(),
                });
                return;
            }
        }
    }
}

/// The option the customer chose: a button/row/quick reply id, the option's title, or its
/// number (1 for the first).
fn chosen<'s>(ask: &'s Step, message: &InboundTurn<'_>, normalized: &str) -> Option<&'s BotOption> {
    if let Some(answer) = message.answer {
        if let Some(o) = ask.options.iter().find(|o| o.id == answer) {
            return Some(o);
        }
    }
    // A title first: an option may be titled "4" without being the fourth.
    if let Some(o) = ask
        .options
        .iter()
        .find(|o| normalize(&o.title) == normalized)
    {
        return Some(o);
    }
    normalized
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| ask.options.get(i))
}

fn text_message(text: &str) -> SendMessage {
    SendMessage {
        kind: OutboundKind::Text,
        text: Some(text.to_owned()),
        media_id: None,
        caption: None,
        template: None,
        options: None,
    }
}

fn reply_message(step: &Step) -> SendMessage {
    match (&step.media_id, step.kind) {
        (Some(media), Some(kind)) => SendMessage {
            kind,
            text: None,
            media_id: Some(media.clone()),
            caption: step.text.clone(),
            template: None,
            options: None,
        },
        _ => text_message(step.text.as_deref().unwrap_or_default()),
    }
}

fn ask_message(step: &Step) -> SendMessage {
    SendMessage {
        options: Some(
            step.options
                .iter()
                .map(|o| ReplyOption {
                    id: o.id.clone(),
                    title: o.title.clone(),
                })
                .collect(),
        ),
        ..text_message(step.text.as_deref().unwrap_or_default())
    }
}

/// The option id a customer's message carries, from the provider's fragment stored as
/// the message's `raw`: a WhatsApp button or list reply (`interactive.button_reply.id`,
/// `interactive.list_reply.id`), a template quick reply (`button.payload`), a Messenger or
/// Instagram quick reply (`message.quick_reply.payload`) or postback (`postback.payload`).
pub fn answer_of(raw: &serde_json::Value) -> Option<String> {
    [
        &raw["interactive"]["button_reply"]["id"],
        &raw["interactive"]["list_reply"]["id"],
        &raw["button"]["payload"],
        &raw["message"]["quick_reply"]["payload"],
        &raw["postback"]["payload"],
    ]
    .into_iter()
    .find_map(|v| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned))
}

#[cfg(test)]
#[path = "bot_tests.rs"]
mod tests;
