//! Tenant settings (SPEC §7): business name, time zone, weekly business hours and the
//! auto-assign switch, and the one rule read from them: [`TenantSettings::is_open_at`].
//!
//! JSON (`GET/PUT /settings`):
//! `{"business_name": "Acme" | null, "time_zone": "Asia/Hong_Kong",
//!   "business_hours": {"mon": [["09:00", "18:00"]], …, "sun": []}, "auto_assign": false}`.
//!
//! A `PUT` replaces the whole settings: a field left out takes its default (no name, UTC,
//! no business hours, `auto_assign` false). Limits: `business_name` 1–200 characters
//! (null = not set); `time_zone` an IANA zone name ([`crate::domain::zone`], bundled);
//! per day at most [`MAX_RANGES_PER_DAY`] ranges `[start, end]` of `"HH:MM"` local
//! wall-clock time, `00:00` ≤ start < end ≤ `24:00`, not overlapping (ranges that touch,
//! `["09:00","12:00"]` and `["12:00","18:00"]`, are fine). A range cannot cross midnight:
//! split it over two days.

use crate::domain::zone::Zone;
use chrono::{DateTime, Datelike, Timelike, Utc, Weekday};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::Error;

/// Longest business name, in characters (a display name; sane bound of ours).
pub const BUSINESS_NAME_MAX: usize = 200;

/// Most ranges in one day (a split shift needs two or three; ours, to keep items small).
pub const MAX_RANGES_PER_DAY: usize = 10;

/// Minutes in a day: `24:00`, the latest end of a range.
const DAY_MINUTES: u16 = 24 * 60;

/// The weekday keys of `business_hours`, Monday first.
pub const WEEKDAY_KEYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// One opening range of a day, in minutes after local midnight: `start` inclusive, `end`
/// exclusive, `0 ≤ start < end ≤ 1440`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeRange {
    start: u16,
    end: u16,
}

impl TimeRange {
    /// A range from `"HH:MM"` texts.
    ///
    /// # Errors
    /// `422 invalid_business_hours` when a time is not `HH:MM` (00:00–24:00) or the start
    /// is not before the end.
    pub fn parse(start: &str, end: &str) -> Result<Self, Error> {
        let (start, end) = (parse_hhmm(start)?, parse_hhmm(end)?);
        if start >= end {
            return Err(hours_error(format!(
                "a range must start before it ends: [\"{}\", \"{}\"]",
                hhmm(start),
                hhmm(end)
            )));
        }
        Ok(Self { start, end })
    }

    /// Whether the range holds the local time `second` seconds after midnight.
    pub fn contains_second(self, second: u32) -> bool {
        let minute = second / 60;
        u32::from(self.start) <= minute && minute < u32::from(self.end)
    }
}

impl Serialize for TimeRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        [hhmm(self.start), hhmm(self.end)].serialize(s)
    }
}

fn hours_error(message: impl Into<String>) -> Error {
    Error::validation("invalid_business_hours", message)
}

/// `"HH:MM"` → minutes after midnight; `"24:00"` is the end of the day.
fn parse_hhmm(text: &str) -> Result<u16, Error> {
    let bad = || {
        hours_error(format!(
            "\"{}\" is not a time of day: use \"HH:MM\" from \"00:00\" to \"24:00\"",
            text.chars().take(16).collect::<String>()
        ))
    };
    let bytes = text.as_bytes();
    if bytes.len() != 5 || bytes[2] != b':' {
        return Err(bad());
    }
    let number = |pair: &[u8]| -> Option<u16> {
        pair.iter().try_fold(0u16, |n, b| {
            b.is_ascii_digit().then(|| n * 10 + u16::from(b - b'0'))
        })
    };
    let (hour, minute) = (number(&bytes[..2]), number(&bytes[3..]));
    match (hour, minute) {
        (Some(h), Some(m)) if h < 24 && m < 60 => Ok(h * 60 + m),
        (Some(24), Some(0)) => Ok(DAY_MINUTES),
        _ => Err(bad()),
    }
}

fn hhmm(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// Opening ranges per weekday, each day's sorted and not overlapping.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BusinessHours {
    days: [Vec<TimeRange>; 7],
}

impl BusinessHours {
    /// Parses `{"mon": [["09:00","18:00"], …], …}`; a day left out has no ranges.
    ///
    /// # Errors
    /// `422 invalid_business_hours` for a key other than `mon`…`sun`, a day that is not a
    /// list of `[start, end]` pairs of strings, a bad time, an inverted or empty range,
    /// overlapping ranges in one day, or more than [`MAX_RANGES_PER_DAY`] in a day.
    pub fn parse(value: &Value) -> Result<Self, Error> {
        let Value::Object(map) = value else {
            return Err(hours_error(
                "business_hours must be an object keyed by mon, tue, wed, thu, fri, sat, sun",
            ));
        };
        let mut days: [Vec<TimeRange>; 7] = Default::default();
        for (key, ranges) in map {
            let index = WEEKDAY_KEYS.iter().position(|k| k == key).ok_or_else(|| {
                hours_error(format!(
                    "unknown day \"{}\": use mon, tue, wed, thu, fri, sat, sun",
                    key.chars().take(16).collect::<String>()
                ))
            })?;
            days[index] = parse_day(key, ranges)?;
        }
        Ok(Self { days })
    }

    /// The ranges of a weekday, earliest first.
    pub fn day(&self, day: Weekday) -> &[TimeRange] {
        &self.days[day.num_days_from_monday() as usize]
    }

    /// Whether no day has any range (the tenant never set business hours).
    pub fn is_empty(&self) -> bool {
        self.days.iter().all(Vec::is_empty)
    }
}

fn parse_day(key: &str, ranges: &Value) -> Result<Vec<TimeRange>, Error> {
    let not_pairs = || {
        hours_error(format!(
            "{key} must be a list of [\"HH:MM\", \"HH:MM\"] pairs"
        ))
    };
    let list = ranges.as_array().ok_or_else(not_pairs)?;
    if list.len() > MAX_RANGES_PER_DAY {
        return Err(hours_error(format!(
            "{key} has more than {MAX_RANGES_PER_DAY} ranges"
        )));
    }
    let mut out = Vec::with_capacity(list.len());
    for pair in list {
        match pair.as_array().map(Vec::as_slice) {
            Some([Value::String(start), Value::String(end)]) => {
                out.push(TimeRange::parse(start, end)?);
            }
            _ => return Err(not_pairs()),
        }
    }
    out.sort_unstable();
    if let Some(w) = out.windows(2).find(|w| w[1].start < w[0].end) {
        return Err(hours_error(format!(
            "ranges overlap on {key}: [\"{}\", \"{}\"] and [\"{}\", \"{}\"]",
            hhmm(w[0].start),
            hhmm(w[0].end),
            hhmm(w[1].start),
            hhmm(w[1].end)
        )));
    }
    Ok(out)
}

impl Serialize for BusinessHours {
    /// Every day, `mon` to `sun`, with its ranges (`[]` when closed or unset).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = s.serialize_map(Some(WEEKDAY_KEYS.len()))?;
        for (key, ranges) in WEEKDAY_KEYS.iter().zip(&self.days) {
            out.serialize_entry(key, ranges)?;
        }
        out.end()
    }
}

/// A tenant's settings. [`TenantSettings::default`] is what a tenant has until an admin
/// saves some: no business name, UTC, no business hours (always open), no auto-assign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantSettings {
    /// Shown to customers (`{{business.name}}`); `None` until set.
    pub business_name: Option<String>,
    /// IANA zone the business hours are in.
    #[serde(serialize_with = "serialize_zone")]
    pub time_zone: Zone,
    /// Weekly opening hours, local wall-clock time of `time_zone`.
    pub business_hours: BusinessHours,
    /// Assign new conversations automatically (read by assignment).
    pub auto_assign: bool,
}

fn serialize_zone<S: Serializer>(zone: &Zone, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(zone.name())
}

impl Default for TenantSettings {
    fn default() -> Self {
        Self {
            business_name: None,
            time_zone: Zone::utc(),
            business_hours: BusinessHours::default(),
            auto_assign: false,
        }
    }
}

/// Top-level fields of the settings object.
pub const FIELDS: [&str; 4] = [
    "business_name",
    "time_zone",
    "business_hours",
    "auto_assign",
];

impl TenantSettings {
    /// Parses a settings object (a `PUT /settings` body, or the stored item's fields):
    /// fields left out or `null` take their defaults.
    ///
    /// # Errors
    /// All `422`: `invalid_body` (not an object, an unknown field, `auto_assign` not a
    /// boolean), `invalid_business_name` (not a string of 1–200 characters without control
    /// characters, once trimmed), `invalid_time_zone` (not an IANA zone name),
    /// `invalid_business_hours` (see [`BusinessHours::parse`]).
    pub fn parse(value: &Value) -> Result<Self, Error> {
        let Value::Object(map) = value else {
            return Err(Error::validation(
                "invalid_body",
                "the body must be a JSON object",
            ));
        };
        if let Some(unknown) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(Error::validation(
                "invalid_body",
                format!(
                    "unknown field `{}`, expected one of business_name, time_zone, business_hours, auto_assign",
                    unknown.chars().take(40).collect::<String>()
                ),
            ));
        }
        let field = |name: &str| map.get(name).filter(|v| !v.is_null());
        let business_name = field("business_name")
            .map(parse_business_name)
            .transpose()?;
        let time_zone = field("time_zone")
            .map(parse_time_zone)
            .transpose()?
            .unwrap_or(Zone::utc());
        let business_hours = field("business_hours")
            .map(BusinessHours::parse)
            .transpose()?
            .unwrap_or_default();
        let auto_assign = match field("auto_assign") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(Error::validation(
                    "invalid_body",
                    "auto_assign must be true or false",
                ));
            }
        };
        Ok(Self {
            business_name,
            time_zone,
            business_hours,
            auto_assign,
        })
    }

    /// Whether the business is open at `instant`.
    ///
    /// The rule: with no range on any day (business hours never set, or every day
    /// emptied), it is always open. Otherwise `instant` is turned into the local date and
    /// time of `time_zone`, and it is open when a range of that local weekday holds the
    /// local time (start inclusive, end exclusive, minute precision); a day without ranges
    /// is closed all day.
    ///
    /// Turning an instant into local time always succeeds (every instant has exactly one
    /// local time), so daylight-saving changes need no special case and never panic: on
    /// the day clocks spring forward, local times in the gap (e.g. 02:00–02:59 in New
    /// York) never occur, so a range inside the gap is never open; on the day they fall
    /// back, a range in the repeated hour is open during both of its occurrences.
    pub fn is_open_at(&self, instant: DateTime<Utc>) -> bool {
        if self.business_hours.is_empty() {
            return true;
        }
        let local = instant.with_timezone(&self.time_zone);
        let second = local.num_seconds_from_midnight();
        self.business_hours
            .day(local.weekday())
            .iter()
            .any(|r| r.contains_second(second))
    }
}

fn parse_business_name(value: &Value) -> Result<String, Error> {
    let bad = || {
        Error::validation(
            "invalid_business_name",
            format!(
                "business_name must be 1-{BUSINESS_NAME_MAX} characters without control characters"
            ),
        )
    };
    let name = value.as_str().ok_or_else(bad)?.trim();
    let count = name.chars().count();
    if count == 0 || count > BUSINESS_NAME_MAX || name.chars().any(char::is_control) {
        return Err(bad());
    }
    Ok(name.to_owned())
}

fn parse_time_zone(value: &Value) -> Result<Zone, Error> {
    let bad = || {
        Error::validation(
            "invalid_time_zone",
            "time_zone must be an IANA time zone name such as \"Asia/Hong_Kong\" or \"UTC\"",
        )
    };
    value.as_str().and_then(Zone::parse).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn settings(value: Value) -> TenantSettings {
        TenantSettings::parse(&value).expect("valid settings")
    }

    fn code(value: Value) -> &'static str {
        TenantSettings::parse(&value).unwrap_err().code()
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn an_empty_object_is_the_defaults_and_serializes_every_day() {
        let s = settings(json!({}));
        assert_eq!(s, TenantSettings::default());
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            json!({"business_name": null, "time_zone": "UTC", "auto_assign": false,
                   "business_hours": {"mon": [], "tue": [], "wed": [], "thu": [], "fri": [],
                                      "sat": [], "sun": []}})
        );
    }

    #[test]
    fn settings_round_trip_through_their_json() {
        let s = settings(json!({
            "business_name": "  Café Zoë ", "time_zone": "Asia/Hong_Kong", "auto_assign": true,
            "business_hours": {"mon": [["14:00", "18:00"], ["09:00", "12:00"]], "sat": [["10:00", "24:00"]]}
        }));
        assert_eq!(s.business_name.as_deref(), Some("Café Zoë"));
        let out = serde_json::to_value(&s).unwrap();
        assert_eq!(
            out["business_hours"]["mon"],
            json!([["09:00", "12:00"], ["14:00", "18:00"]])
        );
        assert_eq!(out["business_hours"]["sat"], json!([["10:00", "24:00"]]));
        assert_eq!(TenantSettings::parse(&out).unwrap(), s);
    }

    #[test]
    fn unknown_zones_are_refused() {
        for bad in [
            json!("Mars/Olympus"),
            json!(""),
            json!("asia/hong_kong"),
            json!(8),
        ] {
            assert_eq!(
                code(json!({"time_zone": bad})),
                "invalid_time_zone",
                "{bad}"
            );
        }
        assert_eq!(
            settings(json!({"time_zone": "America/New_York"})).time_zone,
            Zone::parse("America/New_York").unwrap()
        );
    }

    #[test]
    fn bad_times_inverted_and_overlapping_ranges_are_refused() {
        for day in [
            json!([["9:00", "18:00"]]),
            json!([["09:00", "24:01"]]),
            json!([["09:00", "23:60"]]),
            json!([["09:60", "18:00"]]),
            json!([["25:00", "26:00"]]),
            json!([["18:00", "09:00"]]),
            json!([["09:00", "09:00"]]),
            json!([["09:00", "12:00"], ["11:59", "13:00"]]),
            json!([["09:00", "18:00"], ["10:00", "11:00"]]),
            json!([["09:00"]]),
            json!([[9, 18]]),
            json!("09:00-18:00"),
            json!(vec![["00:00", "00:01"]; MAX_RANGES_PER_DAY + 1]),
        ] {
            assert_eq!(
                code(json!({"business_hours": {"mon": day}})),
                "invalid_business_hours",
                "{day}"
            );
        }
        assert_eq!(
            code(json!({"business_hours": {"monday": []}})),
            "invalid_business_hours"
        );
        assert_eq!(
            code(json!({"business_hours": []})),
            "invalid_business_hours"
        );
    }

    #[test]
    fn touching_ranges_are_not_an_overlap() {
        let s =
            settings(json!({"business_hours": {"fri": [["12:00", "18:00"], ["09:00", "12:00"]]}}));
        assert_eq!(s.business_hours.day(Weekday::Fri).len(), 2);
    }

    #[test]
    fn names_fields_and_flags_are_checked() {
        assert_eq!(code(json!({"business_name": ""})), "invalid_business_name");
        assert_eq!(
            code(json!({"business_name": "   "})),
            "invalid_business_name"
        );
        assert_eq!(
            code(json!({"business_name": "a\nb"})),
            "invalid_business_name"
        );
        assert_eq!(
            code(json!({"business_name": "é".repeat(201)})),
            "invalid_business_name"
        );
        assert!(TenantSettings::parse(&json!({"business_name": "é".repeat(200)})).is_ok());
        assert_eq!(
            code(json!({"business_name": "A", "color": "red"})),
            "invalid_body"
        );
        assert_eq!(code(json!({"auto_assign": "yes"})), "invalid_body");
        assert_eq!(code(json!([])), "invalid_body");
        assert_eq!(settings(json!({"business_name": null})).business_name, None);
    }

    #[test]
    fn no_business_hours_means_always_open() {
        let s = TenantSettings::default();
        assert!(s.is_open_at(utc("2026-12-25T03:00:00Z")));
        let emptied = settings(json!({"business_hours": {"mon": [], "sun": []}}));
        assert!(emptied.is_open_at(utc("2026-12-27T03:00:00Z")));
    }

    #[test]
    fn hours_are_read_in_the_tenants_zone() {
        // Hong Kong is UTC+8 all year: Monday 09:00-18:00 there is 01:00-10:00 UTC.
        let s = settings(json!({"time_zone": "Asia/Hong_Kong",
                                "business_hours": {"mon": [["09:00", "18:00"]]}}));
        assert!(!s.is_open_at(utc("2026-11-30T00:59:59Z")));
        assert!(s.is_open_at(utc("2026-11-30T01:00:00Z")));
        assert!(s.is_open_at(utc("2026-11-30T09:59:59Z")));
        assert!(!s.is_open_at(utc("2026-11-30T10:00:00Z")));
        // A day without ranges is closed once any day has some.
        assert!(!s.is_open_at(utc("2026-12-01T03:00:00Z")));
    }

    #[test]
    fn a_range_to_midnight_includes_the_last_minute_of_the_day() {
        let s = settings(json!({"business_hours": {"sun": [["22:00", "24:00"]]}}));
        assert!(s.is_open_at(utc("2026-11-29T23:59:59Z")));
        assert!(!s.is_open_at(utc("2026-11-30T00:00:00Z")));
    }

    #[test]
    fn a_range_in_the_spring_forward_gap_is_never_open_and_nothing_panics() {
        // New York, 2026-03-08: 02:00 EST becomes 03:00 EDT at 07:00 UTC.
        let s = settings(json!({"time_zone": "America/New_York",
                                "business_hours": {"sun": [["02:00", "03:00"], ["03:00", "04:00"]]}}));
        let start = utc("2026-03-08T05:00:00Z");
        let open: Vec<_> = (0..240)
            .map(|m| start + Duration::minutes(m))
            .filter(|t| s.is_open_at(*t))
            .collect();
        assert_eq!(
            open.first(),
            Some(&utc("2026-03-08T07:00:00Z")),
            "03:00 EDT"
        );
        assert_eq!(open.len(), 60, "only 03:00-04:00 happens that night");
    }

    #[test]
    fn a_range_in_the_repeated_fall_back_hour_is_open_twice() {
        // New York, 2026-11-01: 02:00 EDT becomes 01:00 EST at 06:00 UTC.
        let s = settings(json!({"time_zone": "America/New_York",
                                "business_hours": {"sun": [["01:00", "02:00"]]}}));
        assert!(s.is_open_at(utc("2026-11-01T05:30:00Z")), "01:30 EDT");
        assert!(s.is_open_at(utc("2026-11-01T06:30:00Z")), "01:30 EST");
        assert!(!s.is_open_at(utc("2026-11-01T07:00:00Z")), "02:00 EST");
    }

    proptest! {
        #[test]
        fn a_single_open_day_is_open_only_on_that_local_weekday(
            secs in -2_000_000_000i64..4_000_000_000i64,
            zone in prop::sample::select(vec![
                "UTC", "Asia/Hong_Kong", "America/New_York", "Europe/London",
                "Australia/Lord_Howe", "Pacific/Kiritimati", "America/St_Johns",
            ]),
            day in 0usize..7,
        ) {
            let s = settings(json!({"time_zone": zone,
                                    "business_hours": {WEEKDAY_KEYS[day]: [["00:00", "24:00"]]}}));
            let instant = Utc.timestamp_opt(secs, 0).unwrap();
            let local = instant.with_timezone(&s.time_zone);
            let expected = local.weekday().num_days_from_monday() as usize == day;
            prop_assert_eq!(s.is_open_at(instant), expected);
        }

        #[test]
        fn any_time_text_either_parses_to_its_own_spelling_or_is_refused(
            h in 0u16..30, m in 0u16..70,
        ) {
            let text = format!("{h:02}:{m:02}");
            match parse_hhmm(&text) {
                Ok(minutes) => prop_assert_eq!(hhmm(minutes), text),
                Err(e) => prop_assert_eq!(e.code(), "invalid_business_hours"),
            }
        }
    }
}
