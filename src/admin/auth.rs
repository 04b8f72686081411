//! Admin authentication (docs/contract.md §7): `X-Auth-Token` is hashed with sha256 and compared, in constant
//! time, with every configured token hash; `read` tokens may GET, `write` tokens may do anything.
//! `/metrics`, `/healthz` and `/readyz` are open (Prometheus and kubelet carry no token). With no
//! tokens configured, everything else answers 401: the API is closed, never open by default.

use axum::http::Method;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::model::{Role, Token};

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// No token.
    Open,
    /// A `read` or `write` token.
    Read,
    /// A `write` token.
    Write,
}

/// Routes that need no token.
pub const OPEN_PATHS: [&str; 3] = ["/metrics", "/healthz", "/readyz"];

/// The access a request needs.
pub fn need(method: &Method, path: &str) -> Need {
    if OPEN_PATHS.contains(&path) && (method == Method::GET || method == Method::HEAD) {
        Need::Open
    } else if method == Method::GET || method == Method::HEAD {
        Need::Read
    } else {
        Need::Write
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the X-Auth-Token header is missing")]
    Missing,
    #[error("the X-Auth-Token is not valid")]
    Invalid,
    #[error("the X-Auth-Token has the read role; this call needs write")]
    ReadOnly,
}

/// Check `presented` (the raw header value, if any) against `tokens`.
pub fn authorize(tokens: &[Token], presented: Option<&[u8]>, need: Need) -> Result<(), AuthError> {
    if need == Need::Open {
        return Ok(());
    }
    let Some(presented) = presented else {
        return Err(AuthError::Missing);
    };
    let digest: [u8; 32] = Sha256::digest(presented).into();
    // Compare against every token, without early exit, so timing says nothing about which one
    // (or how much of one) matched.
    let mut role = None;
    for t in tokens {
        if bool::from(digest.ct_eq(&t.sha256)) {
            role = Some(t.role);
        }
    }
    match (role, need) {
        (None, _) => Err(AuthError::Invalid),
        (Some(Role::Read), Need::Write) => Err(AuthError::ReadOnly),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(secret: &str, role: Role) -> Token {
        Token {
            name: secret.to_owned(),
            sha256: Sha256::digest(secret.as_bytes()).into(),
            role,
        }
    }

    #[test]
    fn roles_and_open_paths() {
        let tokens = [token("r", Role::Read), token("w", Role::Write)];
        let get = need(&Method::GET, "/v2/vpceps");
        let post = need(&Method::POST, "/v2/vpceps");
        assert_eq!(get, Need::Read);
        assert_eq!(post, Need::Write);
        assert_eq!(need(&Method::GET, "/metrics"), Need::Open);
        assert_eq!(need(&Method::POST, "/metrics"), Need::Write);
        assert_eq!(need(&Method::POST, "/-/reload"), Need::Write);
        assert_eq!(need(&Method::GET, "/status"), Need::Read);

        assert_eq!(authorize(&tokens, None, Need::Open), Ok(()));
        assert_eq!(authorize(&tokens, None, get), Err(AuthError::Missing));
        assert_eq!(authorize(&tokens, Some(b"x"), get), Err(AuthError::Invalid));
        assert_eq!(authorize(&tokens, Some(b"r"), get), Ok(()));
        assert_eq!(
            authorize(&tokens, Some(b"r"), post),
            Err(AuthError::ReadOnly)
        );
        assert_eq!(authorize(&tokens, Some(b"w"), post), Ok(()));
        assert_eq!(authorize(&tokens, Some(b"w"), get), Ok(()));
        // A hash presented as the token is not the token.
        let hash = hex::encode(Sha256::digest(b"w"));
        assert_eq!(
            authorize(&tokens, Some(hash.as_bytes()), post),
            Err(AuthError::Invalid)
        );
    }

    #[test]
    fn no_tokens_configured_means_closed() {
        assert_eq!(
            authorize(&[], Some(b"w"), Need::Read),
            Err(AuthError::Invalid)
        );
        assert_eq!(authorize(&[], None, Need::Open), Ok(()));
    }
}
