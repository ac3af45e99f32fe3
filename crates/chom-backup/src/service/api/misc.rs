//! Events, audit, health, metrics and webhooks.

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use super::problem::ApiJson;
use super::{ApiError, AppState, Caller};

/// Event list paging.
#[derive(Debug, Deserialize, IntoParams)]
pub struct EventQuery {
    /// Only events after this event id.
    after: Option<String>,
    /// Only this site's (name or id).
    site: Option<String>,
    /// At most this many (default 100).
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/v1/events", tag = "events", params(EventQuery),
    responses((status = 200, description = "Events, oldest first", body = Value)))]
pub(super) async fn list_events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<EventQuery>,
) -> Result<Json<Value>, ApiError> {
    let site = match &q.site {
        Some(s) => Some(caller.site(&state, s).await?.id),
        None => None,
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    let mut events = state
        .orchestrator
        .catalog()
        .events(site, q.after.as_deref(), limit)
        .await?;
    events.retain(|e| caller.0.sees(e.event.site_id()));
    Ok(Json(json!(events)))
}

/// Audit filters.
#[derive(Debug, Deserialize, IntoParams)]
pub struct AuditQuery {
    /// Only this site's (name or id).
    site: Option<String>,
    /// At most this many (default 100).
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, description = "Audit entries, newest first", body = Value)))]
pub(super) async fn list_audit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let site = match &q.site {
        Some(s) => Some(caller.site(&state, s).await?.id),
        None => None,
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    let mut entries = state.orchestrator.catalog().audit_log(site, limit).await?;
    if !caller.0.admin {
        entries.retain(|e| e.site_id.is_some_and(|s| caller.0.sees(s)));
    }
    Ok(Json(json!(entries)))
}

#[utoipa::path(get, path = "/v1/health", tag = "health", security(),
    responses((status = 200, description = "The service is up", body = Value)))]
pub(super) async fn health(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let catalog = state.orchestrator.catalog();
    let stale = state.stale_sites().await?;
    Ok(Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "queue_depth": catalog.queue_depth().await?,
        "running_jobs": state.running.len(),
        "stale_sites": stale.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
    })))
}

#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub(super) async fn metrics(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_admin()?;
    let text = state.metrics_text().await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text))
}

/// A webhook subscription.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookBody {
    /// Where events are POSTed.
    url: String,
    /// The HMAC-SHA256 key of the signature header.
    secret: String,
    /// Event kinds to deliver (`BackupCreated`, ...); empty or absent for all.
    #[serde(default)]
    events: Vec<String>,
}

const EVENT_KINDS: &[&str] = &[
    "BackupCreated",
    "BackupRestored",
    "BackupFailed",
    "BackupDeleted",
    "RetentionApplied",
    "SiteStale",
    "ScheduleMissed",
    "BackupVerificationFailed",
];

#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    responses((status = 200, description = "Subscriptions (secrets not shown)", body = Value)))]
pub(super) async fn list_webhooks(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    Ok(Json(json!(state.orchestrator.catalog().webhooks().await?)))
}

#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = WebhookBody,
    responses((status = 201, description = "Subscribed: receives events from now on", body = Value), (status = 400, description = "Bad URL or event kind")))]
pub(super) async fn create_webhook(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<WebhookBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require_admin()?;
    if !(body.url.starts_with("http://") || body.url.starts_with("https://")) {
        return Err(ApiError::invalid(
            "url",
            format!("{:?} is not an http(s) URL", body.url),
        ));
    }
    if body.secret.len() < 16 {
        return Err(ApiError::invalid(
            "secret",
            "use a secret of at least 16 characters".into(),
        ));
    }
    if let Some(bad) = body
        .events
        .iter()
        .find(|e| !EVENT_KINDS.contains(&e.as_str()))
    {
        return Err(ApiError::invalid(
            "events",
            format!("unknown event kind {bad:?}: use {}", EVENT_KINDS.join(", ")),
        ));
    }
    let hook = state
        .orchestrator
        .catalog()
        .insert_webhook(&body.url, &body.secret, &body.events, state.now())
        .await?;
    state
        .orchestrator
        .catalog()
        .audit(&crate::catalog::AuditEntry {
            actor: caller.actor(),
            action: "webhook.add".into(),
            site_id: None,
            backup_id: None,
            outcome: crate::catalog::AuditOutcome::Ok,
            detail: Some(hook.url.clone()),
            at: None,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(json!(hook))))
}

#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path, description = "Subscription id")),
    responses((status = 204, description = "Removed"), (status = 404, description = "No such subscription")))]
pub(super) async fn delete_webhook(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    if state.orchestrator.catalog().delete_webhook(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("webhook {id} not found")))
    }
}

#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks", params(("id" = String, Path, description = "Subscription id")),
    responses((status = 200, description = "Delivery attempts, newest first", body = Value)))]
pub(super) async fn webhook_deliveries(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    Ok(Json(json!(
        state.orchestrator.catalog().deliveries(&id, 500).await?
    )))
}
