//! Domain events: what happened, for subscribers and the outbox.

use serde::{Deserialize, Serialize};

use super::{BackupId, BackupType, SiteId};

/// Something that happened to a site's backups. Written to the catalog's
/// event table in the same transaction as the change it reports, and
/// published to in-process subscribers after the commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event")]
pub enum BackupEvent {
    /// A backup completed.
    BackupCreated {
        /// The backup.
        backup_id: BackupId,
        /// Its site.
        site_id: SiteId,
        /// Its type.
        backup_type: BackupType,
        /// Bytes in it.
        logical_bytes: u64,
        /// Bytes it added to the repository.
        added_bytes: u64,
    },
    /// A backup was restored (into its own site or another one).
    BackupRestored {
        /// The backup.
        backup_id: BackupId,
        /// The site it came from.
        site_id: SiteId,
        /// The site it was restored into.
        target_site_id: SiteId,
        /// What was restored: `files`, `database` or both.
        parts: Vec<String>,
    },
    /// A backup (or a restore) failed.
    BackupFailed {
        /// The backup.
        backup_id: BackupId,
        /// Its site.
        site_id: SiteId,
        /// Why.
        error: String,
    },
    /// A backup was deleted (by an operator or by retention).
    BackupDeleted {
        /// The backup.
        backup_id: BackupId,
        /// Its site.
        site_id: SiteId,
        /// Why.
        reason: String,
    },
    /// A site's newest completed backup is older than its schedule allows.
    SiteStale {
        /// The site.
        site_id: SiteId,
        /// When its newest completed backup was made, if ever.
        last_backup_at: Option<jiff::Timestamp>,
        /// Its schedule's period.
        period_hours: i64,
    },
    /// Scheduled runs did not start (the service was down): one is run now.
    ScheduleMissed {
        /// The site.
        site_id: SiteId,
        /// How many slots passed without a run.
        missed_slots: u32,
        /// The latest slot that passed.
        last_slot_at: jiff::Timestamp,
    },
    /// Verifying a backup found it damaged: its snapshot is missing, its
    /// records disagree with it, or its data no longer reads back intact.
    BackupVerificationFailed {
        /// The site.
        site_id: SiteId,
        /// The backup.
        backup_id: BackupId,
        /// What is wrong.
        problems: Vec<String>,
    },
    /// A retention policy ran for a site.
    RetentionApplied {
        /// The site.
        site_id: SiteId,
        /// Backups deleted.
        deleted: u64,
        /// Backups kept.
        kept: u64,
    },
}

impl BackupEvent {
    /// The event's name (`BackupCreated`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            BackupEvent::BackupCreated { .. } => "BackupCreated",
            BackupEvent::BackupRestored { .. } => "BackupRestored",
            BackupEvent::BackupFailed { .. } => "BackupFailed",
            BackupEvent::BackupDeleted { .. } => "BackupDeleted",
            BackupEvent::RetentionApplied { .. } => "RetentionApplied",
            BackupEvent::SiteStale { .. } => "SiteStale",
            BackupEvent::ScheduleMissed { .. } => "ScheduleMissed",
            BackupEvent::BackupVerificationFailed { .. } => "BackupVerificationFailed",
        }
    }

    /// The site concerned.
    pub fn site_id(&self) -> SiteId {
        match self {
            BackupEvent::BackupCreated { site_id, .. }
            | BackupEvent::BackupRestored { site_id, .. }
            | BackupEvent::BackupFailed { site_id, .. }
            | BackupEvent::BackupDeleted { site_id, .. }
            | BackupEvent::RetentionApplied { site_id, .. }
            | BackupEvent::SiteStale { site_id, .. }
            | BackupEvent::ScheduleMissed { site_id, .. }
            | BackupEvent::BackupVerificationFailed { site_id, .. } => *site_id,
        }
    }

    /// The backup concerned, if one.
    pub fn backup_id(&self) -> Option<BackupId> {
        match self {
            BackupEvent::BackupCreated { backup_id, .. }
            | BackupEvent::BackupRestored { backup_id, .. }
            | BackupEvent::BackupFailed { backup_id, .. }
            | BackupEvent::BackupDeleted { backup_id, .. }
            | BackupEvent::BackupVerificationFailed { backup_id, .. } => Some(*backup_id),
            BackupEvent::RetentionApplied { .. }
            | BackupEvent::SiteStale { .. }
            | BackupEvent::ScheduleMissed { .. } => None,
        }
    }
}
