//! Bounded flow table with a seeded hasher, idle timeout and LRU eviction.
//!
//! Entries live in a slab (`Vec<Option<Node>>`) threaded on an intrusive doubly-linked list in
//! recency order. The index is a `hashbrown::HashTable<u32>` of slots: it holds 4 bytes per
//! flow (plus a control byte), not a copy of the 38-byte key, because each entry can rebuild its
//! key ([`Keyed`]); a lookup compares against the one or two candidates whose hash tag matches.
//! A packet costs one hash lookup plus an O(1) move to the list head. Because capture time only
//! moves forward (the engine uses the highest timestamp seen as "now"), the list tail is also
//! the flow idle the longest, so idle expiry only ever looks at the tail: amortised O(1), never a
//! full scan. The hasher is `ahash::RandomState` with random per-process keys: 5-tuples are
//! attacker-chosen.
use hashbrown::HashTable;
use std::net::IpAddr;

/// Symmetric 5-tuple: both directions of a flow produce the same key (endpoints sorted).
/// Addresses are kept as bytes (alignment 1: the key is 38 bytes, it sits in every pre-decoded
/// frame) and hashed as two `u128` and one `u64`, three hasher rounds instead of six.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowKey {
    lo: ([u8; 16], u16),
    hi: ([u8; 16], u16),
    proto: u8,
    v6: bool,
}

impl std::hash::Hash for FlowKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u128(u128::from_ne_bytes(self.lo.0));
        state.write_u128(u128::from_ne_bytes(self.hi.0));
        state.write_u64(
            u64::from(self.lo.1) << 32
                | u64::from(self.hi.1) << 16
                | u64::from(self.proto) << 8
                | u64::from(self.v6),
        );
    }
}

fn addr_bytes(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v) => v.to_ipv6_mapped().octets(),
        IpAddr::V6(v) => v.octets(),
    }
}

impl FlowKey {
    /// Builds the key; also returns whether `(src, sport)` is the `lo` endpoint.
    pub fn new(proto: u8, src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> (FlowKey, bool) {
        Self::from_bytes(
            proto,
            (addr_bytes(src), sport),
            (addr_bytes(dst), dport),
            src.is_ipv6(),
        )
    }

    /// [`Self::new`] from addresses as 16 bytes (IPv4 mapped into IPv6, `v6` false).
    pub fn from_bytes(
        proto: u8,
        a: ([u8; 16], u16),
        b: ([u8; 16], u16),
        v6: bool,
    ) -> (FlowKey, bool) {
        // Byte order of the addresses, then the port (big-endian u128 compares like the bytes).
        let src_is_lo = (u128::from_be_bytes(a.0), a.1) <= (u128::from_be_bytes(b.0), b.1);
        let (lo, hi) = if src_is_lo { (a, b) } else { (b, a) };
        (FlowKey { lo, hi, proto, v6 }, src_is_lo)
    }

    /// Whether this is the key of `proto` between `lo` and `hi` (already in key order), without
    /// building that key: ports first, the cheapest mismatch.
    pub fn is(&self, proto: u8, lo: (IpAddr, u16), hi: (IpAddr, u16)) -> bool {
        self.lo.1 == lo.1
            && self.hi.1 == hi.1
            && self.proto == proto
            && self.v6 == lo.0.is_ipv6()
            && self.lo.0 == addr_bytes(lo.0)
            && self.hi.0 == addr_bytes(hi.0)
    }

    /// The `lo` endpoint (`true`) or the `hi` one, as address and port (the inverse of [`Self::new`]).
    pub fn endpoint(&self, lo: bool) -> (IpAddr, u16) {
        let (b, port) = if lo { self.lo } else { self.hi };
        let addr = if self.v6 {
            IpAddr::V6(std::net::Ipv6Addr::from(b))
        } else {
            let [.., a, b2, c, d] = b;
            IpAddr::V4(std::net::Ipv4Addr::new(a, b2, c, d))
        };
        (addr, port)
    }
}

const NIL: u32 = u32::MAX;

/// A table value that knows its own key (so neither the slab nor the index stores it: the
/// engine's entries rebuild it from the flow context, which saves ~40 bytes per flow twice).
pub trait Keyed {
    fn flow_key(&self) -> FlowKey;

    /// Whether this entry's key is `key` (every lookup calls it on its candidate slot; an entry
    /// can answer without building its key).
    fn has_key(&self, key: &FlowKey) -> bool {
        self.flow_key() == *key
    }
}

struct Node<V> {
    last_ts: u64,
    prev: u32,
    next: u32,
    value: V,
}

/// The flow table. `V` is the engine's per-flow entry.
pub struct FlowTable<V> {
    index: HashTable<u32>,
    hasher: ahash::RandomState,
    slots: Vec<Option<Node<V>>>,
    free: Vec<u32>,
    /// Most recently used.
    head: u32,
    /// Least recently used.
    tail: u32,
    cap: usize,
}

impl<V> FlowTable<V> {
    pub fn new(cap: usize) -> Self {
        // Slots are u32 indices; NIL is reserved.
        let cap = cap.clamp(1, (u32::MAX - 1) as usize);
        FlowTable {
            index: HashTable::new(),
            hasher: ahash::RandomState::new(),
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            cap,
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    pub fn is_full(&self) -> bool {
        self.index.len() >= self.cap
    }

    /// Marks the slot as just used at `ts` (moves it to the head of the recency list).
    pub fn touch(&mut self, slot: u32, ts: u64) {
        if self.head != slot {
            self.unlink(slot);
            self.link_head(slot);
        }
        if let Some(Some(n)) = self.slots.get_mut(slot as usize) {
            n.last_ts = n.last_ts.max(ts);
        }
    }

    pub fn get_mut(&mut self, slot: u32) -> Option<&mut V> {
        self.slots
            .get_mut(slot as usize)
            .and_then(|s| s.as_mut())
            .map(|n| &mut n.value)
    }

    pub fn get(&self, slot: u32) -> Option<&V> {
        self.slots
            .get(slot as usize)
            .and_then(|s| s.as_ref())
            .map(|n| &n.value)
    }

    /// The least recently used slot and its last packet time.
    pub fn oldest(&self) -> Option<(u32, u64)> {
        if self.tail == NIL {
            return None;
        }
        self.slots
            .get(self.tail as usize)
            .and_then(|s| s.as_ref())
            .map(|n| (self.tail, n.last_ts))
    }

    fn unlink(&mut self, slot: u32) {
        let (prev, next) = match self.slots.get(slot as usize).and_then(|s| s.as_ref()) {
            Some(n) => (n.prev, n.next),
            None => return,
        };
        let is_linked = prev != NIL || next != NIL || self.head == slot;
        if !is_linked {
            return;
        }
        if prev != NIL {
            if let Some(Some(p)) = self.slots.get_mut(prev as usize) {
                p.next = next;
            }
        } else {
            self.head = next;
        }
        if next != NIL {
            if let Some(Some(n)) = self.slots.get_mut(next as usize) {
                n.prev = prev;
            }
        } else {
            self.tail = prev;
        }
        if let Some(Some(n)) = self.slots.get_mut(slot as usize) {
            n.prev = NIL;
            n.next = NIL;
        }
    }

    fn link_head(&mut self, slot: u32) {
        let old = self.head;
        if let Some(Some(n)) = self.slots.get_mut(slot as usize) {
            n.prev = NIL;
            n.next = old;
        } else {
            return;
        }
        if old != NIL {
            if let Some(Some(o)) = self.slots.get_mut(old as usize) {
                o.prev = slot;
            }
        } else {
            self.tail = slot;
        }
        self.head = slot;
    }
}

/// The hash of the entry in `slot` (when the index grows).
fn rehash<V: Keyed>(slots: &[Option<Node<V>>], hasher: &ahash::RandomState, slot: u32) -> u64 {
    match slots.get(slot as usize) {
        Some(Some(n)) => hasher.hash_one(n.value.flow_key()),
        _ => 0,
    }
}

impl<V: Keyed> FlowTable<V> {
    /// Slot of `key`, if present.
    pub fn find(&self, key: &FlowKey) -> Option<u32> {
        let slots = &self.slots;
        self.index
            .find(
                self.hasher.hash_one(key),
                |&s| matches!(slots.get(s as usize), Some(Some(n)) if n.value.has_key(key)),
            )
            .copied()
    }

    /// Inserts a new entry at the head. The caller evicts first when [`Self::is_full`].
    /// Returns `None` when the table is full (nothing inserted).
    pub fn insert(&mut self, key: FlowKey, ts: u64, value: V) -> Option<u32> {
        if self.is_full() {
            return None;
        }
        let node = Node {
            last_ts: ts,
            prev: NIL,
            next: NIL,
            value,
        };
        let slot = if let Some(s) = self.free.pop() {
            if let Some(x) = self.slots.get_mut(s as usize) {
                *x = Some(node);
            }
            s
        } else {
            let s = u32::try_from(self.slots.len()).ok()?;
            self.slots.push(Some(node));
            s
        };
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index
            .insert_unique(hasher.hash_one(key), slot, |&s| rehash(slots, hasher, s));
        self.link_head(slot);
        Some(slot)
    }

    /// Removes the entry in `slot` and returns its value.
    pub fn remove(&mut self, slot: u32) -> Option<V> {
        self.unlink(slot);
        let node = self.slots.get_mut(slot as usize)?.take()?;
        let h = self.hasher.hash_one(node.value.flow_key());
        if let Ok(e) = self.index.find_entry(h, |&s| s == slot) {
            e.remove();
        }
        self.free.push(slot);
        Some(node.value)
    }

    /// Removes and returns every entry (least recently used first).
    pub fn drain(&mut self) -> Vec<V> {
        let mut out = Vec::with_capacity(self.len());
        while let Some((slot, _)) = self.oldest() {
            match self.remove(slot) {
                Some(v) => out.push(v),
                None => break,
            }
        }
        self.slots.clear();
        self.free.clear();
        out
    }
}

/// Bytes of one slab node holding `V` (for the per-flow memory budget).
pub fn node_size<V>() -> usize {
    std::mem::size_of::<Option<Node<V>>>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[derive(Debug, PartialEq)]
    struct V(FlowKey, u32);
    impl Keyed for V {
        fn flow_key(&self) -> FlowKey {
            self.0
        }
    }

    fn key(port: u16) -> FlowKey {
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        FlowKey::new(6, a, port, b, 443).0
    }

    #[test]
    fn symmetric_key() {
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let (k1, d1) = FlowKey::new(6, a, 1000, b, 443);
        let (k2, d2) = FlowKey::new(6, b, 443, a, 1000);
        assert_eq!(k1, k2);
        assert_ne!(d1, d2);
        assert_ne!(k1, FlowKey::new(17, a, 1000, b, 443).0);
    }

    #[test]
    fn is_matches_the_built_key() {
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let m: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let c: IpAddr = "2001:db8::1".parse().unwrap();
        let ends = [(a, 1000), (b, 443), (m, 1000), (c, 443), (a, 443)];
        for &x in &ends {
            for &y in &ends {
                if x.0.is_ipv6() != y.0.is_ipv6() {
                    continue;
                }
                for proto in [6, 17] {
                    let (k, x_lo) = FlowKey::new(proto, x.0, x.1, y.0, y.1);
                    let (lo, hi) = if x_lo { (x, y) } else { (y, x) };
                    assert!(k.is(proto, lo, hi), "{x:?} {y:?}");
                    assert!(!k.is(23 - proto, lo, hi));
                    for &z in &ends {
                        let other = FlowKey::new(proto, x.0, x.1, z.0, z.1).0;
                        assert_eq!(other.is(proto, lo, hi), other == k, "{x:?} {y:?} {z:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn lru_order_and_reuse() {
        let mut t = FlowTable::new(3);
        let s1 = t.insert(key(1), 1, V(key(1), 1)).unwrap();
        let s2 = t.insert(key(2), 2, V(key(2), 2)).unwrap();
        let _s3 = t.insert(key(3), 3, V(key(3), 3)).unwrap();
        assert!(t.is_full());
        assert!(t.insert(key(4), 4, V(key(4), 4)).is_none());
        assert_eq!(t.oldest(), Some((s1, 1)));
        t.touch(s1, 5);
        assert_eq!(t.oldest(), Some((s2, 2)));
        assert_eq!(t.remove(s2), Some(V(key(2), 2)));
        let s4 = t.insert(key(4), 6, V(key(4), 4)).unwrap();
        assert_eq!(s4, s2, "freed slot reused");
        assert_eq!(t.find(&key(4)), Some(s4));
        assert_eq!(t.find(&key(2)), None);
        let all: Vec<u32> = t.drain().into_iter().map(|v| v.1).collect();
        assert_eq!(all, vec![3, 1, 4]);
        assert!(t.is_empty());
    }
}
