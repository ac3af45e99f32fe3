//! Job workers: claim a job, run it through the orchestrator while renewing
//! the lease (and publishing progress), record how it ended.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chom_repo::{Progress, PruneOptions};
use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use super::Service;
use crate::RestoreRequest;
use crate::catalog::JobEnd;
use crate::domain::{Job, JobProgress, JobRequest, Retention, Trigger};
use crate::error::Error;
use crate::orchestrator::RunOptions;

/// Running jobs of this process, for live progress and cancellation.
#[derive(Debug, Default, Clone)]
pub struct Running(Arc<Mutex<HashMap<String, Arc<Progress>>>>);

impl Running {
    fn insert(&self, id: &str, progress: Arc<Progress>) {
        self.0
            .lock()
            .expect("running jobs")
            .insert(id.to_string(), progress);
    }

    fn remove(&self, id: &str) {
        self.0.lock().expect("running jobs").remove(id);
    }

    /// Ask every running job to stop (shutdown).
    pub fn cancel_all(&self) {
        for p in self.0.lock().expect("running jobs").values() {
            p.cancel();
        }
    }

    /// Jobs still running.
    pub fn len(&self) -> usize {
        self.0.lock().expect("running jobs").len()
    }

    /// Whether no job runs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn snapshot(progress: &Progress) -> JobProgress {
    let s = progress.snapshot();
    JobProgress {
        bytes_done: s.bytes_done,
        files_done: s.files_done,
        bytes_total: s.bytes_total,
        files_total: s.files_total,
    }
}

/// How a job ended.
enum Outcome {
    Done(serde_json::Value),
    /// The site is busy: try again soon, not counted as an attempt.
    Busy(String),
    Failed(String),
    Cancelled,
}

impl Service {
    /// One worker: claim and run jobs until shutdown.
    pub(super) async fn worker_loop(self: Arc<Self>, n: usize) {
        let worker = format!("{}:{}:{n}", chom_repo::hostname(), std::process::id());
        let lease = SignedDuration::try_from(self.config.lease).expect("lease fits");
        while !self.stopping() {
            let claimed = self
                .orchestrator
                .catalog()
                .claim_job(&worker, self.now(), lease)
                .await;
            match claimed {
                Ok(Some(job)) => self.clone().run_job(&worker, job).await,
                Ok(None) => self.idle(self.config.poll).await,
                Err(e) => {
                    tracing::error!("worker {worker}: cannot claim jobs: {e}");
                    self.idle(Duration::from_secs(5)).await;
                }
            }
        }
    }

    async fn run_job(self: Arc<Self>, worker: &str, job: Job) {
        let progress = Progress::new();
        self.running.insert(&job.id, progress.clone());
        let heartbeat = tokio::spawn(heartbeat(
            self.clone(),
            job.id.clone(),
            worker.to_string(),
            progress.clone(),
        ));
        let started = std::time::Instant::now();
        let waited = self.now().duration_since(job.created_at).unsigned_abs();
        let outcome = self.execute(&job, progress.clone()).await;
        let label = match &outcome {
            Outcome::Done(_) => "completed",
            Outcome::Busy(_) => "requeued",
            Outcome::Failed(_) => "failed",
            Outcome::Cancelled => "cancelled",
        };
        self.metrics
            .job_finished(job.request.kind(), label, started.elapsed(), waited);
        heartbeat.abort();
        self.running.remove(&job.id);
        let catalog = self.orchestrator.catalog();
        let now = self.now();
        let end = match outcome {
            Outcome::Done(result) => JobEnd::completed(Some(result)),
            Outcome::Failed(error) => {
                self.abandon_backup_of(&job, &error).await;
                JobEnd::failed(error)
            }
            Outcome::Cancelled if self.stopping() => JobEnd::failed(
                "the service stopped before it finished (shutdown); queue it again to retry",
            ),
            Outcome::Cancelled => JobEnd::cancelled(),
            Outcome::Busy(why) => {
                let retry_at = now + SignedDuration::from_secs(5);
                if let Err(e) = catalog.release_job(&job.id, worker, retry_at, &why).await {
                    tracing::error!("cannot put job {} back in the queue: {e}", job.id);
                }
                return;
            }
        };
        let recorded = catalog
            .finish_job(
                &job.id,
                worker,
                &end.with_progress(snapshot(&progress)),
                now,
            )
            .await;
        match recorded {
            Ok(true) => {}
            Ok(false) => tracing::warn!("job {} was taken over while it ran (lease lost)", job.id),
            Err(e) => tracing::error!("cannot record the end of job {}: {e}", job.id),
        }
    }

    async fn execute(&self, job: &Job, progress: std::sync::Arc<Progress>) -> Outcome {
        let orchestrator = self.orchestrator.acting_as(&job.actor);
        let run = RunOptions {
            wait: false,
            progress: Some(progress.clone()),
        };
        let result: crate::Result<serde_json::Value> = match &job.request {
            JobRequest::Backup { backup, site } => {
                match orchestrator.run_prepared_backup(*backup, &run).await {
                    Ok(b) => {
                        if let Some(snapshot) = b
                            .snapshot_id
                            .as_deref()
                            .and_then(|s| chom_repo::Id::from_hex(s).ok())
                            && let Ok(snap) =
                                orchestrator.repository().load_snapshot(&snapshot).await
                        {
                            self.metrics
                                .backup_bytes(snap.summary.bytes_read, snap.summary.bytes_added);
                        }
                        // Retention runs after each successful backup of a site.
                        let retention = JobRequest::Retention {
                            site: *site,
                            policy: Retention::Expiry,
                        };
                        if let Err(e) = self.enqueue(&retention, Some(*site), "scheduler").await {
                            tracing::warn!("cannot queue retention for site {site}: {e}");
                        }
                        Ok(json!(b))
                    }
                    Err(e) => Err(e),
                }
            }
            JobRequest::Restore {
                backup,
                target_site,
                only,
                paths,
            } => {
                let request = RestoreRequest {
                    target_site: target_site.map(|s| s.to_string()),
                    only: *only,
                    paths: paths.clone(),
                    skip_safety_backup: false,
                };
                orchestrator
                    .restore_backup(*backup, &request, &run)
                    .await
                    .map(|o| json!(o))
            }
            JobRequest::Verify { backup, deep } => orchestrator
                .validate_integrity(*backup, *deep)
                .await
                .map(|r| json!(r)),
            JobRequest::Retention { site, policy } => orchestrator
                .apply_retention_policy(&site.to_string(), policy, false)
                .await
                .map(|o| json!(o)),
            JobRequest::Prune => orchestrator
                .repository()
                .prune(&PruneOptions::default(), progress.clone())
                .await
                .map(|r| json!(r))
                .map_err(Error::from),
        };
        match result {
            Ok(value) => Outcome::Done(value),
            Err(Error::SiteBusy { .. }) => {
                Outcome::Busy("the site was busy; retrying shortly".into())
            }
            Err(Error::Repository(chom_repo::Error::Locked { .. }))
                if matches!(job.request, JobRequest::Prune) =>
            {
                Outcome::Busy("another prune holds the repository; retrying shortly".into())
            }
            Err(_) if progress.is_cancelled() => Outcome::Cancelled,
            Err(Error::Repository(chom_repo::Error::Cancelled)) => Outcome::Cancelled,
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }

    /// Queue a job for the service's workers.
    pub async fn enqueue(
        &self,
        request: &JobRequest,
        site: Option<crate::domain::SiteId>,
        actor: &str,
    ) -> crate::Result<(Job, bool)> {
        let queued = self
            .orchestrator
            .catalog()
            .enqueue_job(request, site, actor, self.now(), self.config.max_attempts)
            .await?;
        self.wake.notify_waiters();
        Ok(queued)
    }

    /// Queue a backup: its record now (pending), its run by a worker.
    pub async fn enqueue_backup(
        &self,
        site: &str,
        configuration: crate::domain::BackupConfiguration,
        trigger: Trigger,
        actor: &str,
    ) -> crate::Result<(Job, crate::domain::Backup)> {
        let site = self.orchestrator.site(site).await?;
        // Merge into a queued backup of the same site, if there is one.
        let queued = self
            .orchestrator
            .catalog()
            .queued_backup_job(site.id)
            .await?;
        if let Some(job) = queued
            && let JobRequest::Backup { backup, .. } = job.request
        {
            return Ok((job, self.orchestrator.backup(backup).await?));
        }
        let backup = self
            .orchestrator
            .acting_as(actor)
            .prepare_backup(&site.id.to_string(), configuration, trigger)
            .await?;
        let request = JobRequest::Backup {
            backup: backup.id,
            site: site.id,
        };
        let (job, fresh) = self.enqueue(&request, Some(site.id), actor).await?;
        if !fresh
            && let JobRequest::Backup {
                backup: existing, ..
            } = job.request
        {
            // Lost a race with another enqueue: drop our pending record.
            self.orchestrator
                .catalog()
                .commit(crate::catalog::Changes {
                    deleted_backups: vec![backup.id],
                    ..Default::default()
                })
                .await?;
            return Ok((job, self.orchestrator.backup(existing).await?));
        }
        Ok((job, backup))
    }
}

/// Renew the lease while the job runs, record progress, and stop the job if
/// a cancel was asked for or the lease was lost.
async fn heartbeat(service: Arc<Service>, job: String, worker: String, progress: Arc<Progress>) {
    // Often enough for progress to look alive, and well within the lease.
    let every = (service.config.lease / 3)
        .min(Duration::from_secs(2))
        .max(Duration::from_millis(100));
    let lease = SignedDuration::try_from(service.config.lease).expect("lease fits");
    loop {
        tokio::time::sleep(every).await;
        let until: Timestamp = service.now() + lease;
        match service
            .orchestrator
            .catalog()
            .renew_lease(&job, &worker, until, Some(&snapshot(&progress)))
            .await
        {
            Ok(Some(false)) => {}
            Ok(Some(true)) => {
                tracing::info!("job {job}: cancel requested");
                progress.cancel();
            }
            Ok(None) => {
                tracing::warn!("job {job}: lease lost; stopping it");
                progress.cancel();
                return;
            }
            Err(e) => tracing::warn!("job {job}: cannot renew the lease: {e}"),
        }
    }
}
