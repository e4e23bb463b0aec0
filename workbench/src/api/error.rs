//! API errors: every failure is `{"error": {"code", "message"}}` with a fitting status.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use datasets::{StoreError, StoreErrorKind};

/// The body of every error answer: `{"error": {"code", "message"}}`.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ApiErrorBody {
    error: ErrorDetail,
}

/// What went wrong: a stable code for programs, a sentence for people.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// `bad_request`, `unauthorized`, `forbidden`, `not_found`, `conflict`, `too_large`,
    /// `unsupported_media_type`, `invalid`, `unavailable`, `internal`, or a code of the
    /// operation's own (`no_model`, `guard`, …).
    code: String,
    message: String,
}

/// An error answered to an API client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ApiErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE
            || self.status == StatusCode::INSUFFICIENT_STORAGE
        {
            // A hint for well-behaved clients not to retry at once.
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("5"),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        // Only an unreachable or overloaded database is worth retrying: clients are told to
        // retry a 503, so a bad request must never be one.
        match error.kind() {
            StoreErrorKind::NotFound => match error {
                StoreError::NotFound(what) => Self::not_found(format!("{what} not found")),
                other => Self::not_found(other.to_string()),
            },
            StoreErrorKind::Conflict => match error {
                StoreError::Conflict(message) => {
                    Self::new(StatusCode::CONFLICT, "conflict", message)
                }
                other => {
                    tracing::warn!(error = %other, "database constraint conflict");
                    Self::new(
                        StatusCode::CONFLICT,
                        "conflict",
                        "the request conflicts with what is stored",
                    )
                }
            },
            StoreErrorKind::Invalid => match error {
                StoreError::Invalid(error) => Self::invalid(error.to_string()),
                other => {
                    tracing::warn!(error = %other, "the database refused the input");
                    Self::invalid("the database refused a value of the request")
                }
            },
            StoreErrorKind::Unavailable => {
                // Database details are for the log, not for the client.
                tracing::error!(error = %error, "database unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the database is unavailable; try again",
                )
            }
            StoreErrorKind::StorageFull => {
                tracing::error!(error = %error, "database disk full");
                Self::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "storage_full",
                    "the database's disk is full; nothing was stored. Retry once an operator has freed space",
                )
            }
            StoreErrorKind::Internal => {
                tracing::error!(error = %error, "store failure");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "something went wrong on our side",
                )
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::UNPROCESSABLE_ENTITY => "invalid",
            _ => "bad_request",
        };
        Self::new(status, code, rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            rejection.body_text(),
        )
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            rejection.body_text(),
        )
    }
}

/// `axum::Json` whose rejections are answered in our error format, and which reads numbers
/// as JSON Schema does: `25.0` is the integer 25 (generated clients and scripting languages
/// send whole numbers as floats), so an integer field takes it while `25.5` stays a 422.
pub struct ApiJson<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        // The content type, the size limit and the JSON syntax are axum's to check (415,
        // 413, 400); only the data is ours to read.
        let Json(value) = Json::<serde_json::Value>::from_request(request, state).await?;
        from_json_value(value).map(ApiJson)
    }
}

/// A request body's JSON value as `T`: whole floats read as integers, and a wrong value a
/// 422 naming the field it is in (`params.threads: invalid type …`).
pub fn from_json_value<T: serde::de::DeserializeOwned>(
    mut value: serde_json::Value,
) -> Result<T, ApiError> {
    integral_floats_as_integers(&mut value);
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if path == "." {
            ApiError::invalid(inner.to_string())
        } else {
            ApiError::invalid(format!("{path}: {inner}"))
        }
    })
}

/// A request body's bytes as `T` (for handlers that read the body themselves): bad JSON is a
/// 400, a wrong value a 422, as `ApiJson` answers.
pub fn from_json_bytes<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|error| {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", error.to_string())
    })?;
    from_json_value(value)
}

/// Rewrites every float with no fractional part that an `i64` or `u64` holds exactly as that
/// integer. Float fields read integers just the same, so nothing else changes.
fn integral_floats_as_integers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(number) => {
            if let Some(x) = number.as_f64().filter(|_| number.is_f64())
                && x.fract() == 0.0
            {
                // 2^63 and 2^64 are exact as floats; the ranges are half-open for that.
                if (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&x) {
                    *value = Value::from(x as i64);
                } else if (0.0..18_446_744_073_709_551_616.0).contains(&x) {
                    *value = Value::from(x as u64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        Value::Object(fields) => fields.values_mut().for_each(integral_floats_as_integers),
        Value::Null | Value::Bool(_) | Value::String(_) => {}
    }
}

impl<T: serde::Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        Json(self.0).into_response()
    }
}

/// `axum::extract::Query` with our error format.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// `axum::extract::Path` with our error format.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);
