//! The data plane's documented error codes (docs/contract.md §5) and the one place that turns a code into a
//! response.
//!
//! Owns: [`ErrorCode`] (closed, `Copy`, stable wire strings), the JSON body, and [`respond`].
//! Does not own: deciding *which* code applies — each module's error type has a `code()` that maps
//! onto this enum. No I/O.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::body::{ProxyBody, full};

/// A documented data-plane error. Every variant has exactly one wire string ([`ErrorCode::as_str`]),
/// one status and one fixed, non-leaking message; the same string is the metric label value and the
/// log field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 400 `VG.00040001`: the request is malformed or ambiguous (docs/contract.md §4.0: path,
    /// host, header names), refused before it is judged.
    BadRequest,
    /// 403 `VG.00040301`: the request did not come through an authorized VPC endpoint.
    VpcepNotAuthorized,
    /// 403 `VG.00040302`: the client IP is not in the trusted IP whitelist (also used when the
    /// client IP cannot be established from a trusted peer's forwarding headers — fail closed).
    IpNotTrusted,
    /// 403 `VG.00040303`: the client IP is listed but may not perform this operation.
    RightNotGranted,
    /// 403 `VG.00040304`: the VPC endpoint connection has not been accepted.
    VpcepNotAccepted,
    /// 403 `VG.00040305`: unknown tenant (also a bad or conflicting tenant claim).
    UnknownTenant,
    /// 403 `VG.00040306`: the VPC endpoint connection belongs to another tenant.
    VpcepWrongTenant,
    /// 405 `VG.00040501`: `CONNECT` or `TRACE`.
    MethodNotAllowed,
    /// 408 `VG.00040801`: the request body stalled for `limits.stream_idle_timeout` before any
    /// response.
    RequestTimeout,
    /// 413 `VG.00041301`: request body larger than `limits.max_body_bytes`.
    BodyTooLarge,
    /// 501 `VG.00050101`: a `Transfer-Encoding` other than `chunked`.
    UnsupportedTransferCoding,
    /// 502 `VG.00050201`: the upstream could not be reached (refused, unroutable, connect timeout).
    UpstreamUnreachable,
    /// 502 `VG.00050202`: the upstream sent something that is not valid HTTP.
    UpstreamInvalid,
    /// 503 `VG.00050301`: shutting down or at the connection limit.
    Unavailable,
    /// 503 `VG.00050302`: `upstream.max_connections` are open and none came free within
    /// `upstream.connect_timeout`.
    UpstreamBusy,
    /// 504 `VG.00050401`: no response headers within `upstream.response_timeout`.
    UpstreamTimeout,
}

impl ErrorCode {
    /// Every code, in documentation order (used by the docs-sync test).
    pub const ALL: [ErrorCode; 16] = [
        ErrorCode::BadRequest,
        ErrorCode::VpcepNotAuthorized,
        ErrorCode::IpNotTrusted,
        ErrorCode::RightNotGranted,
        ErrorCode::VpcepNotAccepted,
        ErrorCode::UnknownTenant,
        ErrorCode::VpcepWrongTenant,
        ErrorCode::MethodNotAllowed,
        ErrorCode::RequestTimeout,
        ErrorCode::BodyTooLarge,
        ErrorCode::UnsupportedTransferCoding,
        ErrorCode::UpstreamUnreachable,
        ErrorCode::UpstreamInvalid,
        ErrorCode::Unavailable,
        ErrorCode::UpstreamBusy,
        ErrorCode::UpstreamTimeout,
    ];

    /// The stable `error_code` wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "VG.00040001",
            ErrorCode::VpcepNotAuthorized => "VG.00040301",
            ErrorCode::IpNotTrusted => "VG.00040302",
            ErrorCode::RightNotGranted => "VG.00040303",
            ErrorCode::VpcepNotAccepted => "VG.00040304",
            ErrorCode::UnknownTenant => "VG.00040305",
            ErrorCode::VpcepWrongTenant => "VG.00040306",
            ErrorCode::MethodNotAllowed => "VG.00040501",
            ErrorCode::RequestTimeout => "VG.00040801",
            ErrorCode::BodyTooLarge => "VG.00041301",
            ErrorCode::UnsupportedTransferCoding => "VG.00050101",
            ErrorCode::UpstreamUnreachable => "VG.00050201",
            ErrorCode::UpstreamInvalid => "VG.00050202",
            ErrorCode::Unavailable => "VG.00050301",
            ErrorCode::UpstreamBusy => "VG.00050302",
            ErrorCode::UpstreamTimeout => "VG.00050401",
        }
    }

    /// The HTTP status this code is answered with.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            ErrorCode::VpcepNotAuthorized
            | ErrorCode::IpNotTrusted
            | ErrorCode::RightNotGranted
            | ErrorCode::VpcepNotAccepted
            | ErrorCode::UnknownTenant
            | ErrorCode::VpcepWrongTenant => StatusCode::FORBIDDEN,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::UnsupportedTransferCoding => StatusCode::NOT_IMPLEMENTED,
            ErrorCode::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UpstreamUnreachable | ErrorCode::UpstreamInvalid => StatusCode::BAD_GATEWAY,
            ErrorCode::Unavailable | ErrorCode::UpstreamBusy => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The fixed `error_msg` (docs/contract.md §5). Never contains request data.
    pub fn message(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "Bad request: the request is malformed or ambiguous.",
            ErrorCode::VpcepNotAuthorized => {
                "Access denied: the request did not come through an authorized VPC endpoint."
            }
            ErrorCode::IpNotTrusted => {
                "Access denied: the source IP address is not in the trusted IP address whitelist."
            }
            ErrorCode::RightNotGranted => {
                "Access denied: the source IP address may not perform this operation."
            }
            ErrorCode::VpcepNotAccepted => {
                "Access denied: the VPC endpoint connection has not been accepted."
            }
            ErrorCode::UnknownTenant => "Access denied: unknown tenant.",
            ErrorCode::VpcepWrongTenant => {
                "Access denied: the VPC endpoint connection belongs to another tenant."
            }
            ErrorCode::MethodNotAllowed => "Method not allowed.",
            ErrorCode::RequestTimeout => "Request timeout: the request did not arrive in time.",
            ErrorCode::BodyTooLarge => "Request body too large.",
            ErrorCode::UnsupportedTransferCoding => "Not implemented: unsupported transfer coding.",
            ErrorCode::UpstreamUnreachable => {
                "Bad gateway: the upstream service could not be reached."
            }
            ErrorCode::UpstreamInvalid => {
                "Bad gateway: the upstream service sent an invalid response."
            }
            ErrorCode::Unavailable => {
                "Service unavailable: the proxy is shutting down or at its connection limit."
            }
            ErrorCode::UpstreamBusy => {
                "Service unavailable: too many requests to the upstream service."
            }
            ErrorCode::UpstreamTimeout => {
                "Gateway timeout: the upstream service did not respond in time."
            }
        }
    }

    /// The JSON body `{"error_code": "…", "error_msg": "…"}`.
    pub fn body(self) -> String {
        serde_json::json!({ "error_code": self.as_str(), "error_msg": self.message() }).to_string()
    }
}

/// The one mapping from an [`ErrorCode`] to a response: status, JSON body and `Content-Type`. The
/// request's `X-Request-Id` is stamped on it, as on every response, by `proxy::record`.
pub fn respond(code: ErrorCode) -> Response<ProxyBody> {
    let mut resp = Response::new(full(Bytes::from(code.body())));
    *resp.status_mut() = code.status();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_code_every_variant_has_unique_code_and_matching_status_class() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "duplicate {}", code.as_str());
            // VG.000SSSNN: the three digits after "VG.000" are the HTTP status.
            let status: u16 = code.as_str()[6..9].parse().unwrap();
            assert_eq!(status, code.status().as_u16(), "case {code:?}");
        }
    }

    #[test]
    fn respond_sets_status_and_json_body() {
        let resp = respond(ErrorCode::UpstreamTimeout);
        assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(resp.headers()["content-type"], "application/json");
        let v: serde_json::Value =
            serde_json::from_str(&ErrorCode::UpstreamTimeout.body()).unwrap();
        assert_eq!(v["error_code"], "VG.00050401");
        assert_eq!(
            v["error_msg"],
            "Gateway timeout: the upstream service did not respond in time."
        );
    }
}
