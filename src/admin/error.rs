//! Admin API errors (docs/contract.md §7): one type for every refusal, mapped to the seeds' status codes and
//! error codes, rendered in the shape of the API that was called ([`ErrorShape`]).

use axum::http::StatusCode;
use axum::response::Response;

use super::{ErrorShape, api_error};
use crate::policy::PolicyError;
use crate::reload::WriteError;

/// What kind of refusal, which fixes the status and the seed error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400 `UC.00011002`: a parameter is missing, malformed or out of range, or the resulting
    /// policy would not validate.
    BadParam,
    /// 401 `UC.00010002`.
    Unauthorized,
    /// 404 `UC.00011005`.
    NotFound,
    /// 409 `UC.00011009`: the record already exists, or the policy file on disk changed under us
    /// into something that does not validate.
    Conflict,
    /// 400 `UC.00011036`: the tenant's VPC endpoint quota is used up.
    Quota,
    /// 500 `UC.00010005`: the change could not be written.
    Internal,
    /// 503 `UC.00010005`: the policy store (etcd) is unreachable; nothing was written
    /// (docs/contract.md §7, §11).
    Unavailable,
}

impl ErrorKind {
    /// HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::BadParam | ErrorKind::Quota => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The seed error code.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::BadParam => "UC.00011002",
            ErrorKind::Unauthorized => "UC.00010002",
            ErrorKind::NotFound => "UC.00011005",
            ErrorKind::Conflict => "UC.00011009",
            ErrorKind::Quota => "UC.00011036",
            ErrorKind::Internal | ErrorKind::Unavailable => "UC.00010005",
        }
    }
}

/// A refused admin call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            message: message.into(),
        }
    }
    pub fn bad_param(message: impl Into<String>) -> ApiError {
        Self::new(ErrorKind::BadParam, message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        Self::new(ErrorKind::NotFound, message)
    }
    pub fn conflict(message: impl Into<String>) -> ApiError {
        Self::new(ErrorKind::Conflict, message)
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        Self::new(ErrorKind::Internal, message)
    }

    /// The response, in `shape`.
    pub fn into_response(self, shape: ErrorShape) -> Response {
        api_error(shape, self.kind.status(), self.kind.code(), &self.message)
    }
}

/// How a failed write is answered: the file on disk being unreadable or hand-edited into an
/// invalid state is a conflict (409) the operator must resolve; a change that would make the
/// policy invalid is the caller's bad parameter (400), a full quota its own code, a duplicate id
/// a conflict; failing to render or write the file is ours (500).
impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> ApiError {
        let kind = match &e {
            WriteError::Unreadable { .. }
            | WriteError::EditedInvalid(_)
            | WriteError::Edited { .. }
            | WriteError::Contended => ErrorKind::Conflict,
            WriteError::StoreUnavailable(_) => ErrorKind::Unavailable,
            WriteError::TooLarge { .. } => ErrorKind::BadParam,
            WriteError::Invalid(PolicyError::TooManyEndpoints { .. }) => ErrorKind::Quota,
            WriteError::Invalid(PolicyError::DuplicateId { .. }) => ErrorKind::Conflict,
            WriteError::Invalid(PolicyError::Render(_)) => ErrorKind::Internal,
            WriteError::Invalid(_) => ErrorKind::BadParam,
            WriteError::Render(_)
            | WriteError::Write { .. }
            | WriteError::Stopped
            | WriteError::Unapplied { .. } => ErrorKind::Internal,
        };
        ApiError::new(kind, e.to_string())
    }
}
