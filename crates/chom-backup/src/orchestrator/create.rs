//! Making a backup: the site's files into `files/`, its database dump into
//! `database/`, one snapshot; the record moves pending → running →
//! completed or failed.

use std::sync::Arc;

use chom_repo::{BackupOptions, ParentSelection, Progress, Source};

use super::tags;
use super::{BackupOrchestrator, RunOptions};
use crate::catalog::{AuditOutcome, Changes};
use crate::domain::{
    Backup, BackupConfiguration, BackupEvent, BackupStatus, BackupType, Site, Trigger,
};
use crate::error::{Error, Result};

impl BackupOrchestrator {
    /// Back up a site. Fails before recording anything when the request is
    /// invalid or the site is busy; once started, a failure (a dump tool
    /// failing, storage refusing) leaves a failed record and no snapshot.
    pub async fn create_backup(
        &self,
        site: &str,
        configuration: BackupConfiguration,
        trigger: Trigger,
        run: &RunOptions,
    ) -> Result<Backup> {
        let site = self.site(site).await?;
        self.check_request(&site, &configuration)?;
        let backup = Backup::new(site.id, configuration, trigger, self.now());
        let guard = self
            .lock_site(&site, "backup", Some(backup.id), run.wait)
            .await?;
        let result = self.run_backup(&site, backup, run.progress()).await;
        guard.release().await;
        result
    }

    /// Record a pending backup of a site, to be run later by
    /// [`BackupOrchestrator::run_prepared_backup`] (the service queues it).
    pub async fn prepare_backup(
        &self,
        site: &str,
        configuration: BackupConfiguration,
        trigger: Trigger,
    ) -> Result<Backup> {
        let site = self.site(site).await?;
        self.check_request(&site, &configuration)?;
        let backup = Backup::new(site.id, configuration, trigger, self.now());
        self.commit(Changes {
            backups: vec![&backup],
            ..Changes::default()
        })
        .await?;
        Ok(backup)
    }

    /// Run a backup recorded by [`BackupOrchestrator::prepare_backup`]. Run
    /// again after its process died, it makes the same backup (one record);
    /// a backup already completed is returned as it is.
    pub async fn run_prepared_backup(
        &self,
        id: crate::domain::BackupId,
        run: &RunOptions,
    ) -> Result<Backup> {
        let site_id = self.backup(id).await?.site_id;
        let site = self
            .catalog
            .site(site_id)
            .await?
            .ok_or_else(|| Error::SiteNotFound(site_id.to_string()))?;
        let guard = self.lock_site(&site, "backup", Some(id), run.wait).await?;
        // Read the record under the site's lock: a worker that lost its
        // lease may have finished this backup a moment ago.
        let backup = match self.backup(id).await {
            Ok(backup) => backup,
            Err(e) => {
                guard.release().await;
                return Err(e);
            }
        };
        let refusal = match backup.status {
            BackupStatus::Completed => {
                guard.release().await;
                return Ok(backup);
            }
            BackupStatus::Failed => Some(Error::Conflict(format!(
                "backup {id} already failed: {}",
                backup.error.as_deref().unwrap_or("no reason recorded")
            ))),
            BackupStatus::Pending | BackupStatus::Running => {
                self.check_request(&site, &backup.configuration).err()
            }
        };
        if let Some(e) = refusal {
            guard.release().await;
            return Err(e);
        }
        let result = self.run_backup(&site, backup, run.progress()).await;
        guard.release().await;
        result
    }

    /// Refuse what cannot work, before anything is recorded.
    pub(super) fn check_request(
        &self,
        site: &Site,
        configuration: &BackupConfiguration,
    ) -> Result<()> {
        let t = configuration.backup_type();
        if t.includes_database() && site.database.is_none() {
            let hint = if t == BackupType::Full {
                " (use --type files)"
            } else {
                ""
            };
            return Err(Error::Conflict(format!(
                "site {} has no database: a {t} backup needs one{hint}",
                site.name
            )));
        }
        if configuration.requires_encryption() && !self.repo.is_encrypted() {
            return Err(Error::Conflict(format!(
                "the configuration requires encryption, but the repository at {} is not encrypted",
                self.repo.storage().location()
            )));
        }
        Ok(())
    }

    /// Make the backup (the site lock is held by the caller).
    pub(super) async fn run_backup(
        &self,
        site: &Site,
        mut backup: Backup,
        progress: Arc<Progress>,
    ) -> Result<Backup> {
        backup.status = BackupStatus::Running;
        backup.started_at = Some(self.now());
        self.commit(Changes {
            backups: vec![&backup],
            ..Changes::default()
        })
        .await?;

        match self.snapshot_site(site, &backup, progress).await {
            Ok(done) => {
                let summary = &done.snapshot.summary;
                backup.status = BackupStatus::Completed;
                backup.snapshot_id = Some(done.id.to_hex());
                backup.checksum = Some(done.snapshot.tree.to_hex());
                backup.logical_bytes = summary.total_bytes;
                backup.added_bytes = summary.bytes_stored;
                backup.file_count = summary.files;
                backup.encrypted = self.repo.is_encrypted();
                backup.completed_at = Some(self.now());
                let event = BackupEvent::BackupCreated {
                    backup_id: backup.id,
                    site_id: site.id,
                    backup_type: backup.backup_type(),
                    logical_bytes: backup.logical_bytes,
                    added_bytes: backup.added_bytes,
                };
                let detail = Some(format!(
                    "{} backup, {} files, {} bytes, snapshot {}",
                    backup.backup_type(),
                    backup.file_count,
                    backup.logical_bytes,
                    done.id.short()
                ));
                self.commit(Changes {
                    backups: vec![&backup],
                    events: vec![event],
                    audit: Some(self.audit(
                        "backup.create",
                        Some(site),
                        Some(backup.id),
                        AuditOutcome::Ok,
                        detail,
                    )),
                    ..Changes::default()
                })
                .await?;
                Ok(backup)
            }
            Err(e) => {
                backup.status = BackupStatus::Failed;
                backup.error = Some(e.to_string());
                backup.completed_at = Some(self.now());
                let event = BackupEvent::BackupFailed {
                    backup_id: backup.id,
                    site_id: site.id,
                    error: e.to_string(),
                };
                self.commit(Changes {
                    backups: vec![&backup],
                    events: vec![event],
                    audit: Some(self.audit(
                        "backup.create",
                        Some(site),
                        Some(backup.id),
                        AuditOutcome::Failed,
                        Some(e.to_string()),
                    )),
                    ..Changes::default()
                })
                .await?;
                Err(e)
            }
        }
    }

    /// Stream the site into a new snapshot.
    async fn snapshot_site(
        &self,
        site: &Site,
        backup: &Backup,
        progress: Arc<Progress>,
    ) -> Result<chom_repo::BackupOutcome> {
        let t = backup.backup_type();
        let mut sources = Vec::new();
        if t.includes_files() {
            if !site.root.is_dir() {
                return Err(Error::Conflict(format!(
                    "the document root {} of site {} is not a directory",
                    site.root.display(),
                    site.name
                )));
            }
            sources.push(Source::path_as(&site.root, "files"));
        }
        if t.includes_database() {
            let db = site.database.as_ref().expect("checked before");
            let dump = crate::dump::start_dump(db, &self.scratch)
                .await
                .map_err(|source| Error::Database {
                    site: site.name.clone(),
                    source,
                })?;
            sources.push(Source::stream(
                &format!("database/{}", dump.file_name),
                dump.reader,
            ));
        }
        let mut opts = BackupOptions::default();
        opts.tags = tags::for_backup(site, backup);
        opts.excludes = site.excludes.clone();
        opts.compression_level = Some(backup.configuration.compression_level());
        opts.time = Some(backup.created_at);
        opts.estimate_totals = true;
        opts.parent = match self.parent_snapshot(site).await? {
            Some(id) => ParentSelection::Snapshot(id),
            None => ParentSelection::None,
        };
        let result = self.repo.backup(sources, &opts, progress).await;
        result.map_err(|e| match e {
            // A dump stream that fails surfaces as a read error of the stream.
            chom_repo::Error::Io { source, .. } if t.includes_database() => Error::Database {
                site: site.name.clone(),
                source: crate::dump::DumpError(source.to_string()),
            },
            other => other.into(),
        })
    }

    /// The newest completed backup of the site with files: unchanged files
    /// are taken from it without being read.
    async fn parent_snapshot(&self, site: &Site) -> Result<Option<chom_repo::Id>> {
        let backups = self.catalog.list_backups(Some(site.id)).await?;
        Ok(backups
            .iter()
            .filter(|b| b.status == BackupStatus::Completed && b.backup_type().includes_files())
            .find_map(|b| {
                b.snapshot_id
                    .as_deref()
                    .and_then(|s| chom_repo::Id::from_hex(s).ok())
            }))
    }

    /// Delete a backup: forget its snapshot (the space is freed by the next
    /// prune) and remove its record.
    pub async fn delete_backup(&self, id: crate::domain::BackupId, reason: &str) -> Result<Backup> {
        let backup = self.backup(id).await?;
        if matches!(backup.status, BackupStatus::Running | BackupStatus::Pending) {
            return Err(Error::Conflict(format!(
                "backup {id} is {}: wait for it to finish",
                backup.status.as_str()
            )));
        }
        if self.catalog.backups_being_restored().await?.contains(&id) {
            return Err(Error::Conflict(format!(
                "backup {id} is being restored right now"
            )));
        }
        let site = self.catalog.site(backup.site_id).await?;
        self.forget_snapshot(&backup).await?;
        let event = BackupEvent::BackupDeleted {
            backup_id: id,
            site_id: backup.site_id,
            reason: reason.to_string(),
        };
        self.commit(Changes {
            deleted_backups: vec![id],
            events: vec![event],
            audit: Some(self.audit(
                "backup.delete",
                site.as_ref(),
                Some(id),
                AuditOutcome::Ok,
                Some(reason.to_string()),
            )),
            ..Changes::default()
        })
        .await?;
        Ok(backup)
    }

    pub(super) async fn forget_snapshot(&self, backup: &Backup) -> Result<()> {
        if let Some(snapshot) = backup.snapshot_id.as_deref() {
            let id = chom_repo::Id::from_hex(snapshot)?;
            self.repo.forget(&[id]).await?;
        }
        Ok(())
    }
}
