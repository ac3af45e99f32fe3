//! Jobs: list, show (with progress), cancel.

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;

use super::{ApiError, AppState, Caller};
use crate::catalog::JobFilter;
use crate::domain::{Job, JobRequest, JobStatus, Permission};

/// Job list filters.
#[derive(Debug, Deserialize, IntoParams)]
pub struct JobQuery {
    /// Only jobs in this status.
    status: Option<String>,
    /// At most this many (default 100).
    limit: Option<i64>,
}

/// A job the caller may see; prune jobs (no site) are for admins.
async fn visible_job(state: &AppState, caller: &Caller, id: &str) -> Result<Job, ApiError> {
    let not_found = || ApiError::not_found(format!("job {id} not found"));
    let job = state
        .orchestrator
        .catalog()
        .job(id)
        .await?
        .ok_or_else(not_found)?;
    let visible = match job.site_id {
        Some(site) => caller.0.sees(site),
        None => caller.0.admin,
    };
    if visible { Ok(job) } else { Err(not_found()) }
}

#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(JobQuery),
    responses((status = 200, description = "Jobs the token sees, newest first", body = Value)))]
pub(super) async fn list_jobs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<JobQuery>,
) -> Result<Json<Value>, ApiError> {
    let status = q
        .status
        .as_deref()
        .map(str::parse::<JobStatus>)
        .transpose()?;
    let filter = JobFilter {
        sites: caller.0.site_ids(),
        status,
        limit: q.limit.unwrap_or(100).clamp(1, 10_000),
    };
    Ok(Json(json!(
        state.orchestrator.catalog().list_jobs(&filter).await?
    )))
}

#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", params(("id" = String, Path, description = "Job id")),
    responses((status = 200, description = "The job, with progress while it runs and its result when done", body = Value), (status = 404, description = "No such job")))]
pub(super) async fn get_job(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(visible_job(&state, &caller, &id).await?)))
}

#[utoipa::path(delete, path = "/v1/jobs/{id}", tag = "jobs", params(("id" = String, Path, description = "Job id")),
    responses((status = 200, description = "Cancelled (queued) or asked to stop (running)", body = Value)))]
pub(super) async fn cancel_job(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let job = visible_job(&state, &caller, &id).await?;
    let needed = match job.request {
        JobRequest::Backup { .. } | JobRequest::Verify { .. } => Permission::Backup,
        JobRequest::Restore { .. } => Permission::Restore,
        JobRequest::Retention { .. } => Permission::Delete,
        JobRequest::Prune => {
            caller.require_admin()?;
            Permission::View
        }
    };
    if let Some(site) = job.site_id
        && !caller.0.allows(site, needed)
    {
        return Err(ApiError::forbidden(format!(
            "token {} may not cancel this job",
            caller.0.name
        )));
    }
    let job = state
        .orchestrator
        .catalog()
        .cancel_job(&id, state.now())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("job {id} not found")))?;
    state
        .orchestrator
        .catalog()
        .audit(&crate::catalog::AuditEntry {
            actor: caller.actor(),
            action: "job.cancel".into(),
            site_id: job.site_id,
            backup_id: None,
            outcome: crate::catalog::AuditOutcome::Ok,
            detail: Some(format!("job {} ({})", job.id, job.request.kind())),
            at: None,
        })
        .await?;
    Ok(Json(json!(job)))
}
