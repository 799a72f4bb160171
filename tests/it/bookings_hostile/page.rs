//! The public booking page: hostile tokens and form posts, injection through what the
//! business wrote, the headers of every page (200, 404, 409, 410, 413, 422), a GET with a
//! query string and a HEAD, the 100-slot cap, and a used link.

use chrono::{Duration, Utc};
use serde_json::{Value, json};

use super::{Desk, Html, absolute, choose, open, submit, token_of, utc_at};

/// The headers every booking page carries, whatever its status.
fn assert_page_headers(page: &Html, what: &str) {
    let header = |name: &str| {
        page.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        header("content-type").starts_with("text/html"),
        "{what}: {:?}",
        page.headers
    );
    let csp = header("content-security-policy");
    assert!(
        csp.starts_with("default-src 'none'") && csp.contains("form-action 'self'"),
        "{what}: {csp}"
    );
    assert_eq!(header("cache-control"), "no-store", "{what}");
    assert_eq!(header("referrer-policy"), "no-referrer", "{what}");
    assert_eq!(header("x-content-type-options"), "nosniff", "{what}");
    assert!(!page.text.contains("<script"), "{what}: {}", page.text);
}

#[tokio::test]
async fn hostile_tokens_get_the_not_found_page_never_a_server_error() {
    let desk = Desk::new("whatsapp").await;
    let slot = desk.slot(&utc_at(2, 9, 0), 30).await;
    let url = desk.invite(&json!({})).await;
    let real = token_of(&url).to_owned();
    let before = desk.state().await;
    let swapped: String = real
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    let tokens = [
        "A".repeat(42),
        "A".repeat(44),
        format!("{}%2F{}", &real[..20], &real[23..]),
        format!("{}%2F", &real[..40]),
        "%C3%A9".repeat(43),
        "é".repeat(22),
        swapped,
        format!("{real}%00"),
        format!("{real}%20"),
        format!("%20{}", &real[1..]),
        format!("{}=", &real[..42]),
        format!("{}%2B", &real[..42]),
        "..%2F..%2Fcalendar%2Fslots".to_owned(),
        "%25".repeat(43),
        "A".repeat(10_000),
    ];
    for token in &tokens {
        let shown: String = token.chars().take(60).collect();
        let path = format!("/b/{token}");
        let page = open(&path).await;
        assert_eq!(page.status, 404, "GET {shown}: {}", page.text);
        assert!(page.text.contains("Link not found"), "GET {shown}");
        assert_page_headers(&page, &shown);
        let page = choose(&path, &slot).await;
        assert_eq!(page.status, 404, "POST {shown}: {}", page.text);
        assert_page_headers(&page, &shown);
    }
    assert_eq!(
        desk.state().await,
        before,
        "nothing booked through a wrong token"
    );
    assert_eq!(open(&url).await.status, 200, "the real link still opens");
}

#[tokio::test]
async fn the_page_escapes_what_the_business_wrote_and_sends_strict_headers_on_every_page() {
    let desk = Desk::new("whatsapp").await;
    let name = r#"</title><script>alert(1)</script><img src=x onerror=alert(1)>"' & {{ css|safe }} {% if true %}<style>*{}</style>"#;
    desk.settings(name, "Asia/Kolkata").await;
    let slot = desk.slot(&utc_at(2, 4, 30), 30).await;
    let url = desk.invite(&json!({})).await;
    let open_page = open(&url).await;
    assert_eq!(open_page.status, 200, "{}", open_page.text);
    assert_page_headers(&open_page, "open");
    for raw in [
        "<script>",
        "<img",
        "</title><script",
        "<style>*{}",
        "onerror=alert(1)>",
    ] {
        assert!(
            !open_page.text.contains(raw),
            "{raw} unescaped: {}",
            open_page.text
        );
    }
    assert!(
        open_page
            .text
            .contains("&#60;img src=x onerror=alert(1)&#62;"),
        "{}",
        open_page.text
    );
    assert!(
        open_page.text.contains("10:00 – 10:30"),
        "04:30 UTC is 10:00 in Kolkata"
    );
    assert!(!open_page.text.contains("http://") && !open_page.text.contains("https://"));
    // Every other page: a bad choice (422), a slot not offered (409), too large (413), the
    // booking (200), used (410), unknown (404).
    let pages = [
        (
            "no choice",
            submit(&url, Some("application/x-www-form-urlencoded"), Vec::new()).await,
            422,
        ),
        (
            "not offered",
            choose(&url, "sl_20200101T0000Z_0000000000").await,
            409,
        ),
        (
            "too large",
            submit(&url, None, vec![b'a'; 1 << 20]).await,
            413,
        ),
        ("booked", choose(&url, &slot).await, 200),
        ("used", open(&url).await, 410),
        (
            "unknown",
            open(&format!("/b/{}", "B".repeat(43))).await,
            404,
        ),
    ];
    for (what, page, status) in &pages {
        assert_eq!(page.status, *status, "{what}: {}", page.text);
        assert_page_headers(page, what);
        assert!(!page.text.contains("<img"), "{what}");
    }
}

#[tokio::test]
async fn careless_form_posts_book_nothing_and_never_crash() {
    let desk = Desk::new("whatsapp").await;
    let other = Desk::new("whatsapp").await;
    let slot = desk.slot(&utc_at(2, 9, 0), 30).await;
    let theirs = other.slot(&utc_at(2, 9, 0), 30).await;
    let url = desk.invite(&json!({})).await;
    let (before, theirs_before) = (desk.state().await, other.state().await);
    let form = Some("application/x-www-form-urlencoded");
    let multipart = format!(
        "--XYZ\r\nContent-Disposition: form-data; name=\"slot_id\"\r\n\r\n{slot}\r\n--XYZ--\r\n"
    );
    let cases: Vec<(&str, Option<&str>, Vec<u8>, u16)> = vec![
        ("no body", None, Vec::new(), 422),
        ("empty form", form, Vec::new(), 422),
        (
            "json",
            Some("application/json"),
            json!({"slot_id": slot}).to_string().into_bytes(),
            422,
        ),
        ("no value", form, b"slot_id=".to_vec(), 422),
        ("no equals", form, b"slot_id".to_vec(), 422),
        ("nul", form, b"slot_id=%00".to_vec(), 422),
        (
            "newline after",
            form,
            format!("slot_id={slot}%0A").into_bytes(),
            422,
        ),
        (
            "space before",
            form,
            format!("slot_id=+{slot}").into_bytes(),
            422,
        ),
        ("other name", form, format!("slot={slot}").into_bytes(), 422),
        (
            "multipart",
            Some("multipart/form-data; boundary=XYZ"),
            multipart.into_bytes(),
            422,
        ),
        (
            "binary",
            Some("application/octet-stream"),
            vec![0xff, 0x00, 0xfe, b'='],
            422,
        ),
        (
            "lower case",
            form,
            format!(
                "slot_id={}{}",
                &slot[..slot.len() - 10],
                slot[slot.len() - 10..].to_lowercase()
            )
            .into_bytes(),
            409,
        ),
        (
            "another tenant's",
            form,
            format!("slot_id={theirs}").into_bytes(),
            409,
        ),
        (
            "past slot",
            form,
            b"slot_id=sl_20200101T0900Z_0000000000".to_vec(),
            409,
        ),
        (
            "far slot",
            form,
            b"slot_id=sl_99991231T2359Z_ZZZZZZZZZZ".to_vec(),
            409,
        ),
        (
            "10 KB",
            form,
            format!("slot_id={}", "s".repeat(10_000)).into_bytes(),
            413,
        ),
        ("1 MB", form, vec![b'x'; 1 << 20], 413),
        (
            "1 MB after",
            form,
            format!("slot_id={slot}&pad={}", "x".repeat(1 << 20)).into_bytes(),
            413,
        ),
    ];
    for (what, content_type, body, status) in cases {
        let page = submit(&url, content_type, body).await;
        assert_eq!(page.status, status, "{what}: {}", page.text);
        assert!(
            page.text.contains("<!doctype html>") && !page.text.contains("You&#39;re booked"),
            "{what}: {}",
            page.text
        );
    }
    assert_eq!(desk.state().await, before);
    assert_eq!(
        other.state().await,
        theirs_before,
        "another tenant's slot untouched"
    );
    assert_eq!(open(&url).await.status, 200, "the link still works");
}

#[tokio::test]
async fn odd_but_meaningful_form_posts_book_exactly_the_slot_chosen() {
    let desk = Desk::new("whatsapp").await;
    let form = Some("application/x-www-form-urlencoded");
    // FIRST and SECOND are two free slots; TAIL is FIRST without its leading `s`.
    let cases = [
        ("encoded key", form, "slot%5Fid=FIRST"),
        ("encoded value", form, "slot_id=%73TAIL"),
        ("repeated", form, "slot_id=FIRST&slot_id=SECOND"),
        ("extra fields", form, "a=1&slot_id=FIRST&b=%FF"),
        ("text/plain", Some("text/plain"), "slot_id=FIRST"),
        (
            "octet-stream",
            Some("application/octet-stream"),
            "slot_id=FIRST",
        ),
        ("no content type", None, "slot_id=FIRST"),
    ];
    for (hour, (what, content_type, body)) in (8..).zip(cases) {
        let first = desk.slot(&utc_at(3, hour, 0), 20).await;
        let second = desk.slot(&utc_at(3, hour, 30), 20).await;
        let body = body
            .replace("FIRST", &first)
            .replace("SECOND", &second)
            .replace("TAIL", &first[1..]);
        let url = desk.invite(&json!({})).await;
        let page = submit(&url, content_type, body.into_bytes()).await;
        assert!(page.status < 500, "{what}: {} {}", page.status, page.text);
        let booked: Vec<Value> = desk
            .all("/bookings?limit=100")
            .await
            .into_iter()
            .filter(|b| b["slot_id"] == first || b["slot_id"] == second)
            .collect();
        if page.status == 200 {
            assert_eq!(booked.len(), 1, "{what}: {booked:?}");
            assert_eq!(
                booked[0]["slot_id"],
                first.as_str(),
                "{what}: the first choice"
            );
        } else {
            assert!(booked.is_empty(), "{what}: {} but {booked:?}", page.status);
        }
    }
}

#[tokio::test]
async fn a_get_with_a_query_string_or_a_head_books_nothing() {
    let desk = Desk::new("whatsapp").await;
    let slot = desk.slot(&utc_at(2, 9, 0), 30).await;
    let url = desk.invite(&json!({})).await;
    let before = desk.state().await;
    for query in [
        format!("?slot_id={slot}"),
        format!("?slot_id={slot}&method=POST&_method=POST"),
        "?%FF=%FE&&&=".to_owned(),
        format!("?{}", "a=b&".repeat(2000)),
    ] {
        let page = open(&format!("{url}{query}")).await;
        assert_eq!(page.status, 200, "{query}: {}", page.text);
        assert!(page.text.contains(&format!("value=\"{slot}\"")));
    }
    let head = reqwest::Client::new()
        .head(absolute(&url))
        .send()
        .await
        .unwrap();
    assert!(head.status().as_u16() < 500, "HEAD: {}", head.status());
    assert_eq!(desk.state().await, before);
}

#[tokio::test]
async fn a_used_link_stays_used_after_its_booking_is_cancelled() {
    let desk = Desk::new("whatsapp").await;
    let slot = desk.slot(&utc_at(2, 9, 0), 30).await;
    let other = desk.slot(&utc_at(2, 10, 0), 30).await;
    let url = desk.invite(&json!({})).await;
    assert_eq!(choose(&url, &slot).await.status, 200);
    let booking = desk.bookings_of(&slot).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cancelled = desk.delete(&format!("/bookings/{booking}")).await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.text);
    let page = open(&url).await;
    assert_eq!(page.status, 410, "{}", page.text);
    assert!(
        page.text.contains("This booking was cancelled"),
        "{}",
        page.text
    );
    let before = desk.state().await;
    for s in [&slot, &other] {
        let again = choose(&url, s).await;
        assert_eq!(again.status, 410, "{}", again.text);
    }
    assert_eq!(desk.state().await, before, "a used link books nothing more");
}

#[tokio::test]
async fn the_page_shows_at_most_a_hundred_times_and_says_more_follow() {
    let desk = Desk::new("whatsapp").await;
    let daily = |hour: u32| {
        json!({"start": utc_at(2, hour, 0), "duration_minutes": 30,
               "repeat": {"freq": "daily", "until": (Utc::now().date_naive() + Duration::days(62)).to_string()}})
    };
    let mut ids = desk.slots(&daily(9)).await;
    ids.extend(desk.slots(&daily(10)).await);
    assert_eq!(ids.len(), 122);
    let url = desk
        .invite(&json!({"to": (Utc::now() + Duration::days(90)).to_rfc3339()}))
        .await;
    let page = open(&url).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.text.matches("type=\"radio\"").count(), 100);
    assert!(page.text.contains("More times follow"), "{}", page.text);
    // The last one, not shown, is still a slot the link offers.
    let last = ids.iter().max().unwrap();
    assert!(!page.text.contains(last.as_str()));
    assert_eq!(choose(&url, last).await.status, 200);
}
