//! When a carrier runs its action (PROTOCOL.md §8): the schedule facts of a scheduled
//! task's `TaskScheduler`, and of alarms (every time the alarm fires: unbounded).
//!
//! Anything the gateway cannot read (an unknown scheduler type, a time it cannot parse)
//! counts as unbounded, so a policy asking "does the ticket cover every run" says no.

use serde::Serialize;

use super::effect_tree::Node;

/// When a carried action runs (`context.schedule`, schema `Schedule`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Schedule {
    /// The scheduler type (`OnceTaskScheduler`, `DailyTaskScheduler`, ...), `alarm`, or `unknown`.
    pub scheduler: String,
    /// Whether the action runs more than once.
    pub recurring: bool,
    /// Whether runs have no known end (alarms, recurring schedules without `expireTime`).
    pub unbounded: bool,
    /// First run, unix seconds (when known).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_run: Option<i64>,
    /// Last possible run, unix seconds (absent when unbounded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_run: Option<i64>,
}

const RECURRING: [&str; 6] = [
    "HourlyTaskScheduler",
    "DailyTaskScheduler",
    "WeeklyTaskScheduler",
    "MonthlyTaskScheduler",
    "MonthlyByDayTaskScheduler",
    "MonthlyByWeekdayTaskScheduler",
];

impl Schedule {
    /// An alarm: it runs its action at every trigger, with no end.
    pub fn alarm() -> Self {
        Self::unbounded("alarm", true)
    }

    fn unbounded(scheduler: &str, recurring: bool) -> Self {
        Self {
            scheduler: scheduler.to_owned(),
            recurring,
            unbounded: true,
            first_run: None,
            last_run: None,
        }
    }

    /// The schedule of a `ScheduledTaskSpec` (its `scheduler` field), `now` in unix seconds.
    ///
    /// A `ReconfigureScheduledTask` spec without a scheduler keeps the stored one, which the
    /// gateway does not know: unbounded.
    pub(crate) fn from_spec(spec: Option<&Node>, now: i64) -> Self {
        let Some(scheduler) = spec.and_then(|s| s.all("scheduler").next()) else {
            return Self::unbounded("unknown", true);
        };
        let time = |name: &str| -> Result<Option<i64>, ()> {
            match scheduler.all(name).next() {
                None => Ok(None),
                Some(node) => node.text().and_then(parse_xsd_datetime).map(Some).ok_or(()),
            }
        };
        let (Ok(active), Ok(expire)) = (time("activeTime"), time("expireTime")) else {
            return Self::unbounded("unknown", true);
        };
        match scheduler.type_name() {
            Some("OnceTaskScheduler") => match time("runAt") {
                Ok(run_at) => {
                    let at = run_at.or(active).unwrap_or(now);
                    Self {
                        scheduler: "OnceTaskScheduler".into(),
                        recurring: false,
                        unbounded: false,
                        first_run: Some(at),
                        last_run: Some(at),
                    }
                }
                Err(()) => Self::unbounded("unknown", true),
            },
            Some(name) if RECURRING.contains(&name) => Self {
                scheduler: name.to_owned(),
                recurring: true,
                unbounded: expire.is_none(),
                first_run: Some(active.unwrap_or(now)),
                last_run: expire,
            },
            Some("AfterStartupTaskScheduler") => Self::unbounded("AfterStartupTaskScheduler", true),
            _ => Self::unbounded("unknown", true),
        }
    }
}

/// Parses an `xsd:dateTime` with a zone (`2026-12-01T02:00:00Z`, `...+01:00`, optional
/// fraction) into unix seconds; a time without a zone is ambiguous and refused (`None`).
pub fn parse_xsd_datetime(text: &str) -> Option<i64> {
    let (date, rest) = text.split_once('T')?;
    let mut date_parts = date.splitn(3, '-');
    let year = digits(date_parts.next()?, 4)?;
    let month = digits(date_parts.next()?, 2)?;
    let day = digits(date_parts.next()?, 2)?;
    let (clock, offset) = if let Some(clock) = rest.strip_suffix('Z') {
        (clock, 0)
    } else {
        let at = rest.rfind(['+', '-'])?;
        let (clock, zone) = rest.split_at(at);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (h, m) = zone.get(1..)?.split_once(':')?;
        let (h, m) = (digits(h, 2)?, digits(m, 2)?);
        if h > 14 || m > 59 {
            return None;
        }
        (clock, sign * (h * 3600 + m * 60))
    };
    let clock = match clock.split_once('.') {
        Some((whole, fraction))
            if !fraction.is_empty() && fraction.bytes().all(|b| b.is_ascii_digit()) =>
        {
            whole
        }
        Some(_) => return None,
        None => clock,
    };
    let mut clock_parts = clock.splitn(3, ':');
    let hour = digits(clock_parts.next()?, 2)?;
    let minute = digits(clock_parts.next()?, 2)?;
    let second = digits(clock_parts.next()?, 2)?;
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let max_day = *month_days.get(usize::try_from(month.checked_sub(1)?).ok()?)?;
    if day == 0 || day > max_day || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

fn digits(text: &str, len: usize) -> Option<i64> {
    (text.len() == len && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn spec(json: &str) -> Node {
        let Ok(Value::Object(map)) = serde_json::from_str::<Value>(json) else {
            panic!("object")
        };
        Node::from_json_params(&map, "spec").expect("tree")
    }

    #[test]
    fn datetimes() {
        assert_eq!(parse_xsd_datetime("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_xsd_datetime("2026-12-01T02:00:00Z"),
            Some(1_796_090_400)
        );
        assert_eq!(
            parse_xsd_datetime("2026-12-01T03:00:00.250+01:00"),
            Some(1_796_090_400)
        );
        assert_eq!(
            parse_xsd_datetime("2024-02-29T00:00:00Z"),
            Some(1_709_164_800)
        );
        for bad in [
            "2026-12-01T02:00:00",
            "2026-12-01 02:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-12-01T24:00:00Z",
            "26-12-01T02:00:00Z",
            "2026-12-01T02:00:00.Z",
            "",
        ] {
            assert_eq!(parse_xsd_datetime(bad), None, "{bad}");
        }
    }

    #[test]
    fn schedulers() {
        let now = 1_000;
        let once = Schedule::from_spec(
            Some(&spec(
                r#"{"scheduler":{"_typeName":"OnceTaskScheduler","runAt":"1970-01-01T01:00:00Z"}}"#,
            )),
            now,
        );
        assert!(!once.recurring && !once.unbounded);
        assert_eq!((once.first_run, once.last_run), (Some(3600), Some(3600)));
        let nightly = Schedule::from_spec(
            Some(&spec(
                r#"{"scheduler":{"_typeName":"DailyTaskScheduler","hour":2,"minute":0,"interval":1}}"#,
            )),
            now,
        );
        assert!(nightly.recurring && nightly.unbounded);
        assert_eq!(nightly.last_run, None);
        let bounded = Schedule::from_spec(
            Some(&spec(
                r#"{"scheduler":{"_typeName":"HourlyTaskScheduler","minute":0,"interval":1,"expireTime":"1970-01-02T00:00:00Z"}}"#,
            )),
            now,
        );
        assert!(bounded.recurring && !bounded.unbounded);
        assert_eq!(bounded.last_run, Some(86_400));
        for unknown in [
            r#"{"scheduler":{"_typeName":"FancyScheduler"}}"#,
            r#"{"scheduler":{"_typeName":"OnceTaskScheduler","runAt":"tomorrow"}}"#,
            r#"{"name":"x"}"#,
        ] {
            assert!(
                Schedule::from_spec(Some(&spec(unknown)), now).unbounded,
                "{unknown}"
            );
        }
        assert!(Schedule::alarm().unbounded);
    }
}
