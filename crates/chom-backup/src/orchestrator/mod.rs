//! `BackupOrchestrator`: every operation of the Backup module, as library
//! methods (the CLI and the service are thin layers over these).
//!
//! Each state change is committed to the catalog together with its events
//! (the outbox) and an audit entry, then the events are published to
//! in-process subscribers.

mod create;
mod inspect;
mod keys;
mod rebuild;
mod restore;
mod retention;
mod sites;
mod stored;
mod tags;
mod tokens;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chom_repo::{Progress, Repository};
use tokio::sync::broadcast;

pub use inspect::{BackupStatistics, IntegrityReport};
pub use rebuild::RebuildReport;
pub use restore::{RestoreOutcome, RestoreRequest};
pub use retention::RetentionOutcome;
pub use sites::NewSite;

use crate::catalog::{AuditEntry, AuditOutcome, Catalog, Changes, StoredEvent};
use crate::domain::{Backup, BackupId, Clock, FixedClock, Site, SystemClock};
use crate::error::{Error, Result};

/// How a long operation runs.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Wait for the site to be free instead of failing with "site busy".
    pub wait: bool,
    /// Counters to follow progress (and cancel).
    pub progress: Option<Arc<Progress>>,
}

impl RunOptions {
    fn progress(&self) -> Arc<Progress> {
        self.progress.clone().unwrap_or_default()
    }
}

/// The Backup module's entry point.
#[derive(Debug, Clone)]
pub struct BackupOrchestrator {
    catalog: Catalog,
    repo: Repository,
    scratch: PathBuf,
    clock: Arc<dyn Clock>,
    actor: String,
    events: broadcast::Sender<StoredEvent>,
}

/// The clock for this process: `CHOM_BACKUP_NOW` (an RFC 3339 time, for
/// backdated tests and drills) or the system clock.
pub fn clock_from_env() -> Result<Box<dyn Clock>> {
    match std::env::var("CHOM_BACKUP_NOW") {
        Ok(text) if !text.is_empty() => {
            let at = text.parse::<jiff::Timestamp>().map_err(|e| {
                Error::Setup(format!(
                    "CHOM_BACKUP_NOW={text:?} is not an RFC 3339 time ({e})"
                ))
            })?;
            Ok(Box::new(FixedClock(at)))
        }
        _ => Ok(Box::new(SystemClock)),
    }
}

impl BackupOrchestrator {
    /// Build an orchestrator. `scratch` is a private directory for dump
    /// credentials and SQLite copies; `actor` names who acts, for the audit log.
    pub fn new(
        catalog: Catalog,
        repo: Repository,
        scratch: PathBuf,
        clock: Arc<dyn Clock>,
        actor: &str,
    ) -> Self {
        let (events, _) = broadcast::channel(1024);
        BackupOrchestrator {
            catalog,
            repo,
            scratch,
            clock,
            actor: actor.to_string(),
            events,
        }
    }

    /// The same orchestrator acting for someone else (API tokens, scheduler).
    pub fn acting_as(&self, actor: &str) -> Self {
        let mut other = self.clone();
        other.actor = actor.to_string();
        other
    }

    /// Subscribe to events as they are committed.
    pub fn subscribe(&self) -> broadcast::Receiver<StoredEvent> {
        self.events.subscribe()
    }

    /// The catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The repository.
    pub fn repository(&self) -> &Repository {
        &self.repo
    }

    /// Whole files kept under keys in this repository.
    pub fn storage(&self) -> crate::storage::RepositoryStorage {
        crate::storage::RepositoryStorage::new(self.repo.clone())
    }

    /// The orchestrator's clock.
    pub fn now(&self) -> jiff::Timestamp {
        self.clock.now()
    }

    /// Record an event that comes with no state change (health findings),
    /// and publish it.
    pub async fn record_event(&self, event: crate::domain::BackupEvent) -> Result<()> {
        self.commit(Changes {
            events: vec![event],
            ..Changes::default()
        })
        .await
    }

    fn audit(
        &self,
        action: &str,
        site: Option<&Site>,
        backup: Option<BackupId>,
        outcome: AuditOutcome,
        detail: Option<String>,
    ) -> AuditEntry {
        AuditEntry {
            actor: self.actor.clone(),
            action: action.to_string(),
            site_id: site.map(|s| s.id),
            backup_id: backup,
            outcome,
            detail,
            at: None,
        }
    }

    /// Commit changes and publish their events.
    async fn commit(&self, changes: Changes<'_>) -> Result<()> {
        let stored = self.catalog.commit(changes).await?;
        for event in stored {
            // No subscriber is fine: the outbox has the event.
            let _ = self.events.send(event);
        }
        Ok(())
    }

    /// Find a site by name or id.
    pub async fn site(&self, name_or_id: &str) -> Result<Site> {
        self.catalog
            .find_site(name_or_id)
            .await?
            .ok_or_else(|| Error::SiteNotFound(name_or_id.to_string()))
    }

    /// Find a backup.
    pub async fn backup(&self, id: BackupId) -> Result<Backup> {
        self.catalog
            .backup(id)
            .await?
            .ok_or_else(|| Error::BackupNotFound(id.to_string()))
    }

    /// Take the site's lock, waiting if asked. A stale lock whose backup was
    /// left "running" by a dead process marks that backup failed, unless a
    /// service job will run it again.
    async fn lock_site(
        &self,
        site: &Site,
        operation: &str,
        backup: Option<BackupId>,
        wait: bool,
    ) -> Result<SiteGuard> {
        loop {
            if let Some(stale) = self.catalog.site_lock(site.id).await?
                && let Some(id) = stale.backup_id
                && Some(id) != backup
                && stale.operation == "backup"
                && !chom_repo::process_alive(stale.holder.pid)
                && stale.holder.host == chom_repo::hostname()
                && !self.catalog.backup_job_active(id).await?
            {
                self.abandon_backup(id, "interrupted: the process making it stopped")
                    .await?;
            }
            match self
                .catalog
                .try_lock_site(site.id, operation, backup)
                .await?
            {
                Ok(()) => return Ok(SiteGuard::start(self.catalog.clone(), site.id)),
                Err(lock) if wait => {
                    tracing::info!("site {} is busy ({}); waiting", site.name, lock.operation);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(lock) => {
                    return Err(Error::SiteBusy {
                        site: site.name.clone(),
                        lock: Box::new(lock),
                    });
                }
            }
        }
    }

    /// Mark a backup that will not finish (its process died, its job gave
    /// up) as failed, saying why. A backup already finished is left alone.
    pub async fn abandon_backup(&self, id: BackupId, reason: &str) -> Result<()> {
        if let Some(mut b) = self.catalog.backup(id).await?
            && matches!(
                b.status,
                crate::domain::BackupStatus::Running | crate::domain::BackupStatus::Pending
            )
        {
            b.status = crate::domain::BackupStatus::Failed;
            b.error = Some(reason.to_string());
            b.completed_at = Some(self.now());
            let event = crate::domain::BackupEvent::BackupFailed {
                backup_id: b.id,
                site_id: b.site_id,
                error: b.error.clone().unwrap_or_default(),
            };
            self.commit(Changes {
                backups: vec![&b],
                events: vec![event],
                ..Changes::default()
            })
            .await?;
        }
        Ok(())
    }
}

/// A held site lock, kept alive by a heartbeat task until released.
struct SiteGuard {
    catalog: Catalog,
    site: crate::domain::SiteId,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl SiteGuard {
    fn start(catalog: Catalog, site: crate::domain::SiteId) -> Self {
        let beat = catalog.clone();
        let heartbeat = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(30)).await;
                if let Err(e) = beat.heartbeat_site(site).await {
                    tracing::warn!("cannot refresh the site lock: {e}");
                }
            }
        });
        SiteGuard {
            catalog,
            site,
            heartbeat,
        }
    }

    async fn release(self) {
        self.heartbeat.abort();
        if let Err(e) = self.catalog.unlock_site(self.site).await {
            tracing::warn!("cannot release the site lock (it goes stale): {e}");
        }
    }
}
