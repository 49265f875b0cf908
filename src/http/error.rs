//! The one place where errors become HTTP answers: `{"error": {"code", "message"}}`.

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, RETRY_AFTER};
use actix_web::{HttpResponse, ResponseError};

use crate::ingest::IngestError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    UnknownSource(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("the body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("the database is unavailable; retry later")]
    Unavailable,
    /// Salesforce reads only SOAP: a storage failure is a SOAP fault, so it retries.
    #[error("the database is unavailable; retry later")]
    SoapFault,
}

impl ApiError {
    fn code(&self) -> &'static str {
        match self {
            ApiError::UnknownSource(_) => "unknown_source",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::NotFound(_) => "not_found",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::Unavailable | ApiError::SoapFault => "unavailable",
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::UnknownSource(_) => ApiError::UnknownSource(e.to_string()),
            IngestError::Unauthorized(_) => ApiError::Unauthorized(e.to_string()),
            IngestError::Malformed(body) => ApiError::BadRequest(body.0),
            IngestError::Storage(ref cause) => {
                tracing::error!(error = %cause, "storing a webhook failed");
                ApiError::Unavailable
            }
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "a database call failed");
        ApiError::Unavailable
    }
}

impl From<crate::ingest::RemapError> for ApiError {
    fn from(e: crate::ingest::RemapError) -> Self {
        use crate::ingest::RemapError;
        match e {
            RemapError::NotFound(_) => ApiError::NotFound(e.to_string()),
            RemapError::NoPayload(_) | RemapError::UnknownSource(_) => {
                ApiError::BadRequest(e.to_string())
            }
            RemapError::Storage(cause) => cause.into(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::UnknownSource(_) => StatusCode::NOT_FOUND,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::SoapFault => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ApiError::SoapFault => {
                return response
                    .insert_header((CONTENT_TYPE, "text/xml; charset=utf-8"))
                    .body(crate::source::salesforce::soap_fault(&self.to_string()));
            }
            ApiError::Unavailable => {
                response.insert_header((RETRY_AFTER, "30"));
            }
            _ => {}
        }
        response
            .json(serde_json::json!({"error": {"code": self.code(), "message": self.to_string()}}))
    }
}
