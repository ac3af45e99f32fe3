//! Integrity reports and statistics.

use chom_repo::Progress;
use jiff::Timestamp;
use serde::Serialize;

use super::BackupOrchestrator;
use crate::domain::{BackupEvent, BackupId, BackupStatus};
use crate::error::Result;

/// The integrity of one backup (the seed's fields, plus what deep
/// verification read).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct IntegrityReport {
    /// The backup.
    pub backup_id: BackupId,
    /// Its snapshot exists and opens.
    pub file_exists: bool,
    /// The snapshot's size equals the recorded size.
    pub size_match: bool,
    /// The snapshot's content digest equals the recorded checksum (`None`
    /// when no checksum was recorded).
    pub checksum_match: Option<bool>,
    /// Not past its expiry.
    pub not_expired: bool,
    /// With `deep`: every chunk was read back and verified (`None` when not deep).
    pub data_intact: Option<bool>,
    /// Everything above holds.
    pub valid: bool,
    /// What is wrong, for people.
    pub problems: Vec<String>,
}

/// A site's backup statistics.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BackupStatistics {
    /// The site.
    pub site: String,
    /// All backup records.
    pub total_backups: u64,
    /// Completed ones.
    pub completed_backups: u64,
    /// Failed ones.
    pub failed_backups: u64,
    /// Logical size of the completed backups together.
    pub total_size_bytes: u64,
    /// The same in MiB.
    pub total_size_mb: f64,
    /// The same in GiB.
    pub total_size_gb: f64,
    /// When the newest backup was made.
    pub last_backup_at: Option<Timestamp>,
    /// Its status.
    pub last_backup_status: Option<BackupStatus>,
    /// What the site's backups really occupy in the repository, after
    /// deduplication and compression (each chunk counted once).
    pub stored_bytes: u64,
}

impl BackupOrchestrator {
    /// Check one backup. With `deep`, every chunk of its snapshot is read
    /// back and verified; otherwise only the records are compared.
    pub async fn validate_integrity(&self, id: BackupId, deep: bool) -> Result<IntegrityReport> {
        let backup = self.backup(id).await?;
        let mut problems = Vec::new();
        let snapshot = match backup.snapshot_id.as_deref().map(chom_repo::Id::from_hex) {
            Some(Ok(sid)) => match self.repo.load_snapshot(&sid).await {
                Ok(s) => Some((sid, s)),
                Err(e) => {
                    problems.push(format!("snapshot {}: {e}", sid.short()));
                    None
                }
            },
            Some(Err(e)) => {
                problems.push(format!("recorded snapshot id is invalid: {e}"));
                None
            }
            None => {
                problems.push(format!(
                    "the backup is {} and has no snapshot",
                    backup.status.as_str()
                ));
                None
            }
        };
        let file_exists = snapshot.is_some();
        let size_match = snapshot
            .as_ref()
            .is_some_and(|(_, s)| s.summary.total_bytes == backup.logical_bytes);
        if file_exists && !size_match {
            problems.push("the snapshot's size differs from the recorded size".into());
        }
        let checksum_match = match (&backup.checksum, &snapshot) {
            (Some(sum), Some((_, s))) => Some(s.tree.to_hex() == *sum),
            (Some(_), None) => Some(false),
            (None, _) => None,
        };
        if checksum_match == Some(false) && file_exists {
            problems
                .push("the snapshot's content digest differs from the recorded checksum".into());
        }
        let not_expired = !backup.is_expired(self.now());
        if !not_expired {
            problems.push(format!("expired at {}", backup.expires_at));
        }
        let data_intact = match (&snapshot, deep) {
            (Some((sid, _)), true) => match self.repo.verify_snapshot(sid, Progress::new()).await {
                Ok(_) => Some(true),
                Err(e) => {
                    problems.push(e.to_string());
                    Some(false)
                }
            },
            (None, true) => Some(false),
            (_, false) => None,
        };
        let damaged = !file_exists
            || !size_match
            || checksum_match == Some(false)
            || data_intact == Some(false);
        if damaged && backup.status == BackupStatus::Completed {
            // A completed backup that no longer holds up is news an
            // operator must hear of (webhooks, events), not only a report.
            self.record_event(BackupEvent::BackupVerificationFailed {
                site_id: backup.site_id,
                backup_id: id,
                problems: problems.clone(),
            })
            .await?;
        }
        let valid = !damaged && not_expired;
        Ok(IntegrityReport {
            backup_id: id,
            file_exists,
            size_match,
            checksum_match,
            not_expired,
            data_intact,
            valid,
            problems,
        })
    }

    /// Statistics of a site's backups.
    pub async fn get_statistics(&self, site: &str) -> Result<BackupStatistics> {
        let site = self.site(site).await?;
        let backups = self.catalog.list_backups(Some(site.id)).await?;
        let completed: Vec<_> = backups
            .iter()
            .filter(|b| b.status == BackupStatus::Completed)
            .collect();
        let total: u64 = completed.iter().map(|b| b.logical_bytes).sum();
        let snapshots: Vec<chom_repo::Id> = completed
            .iter()
            .filter_map(|b| {
                b.snapshot_id
                    .as_deref()
                    .and_then(|s| chom_repo::Id::from_hex(s).ok())
            })
            .collect();
        let stored_bytes = self.repo.stored_size(&snapshots).await?;
        let last = backups.first();
        Ok(BackupStatistics {
            site: site.name,
            total_backups: backups.len() as u64,
            completed_backups: completed.len() as u64,
            failed_backups: backups
                .iter()
                .filter(|b| b.status == BackupStatus::Failed)
                .count() as u64,
            total_size_bytes: total,
            total_size_mb: total as f64 / (1024.0 * 1024.0),
            total_size_gb: total as f64 / (1024.0 * 1024.0 * 1024.0),
            last_backup_at: last.map(|b| b.created_at),
            last_backup_status: last.map(|b| b.status),
            stored_bytes,
        })
    }
}
