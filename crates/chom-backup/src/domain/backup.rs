//! `Backup`: one backup of one site, as recorded in the catalog.

use std::fmt;
use std::str::FromStr;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::{BackupConfiguration, BackupType, DomainError, SiteId};

/// A backup's id: a ULID (sortable by creation time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BackupId(pub ulid::Ulid);

impl BackupId {
    /// A new id for a backup created at `at`.
    pub fn new(at: Timestamp) -> Self {
        let ms = at.as_millisecond().max(0) as u64;
        BackupId(ulid::Ulid::from_parts(ms, random_u128()))
    }
}

/// 128 random bits (the random part of new ids).
pub fn random_u128() -> u128 {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("system random number generator");
    u128::from_le_bytes(bytes)
}

impl fmt::Display for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for BackupId {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, DomainError> {
        ulid::Ulid::from_string(s).map(BackupId).map_err(|_| {
            DomainError::new(
                "backup",
                format!("{s:?} is not a backup id (26 characters, like 01JD3...)"),
            )
        })
    }
}

/// Where a backup is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupStatus {
    /// Recorded, not started.
    Pending,
    /// Being made.
    Running,
    /// Done; its snapshot exists.
    Completed,
    /// Gave up; see `error`. No snapshot.
    Failed,
}

impl BackupStatus {
    /// The text form.
    pub fn as_str(self) -> &'static str {
        match self {
            BackupStatus::Pending => "pending",
            BackupStatus::Running => "running",
            BackupStatus::Completed => "completed",
            BackupStatus::Failed => "failed",
        }
    }
}

impl FromStr for BackupStatus {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, DomainError> {
        match s {
            "pending" => Ok(BackupStatus::Pending),
            "running" => Ok(BackupStatus::Running),
            "completed" => Ok(BackupStatus::Completed),
            "failed" => Ok(BackupStatus::Failed),
            other => Err(DomainError::new(
                "status",
                format!("unknown backup status {other:?}"),
            )),
        }
    }
}

/// What started a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// An operator, from the command line.
    Manual,
    /// A schedule.
    Schedule,
    /// The HTTP API.
    Api,
    /// Taken automatically before a restore overwrote the site.
    Safety,
}

impl Trigger {
    /// The text form.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Schedule => "schedule",
            Trigger::Api => "api",
            Trigger::Safety => "safety",
        }
    }
}

impl FromStr for Trigger {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, DomainError> {
        match s {
            "manual" => Ok(Trigger::Manual),
            "schedule" => Ok(Trigger::Schedule),
            "api" => Ok(Trigger::Api),
            "safety" => Ok(Trigger::Safety),
            other => Err(DomainError::new(
                "trigger",
                format!("unknown trigger {other:?}"),
            )),
        }
    }
}

/// One backup of one site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backup {
    /// Its id.
    pub id: BackupId,
    /// The site backed up.
    pub site_id: SiteId,
    /// How it was made and how long it is kept.
    pub configuration: BackupConfiguration,
    /// Where it is.
    pub status: BackupStatus,
    /// What started it.
    pub trigger: Trigger,
    /// The repository snapshot holding it (once completed).
    pub snapshot_id: Option<String>,
    /// Bytes of files and dumps in it.
    pub logical_bytes: u64,
    /// Bytes this backup added to the repository (after deduplication and compression).
    pub added_bytes: u64,
    /// Files in it (dumps included).
    pub file_count: u64,
    /// Content digest: the snapshot's root tree id.
    pub checksum: Option<String>,
    /// Whether it was written to an encrypted repository.
    pub encrypted: bool,
    /// When it was requested.
    pub created_at: Timestamp,
    /// When work began.
    pub started_at: Option<Timestamp>,
    /// When it completed or failed.
    pub completed_at: Option<Timestamp>,
    /// `created_at` plus the retention days.
    pub expires_at: Timestamp,
    /// Why it failed.
    pub error: Option<String>,
}

impl Backup {
    /// A new pending backup.
    pub fn new(
        site_id: SiteId,
        configuration: BackupConfiguration,
        trigger: Trigger,
        now: Timestamp,
    ) -> Self {
        Backup {
            id: BackupId::new(now),
            site_id,
            configuration,
            status: BackupStatus::Pending,
            trigger,
            snapshot_id: None,
            logical_bytes: 0,
            added_bytes: 0,
            file_count: 0,
            checksum: None,
            encrypted: false,
            created_at: now,
            started_at: None,
            completed_at: None,
            expires_at: now
                + SignedDuration::from_hours(24 * i64::from(configuration.retention_days())),
            error: None,
        }
    }

    /// Its type.
    pub fn backup_type(&self) -> BackupType {
        self.configuration.backup_type()
    }

    /// Whether `now` is past its expiry.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        now >= self.expires_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_backups_expire_after_their_retention() {
        let now: Timestamp = "2026-11-26T10:00:00Z".parse().unwrap();
        let b = Backup::new(
            SiteId::new(now),
            BackupConfiguration::full(30).unwrap(),
            Trigger::Manual,
            now,
        );
        assert_eq!(b.status, BackupStatus::Pending);
        assert_eq!(
            b.expires_at,
            "2026-12-26T10:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert!(!b.is_expired(now) && b.is_expired(b.expires_at));
        assert_eq!(b.id.to_string().parse::<BackupId>().unwrap(), b.id);
        assert!("not-an-id".parse::<BackupId>().is_err());
    }
}
