//! The HTTP API (`/v1`, JSON): what the hosting panel calls.
//!
//! Authentication is `Authorization: Bearer TOKEN`; `/v1/openapi.json` and
//! `/v1/health` are open, everything else answers 401 without a valid
//! token. Tokens are admin, or scoped to sites with permissions per site: a
//! scoped token sees only its sites (others are 404, as if they did not
//! exist) and gets 403 for what its permissions do not cover there.
//! Errors are problem details (`application/problem+json`) with a stable
//! `code` and, for bad input, the `field` at fault. Every change is in the
//! audit log under `token:NAME`.

mod backups;
mod jobs;
mod misc;
mod problem;
mod sites;
mod stream;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use problem::ApiError;

use super::Service;
use crate::domain::{ApiToken, Permission, Site, token_hash};
use crate::orchestrator::BackupOrchestrator;

/// Shared state of every handler.
pub type AppState = Arc<Service>;

/// The caller: the token that authenticated the request.
#[derive(Debug, Clone)]
pub struct Caller(pub ApiToken);

impl Caller {
    /// The orchestrator acting for this caller (audit actor `token:NAME`).
    fn orchestrator(&self, state: &AppState) -> BackupOrchestrator {
        state
            .orchestrator
            .acting_as(&format!("token:{}", self.0.name))
    }

    fn actor(&self) -> String {
        format!("token:{}", self.0.name)
    }

    /// Find a site the caller may see; others do not exist for it (404).
    async fn site(&self, state: &AppState, name_or_id: &str) -> Result<Site, ApiError> {
        let site = state.orchestrator.catalog().find_site(name_or_id).await?;
        match site {
            Some(site) if self.0.sees(site.id) => Ok(site),
            _ => Err(ApiError::not_found(format!(
                "site {name_or_id:?} not found"
            ))),
        }
    }

    /// Find a site and require a permission on it.
    async fn site_with(
        &self,
        state: &AppState,
        name_or_id: &str,
        permission: Permission,
    ) -> Result<Site, ApiError> {
        let site = self.site(state, name_or_id).await?;
        self.require(&site, permission)?;
        Ok(site)
    }

    fn require(&self, site: &Site, permission: Permission) -> Result<(), ApiError> {
        if self.0.allows(site.id, permission) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "token {} may not {} on site {}",
                self.0.name,
                format!("{permission:?}").to_lowercase(),
                site.name
            )))
        }
    }

    fn require_admin(&self) -> Result<(), ApiError> {
        if self.0.admin {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "token {} is not an admin token",
                self.0.name
            )))
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "chom-backup",
        description = "Backups of hosting sites: sites, backups, restores, retention, schedules, jobs, events.",
        version = env!("CARGO_PKG_VERSION")
    ),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// All routes with their OpenAPI descriptions.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(sites::list_sites, sites::create_site))
        .routes(routes!(
            sites::get_site,
            sites::update_site,
            sites::delete_site
        ))
        .routes(routes!(backups::list_backups, backups::create_backup))
        .routes(routes!(backups::get_backup, backups::delete_backup))
        .routes(routes!(backups::restore_backup))
        .routes(routes!(backups::verify_backup))
        .routes(routes!(backups::export_backup))
        .routes(routes!(sites::site_stats))
        .routes(routes!(sites::apply_retention))
        .routes(routes!(
            sites::get_schedule,
            sites::set_schedule,
            sites::delete_schedule
        ))
        .routes(routes!(jobs::list_jobs))
        .routes(routes!(jobs::get_job, jobs::cancel_job))
        .routes(routes!(misc::list_events))
        .routes(routes!(misc::list_audit))
        .routes(routes!(misc::health))
        .routes(routes!(misc::metrics))
        .routes(routes!(misc::list_webhooks, misc::create_webhook))
        .routes(routes!(misc::delete_webhook))
        .routes(routes!(misc::webhook_deliveries))
}

/// The OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router().into_openapi()
}

/// The service's router.
pub fn router(state: AppState) -> Router {
    let (routes, doc) = api_router().split_for_parts();
    let doc = Arc::new(doc);
    routes
        .route(
            "/v1/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { axum::Json((*doc).clone()) }
            }),
        )
        .fallback(|| async { ApiError::not_found("no such route".into()) })
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state)
}

/// Paths that answer without a token.
const OPEN: &[&str] = &["/v1/openapi.json", "/v1/health"];

async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    if OPEN.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(secret) = presented.filter(|s| !s.is_empty()) else {
        return ApiError::unauthorized("send Authorization: Bearer TOKEN").into_response();
    };
    match state
        .orchestrator
        .catalog()
        .token_by_hash(&token_hash(secret))
        .await
    {
        Ok(Some(token)) => {
            request.extensions_mut().insert(Caller(token));
            next.run(request).await
        }
        Ok(None) => ApiError::unauthorized("the token is unknown or revoked").into_response(),
        Err(e) => ApiError::from(crate::Error::from(e)).into_response(),
    }
}
