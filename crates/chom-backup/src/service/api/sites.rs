//! Sites, their statistics, retention and schedules.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::problem::ApiJson;
use super::{ApiError, AppState, Caller};
use crate::NewSite;
use crate::domain::{
    BackupConfiguration, BackupType, CalendarPolicy, DatabaseSpec, Frequency, JobRequest,
    PasswordRef, Permission, Retention, RetentionPolicy, Schedule, Site,
};

/// A site as the API shows it: the database as a URL, its password only as
/// a reference.
pub(super) fn site_json(site: &Site) -> Value {
    json!({
        "id": site.id.to_string(),
        "name": site.name,
        "root": site.root.display().to_string(),
        "excludes": site.excludes,
        "database": site.database.as_ref().map(DatabaseSpec::url),
        "database_password": site.database.as_ref().and_then(|d| d.password.as_ref().map(|p| p.to_string())),
        "timezone": site.timezone,
        "created_at": site.created_at.to_string(),
    })
}

/// A new site, or a site's new settings.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteBody {
    /// Unique name (lowercase letters, digits, '.', '_', '-'); ignored by PUT.
    name: Option<String>,
    /// Absolute document root.
    root: String,
    /// Exclude patterns.
    #[serde(default)]
    excludes: Vec<String>,
    /// `sqlite:PATH`, `mysql://USER@HOST:PORT/DB` or `postgres://USER@HOST:PORT/DB`.
    db: Option<String>,
    /// File holding the database password (a reference; never stored in clear).
    db_password_file: Option<String>,
    /// Environment variable of the service holding the database password.
    db_password_env: Option<String>,
    /// IANA time zone (default UTC).
    timezone: Option<String>,
    /// Contact the database before accepting the site (default true).
    #[serde(default = "yes")]
    probe: bool,
}

fn yes() -> bool {
    true
}

impl SiteBody {
    fn database(&self) -> Result<Option<DatabaseSpec>, ApiError> {
        if self.db_password_file.is_some() && self.db_password_env.is_some() {
            return Err(ApiError::invalid(
                "db_password_file",
                "give db_password_file or db_password_env, not both".into(),
            ));
        }
        let password = match (&self.db_password_file, &self.db_password_env) {
            (Some(f), _) => Some(PasswordRef::File(f.into())),
            (None, Some(v)) => Some(PasswordRef::Env(v.clone())),
            _ => None,
        };
        Ok(self
            .db
            .as_deref()
            .map(|url| DatabaseSpec::parse(url, password))
            .transpose()?)
    }
}

#[utoipa::path(get, path = "/v1/sites", tag = "sites", responses((status = 200, description = "Sites the token sees", body = Value)))]
pub(super) async fn list_sites(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let sites = state.orchestrator.sites().await?;
    let visible: Vec<Value> = sites
        .iter()
        .filter(|s| caller.0.sees(s.id))
        .map(site_json)
        .collect();
    Ok(Json(json!(visible)))
}

#[utoipa::path(post, path = "/v1/sites", tag = "sites", request_body = SiteBody,
    responses((status = 201, description = "Site added", body = Value), (status = 400, description = "Bad input, naming the field"), (status = 409, description = "Name taken")))]
pub(super) async fn create_site(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<SiteBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require_admin()?;
    let name = body
        .name
        .clone()
        .ok_or_else(|| ApiError::invalid("name", "a site needs a name".into()))?;
    let new = NewSite {
        name,
        root: body.root.clone().into(),
        excludes: body.excludes.clone(),
        database: body.database()?,
        timezone: body.timezone.clone(),
    };
    let site = caller
        .orchestrator(&state)
        .add_site(new, body.probe)
        .await?;
    Ok((StatusCode::CREATED, Json(site_json(&site))))
}

#[utoipa::path(get, path = "/v1/sites/{site}", tag = "sites", params(("site" = String, Path, description = "Name or id")),
    responses((status = 200, description = "The site", body = Value), (status = 404, description = "No such site (or not visible)")))]
pub(super) async fn get_site(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(site): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let site = caller.site(&state, &site).await?;
    let schedule = state.orchestrator.catalog().schedule(site.id).await?;
    let mut value = site_json(&site);
    value["schedule"] = json!(schedule);
    Ok(Json(value))
}

#[utoipa::path(put, path = "/v1/sites/{site}", tag = "sites", request_body = SiteBody, params(("site" = String, Path, description = "Name or id")),
    responses((status = 200, description = "Updated", body = Value), (status = 400, description = "Bad input")))]
pub(super) async fn update_site(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(site): Path<String>,
    ApiJson(body): ApiJson<SiteBody>,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let mut current = caller.site(&state, &site).await?;
    current.root = body.root.clone().into();
    current.excludes = body.excludes.clone();
    current.database = body.database()?;
    if let Some(tz) = &body.timezone {
        current.timezone = tz.clone();
    }
    let updated = caller
        .orchestrator(&state)
        .update_site(current, body.probe)
        .await?;
    Ok(Json(site_json(&updated)))
}

#[utoipa::path(delete, path = "/v1/sites/{site}", tag = "sites", params(("site" = String, Path, description = "Name or id")),
    responses((status = 204, description = "Removed"), (status = 409, description = "The site still has backups")))]
pub(super) async fn delete_site(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(site): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    let site = caller.site(&state, &site).await?;
    caller
        .orchestrator(&state)
        .remove_site(&site.id.to_string())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/sites/{site}/stats", tag = "sites", params(("site" = String, Path, description = "Name or id")),
    responses((status = 200, description = "Statistics", body = Value)))]
pub(super) async fn site_stats(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(site): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let site = caller.site(&state, &site).await?;
    Ok(Json(json!(
        state
            .orchestrator
            .get_statistics(&site.id.to_string())
            .await?
    )))
}

/// A retention request: a preset, count and age, or calendar rules.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionBody {
    /// `default`, `aggressive`, `conservative` or `compliance`.
    policy: Option<String>,
    /// With `max_age_days`: keep at most this many completed backups.
    max_backups: Option<u32>,
    /// With `max_backups`: delete backups older than this.
    max_age_days: Option<u32>,
    /// Keep the newest completed backup however old (default true).
    keep_minimum_one: Option<bool>,
    /// Calendar rules.
    calendar: Option<CalendarBody>,
    /// Only report what would go.
    #[serde(default)]
    dry_run: bool,
}

/// Calendar retention rules.
#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CalendarBody {
    #[serde(default)]
    last: u32,
    #[serde(default)]
    daily: u32,
    #[serde(default)]
    weekly: u32,
    #[serde(default)]
    monthly: u32,
    #[serde(default)]
    yearly: u32,
    #[serde(default)]
    within_hours: u32,
}

impl RetentionBody {
    fn policy(&self) -> Result<Retention, ApiError> {
        if let Some(c) = &self.calendar {
            let policy = CalendarPolicy {
                last: c.last,
                daily: c.daily,
                weekly: c.weekly,
                monthly: c.monthly,
                yearly: c.yearly,
                within_hours: c.within_hours,
            };
            policy.validate()?;
            return Ok(Retention::Calendar(policy));
        }
        match (&self.policy, self.max_backups, self.max_age_days) {
            (Some(name), None, None) => Ok(Retention::Simple(RetentionPolicy::preset(name)?)),
            (None, Some(n), Some(d)) => Ok(Retention::Simple(RetentionPolicy::new(
                n,
                d,
                self.keep_minimum_one.unwrap_or(true),
            )?)),
            _ => Err(ApiError::invalid(
                "policy",
                "give policy, or max_backups with max_age_days, or calendar rules".into(),
            )),
        }
    }
}

#[utoipa::path(post, path = "/v1/sites/{site}/retention", tag = "sites", request_body = RetentionBody, params(("site" = String, Path, description = "Name or id")),
    responses((status = 200, description = "Dry run: what would go", body = Value), (status = 202, description = "Queued as a job", body = Value)))]
pub(super) async fn apply_retention(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(site): Path<String>,
    ApiJson(body): ApiJson<RetentionBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let site = caller.site_with(&state, &site, Permission::Delete).await?;
    let policy = body.policy()?;
    if body.dry_run {
        let plan = state
            .orchestrator
            .apply_retention_policy(&site.id.to_string(), &policy, true)
            .await?;
        return Ok((StatusCode::OK, Json(json!(plan))));
    }
    let (job, _) = state
        .enqueue(
            &JobRequest::Retention {
                site: site.id,
                policy,
            },
            Some(site.id),
            &caller.actor(),
        )
        .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "job": job }))))
}

/// A schedule.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleBody {
    /// `daily`, `weekly`, `monthly` or a cron expression.
    frequency: String,
    /// `full`, `files` or `database` (default full).
    #[serde(rename = "type", default)]
    backup_type: Option<String>,
    /// Days each scheduled backup is kept (default 30).
    retention_days: Option<u32>,
}

#[utoipa::path(get, path = "/v1/sites/{site}/schedules", tag = "schedules", params(("site" = String, Path, description = "Name or id")),
    responses((status = 200, description = "The site's schedule (null when none)", body = Value)))]
pub(super) async fn get_schedule(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(site): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let site = caller.site(&state, &site).await?;
    Ok(Json(json!(
        state.orchestrator.catalog().schedule(site.id).await?
    )))
}

#[utoipa::path(put, path = "/v1/sites/{site}/schedules", tag = "schedules", request_body = ScheduleBody, params(("site" = String, Path, description = "Name or id")),
    responses((status = 200, description = "Set", body = Value), (status = 400, description = "Bad frequency, type or retention")))]
pub(super) async fn set_schedule(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(site): Path<String>,
    ApiJson(body): ApiJson<ScheduleBody>,
) -> Result<Json<Value>, ApiError> {
    let site = caller.site_with(&state, &site, Permission::Backup).await?;
    let frequency: Frequency = body.frequency.parse()?;
    let t: BackupType = body.backup_type.as_deref().unwrap_or("full").parse()?;
    let config = BackupConfiguration::of_type(t, body.retention_days.unwrap_or(30))?;
    let schedule: Schedule = caller
        .orchestrator(&state)
        .schedule_automatic_backup(&site.id.to_string(), frequency, config)
        .await?;
    Ok(Json(json!(schedule)))
}

#[utoipa::path(delete, path = "/v1/sites/{site}/schedules", tag = "schedules", params(("site" = String, Path, description = "Name or id")),
    responses((status = 204, description = "Removed"), (status = 404, description = "No schedule")))]
pub(super) async fn delete_schedule(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(site): Path<String>,
) -> Result<StatusCode, ApiError> {
    let site = caller.site_with(&state, &site, Permission::Backup).await?;
    if caller
        .orchestrator(&state)
        .remove_schedule(&site.id.to_string())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "site {} has no schedule",
            site.name
        )))
    }
}
