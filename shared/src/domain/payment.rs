//! Payments (SPEC §11): the tenant's payment settings and products, money in a currency's
//! minor units, payment requests, a payment's life, and the texts around it. Pure: the
//! Stripe wire format is in [`crate::domain::stripe`], the use cases in
//! [`crate::service::payments`].
//!
//! Money is an integer number of the currency's minor units, with the ISO 4217 exponent
//! (the `iso_currency` crate's table): `1250` USD is 12.50 (exponent 2), `1250` JPY is
//! 1,250 yen (exponent 0), `1250` KWD is 1.250 dinars (exponent 3). Stripe takes amounts the
//! same way ("zero-decimal" and "three-decimal" currencies, Stripe docs, "Supported
//! currencies"); currencies without an exponent (gold, test codes) or with 4 are refused.

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::domain::actor::Actor;
use crate::domain::channel::Secret;
use crate::domain::system::{SystemEvent, SystemMessage};
use crate::domain::template::TemplateCall;

/// Largest amount Stripe takes, in minor units: eight digits (Stripe docs, "Minimum and
/// maximum charge amounts").
pub const MAX_AMOUNT: i64 = 99_999_999;
/// Most line items of a Checkout Session (Stripe API reference, `line_items`: up to 100).
pub const MAX_ITEMS: usize = 100;
/// Largest quantity of one item (a product limit).
pub const MAX_QUANTITY: i64 = 999;
/// Longest product name or description, in characters (a product limit).
pub const NAME_MAX: usize = 200;
/// Most products of a tenant (a product limit: the catalog is listed in one page).
pub const MAX_PRODUCTS: u32 = 1000;
/// How long a payment link lives, in minutes: Checkout Sessions expire 30 minutes to 24
/// hours after creation (Stripe API reference, `expires_at`).
pub const LINK_MINUTES: std::ops::RangeInclusive<i64> = 30..=1440;
/// The placeholder a template parameter may hold for the payment link.
pub const URL_PLACEHOLDER: &str = "{{url}}";

/// Stripe's zero-decimal currencies (Stripe docs, "Supported currencies"): amounts are whole
/// units even where ISO 4217 gives minor units (MGA).
const STRIPE_ZERO_DECIMAL: [&str; 16] = [
    "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV",
    "XAF", "XOF", "XPF",
];
/// Currencies Stripe treats unlike both tables (ISK: zero-decimal sent as two-decimal):
/// refused rather than charged 100 times too much or too little.
const STRIPE_SPECIAL: [&str; 1] = ["ISK"];

/// A currency Stripe takes: its ISO 4217 code and exponent (Stripe's where it differs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Currency {
    code: iso_currency::Currency,
    exponent: u8,
}

impl Currency {
    /// Reads an ISO 4217 code (any case).
    ///
    /// # Errors
    /// 422 `invalid_currency`: not an ISO 4217 code, or one without an exponent of 0, 2 or
    /// 3 (Stripe takes no other).
    pub fn parse(code: &str) -> Result<Self, Error> {
        let bad = || {
            Error::validation(
                "invalid_currency",
                format!(
                    "\"{}\" is not an ISO 4217 currency Stripe takes (e.g. USD, EUR, JPY, KWD)",
                    code.chars().take(8).collect::<String>()
                ),
            )
        };
        let upper = code.to_ascii_uppercase();
        let iso = iso_currency::Currency::from_code(&upper).ok_or_else(bad)?;
        if STRIPE_SPECIAL.contains(&upper.as_str()) {
            return Err(bad());
        }
        // Stripe's zero-decimal currencies win over ISO 4217 where they differ (MGA).
        let exponent = if STRIPE_ZERO_DECIMAL.contains(&upper.as_str()) {
            Some(0)
        } else {
            iso.exponent()
        };
        match exponent {
            Some(e @ (0 | 2 | 3)) => Ok(Self {
                code: iso,
                exponent: e as u8,
            }),
            _ => Err(bad()),
        }
    }

    /// Checks an amount of this currency.
    ///
    /// # Errors
    /// 422 `invalid_amount`: not 1 to [`MAX_AMOUNT`], or a three-decimal amount not a
    /// multiple of 10 (Stripe takes those rounded to the cent: Stripe docs, "Supported
    /// currencies", three-decimal currencies).
    pub fn check(&self, amount: i64, field: &str) -> Result<i64, Error> {
        let amount = check_amount(amount, field)?;
        if self.exponent == 3 && amount % 10 != 0 {
            return Err(Error::validation(
                "invalid_amount",
                format!(
                    "{field} in {} must end in 0: Stripe takes three-decimal amounts to two decimals",
                    self.code()
                ),
            ));
        }
        Ok(amount)
    }

    /// The code, upper case (`USD`).
    pub fn code(&self) -> String {
        self.code.code().to_owned()
    }

    /// Digits after the decimal point.
    pub fn exponent(&self) -> u8 {
        self.exponent
    }

    /// An amount as a person reads it: `12.50 USD`, `1,250 JPY`, `1.250 KWD`.
    pub fn format(&self, amount: i64) -> String {
        let scale = 10i64.pow(u32::from(self.exponent));
        let whole = amount.abs() / scale;
        let mut digits = whole.to_string();
        let mut grouped = String::new();
        while digits.len() > 3 {
            let tail = digits.split_off(digits.len() - 3);
            grouped = format!(",{tail}{grouped}");
        }
        let sign = if amount < 0 { "-" } else { "" };
        let fraction = if self.exponent > 0 {
            format!(
                ".{:0width$}",
                amount.abs() % scale,
                width = usize::from(self.exponent)
            )
        } else {
            String::new()
        };
        format!("{sign}{digits}{grouped}{fraction} {}", self.code())
    }
}

/// Checks an amount in minor units.
///
/// # Errors
/// 422 `invalid_amount`: not 1 to [`MAX_AMOUNT`].
pub fn check_amount(amount: i64, field: &str) -> Result<i64, Error> {
    if (1..=MAX_AMOUNT).contains(&amount) {
        Ok(amount)
    } else {
        Err(Error::validation(
            "invalid_amount",
            format!(
                "{field} is an integer of the currency's minor units (cents for USD, yen for JPY), 1 to {MAX_AMOUNT}"
            ),
        ))
    }
}

fn check_name(text: &str, field: &str) -> Result<String, Error> {
    let trimmed = text.trim();
    let count = trimmed.chars().count();
    if count == 0 || count > NAME_MAX || trimmed.chars().any(char::is_control) {
        return Err(Error::validation(
            "invalid_name",
            format!("{field} must be 1-{NAME_MAX} characters without control characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// `PUT /settings/payment`. Secrets left out keep their stored value.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentSettingsRequest {
    /// `stripe`.
    pub provider: String,
    /// ISO 4217.
    pub currency: String,
    /// Stripe secret key (`sk_…` or a restricted `rk_…`).
    #[serde(default)]
    pub secret_key: Option<String>,
    /// The webhook endpoint's signing secret (`whsec_…`).
    #[serde(default)]
    pub webhook_secret: Option<String>,
}

/// A tenant's payment settings as stored (secrets inside).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentSettings {
    /// `stripe`.
    pub provider: String,
    /// The default currency (amounts without products).
    pub currency: Option<Currency>,
    /// Stripe secret key.
    pub secret_key: Option<Secret>,
    /// Webhook signing secret.
    pub webhook_secret: Option<Secret>,
    /// How many products the tenant has.
    pub product_count: u32,
}

impl Default for PaymentSettings {
    fn default() -> Self {
        Self {
            provider: "stripe".into(),
            currency: None,
            secret_key: None,
            webhook_secret: None,
            product_count: 0,
        }
    }
}

fn check_secret(value: &str, prefixes: &[&str], field: &str) -> Result<Secret, Error> {
    let ok = prefixes.iter().any(|p| value.starts_with(p))
        && value.len() <= 255
        && value.len() > 8
        && value.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(Secret::new(value))
    } else {
        Err(Error::validation(
            "invalid_secret",
            format!("{field} must be a Stripe {} key", prefixes.join(" or ")),
        ))
    }
}

impl PaymentSettings {
    /// The settings after a `PUT`: provider and currency replaced, secrets replaced when
    /// given, kept when left out.
    ///
    /// # Errors
    /// 422 `unsupported_provider` (not `stripe`), `invalid_currency`, `invalid_secret` (a
    /// secret key not `sk_…`/`rk_…`, a webhook secret not `whsec_…`).
    pub fn apply(&self, request: &PaymentSettingsRequest) -> Result<Self, Error> {
        if request.provider != "stripe" {
            return Err(Error::validation(
                "unsupported_provider",
                "provider must be \"stripe\"",
            ));
        }
        let secret_key = match &request.secret_key {
            Some(k) => Some(check_secret(k, &["sk_", "rk_"], "secret_key")?),
            None => self.secret_key.clone(),
        };
        let webhook_secret = match &request.webhook_secret {
            Some(k) => Some(check_secret(k, &["whsec_"], "webhook_secret")?),
            None => self.webhook_secret.clone(),
        };
        Ok(Self {
            provider: request.provider.clone(),
            currency: Some(Currency::parse(&request.currency)?),
            secret_key,
            webhook_secret,
            product_count: self.product_count,
        })
    }

    /// What is missing before payment links can be sent: `currency`, `secret_key`,
    /// `webhook_secret`, `products`.
    pub fn missing(&self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        if self.currency.is_none() {
            missing.push("currency");
        }
        if self.secret_key.is_none() {
            missing.push("secret_key");
        }
        if self.webhook_secret.is_none() {
            missing.push("webhook_secret");
        }
        if self.product_count == 0 {
            missing.push("products");
        }
        missing
    }

    /// The view `GET /settings/payment` shows: no secret, only the key's last four
    /// characters (as Stripe's dashboard names keys).
    pub fn view(&self) -> PaymentSettingsView {
        let missing = self.missing();
        PaymentSettingsView {
            provider: self.provider.clone(),
            currency: self.currency.map(|c| c.code()),
            ready: missing.is_empty(),
            missing,
            secret_key_last4: self.secret_key.as_ref().map(|k| {
                let s = k.expose();
                s[s.len().saturating_sub(4)..].to_owned()
            }),
            webhook_secret_set: self.webhook_secret.is_some(),
        }
    }
}

/// `GET /settings/payment`.
#[derive(Debug, Clone, Serialize)]
pub struct PaymentSettingsView {
    /// `stripe`.
    pub provider: String,
    /// ISO 4217, once set.
    pub currency: Option<String>,
    /// Whether payment links can be sent.
    pub ready: bool,
    /// What is missing (see [`PaymentSettings::missing`]).
    pub missing: Vec<&'static str>,
    /// The secret key's last four characters, once set.
    pub secret_key_last4: Option<String>,
    /// Whether the webhook secret is set.
    pub webhook_secret_set: bool,
}

/// `POST /products`, `PUT /products/{id}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductRequest {
    /// 1–200 characters.
    pub name: String,
    /// Minor units.
    pub price: i64,
    /// ISO 4217.
    pub currency: String,
}

/// A product of the tenant's catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// `pr_<ULID>`.
    pub id: String,
    /// Its name, as the customer sees it at checkout.
    pub name: String,
    /// Minor units of `currency`.
    pub price: i64,
    /// ISO 4217, upper case.
    pub currency: String,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC.
    pub updated_at: String,
}

impl ProductRequest {
    /// The product with `id`, checked.
    ///
    /// # Errors
    /// 422 `invalid_name`, `invalid_amount`, `invalid_currency`.
    pub fn product(&self, id: String, created_at: String, now: &str) -> Result<Product, Error> {
        Ok(Product {
            id,
            name: check_name(&self.name, "name")?,
            price: Currency::parse(&self.currency)?.check(self.price, "price")?,
            currency: Currency::parse(&self.currency)?.code(),
            created_at,
            updated_at: now.to_owned(),
        })
    }
}

/// A new product id.
pub fn product_id() -> String {
    format!("pr_{}", ulid::Ulid::new())
}

/// Whether `id` can be a product id.
pub fn is_product_id(id: &str) -> bool {
    id.strip_prefix("pr_")
        .is_some_and(|u| ulid::Ulid::from_string(u).is_ok())
}

/// One line of a payment request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemRequest {
    /// `pr_…`.
    pub product_id: String,
    /// 1 to [`MAX_QUANTITY`].
    pub quantity: i64,
}

/// `POST /customers/{id}/payments`: products, or an amount with a description.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentRequest {
    /// Products and quantities.
    #[serde(default)]
    pub items: Option<Vec<ItemRequest>>,
    /// Or an amount in minor units…
    #[serde(default)]
    pub amount: Option<i64>,
    /// … with what it is for.
    #[serde(default)]
    pub description: Option<String>,
    /// The amount's currency (default the settings').
    #[serde(default)]
    pub currency: Option<String>,
    /// How long the link works, in minutes ([`LINK_MINUTES`], default 1,440).
    #[serde(default)]
    pub expires_in_minutes: Option<i64>,
    /// The WhatsApp template to send when the customer service window is closed: a
    /// parameter `{{url}}` is the link, or the link is added as the last parameter.
    #[serde(default)]
    pub template: Option<TemplateCall>,
}

/// A line of a payment, priced when it was requested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentItem {
    /// The product (absent for an amount).
    pub product_id: Option<String>,
    /// Its name then (or the description).
    pub name: String,
    /// How many.
    pub quantity: i64,
    /// Minor units each.
    pub unit_amount: i64,
}

/// The priced lines and total of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Priced {
    /// The lines.
    pub items: Vec<PaymentItem>,
    /// Their total, minor units.
    pub amount: i64,
    /// Their currency.
    pub currency: Currency,
    /// What it is for (the description, or the items named).
    pub description: String,
}

impl PaymentRequest {
    /// The product ids it names (checked for shape; unknown ones are found by the read).
    ///
    /// # Errors
    /// 422 `invalid_items`: both or neither of items and amount, no items, over
    /// [`MAX_ITEMS`], a repeated product, a quantity outside 1 to [`MAX_QUANTITY`];
    /// `invalid_amount`, `invalid_name` for an amount's description.
    pub fn product_ids(&self) -> Result<Vec<String>, Error> {
        let bad = |m: &str| Error::validation("invalid_items", m.to_owned());
        match (&self.items, self.amount) {
            (Some(_), Some(_)) | (None, None) => Err(bad(
                "give items (products and quantities) or an amount with a description",
            )),
            (None, Some(amount)) => {
                check_amount(amount, "amount")?;
                check_name(self.description.as_deref().unwrap_or(""), "description")?;
                Ok(Vec::new())
            }
            (Some(items), None) => {
                if items.is_empty() || items.len() > MAX_ITEMS {
                    return Err(bad("items holds 1 to 100 products"));
                }
                let mut ids: Vec<String> = Vec::new();
                for item in items {
                    if !(1..=MAX_QUANTITY).contains(&item.quantity) {
                        return Err(bad("a quantity is 1 to 999"));
                    }
                    if ids.contains(&item.product_id) {
                        return Err(bad("each product appears once (raise its quantity)"));
                    }
                    ids.push(item.product_id.clone());
                }
                Ok(ids)
            }
        }
    }

    /// Prices the request with the products read (and the settings' currency).
    ///
    /// # Errors
    /// 404 `product` for a product not found; 422 `mixed_currencies`, `invalid_amount`
    /// (the total over [`MAX_AMOUNT`]), `invalid_currency`; those of
    /// [`PaymentRequest::product_ids`].
    pub fn price(&self, products: &[Product], default: Currency) -> Result<Priced, Error> {
        let ids = self.product_ids()?;
        if let Some(amount) = self.amount {
            let currency = match &self.currency {
                Some(c) => Currency::parse(c)?,
                None => default,
            };
            currency.check(amount, "amount")?;
            let description = check_name(self.description.as_deref().unwrap_or(""), "description")?;
            return Ok(Priced {
                items: vec![PaymentItem {
                    product_id: None,
                    name: description.clone(),
                    quantity: 1,
                    unit_amount: amount,
                }],
                amount,
                currency,
                description,
            });
        }
        let mut items = Vec::new();
        let mut currency: Option<Currency> = None;
        let mut total: i64 = 0;
        for (id, item) in ids.iter().zip(self.items.iter().flatten()) {
            let product = products.iter().find(|p| &p.id == id).ok_or_else(|| {
                Error::validation(
                    "unknown_product",
                    format!(
                        "no product {} in the catalog",
                        id.chars().take(40).collect::<String>()
                    ),
                )
            })?;
            let c = Currency::parse(&product.currency)?;
            if currency.is_some_and(|seen| seen != c) {
                return Err(Error::validation(
                    "mixed_currencies",
                    "every product of one payment has the same currency",
                ));
            }
            currency = Some(c);
            total = product
                .price
                .checked_mul(item.quantity)
                .and_then(|line| total.checked_add(line))
                .filter(|t| *t <= MAX_AMOUNT)
                .ok_or_else(|| {
                    Error::validation(
                        "invalid_amount",
                        format!("the total is over {MAX_AMOUNT} minor units"),
                    )
                })?;
            items.push(PaymentItem {
                product_id: Some(product.id.clone()),
                name: product.name.clone(),
                quantity: item.quantity,
                unit_amount: product.price,
            });
        }
        if self.currency.is_some() {
            return Err(Error::validation(
                "invalid_items",
                "currency goes with an amount; products carry their own",
            ));
        }
        let currency = currency.ok_or_else(|| Error::validation("invalid_items", "no items"))?;
        let description = items
            .iter()
            .map(|i| {
                if i.quantity == 1 {
                    i.name.clone()
                } else {
                    format!("{} × {}", i.quantity, i.name)
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        Ok(Priced {
            items,
            amount: total,
            currency,
            description,
        })
    }

    /// The link's life in minutes.
    ///
    /// # Errors
    /// 422 `invalid_expiry` outside [`LINK_MINUTES`].
    pub fn link_minutes(&self) -> Result<i64, Error> {
        match self.expires_in_minutes {
            None => Ok(*LINK_MINUTES.end()),
            Some(m) if LINK_MINUTES.contains(&m) => Ok(m),
            Some(_) => Err(Error::validation(
                "invalid_expiry",
                "expires_in_minutes is 30 to 1440 (Stripe Checkout Sessions live 30 minutes to 24 hours)",
            )),
        }
    }
}

/// Where a payment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// The link is out; nothing paid yet.
    Open,
    /// Paid with a method that settles later (a bank debit): waiting for the outcome.
    Processing,
    /// Paid.
    Paid,
    /// The delayed payment failed.
    Failed,
    /// The link expired unpaid.
    Expired,
}

impl PaymentStatus {
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Processing => "processing",
            Self::Paid => "paid",
            Self::Failed => "failed",
            Self::Expired => "expired",
        }
    }
}

/// What a Stripe event says happened to a Checkout Session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionOutcome {
    /// `checkout.session.completed` with `payment_status: paid` (or `no_payment_required`),
    /// or `checkout.session.async_payment_succeeded`.
    Paid,
    /// `checkout.session.completed` with `payment_status: unpaid`: a delayed method.
    Processing,
    /// `checkout.session.async_payment_failed`.
    Failed,
    /// `checkout.session.expired`.
    Expired,
}

impl SessionOutcome {
    /// The status it moves a payment to, and the statuses it may move from: a payment
    /// moves once per outcome and never back (a late `expired` never undoes `paid`, a
    /// repeated `completed` finds it paid).
    pub fn transition(self) -> (PaymentStatus, &'static [PaymentStatus]) {
        use PaymentStatus::{Expired, Failed, Open, Paid, Processing};
        match self {
            Self::Paid => (Paid, &[Open, Processing]),
            Self::Processing => (Processing, &[Open]),
            Self::Failed => (Failed, &[Open, Processing]),
            Self::Expired => (Expired, &[Open]),
        }
    }
}

/// A payment as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// `pay_<ULID>` (also the Checkout Session's idempotency key).
    pub id: String,
    /// The customer.
    pub customer_id: String,
    /// The customer's conversation (where its messages go).
    pub conversation_id: String,
    /// Where it is.
    pub status: PaymentStatus,
    /// Total, minor units.
    pub amount: i64,
    /// ISO 4217.
    pub currency: String,
    /// The lines.
    pub items: Vec<PaymentItem>,
    /// What it is for.
    pub description: String,
    /// The Checkout Session's URL.
    pub url: String,
    /// The Checkout Session's id.
    pub session_id: String,
    /// When the link stops working (RFC 3339 UTC).
    pub expires_at: String,
    /// The agent who sent it.
    pub created_by: String,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// The message carrying the link.
    pub message_id: Option<String>,
    /// When it was paid.
    pub paid_at: Option<String>,
    /// When it last changed status.
    pub updated_at: Option<String>,
    /// Why the link never reached the customer (the payment is then `expired`).
    #[serde(default)]
    pub not_sent_reason: Option<String>,
}

/// A new payment id.
pub fn payment_id() -> String {
    format!("pay_{}", ulid::Ulid::new())
}

/// The payment id a client's `Idempotency-Key` names (a retried request reuses the
/// payment, and so the Checkout Session's idempotency key).
pub fn payment_id_for_key(tenant: &str, customer: &str, key: &str) -> String {
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(format!("{tenant}\n{customer}\n{key}").as_bytes());
    format!("pay_k{}", &hex::encode(hash)[..32])
}

/// Whether `id` can be a payment id.
pub fn is_payment_id(id: &str) -> bool {
    id.strip_prefix("pay_").is_some_and(|rest| {
        ulid::Ulid::from_string(rest).is_ok()
            || rest
                .strip_prefix('k')
                .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    })
}

/// `{business}: ` before a customer-facing text.
fn signed(business: Option<&str>, text: String) -> String {
    match business {
        Some(name) => format!("{name}: {text}"),
        None => crate::domain::text::capitalized(&text),
    }
}

/// The message carrying the link.
pub fn link_text(business: Option<&str>, priced: &Priced, url: &str) -> String {
    signed(
        business,
        format!(
            "here is your payment link for {} ({}): {url}",
            priced.description,
            priced.currency.format(priced.amount)
        ),
    )
}

/// The thank-you the customer gets once paid (`amount` in minor units of `currency`).
pub fn thank_you_text(business: Option<&str>, amount: i64, currency: &str) -> String {
    signed(
        business,
        format!(
            "thank you, we received your payment of {}.",
            money(amount, currency)
        ),
    )
}

impl SystemMessage {
    /// A payment link was sent.
    pub fn payment_requested(payment: &Payment, actor: Actor) -> Self {
        Self {
            event: SystemEvent::PaymentRequested,
            text: format!(
                "Payment requested: {} ({})",
                payment.description,
                money(payment.amount, &payment.currency)
            ),
            actor,
            error: None,
            reason: None,
        }
    }

    /// A payment for `description` of `amount` (minor units of `currency`) moved to
    /// `status`: paid, failed or expired (nothing for processing).
    pub fn payment_settled(
        description: &str,
        amount: i64,
        currency: &str,
        status: PaymentStatus,
    ) -> Option<Self> {
        let (event, what) = match status {
            PaymentStatus::Paid => (SystemEvent::PaymentPaid, "Payment received"),
            PaymentStatus::Failed => (SystemEvent::PaymentFailed, "Payment failed"),
            PaymentStatus::Expired => (SystemEvent::PaymentExpired, "Payment link expired unpaid"),
            PaymentStatus::Open | PaymentStatus::Processing => return None,
        };
        Some(Self {
            event,
            text: format!("{what}: {description} ({})", money(amount, currency)),
            actor: Actor::System,
            error: None,
            reason: None,
        })
    }
}

/// An amount as a person reads it (the raw figure when the currency is unknown).
fn money(amount: i64, currency: &str) -> String {
    Currency::parse(currency)
        .map(|c| c.format(amount))
        .unwrap_or_else(|_| format!("{amount} {currency}"))
}

#[cfg(test)]
#[path = "payment_tests.rs"]
mod tests;
