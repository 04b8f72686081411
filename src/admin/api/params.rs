//! Request input shared by the admin REST handlers: the query string, JSON bodies, pagination
//! (`offset`/`limit`/`sort`) and the seeds' id rules. Every failure is an [`ApiError`] (400
//! `UC.00011002`) that the handler renders in its API's shape, never axum's plain-text rejection.
//!
//! Owns: parsing and range checks. Does not own: what a handler does with the values. No I/O.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;

use crate::admin::error::ApiError;
use crate::policy::IdKind;
use crate::policy::validate;
use crate::query::percent_decode;

/// Request bodies larger than this are refused (an admin body is a handful of records).
pub const MAX_BODY: usize = 1024 * 1024;

/// A decoded query string. A name given twice is refused (which value would be meant?).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query(BTreeMap<String, String>);

impl Query {
    /// Parse a raw query string (`a=1&b=x%2Fy`); `+` is a space, `%XX` must be valid UTF-8.
    pub fn parse(raw: Option<&str>) -> Result<Query, ApiError> {
        let mut out = BTreeMap::new();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let bad = || ApiError::bad_param("the query string is not valid percent-encoded UTF-8");
            let (k, v) = (
                percent_decode(k).ok_or_else(bad)?,
                percent_decode(v).ok_or_else(bad)?,
            );
            if out.contains_key(&k) {
                return Err(ApiError::bad_param(format!(
                    "query parameter {k} is given more than once"
                )));
            }
            out.insert(k, v);
        }
        Ok(Query(out))
    }

    /// The value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The value of `name`, which must be given and non-empty.
    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        match self.get(name) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(ApiError::bad_param(format!(
                "query parameter {name} is required"
            ))),
        }
    }

    /// An integer parameter in `range`, `default` when absent.
    pub fn int(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<u64>,
        default: u64,
    ) -> Result<u64, ApiError> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        raw.parse::<u64>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                ApiError::bad_param(format!(
                    "{name} must be an integer from {} to {}, not {raw:?}",
                    range.start(),
                    range.end()
                ))
            })
    }
}

/// Parse a JSON request body into `T` (whose unknown fields are refused, so a typo such as
/// `enabeld` is an error rather than a silent no-op).
pub fn json_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_param("a JSON request body is required"));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_param(format!("invalid JSON request body: {e}")))
}

/// Check `value` against the seed rule for `kind` (`policy::validate`, the rules the file is
/// checked with).
pub fn check_id(kind: IdKind, value: &str) -> Result<(), ApiError> {
    if validate::is_valid(kind, value) {
        Ok(())
    } else {
        Err(ApiError::bad_param(format!(
            "{kind} {value:?} is invalid: must be {}",
            validate::rule(kind)
        )))
    }
}

/// A page of a list: `offset` and `limit` after validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Items skipped.
    pub offset: usize,
    /// Most items returned.
    pub limit: usize,
}

/// The docs/contract.md §7 / vpcep-management ranges: `offset` 0–9999, `limit` 1–100.
pub const OFFSET_MAX: u64 = 9999;
/// Largest page.
pub const LIMIT_MAX: u64 = 100;

impl Page {
    /// `offset` in 0..=`offset_max` (default 0) and `limit` in 1..=100 (default `default_limit`).
    pub fn from_query(q: &Query, offset_max: u64, default_limit: u64) -> Result<Page, ApiError> {
        let offset = q.int("offset", 0..=offset_max, 0)?;
        let limit = q.int("limit", 1..=LIMIT_MAX, default_limit)?;
        Ok(Page {
            offset: usize::try_from(offset).unwrap_or(usize::MAX),
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
        })
    }

    /// The items of `all` on this page.
    pub fn slice<'a, T>(&self, all: &'a [T]) -> &'a [T] {
        let start = self.offset.min(all.len());
        let end = start.saturating_add(self.limit).min(all.len());
        &all[start..end]
    }
}

/// Sort order (vpcep-management `sort`: `asc`/`ASC`, `desc`/`DESC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// Ascending (the default).
    Asc,
    /// Descending.
    Desc,
}

impl Sort {
    /// From the `sort` query parameter; absent is ascending.
    pub fn from_query(q: &Query) -> Result<Sort, ApiError> {
        match q.get("sort") {
            None | Some("asc") | Some("ASC") => Ok(Sort::Asc),
            Some("desc") | Some("DESC") => Ok(Sort::Desc),
            Some(other) => Err(ApiError::bad_param(format!(
                "sort must be asc or desc, not {other:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::error::ErrorKind;

    #[test]
    fn query_parse_cases() {
        const CASES: &[(&str, Option<(&str, &str)>)] = &[
            ("a=1", Some(("a", "1"))),
            ("a=x%2Fy&b=2", Some(("a", "x/y"))),
            ("a=x+y", Some(("a", "x y"))),
            ("a", Some(("a", ""))),
            ("a=%zz", None),
            ("a=%4", None),
            ("a=%ff", None),
            ("a=1&a=2", None),
        ];
        for (raw, want) in CASES {
            let got = Query::parse(Some(raw));
            match want {
                Some((k, v)) => assert_eq!(got.unwrap().get(k), Some(*v), "case {raw}"),
                None => assert_eq!(got.unwrap_err().kind, ErrorKind::BadParam, "case {raw}"),
            }
        }
        assert_eq!(Query::parse(None).unwrap(), Query::default());
    }

    #[test]
    fn page_ranges() {
        // (query, Ok((offset, limit)) or Err)
        const CASES: &[(&str, Option<(usize, usize)>)] = &[
            ("", Some((0, 10))),
            ("offset=9999&limit=100", Some((9999, 100))),
            ("limit=1", Some((0, 1))),
            ("limit=0", None),
            ("limit=101", None),
            ("offset=10000", None),
            ("offset=-1", None),
            ("offset=abc", None),
            ("limit=", None),
            ("limit=1.5", None),
        ];
        for (raw, want) in CASES {
            let got = Page::from_query(&Query::parse(Some(raw)).unwrap(), OFFSET_MAX, 10);
            match want {
                Some((o, l)) => assert_eq!(
                    got.unwrap(),
                    Page {
                        offset: *o,
                        limit: *l
                    },
                    "case {raw}"
                ),
                None => assert_eq!(got.unwrap_err().kind, ErrorKind::BadParam, "case {raw}"),
            }
        }
    }

    #[test]
    fn page_slice_clamps() {
        let all = [1, 2, 3, 4, 5];
        let p = |offset, limit| Page { offset, limit };
        assert_eq!(p(0, 2).slice(&all), &[1, 2]);
        assert_eq!(p(3, 10).slice(&all), &[4, 5]);
        assert_eq!(p(5, 10).slice(&all), &[] as &[i32]);
        assert_eq!(p(9999, 100).slice(&all), &[] as &[i32]);
    }

    #[test]
    fn sort_cases() {
        const CASES: &[(&str, Option<Sort>)] = &[
            ("", Some(Sort::Asc)),
            ("sort=asc", Some(Sort::Asc)),
            ("sort=ASC", Some(Sort::Asc)),
            ("sort=desc", Some(Sort::Desc)),
            ("sort=DESC", Some(Sort::Desc)),
            ("sort=up", None),
            ("sort=", None),
        ];
        for (raw, want) in CASES {
            let got = Sort::from_query(&Query::parse(Some(raw)).unwrap()).ok();
            assert_eq!(got, *want, "case {raw}");
        }
    }

    #[test]
    fn json_body_errors_are_bad_param() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct B {
            #[allow(dead_code)]
            a: u8,
        }
        assert!(json_body::<B>(br#"{"a":1}"#).is_ok());
        for bad in [
            &b""[..],
            b"  ",
            b"{",
            br#"{"a":"x"}"#,
            br#"{"a":1,"b":2}"#,
            b"[]",
        ] {
            let e = json_body::<B>(bad).unwrap_err();
            assert_eq!(e.kind, ErrorKind::BadParam, "case {bad:?}");
        }
    }

    #[test]
    fn check_id_uses_the_seed_rules() {
        assert!(check_id(IdKind::VpcepId, "vpce-1").is_ok());
        assert!(check_id(IdKind::VpcepId, "VPCE").is_err());
        assert!(check_id(IdKind::VpcepId, &"a".repeat(41)).is_err());
        assert!(check_id(IdKind::EnterpriseId, "t_1-A").is_ok());
        assert!(check_id(IdKind::EnterpriseId, "").is_err());
    }
}
