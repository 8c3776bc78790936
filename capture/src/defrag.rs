//! IPv4/IPv6 fragment reassembly, bounded.
//!
//! Datagrams in progress are capped (the oldest is dropped beyond the cap), each datagram's size
//! is capped, the number of disjoint pieces per datagram is capped (a tiny-fragment flood cannot
//! make the coverage list grow), and unfinished datagrams expire by capture time. Overlaps are
//! resolved deterministically: bytes seen first win, whatever the arrival order (like the TCP
//! reassembler), and differing overlap bytes are counted.
use crate::decode::Fragment;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

/// Unfinished datagrams expire after this much capture time (Linux `ipfrag_time` is 30 s).
pub const FRAG_TIMEOUT_NS: u64 = 30_000_000_000;
/// Most disjoint pieces one datagram may have while incomplete.
pub const MAX_PIECES_PER_DATAGRAM: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    proto: u8,
    v6: bool,
}

struct Datagram {
    buf: Vec<u8>,
    /// Sorted, disjoint, non-adjacent covered ranges `[start, end)`.
    pieces: Vec<(u32, u32)>,
    /// Total payload length, known once the last fragment (MF=0) arrived.
    total: Option<u32>,
    first_ts: u64,
    /// Creation serial, to match entries of the expiry queue.
    serial: u64,
    tunnels: u8,
}

/// Counters of the reassembler (folded into [`crate::Stats`] by the engine).
#[derive(Debug, Default, Clone)]
pub struct DefragStats {
    pub fragments: u64,
    pub reassembled: u64,
    /// Fragments or datagrams dropped: malformed, inconsistent, too large, too many pieces.
    pub dropped: u64,
    /// Datagrams dropped because the table was full.
    pub table_full: u64,
    pub timeouts: u64,
    pub overlap_conflicts: u64,
}

impl DefragStats {
    /// Adds what was counted since `seen` to the capture counters `stats` (fragments,
    /// reassembled datagrams, overlap conflicts, and the drops as decode problems), and moves
    /// `seen` up to now. The engine calls it as it goes; a dispatcher that reassembles for
    /// several workers calls it once, from a default `seen`.
    pub fn fold_new_into(&self, seen: &mut DefragStats, stats: &mut crate::Stats) {
        let new = |now: u64, before: u64| now.saturating_sub(before);
        stats.ip_fragments += new(self.fragments, seen.fragments);
        stats.ip_reassembled += new(self.reassembled, seen.reassembled);
        stats.ip_fragment_overlaps += new(self.overlap_conflicts, seen.overlap_conflicts);
        for (p, n) in [
            (
                crate::stats::DecodeProblem::FragmentDropped,
                new(self.dropped, seen.dropped),
            ),
            (
                crate::stats::DecodeProblem::FragmentTableFull,
                new(self.table_full, seen.table_full),
            ),
        ] {
            if n > 0 {
                *stats.decode_problems.entry(p).or_insert(0) += n;
            }
        }
        *seen = self.clone();
    }
}

/// A completed datagram.
#[derive(Debug)]
pub struct Reassembled {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub v6: bool,
    pub tunnels: u8,
    pub payload: Vec<u8>,
}

/// What happened to one fragment.
#[derive(Debug)]
pub enum FragResult {
    /// Stored; the datagram is not complete yet.
    Pending,
    /// The datagram is complete.
    Complete(Reassembled),
    /// Dropped (counted).
    Dropped,
}

pub struct Defrag {
    max_datagrams: usize,
    max_bytes: usize,
    timeout_ns: u64,
    table: HashMap<Key, Datagram, ahash::RandomState>,
    /// Creation order, for expiry and for dropping the oldest when full.
    order: VecDeque<(u64, Key, u64)>,
    serial: u64,
    pub stats: DefragStats,
}

impl Defrag {
    pub fn new(max_datagrams: usize, max_bytes: usize) -> Self {
        Defrag {
            max_datagrams: max_datagrams.max(1),
            max_bytes,
            timeout_ns: FRAG_TIMEOUT_NS,
            table: HashMap::with_hasher(ahash::RandomState::new()),
            order: VecDeque::new(),
            serial: 0,
            stats: DefragStats::default(),
        }
    }

    /// Overrides the expiry time (tests, or a deployment's own policy).
    pub fn with_timeout(mut self, ns: u64) -> Self {
        self.timeout_ns = ns;
        self
    }

    /// Datagrams in progress.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Drops datagrams older than the timeout. Amortised O(1): only the queue front is examined.
    pub fn expire(&mut self, now: u64) {
        while let Some(&(ts, key, serial)) = self.order.front() {
            let live = self.table.get(&key).map(|d| d.serial) == Some(serial);
            if live && ts.saturating_add(self.timeout_ns) > now {
                break;
            }
            self.order.pop_front();
            if live {
                self.table.remove(&key);
                self.stats.timeouts += 1;
                self.stats.dropped += 1;
            }
        }
        // Stale queue entries of completed datagrams are skipped above; bound the queue anyway.
        if self.order.len() > self.max_datagrams.saturating_mul(4) + 16 {
            let table = &self.table;
            self.order
                .retain(|(_, k, s)| table.get(k).map(|d| d.serial) == Some(*s));
        }
    }

    /// Adds one fragment.
    pub fn add(&mut self, now: u64, f: &Fragment<'_>) -> FragResult {
        self.stats.fragments += 1;
        self.expire(now);
        let key = Key {
            src: f.src,
            dst: f.dst,
            id: f.id,
            proto: f.proto,
            v6: f.v6,
        };
        let len = match u32::try_from(f.payload.len()) {
            Ok(l) => l,
            Err(_) => return self.drop_fragment(),
        };
        let start = f.offset;
        let end = match start.checked_add(len) {
            Some(e) if (e as usize) <= self.max_bytes => e,
            _ => {
                self.discard(&key);
                return self.drop_fragment();
            }
        };
        // Every fragment but the last carries a multiple of 8 bytes.
        if f.more && len % 8 != 0 {
            return self.drop_fragment();
        }
        if !self.table.contains_key(&key) {
            while self.table.len() >= self.max_datagrams {
                if !self.drop_oldest() {
                    break;
                }
            }
            self.serial += 1;
            self.table.insert(
                key,
                Datagram {
                    buf: Vec::new(),
                    pieces: Vec::new(),
                    total: None,
                    first_ts: now,
                    serial: self.serial,
                    tunnels: f.tunnels,
                },
            );
            self.order.push_back((now, key, self.serial));
        }
        let Some(dg) = self.table.get_mut(&key) else {
            return self.drop_fragment();
        };
        if !f.more {
            match dg.total {
                Some(t) if t != end => {
                    self.discard(&key);
                    return self.drop_fragment();
                }
                _ => dg.total = Some(end),
            }
        }
        if let Some(t) = dg.total {
            let covered_end = dg.pieces.last().map_or(0, |p| p.1);
            if end > t || covered_end > t {
                self.discard(&key);
                return self.drop_fragment();
            }
        }
        if dg.buf.len() < end as usize {
            dg.buf.resize(end as usize, 0);
        }
        // Copy only the bytes not covered yet (first seen wins); compare the covered ones.
        let mut conflicts = 0u64;
        let mut pos = start;
        for &(ps, pe) in dg.pieces.iter() {
            if pe <= pos {
                continue;
            }
            if ps >= end {
                break;
            }
            if ps > pos {
                copy(&mut dg.buf, f.payload, start, pos, ps.min(end));
            }
            let os = ps.max(pos);
            let oe = pe.min(end);
            if os < oe {
                let old = dg.buf.get(os as usize..oe as usize);
                let new = f.payload.get((os - start) as usize..(oe - start) as usize);
                if old != new {
                    conflicts += 1;
                }
            }
            pos = pe.max(pos);
            if pos >= end {
                break;
            }
        }
        if pos < end {
            copy(&mut dg.buf, f.payload, start, pos, end);
        }
        insert_range(&mut dg.pieces, start, end);
        self.stats.overlap_conflicts += conflicts;
        if dg.pieces.len() > MAX_PIECES_PER_DATAGRAM {
            self.discard(&key);
            return self.drop_fragment();
        }
        let complete = matches!((dg.total, dg.pieces.as_slice()), (Some(t), [(0, e)]) if *e == t);
        if !complete {
            return FragResult::Pending;
        }
        let Some(dg) = self.table.remove(&key) else {
            return FragResult::Dropped;
        };
        let _ = dg.first_ts;
        self.stats.reassembled += 1;
        let mut payload = dg.buf;
        payload.truncate(dg.total.unwrap_or(0) as usize);
        FragResult::Complete(Reassembled {
            src: key.src,
            dst: key.dst,
            proto: key.proto,
            v6: key.v6,
            tunnels: dg.tunnels,
            payload,
        })
    }

    fn drop_fragment(&mut self) -> FragResult {
        self.stats.dropped += 1;
        FragResult::Dropped
    }

    fn discard(&mut self, key: &Key) {
        self.table.remove(key);
    }

    fn drop_oldest(&mut self) -> bool {
        while let Some((_, key, serial)) = self.order.pop_front() {
            if self.table.get(&key).map(|d| d.serial) == Some(serial) {
                self.table.remove(&key);
                self.stats.table_full += 1;
                return true;
            }
        }
        false
    }
}

/// Copies payload bytes for datagram offsets `[from, to)`; `start` is the payload's offset.
fn copy(buf: &mut [u8], payload: &[u8], start: u32, from: u32, to: u32) {
    if to <= from {
        return;
    }
    let src = payload.get((from - start) as usize..(to - start) as usize);
    let dst = buf.get_mut(from as usize..to as usize);
    if let (Some(s), Some(d)) = (src, dst) {
        d.copy_from_slice(s);
    }
}

/// Inserts `[s, e)` into sorted disjoint ranges, merging overlapping and adjacent ones.
fn insert_range(r: &mut Vec<(u32, u32)>, s: u32, e: u32) {
    if s >= e {
        return;
    }
    let mut ns = s;
    let mut ne = e;
    let mut i = 0;
    while i < r.len() {
        let (a, b) = r[i];
        if b < ns {
            i += 1;
            continue;
        }
        if a > ne {
            break;
        }
        ns = ns.min(a);
        ne = ne.max(b);
        r.remove(i);
    }
    r.insert(i, (ns, ne));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn frag(off: u32, more: bool, data: &[u8]) -> Fragment<'_> {
        Fragment {
            src: IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4)),
            dst: IpAddr::V4(Ipv4Addr::new(5, 6, 7, 8)),
            id: 77,
            proto: 17,
            offset: off,
            more,
            payload: data,
            tunnels: 0,
            v6: false,
        }
    }

    fn data(n: usize, seed: u8) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn in_order() {
        let d = data(40, 1);
        let mut r = Defrag::new(4, 65_543);
        assert!(matches!(
            r.add(0, &frag(0, true, &d[..16])),
            FragResult::Pending
        ));
        assert!(matches!(
            r.add(0, &frag(16, true, &d[16..32])),
            FragResult::Pending
        ));
        match r.add(0, &frag(32, false, &d[32..])) {
            FragResult::Complete(c) => assert_eq!(c.payload, d),
            other => panic!("{other:?}"),
        }
        assert!(r.is_empty());
        assert_eq!(r.stats.reassembled, 1);
    }

    #[test]
    fn out_of_order() {
        let d = data(40, 2);
        let mut r = Defrag::new(4, 65_543);
        assert!(matches!(
            r.add(0, &frag(32, false, &d[32..])),
            FragResult::Pending
        ));
        assert!(matches!(
            r.add(0, &frag(0, true, &d[..16])),
            FragResult::Pending
        ));
        match r.add(0, &frag(16, true, &d[16..32])) {
            FragResult::Complete(c) => assert_eq!(c.payload, d),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn overlap_first_wins() {
        let d = data(48, 3);
        let evil = vec![0xee; 16];
        let mut r = Defrag::new(4, 65_543);
        assert!(matches!(
            r.add(0, &frag(0, true, &d[..24])),
            FragResult::Pending
        ));
        // Overlaps [16, 32) with different bytes: [16, 24) keeps the first bytes.
        assert!(matches!(
            r.add(0, &frag(16, true, &evil)),
            FragResult::Pending
        ));
        match r.add(0, &frag(32, false, &d[32..])) {
            FragResult::Complete(c) => {
                assert_eq!(&c.payload[..24], &d[..24]);
                assert_eq!(&c.payload[24..32], &evil[8..]);
                assert_eq!(&c.payload[32..], &d[32..]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.stats.overlap_conflicts, 1);
    }

    #[test]
    fn bounds_and_timeout() {
        let d = data(16, 4);
        let mut r = Defrag::new(2, 64);
        // Too large for max_bytes.
        assert!(matches!(
            r.add(0, &frag(64, false, &d)),
            FragResult::Dropped
        ));
        // Table full: the oldest is dropped.
        for id in 0..3u32 {
            let mut f = frag(0, true, &d);
            f.id = id;
            r.add(0, &f);
        }
        assert_eq!(r.len(), 2);
        assert_eq!(r.stats.table_full, 1);
        // Timeout by capture time.
        r.expire(FRAG_TIMEOUT_NS + 1);
        assert!(r.is_empty());
        assert_eq!(r.stats.timeouts, 2);
        // Inconsistent last fragment.
        r.add(0, &frag(0, false, &d));
        assert_eq!(r.stats.reassembled, 1);
        assert!(matches!(
            r.add(0, &frag(8, true, &d[..8])),
            FragResult::Pending
        ));
        assert!(matches!(
            r.add(0, &frag(0, false, &d[..4])),
            FragResult::Dropped
        ));
    }
}
