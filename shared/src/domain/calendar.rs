//! Calendar slots (SPEC §10): what an agent marks as bookable, in the tenant's time zone.
//! Pure: parsing a `POST /calendar/slots` body, expanding its repeat into slots, the
//! daylight-saving rules, overlaps, and the slot's id and view. The service in
//! [`crate::service::bookings`] stores them.
//!
//! The rules of time:
//! - A time with an offset (`2026-12-01T09:00:00+01:00`) is an instant. A time without one
//!   (`2026-12-01T09:00`) is the tenant's wall clock: one that does not exist there (the
//!   hour skipped when clocks go forward) is refused, and one that exists twice (the hour
//!   repeated when they go back) is refused too, asking for an offset.
//! - A repeat keeps the local wall-clock time of the first slot: a 09:00 slot in
//!   Europe/London stays 09:00 after the clocks change (its UTC time moves by the hour).
//!   An occurrence that falls in a skipped hour refuses the whole request (naming the
//!   date); one in a repeated hour takes the first of the two instants (as iCalendar, RFC
//!   5545 §3.3.5, does).
//! - A slot lasts `duration_minutes` of real time, so one that spans a clock change ends
//!   at a different local hour than its length suggests.

use std::ops::RangeInclusive;

use crate::domain::zone::Zone;
use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc,
    Weekday,
};
use serde::{Deserialize, Serialize};

use crate::Error;

/// Shortest and longest slot, in minutes (a product limit: five minutes to a whole day).
pub const DURATION_MINUTES: RangeInclusive<i64> = 5..=1440;
/// Most slots one request creates: DynamoDB's `TransactWriteItems` takes 100 actions
/// (AWS, "TransactWriteItems", service quotas), one of which is the calendar's version,
/// and a request's slots are written all or none.
pub const MAX_SLOTS_PER_REQUEST: usize = 99;
/// Furthest ahead a slot may start, in days (a product limit).
pub const MAX_DAYS_AHEAD: i64 = 731;

/// A `POST /calendar/slots` body: `{start, end}` or `{start, duration_minutes}`, either with
/// an optional `repeat`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotRequest {
    /// RFC 3339 with an offset, or a local date-time of the tenant's zone.
    pub start: String,
    /// RFC 3339 with an offset, or a local date-time (exclusive with `duration_minutes`).
    #[serde(default)]
    pub end: Option<String>,
    /// The length, in minutes ([`DURATION_MINUTES`]).
    #[serde(default)]
    pub duration_minutes: Option<i64>,
    /// Repeat the slot daily or weekly until a date.
    #[serde(default)]
    pub repeat: Option<Repeat>,
}

/// How a slot repeats.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Repeat {
    /// `daily` or `weekly`.
    pub freq: Frequency,
    /// Weekly only: the days (`mo`, `tu`, `we`, `th`, `fr`, `sa`, `su`); default the start's.
    #[serde(default)]
    pub by_day: Option<Vec<String>>,
    /// The last moment (RFC 3339) or the last local date (`YYYY-MM-DD`, inclusive) a slot
    /// may start.
    pub until: String,
}

/// Repeat frequency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Frequency {
    /// Every day.
    Daily,
    /// On the given days of every week.
    Weekly,
}

/// One slot's time: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SlotTime {
    /// Start (inclusive).
    pub start: DateTime<Utc>,
    /// End (exclusive).
    pub end: DateTime<Utc>,
}

impl SlotTime {
    /// Whether two slots share any moment (touching ends do not).
    pub fn overlaps(&self, other: &SlotTime) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// Length in whole minutes.
    pub fn minutes(&self) -> i64 {
        (self.end - self.start).num_minutes()
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::validation("invalid_slot", message)
}

/// A time as the calendar takes it: RFC 3339 with an offset (an instant), or a local
/// date-time `YYYY-MM-DDTHH:MM[:SS]` of `zone`.
///
/// # Errors
/// 422 `invalid_slot` (neither form), `nonexistent_local_time` (a local time the zone
/// skips), `ambiguous_local_time` (one it repeats: give an offset).
pub fn parse_time(text: &str, zone: Zone, field: &str) -> Result<DateTime<Utc>, Error> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let local = ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .ok_or_else(|| {
            invalid(format!(
                "{field} must be RFC 3339 with an offset (2026-12-01T09:00:00+01:00) or a local time of the business (2026-12-01T09:00)"
            ))
        })?;
    match zone.from_local_datetime(&local) {
        LocalResult::Single(t) => Ok(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(..) => Err(Error::validation(
            "ambiguous_local_time",
            format!(
                "{field} {local} happens twice in {zone} (the clocks go back): give it with an offset"
            ),
        )),
        LocalResult::None => Err(Error::validation(
            "nonexistent_local_time",
            format!("{field} {local} does not exist in {zone} (the clocks go forward)"),
        )),
    }
}

/// Reads a weekday code (`mo` … `su`, any case).
fn weekday(code: &str) -> Option<Weekday> {
    Some(match code.to_ascii_lowercase().as_str() {
        "mo" => Weekday::Mon,
        "tu" => Weekday::Tue,
        "we" => Weekday::Wed,
        "th" => Weekday::Thu,
        "fr" => Weekday::Fri,
        "sa" => Weekday::Sat,
        "su" => Weekday::Sun,
        _ => return None,
    })
}

/// The last local date and instant a repeat may start on.
enum Until {
    Instant(DateTime<Utc>),
    Date(NaiveDate),
}

fn parse_until(text: &str) -> Result<Until, Error> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(Until::Instant(t.with_timezone(&Utc)));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(Until::Date)
        .map_err(|_| {
            Error::validation(
                "invalid_repeat",
                "repeat.until must be RFC 3339 with an offset or a date (YYYY-MM-DD)",
            )
        })
}

/// The slots a request makes, earliest first: one, or one per repeat occurrence.
///
/// # Errors
/// All 422: `invalid_slot` (times unreadable, not on a whole minute, end before start,
/// both or neither of `end` and `duration_minutes`, a length outside
/// [`DURATION_MINUTES`], a start past or more than [`MAX_DAYS_AHEAD`] days ahead),
/// `invalid_repeat` (an unknown day, `by_day` on a daily repeat, `until` before the
/// start or unreadable, no occurrence), `too_many_slots` (over
/// [`MAX_SLOTS_PER_REQUEST`]), `nonexistent_local_time` / `ambiguous_local_time`, and
/// `overlapping_slots` when the request's own slots overlap.
pub fn expand(
    request: &SlotRequest,
    zone: Zone,
    now: DateTime<Utc>,
) -> Result<Vec<SlotTime>, Error> {
    let start = parse_time(&request.start, zone, "start")?;
    if start.timestamp() % 60 != 0 || start.timestamp_subsec_nanos() != 0 {
        return Err(invalid("start must be on a whole minute"));
    }
    let minutes = match (&request.end, request.duration_minutes) {
        (Some(end), None) => {
            let end = parse_time(end, zone, "end")?;
            if end <= start {
                return Err(invalid("end must be after start"));
            }
            if end.timestamp() % 60 != 0 || end.timestamp_subsec_nanos() != 0 {
                return Err(invalid("end must be on a whole minute"));
            }
            (end - start).num_minutes()
        }
        (None, Some(m)) => m,
        _ => {
            return Err(invalid("give exactly one of end and duration_minutes"));
        }
    };
    if !DURATION_MINUTES.contains(&minutes) {
        return Err(invalid(format!(
            "a slot lasts {} to {} minutes",
            DURATION_MINUTES.start(),
            DURATION_MINUTES.end()
        )));
    }
    if start <= now {
        return Err(invalid("start is in the past"));
    }
    let length = Duration::minutes(minutes);
    let starts = match &request.repeat {
        None => vec![start],
        Some(repeat) => occurrences(start, repeat, zone)?,
    };
    if starts
        .last()
        .is_some_and(|last| *last > now + Duration::days(MAX_DAYS_AHEAD))
    {
        return Err(invalid(format!(
            "slots start at most {MAX_DAYS_AHEAD} days ahead"
        )));
    }
    let slots: Vec<SlotTime> = starts
        .into_iter()
        .map(|start| SlotTime {
            start,
            end: start + length,
        })
        .collect();
    if let Some(pair) = slots.windows(2).find(|w| w[0].overlaps(&w[1])) {
        return Err(Error::validation(
            "overlapping_slots",
            format!(
                "the repeated slots overlap each other ({} and {}): make them shorter or repeat less often",
                pair[0].start.with_timezone(&zone).to_rfc3339(),
                pair[1].start.with_timezone(&zone).to_rfc3339()
            ),
        ));
    }
    Ok(slots)
}

/// The starts of a repeat: on each local date from the start's (every day, or the weekly
/// `by_day` days) at the start's local wall-clock time, up to `until`.
fn occurrences(
    start: DateTime<Utc>,
    repeat: &Repeat,
    zone: Zone,
) -> Result<Vec<DateTime<Utc>>, Error> {
    let bad = |message: String| Error::validation("invalid_repeat", message);
    let local = start.with_timezone(&zone).naive_local();
    let (first_date, time): (NaiveDate, NaiveTime) = (local.date(), local.time());
    let days: Vec<Weekday> = match (repeat.freq, &repeat.by_day) {
        (Frequency::Daily, Some(_)) => {
            return Err(bad("by_day is for weekly repeats".into()));
        }
        (Frequency::Daily, None) => Vec::new(),
        (Frequency::Weekly, None) => vec![first_date.weekday()],
        (Frequency::Weekly, Some(codes)) if codes.is_empty() => {
            return Err(bad("by_day names at least one day".into()));
        }
        (Frequency::Weekly, Some(codes)) => codes
            .iter()
            .map(|c| {
                weekday(c).ok_or_else(|| {
                    bad(format!(
                        "by_day \"{}\" is not one of mo, tu, we, th, fr, sa, su",
                        c.chars().take(8).collect::<String>()
                    ))
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let until = parse_until(&repeat.until)?;
    let last_date = match until {
        Until::Instant(t) => t.with_timezone(&zone).date_naive(),
        Until::Date(d) => d,
    };
    if last_date < first_date || matches!(until, Until::Instant(t) if t < start) {
        return Err(bad("repeat.until is before the start".into()));
    }
    let mut starts = Vec::new();
    let mut date = first_date;
    while date <= last_date {
        if days.is_empty() || days.contains(&date.weekday()) {
            // The first day's slot is the start itself (which may be the second of two
            // repeated local times); the others take the wall-clock time.
            let local = if date == first_date {
                LocalResult::Single(start.with_timezone(&zone))
            } else {
                zone.from_local_datetime(&date.and_time(time))
            };
            let at = match local {
                LocalResult::Single(t) => t,
                LocalResult::Ambiguous(earlier, _) => earlier,
                LocalResult::None => {
                    return Err(Error::validation(
                        "nonexistent_local_time",
                        format!(
                            "{} {} does not exist in {zone} (the clocks go forward): choose another time or end the repeat before",
                            date,
                            time.format("%H:%M")
                        ),
                    ));
                }
            }
            .with_timezone(&Utc);
            if matches!(until, Until::Instant(u) if at > u) {
                break;
            }
            if starts.len() == MAX_SLOTS_PER_REQUEST {
                return Err(Error::validation(
                    "too_many_slots",
                    format!(
                        "one request creates at most {MAX_SLOTS_PER_REQUEST} slots: end the repeat sooner and send the rest in another request"
                    ),
                ));
            }
            starts.push(at);
        }
        date = match date.succ_opt() {
            Some(next) => next,
            None => break,
        };
    }
    if starts.is_empty() {
        return Err(bad("the repeat makes no slot before until".into()));
    }
    Ok(starts)
}

/// The first pair (new, existing) that overlaps, if any.
pub fn first_overlap<'a>(
    new: &'a [SlotTime],
    existing: &'a [SlotTime],
) -> Option<(&'a SlotTime, &'a SlotTime)> {
    new.iter()
        .find_map(|n| existing.iter().find(|e| n.overlaps(e)).map(|e| (n, e)))
}

/// Prefix of every slot id.
const SLOT_PREFIX: &str = "sl_";
/// The UTC start as a slot id carries it (sorts as time does).
const ID_TIME: &str = "%Y%m%dT%H%MZ";

/// A new slot id: `sl_<UTC start, YYYYMMDDTHHMMZ>_<10 random base32 characters>`. Ids sort
/// by start, which lets one key both name a slot and list slots by time.
pub fn slot_id(start: DateTime<Utc>) -> String {
    let random = ulid::Ulid::new().to_string();
    format!(
        "{SLOT_PREFIX}{}_{}",
        start.format(ID_TIME),
        &random[random.len() - 10..]
    )
}

/// The id prefix of slots starting at `at` (for ranges: `sl_<time>` sorts before every id
/// of a slot starting at that minute or later).
pub fn slot_id_floor(at: DateTime<Utc>) -> String {
    format!("{SLOT_PREFIX}{}", at.format(ID_TIME))
}

/// Whether `id` can be a slot id (anything else is unknown, without a read).
pub fn is_slot_id(id: &str) -> bool {
    let Some(rest) = id.strip_prefix(SLOT_PREFIX) else {
        return false;
    };
    let Some((time, random)) = rest.split_once('_') else {
        return false;
    };
    NaiveDateTime::parse_from_str(time, ID_TIME).is_ok()
        && random.len() == 10
        && random.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Whether a slot is free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotStatus {
    /// Nobody holds it.
    Available,
    /// A booking holds it.
    Booked,
}

/// A slot as the API shows it, its times in the tenant's zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Slot {
    /// `sl_…`.
    pub id: String,
    /// RFC 3339 with the tenant's offset at that moment.
    pub start: String,
    /// RFC 3339 with the tenant's offset at that moment.
    pub end: String,
    /// The tenant's IANA zone the times are shown in.
    pub time_zone: String,
    /// Length in minutes.
    pub duration_minutes: i64,
    /// `available` or `booked`.
    pub status: SlotStatus,
    /// The booking holding it.
    pub booking_id: Option<String>,
    /// The agent who created it.
    pub created_by: String,
    /// RFC 3339 UTC.
    pub created_at: String,
}

/// A slot as stored: UTC times and who holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSlot {
    /// `sl_…`.
    pub id: String,
    /// The time.
    pub time: SlotTime,
    /// The booking holding it.
    pub booking_id: Option<String>,
    /// The agent who created it.
    pub created_by: String,
    /// RFC 3339 UTC.
    pub created_at: String,
}

impl StoredSlot {
    /// The API view in `zone`.
    pub fn view(&self, zone: Zone) -> Slot {
        Slot {
            id: self.id.clone(),
            start: zoned(self.time.start, zone),
            end: zoned(self.time.end, zone),
            time_zone: zone.name().to_owned(),
            duration_minutes: self.time.minutes(),
            status: if self.booking_id.is_some() {
                SlotStatus::Booked
            } else {
                SlotStatus::Available
            },
            booking_id: self.booking_id.clone(),
            created_by: self.created_by.clone(),
            created_at: self.created_at.clone(),
        }
    }
}

/// RFC 3339 with the zone's offset at that moment, to the second (`2026-07-01T09:00:00+01:00`).
pub fn zoned(t: DateTime<Utc>, zone: Zone) -> String {
    t.with_timezone(&zone)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

/// The name of a zone as a person reads it, with its offset at `at`: `Hong Kong time
/// (GMT+8)`, `Kolkata time (GMT+5:30)`, `UTC`.
pub fn zone_label(zone: Zone, at: DateTime<Utc>) -> String {
    if zone.is_utc() {
        return "UTC".to_owned();
    }
    let seconds = chrono::Offset::fix(at.with_timezone(&zone).offset()).local_minus_utc();
    let sign = if seconds < 0 { '-' } else { '+' };
    let (hours, minutes) = (seconds.abs() / 3600, seconds.abs() % 3600 / 60);
    let offset = match (hours, minutes) {
        (0, 0) => "GMT".to_owned(),
        (h, 0) => format!("GMT{sign}{h}"),
        (h, m) => format!("GMT{sign}{h}:{m:02}"),
    };
    let city = zone
        .name()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .replace('_', " ");
    format!("{city} time ({offset})")
}

/// A `from` filter: RFC 3339 with an offset, or a date (`YYYY-MM-DD`, its start in
/// `zone`).
///
/// # Errors
/// 400 `invalid_filter`.
pub fn parse_filter(text: &str, zone: Zone, name: &str) -> Result<DateTime<Utc>, Error> {
    parse_bound(text, zone, name, false)
}

/// A `to` filter: RFC 3339 with an offset, or a date, which includes that whole day (the
/// start of the next one in `zone`), as a repeat's `until` does.
///
/// # Errors
/// 400 `invalid_filter`.
pub fn parse_filter_end(text: &str, zone: Zone, name: &str) -> Result<DateTime<Utc>, Error> {
    parse_bound(text, zone, name, true)
}

/// The latest instant the calendar reads or writes: the end of year 9999 UTC (RFC 3339
/// has four-digit years; later ones neither sort nor parse as the stored times do).
pub fn latest() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(9999, 12, 31)
        .and_then(|d| d.and_hms_opt(23, 59, 59))
        .map_or(DateTime::<Utc>::MAX_UTC, |t| t.and_utc())
}

/// The earliest: the start of year 1900 UTC.
pub fn earliest() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(1900, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(DateTime::<Utc>::MIN_UTC, |t| t.and_utc())
}

/// `at + days`, no later than [`latest`].
pub fn days_after(at: DateTime<Utc>, days: i64) -> DateTime<Utc> {
    at.checked_add_signed(Duration::days(days))
        .map_or_else(latest, |t| t.min(latest()))
}

fn parse_bound(text: &str, zone: Zone, name: &str, end: bool) -> Result<DateTime<Utc>, Error> {
    let within = |t: DateTime<Utc>| {
        (earliest()..=latest())
            .contains(&t)
            .then_some(t)
            .ok_or_else(|| {
                Error::bad_request(
                    "invalid_filter",
                    format!("{name} must be between the years 1900 and 9999"),
                )
            })
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return within(t.with_timezone(&Utc));
    }
    if !text.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        return Err(Error::bad_request(
            "invalid_filter",
            format!("{name} must be RFC 3339 with an offset or a date (YYYY-MM-DD)"),
        ));
    }
    let day = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| if end { d.succ_opt() } else { Some(d) })
        .and_then(|d| {
            // Midnight can be skipped (some zones change clocks at 00:00): the day starts
            // at its first existing minute.
            (0..=120).find_map(|m| {
                zone.from_local_datetime(&(d.and_time(NaiveTime::MIN) + Duration::minutes(m)))
                    .earliest()
            })
        })
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| {
            Error::bad_request(
                "invalid_filter",
                format!("{name} must be RFC 3339 with an offset or a date (YYYY-MM-DD)"),
            )
        })?;
    within(day)
}

#[cfg(test)]
#[path = "calendar_tests.rs"]
mod tests;
