//! Retention: which of a site's backups go.
//!
//! Two kinds of policy, both pure functions of the backups and "now":
//!
//! * [`RetentionPolicy`] — the count-and-age rule: among the site's completed
//!   backups, newest first, those beyond `max_backups` and those older than
//!   `max_age_days` go. With `keep_minimum_one` the newest completed backup
//!   always stays, however old. Failed records older than `max_age_days` are
//!   purged. Pending and running backups, and backups being restored, are
//!   never touched.
//! * [`CalendarPolicy`] — keep the last N, the newest backup of each of the
//!   last D days, W ISO weeks, M months and Y years that have a backup, and
//!   everything within a duration. Rules are ORed: a backup kept by any rule
//!   stays. Days, weeks, months and years are calendar periods in the site's
//!   time zone (so a 23-hour or 25-hour day around a DST change is one day).
//!   Only periods that have backups count. The same never-touch rules apply,
//!   and the newest completed backup always stays.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::{BackupStatus, DomainError};

/// The count-and-age policy of the seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPolicy {
    /// Completed backups kept at most (newest first).
    pub max_backups: u32,
    /// Backups older than this many days go.
    pub max_age_days: u32,
    /// The newest completed backup always stays.
    pub keep_minimum_one: bool,
}

impl Default for RetentionPolicy {
    /// 10 backups, 30 days.
    fn default() -> Self {
        RetentionPolicy {
            max_backups: 10,
            max_age_days: 30,
            keep_minimum_one: true,
        }
    }
}

impl RetentionPolicy {
    /// A validated custom policy: `max_backups` ≥ 1, `max_age_days` 1..=3650.
    pub fn new(
        max_backups: u32,
        max_age_days: u32,
        keep_minimum_one: bool,
    ) -> Result<Self, DomainError> {
        if max_backups < 1 {
            return Err(DomainError::new(
                "max_backups",
                "max_backups must be at least 1",
            ));
        }
        if !(1..=3650).contains(&max_age_days) {
            return Err(DomainError::new(
                "max_age_days",
                format!("max_age_days {max_age_days} is out of range: choose from 1 to 3650"),
            ));
        }
        Ok(RetentionPolicy {
            max_backups,
            max_age_days,
            keep_minimum_one,
        })
    }

    /// 5 backups, 7 days.
    pub fn aggressive() -> Self {
        RetentionPolicy {
            max_backups: 5,
            max_age_days: 7,
            keep_minimum_one: true,
        }
    }

    /// 30 backups, 90 days.
    pub fn conservative() -> Self {
        RetentionPolicy {
            max_backups: 30,
            max_age_days: 90,
            keep_minimum_one: true,
        }
    }

    /// 100 backups, 365 days.
    pub fn compliance() -> Self {
        RetentionPolicy {
            max_backups: 100,
            max_age_days: 365,
            keep_minimum_one: true,
        }
    }

    /// A preset by name: `default`, `aggressive`, `conservative`, `compliance`.
    pub fn preset(name: &str) -> Result<Self, DomainError> {
        match name {
            "default" => Ok(Self::default()),
            "aggressive" => Ok(Self::aggressive()),
            "conservative" => Ok(Self::conservative()),
            "compliance" => Ok(Self::compliance()),
            other => Err(DomainError::new(
                "policy",
                format!(
                    "unknown retention policy {other:?}: use default, aggressive, conservative or compliance"
                ),
            )),
        }
    }
}

/// The calendar policy (keep last / daily / weekly / monthly / yearly / within).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CalendarPolicy {
    /// Keep the newest N.
    pub last: u32,
    /// Keep the newest of each of the last D days with backups.
    pub daily: u32,
    /// ... of each of the last W ISO weeks (Monday to Sunday).
    pub weekly: u32,
    /// ... of each of the last M months.
    pub monthly: u32,
    /// ... of each of the last Y years.
    pub yearly: u32,
    /// Keep everything newer than this many hours.
    pub within_hours: u32,
}

impl CalendarPolicy {
    /// Refuse a policy that keeps nothing (it would delete all but one).
    pub fn validate(&self) -> Result<(), DomainError> {
        if *self == CalendarPolicy::default() {
            return Err(DomainError::new(
                "calendar",
                "a calendar policy needs at least one rule: --keep-last, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly or --keep-within",
            ));
        }
        Ok(())
    }
}

/// A retention policy of either kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Retention {
    /// Count and age.
    Simple(RetentionPolicy),
    /// Calendar periods.
    Calendar(CalendarPolicy),
    /// Each backup's own retention: completed backups past their expiry
    /// go (the newest always stays); failed records past it are purged.
    /// What the service applies after every backup.
    Expiry,
}

/// What retention needs to know about one backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionCandidate<Id> {
    /// The backup.
    pub id: Id,
    /// Its status.
    pub status: BackupStatus,
    /// When it was created.
    pub created_at: Timestamp,
    /// When its own retention runs out.
    pub expires_at: Timestamp,
    /// Being restored right now (never touched).
    pub busy: bool,
}

/// The outcome: what goes and what stays, with reasons (for `--dry-run`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetentionPlan<Id> {
    /// Backups to delete, with why.
    pub delete: Vec<(Id, String)>,
    /// Backups that stay, with why.
    pub keep: Vec<(Id, String)>,
}

impl Retention {
    /// Decide, at `now`, in the site's time zone `tz` (calendar periods).
    pub fn plan<Id: Clone>(
        &self,
        backups: &[RetentionCandidate<Id>],
        now: Timestamp,
        tz: &TimeZone,
    ) -> RetentionPlan<Id> {
        let mut plan = RetentionPlan {
            delete: Vec::new(),
            keep: Vec::new(),
        };
        let mut completed: Vec<&RetentionCandidate<Id>> = Vec::new();
        for b in backups {
            match b.status {
                BackupStatus::Pending | BackupStatus::Running => {
                    plan.keep.push((b.id.clone(), "in progress".into()))
                }
                BackupStatus::Failed => {
                    let old = match self {
                        Retention::Simple(p) => older_than_days(b.created_at, now, p.max_age_days),
                        Retention::Calendar(_) => false,
                        Retention::Expiry => now >= b.expires_at,
                    };
                    if old && !b.busy {
                        plan.delete
                            .push((b.id.clone(), "failed, older than max age".into()));
                    } else {
                        plan.keep
                            .push((b.id.clone(), "failed record, kept until max age".into()));
                    }
                }
                BackupStatus::Completed => completed.push(b),
            }
        }
        completed.sort_by_key(|b| std::cmp::Reverse(b.created_at));
        let reasons: Vec<Option<String>> = match self {
            Retention::Simple(p) => simple(p, &completed, now),
            Retention::Calendar(c) => calendar(c, &completed, now, tz),
            Retention::Expiry => completed
                .iter()
                .map(|b| (now < b.expires_at).then(|| format!("kept until {}", b.expires_at)))
                .collect(),
        };
        for (i, (b, reason)) in completed.iter().zip(reasons).enumerate() {
            let reason = match reason {
                Some(r) => Some(r),
                None if b.busy => Some("being restored".into()),
                None if i == 0 && self.keeps_minimum_one() => {
                    Some("newest completed backup".into())
                }
                None => None,
            };
            match reason {
                Some(r) => plan.keep.push((b.id.clone(), r)),
                None => plan
                    .delete
                    .push((b.id.clone(), self.deletion_reason(i, b.created_at, now))),
            }
        }
        plan
    }

    fn keeps_minimum_one(&self) -> bool {
        match self {
            Retention::Simple(p) => p.keep_minimum_one,
            Retention::Calendar(_) | Retention::Expiry => true,
        }
    }

    fn deletion_reason(&self, rank: usize, created: Timestamp, now: Timestamp) -> String {
        match self {
            Retention::Simple(p) if older_than_days(created, now, p.max_age_days) => {
                format!("older than {} days", p.max_age_days)
            }
            Retention::Simple(p) => format!("beyond the newest {}", p.max_backups),
            Retention::Calendar(_) => format!("no rule keeps it (number {} by age)", rank + 1),
            Retention::Expiry => "past its retention".into(),
        }
    }
}

fn older_than_days(created: Timestamp, now: Timestamp, days: u32) -> bool {
    now.duration_since(created) > SignedDuration::from_hours(24 * i64::from(days))
}

fn simple<Id>(
    p: &RetentionPolicy,
    completed: &[&RetentionCandidate<Id>],
    now: Timestamp,
) -> Vec<Option<String>> {
    completed
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let within_count = (i as u32) < p.max_backups;
            let young = !older_than_days(b.created_at, now, p.max_age_days);
            (within_count && young).then(|| {
                format!(
                    "among the newest {}, within {} days",
                    p.max_backups, p.max_age_days
                )
            })
        })
        .collect()
}

fn calendar<Id>(
    c: &CalendarPolicy,
    completed: &[&RetentionCandidate<Id>],
    now: Timestamp,
    tz: &TimeZone,
) -> Vec<Option<String>> {
    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); completed.len()];
    for r in reasons.iter_mut().take(c.last as usize) {
        r.push(format!("last {}", c.last));
    }
    type Bucket = fn(&jiff::ZonedDateTime) -> (i32, i32, i32);
    let rules: [(&str, u32, Bucket); 4] = [
        ("daily", c.daily, |z| {
            (
                i32::from(z.year()),
                i32::from(z.month()),
                i32::from(z.day()),
            )
        }),
        ("weekly", c.weekly, |z| {
            let w = z.date().iso_week_date();
            (i32::from(w.year()), i32::from(w.week()), 0)
        }),
        ("monthly", c.monthly, |z| {
            (i32::from(z.year()), i32::from(z.month()), 0)
        }),
        ("yearly", c.yearly, |z| (i32::from(z.year()), 0, 0)),
    ];
    for (name, limit, bucket) in rules {
        let mut kept = 0;
        let mut last_key = None;
        for (i, b) in completed.iter().enumerate() {
            if kept >= limit {
                break;
            }
            let key = bucket(&b.created_at.to_zoned_datetime(tz.clone()));
            if last_key != Some(key) {
                last_key = Some(key);
                kept += 1;
                reasons[i].push(format!("{name} {}", describe(name, key)));
            }
        }
    }
    if c.within_hours > 0 {
        let limit = SignedDuration::from_hours(i64::from(c.within_hours));
        for (i, b) in completed.iter().enumerate() {
            if now.duration_since(b.created_at) <= limit {
                reasons[i].push(format!("within {} hours", c.within_hours));
            }
        }
    }
    reasons
        .into_iter()
        .map(|r| (!r.is_empty()).then(|| r.join(", ")))
        .collect()
}

fn describe(rule: &str, (a, b, c): (i32, i32, i32)) -> String {
    match rule {
        "daily" => format!("{a:04}-{b:02}-{c:02}"),
        "weekly" => format!("{a:04}-W{b:02}"),
        "monthly" => format!("{a:04}-{b:02}"),
        _ => format!("{a:04}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn completed(id: u32, at: &str) -> RetentionCandidate<u32> {
        RetentionCandidate {
            id,
            status: BackupStatus::Completed,
            created_at: ts(at),
            expires_at: ts(at) + SignedDuration::from_hours(24 * 365),
            busy: false,
        }
    }

    fn daily_series(n: u32, now: Timestamp) -> Vec<RetentionCandidate<u32>> {
        (0..n)
            .map(|i| RetentionCandidate {
                id: i,
                status: BackupStatus::Completed,
                created_at: now - SignedDuration::from_hours(24 * i64::from(i) + 1),
                expires_at: now + SignedDuration::from_hours(24 * 365),
                busy: false,
            })
            .collect()
    }

    fn deleted<Id: Clone + Ord>(plan: &RetentionPlan<Id>) -> Vec<Id> {
        let mut d: Vec<Id> = plan.delete.iter().map(|(id, _)| id.clone()).collect();
        d.sort();
        d
    }

    #[test]
    fn presets_have_the_documented_values() {
        let d = RetentionPolicy::default();
        assert_eq!(
            (d.max_backups, d.max_age_days, d.keep_minimum_one),
            (10, 30, true)
        );
        assert_eq!(
            (
                RetentionPolicy::aggressive().max_backups,
                RetentionPolicy::aggressive().max_age_days
            ),
            (5, 7)
        );
        assert_eq!(
            (
                RetentionPolicy::conservative().max_backups,
                RetentionPolicy::conservative().max_age_days
            ),
            (30, 90)
        );
        assert_eq!(
            (
                RetentionPolicy::compliance().max_backups,
                RetentionPolicy::compliance().max_age_days
            ),
            (100, 365)
        );
        assert!(RetentionPolicy::new(0, 30, true).is_err());
        assert!(RetentionPolicy::new(5, 0, true).is_err());
        assert!(
            RetentionPolicy::new(5, 3651, true)
                .unwrap_err()
                .to_string()
                .contains("1 to 3650")
        );
        assert!(RetentionPolicy::preset("forever").is_err());
    }

    #[test]
    fn every_preset_on_forty_daily_backups() {
        let now = ts("2026-11-26T12:00:00Z");
        let backups = daily_series(40, now);
        let utc = TimeZone::UTC;
        for (policy, kept) in [
            (RetentionPolicy::default(), 10),
            (RetentionPolicy::aggressive(), 5),
            (RetentionPolicy::conservative(), 30),
            (RetentionPolicy::compliance(), 40),
        ] {
            let plan = Retention::Simple(policy).plan(&backups, now, &utc);
            assert_eq!(plan.keep.len(), kept, "{policy:?}");
            assert_eq!(plan.delete.len(), 40 - kept, "{policy:?}");
            // The newest ones stay.
            assert!(plan.keep.iter().all(|(id, _)| (*id as usize) < kept));
        }
        // Age limit bites before the count limit.
        let plan = Retention::Simple(RetentionPolicy::new(100, 7, true).unwrap())
            .plan(&backups, now, &utc);
        assert_eq!(plan.keep.len(), 7);
    }

    #[test]
    fn keep_minimum_one_keeps_the_newest_however_old() {
        let now = ts("2026-11-26T12:00:00Z");
        let old = vec![
            completed(1, "2025-01-01T00:00:00Z"),
            completed(2, "2025-02-01T00:00:00Z"),
        ];
        let plan = Retention::Simple(RetentionPolicy::aggressive()).plan(&old, now, &TimeZone::UTC);
        assert_eq!(deleted(&plan), vec![1]);
        let without = RetentionPolicy::new(5, 7, false).unwrap();
        let plan = Retention::Simple(without).plan(&old, now, &TimeZone::UTC);
        assert_eq!(deleted(&plan), vec![1, 2]);
    }

    #[test]
    fn failed_running_and_busy_backups() {
        let now = ts("2026-11-26T12:00:00Z");
        let list = vec![
            RetentionCandidate {
                id: 1,
                status: BackupStatus::Failed,
                created_at: ts("2026-10-01T00:00:00Z"),
                expires_at: ts("2026-10-01T00:00:00Z") + SignedDuration::from_hours(24 * 30),
                busy: false,
            },
            RetentionCandidate {
                id: 2,
                status: BackupStatus::Failed,
                created_at: ts("2026-11-25T00:00:00Z"),
                expires_at: ts("2026-11-25T00:00:00Z") + SignedDuration::from_hours(24 * 30),
                busy: false,
            },
            RetentionCandidate {
                id: 3,
                status: BackupStatus::Running,
                created_at: ts("2025-01-01T00:00:00Z"),
                expires_at: ts("2025-01-01T00:00:00Z") + SignedDuration::from_hours(24 * 30),
                busy: false,
            },
            RetentionCandidate {
                id: 4,
                status: BackupStatus::Pending,
                created_at: ts("2025-01-01T00:00:00Z"),
                expires_at: ts("2025-01-01T00:00:00Z") + SignedDuration::from_hours(24 * 30),
                busy: false,
            },
            RetentionCandidate {
                id: 5,
                status: BackupStatus::Completed,
                created_at: ts("2025-06-01T00:00:00Z"),
                expires_at: ts("2025-06-01T00:00:00Z") + SignedDuration::from_hours(24 * 30),
                busy: true,
            },
            RetentionCandidate {
                id: 6,
                status: BackupStatus::Completed,
                created_at: ts("2026-11-26T00:00:00Z"),
                expires_at: ts("2026-11-26T00:00:00Z") + SignedDuration::from_hours(24 * 30),
                busy: false,
            },
            RetentionCandidate {
                id: 7,
                status: BackupStatus::Completed,
                created_at: ts("2025-05-01T00:00:00Z"),
                expires_at: ts("2025-05-01T00:00:00Z") + SignedDuration::from_hours(24 * 30),
                busy: false,
            },
        ];
        let plan = Retention::Simple(RetentionPolicy::default()).plan(&list, now, &TimeZone::UTC);
        assert_eq!(deleted(&plan), vec![1, 7], "{plan:?}");
    }

    fn calendar_kept(policy: CalendarPolicy, at: &[&str], now: &str, tz: &str) -> Vec<u32> {
        let list: Vec<RetentionCandidate<u32>> = at
            .iter()
            .enumerate()
            .map(|(i, t)| completed(i as u32, t))
            .collect();
        let plan = Retention::Calendar(policy).plan(&list, ts(now), &TimeZone::get(tz).unwrap());
        let mut kept: Vec<u32> = plan.keep.iter().map(|(id, _)| *id).collect();
        kept.sort();
        kept
    }

    #[test]
    fn calendar_daily_keeps_the_newest_of_each_day_in_the_site_zone() {
        let daily = CalendarPolicy {
            daily: 3,
            ..Default::default()
        };
        // Two backups on each of four UTC days.
        let at = [
            "2026-11-22T08:00:00Z",
            "2026-11-22T20:00:00Z",
            "2026-11-23T08:00:00Z",
            "2026-11-23T20:00:00Z",
            "2026-11-24T08:00:00Z",
            "2026-11-24T20:00:00Z",
            "2026-11-25T08:00:00Z",
            "2026-11-25T20:00:00Z",
        ];
        assert_eq!(
            calendar_kept(daily, &at, "2026-11-26T00:00:00Z", "UTC"),
            vec![3, 5, 7]
        );
        // In Tokyo (UTC+9) 20:00Z is already the next day: the buckets shift.
        assert_eq!(
            calendar_kept(daily, &at, "2026-11-26T00:00:00Z", "Asia/Tokyo"),
            vec![4, 6, 7]
        );
    }

    #[test]
    fn calendar_weekly_uses_iso_weeks_across_new_year() {
        let weekly = CalendarPolicy {
            weekly: 2,
            ..Default::default()
        };
        // 2026-12-28 (Mon) .. 2027-01-03 (Sun) is ISO week 2026-W53; 2027-01-04 starts 2027-W01.
        let at = [
            "2026-12-27T12:00:00Z",
            "2026-12-28T12:00:00Z",
            "2026-12-31T12:00:00Z",
            "2027-01-03T12:00:00Z",
            "2027-01-04T12:00:00Z",
        ];
        // Newest of W01 (id 4) and of W53 (id 3, Jan 3rd); Dec 27 (W52) goes.
        assert_eq!(
            calendar_kept(weekly, &at, "2027-01-05T00:00:00Z", "UTC"),
            vec![3, 4]
        );
        // 2025-12-29 is Monday of ISO week 2026-W01: Dec 31 2025 and Jan 1 2026 share a week.
        let at = [
            "2025-12-28T12:00:00Z",
            "2025-12-31T12:00:00Z",
            "2026-01-01T12:00:00Z",
        ];
        assert_eq!(
            calendar_kept(weekly, &at, "2026-01-02T00:00:00Z", "UTC"),
            vec![0, 2]
        );
    }

    #[test]
    fn calendar_monthly_and_yearly_at_month_and_year_ends() {
        let monthly = CalendarPolicy {
            monthly: 2,
            ..Default::default()
        };
        let at = [
            "2026-01-31T23:00:00Z",
            "2026-02-01T01:00:00Z",
            "2026-02-28T23:59:59Z",
            "2026-03-01T00:00:00Z",
        ];
        assert_eq!(
            calendar_kept(monthly, &at, "2026-03-02T00:00:00Z", "UTC"),
            vec![2, 3]
        );
        // In New York (UTC-5) 2026-03-01T00:00Z is still February and
        // 2026-02-01T01:00Z still January: the newest of each month shift.
        assert_eq!(
            calendar_kept(monthly, &at, "2026-03-02T00:00:00Z", "America/New_York"),
            vec![1, 3]
        );
        let yearly = CalendarPolicy {
            yearly: 2,
            ..Default::default()
        };
        let at = [
            "2024-12-31T23:30:00Z",
            "2025-01-01T00:30:00Z",
            "2025-12-31T23:59:00Z",
            "2026-01-01T00:00:01Z",
        ];
        assert_eq!(
            calendar_kept(yearly, &at, "2026-06-01T00:00:00Z", "UTC"),
            vec![2, 3]
        );
    }

    #[test]
    fn calendar_days_follow_dst_changes() {
        let daily = CalendarPolicy {
            daily: 10,
            ..Default::default()
        };
        // Europe/Berlin springs forward on 2026-03-29 (UTC+1 to UTC+2, a
        // 23-hour day). Local times: 23:30 on the 28th; 00:30 and 23:30 on the
        // 29th (22 hours apart, one day); 00:30 on the 30th.
        let spring = [
            "2026-03-28T22:30:00Z",
            "2026-03-28T23:30:00Z",
            "2026-03-29T21:30:00Z",
            "2026-03-29T22:30:00Z",
        ];
        assert_eq!(
            calendar_kept(daily, &spring, "2026-03-31T00:00:00Z", "Europe/Berlin"),
            vec![0, 2, 3]
        );
        // It falls back on 2026-10-25 (a 25-hour day): 00:30 and 23:30 local
        // on the 25th are 24 hours apart and still one day; then 00:30 on the 26th.
        let autumn = [
            "2026-10-24T22:30:00Z",
            "2026-10-25T22:30:00Z",
            "2026-10-25T23:30:00Z",
        ];
        assert_eq!(
            calendar_kept(daily, &autumn, "2026-10-27T00:00:00Z", "Europe/Berlin"),
            vec![1, 2]
        );
    }

    #[test]
    fn expiry_uses_each_backups_own_retention() {
        let now = ts("2026-11-26T12:00:00Z");
        let mk = |id, created: &str, days: i64| RetentionCandidate {
            id,
            status: BackupStatus::Completed,
            created_at: ts(created),
            expires_at: ts(created) + SignedDuration::from_hours(24 * days),
            busy: false,
        };
        let list = vec![
            mk(1, "2026-11-01T00:00:00Z", 7),
            mk(2, "2026-11-01T00:00:00Z", 90),
            mk(3, "2026-11-20T00:00:00Z", 1),
        ];
        let plan = Retention::Expiry.plan(&list, now, &TimeZone::UTC);
        assert_eq!(
            deleted(&plan),
            vec![1],
            "3 is expired but the newest: it stays"
        );
    }

    #[test]
    fn calendar_rules_are_ored_and_within_keeps_recent() {
        let now = ts("2026-11-26T12:00:00Z");
        let backups = daily_series(60, now);
        let policy = CalendarPolicy {
            last: 2,
            daily: 5,
            weekly: 4,
            monthly: 2,
            within_hours: 24 * 10,
            ..Default::default()
        };
        let plan = Retention::Calendar(policy).plan(&backups, now, &TimeZone::UTC);
        let kept: std::collections::BTreeSet<u32> = plan.keep.iter().map(|(id, _)| *id).collect();
        // within 10 days: 0..=9 (covers last and daily); weekly and monthly add older ones.
        assert!((0..10).all(|i| kept.contains(&i)), "{kept:?}");
        assert!(kept.len() > 10 && kept.len() < 16, "{kept:?}");
        assert!(!kept.contains(&59));
        let reasons = plan.keep.iter().find(|(id, _)| *id == 0).unwrap();
        assert!(
            reasons.1.contains("last 2") && reasons.1.contains("daily"),
            "{reasons:?}"
        );
        assert!(CalendarPolicy::default().validate().is_err());
    }
}
