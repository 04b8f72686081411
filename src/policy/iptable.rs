//! The compiled trusted-IP set of one rules set (docs/contract.md §3 `trusted_ips`, §4 steps 5–6).
//!
//! Owns: the [`Rights`] bitmask and [`IpTable`] — two sorted, disjoint interval vectors (IPv4 as
//! `u32`, IPv6 as `u128`) built by a boundary sweep and searched with `partition_point`.
//! Does not own: the `ip_range` grammar (`iprange.rs`), which rules set applies, entry ids or flag
//! validation (`snapshot.rs`), the decision order (`decide.rs`). No I/O.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::Right;
use super::iprange::IpRange;

/// A set of [`Right`]s as a bitmask (`view` = 1, `download` = 2, `upload` = 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Rights(u8);

impl Rights {
    /// No right at all (an entry with every flag 0 still *contains* an address, docs/contract.md §4 step 6).
    pub const NONE: Rights = Rights(0);
    /// Every right.
    pub const ALL: Rights = Rights(0b111);

    /// The rights granted by the seed's three flags (each must already be 0 or 1).
    pub fn from_flags(view: u8, download: u8, upload: u8) -> Rights {
        Rights((view & 1) | ((download & 1) << 1) | ((upload & 1) << 2))
    }

    /// The set holding only `right`.
    pub fn of(right: Right) -> Rights {
        Rights(1 << right.bit())
    }

    /// Whether `right` is in the set.
    pub fn contains(self, right: Right) -> bool {
        self.0 & (1 << right.bit()) != 0
    }

    /// The raw bitmask.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// How many rights the set holds (0–3).
    pub fn count(self) -> u32 {
        self.0.count_ones()
    }

    /// The union of two sets.
    pub fn union(self, other: Rights) -> Rights {
        Rights(self.0 | other.0)
    }
}

// === impl IpTable ===

/// What a lookup found: the union of the rights of every entry containing the address, and which
/// entries to name for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// Union of the rights of all entries containing the address (docs/contract.md §4 step 6).
    pub rights: Rights,
    /// The entry to name in logs: among the entries containing the address, the one granting the
    /// most rights, ties broken by file order (first wins). Index into the entries given to
    /// [`IpTable::build`].
    pub entry: u32,
    /// Per right (indexed by `Right::bit`): the first entry in file order containing the address
    /// and granting that right, or `u32::MAX`.
    by_right: [u32; 3],
}

impl Hit {
    /// The entry to name for a request needing `right`: the first (file order) entry containing the
    /// address that grants it, else [`Hit::entry`].
    pub fn entry_for(&self, right: Right) -> u32 {
        match self.by_right[usize::from(right.bit())] {
            u32::MAX => self.entry,
            idx => idx,
        }
    }
}

/// One input row of [`IpTable::build`]: a parsed range and the rights its flags grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableEntry {
    /// The addresses covered.
    pub range: IpRange,
    /// The rights granted.
    pub rights: Rights,
}

/// A compiled trusted-IP set: sorted, disjoint intervals per family, each carrying a [`Hit`].
///
/// # Performance
/// Built in O(n log n) by sweeping over interval boundaries; at most `2n - 1` intervals per
/// family. [`IpTable::lookup`] is one `partition_point` over the starts, O(log n), no allocation.
#[derive(Debug, Clone, Default)]
pub struct IpTable {
    v4: Intervals<u32>,
    v6: Intervals<u128>,
}

impl IpTable {
    /// Compiles `entries`; the position of an entry in the iterator is its index in [`Hit`].
    /// Overlapping entries give the union of their rights (docs/contract.md §4 step 6 asks whether *any*
    /// containing entry grants the right). Entry indices are `u32`: the YAML budget keeps files far
    /// below that.
    pub fn build<I: IntoIterator<Item = TableEntry>>(entries: I) -> IpTable {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (i, e) in entries.into_iter().enumerate() {
            let idx = u32::try_from(i).unwrap_or(u32::MAX - 1);
            match e.range {
                IpRange::V4 { start, end } => v4.push((start, end, idx, e.rights)),
                IpRange::V6 { start, end } => v6.push((start, end, idx, e.rights)),
            }
        }
        IpTable {
            v4: Intervals::sweep(v4),
            v6: Intervals::sweep(v6),
        }
    }

    /// Looks `ip` up (IPv4-mapped IPv6 is matched as IPv4). `None` when no entry contains it.
    ///
    /// # Performance
    /// O(log n) binary search, no allocation.
    pub fn lookup(&self, ip: IpAddr) -> Option<Hit> {
        match ip.to_canonical() {
            IpAddr::V4(a) => self.v4.find(u32::from(a)),
            IpAddr::V6(a) => self.v6.find(u128::from(a)),
        }
    }

    /// Number of compiled intervals (both families).
    pub fn len(&self) -> usize {
        self.v4.starts.len() + self.v6.starts.len()
    }

    /// Whether no entry was compiled.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An address integer type the sweep can step over.
trait Addr: Copy + Ord + Default {
    fn succ(self) -> Option<Self>;
    fn pred(self) -> Self;
}

impl Addr for u32 {
    fn succ(self) -> Option<Self> {
        self.checked_add(1)
    }
    fn pred(self) -> Self {
        self.saturating_sub(1)
    }
}

impl Addr for u128 {
    fn succ(self) -> Option<Self> {
        self.checked_add(1)
    }
    fn pred(self) -> Self {
        self.saturating_sub(1)
    }
}

/// Struct of arrays so that `partition_point` walks a dense vector of starts.
#[derive(Debug, Clone, Default)]
struct Intervals<A> {
    starts: Vec<A>,
    ends: Vec<A>,
    hits: Vec<Hit>,
}

/// Entries covering the current sweep position, ordered three ways for attribution.
#[derive(Default)]
struct Active {
    /// Key `(3 - rights.count(), index)`: the first element is [`Hit::entry`].
    best: BTreeSet<(u32, u32)>,
    by_right: [BTreeSet<u32>; 3],
}

impl Active {
    fn apply(&mut self, add: bool, idx: u32, rights: Rights) {
        let key = (3 - rights.count(), idx);
        let sets = Right::ALL.iter().filter(|r| rights.contains(**r));
        if add {
            self.best.insert(key);
            sets.for_each(|r| {
                self.by_right[usize::from(r.bit())].insert(idx);
            });
        } else {
            self.best.remove(&key);
            sets.for_each(|r| {
                self.by_right[usize::from(r.bit())].remove(&idx);
            });
        }
    }

    fn hit(&self) -> Option<Hit> {
        let &(_, entry) = self.best.first()?;
        let first = |s: &BTreeSet<u32>| s.first().copied().unwrap_or(u32::MAX);
        let by_right = [
            first(&self.by_right[0]),
            first(&self.by_right[1]),
            first(&self.by_right[2]),
        ];
        let rights = by_right
            .iter()
            .zip(Right::ALL)
            .filter(|(idx, _)| **idx != u32::MAX)
            .fold(Rights::NONE, |acc, (_, r)| acc.union(Rights::of(r)));
        Some(Hit {
            rights,
            entry,
            by_right,
        })
    }
}

impl<A: Addr> Intervals<A> {
    fn sweep(items: Vec<(A, A, u32, Rights)>) -> Self {
        // Events: an entry starts covering at `start` and stops at `end + 1` (never, at the top of
        // the address space). Between two consecutive event points the active set is constant.
        let mut events: Vec<(A, bool, u32, Rights)> = Vec::with_capacity(items.len() * 2);
        for &(start, end, idx, rights) in &items {
            events.push((start, true, idx, rights));
            if let Some(after) = end.succ() {
                events.push((after, false, idx, rights));
            }
        }
        events.sort_unstable_by_key(|e| e.0);
        let mut out = Intervals::default();
        let mut active = Active::default();
        let mut i = 0;
        let mut from = A::default();
        while i < events.len() {
            let point = events[i].0;
            if let Some(hit) = active.hit() {
                out.push(from, point.pred(), hit);
            }
            while i < events.len() && events[i].0 == point {
                let (_, add, idx, rights) = events[i];
                active.apply(add, idx, rights);
                i += 1;
            }
            from = point;
        }
        if let Some(hit) = active.hit() {
            out.push(from, max_of(&items), hit);
        }
        out
    }

    /// Appends `[start, end]`, merging with the previous interval when adjacent and identical.
    fn push(&mut self, start: A, end: A, hit: Hit) {
        if let (Some(last_end), Some(last_hit)) = (self.ends.last_mut(), self.hits.last())
            && *last_hit == hit
            && last_end.succ() == Some(start)
        {
            *last_end = end;
            return;
        }
        self.starts.push(start);
        self.ends.push(end);
        self.hits.push(hit);
    }

    fn find(&self, addr: A) -> Option<Hit> {
        let i = self.starts.partition_point(|s| *s <= addr).checked_sub(1)?;
        (addr <= self.ends[i]).then(|| self.hits[i])
    }
}

/// The end of the last open interval: only reached when some entry runs to the top of the space.
fn max_of<A: Addr>(items: &[(A, A, u32, Rights)]) -> A {
    items.iter().map(|i| i.1).max().unwrap_or_default()
}

#[cfg(test)]
mod tests;
