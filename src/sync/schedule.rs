//! A source's schedule: a cron expression (the standard 5-field crontab form, or 6 fields with
//! seconds first) in UTC or a named time zone, parsed once at start by `croner`, which keeps
//! crontab semantics (Sunday is 0, day-of-month and day-of-week combine with OR).

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;

/// When a source runs by itself; `None` cron: only on demand.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Option<Cron>,
    tz: Tz,
}

impl Schedule {
    /// Parses a schedule; errors name the key (`schedule` or `timezone`).
    pub fn parse(
        expr: Option<&str>,
        timezone: Option<&str>,
    ) -> Result<Schedule, (&'static str, String)> {
        let tz = match timezone {
            None => Tz::UTC,
            Some(name) => Tz::from_str(name).map_err(|_| {
                (
                    "timezone",
                    format!("unknown time zone `{name}` (use an IANA name such as Europe/Paris)"),
                )
            })?,
        };
        let cron = match expr {
            None => None,
            Some(e) => {
                let fields = e.split_whitespace().count();
                if !(fields == 5 || fields == 6 || e.trim_start().starts_with('@')) {
                    return Err((
                        "schedule",
                        format!(
                            "`{e}` has {fields} fields; use 5 (minute hour day month weekday) or 6 (seconds first)"
                        ),
                    ));
                }
                let c = Cron::from_str(e).map_err(|err| {
                    ("schedule", format!("`{e}` is not a cron expression: {err}"))
                })?;
                Some(c)
            }
        };
        Ok(Schedule { cron, tz })
    }

    /// The first fire time strictly after `after`, in UTC.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let cron = self.cron.as_ref()?;
        let local = after.with_timezone(&self.tz);
        cron.find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    pub fn is_scheduled(&self) -> bool {
        self.cron.is_some()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn five_fields_are_crontab_and_six_add_seconds() {
        // 2026-11-27 is a Friday; crontab's 5 is Friday (not Quartz's Thursday).
        let s = Schedule::parse(Some("30 9 * * 5"), None).unwrap();
        assert_eq!(
            s.next_after(at("2026-11-24T00:00:00Z")),
            Some(at("2026-11-27T09:30:00Z"))
        );
        let s = Schedule::parse(Some("*/10 * * * * *"), None).unwrap();
        assert_eq!(
            s.next_after(at("2026-11-24T00:00:03Z")),
            Some(at("2026-11-24T00:00:10Z"))
        );
        let s = Schedule::parse(Some("0 0 * * SUN"), None).unwrap();
        assert_eq!(
            s.next_after(at("2026-11-24T00:00:00Z")),
            Some(at("2026-11-29T00:00:00Z"))
        );
    }

    #[test]
    fn time_zones_shift_the_fire_time() {
        let s = Schedule::parse(Some("0 9 * * *"), Some("America/New_York")).unwrap();
        let next = s.next_after(at("2026-11-24T00:00:00Z")).unwrap();
        assert_eq!(next, Utc.with_ymd_and_hms(2026, 11, 24, 14, 0, 0).unwrap());
    }

    #[test]
    fn bad_schedules_name_the_key() {
        assert_eq!(
            Schedule::parse(Some("* * *"), None).unwrap_err().0,
            "schedule"
        );
        assert_eq!(
            Schedule::parse(Some("61 * * * *"), None).unwrap_err().0,
            "schedule"
        );
        assert_eq!(
            Schedule::parse(Some("* * * * *"), Some("Mars/Olympus"))
                .unwrap_err()
                .0,
            "timezone"
        );
        assert!(!Schedule::parse(None, None).unwrap().is_scheduled());
    }
}
