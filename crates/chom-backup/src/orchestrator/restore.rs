//! Restoring a backup into its own site or another one.
//!
//! Order, so that a failure leaves the site as it was:
//! 1. a safety backup of the target (the parts about to be overwritten);
//! 2. the files are restored into a staging directory beside the root;
//! 3. the database is replaced (recreated and loaded from the dump);
//! 4. the staged files are swapped in by renames.
//!
//! If 3 or 4 fails, the database is restored from the safety backup, the
//! staging directory is removed, and renames done so far are undone.

use std::path::{Path, PathBuf};

use chom_repo::{Progress, RestoreOptions};
use serde::Serialize;

use super::{BackupOrchestrator, RunOptions};
use crate::catalog::{AuditOutcome, Changes};
use crate::domain::{
    Backup, BackupConfiguration, BackupEvent, BackupId, BackupStatus, BackupType, DbEngine, Site,
    Trigger,
};
use crate::error::{Error, Result};

/// What to restore.
#[derive(Debug, Clone, Default)]
pub struct RestoreRequest {
    /// Into this site (default: the backup's own).
    pub target_site: Option<String>,
    /// Only files or only the database of a full backup.
    pub only: Option<BackupType>,
    /// Only these paths (relative to the document root).
    pub paths: Vec<String>,
    /// Skip the safety backup (not recommended; for emergencies on full disks).
    pub skip_safety_backup: bool,
}

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreOutcome {
    /// The backup restored.
    pub backup_id: BackupId,
    /// The site restored into.
    pub target_site: String,
    /// Whether files were restored.
    pub files: bool,
    /// Whether the database was restored.
    pub database: bool,
    /// The safety backup taken first, if any.
    pub safety_backup: Option<BackupId>,
}

/// Where staged files go: beside the root, on the same file system, so the
/// swap is a rename.
fn sibling(root: &Path, tag: &str, backup: BackupId) -> PathBuf {
    let name = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "root".into());
    root.with_file_name(format!(".{name}.chom-{tag}-{backup}"))
}

impl BackupOrchestrator {
    /// Restore `backup` (see the module docs).
    pub async fn restore_backup(
        &self,
        backup: BackupId,
        request: &RestoreRequest,
        run: &RunOptions,
    ) -> Result<RestoreOutcome> {
        let backup = self.backup(backup).await?;
        if backup.status != BackupStatus::Completed || backup.snapshot_id.is_none() {
            return Err(Error::Conflict(format!(
                "backup {} is {}{}: there is nothing to restore",
                backup.id,
                backup.status.as_str(),
                backup
                    .error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            )));
        }
        let source = self
            .catalog
            .site(backup.site_id)
            .await?
            .ok_or_else(|| Error::SiteNotFound(backup.site_id.to_string()))?;
        let target = match &request.target_site {
            Some(name) => self.site(name).await?,
            None => source.clone(),
        };
        let (files, database) = self.parts(&backup, &source, &target, request)?;
        let guard = self
            .lock_site(&target, "restore", Some(backup.id), run.wait)
            .await?;
        let result = self
            .restore_locked(&backup, &source, &target, files, database, request, run)
            .await;
        guard.release().await;
        let (outcome_kind, detail) = match &result {
            Ok(_) => (AuditOutcome::Ok, format!("into site {}", target.name)),
            Err(e) => (
                AuditOutcome::Failed,
                format!("into site {}: {e}", target.name),
            ),
        };
        let mut events = Vec::new();
        match &result {
            Ok(_) => events.push(BackupEvent::BackupRestored {
                backup_id: backup.id,
                site_id: source.id,
                target_site_id: target.id,
                parts: [(files, "files"), (database, "database")]
                    .into_iter()
                    .filter(|(on, _)| *on)
                    .map(|(_, p)| p.to_string())
                    .collect(),
            }),
            Err(e) => events.push(BackupEvent::BackupFailed {
                backup_id: backup.id,
                site_id: source.id,
                error: format!("restore into {} failed: {e}", target.name),
            }),
        }
        self.commit(Changes {
            events,
            audit: Some(self.audit(
                "backup.restore",
                Some(&target),
                Some(backup.id),
                outcome_kind,
                Some(detail),
            )),
            ..Changes::default()
        })
        .await?;
        result
    }

    /// Which parts to restore, or why the request cannot work.
    fn parts(
        &self,
        backup: &Backup,
        source: &Site,
        target: &Site,
        request: &RestoreRequest,
    ) -> Result<(bool, bool)> {
        let t = backup.backup_type();
        let (mut files, mut database) = (t.includes_files(), t.includes_database());
        match request.only {
            Some(BackupType::Files) if !files => {
                return Err(Error::Conflict(format!(
                    "backup {} holds no files (it is a {t} backup)",
                    backup.id
                )));
            }
            Some(BackupType::Database) if !database => {
                return Err(Error::Conflict(format!(
                    "backup {} holds no database (it is a {t} backup)",
                    backup.id
                )));
            }
            Some(BackupType::Files) => database = false,
            Some(BackupType::Database) => files = false,
            _ => {}
        }
        if !request.paths.is_empty() {
            if !files {
                return Err(Error::Conflict(
                    "--path restores files, but no files are being restored".into(),
                ));
            }
            database = false;
        }
        if database {
            match (&source.database, &target.database) {
                (_, None) => {
                    return Err(Error::Conflict(format!(
                        "site {} has no database to restore into: restore with --only files, or give the site a database",
                        target.name
                    )));
                }
                (Some(s), Some(t)) if s.engine != t.engine => {
                    return Err(Error::Conflict(format!(
                        "cannot restore a {} dump into site {}'s {} database",
                        s.engine.as_str(),
                        target.name,
                        t.engine.as_str()
                    )));
                }
                _ => {}
            }
        }
        Ok((files, database))
    }

    #[allow(clippy::too_many_arguments)]
    async fn restore_locked(
        &self,
        backup: &Backup,
        source: &Site,
        target: &Site,
        files: bool,
        database: bool,
        request: &RestoreRequest,
        run: &RunOptions,
    ) -> Result<RestoreOutcome> {
        let snapshot = chom_repo::Id::from_hex(backup.snapshot_id.as_deref().expect("checked"))?;

        // 1. Safety backup of what is about to be overwritten.
        let safety = if request.skip_safety_backup {
            None
        } else {
            // Only what exists can be saved: a new site has no files or
            // database yet (a database that cannot be reached is in the same case).
            let database_exists = database && {
                let (db, scratch) = (
                    target.database.clone().expect("checked"),
                    self.scratch.clone(),
                );
                tokio::task::spawn_blocking(move || crate::dump::probe(&db, &scratch))
                    .await
                    .expect("probe task")
                    .is_ok()
            };
            let kind = match (files && target.root.exists(), database_exists) {
                (true, true) => Some(BackupType::Full),
                (true, false) => Some(BackupType::Files),
                (false, true) => Some(BackupType::Database),
                (false, false) => None,
            };
            match kind {
                Some(kind) => {
                    let config = BackupConfiguration::of_type(kind, 7)?;
                    let b = Backup::new(target.id, config, Trigger::Safety, self.now());
                    let made = self
                        .run_backup(target, b, Progress::new())
                        .await
                        .map_err(|e| {
                            Error::Conflict(format!(
                                "the safety backup of site {} failed, so nothing was restored: {e}",
                                target.name
                            ))
                        })?;
                    Some(made)
                }
                None => None,
            }
        };

        // 2. Stage the files.
        let staging = sibling(&target.root, "restore", backup.id);
        if files {
            if let Some(parent) = staging.parent() {
                std::fs::create_dir_all(parent).map_err(|e| Error::io("creating", parent, e))?;
            }
            let _ = std::fs::remove_dir_all(&staging);
            let mut opts = RestoreOptions::default();
            opts.includes = if request.paths.is_empty() {
                vec!["files".into()]
            } else {
                request
                    .paths
                    .iter()
                    .map(|p| format!("files/{}", p.trim_start_matches('/')))
                    .collect()
            };
            if let Err(e) = self
                .repo
                .restore(&snapshot, &staging, &opts, run.progress())
                .await
            {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(e.into());
            }
        }

        // 3. Replace the database.
        if database && let Err(e) = self.replace_database(source, target, &snapshot).await {
            let _ = std::fs::remove_dir_all(&staging);
            self.roll_back_database(target, safety.as_ref()).await;
            return Err(e);
        }

        // 4. Swap the files in.
        if files {
            let swapped = if request.paths.is_empty() {
                swap_tree(&staging.join("files"), &target.root, backup.id)
            } else {
                swap_paths(
                    &staging.join("files"),
                    &target.root,
                    &request.paths,
                    backup.id,
                )
            };
            let _ = std::fs::remove_dir_all(&staging);
            if let Err(e) = swapped {
                if database {
                    self.roll_back_database(target, safety.as_ref()).await;
                }
                return Err(e);
            }
        }
        Ok(RestoreOutcome {
            backup_id: backup.id,
            target_site: target.name.clone(),
            files,
            database,
            safety_backup: safety.map(|b| b.id),
        })
    }

    /// Stream the backup's dump into the target's database.
    async fn replace_database(
        &self,
        source: &Site,
        target: &Site,
        snapshot: &chom_repo::Id,
    ) -> Result<()> {
        let target_db = target.database.clone().expect("checked");
        let listing = self.repo.ls(snapshot, "database").await?;
        let dump = listing
            .iter()
            .find(|e| e.kind == chom_repo::NodeKind::File)
            .ok_or_else(|| Error::Conflict("the backup holds no database dump".into()))?;
        let engine_ok = match source.database.as_ref().map(|d| d.engine) {
            Some(engine) => engine == target_db.engine,
            None => guess_engine(&dump.path) == Some(target_db.engine),
        };
        if !engine_ok {
            return Err(Error::Conflict(format!(
                "the dump {} does not fit site {}'s {} database",
                dump.path,
                target.name,
                target_db.engine.as_str()
            )));
        }
        let mut reader = self.repo.file_reader(snapshot, &dump.path).await?;
        let scratch = self.scratch.clone();
        let name = target.name.clone();
        tokio::task::spawn_blocking(move || {
            crate::dump::restore_blocking(&target_db, &mut reader, &scratch)
        })
        .await
        .expect("database restore task")
        .map_err(|source| Error::Database { site: name, source })
    }

    /// Put the target's database back from the safety backup (best effort:
    /// a failure here is logged, the original error is what is reported).
    async fn roll_back_database(&self, target: &Site, safety: Option<&Backup>) {
        let Some(safety) = safety.filter(|b| b.backup_type().includes_database()) else {
            tracing::error!(
                "no safety backup of site {}'s database to roll back to",
                target.name
            );
            return;
        };
        let Some(snapshot) = safety
            .snapshot_id
            .as_deref()
            .and_then(|s| chom_repo::Id::from_hex(s).ok())
        else {
            return;
        };
        if let Err(e) = self.replace_database(target, target, &snapshot).await {
            tracing::error!(
                "rolling site {}'s database back from safety backup {} failed: {e}",
                target.name,
                safety.id
            );
        }
    }
}

fn guess_engine(path: &str) -> Option<DbEngine> {
    if path.ends_with(".sql") {
        Some(DbEngine::Mysql)
    } else if path.ends_with(".pgdump") {
        Some(DbEngine::Postgres)
    } else {
        Some(DbEngine::Sqlite)
    }
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(|e| Error::io("moving into place", to, e))
}

/// Swap the staged tree in for the whole root: root → aside, staged → root,
/// then drop the old tree. The first failure undoes what was done.
fn swap_tree(staged: &Path, root: &Path, backup: BackupId) -> Result<()> {
    let aside = sibling(root, "old", backup);
    let had_root = root.symlink_metadata().is_ok();
    if had_root {
        let _ = std::fs::remove_dir_all(&aside);
        rename(root, &aside)?;
    }
    if let Err(e) = rename(staged, root) {
        if had_root {
            let _ = std::fs::rename(&aside, root);
        }
        return Err(e);
    }
    if had_root {
        let _ = std::fs::remove_dir_all(&aside);
    }
    Ok(())
}

/// Swap single paths: each staged path replaces the live one; on a failure
/// every replaced path is put back.
fn swap_paths(staged: &Path, root: &Path, paths: &[String], backup: BackupId) -> Result<()> {
    let mut done: Vec<(PathBuf, Option<PathBuf>)> = Vec::new();
    let undo = |done: &[(PathBuf, Option<PathBuf>)]| {
        for (live, aside) in done.iter().rev() {
            let _ = std::fs::remove_dir_all(live).or_else(|_| std::fs::remove_file(live));
            if let Some(aside) = aside {
                let _ = std::fs::rename(aside, live);
            }
        }
    };
    for p in paths {
        let rel = p.trim_start_matches('/');
        let from = staged.join(rel);
        let live = root.join(rel);
        if from.symlink_metadata().is_err() {
            undo(&done);
            return Err(Error::Conflict(format!("path {p:?} is not in the backup")));
        }
        let aside = if live.symlink_metadata().is_ok() {
            let aside = sibling(&live, "old", backup);
            if let Err(e) = rename(&live, &aside) {
                undo(&done);
                return Err(e);
            }
            Some(aside)
        } else {
            if let Some(parent) = live.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            None
        };
        if let Err(e) = rename(&from, &live) {
            if let Some(aside) = &aside {
                let _ = std::fs::rename(aside, &live);
            }
            undo(&done);
            return Err(e);
        }
        done.push((live, aside));
    }
    for (_, aside) in done {
        if let Some(aside) = aside {
            let _ = std::fs::remove_dir_all(&aside).or_else(|_| std::fs::remove_file(&aside));
        }
    }
    Ok(())
}
