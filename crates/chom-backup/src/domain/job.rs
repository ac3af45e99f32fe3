//! Jobs: backup operations run asynchronously by the service's workers.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{BackupId, BackupType, Retention, SiteId};

/// What a job does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum JobRequest {
    /// Run a backup whose record was created when the job was queued (a
    /// retried job runs the same backup: one record, whatever happens).
    Backup {
        /// The backup record.
        backup: BackupId,
        /// Its site.
        site: SiteId,
    },
    /// Restore a backup.
    Restore {
        /// The backup.
        backup: BackupId,
        /// Into this site (default: its own).
        target_site: Option<SiteId>,
        /// Only files or the database.
        only: Option<BackupType>,
        /// Only these paths.
        #[serde(default)]
        paths: Vec<String>,
    },
    /// Check a backup.
    Verify {
        /// The backup.
        backup: BackupId,
        /// Read every chunk back.
        deep: bool,
    },
    /// Apply a retention policy to a site.
    Retention {
        /// The site.
        site: SiteId,
        /// The policy.
        policy: Retention,
    },
    /// Prune the repository.
    Prune,
}

impl JobRequest {
    /// The kind's name.
    pub fn kind(&self) -> &'static str {
        match self {
            JobRequest::Backup { .. } => "backup",
            JobRequest::Restore { .. } => "restore",
            JobRequest::Verify { .. } => "verify",
            JobRequest::Retention { .. } => "retention",
            JobRequest::Prune => "prune",
        }
    }

    /// The backup this job makes, for a backup job.
    pub fn makes_backup(&self) -> Option<BackupId> {
        match self {
            JobRequest::Backup { backup, .. } => Some(*backup),
            _ => None,
        }
    }
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting for a worker.
    Queued,
    /// A worker holds its lease.
    Running,
    /// Done.
    Completed,
    /// Gave up (see `error`).
    Failed,
    /// Cancelled before it finished.
    Cancelled,
}

impl JobStatus {
    /// The text form.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }
}

impl std::str::FromStr for JobStatus {
    type Err = super::DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "queued" => Ok(JobStatus::Queued),
            "running" => Ok(JobStatus::Running),
            "completed" => Ok(JobStatus::Completed),
            "failed" => Ok(JobStatus::Failed),
            "cancelled" => Ok(JobStatus::Cancelled),
            other => Err(super::DomainError::new(
                "status",
                format!("unknown job status {other:?}"),
            )),
        }
    }
}

/// Progress of a running job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobProgress {
    /// Bytes processed.
    pub bytes_done: u64,
    /// Files processed.
    pub files_done: u64,
    /// Bytes in all, once known.
    pub bytes_total: Option<u64>,
    /// Files in all, once known.
    pub files_total: Option<u64>,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Its id (a ULID: increasing).
    pub id: String,
    /// What it does.
    pub request: JobRequest,
    /// The site it concerns.
    pub site_id: Option<SiteId>,
    /// Where it is.
    pub status: JobStatus,
    /// Attempts started so far.
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Not started before this time.
    pub run_after: Timestamp,
    /// The worker holding it.
    pub lease_owner: Option<String>,
    /// The worker that last took it (`host:pid:n`).
    pub ran_by: Option<String>,
    /// When the worker's lease runs out.
    pub lease_expires_at: Option<Timestamp>,
    /// A cancel was asked for.
    pub cancel_requested: bool,
    /// Progress while running.
    pub progress: Option<JobProgress>,
    /// The outcome, once completed.
    pub result: Option<serde_json::Value>,
    /// Why it failed.
    pub error: Option<String>,
    /// Who asked for it.
    pub actor: String,
    /// When it was queued.
    pub created_at: Timestamp,
    /// When a worker first took it.
    pub started_at: Option<Timestamp>,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
}
