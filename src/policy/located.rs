//! [`Located<T>`]: a policy-file value that remembers where in the YAML text it was written, so that
//! semantic validation (`snapshot.rs`) can report `policy.yaml:LINE:COL` (SPEC §1 `check`, §8).
//!
//! Owns: the wrapper and [`Pos`]. Does not own: parsing (`file.rs`) or validation.
//! No I/O.
//!
//! Why not `serde_saphyr::Spanned<T>` directly: its `Serialize` is transparent (good), but its
//! `PartialEq` compares the spans, so `parse(render(p)) == p` would fail, and records built by the
//! admin API would have to invent spans. `Located` deserializes *through* `Spanned` (one pass over
//! the text, no side table that goes stale when the admin API edits a list), serializes as the bare
//! value, and compares, hashes and debug-prints the value only.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A 1-based line and column (in characters) in the policy text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pos {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, counted in characters.
    pub column: u32,
}

impl Pos {
    /// Converts a serde-saphyr location; `None` for its "unknown" location (line 0).
    pub fn from_location(loc: serde_saphyr::Location) -> Option<Pos> {
        let line = u32::try_from(loc.line()).unwrap_or(u32::MAX);
        let column = u32::try_from(loc.column()).unwrap_or(u32::MAX);
        (line != 0).then_some(Pos { line, column })
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A value plus the position it was parsed from (`None` when built in code, e.g. by the admin API).
///
/// Transparent for serde and for comparison: equality, hashing and `Debug` look at the value only.
/// Read it through `Deref` (`&*located`, `located.as_str()` for strings).
#[derive(Clone, Default)]
pub struct Located<T> {
    value: T,
    pos: Option<Pos>,
}

impl<T> Located<T> {
    /// A value with no source position.
    pub fn new(value: T) -> Self {
        Located { value, pos: None }
    }

    /// A value with a known source position.
    pub fn at(value: T, pos: Pos) -> Self {
        Located {
            value,
            pos: Some(pos),
        }
    }

    /// Where the value was written, when it came from text.
    pub fn pos(&self) -> Option<Pos> {
        self.pos
    }

    /// The value.
    pub fn get(&self) -> &T {
        &self.value
    }

    /// Replaces the value; the position is cleared because it no longer describes the text.
    pub fn set(&mut self, value: T) {
        self.value = value;
        self.pos = None;
    }

    /// Unwraps the value.
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T> Deref for Located<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> From<T> for Located<T> {
    fn from(value: T) -> Self {
        Located::new(value)
    }
}

impl From<&str> for Located<String> {
    fn from(value: &str) -> Self {
        Located::new(value.to_owned())
    }
}

impl<T: PartialEq> PartialEq for Located<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<T: Eq> Eq for Located<T> {}

impl PartialEq<str> for Located<String> {
    fn eq(&self, other: &str) -> bool {
        self.value == other
    }
}

impl PartialEq<&str> for Located<String> {
    fn eq(&self, other: &&str) -> bool {
        self.value == *other
    }
}

impl<T: Hash> Hash for Located<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.value.hash(state);
    }
}

impl<T: fmt::Debug> fmt::Debug for Located<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

impl<T: fmt::Display> fmt::Display for Located<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

impl<T: Serialize> Serialize for Located<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Located<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // serde-saphyr recognises `Spanned` and hands it the node's location; other
        // deserializers (serde_json in the admin API) give a plain value and no position.
        let spanned = serde_saphyr::Spanned::<T>::deserialize(deserializer)?;
        Ok(Located {
            value: spanned.value,
            pos: Pos::from_location(spanned.referenced),
        })
    }
}
