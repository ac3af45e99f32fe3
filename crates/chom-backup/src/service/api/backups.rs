//! Backups: create (queued), list, show, delete, restore, verify, export.

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use super::problem::ApiJson;
use super::stream::ChannelWriter;
use super::{ApiError, AppState, Caller};
use crate::domain::{
    Backup, BackupConfiguration, BackupId, BackupType, JobRequest, Permission, Site, Trigger,
};

/// A backup request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupBody {
    /// `full`, `files` or `database` (default full).
    #[serde(rename = "type", default)]
    backup_type: Option<String>,
    /// Days to keep it, 1 to 365 (default 30).
    retention_days: Option<u32>,
    /// Require an encrypted repository.
    #[serde(default)]
    encrypt: bool,
    /// zstd level 1 to 22, or 0 for none (default 3).
    compression: Option<i32>,
}

/// The backup and the site it belongs to, if the caller may see it.
async fn visible_backup(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<(Backup, Site), ApiError> {
    let not_found = || ApiError::not_found(format!("backup {id} not found"));
    let id: BackupId = id.parse().map_err(|_| not_found())?;
    let backup = state
        .orchestrator
        .catalog()
        .backup(id)
        .await?
        .ok_or_else(not_found)?;
    let site = state
        .orchestrator
        .catalog()
        .site(backup.site_id)
        .await?
        .ok_or_else(not_found)?;
    if !caller.0.sees(site.id) {
        return Err(not_found());
    }
    Ok((backup, site))
}

#[utoipa::path(get, path = "/v1/sites/{site}/backups", tag = "backups", params(("site" = String, Path, description = "Name or id")),
    responses((status = 200, description = "The site's backups, newest first", body = Value)))]
pub(super) async fn list_backups(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(site): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let site = caller.site(&state, &site).await?;
    Ok(Json(json!(
        state
            .orchestrator
            .catalog()
            .list_backups(Some(site.id))
            .await?
    )))
}

#[utoipa::path(post, path = "/v1/sites/{site}/backups", tag = "backups", request_body = BackupBody, params(("site" = String, Path, description = "Name or id")),
    responses((status = 202, description = "Queued: the job and the (pending) backup", body = Value), (status = 400, description = "Bad input, naming the field")))]
pub(super) async fn create_backup(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(site): Path<String>,
    ApiJson(body): ApiJson<BackupBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let site = caller.site_with(&state, &site, Permission::Backup).await?;
    let t: BackupType = body.backup_type.as_deref().unwrap_or("full").parse()?;
    let mut config = BackupConfiguration::of_type(t, body.retention_days.unwrap_or(30))?;
    if body.encrypt {
        config = config.with_encryption();
    }
    match body.compression {
        Some(0) => config = config.without_compression(),
        Some(level) => config = config.with_compression(level)?,
        None => {}
    }
    let (job, backup) = state
        .enqueue_backup(&site.id.to_string(), config, Trigger::Api, &caller.actor())
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "job": job, "backup": backup })),
    ))
}

#[utoipa::path(get, path = "/v1/backups/{id}", tag = "backups", params(("id" = String, Path, description = "Backup id")),
    responses((status = 200, description = "The backup", body = Value), (status = 404, description = "No such backup (or not visible)")))]
pub(super) async fn get_backup(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (backup, _) = visible_backup(&state, &caller, &id).await?;
    Ok(Json(json!(backup)))
}

#[utoipa::path(delete, path = "/v1/backups/{id}", tag = "backups", params(("id" = String, Path, description = "Backup id")),
    responses((status = 204, description = "Deleted (space freed by the next prune)"), (status = 409, description = "Running or being restored")))]
pub(super) async fn delete_backup(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let (backup, site) = visible_backup(&state, &caller, &id).await?;
    caller.require(&site, Permission::Delete)?;
    caller
        .orchestrator(&state)
        .delete_backup(backup.id, "deleted through the API")
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A restore request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreBody {
    /// Restore into this site (name or id) instead of the backup's own.
    target_site: Option<String>,
    /// `files` or `database` only.
    only: Option<String>,
    /// Only these paths, relative to the document root.
    #[serde(default)]
    paths: Vec<String>,
}

#[utoipa::path(post, path = "/v1/backups/{id}/restore", tag = "backups", request_body = RestoreBody, params(("id" = String, Path, description = "Backup id")),
    responses((status = 202, description = "Queued", body = Value), (status = 409, description = "Nothing to restore")))]
pub(super) async fn restore_backup(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RestoreBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (backup, site) = visible_backup(&state, &caller, &id).await?;
    let target = match &body.target_site {
        Some(t) => caller.site(&state, t).await?,
        None => site,
    };
    caller.require(&target, Permission::Restore)?;
    let only = match body.only.as_deref() {
        None => None,
        Some(text) => match text.parse::<BackupType>()? {
            BackupType::Full => {
                return Err(ApiError::invalid(
                    "only",
                    "only takes files or database".into(),
                ));
            }
            t => Some(t),
        },
    };
    let request = JobRequest::Restore {
        backup: backup.id,
        target_site: Some(target.id),
        only,
        paths: body.paths,
    };
    let (job, _) = state
        .enqueue(&request, Some(target.id), &caller.actor())
        .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "job": job }))))
}

/// Verification options.
#[derive(Debug, Deserialize, IntoParams, Default)]
pub struct VerifyQuery {
    /// Read back and verify every chunk (default true).
    deep: Option<bool>,
}

#[utoipa::path(post, path = "/v1/backups/{id}/verify", tag = "backups", params(("id" = String, Path, description = "Backup id"), VerifyQuery),
    responses((status = 202, description = "Queued; the job's result is the integrity report", body = Value)))]
pub(super) async fn verify_backup(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(query): Query<VerifyQuery>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (backup, site) = visible_backup(&state, &caller, &id).await?;
    let deep = query.deep.unwrap_or(true);
    let (job, _) = state
        .enqueue(
            &JobRequest::Verify {
                backup: backup.id,
                deep,
            },
            Some(site.id),
            &caller.actor(),
        )
        .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "job": job }))))
}

/// Export options.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ExportQuery {
    /// `tar`, `tar.gz` (default) or `tar.zst`.
    format: Option<String>,
}

#[utoipa::path(get, path = "/v1/backups/{id}/export", tag = "backups", params(("id" = String, Path, description = "Backup id"), ExportQuery),
    responses((status = 200, description = "The backup as a tar stream", content_type = "application/x-tar"), (status = 409, description = "No data")))]
pub(super) async fn export_backup(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(query): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let (backup, site) = visible_backup(&state, &caller, &id).await?;
    caller.require(&site, Permission::Download)?;
    let format = chom_repo::ExportFormat::parse(query.format.as_deref().unwrap_or("tar.gz"))
        .map_err(|e| ApiError::invalid("format", e.to_string()))?;
    let snapshot = backup
        .snapshot_id
        .as_deref()
        .and_then(|s| chom_repo::Id::from_hex(s).ok())
        .ok_or_else(|| {
            ApiError::from(crate::Error::Conflict(format!(
                "backup {} has no data ({})",
                backup.id,
                backup.status.as_str()
            )))
        })?;
    let (writer, body) = ChannelWriter::new();
    let fail = writer.failer();
    let repo = state.orchestrator.repository().clone();
    tokio::spawn(async move {
        let result = repo
            .export(
                &snapshot,
                writer,
                format,
                &chom_repo::ExportOptions::default(),
                chom_repo::Progress::new(),
            )
            .await;
        if let Err(e) = result {
            tracing::error!("export of snapshot {} stopped: {e}", snapshot.short());
            fail.fail(e.to_string()).await;
        }
    });
    let extension = match format {
        chom_repo::ExportFormat::Tar => "tar",
        chom_repo::ExportFormat::TarGz => "tar.gz",
        chom_repo::ExportFormat::TarZst => "tar.zst",
    };
    state
        .orchestrator
        .catalog()
        .audit(&crate::catalog::AuditEntry {
            actor: caller.actor(),
            action: "backup.download".into(),
            site_id: Some(site.id),
            backup_id: Some(backup.id),
            outcome: crate::catalog::AuditOutcome::Ok,
            detail: Some(format!("as {extension}")),
            at: None,
        })
        .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"{}-{}.{extension}\"",
                    site.name, backup.id
                ),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response())
}
