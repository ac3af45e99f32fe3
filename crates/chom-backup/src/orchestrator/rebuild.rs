//! Rebuilding the catalog from the repository's snapshot tags, after the
//! catalog was lost: sites come back from the definition each snapshot
//! carries, backups as completed records.

use serde::Serialize;

use super::{BackupOrchestrator, tags};
use crate::catalog::{AuditOutcome, Changes};
use crate::domain::{Backup, BackupConfiguration, BackupStatus, BackupType, Site, Trigger};
use crate::error::Result;

/// What a rebuild did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RebuildReport {
    /// Snapshots that carry a site backup's tags.
    pub snapshots: u64,
    /// Sites recreated.
    pub sites_created: u64,
    /// Backup records recreated.
    pub backups_created: u64,
    /// Backups already in the catalog.
    pub backups_present: u64,
}

impl BackupOrchestrator {
    /// Recreate missing sites and backup records from the snapshots.
    pub async fn rebuild_catalog(&self) -> Result<RebuildReport> {
        let mut report = RebuildReport::default();
        let mut snapshots = self.repo.snapshots().await?;
        // Newest first: a site comes back with its latest definition.
        snapshots.reverse();
        for (sid, snap) in &snapshots {
            let Some(backup_id) = tags::backup_id(snap) else {
                continue;
            };
            report.snapshots += 1;
            let Some(site) = snap
                .tags
                .get(tags::SITE_DEF)
                .and_then(|d| serde_json::from_str::<Site>(d).ok())
            else {
                continue;
            };
            if self.catalog.site(site.id).await?.is_none() {
                self.catalog.insert_site(&site).await?;
                report.sites_created += 1;
            }
            if self.catalog.backup(backup_id).await?.is_some() {
                report.backups_present += 1;
                continue;
            }
            let tag = |k: &str| snap.tags.get(k).cloned().unwrap_or_default();
            let backup_type: BackupType = tag(tags::TYPE).parse().unwrap_or(BackupType::Full);
            let retention: u32 = tag(tags::RETENTION).parse().unwrap_or(30);
            let mut config = BackupConfiguration::of_type(backup_type, retention.clamp(1, 365))?;
            let level: i32 = tag(tags::COMPRESSION).parse().unwrap_or(3);
            config = if level == 0 {
                config.without_compression()
            } else {
                config.with_compression(level.clamp(1, 22))?
            };
            let created = tag(tags::CREATED).parse().unwrap_or(snap.time);
            let mut backup = Backup::new(
                site.id,
                config,
                tag(tags::TRIGGER).parse().unwrap_or(Trigger::Manual),
                created,
            );
            backup.id = backup_id;
            backup.status = BackupStatus::Completed;
            backup.snapshot_id = Some(sid.to_hex());
            backup.checksum = Some(snap.tree.to_hex());
            backup.logical_bytes = snap.summary.total_bytes;
            backup.added_bytes = snap.summary.bytes_stored;
            backup.file_count = snap.summary.files;
            backup.encrypted = self.repo.is_encrypted();
            backup.started_at = Some(snap.time);
            backup.completed_at = Some(snap.time);
            self.commit(Changes {
                backups: vec![&backup],
                ..Changes::default()
            })
            .await?;
            report.backups_created += 1;
        }
        let detail = Some(format!(
            "{} sites, {} backups recreated",
            report.sites_created, report.backups_created
        ));
        self.catalog
            .audit(&self.audit("catalog.rebuild", None, None, AuditOutcome::Ok, detail))
            .await?;
        Ok(report)
    }
}
