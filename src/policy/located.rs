//! [`Located<T>`]: a policy-file value that remembers where in the YAML text it was written, so that
//! semantic validation (`snapshot.rs`) can report `policy.yaml:LINE:COL` (docs/contract.md §1 `check`, §8).
//!
//! Owns: the wrapper and [`Pos`]. Does not own: parsing (`file.rs`) or validation.
//! No I/O.
//!
//! Why not `serde_saphyr::Spanned<T>` directly: its `Serialize` is transparent (good), but its
//! `PartialEq` compares the spans, so `parse(render(p)) == p` would fail, and records built by the
//! admin API would have to invent spans. `Located` deserializes *through* `Spanned` (one pass over
//! the text, no side table that goes stale when the admin API edits a list), serializes as the bare
//! value, and compares, hashes and debug-prints the value only. With other deserializers (the
//! admin API's serde_json, serde's value deserializers) it is a plain value with no position.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use std::marker::PhantomData;

use serde::de::{self, IntoDeserializer, Visitor};
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
        // The newtype name is how serde-saphyr recognises a span request (what `Spanned` sends).
        deserializer.deserialize_newtype_struct(SPANNED_NEWTYPE, LocatedVisitor(PhantomData))
    }
}

/// The newtype name serde-saphyr answers with the node's location (see its `spanned.rs`).
const SPANNED_NEWTYPE: &str = "__yaml_spanned";

struct LocatedVisitor<T>(PhantomData<T>);

/// Plain values from deserializers that answer `deserialize_newtype_struct` with
/// `deserialize_any` instead of `visit_newtype_struct` (e.g. `serde::de::value`): no position.
macro_rules! plain {
    ($($method:ident($ty:ty)),* $(,)?) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            T::deserialize(v.into_deserializer()).map(Located::new)
        }
    )*};
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for LocatedVisitor<T> {
    type Value = Located<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a policy value")
    }

    /// serde-saphyr (with the location) and serde_json (without) come here; `Spanned` knows both.
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let spanned = serde_saphyr::Spanned::<T>::deserialize(Reenter(d))?;
        Ok(Located {
            value: spanned.value,
            pos: Pos::from_location(spanned.referenced),
        })
    }

    plain!(
        visit_bool(bool),
        visit_i64(i64),
        visit_u64(u64),
        visit_f64(f64),
        visit_str(&str),
        visit_string(String),
    );

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        T::deserialize(().into_deserializer()).map(Located::new)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        T::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(Located::new)
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Located::new)
    }
}

/// Hands the deserializer we were given back to `Spanned`, which asks for the newtype again.
struct Reenter<D>(D);

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Reenter<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        visitor.visit_newtype_struct(self.0)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}
