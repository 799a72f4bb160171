//! Time: clock changes in several zones (skipped and repeated local hours, a midnight that
//! does not exist, a half-hour change), `until` edges, the whole-minute rule, the 99-slot
//! and 731-day limits, and `from`/`to` filters given with offsets.

use chrono::{Datelike, Duration, NaiveDate, Utc, Weekday};
use serde_json::{Value, json};

use super::{Desk, utc_at};

/// The `n`th (1-based) `weekday` of a month, or the last one for `n == 0`.
fn nth(year: i32, month: u32, weekday: Weekday, n: u32) -> NaiveDate {
    if n == 0 {
        let next = if month == 12 {
            NaiveDate::from_ymd_opt(year + 1, 1, 1)
        } else {
            NaiveDate::from_ymd_opt(year, month + 1, 1)
        };
        let mut day = next.unwrap().pred_opt().unwrap();
        while day.weekday() != weekday {
            day = day.pred_opt().unwrap();
        }
        return day;
    }
    NaiveDate::from_weekday_of_month_opt(year, month, weekday, n as u8).unwrap()
}

/// The next date of a yearly rule at least three days away.
fn next(rule: impl Fn(i32) -> NaiveDate) -> NaiveDate {
    let soon = Utc::now().date_naive() + Duration::days(3);
    let year = soon.year();
    [rule(year), rule(year + 1)]
        .into_iter()
        .find(|d| *d >= soon)
        .unwrap()
}

/// Clocks go forward in New York: the second Sunday of March, 02:00 → 03:00.
fn new_york_spring() -> NaiveDate {
    next(|y| nth(y, 3, Weekday::Sun, 2))
}

/// Cuba: the second Sunday of March, 00:00 → 01:00 (midnight does not exist), in a year
/// the bundled database has that change (it keeps Cuba on summer time from March 2026 to
/// November 2027).
fn havana_spring() -> NaiveDate {
    use chrono::TimeZone;
    let havana = shared::domain::zone::Zone::parse("America/Havana").unwrap();
    let soon = Utc::now().date_naive() + Duration::days(3);
    (soon.year()..soon.year() + 8)
        .map(|y| nth(y, 3, Weekday::Sun, 2))
        .find(|day| {
            *day >= soon
                && havana
                    .from_local_datetime(&day.and_hms_opt(0, 30, 0).unwrap())
                    .single()
                    .is_none()
        })
        .expect("a spring-forward day in Havana within 8 years")
}

/// Lord Howe Island: the first Sunday of October, 02:00 → 02:30.
fn lord_howe_spring() -> NaiveDate {
    next(|y| nth(y, 10, Weekday::Sun, 1))
}

/// London: the last Sunday of October, 02:00 BST → 01:00 GMT (01:00–01:59 twice).
fn london_autumn() -> NaiveDate {
    next(|y| nth(y, 10, Weekday::Sun, 0))
}

fn starts(slots: &[Value]) -> Vec<String> {
    slots
        .iter()
        .map(|s| s["start"].as_str().unwrap().to_owned())
        .collect()
}

async fn create(desk: &Desk, body: &Value) -> super::Reply {
    desk.post("/calendar/slots", body).await
}

#[tokio::test]
async fn local_times_that_do_not_exist_or_happen_twice_are_refused_in_several_zones() {
    let cases = [
        (
            "America/New_York",
            new_york_spring(),
            "02:30",
            "nonexistent_local_time",
            "03:00",
            "-04:00",
        ),
        (
            "America/Havana",
            havana_spring(),
            "00:30",
            "nonexistent_local_time",
            "01:00",
            "-04:00",
        ),
        (
            "Australia/Lord_Howe",
            lord_howe_spring(),
            "02:15",
            "nonexistent_local_time",
            "02:30",
            "+11:00",
        ),
        (
            "Europe/London",
            london_autumn(),
            "01:30",
            "ambiguous_local_time",
            "02:00",
            "+00:00",
        ),
    ];
    for (zone, day, bad, code, good, offset) in cases {
        let desk = Desk::new("whatsapp").await;
        desk.settings("Zones", zone).await;
        let refused = create(
            &desk,
            &json!({"start": format!("{day}T{bad}"), "duration_minutes": 15}),
        )
        .await;
        assert_eq!(
            (refused.status, refused.code()),
            (422, code),
            "{zone}: {}",
            refused.text
        );
        let end = create(
            &desk,
            &json!({"start": format!("{}T{bad}:00Z", day - Duration::days(1)), "end": format!("{day}T{bad}")}),
        )
        .await;
        assert_eq!(
            (end.status, end.code()),
            (422, code),
            "{zone} end: {}",
            end.text
        );
        assert!(desk.all("/calendar/slots?limit=100").await.is_empty());
        let made = create(
            &desk,
            &json!({"start": format!("{day}T{good}"), "duration_minutes": 15}),
        )
        .await;
        assert_eq!(made.status, 201, "{zone}: {}", made.text);
        assert_eq!(
            made.body["items"][0]["start"],
            format!("{day}T{good}:00{offset}"),
            "{zone}"
        );
        // The day's listing starts at its first minute, even when midnight is skipped.
        let listed = desk
            .get(&format!(
                "/calendar/slots?from={day}&to={}",
                day + Duration::days(1)
            ))
            .await;
        assert_eq!(listed.status, 200, "{zone}: {}", listed.text);
        assert_eq!(
            listed.body["items"].as_array().unwrap().len(),
            1,
            "{zone}: {}",
            listed.text
        );
    }
}

#[tokio::test]
async fn repeats_keep_the_wall_clock_across_changes_in_several_zones() {
    for (zone, day, before, after) in [
        ("America/New_York", new_york_spring(), "-05:00", "-04:00"),
        (
            "Australia/Lord_Howe",
            lord_howe_spring(),
            "+10:30",
            "+11:00",
        ),
        ("America/Havana", havana_spring(), "-05:00", "-04:00"),
    ] {
        let desk = Desk::new("whatsapp").await;
        desk.settings("Zones", zone).await;
        let first = day - Duration::days(1);
        let reply = create(
            &desk,
            &json!({"start": format!("{first}T09:00"), "duration_minutes": 30,
                    "repeat": {"freq": "daily", "until": (day + Duration::days(1)).to_string()}}),
        )
        .await;
        assert_eq!(reply.status, 201, "{zone}: {}", reply.text);
        assert_eq!(
            starts(reply.body["items"].as_array().unwrap()),
            [
                format!("{first}T09:00:00{before}"),
                format!("{day}T09:00:00{after}"),
                format!("{}T09:00:00{after}", day + Duration::days(1)),
            ],
            "{zone}"
        );
    }
    // A repeat through Havana's missing midnight is refused whole; skipping that day is fine.
    let desk = Desk::new("whatsapp").await;
    desk.settings("Zones", "America/Havana").await;
    let day = havana_spring();
    let first = day - Duration::days(2);
    let through = create(
        &desk,
        &json!({"start": format!("{first}T00:30"), "duration_minutes": 30,
                "repeat": {"freq": "daily", "until": (day + Duration::days(1)).to_string()}}),
    )
    .await;
    assert_eq!(
        (through.status, through.code()),
        (422, "nonexistent_local_time"),
        "{}",
        through.text
    );
    assert!(
        desk.all("/calendar/slots?limit=100").await.is_empty(),
        "all or none"
    );
    let days: Vec<&str> = ["mo", "tu", "we", "th", "fr", "sa"].to_vec();
    let around = create(
        &desk,
        &json!({"start": format!("{first}T00:30"), "duration_minutes": 30,
                "repeat": {"freq": "weekly", "by_day": days, "until": (day + Duration::days(1)).to_string()}}),
    )
    .await;
    assert_eq!(around.status, 201, "{}", around.text);
    assert!(
        around.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["start"].as_str().unwrap().contains("T00:30:00")),
        "{}",
        around.text
    );
    // In London's repeated hour, a repeat takes the first 01:30 (RFC 5545).
    let desk = Desk::new("whatsapp").await;
    desk.settings("Zones", "Europe/London").await;
    let day = london_autumn();
    let reply = create(
        &desk,
        &json!({"start": format!("{}T01:30", day - Duration::days(1)), "duration_minutes": 20,
                "repeat": {"freq": "daily", "until": (day + Duration::days(1)).to_string()}}),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(
        starts(reply.body["items"].as_array().unwrap()),
        [
            format!("{}T01:30:00+01:00", day - Duration::days(1)),
            format!("{day}T01:30:00+01:00"),
            format!("{}T01:30:00+00:00", day + Duration::days(1)),
        ]
    );
}

#[tokio::test]
async fn a_repeat_starting_at_the_second_of_two_repeated_times_starts_where_asked() {
    let desk = Desk::new("whatsapp").await;
    desk.settings("Zones", "Europe/London").await;
    let day = london_autumn();
    let start = format!("{day}T01:30:00+00:00");
    let single = create(&desk, &json!({"start": start, "duration_minutes": 20})).await;
    assert_eq!(single.status, 201, "{}", single.text);
    assert_eq!(
        single.body["items"][0]["start"],
        start.as_str(),
        "a single slot is where asked"
    );
    let desk = Desk::new("whatsapp").await;
    desk.settings("Zones", "Europe/London").await;
    let reply = create(
        &desk,
        &json!({"start": start, "duration_minutes": 20,
                "repeat": {"freq": "daily", "until": (day + Duration::days(1)).to_string()}}),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(
        starts(reply.body["items"].as_array().unwrap()),
        [
            start.clone(),
            format!("{}T01:30:00+00:00", day + Duration::days(1))
        ],
        "the first slot of a repeat is its start"
    );
}

#[tokio::test]
async fn until_is_inclusive_and_read_in_the_zone() {
    let desk = Desk::new("whatsapp").await;
    desk.settings("Zones", "Asia/Tokyo").await;
    let day = (Utc::now() + Duration::days(3)).date_naive();
    let start = format!("{day}T23:30:00+09:00");
    let at = |d: i64| format!("{}T23:30:00+09:00", day + Duration::days(d));
    let count = |reply: &super::Reply| reply.body["items"].as_array().map_or(0, Vec::len);
    // Each case on its own later week so none overlaps another.
    for (week, (until, expected)) in (0..).zip([
        (json!(day.to_string()), 1),
        (json!((day + Duration::days(1)).to_string()), 2),
        (json!(at(2)), 3),
        (
            json!(format!("{}T23:29:00+09:00", day + Duration::days(2))),
            2,
        ),
        // 14:30 UTC on day + 2 is 23:30 in Tokyo: inclusive.
        (json!(format!("{}T14:30:00Z", day + Duration::days(2))), 3),
        // 09:59:59 UTC on day + 2 is 18:59:59 in Tokyo, before that day's 23:30.
        (
            json!(format!("{}T23:59:59-10:00", day + Duration::days(1))),
            2,
        ),
    ]) {
        let shift = Duration::days(7 * week);
        let shifted = |t: &str| {
            let t = chrono::DateTime::parse_from_rfc3339(t).unwrap() + shift;
            t.to_rfc3339()
        };
        let until = match until.as_str().unwrap() {
            u if u.len() == 10 => {
                (NaiveDate::parse_from_str(u, "%Y-%m-%d").unwrap() + shift).to_string()
            }
            u => shifted(u),
        };
        let reply = create(
            &desk,
            &json!({"start": shifted(&start), "duration_minutes": 20,
                    "repeat": {"freq": "daily", "until": until}}),
        )
        .await;
        assert_eq!(
            (reply.status, count(&reply)),
            (201, expected),
            "until {until}: {}",
            reply.text
        );
    }
    let before = desk.state().await;
    for until in [
        format!("{}T23:29:00+09:00", day - Duration::days(30)),
        (day - Duration::days(1)).to_string(),
        format!("{}T09:00", day + Duration::days(2)),
        "2027-02-30".to_owned(),
        String::new(),
    ] {
        let reply = create(
            &desk,
            &json!({"start": format!("{}T23:30:00+09:00", day + Duration::days(60)),
                    "duration_minutes": 20, "repeat": {"freq": "daily", "until": until}}),
        )
        .await;
        assert_eq!(
            (reply.status, reply.code()),
            (422, "invalid_repeat"),
            "until {until}: {}",
            reply.text
        );
    }
    assert_eq!(desk.state().await, before);
}

#[tokio::test]
async fn slots_start_and_end_on_whole_minutes() {
    let desk = Desk::new("whatsapp").await;
    let day = (Utc::now() + Duration::days(3)).date_naive();
    for body in [
        json!({"start": format!("{day}T09:00:30Z"), "duration_minutes": 30}),
        json!({"start": format!("{day}T09:00:00.001Z"), "duration_minutes": 30}),
        json!({"start": format!("{day}T09:00:00.000000001Z"), "duration_minutes": 30}),
        json!({"start": format!("{day}T09:00:59"), "duration_minutes": 30}),
        json!({"start": format!("{day}T09:00:00Z"), "end": format!("{day}T09:30:59Z")}),
        json!({"start": format!("{day}T09:00:00Z"), "end": format!("{day}T09:30:00.5Z")}),
    ] {
        let reply = create(&desk, &body).await;
        assert_eq!(
            (reply.status, reply.code()),
            (422, "invalid_slot"),
            "{body}: {}",
            reply.text
        );
    }
    let ok = create(
        &desk,
        &json!({"start": format!("{day}T09:00:00.000Z"), "end": format!("{day}T09:30:00")}),
    )
    .await;
    assert_eq!(ok.status, 201, "{}", ok.text);
}

#[tokio::test]
async fn ninety_nine_slots_land_in_one_request_and_a_hundredth_is_refused() {
    let desk = Desk::new("whatsapp").await;
    let daily = |hour: u32, days: i64| {
        json!({"start": utc_at(2, hour, 0), "duration_minutes": 30,
               "repeat": {"freq": "daily", "until": (Utc::now().date_naive() + Duration::days(1 + days)).to_string()}})
    };
    let refused = create(&desk, &daily(9, 100)).await;
    assert_eq!(
        (refused.status, refused.code()),
        (422, "too_many_slots"),
        "{}",
        refused.text
    );
    assert!(desk.all("/calendar/slots?limit=100").await.is_empty());
    let made = create(&desk, &daily(9, 99)).await;
    assert_eq!(made.status, 201, "{}", made.text);
    assert_eq!(made.body["items"].as_array().unwrap().len(), 99);
    let listed = desk.all("/calendar/slots?limit=7").await;
    assert_eq!(listed.len(), 99, "every slot, once, across pages");
    let mut ids: Vec<&str> = listed.iter().map(|s| s["id"].as_str().unwrap()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 99);
    // 99 more, each overlapping one of the first: refused whole.
    let before = desk.state().await;
    let overlapping = create(&desk, &daily(9, 99)).await;
    assert_eq!(
        (overlapping.status, overlapping.code()),
        (422, "overlapping_slots")
    );
    assert_eq!(desk.state().await, before);
}

#[tokio::test]
async fn slots_start_at_most_731_days_ahead() {
    let desk = Desk::new("whatsapp").await;
    let ok = create(
        &desk,
        &json!({"start": utc_at(730, 9, 0), "duration_minutes": 30}),
    )
    .await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    let before = desk.state().await;
    for body in [
        json!({"start": utc_at(732, 9, 0), "duration_minutes": 30}),
        json!({"start": utc_at(700, 9, 0), "duration_minutes": 30,
               "repeat": {"freq": "weekly", "until": utc_at(760, 9, 0)}}),
        json!({"start": "9999-12-31T09:00:00Z", "duration_minutes": 30}),
    ] {
        let reply = create(&desk, &body).await;
        assert_eq!(
            (reply.status, reply.code()),
            (422, "invalid_slot"),
            "{body}: {}",
            reply.text
        );
    }
    assert_eq!(desk.state().await, before);
}

/// A slot at 09:00 UTC in four days, booked: the day.
async fn booked_at_nine(desk: &Desk) -> NaiveDate {
    let day = (Utc::now() + Duration::days(4)).date_naive();
    let slot = desk.slot(&format!("{day}T09:00:00Z"), 30).await;
    desk.book(&slot).await;
    day
}

#[tokio::test]
async fn filters_given_with_offsets_select_by_the_instant() {
    let desk = Desk::new("whatsapp").await;
    let day = booked_at_nine(&desk).await;
    let n = |path: String| {
        let desk = &desk;
        async move {
            let reply = desk.get(&path).await;
            assert_eq!(reply.status, 200, "{path}: {}", reply.text);
            reply.body["items"].as_array().unwrap().len()
        }
    };
    for route in ["/calendar/slots", "/bookings"] {
        for (query, expected) in [
            (format!("from={day}T09:00:00Z"), 1),
            (format!("from={day}T10:00:00%2B01:00"), 1),
            (format!("from={day}T23:00:00%2B14:00"), 1),
            (format!("from={day}T09:00:01Z"), 0),
            (
                format!("from={}T21:00:01-12:00", day - Duration::days(1)),
                0,
            ),
            (format!("to={day}T09:00:00Z"), 0),
            (format!("to={day}T08:00:00-01:00"), 0),
            (format!("from={day}T08:59:00Z&to={day}T09:01:00Z"), 1),
            (format!("from={day}&to={}", day + Duration::days(1)), 1),
        ] {
            assert_eq!(
                n(format!("{route}?{query}")).await,
                expected,
                "{route}?{query}"
            );
        }
    }
}

#[tokio::test]
async fn a_slot_starting_before_to_is_listed_when_to_has_seconds() {
    let desk = Desk::new("whatsapp").await;
    let day = (Utc::now() + Duration::days(4)).date_naive();
    let slot = desk.slot(&format!("{day}T09:00:00Z"), 30).await;
    for query in [
        format!("from={day}T08:00:00Z&to={day}T09:00:30Z"),
        format!("from={day}T08:00:00Z&to={day}T09:00:00.001Z"),
        format!("from={day}T08:00:00Z&to={day}T10:00:30%2B01:00"),
    ] {
        let reply = desk.get(&format!("/calendar/slots?{query}")).await;
        assert_eq!(
            reply.body["items"].as_array().unwrap().len(),
            1,
            "{query}: {}",
            reply.text
        );
    }
    let url = desk
        .invite(&json!({"from": format!("{day}T08:00:00Z"), "to": format!("{day}T09:00:30Z")}))
        .await;
    let page = super::open(&url).await;
    assert!(
        page.text.contains(&slot),
        "the page offers it: {}",
        page.text
    );
}

#[tokio::test]
async fn the_page_shows_repeats_across_a_change_at_their_local_time_under_their_local_day() {
    for (zone, day) in [
        ("Europe/London", next(|y| nth(y, 3, Weekday::Sun, 0))),
        ("Australia/Lord_Howe", lord_howe_spring()),
    ] {
        let desk = Desk::new("whatsapp").await;
        desk.settings("Zones", zone).await;
        let first = day - Duration::days(1);
        let ids = desk
            .slots(&json!({"start": format!("{first}T00:15"), "duration_minutes": 30,
                           "repeat": {"freq": "daily", "until": (day + Duration::days(1)).to_string()}}))
            .await;
        let url = desk
            .invite(&json!({"to": (Utc::now() + Duration::days(400)).to_rfc3339()}))
            .await;
        let page = super::open(&url).await;
        assert_eq!(page.status, 200, "{}", page.text);
        assert_eq!(
            page.text.matches("00:15 – 00:45").count(),
            ids.len(),
            "{zone}: {}",
            page.text
        );
        for d in [first, day, day + Duration::days(1)] {
            let legend = format!("<legend>{}</legend>", d.format("%A %-d %B %Y"));
            assert!(
                page.text.contains(&legend),
                "{zone}: {legend} in {}",
                page.text
            );
        }
    }
}
