//! Schedules: when a site is backed up automatically.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{BackupConfiguration, DomainError, SiteId};

/// How often a scheduled backup runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Frequency {
    /// Once a day.
    Daily,
    /// Once a week.
    Weekly,
    /// Once a month.
    Monthly,
    /// A cron expression (`0 3 * * *`), validated when parsed.
    Cron(String),
}

impl Frequency {
    /// The nominal period in hours (cron: the gap between its next two runs
    /// after `from`), for health checks.
    pub fn period_hours(&self, from: Timestamp) -> Option<i64> {
        match self {
            Frequency::Daily => Some(24),
            Frequency::Weekly => Some(24 * 7),
            Frequency::Monthly => Some(24 * 31),
            Frequency::Cron(expr) => {
                super::cron::period_hours_parsed(&super::cron::parse(expr).ok()?, expr, from)
            }
        }
    }
}

impl fmt::Display for Frequency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Frequency::Daily => f.write_str("daily"),
            Frequency::Weekly => f.write_str("weekly"),
            Frequency::Monthly => f.write_str("monthly"),
            Frequency::Cron(expr) => f.write_str(expr),
        }
    }
}

impl FromStr for Frequency {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, DomainError> {
        match s.trim() {
            "daily" => Ok(Frequency::Daily),
            "weekly" => Ok(Frequency::Weekly),
            "monthly" => Ok(Frequency::Monthly),
            expr => super::cron::parse(expr).map(|_| Frequency::Cron(expr.to_string())),
        }
    }
}

/// A stored schedule: one per site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// The site.
    pub site_id: SiteId,
    /// How often.
    pub frequency: Frequency,
    /// What each scheduled backup is.
    pub configuration: BackupConfiguration,
    /// When it was set.
    pub created_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_cron() {
        assert_eq!("daily".parse::<Frequency>().unwrap(), Frequency::Daily);
        assert_eq!(
            "0 3 * * *".parse::<Frequency>().unwrap(),
            Frequency::Cron("0 3 * * *".into())
        );
        let err = "every now and then"
            .parse::<Frequency>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("cron"), "{err}");
        let now: Timestamp = "2026-11-26T10:00:00Z".parse().unwrap();
        assert_eq!(
            "0 */6 * * *"
                .parse::<Frequency>()
                .unwrap()
                .period_hours(now),
            Some(6)
        );
        assert_eq!(Frequency::Weekly.period_hours(now), Some(168));
    }
}
