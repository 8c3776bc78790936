//! Per-direction TCP reassembly up to the handshake depth.
//!
//! Each direction keeps the next expected sequence number as a 64-bit stream offset, so sequence
//! wraparound is handled by one signed 32-bit distance. In-order bytes go straight from the packet
//! to the sink (no copy); only out-of-order bytes are copied, into a lazily allocated buffer that
//! is bounded in bytes and segments. Overlaps resolve as "first seen wins" (differences counted):
//! a later segment never rewrites bytes already buffered or delivered. When the buffer is full,
//! or when the flow ends, the hole before the first buffered segment is declared lost (a gap)
//! and delivery continues after it.
use crate::stats::Stats;
use crate::{CloseKind, Verdict};
use std::collections::BTreeMap;

/// A segment starting more than this far beyond the next expected byte is treated as out of
/// window (bogus or from another connection) and dropped, rather than creating a huge gap.
pub const MAX_SEQ_AHEAD: u64 = 1 << 30;

/// What a direction hands to its consumer.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// Contiguous new bytes.
    Data(&'a [u8]),
    /// `n` bytes lost for good before the next `Data`.
    Gap(u64),
    /// The direction closed after all its bytes.
    Close(CloseKind),
}

/// Limits for one direction.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub depth: u64,
    pub max_ooo_bytes: usize,
    pub max_ooo_segments: usize,
}

/// Buffered out-of-order segments: disjoint, keyed by stream offset. Also, rarely, the other
/// stream start of a direction whose SYN (or SYN-ACK) came again with another ISN before any
/// data: kept here so that a direction stays 32 bytes.
#[derive(Debug, Default)]
struct Ooo {
    segs: BTreeMap<u64, Vec<u8>>,
    bytes: usize,
    alt_base: Option<u32>,
}

/// A first data segment this far past a stream start (in bytes) still belongs to it (a window).
const START_WINDOW: i64 = 1 << 16;

/// Whether `p` begins with a TLS record header (content type 20-24, version 3.x with x <= 4, a
/// length up to 2^14 + 2048): where a direction whose sequence numbers fit nothing resumes.
fn tls_record_start(p: &[u8]) -> bool {
    const MAX_RECORD: usize = (1 << 14) + 2048;
    match p {
        [ct, 3, minor, hi, lo, ..] => {
            (20..=24).contains(ct)
                && *minor <= 4
                && usize::from(u16::from_be_bytes([*hi, *lo])) <= MAX_RECORD
        }
        _ => false,
    }
}

/// One direction of a TCP stream.
#[derive(Debug, Default)]
pub struct TcpDir {
    started: bool,
    /// The direction began with a SYN (its sequence number is `base - 1`).
    syn: bool,
    /// A FIN was seen; it sits at sequence number `fin_seq`.
    fin: bool,
    /// Sequence number of stream offset 0.
    base: u32,
    /// Kept as a sequence number rather than a 64-bit stream offset (and the ISN derived from
    /// `base`), so that a direction takes 32 bytes: two per tracked flow. While a FIN is pending,
    /// the stream offset `next` stays within 2^31 of it (data is accepted at most
    /// `MAX_SEQ_AHEAD` ahead, and the direction closes once `next` reaches the FIN).
    fin_seq: u32,
    /// Stream offset of the next expected byte (bytes delivered + gaps).
    next: u64,
    /// A FIN or RST was seen in this direction (kept even after bypass).
    pub close_seen: bool,
    /// `Close` was delivered (or the direction was done when it closed).
    closed: bool,
    /// Depth reached: no more bytes are delivered for this direction.
    done: bool,
    ooo: Option<Box<Ooo>>,
}

type Sink<'s> = dyn FnMut(Event<'_>) -> Verdict + 's;

impl TcpDir {
    pub fn started(&self) -> bool {
        self.started
    }
    pub fn syn_seen(&self) -> bool {
        self.syn
    }
    pub fn isn(&self) -> u32 {
        if self.syn {
            self.base.wrapping_sub(1)
        } else {
            self.base
        }
    }
    /// Depth reached (or the direction gave up): no more data callbacks.
    pub fn done(&self) -> bool {
        self.done
    }
    pub fn closed(&self) -> bool {
        self.closed
    }
    /// Stream offset of the next expected byte.
    pub fn offset(&self) -> u64 {
        self.next
    }
    /// Bytes buffered out of order.
    pub fn buffered(&self) -> usize {
        self.ooo.as_ref().map_or(0, |o| o.bytes)
    }
    /// No byte delivered or buffered yet (the stream start may still change).
    pub fn untouched(&self) -> bool {
        self.next == 0 && self.buffered() == 0
    }

    /// Establishes the stream start from the first packet seen in this direction.
    pub fn start(&mut self, seq: u32, syn: bool) {
        self.started = true;
        self.syn = syn;
        self.base = if syn { seq.wrapping_add(1) } else { seq };
        self.next = 0;
    }

    fn next_seq(&self) -> u32 {
        self.base.wrapping_add(self.next as u32)
    }

    /// Stream offset of the FIN, once one was seen.
    fn fin_at(&self) -> Option<u64> {
        if !self.fin {
            return None;
        }
        Some(self.next.saturating_add_signed(self.distance(self.fin_seq)))
    }

    /// Signed distance of `seq` from the next expected sequence number.
    pub fn distance(&self, seq: u32) -> i64 {
        i64::from(seq.wrapping_sub(self.next_seq()) as i32)
    }

    /// Drops the out-of-order buffer (bypass, depth reached).
    pub fn free(&mut self) {
        self.ooo = None;
    }

    /// Processes one segment of this direction. Returns `Bypass` if the sink asked for it.
    #[allow(clippy::too_many_arguments)]
    pub fn segment(
        &mut self,
        seq: u32,
        syn: bool,
        fin: bool,
        rst: bool,
        payload: &[u8],
        lim: &Limits,
        stats: &mut Stats,
        sink: &mut Sink<'_>,
    ) -> Verdict {
        let fresh = !self.started;
        if fresh {
            self.start(seq, syn);
        }
        if fin || rst {
            self.close_seen = true;
        }
        let untouched = self.untouched();
        if syn && !fresh && self.syn && untouched && seq.wrapping_add(1) != self.base {
            // The SYN (or SYN-ACK) again with another ISN before any data: the data decides.
            stats.tcp_isn_changes += 1;
            self.ooo.get_or_insert_with(Box::default).alt_base = Some(seq.wrapping_add(1));
        }
        let data_seq = if syn { seq.wrapping_add(1) } else { seq };
        let mut dist = self.distance(data_seq);
        // Untouched, nothing is buffered: the box, if any, holds only the other start.
        if untouched && !payload.is_empty() {
            if (0..START_WINDOW).contains(&dist) {
                // The data follows this start: another one kept aside is of no use.
                self.ooo = None;
            } else {
                let alt = self.ooo.as_ref().and_then(|o| o.alt_base).filter(|a| {
                    (0..START_WINDOW).contains(&i64::from(data_seq.wrapping_sub(*a) as i32))
                });
                let resync = match alt {
                    // The other ISN is the one the data follows.
                    Some(a) => {
                        self.base = a;
                        true
                    }
                    // Fits no stream start at all, but a TLS record begins here: resume on it.
                    None if dist.abs() > MAX_SEQ_AHEAD as i64 && tls_record_start(payload) => {
                        self.base = data_seq;
                        self.syn = false;
                        true
                    }
                    None => false,
                };
                if resync {
                    stats.tcp_resyncs += 1;
                    self.ooo = None;
                    dist = self.distance(data_seq);
                }
            }
        }
        let len = payload.len() as u64;
        if dist > MAX_SEQ_AHEAD as i64 {
            stats.tcp_out_of_window += 1;
            return Verdict::Continue;
        }
        // Stream offset of the first payload byte; data from before the stream start is cut.
        let (start, payload) = match self.next.checked_add_signed(dist) {
            Some(s) => (s, payload),
            None => {
                let cut = usize::try_from(dist.unsigned_abs() - self.next).unwrap_or(usize::MAX);
                (0, payload.get(cut..).unwrap_or(&[]))
            }
        };
        if fin && !self.fin {
            self.fin = true;
            self.fin_seq = self
                .base
                .wrapping_add((start + payload.len() as u64) as u32);
        }
        if !payload.is_empty() {
            if self.done {
                // Past the depth: the bytes are not wanted.
            } else if self.accept(start, payload, lim, stats, sink) == Verdict::Bypass {
                return Verdict::Bypass;
            }
        } else if len > 0 {
            stats.tcp_retransmitted_bytes += len;
        }
        if rst {
            return self.finish(CloseKind::Rst, lim, stats, sink);
        }
        self.maybe_close(sink)
    }

    /// Emits `Close(Fin)` once every byte before the FIN was delivered.
    fn maybe_close(&mut self, sink: &mut Sink<'_>) -> Verdict {
        if self.closed {
            return Verdict::Continue;
        }
        if self.fin_at().is_some_and(|f| self.next >= f || self.done) {
            self.closed = true;
            return sink(Event::Close(CloseKind::Fin));
        }
        Verdict::Continue
    }

    /// Flushes everything buffered (holes become gaps) and closes with `kind` if not closed.
    fn finish(
        &mut self,
        kind: CloseKind,
        lim: &Limits,
        stats: &mut Stats,
        sink: &mut Sink<'_>,
    ) -> Verdict {
        if self.flush_buffer(lim, stats, sink) == Verdict::Bypass {
            return Verdict::Bypass;
        }
        if self.closed {
            return Verdict::Continue;
        }
        self.closed = true;
        sink(Event::Close(kind))
    }

    /// At flow end: holes before buffered data become gaps, buffered data is delivered, and a
    /// FIN whose preceding bytes are missing is closed after a final gap.
    pub fn flush(&mut self, lim: &Limits, stats: &mut Stats, sink: &mut Sink<'_>) -> Verdict {
        if self.flush_buffer(lim, stats, sink) == Verdict::Bypass {
            return Verdict::Bypass;
        }
        let pending = self.fin_at().map_or(0, |f| f.saturating_sub(self.next));
        if !self.closed
            && !self.done
            && pending > 0
            && self.gap(pending, lim, stats, sink) == Verdict::Bypass
        {
            return Verdict::Bypass;
        }
        self.maybe_close(sink)
    }

    fn flush_buffer(&mut self, lim: &Limits, stats: &mut Stats, sink: &mut Sink<'_>) -> Verdict {
        let bound = lim.max_ooo_segments.saturating_add(2);
        for _ in 0..bound {
            if self.done || self.buffered_first().is_none() {
                break;
            }
            if self.force_gap(None, lim, stats, sink) == Verdict::Bypass {
                return Verdict::Bypass;
            }
        }
        Verdict::Continue
    }

    fn buffered_first(&self) -> Option<u64> {
        self.ooo
            .as_ref()
            .and_then(|o| o.segs.first_key_value().map(|(k, _)| *k))
    }

    /// Accepts payload bytes at stream offset `start` (not past the depth yet).
    fn accept(
        &mut self,
        mut start: u64,
        mut data: &[u8],
        lim: &Limits,
        stats: &mut Stats,
        sink: &mut Sink<'_>,
    ) -> Verdict {
        let bound = lim.max_ooo_segments.saturating_add(3);
        for _ in 0..bound {
            if self.done || data.is_empty() {
                return Verdict::Continue;
            }
            // Trim what was delivered already (retransmission or overlap with delivered data).
            if start < self.next {
                let skip = self.next - start;
                let skip_us = usize::try_from(skip).unwrap_or(usize::MAX).min(data.len());
                stats.tcp_retransmitted_bytes += skip_us as u64;
                data = data.get(skip_us..).unwrap_or(&[]);
                start = self.next;
                if data.is_empty() {
                    return Verdict::Continue;
                }
            }
            let end = start + data.len() as u64;
            if start == self.next {
                // In order: deliver directly up to the first buffered segment (which wins on
                // overlap, as it was seen first), buffer the remainder against the buffer.
                let first = self.buffered_first().unwrap_or(u64::MAX);
                let direct = usize::try_from(first.saturating_sub(start))
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                let (now, later) = data.split_at(direct);
                if self.deliver(now, lim, stats, sink) == Verdict::Bypass {
                    return Verdict::Bypass;
                }
                if !later.is_empty() && !self.done {
                    self.insert(start + direct as u64, later, lim, stats);
                }
                return self.drain(lim, stats, sink);
            }
            // Ahead of the next expected byte.
            stats.tcp_out_of_order_segments += 1;
            let (new_bytes, new_segs) = self.uncovered(start, end);
            let o_bytes = self.buffered();
            let o_segs = self.ooo.as_ref().map_or(0, |o| o.segs.len());
            if o_bytes + new_bytes <= lim.max_ooo_bytes && o_segs + new_segs <= lim.max_ooo_segments
            {
                self.insert(start, data, lim, stats);
                return Verdict::Continue;
            }
            // Buffer cap: the hole before the first buffered byte (or before this segment when
            // nothing is buffered) will never be filled in time; give it up.
            stats.tcp_buffer_cap_drops += 1;
            if self.force_gap(Some(start), lim, stats, sink) == Verdict::Bypass {
                return Verdict::Bypass;
            }
        }
        Verdict::Continue
    }

    /// Bytes and segments that inserting `[start, end)` would add.
    fn uncovered(&self, start: u64, end: u64) -> (usize, usize) {
        let Some(o) = self.ooo.as_ref() else {
            return ((end - start) as usize, 1);
        };
        let mut bytes = 0u64;
        let mut segs = 0usize;
        let mut pos = start;
        let from = o.segs.range(..start).next_back().map_or(start, |(k, _)| *k);
        for (k, v) in o.segs.range(from..end) {
            let ke = k + v.len() as u64;
            if ke <= pos {
                continue;
            }
            if *k > pos {
                bytes += k - pos;
                segs += 1;
            }
            pos = ke;
            if pos >= end {
                break;
            }
        }
        if pos < end {
            bytes += end - pos;
            segs += 1;
        }
        (bytes as usize, segs)
    }

    /// Buffers the parts of `data` (at `start`) not covered yet; covered parts are compared.
    fn insert(&mut self, start: u64, data: &[u8], _lim: &Limits, stats: &mut Stats) {
        let o = self.ooo.get_or_insert_with(Box::default);
        let end = start + data.len() as u64;
        let from = o.segs.range(..start).next_back().map_or(start, |(k, _)| *k);
        let mut pieces: Vec<(u64, u64)> = Vec::new();
        let mut pos = start;
        for (k, v) in o.segs.range(from..end) {
            let ke = k + v.len() as u64;
            if ke <= pos {
                continue;
            }
            if *k > pos {
                pieces.push((pos, *k));
            }
            // Overlap [max(k,pos), min(ke,end)): the buffered bytes win.
            let os = (*k).max(pos);
            let oe = ke.min(end);
            let old = v.get((os - k) as usize..(oe - k) as usize);
            let new = data.get((os - start) as usize..(oe - start) as usize);
            stats.tcp_retransmitted_bytes += oe - os;
            if old != new {
                stats.tcp_overlap_conflicts += 1;
            }
            pos = ke;
            if pos >= end {
                break;
            }
        }
        if pos < end {
            pieces.push((pos, end));
        }
        for (s, e) in pieces {
            if let Some(bytes) = data.get((s - start) as usize..(e - start) as usize) {
                o.bytes += bytes.len();
                o.segs.insert(s, bytes.to_vec());
            }
        }
    }

    /// Declares the hole up to the first buffered segment (or up to `fallback` when nothing is
    /// buffered) lost, then delivers what became contiguous.
    fn force_gap(
        &mut self,
        fallback: Option<u64>,
        lim: &Limits,
        stats: &mut Stats,
        sink: &mut Sink<'_>,
    ) -> Verdict {
        let target = match self.buffered_first().or(fallback) {
            Some(t) => t,
            None => return Verdict::Continue,
        };
        if target > self.next {
            let n = target - self.next;
            if self.gap(n, lim, stats, sink) == Verdict::Bypass {
                return Verdict::Bypass;
            }
        }
        self.drain(lim, stats, sink)
    }

    fn gap(&mut self, n: u64, lim: &Limits, stats: &mut Stats, sink: &mut Sink<'_>) -> Verdict {
        stats.tcp_gaps += 1;
        self.next = self.next.saturating_add(n);
        let v = sink(Event::Gap(n));
        if self.next >= lim.depth && !self.done {
            self.reach_depth(stats);
        }
        v
    }

    /// Delivers buffered segments that became contiguous.
    fn drain(&mut self, lim: &Limits, stats: &mut Stats, sink: &mut Sink<'_>) -> Verdict {
        loop {
            if self.done {
                return Verdict::Continue;
            }
            let Some(o) = self.ooo.as_mut() else {
                return Verdict::Continue;
            };
            let Some(entry) = o.segs.first_entry() else {
                return Verdict::Continue;
            };
            if *entry.key() > self.next {
                return Verdict::Continue;
            }
            let k = *entry.key();
            let v = entry.remove();
            o.bytes = o.bytes.saturating_sub(v.len());
            let skip = usize::try_from(self.next - k).unwrap_or(usize::MAX);
            if let Some(rest) = v.get(skip..) {
                if !rest.is_empty() && self.deliver(rest, lim, stats, sink) == Verdict::Bypass {
                    return Verdict::Bypass;
                }
            }
        }
    }

    /// Delivers in-order bytes, clipped to the depth.
    fn deliver(
        &mut self,
        data: &[u8],
        lim: &Limits,
        stats: &mut Stats,
        sink: &mut Sink<'_>,
    ) -> Verdict {
        if data.is_empty() || self.done {
            return Verdict::Continue;
        }
        let room = usize::try_from(lim.depth.saturating_sub(self.next)).unwrap_or(usize::MAX);
        let take = data.len().min(room);
        let mut v = Verdict::Continue;
        if let Some(part) = data.get(..take) {
            if !part.is_empty() {
                self.next += part.len() as u64;
                v = sink(Event::Data(part));
            }
        }
        if self.next >= lim.depth {
            self.reach_depth(stats);
        }
        v
    }

    fn reach_depth(&mut self, stats: &mut Stats) {
        self.done = true;
        stats.tcp_depth_reached += 1;
        self.free();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim(depth: u64, bytes: usize, segs: usize) -> Limits {
        Limits {
            depth,
            max_ooo_bytes: bytes,
            max_ooo_segments: segs,
        }
    }

    #[derive(Default)]
    struct Rec {
        data: Vec<u8>,
        gaps: Vec<u64>,
        closes: Vec<CloseKind>,
    }

    impl Rec {
        fn record(&mut self, e: Event<'_>) -> Verdict {
            match e {
                Event::Data(x) => self.data.extend_from_slice(x),
                Event::Gap(n) => self.gaps.push(n),
                Event::Close(k) => self.closes.push(k),
            }
            Verdict::Continue
        }
    }

    fn feed(d: &mut TcpDir, r: &mut Rec, st: &mut Stats, l: &Limits, seq: u32, p: &[u8], f: u8) {
        let mut sink = |e: Event<'_>| r.record(e);
        d.segment(seq, f & 2 != 0, f & 1 != 0, f & 4 != 0, p, l, st, &mut sink);
    }

    /// Flow end: [`TcpDir::flush`] into `r`.
    fn flush(d: &mut TcpDir, r: &mut Rec, st: &mut Stats, l: &Limits) -> Verdict {
        let mut sink = |e: Event<'_>| r.record(e);
        d.flush(l, st, &mut sink)
    }

    #[test]
    fn wraparound_reorder() {
        let l = lim(1 << 20, 1 << 16, 64);
        let mut d = TcpDir::default();
        let mut r = Rec::default();
        let mut st = Stats::default();
        let isn = u32::MAX - 3;
        feed(&mut d, &mut r, &mut st, &l, isn, b"", 2);
        // bytes at isn+1 .. wrap past 0
        feed(&mut d, &mut r, &mut st, &l, isn.wrapping_add(7), b"ghij", 0);
        feed(
            &mut d,
            &mut r,
            &mut st,
            &l,
            isn.wrapping_add(1),
            b"abcdef",
            0,
        );
        assert_eq!(r.data, b"abcdefghij");
        assert_eq!(st.tcp_out_of_order_segments, 1);
        assert_eq!(d.buffered(), 0);
    }

    /// The FIN is kept as a sequence number: across the wrap, a FIN ahead of a hole waits for
    /// the missing bytes, and at flow end the hole before it becomes a gap, then the close.
    #[test]
    fn fin_across_wraparound() {
        let l = lim(1 << 20, 1 << 16, 64);
        let isn = u32::MAX - 3;
        let mut d = TcpDir::default();
        let mut r = Rec::default();
        let mut st = Stats::default();
        feed(&mut d, &mut r, &mut st, &l, isn, b"", 2);
        feed(&mut d, &mut r, &mut st, &l, isn.wrapping_add(7), b"ghij", 1);
        assert!(r.closes.is_empty(), "bytes before the FIN are missing");
        feed(
            &mut d,
            &mut r,
            &mut st,
            &l,
            isn.wrapping_add(1),
            b"abcdef",
            0,
        );
        assert_eq!(r.data, b"abcdefghij");
        assert_eq!(r.closes, vec![CloseKind::Fin]);
        assert_eq!(d.isn(), isn);

        let mut d = TcpDir::default();
        let mut r = Rec::default();
        feed(&mut d, &mut r, &mut st, &l, isn, b"", 2);
        feed(&mut d, &mut r, &mut st, &l, isn.wrapping_add(1), b"abc", 0);
        feed(&mut d, &mut r, &mut st, &l, isn.wrapping_add(9), b"", 1);
        assert!(r.closes.is_empty());
        flush(&mut d, &mut r, &mut st, &l);
        assert_eq!(r.data, b"abc");
        assert_eq!(r.gaps, vec![5], "seq isn+4 .. isn+9, past the wrap");
        assert_eq!(r.closes, vec![CloseKind::Fin]);
    }

    #[test]
    fn cap_forces_gap() {
        let l = lim(1 << 20, 4, 8);
        let mut d = TcpDir::default();
        let mut r = Rec::default();
        let mut st = Stats::default();
        feed(&mut d, &mut r, &mut st, &l, 100, b"ab", 0);
        feed(&mut d, &mut r, &mut st, &l, 104, b"ef", 0); // buffered (2 bytes)
        feed(&mut d, &mut r, &mut st, &l, 108, b"ijk", 0); // would exceed 4 -> gap of 2
        assert_eq!(r.data, b"abef");
        assert_eq!(r.gaps, vec![2]);
        assert_eq!(st.tcp_buffer_cap_drops, 1);
        assert_eq!(d.buffered(), 3);
        // At flow end the remaining hole becomes a gap too.
        flush(&mut d, &mut r, &mut st, &l);
        assert_eq!(r.data, b"abefijk");
        assert_eq!(r.gaps, vec![2, 2]);
    }

    #[test]
    fn out_of_window_dropped() {
        let l = lim(1 << 20, 1 << 16, 64);
        let mut d = TcpDir::default();
        let mut r = Rec::default();
        let mut st = Stats::default();
        feed(&mut d, &mut r, &mut st, &l, 0, b"a", 0);
        feed(&mut d, &mut r, &mut st, &l, 1 << 31, b"zz", 0);
        assert_eq!(st.tcp_out_of_window, 1);
        assert_eq!(d.buffered(), 0);
    }
}
