//! Identifier and text rules taken from the seed documents (docs/contract.md §3: "ids outside the seeds'
//! character sets and lengths" are rejected). Exposed so the admin API checks request bodies with
//! exactly the rules the file is checked with.
//!
//! Owns: the character sets and lengths per [`IdKind`]. Does not own: uniqueness or cross
//! references (`snapshot.rs`). No I/O.
//!
//! Sources, per kind (lengths count characters):
//! - `enterprise_id`, `domain_id`: vpcep-management `TenantVpceInfos.enterprise_id`, "1 to 40
//!   characters. Only digits, letters, underlines (_), and hyphens (-)". (Not "32 lowercase hex":
//!   the seed's own example `abcdbfa39r7pg09la8msyu8vq004aabcd` is 33 characters and not hex.)
//! - `project_id`: build-project-permission, "a 32-character string containing a mix of digits
//!   and letters" → exactly 32 of `[A-Za-z0-9]`.
//! - `vpcep_id`, connection `id`, `region`: vpcep-management `VpceInfo`, "1 to 40 characters. Only
//!   use digits, lower-case letters, and hyphens (-)". A connection's id *is* a vpcep id (docs/contract.md §3).
//! - endpoint `description`: `VpcepRequestInfo`, "0 to 128 characters. Use only letters, digits,
//!   spaces, and these special characters: ()[]-_.~.&;" (letters and digits in any script).
//! - trusted IP `remark`: whitelist seed, "Max. 200 characters" (any characters).
//! - endpoint service `id`: accept-reject `vpc_endpoint_service_id`, "Minimum: 1 Maximum: 64"; the
//!   seed gives no character set, we take `[A-Za-z0-9_-]` (UUIDs fit).
//! - trusted IP `id`: the seed only says "String" (examples are numbers); we take 1 to 64 of
//!   `[A-Za-z0-9_.-]` so ids stay safe in URLs (`/v4/tenant/trusted-ip-addresses/{id}`).
//! - `marker_id`: any u64 (seed: Integer).

use super::IdKind;

fn ascii_alnum_or(extra: &'static str) -> impl Fn(char) -> bool {
    move |c| c.is_ascii_alphanumeric() || extra.contains(c)
}

/// Whether `value` satisfies the seed rule for `kind` (see the module docs).
pub fn is_valid(kind: IdKind, value: &str) -> bool {
    let len = value.chars().count();
    let all = |ok: &dyn Fn(char) -> bool| value.chars().all(ok);
    match kind {
        IdKind::EnterpriseId | IdKind::DomainId => {
            (1..=40).contains(&len) && all(&ascii_alnum_or("_-"))
        }
        IdKind::ProjectId => len == 32 && all(&|c: char| c.is_ascii_alphanumeric()),
        IdKind::VpcepId | IdKind::ConnectionId | IdKind::Region => {
            (1..=40).contains(&len)
                && all(&|c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        }
        IdKind::Description => {
            len <= 128 && all(&|c: char| c.is_alphanumeric() || " ()[]-_.~&;".contains(c))
        }
        IdKind::TrustedIpId => (1..=64).contains(&len) && all(&ascii_alnum_or("_.-")),
        IdKind::Remark => len <= 200,
        IdKind::ServiceId => (1..=64).contains(&len) && all(&ascii_alnum_or("_-")),
        IdKind::MarkerId => true,
    }
}

/// The rule for `kind` in words, completing "must be …".
pub fn rule(kind: IdKind) -> &'static str {
    match kind {
        IdKind::EnterpriseId | IdKind::DomainId => "1 to 40 characters of A-Z, a-z, 0-9, _ and -",
        IdKind::ProjectId => "exactly 32 characters of A-Z, a-z and 0-9",
        IdKind::VpcepId | IdKind::ConnectionId | IdKind::Region => {
            "1 to 40 characters of a-z, 0-9 and -"
        }
        IdKind::Description => "at most 128 characters of letters, digits, spaces and ()[]-_.~&;",
        IdKind::TrustedIpId => "1 to 64 characters of A-Z, a-z, 0-9, _, . and -",
        IdKind::Remark => "at most 200 characters",
        IdKind::ServiceId => "1 to 64 characters of A-Z, a-z, 0-9, _ and -",
        IdKind::MarkerId => "an unsigned 64-bit integer",
    }
}
