//! Bringing back work whose process died: jobs whose worker's lease ran out,
//! and backups left "running" by a process that had no job (a killed
//! `backup create`, or a service that died before it queued a retry).

use jiff::SignedDuration;

use super::Service;
use crate::domain::{BackupStatus, Job, JobRequest};

/// A pending record (the service records a backup, then queues its job)
/// younger than this may belong to a process about to queue it: leave it
/// alone at start-up. A running record always has its site locked.
const FRESH_RECORD: SignedDuration = SignedDuration::from_secs(60);

impl Service {
    /// Queue again (with backoff) or give up the jobs of dead workers; a
    /// backup whose job gave up is marked failed, saying why.
    pub(super) async fn requeue_expired_jobs(&self) {
        let touched = match self
            .orchestrator
            .catalog()
            .requeue_expired_jobs(self.now())
            .await
        {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::error!("cannot requeue expired jobs: {e}");
                return;
            }
        };
        for job in touched {
            if job.attempts < job.max_attempts {
                tracing::warn!(
                    "job {} lost its worker; queued again (attempt {} of {})",
                    job.id,
                    job.attempts,
                    job.max_attempts
                );
                continue;
            }
            tracing::error!(
                "job {} lost its worker {} times; giving up",
                job.id,
                job.attempts
            );
            self.abandon_backup_of(&job, "its workers kept dying; giving up")
                .await;
        }
    }

    /// A backup job that ended without making its backup: mark the record
    /// failed so it does not stay "pending" forever.
    pub(super) async fn abandon_backup_of(&self, job: &Job, reason: &str) {
        if let Some(backup) = job.request.makes_backup()
            && let Err(e) = self.orchestrator.abandon_backup(backup, reason).await
        {
            tracing::error!("cannot mark backup {backup} failed: {e}");
        }
    }

    /// At start-up: every backup left pending or running with no job that
    /// will make it and no live process holding its site is queued again,
    /// its first attempt counted. If the site already has a backup queued,
    /// the old record is marked failed instead (the queued one supersedes
    /// it).
    pub(super) async fn recover_interrupted_backups(&self) -> crate::Result<()> {
        let catalog = self.orchestrator.catalog();
        let now = self.now();
        for backup in catalog.unfinished_backups().await? {
            let just_prepared = backup.status == BackupStatus::Pending
                && now.duration_since(backup.created_at) < FRESH_RECORD;
            if just_prepared || catalog.backup_job_active(backup.id).await? {
                continue;
            }
            if let Some(lock) = catalog.site_lock(backup.site_id).await?
                && !lock.is_stale(now)
            {
                continue;
            }
            let request = JobRequest::Backup {
                backup: backup.id,
                site: backup.site_id,
            };
            match catalog
                .requeue_interrupted_backup(&request, backup.site_id, now, self.config.max_attempts)
                .await?
            {
                Some(job) => tracing::warn!(
                    "backup {} was interrupted; queued again as job {}",
                    backup.id,
                    job.id
                ),
                None => {
                    self.orchestrator
                        .abandon_backup(
                            backup.id,
                            "interrupted; a newer backup of the site is queued",
                        )
                        .await?;
                }
            }
        }
        Ok(())
    }
}
