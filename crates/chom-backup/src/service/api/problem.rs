//! Errors as problem details (RFC 9457) with stable codes.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;

/// An API error: status, stable code, message, and the field at fault.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code (`site_busy`, `invalid_input`, ...).
    pub code: &'static str,
    /// What is wrong, for people.
    pub detail: String,
    /// The request field at fault, for bad input.
    pub field: Option<String>,
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            detail: detail.into(),
            field: None,
        }
    }

    /// 401.
    pub fn unauthorized(detail: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    /// 403.
    pub fn forbidden(detail: String) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 404.
    pub fn not_found(detail: String) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    /// 400 naming a field.
    pub fn invalid(field: &str, detail: String) -> Self {
        ApiError {
            field: Some(field.to_string()),
            ..Self::new(StatusCode::BAD_REQUEST, "invalid_input", detail)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Problem {
            kind: format!(
                "https://chom-backup.dev/problems/{}",
                self.code.replace('_', "-")
            ),
            title: self.status.canonical_reason().unwrap_or("error"),
            status: self.status.as_u16(),
            detail: &self.detail,
            code: self.code,
            field: self.field.as_deref(),
        };
        let mut response = (self.status, Json(body)).into_response();
        response.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let detail = e.to_string();
        match e {
            Error::Invalid(d) => ApiError::invalid(d.field, detail),
            Error::SiteNotFound(_) | Error::BackupNotFound(_) | Error::StoredFileNotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", detail)
            }
            Error::SiteExists(_) => ApiError::new(StatusCode::CONFLICT, "site_exists", detail),
            Error::SiteBusy { .. } => ApiError::new(StatusCode::CONFLICT, "site_busy", detail),
            Error::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "conflict", detail),
            Error::Database { .. } => {
                ApiError::new(StatusCode::BAD_GATEWAY, "database_error", detail)
            }
            Error::Repository(inner) if inner.is_damage() => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "damaged", detail)
            }
            Error::Repository(_) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "repository_error", detail)
            }
            other => {
                tracing::error!("request failed: {other}");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the service log",
                )
            }
        }
    }
}

impl From<crate::catalog::CatalogError> for ApiError {
    fn from(e: crate::catalog::CatalogError) -> Self {
        Error::from(e).into()
    }
}

impl From<crate::domain::DomainError> for ApiError {
    fn from(e: crate::domain::DomainError) -> Self {
        ApiError::invalid(e.field, e.message)
    }
}

/// A JSON body whose rejections are problem details naming the field.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_problem(rejection)),
        }
    }
}

fn json_problem(rejection: JsonRejection) -> ApiError {
    let text = rejection.body_text();
    let field = field_of(&text);
    ApiError::invalid(&field, format!("invalid request body: {text}"))
}

/// The field a JSON error is about: axum prefixes data errors with their
/// path (`type: unknown variant ...`); serde names missing and unknown
/// fields between backticks.
fn field_of(text: &str) -> String {
    let rest = text.split("target type: ").nth(1).unwrap_or(text);
    for prefix in ["missing field `", "unknown field `"] {
        if let Some(after) = rest.strip_prefix(prefix) {
            return after.split('`').next().unwrap_or("body").to_string();
        }
    }
    match rest.split_once(": ") {
        Some((path, _)) if !path.is_empty() && !path.contains(' ') => path.to_string(),
        _ => "body".into(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fields_are_found_in_serde_messages() {
        let f = super::field_of;
        assert_eq!(
            f(
                "Failed to deserialize the JSON body into the target type: type: unknown variant `x`, expected `full`"
            ),
            "type"
        );
        assert_eq!(
            f(
                "Failed to deserialize the JSON body into the target type: missing field `root` at line 1 column 2"
            ),
            "root"
        );
        assert_eq!(
            f("Failed to parse the request body as JSON: EOF while parsing"),
            "body"
        );
        assert_eq!(
            f(
                "Failed to deserialize the JSON body into the target type: retention_days: invalid type: string"
            ),
            "retention_days"
        );
    }
}
