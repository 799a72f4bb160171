use chrono::Timelike;
use proptest::prelude::*;
use serde_json::json;

use super::*;

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn now() -> DateTime<Utc> {
    utc("2026-03-01T00:00:00Z")
}

fn request(body: serde_json::Value) -> SlotRequest {
    serde_json::from_value(body).unwrap()
}

fn expand_in(zone: Zone, body: serde_json::Value) -> Result<Vec<SlotTime>, Error> {
    expand(&request(body), zone, now())
}

fn code(zone: Zone, body: serde_json::Value) -> &'static str {
    expand_in(zone, body).unwrap_err().code()
}

fn starts(slots: &[SlotTime]) -> Vec<String> {
    slots
        .iter()
        .map(|s| crate::domain::time::rfc3339(&s.start))
        .collect()
}

#[test]
fn a_single_slot_takes_an_end_or_a_duration() {
    let by_end = expand_in(
        Zone::utc(),
        json!({"start": "2026-12-01T09:00:00+01:00", "end": "2026-12-01T09:30:00+01:00"}),
    )
    .unwrap();
    let by_duration = expand_in(
        Zone::utc(),
        json!({"start": "2026-12-01T08:00:00Z", "duration_minutes": 30}),
    )
    .unwrap();
    assert_eq!(by_end, by_duration);
    assert_eq!(by_end[0].minutes(), 30);
    assert_eq!(starts(&by_end), ["2026-12-01T08:00:00.000Z"]);
}

#[test]
fn a_local_time_is_the_business_wall_clock() {
    let slots = expand_in(
        Zone::parse("Europe/London").unwrap(),
        json!({"start": "2026-07-01T09:00", "duration_minutes": 60}),
    )
    .unwrap();
    assert_eq!(starts(&slots), ["2026-07-01T08:00:00.000Z"], "09:00 BST");
}

#[test]
fn a_daily_repeat_keeps_nine_oclock_across_the_london_clock_change() {
    // The clocks go forward on Sunday 29 March 2026 at 01:00 UTC.
    let slots = expand_in(
        Zone::parse("Europe/London").unwrap(),
        json!({"start": "2026-03-27T09:00:00Z", "duration_minutes": 30,
               "repeat": {"freq": "daily", "until": "2026-03-31"}}),
    )
    .unwrap();
    assert_eq!(
        starts(&slots),
        [
            "2026-03-27T09:00:00.000Z",
            "2026-03-28T09:00:00.000Z",
            "2026-03-29T08:00:00.000Z",
            "2026-03-30T08:00:00.000Z",
            "2026-03-31T08:00:00.000Z",
        ]
    );
    for s in &slots {
        let local = s
            .start
            .with_timezone(&Zone::parse("Europe/London").unwrap());
        assert_eq!((local.hour(), local.minute()), (9, 0));
    }
}

#[test]
fn a_weekly_repeat_keeps_its_local_time_when_new_york_falls_back() {
    // New York falls back on Sunday 1 November 2026.
    let slots = expand_in(
        Zone::parse("America/New_York").unwrap(),
        json!({"start": "2026-10-26T10:00", "duration_minutes": 45,
               "repeat": {"freq": "weekly", "by_day": ["mo", "TH"], "until": "2026-11-05T23:59:00-05:00"}}),
    )
    .unwrap();
    assert_eq!(
        starts(&slots),
        [
            "2026-10-26T14:00:00.000Z",
            "2026-10-29T14:00:00.000Z",
            "2026-11-02T15:00:00.000Z",
            "2026-11-05T15:00:00.000Z",
        ]
    );
}

#[test]
fn a_weekly_repeat_without_days_repeats_on_the_start_s_weekday() {
    let slots = expand_in(
        Zone::utc(),
        json!({"start": "2026-12-02T09:00:00Z", "duration_minutes": 30,
               "repeat": {"freq": "weekly", "until": "2026-12-23"}}),
    )
    .unwrap();
    assert_eq!(slots.len(), 4);
    assert!(slots.iter().all(|s| s.start.weekday() == Weekday::Wed));
}

#[test]
fn an_instant_until_is_inclusive_and_a_date_until_is_the_whole_local_day() {
    let body = |until: &str| {
        json!({"start": "2026-12-01T09:00:00Z", "duration_minutes": 30,
               "repeat": {"freq": "daily", "until": until}})
    };
    assert_eq!(
        expand_in(Zone::utc(), body("2026-12-03T09:00:00Z"))
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        expand_in(Zone::utc(), body("2026-12-03T08:59:00Z"))
            .unwrap()
            .len(),
        2
    );
    assert_eq!(expand_in(Zone::utc(), body("2026-12-03")).unwrap().len(), 3);
}

#[test]
fn a_local_time_the_clocks_skip_is_refused() {
    assert_eq!(
        code(
            Zone::parse("Europe/London").unwrap(),
            json!({"start": "2026-03-29T01:30", "duration_minutes": 30})
        ),
        "nonexistent_local_time"
    );
    let err = expand_in(
        Zone::parse("Europe/London").unwrap(),
        json!({"start": "2026-03-27T01:30", "duration_minutes": 30,
               "repeat": {"freq": "daily", "until": "2026-04-02"}}),
    )
    .unwrap_err();
    assert_eq!(err.code(), "nonexistent_local_time");
    assert!(err.to_string().contains("2026-03-29"), "{err}");
}

#[test]
fn a_local_time_the_clocks_repeat_needs_an_offset_but_a_repeat_takes_the_first() {
    assert_eq!(
        code(
            Zone::parse("Europe/London").unwrap(),
            json!({"start": "2026-10-25T01:30", "duration_minutes": 30})
        ),
        "ambiguous_local_time"
    );
    let slots = expand_in(
        Zone::parse("Europe/London").unwrap(),
        json!({"start": "2026-10-24T01:30", "duration_minutes": 30,
               "repeat": {"freq": "daily", "until": "2026-10-26"}}),
    )
    .unwrap();
    // 01:30 BST (00:30 UTC) on the 25th, the first of the two.
    assert_eq!(
        starts(&slots),
        [
            "2026-10-24T00:30:00.000Z",
            "2026-10-25T00:30:00.000Z",
            "2026-10-26T01:30:00.000Z"
        ]
    );
}

#[test]
fn whole_day_slots_overlap_on_the_short_day_of_a_clock_change() {
    // 29 March 2026 lasts 23 hours in London: a 24-hour slot from midnight runs into the next.
    assert_eq!(
        code(
            Zone::parse("Europe/London").unwrap(),
            json!({"start": "2026-03-28T00:00", "duration_minutes": 1440,
                   "repeat": {"freq": "daily", "until": "2026-03-30"}})
        ),
        "overlapping_slots"
    );
}

#[test]
fn bad_slots_are_refused_with_a_code() {
    let cases = [
        (
            json!({"start": "tomorrow", "duration_minutes": 30}),
            "invalid_slot",
        ),
        (
            json!({"start": "2026-12-01T09:00:30Z", "duration_minutes": 30}),
            "invalid_slot",
        ),
        (json!({"start": "2026-12-01T09:00:00Z"}), "invalid_slot"),
        (
            json!({"start": "2026-12-01T09:00:00Z", "end": "2026-12-01T10:00:00Z", "duration_minutes": 60}),
            "invalid_slot",
        ),
        (
            json!({"start": "2026-12-01T09:00:00Z", "end": "2026-12-01T09:00:00Z"}),
            "invalid_slot",
        ),
        (
            json!({"start": "2026-12-01T09:00:00Z", "end": "2026-12-01T08:00:00Z"}),
            "invalid_slot",
        ),
        (
            json!({"start": "2026-12-01T09:00:00Z", "duration_minutes": 4}),
            "invalid_slot",
        ),
        (
            json!({"start": "2026-12-01T09:00:00Z", "duration_minutes": 1441}),
            "invalid_slot",
        ),
        (
            json!({"start": "2026-02-01T09:00:00Z", "duration_minutes": 30}),
            "invalid_slot",
        ),
        (
            json!({"start": "2029-02-01T09:00:00Z", "duration_minutes": 30}),
            "invalid_slot",
        ),
        (
            json!({"start": "2026-12-01T09:00:00Z", "duration_minutes": 30,
                   "repeat": {"freq": "daily", "by_day": ["mo"], "until": "2026-12-09"}}),
            "invalid_repeat",
        ),
        (
            json!({"start": "2026-12-01T09:00:00Z", "duration_minutes": 30,
                   "repeat": {"freq": "weekly", "by_day": ["monday"], "until": "2026-12-09"}}),
            "invalid_repeat",
        ),
        (
            json!({"start": "2026-12-01T09:00:00Z", "duration_minutes": 30,
                   "repeat": {"freq": "weekly", "by_day": [], "until": "2026-12-09"}}),
            "invalid_repeat",
        ),
        (
            json!({"start": "2026-12-01T09:00:00Z", "duration_minutes": 30,
                   "repeat": {"freq": "daily", "until": "2026-11-30"}}),
            "invalid_repeat",
        ),
        (
            json!({"start": "2026-12-01T09:00:00Z", "duration_minutes": 30,
                   "repeat": {"freq": "daily", "until": "soon"}}),
            "invalid_repeat",
        ),
        (
            json!({"start": "2026-12-01T09:00:00Z", "duration_minutes": 30,
                   "repeat": {"freq": "weekly", "by_day": ["tu"], "until": "2026-12-01T08:00:00Z"}}),
            "invalid_repeat",
        ),
        (
            json!({"start": "2026-12-01T09:00:00Z", "duration_minutes": 30,
                   "repeat": {"freq": "daily", "until": "2027-06-01"}}),
            "too_many_slots",
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(code(Zone::utc(), body.clone()), expected, "{body}");
    }
    assert!(serde_json::from_value::<SlotRequest>(json!({"start": "x", "colour": "red"})).is_err());
    assert!(
        serde_json::from_value::<SlotRequest>(
            json!({"start": "x", "repeat": {"freq": "monthly", "until": "2026-12-01"}})
        )
        .is_err()
    );
}

#[test]
fn exactly_ninety_nine_slots_fit_in_one_request() {
    let slots = expand_in(
        Zone::utc(),
        json!({"start": "2026-03-02T09:00:00Z", "duration_minutes": 30,
               "repeat": {"freq": "daily", "until": "2026-06-08"}}),
    )
    .unwrap();
    assert_eq!(slots.len(), MAX_SLOTS_PER_REQUEST);
}

#[test]
fn overlaps_are_found_and_touching_slots_are_not_overlaps() {
    let slot = |a: &str, b: &str| SlotTime {
        start: utc(a),
        end: utc(b),
    };
    let existing = [slot("2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z")];
    let touching = [slot("2026-12-01T10:00:00Z", "2026-12-01T10:30:00Z")];
    let inside = [slot("2026-12-01T09:15:00Z", "2026-12-01T09:30:00Z")];
    let around = [slot("2026-12-01T08:00:00Z", "2026-12-01T11:00:00Z")];
    assert!(first_overlap(&touching, &existing).is_none());
    assert!(first_overlap(&inside, &existing).is_some());
    assert!(first_overlap(&around, &existing).is_some());
}

#[test]
fn slot_ids_sort_by_start_and_are_recognised() {
    let a = slot_id(utc("2026-12-01T09:00:00Z"));
    let b = slot_id(utc("2026-12-01T09:30:00Z"));
    assert!(a.starts_with("sl_20261201T0900Z_"), "{a}");
    assert!(a < b);
    assert!(a.as_str() >= slot_id_floor(utc("2026-12-01T09:00:00Z")).as_str());
    assert!(a.as_str() < slot_id_floor(utc("2026-12-01T09:01:00Z")).as_str());
    assert!(is_slot_id(&a));
    for bad in [
        "",
        "sl_",
        "sl_x_0123456789",
        "sl_20261201T0900Z_01234",
        "sl_20261201T0900Z_012345678#",
        "bk_20261201T0900Z_0123456789",
    ] {
        assert!(!is_slot_id(bad), "{bad}");
    }
}

#[test]
fn a_slot_is_shown_in_the_business_zone() {
    let stored = StoredSlot {
        id: "sl_20260701T0800Z_0123456789".into(),
        time: SlotTime {
            start: utc("2026-07-01T08:00:00Z"),
            end: utc("2026-07-01T08:30:00Z"),
        },
        booking_id: None,
        created_by: "agent-1".into(),
        created_at: "2026-06-01T00:00:00.000Z".into(),
    };
    let view = serde_json::to_value(stored.view(Zone::parse("Europe/London").unwrap())).unwrap();
    assert_eq!(view["start"], "2026-07-01T09:00:00+01:00");
    assert_eq!(view["end"], "2026-07-01T09:30:00+01:00");
    assert_eq!(view["status"], "available");
    assert_eq!(view["duration_minutes"], 30);
}

#[test]
fn a_date_as_the_end_of_a_range_includes_its_day() {
    assert_eq!(
        parse_filter_end("2026-07-01", Zone::parse("Europe/London").unwrap(), "to").unwrap(),
        utc("2026-07-01T23:00:00Z")
    );
    assert_eq!(
        parse_filter_end(
            "2026-07-01T10:00:00Z",
            Zone::parse("Europe/London").unwrap(),
            "to"
        )
        .unwrap(),
        utc("2026-07-01T10:00:00Z")
    );
}

#[test]
fn zones_read_as_a_city_and_an_offset() {
    let summer = utc("2026-07-01T00:00:00Z");
    assert_eq!(
        zone_label(Zone::parse("Asia/Hong_Kong").unwrap(), summer),
        "Hong Kong time (GMT+8)"
    );
    assert_eq!(
        zone_label(Zone::parse("Asia/Kolkata").unwrap(), summer),
        "Kolkata time (GMT+5:30)"
    );
    assert_eq!(
        zone_label(Zone::parse("Europe/London").unwrap(), summer),
        "London time (GMT+1)"
    );
    assert_eq!(
        zone_label(
            Zone::parse("Europe/London").unwrap(),
            utc("2026-12-01T00:00:00Z")
        ),
        "London time (GMT)"
    );
    assert_eq!(
        zone_label(Zone::parse("America/St_Johns").unwrap(), summer),
        "St Johns time (GMT-2:30)"
    );
    assert_eq!(zone_label(Zone::utc(), summer), "UTC");
}

#[test]
fn filters_take_an_instant_or_the_start_of_a_local_day() {
    assert_eq!(
        parse_filter("2026-07-01", Zone::parse("Europe/London").unwrap(), "from").unwrap(),
        utc("2026-06-30T23:00:00Z")
    );
    // Midnight does not exist in Havana on its spring-forward day (8 March 2026).
    assert_eq!(
        parse_filter("2026-03-08", Zone::parse("America/Havana").unwrap(), "from").unwrap(),
        utc("2026-03-08T05:00:00Z")
    );
    assert_eq!(
        parse_filter("nope", Zone::utc(), "to").unwrap_err().code(),
        "invalid_filter"
    );
}

const ZONES: [&str; 7] = [
    "UTC",
    "Europe/London",
    "America/New_York",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Asia/Kolkata",
    "Pacific/Chatham",
];
proptest! {
    #[test]
    fn every_repeat_keeps_the_wall_clock_time_or_is_refused(
        zone in prop::sample::select(ZONES.to_vec()),
        offset_minutes in 60i64..(300 * 24 * 60),
        days in 1u64..120,
        duration in 5i64..600,
        weekly in any::<bool>(),
    ) {
        let zone = Zone::parse(zone).unwrap();
        let start = (now() + Duration::minutes(offset_minutes)).with_timezone(&zone);
        let until = start.date_naive() + chrono::Days::new(days);
        let mut body = json!({
            "start": start.format("%Y-%m-%dT%H:%M").to_string(),
            "duration_minutes": duration,
            "repeat": {"freq": if weekly { "weekly" } else { "daily" }, "until": until.to_string()},
        });
        if weekly {
            body["repeat"]["by_day"] = json!(["mo", "we", "fr", "su"]);
        }
        match expand_in(zone, body) {
            Ok(slots) => {
                prop_assert!(!slots.is_empty() && slots.len() <= MAX_SLOTS_PER_REQUEST);
                let wall = start.time();
                for pair in slots.windows(2) {
                    prop_assert!(pair[0].end <= pair[1].start);
                }
                for s in &slots {
                    prop_assert_eq!(s.minutes(), duration);
                    prop_assert_eq!(s.start.with_timezone(&zone).time(), wall);
                    prop_assert!(s.start.with_timezone(&zone).date_naive() <= until);
                }
            }
            Err(e) => prop_assert!(
                ["nonexistent_local_time", "ambiguous_local_time", "too_many_slots", "overlapping_slots", "invalid_repeat"]
                    .contains(&e.code()),
                "{}", e
            ),
        }
    }

    #[test]
    fn any_text_is_a_slot_or_a_422(start in ".{0,40}", end in ".{0,40}") {
        let body = json!({"start": start, "end": end});
        if let Err(e) = expand_in(Zone::parse("Europe/London").unwrap(), body) {
            prop_assert!(e.code().contains("slot") || e.code().contains("local_time"), "{}", e.code());
        }
    }
}
