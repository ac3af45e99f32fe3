//! The job queue: rows in the catalog, claimed with a lease.
//!
//! A worker claims the oldest queued job whose lane (site, or the
//! repository for prunes) has no running job, and holds it with a lease it
//! renews. On PostgreSQL the claim uses `FOR UPDATE SKIP LOCKED`, so
//! workers on several machines never take the same job; on SQLite the claim
//! is one write transaction. A job whose lease ran out (its worker died) is
//! queued again with its attempt count raised and a backoff, until it runs
//! out of attempts.

use jiff::{SignedDuration, Timestamp};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{
    Backend, Catalog, CatalogError, CatalogResult, from_micros, opt_from_micros, to_micros,
};
use crate::domain::{BackupId, Job, JobProgress, JobRequest, JobStatus, SiteId};

/// The lane of prune jobs: one prune at a time.
pub const REPOSITORY_LANE: &str = "repository";

macro_rules! job_columns {
    () => {
        "id, kind, site_id, payload, status, attempts, max_attempts, run_after, lease_owner, lease_expires_at, \
         cancel_requested, progress, result, error, actor, created_at, started_at, finished_at, ran_by"
    };
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> CatalogError {
    CatalogError::Corrupt(format!("job {what}: {e}"))
}

fn job_from_row(row: &AnyRow) -> CatalogResult<Job> {
    let payload: String = row.try_get("payload")?;
    let site: Option<String> = row.try_get("site_id")?;
    let status: String = row.try_get("status")?;
    let progress: Option<String> = row.try_get("progress")?;
    let result: Option<String> = row.try_get("result")?;
    Ok(Job {
        id: row.try_get("id")?,
        request: serde_json::from_str(&payload).map_err(|e| corrupt("payload", e))?,
        site_id: site
            .map(|s| s.parse::<SiteId>())
            .transpose()
            .map_err(|e| corrupt("site", e))?,
        status: status.parse().map_err(|e| corrupt("status", e))?,
        attempts: row.try_get::<i64, _>("attempts")? as u32,
        max_attempts: row.try_get::<i64, _>("max_attempts")? as u32,
        run_after: from_micros(row.try_get("run_after")?)?,
        lease_owner: row.try_get("lease_owner")?,
        ran_by: row.try_get("ran_by")?,
        lease_expires_at: opt_from_micros(row.try_get("lease_expires_at")?)?,
        cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
        progress: progress
            .map(|p| serde_json::from_str(&p))
            .transpose()
            .map_err(|e| corrupt("progress", e))?,
        result: result
            .map(|r| serde_json::from_str(&r))
            .transpose()
            .map_err(|e| corrupt("result", e))?,
        error: row.try_get("error")?,
        actor: row.try_get("actor")?,
        created_at: from_micros(row.try_get("created_at")?)?,
        started_at: opt_from_micros(row.try_get("started_at")?)?,
        finished_at: opt_from_micros(row.try_get("finished_at")?)?,
    })
}

fn lane_of(request: &JobRequest, site: Option<SiteId>) -> String {
    match (request, site) {
        (JobRequest::Prune, _) => REPOSITORY_LANE.into(),
        (_, Some(site)) => site.to_string(),
        (_, None) => REPOSITORY_LANE.into(),
    }
}

/// Wait before attempt `n + 1` after `n` failed attempts: 15 s, 1 min, 4 min, ... up to an hour.
pub fn backoff(attempts: u32) -> SignedDuration {
    let secs = 15i64.saturating_mul(4i64.saturating_pow(attempts.saturating_sub(1).min(6)));
    SignedDuration::from_secs(secs.min(3600))
}

/// A job about to be inserted.
struct NewJob<'a> {
    request: &'a JobRequest,
    site: Option<SiteId>,
    actor: &'a str,
    now: Timestamp,
    attempts: u32,
    run_after: Timestamp,
    max_attempts: u32,
}

/// How a job ended, as [`Catalog::finish_job`] records it.
#[derive(Debug, Clone)]
pub struct JobEnd {
    /// Completed, failed or cancelled.
    pub status: JobStatus,
    /// What it produced (a backup, a report).
    pub result: Option<serde_json::Value>,
    /// Why it failed.
    pub error: Option<String>,
    /// What it had done by the end, so a finished job still says how much
    /// it read.
    pub progress: Option<JobProgress>,
}

impl JobEnd {
    /// A job that did its work.
    pub fn completed(result: Option<serde_json::Value>) -> Self {
        JobEnd {
            status: JobStatus::Completed,
            result,
            error: None,
            progress: None,
        }
    }

    /// A job that failed, saying why.
    pub fn failed(error: impl Into<String>) -> Self {
        JobEnd {
            status: JobStatus::Failed,
            result: None,
            error: Some(error.into()),
            progress: None,
        }
    }

    /// A job stopped because someone asked.
    pub fn cancelled() -> Self {
        JobEnd {
            status: JobStatus::Cancelled,
            result: None,
            error: Some("cancelled".into()),
            progress: None,
        }
    }

    /// The same end, with the job's final progress.
    pub fn with_progress(mut self, progress: JobProgress) -> Self {
        self.progress = Some(progress);
        self
    }
}

/// Filters for listing jobs.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only these sites' jobs (`None`: all).
    pub sites: Option<Vec<SiteId>>,
    /// Only in this status.
    pub status: Option<JobStatus>,
    /// At most this many (newest first).
    pub limit: i64,
}

impl Catalog {
    /// Queue a job. A backup for a site that already has a backup queued
    /// is merged into it: the queued job is returned instead (`false`).
    pub async fn enqueue_job(
        &self,
        request: &JobRequest,
        site: Option<SiteId>,
        actor: &str,
        now: Timestamp,
        max_attempts: u32,
    ) -> CatalogResult<(Job, bool)> {
        let fresh = NewJob {
            request,
            site,
            actor,
            now,
            attempts: 0,
            run_after: now,
            max_attempts,
        };
        match self.insert_job(&fresh).await? {
            Some(job) => Ok((job, true)),
            None => {
                let merged_into = match site {
                    Some(site) => self.queued_backup_job(site).await?,
                    None => None,
                };
                let queued = merged_into.ok_or_else(|| {
                    CatalogError::Corrupt("a queued backup vanished while merging".into())
                })?;
                Ok((queued, false))
            }
        }
    }

    /// Queue again a backup whose process died with no job to retry it
    /// (found at start-up): its first attempt counts, the next waits the
    /// backoff. `None` when the site already has a backup queued.
    pub async fn requeue_interrupted_backup(
        &self,
        request: &JobRequest,
        site: SiteId,
        now: Timestamp,
        max_attempts: u32,
    ) -> CatalogResult<Option<Job>> {
        self.insert_job(&NewJob {
            request,
            site: Some(site),
            actor: "service",
            now,
            attempts: 1,
            run_after: now + backoff(1),
            max_attempts,
        })
        .await
    }

    /// Insert a job; `None` when it would be a second queued backup of
    /// its site.
    async fn insert_job(&self, new: &NewJob<'_>) -> CatalogResult<Option<Job>> {
        let id = super::log::next_id();
        let inserted = sqlx::query(
            "INSERT INTO jobs (id, kind, site_id, backup_id, lane, payload, status, attempts, max_attempts, run_after, \
             cancel_requested, actor, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $8, $9, 0, $10, $11)",
        )
        .bind(&id)
        .bind(new.request.kind())
        .bind(new.site.map(|s| s.to_string()))
        .bind(new.request.makes_backup().map(|b| b.to_string()))
        .bind(lane_of(new.request, new.site))
        .bind(serde_json::to_string(new.request).expect("job requests serialize"))
        .bind(i64::from(new.attempts))
        .bind(i64::from(new.max_attempts))
        .bind(to_micros(new.run_after))
        .bind(new.actor)
        .bind(to_micros(new.now))
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(Some(self.job(&id).await?.expect("just inserted"))),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The backup job queued for a site, if there is one (a site's lane
    /// is its id).
    pub async fn queued_backup_job(&self, site: SiteId) -> CatalogResult<Option<Job>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE lane = $1 AND status = 'queued' AND kind = 'backup'"
        ))
        .bind(site.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    /// Whether a queued or running job will make `backup`.
    pub async fn backup_job_active(&self, backup: BackupId) -> CatalogResult<bool> {
        let row = sqlx::query(
            "SELECT count(*) AS n FROM jobs WHERE backup_id = $1 AND status IN ('queued', 'running')",
        )
        .bind(backup.to_string())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// A job by id.
    pub async fn job(&self, id: &str) -> CatalogResult<Option<Job>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    /// Jobs, newest first. Filtered and limited in the query, so listing
    /// stays cheap however long the history grows.
    pub async fn list_jobs(&self, filter: &JobFilter) -> CatalogResult<Vec<Job>> {
        let mut sql = String::from(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE ($1 IS NULL OR status = $1)"
        ));
        if let Some(sites) = &filter.sites {
            if sites.is_empty() {
                return Ok(Vec::new());
            }
            let marks: Vec<String> = (0..sites.len()).map(|i| format!("${}", i + 2)).collect();
            sql.push_str(&format!(" AND site_id IN ({})", marks.join(", ")));
        }
        sql.push_str(" ORDER BY id DESC");
        if filter.limit > 0 {
            sql.push_str(&format!(" LIMIT {}", filter.limit));
        }
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(filter.status.map(|s| s.as_str().to_string()));
        for site in filter.sites.iter().flatten() {
            query = query.bind(site.to_string());
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(job_from_row).collect()
    }

    /// Jobs waiting for a worker.
    pub async fn queue_depth(&self) -> CatalogResult<i64> {
        let row = sqlx::query("SELECT count(*) AS n FROM jobs WHERE status = 'queued'")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Claim the next runnable job for `worker`, with a lease until
    /// `now + lease`.
    pub async fn claim_job(
        &self,
        worker: &str,
        now: Timestamp,
        lease: SignedDuration,
    ) -> CatalogResult<Option<Job>> {
        let pick = "SELECT j.id FROM jobs j WHERE j.status = 'queued' AND j.run_after <= $3 \
             AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.lane = j.lane AND r.status = 'running') \
             ORDER BY j.id LIMIT 1";
        let sql = match self.backend {
            Backend::Postgres => format!(
                "UPDATE jobs SET status = 'running', lease_owner = $1, ran_by = $1, lease_expires_at = $2, attempts = attempts + 1, \
                 started_at = COALESCE(started_at, $3) WHERE id = ({pick} FOR UPDATE SKIP LOCKED) RETURNING id"
            ),
            Backend::Sqlite => format!(
                "UPDATE jobs SET status = 'running', lease_owner = $1, ran_by = $1, lease_expires_at = $2, attempts = attempts + 1, \
                 started_at = COALESCE(started_at, $3) WHERE id = ({pick}) RETURNING id"
            ),
        };
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(worker)
            .bind(to_micros(now + lease))
            .bind(to_micros(now))
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => {
                let id: String = row.try_get("id")?;
                self.job(&id).await
            }
            None => Ok(None),
        }
    }

    /// Renew `worker`'s lease and record progress. Returns `None` when the
    /// worker no longer holds the job (its lease was taken over), else
    /// whether a cancel was asked for.
    pub async fn renew_lease(
        &self,
        id: &str,
        worker: &str,
        until: Timestamp,
        progress: Option<&JobProgress>,
    ) -> CatalogResult<Option<bool>> {
        let done = sqlx::query(
            "UPDATE jobs SET lease_expires_at = $1, progress = COALESCE($2, progress) \
             WHERE id = $3 AND lease_owner = $4 AND status = 'running'",
        )
        .bind(to_micros(until))
        .bind(progress.map(|p| serde_json::to_string(p).expect("progress serializes")))
        .bind(id)
        .bind(worker)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        Ok(self.job(id).await?.map(|j| j.cancel_requested))
    }

    /// Forget jobs that finished before `before` (completed, failed or
    /// cancelled): history, not state. Returns how many went.
    pub async fn purge_finished_jobs(&self, before: Timestamp) -> CatalogResult<u64> {
        let done = sqlx::query(
            "DELETE FROM jobs WHERE status IN ('completed', 'failed', 'cancelled') AND finished_at < $1",
        )
        .bind(to_micros(before))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// End a job `worker` holds: completed, failed or cancelled.
    pub async fn finish_job(
        &self,
        id: &str,
        worker: &str,
        end: &JobEnd,
        now: Timestamp,
    ) -> CatalogResult<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET status = $1, result = $2, error = $3, finished_at = $4, lease_owner = NULL, lease_expires_at = NULL, \
             progress = COALESCE($5, progress) WHERE id = $6 AND lease_owner = $7 AND status = 'running'",
        )
        .bind(end.status.as_str())
        .bind(end.result.as_ref().map(|r| r.to_string()))
        .bind(end.error.as_deref())
        .bind(to_micros(now))
        .bind(end.progress.as_ref().map(|p| serde_json::to_string(p).expect("progress serializes")))
        .bind(id)
        .bind(worker)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Put a job `worker` holds back in the queue to run after `after` (the
    /// site was busy): this try does not count as an attempt.
    pub async fn release_job(
        &self,
        id: &str,
        worker: &str,
        after: Timestamp,
        error: &str,
    ) -> CatalogResult<()> {
        sqlx::query(
            "UPDATE jobs SET status = 'queued', run_after = $1, error = $2, lease_owner = NULL, lease_expires_at = NULL, \
             attempts = attempts - 1 WHERE id = $3 AND lease_owner = $4 AND status = 'running'",
        )
        .bind(to_micros(after))
        .bind(error)
        .bind(id)
        .bind(worker)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Jobs whose worker's lease ran out: queue them again (with backoff)
    /// or, out of attempts, fail them. Returns the jobs touched.
    pub async fn requeue_expired_jobs(&self, now: Timestamp) -> CatalogResult<Vec<Job>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE status = 'running' AND lease_expires_at < $1"
        ))
        .bind(to_micros(now))
        .fetch_all(&self.pool)
        .await?;
        let mut touched = Vec::new();
        for row in &rows {
            let job = job_from_row(row)?;
            let owner = job.lease_owner.clone().unwrap_or_default();
            let reason = format!(
                "worker {owner} stopped responding (attempt {} of {})",
                job.attempts, job.max_attempts
            );
            let update = if job.attempts >= job.max_attempts {
                sqlx::query(
                    "UPDATE jobs SET status = 'failed', error = $1, finished_at = $2, lease_owner = NULL, lease_expires_at = NULL \
                     WHERE id = $3 AND status = 'running' AND lease_owner = $4",
                )
                .bind(format!("{reason}; giving up"))
                .bind(to_micros(now))
            } else {
                sqlx::query(
                    "UPDATE jobs SET status = 'queued', error = $1, run_after = $2, lease_owner = NULL, lease_expires_at = NULL \
                     WHERE id = $3 AND status = 'running' AND lease_owner = $4",
                )
                .bind(reason)
                .bind(to_micros(now + backoff(job.attempts)))
            };
            let done = update
                .bind(&job.id)
                .bind(&owner)
                .execute(&self.pool)
                .await?;
            if done.rows_affected() > 0 {
                touched.push(job);
            }
        }
        Ok(touched)
    }

    /// Cancel a job: a queued one at once; a running one is asked to stop
    /// (its worker sees it at the next lease renewal). Returns the job.
    pub async fn cancel_job(&self, id: &str, now: Timestamp) -> CatalogResult<Option<Job>> {
        sqlx::query("UPDATE jobs SET status = 'cancelled', finished_at = $1 WHERE id = $2 AND status = 'queued'")
            .bind(to_micros(now))
            .bind(id)
            .execute(&self.pool)
            .await?;
        sqlx::query("UPDATE jobs SET cancel_requested = 1 WHERE id = $1 AND status = 'running'")
            .bind(id)
            .execute(&self.pool)
            .await?;
        self.job(id).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_grows_and_caps() {
        let secs: Vec<i64> = (1..=8).map(|n| super::backoff(n).as_secs()).collect();
        assert_eq!(&secs[..4], &[15, 60, 240, 960]);
        assert!(secs.iter().all(|s| *s <= 3600));
    }
}
