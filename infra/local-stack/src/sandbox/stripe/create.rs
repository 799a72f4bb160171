//! The parameters of `POST /v1/checkout/sessions` the sandbox takes, checked as Stripe
//! checks them (Stripe API reference, "Create a Checkout Session"): `mode=payment`,
//! `expires_at`, `success_url`, `cancel_url`, `client_reference_id`, `customer_email`,
//! `metadata`, and `line_items` with `price_data` (inline prices; stored Prices are not
//! modelled). Anything else is an unknown parameter.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use shared::domain::payment::{Currency, MAX_AMOUNT};

use super::params::{Fields, Form};
use super::{Line, StripeError};

/// A session expires 30 minutes to 24 hours after its creation (`expires_at`).
pub(super) const EXPIRY_SECONDS: std::ops::RangeInclusive<i64> = 1800..=86_400;
/// Most line items of a payment-mode session.
pub(super) const MAX_LINE_ITEMS: usize = 100;
/// Metadata: keys, key length, value length (Stripe docs, "Metadata").
const MAX_METADATA_KEYS: usize = 50;
const MAX_METADATA_KEY: usize = 40;
const MAX_METADATA_VALUE: usize = 500;
/// `client_reference_id` length.
const MAX_REFERENCE: usize = 200;
/// Largest quantity of a line.
const MAX_QUANTITY: i64 = 999_999;

const ROOT: &[&str] = &[
    "mode",
    "expires_at",
    "success_url",
    "cancel_url",
    "client_reference_id",
    "customer_email",
    "metadata",
    "line_items",
];

/// A valid creation request.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct NewSession {
    pub(super) expires_at: i64,
    pub(super) success_url: Option<String>,
    pub(super) cancel_url: Option<String>,
    pub(super) client_reference_id: Option<String>,
    pub(super) customer_email: Option<String>,
    pub(super) metadata: BTreeMap<String, String>,
    /// Lower case.
    pub(super) currency: String,
    pub(super) lines: Vec<Line>,
    /// Minor units.
    pub(super) amount_total: i64,
}

fn url(fields: &Fields<'_>, key: &str) -> Result<Option<String>, StripeError> {
    let Some(text) = fields.text(key)? else {
        return Ok(None);
    };
    let valid = ["http://", "https://"].iter().any(|scheme| {
        text.strip_prefix(scheme)
            .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
    }) && !text.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(Some(text.to_owned()))
    } else {
        Err(StripeError::param(key, format!("Not a valid URL: {key}")))
    }
}

/// Metadata as Stripe limits it.
///
/// # Errors
/// 400 naming `metadata` or the key at fault.
pub(super) fn metadata(fields: &Fields<'_>) -> Result<BTreeMap<String, String>, StripeError> {
    let map = fields.string_map("metadata")?;
    if map.len() > MAX_METADATA_KEYS {
        return Err(StripeError::param(
            "metadata",
            format!("Invalid metadata: at most {MAX_METADATA_KEYS} keys"),
        ));
    }
    for (k, v) in &map {
        if k.chars().count() > MAX_METADATA_KEY {
            return Err(StripeError::param(
                format!("metadata[{k}]"),
                format!("Invalid metadata: keys are at most {MAX_METADATA_KEY} characters"),
            ));
        }
        if v.chars().count() > MAX_METADATA_VALUE {
            return Err(StripeError::param(
                format!("metadata[{k}]"),
                format!(
                    "Invalid metadata[{k}]: values are at most {MAX_METADATA_VALUE} characters"
                ),
            ));
        }
    }
    Ok(map)
}

/// One `line_items[i]`: the line and its currency (lower case).
fn line(fields: &Fields<'_>) -> Result<(Line, String), StripeError> {
    fields.only(&["quantity", "price_data"])?;
    let quantity_name = fields.name("quantity");
    let quantity = fields
        .integer("quantity")?
        .ok_or_else(|| StripeError::missing(&quantity_name))?;
    if !(1..=MAX_QUANTITY).contains(&quantity) {
        return Err(StripeError::param(
            &quantity_name,
            format!("Invalid {quantity_name}: must be 1 to {MAX_QUANTITY}"),
        ));
    }
    let price = fields.required_hash("price_data")?;
    price.only(&["currency", "unit_amount", "product_data"])?;
    let currency_name = price.name("currency");
    let code = price.required_text("currency")?;
    let currency = Currency::parse(code)
        .map_err(|_| {
            StripeError::param(
                &currency_name,
                format!(
                    "Invalid currency: {}. Stripe takes ISO 4217 codes such as usd, eur, jpy.",
                    super::clip(code, 8)
                ),
            )
        })?
        .code()
        .to_ascii_lowercase();
    let amount_name = price.name("unit_amount");
    let unit_amount = price
        .integer("unit_amount")?
        .ok_or_else(|| StripeError::missing(&amount_name))?;
    if !(0..=MAX_AMOUNT).contains(&unit_amount) {
        return Err(StripeError::param(
            &amount_name,
            format!("Invalid {amount_name}: must be 0 to {MAX_AMOUNT} (minor units)"),
        ));
    }
    let product = price.required_hash("product_data")?;
    product.only(&["name", "description"])?;
    let name = product.required_text("name")?;
    if name.trim().is_empty() {
        return Err(StripeError::missing(&product.name("name")));
    }
    let line = Line {
        name: name.to_owned(),
        quantity,
        unit_amount,
    };
    Ok((line, currency))
}

impl NewSession {
    /// Reads and checks a creation form at `now` (Unix seconds).
    ///
    /// # Errors
    /// A 400 `invalid_request_error` with `param` for the first parameter at fault.
    pub(super) fn parse(form: &Form, now: i64) -> Result<Self, StripeError> {
        let fields = form.fields();
        fields.only(ROOT)?;
        match fields.required_text("mode")? {
            "payment" => {}
            "setup" | "subscription" => {
                return Err(StripeError::param(
                    "mode",
                    "The sandbox speaks mode=payment only (one-time payments).",
                ));
            }
            other => {
                return Err(StripeError::param(
                    "mode",
                    format!(
                        "Invalid mode: {}; must be one of payment, setup, or subscription",
                        super::clip(other, 40)
                    ),
                ));
            }
        }
        let expires_at = fields
            .integer("expires_at")?
            .unwrap_or(now + EXPIRY_SECONDS.end());
        if expires_at - now < *EXPIRY_SECONDS.start() {
            return Err(StripeError::param(
                "expires_at",
                "expires_at must be at least 30 minutes after the session's creation.",
            ));
        }
        if expires_at - now > *EXPIRY_SECONDS.end() {
            return Err(StripeError::param(
                "expires_at",
                "expires_at must be at most 24 hours after the session's creation.",
            ));
        }
        let success_url = url(&fields, "success_url")?;
        let cancel_url = url(&fields, "cancel_url")?;
        let client_reference_id = fields.text("client_reference_id")?.map(str::to_owned);
        if client_reference_id
            .as_ref()
            .is_some_and(|r| r.chars().count() > MAX_REFERENCE)
        {
            return Err(StripeError::param(
                "client_reference_id",
                format!("Invalid client_reference_id: at most {MAX_REFERENCE} characters"),
            ));
        }
        let customer_email = fields.text("customer_email")?.map(str::to_owned);
        if customer_email
            .as_ref()
            .is_some_and(|e| !e.contains('@') || e.contains(char::is_whitespace))
        {
            return Err(StripeError::param(
                "customer_email",
                "Invalid email address",
            ));
        }
        let metadata = metadata(&fields)?;
        let items = fields
            .array("line_items")?
            .filter(|items| !items.is_empty())
            .ok_or_else(|| {
                StripeError::param("line_items", "line_items is required in payment mode.")
            })?;
        if items.len() > MAX_LINE_ITEMS {
            return Err(StripeError::param(
                "line_items",
                format!("Invalid line_items: at most {MAX_LINE_ITEMS} items in payment mode"),
            ));
        }
        let mut lines = Vec::with_capacity(items.len());
        let mut currency: Option<String> = None;
        let mut amount_total: i64 = 0;
        for (name, param) in items {
            let item = Fields::item(name, param)?;
            let (line, code) = line(&item)?;
            match &currency {
                Some(first) if *first != code => {
                    return Err(StripeError::param(
                        item.name("price_data") + "[currency]",
                        "All line items must have the same currency.",
                    ));
                }
                Some(_) => {}
                None => currency = Some(code),
            }
            amount_total = line
                .quantity
                .checked_mul(line.unit_amount)
                .and_then(|a| a.checked_add(amount_total))
                .unwrap_or(i64::MAX);
            lines.push(line);
        }
        if amount_total > MAX_AMOUNT {
            return Err(StripeError {
                code: Some("amount_too_large"),
                ..StripeError::request(
                    StatusCode::BAD_REQUEST,
                    format!("The total must be at most {MAX_AMOUNT} (minor units)."),
                )
            });
        }
        if amount_total < 1 {
            return Err(StripeError {
                code: Some("amount_too_small"),
                ..StripeError::request(
                    StatusCode::BAD_REQUEST,
                    "The total must be at least 1 (minor unit) in the sandbox.",
                )
            });
        }
        Ok(Self {
            expires_at,
            success_url,
            cancel_url,
            client_reference_id,
            customer_email,
            metadata,
            currency: currency.unwrap_or_default(),
            lines,
            amount_total,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_000_000;

    fn base() -> Vec<(String, String)> {
        [
            ("mode", "payment".to_owned()),
            ("expires_at", (NOW + 3600).to_string()),
            ("success_url", "http://127.0.0.1:3000/paid".to_owned()),
            ("client_reference_id", "pay_1".to_owned()),
            ("metadata[tenant_id]", "t1".to_owned()),
            ("line_items[0][quantity]", "2".to_owned()),
            ("line_items[0][price_data][currency]", "USD".to_owned()),
            ("line_items[0][price_data][unit_amount]", "1250".to_owned()),
            (
                "line_items[0][price_data][product_data][name]",
                "Tea".to_owned(),
            ),
            ("line_items[1][quantity]", "1".to_owned()),
            ("line_items[1][price_data][currency]", "usd".to_owned()),
            ("line_items[1][price_data][unit_amount]", "99".to_owned()),
            (
                "line_items[1][price_data][product_data][name]",
                "Cup".to_owned(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    fn parse(pairs: &[(String, String)]) -> Result<NewSession, StripeError> {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        NewSession::parse(&Form::parse(body.as_bytes())?, NOW)
    }

    fn with(key: &str, value: &str) -> Vec<(String, String)> {
        let mut pairs: Vec<_> = base().into_iter().filter(|(k, _)| k != key).collect();
        pairs.push((key.to_owned(), value.to_owned()));
        pairs
    }

    fn without(key: &str) -> Vec<(String, String)> {
        base().into_iter().filter(|(k, _)| k != key).collect()
    }

    fn param_of(pairs: &[(String, String)]) -> String {
        let e = parse(pairs).expect_err("refused");
        assert_eq!(e.status, 400, "{e:?}");
        assert_eq!(e.kind, "invalid_request_error");
        e.param.unwrap_or_default()
    }

    #[test]
    fn a_valid_form_totals_its_lines_in_lower_case_currency() {
        let s = parse(&base()).expect("valid");
        assert_eq!(s.amount_total, 2 * 1250 + 99);
        assert_eq!(s.currency, "usd");
        assert_eq!(s.lines.len(), 2);
        assert_eq!(s.metadata["tenant_id"], "t1");
        assert_eq!(s.client_reference_id.as_deref(), Some("pay_1"));
    }

    #[test]
    fn each_bad_field_is_a_400_naming_its_param() {
        let long = "x".repeat(501);
        let long_key = format!("metadata[{}]", "k".repeat(41));
        let cases: Vec<(Vec<(String, String)>, &str)> = vec![
            (without("mode"), "mode"),
            (with("mode", "subscription"), "mode"),
            (with("mode", "pay"), "mode"),
            (with("expires_at", "soon"), "expires_at"),
            (with("expires_at", &(NOW + 1799).to_string()), "expires_at"),
            (
                with("expires_at", &(NOW + 86_401).to_string()),
                "expires_at",
            ),
            (with("success_url", "not a url"), "success_url"),
            (with("metadata[k]", &long), "metadata[k]"),
            (
                with("metadata[k]", "x")
                    .into_iter()
                    .chain([("metadata".into(), "y".into())])
                    .collect(),
                "metadata",
            ),
            (with(&long_key, "v"), &long_key),
            (
                without("line_items[0][quantity]"),
                "line_items[0][quantity]",
            ),
            (
                with("line_items[0][quantity]", "0"),
                "line_items[0][quantity]",
            ),
            (
                with("line_items[0][price_data][currency]", "xyz"),
                "line_items[0][price_data][currency]",
            ),
            (
                with("line_items[1][price_data][currency]", "eur"),
                "line_items[1][price_data][currency]",
            ),
            (
                with("line_items[0][price_data][unit_amount]", "-1"),
                "line_items[0][price_data][unit_amount]",
            ),
            (
                with("line_items[0][price_data][unit_amount]", "12.5"),
                "line_items[0][price_data][unit_amount]",
            ),
            (
                without("line_items[0][price_data][product_data][name]"),
                "line_items[0][price_data][product_data]",
            ),
            (
                with("line_items[0][price_data][product_data][name]", ""),
                "line_items[0][price_data][product_data][name]",
            ),
            (
                with("line_items[0][price_data][product_data][name]", "  "),
                "line_items[0][price_data][product_data][name]",
            ),
            (
                with("line_items[0][price]", "price_1"),
                "line_items[0][price]",
            ),
            (
                with("payment_method_types[]", "card"),
                "payment_method_types",
            ),
            (
                with("client_reference_id", &"r".repeat(201)),
                "client_reference_id",
            ),
        ];
        for (pairs, param) in cases {
            assert_eq!(param_of(&pairs), param, "{pairs:?}");
        }
    }

    #[test]
    fn line_items_are_required_and_at_most_a_hundred() {
        let none: Vec<_> = base()
            .into_iter()
            .filter(|(k, _)| !k.starts_with("line_items"))
            .collect();
        assert_eq!(param_of(&none), "line_items");
        let mut many = without("line_items[1][quantity]");
        many.retain(|(k, _)| !k.starts_with("line_items[1]"));
        for i in 1..=100 {
            many.push((format!("line_items[{i}][quantity]"), "1".into()));
            many.push((
                format!("line_items[{i}][price_data][currency]"),
                "usd".into(),
            ));
            many.push((
                format!("line_items[{i}][price_data][unit_amount]"),
                "1".into(),
            ));
            many.push((
                format!("line_items[{i}][price_data][product_data][name]"),
                "x".into(),
            ));
        }
        assert_eq!(param_of(&many), "line_items");
    }

    #[test]
    fn fifty_metadata_keys_pass_and_fifty_one_do_not() {
        let mut pairs = without("metadata[tenant_id]");
        for i in 0..50 {
            pairs.push((format!("metadata[k{i}]"), "v".into()));
        }
        assert!(parse(&pairs).is_ok());
        pairs.push(("metadata[k50]".into(), "v".into()));
        assert_eq!(param_of(&pairs), "metadata");
    }

    #[test]
    fn a_total_over_stripes_maximum_is_amount_too_large() {
        let e = parse(&with("line_items[0][price_data][unit_amount]", "99999999"))
            .expect_err("too large");
        assert_eq!(e.code, Some("amount_too_large"));
    }

    #[test]
    fn expires_at_defaults_to_a_day_and_takes_its_bounds() {
        assert_eq!(
            parse(&without("expires_at")).unwrap().expires_at,
            NOW + 86_400
        );
        assert!(parse(&with("expires_at", &(NOW + 1800).to_string())).is_ok());
        assert!(parse(&with("expires_at", &(NOW + 86_400).to_string())).is_ok());
    }
}
