//! Synthetic engine tests: reassembly, flow table, defrag, through `Engine::process`.
mod common;
use capture::{CloseKind, Dir, EndReason, Engine, EngineConfig, RawPacket, Stats};
use common::*;
use testkit::packet::*;

const C: u16 = 40000;
const S: u16 = 443;

struct H {
    e: Engine<Recorder>,
    ts: u64,
}

impl H {
    fn new(cfg: EngineConfig) -> Self {
        H {
            e: Engine::new(cfg, Recorder::default()),
            ts: 1_000_000_000,
        }
    }
    fn dflt() -> Self {
        Self::new(EngineConfig::default())
    }
    fn raw(&mut self, data: &[u8]) {
        self.ts += 1000;
        self.e.process(&RawPacket {
            ts_ns: self.ts,
            linktype: 101,
            data,
            orig_len: data.len() as u32,
        });
    }
    /// Client -> server segment.
    fn c(&mut self, seq: u32, flags: u8, p: &[u8]) {
        self.raw(&tcp(A, C, B, S, seq, 0, flags, p));
    }
    /// Server -> client segment.
    fn s(&mut self, seq: u32, flags: u8, p: &[u8]) {
        self.raw(&tcp(B, S, A, C, seq, 0, flags, p));
    }
    fn handshake(&mut self, cisn: u32, sisn: u32) {
        self.c(cisn, SYN, b"");
        self.s(sisn, SYN | ACK, b"");
        self.c(cisn.wrapping_add(1), ACK, b"");
    }
    fn done(self) -> (Recorder, Stats) {
        self.e.finish()
    }
}

fn one(app: &Recorder) -> &Rec {
    assert_eq!(app.done.len(), 1, "{:?}", app.done);
    &app.done[0]
}

#[test]
fn reordered_duplicated_and_one_byte_segments() {
    let mut h = H::dflt();
    h.handshake(1000, 5000);
    let msg = b"hello, reassembled world";
    // Send 1-byte segments in a scrambled order, with duplicates.
    let order = [3usize, 0, 1, 1, 5, 2, 4, 0, 7, 6, 8, 9];
    for &i in &order {
        h.c(1001 + i as u32, ACK, &msg[i..i + 1]);
    }
    h.c(1011, ACK | PSH, &msg[10..]);
    h.c(1011, ACK | PSH, &msg[10..]); // full retransmission
    let (app, st) = h.done();
    let r = one(&app);
    assert_eq!(r.streams[0], msg);
    assert!(r.gaps.is_empty());
    assert_eq!(st.tcp_out_of_order_segments, 3); // bytes 3, 5 and 7 arrived early
    assert!(st.tcp_retransmitted_bytes >= msg.len() as u64 - 10 + 2);
    assert_eq!(st.tcp_overlap_conflicts, 0);
    assert_eq!(r.reason, Some(EndReason::EndOfInput));
}

#[test]
fn overlap_first_seen_wins() {
    let mut h = H::dflt();
    h.handshake(0, 0);
    // Out of order: bytes 5..10 "FGHIJ" buffered first.
    h.c(6, ACK, b"FGHIJ");
    // Then 0..8 with different bytes at 5..8: the buffered "FGH" wins.
    h.c(1, ACK, b"abcdexyz");
    // Overlap with delivered data, differing: delivered bytes stay.
    h.c(3, ACK, b"QQQQQQQQQQ!!"); // offsets 2..14: only 10..14 are new
    let (app, st) = h.done();
    assert_eq!(one(&app).streams[0], b"abcdeFGHIJQQ!!");
    assert_eq!(st.tcp_overlap_conflicts, 1);
}

#[test]
fn sequence_wraparound() {
    let mut h = H::dflt();
    let isn = u32::MAX - 5;
    h.handshake(isn, 7);
    h.c(isn.wrapping_add(1), ACK, b"0123");
    h.c(isn.wrapping_add(9), ACK, b"89ab"); // after wrap, early
    h.c(isn.wrapping_add(5), ACK, b"4567"); // straddles 2^32
    h.s(8, ACK, b"server");
    let (app, _) = h.done();
    let r = one(&app);
    assert_eq!(r.streams[0], b"0123456789ab");
    assert_eq!(r.streams[1], b"server");
}

#[test]
fn hole_at_buffer_cap_becomes_gap_then_continues() {
    let cfg = EngineConfig {
        max_ooo_bytes: 10,
        max_ooo_segments: 4,
        ..EngineConfig::default()
    };
    let mut h = H::new(cfg);
    h.handshake(100, 900);
    h.c(101, ACK, b"AAAA");
    // bytes 104..108 lost; these pile up out of order
    h.c(109, ACK, b"CCCC");
    h.c(113, ACK, b"DDDD");
    h.c(117, ACK, b"EEEE"); // 12 bytes > cap 10 -> gap of 4, then CCCCDDDD delivered, EEEE fits
    let app_partial = h.e.app.done.len();
    assert_eq!(app_partial, 0);
    h.c(121, ACK, b"F");
    let (app, st) = h.done();
    let r = one(&app);
    assert_eq!(r.gaps, vec![(Dir::Orig, 4)]);
    assert_eq!(r.streams[0], b"AAAACCCCDDDDEEEEF");
    assert_eq!(st.tcp_buffer_cap_drops, 1);
    assert_eq!(st.tcp_gaps, 1);
}

#[test]
fn hole_at_flow_end_flushes_with_gap() {
    let mut h = H::dflt();
    h.handshake(100, 900);
    h.c(101, ACK, b"ab");
    h.c(105, ACK | FIN, b"ef");
    let (app, _) = h.done();
    let r = one(&app);
    assert_eq!(r.streams[0], b"abef");
    assert_eq!(r.gaps, vec![(Dir::Orig, 2)]);
    assert_eq!(r.closes, vec![(Dir::Orig, CloseKind::Fin)]);
}

#[test]
fn fin_waits_for_missing_data() {
    let mut h = H::dflt();
    h.handshake(100, 900);
    h.c(104, ACK | FIN, b"def"); // FIN arrives before "abc"
    assert!(h.e.app.done.is_empty());
    h.c(101, ACK, b"abc");
    h.s(901, ACK | FIN, b"");
    let (app, st) = h.done();
    let r = one(&app);
    assert_eq!(r.streams[0], b"abcdef");
    assert_eq!(
        r.closes,
        vec![(Dir::Orig, CloseKind::Fin), (Dir::Resp, CloseKind::Fin)]
    );
    assert!(r.gaps.is_empty());
    assert_eq!(st.tcp_gaps, 0);
}

#[test]
fn rst_closes_after_in_order_bytes() {
    let mut h = H::dflt();
    h.handshake(100, 900);
    h.s(901, ACK, b"xyz");
    h.s(904, RST, b"");
    let (app, _) = h.done();
    let r = one(&app);
    assert_eq!(r.streams[1], b"xyz");
    assert_eq!(r.closes, vec![(Dir::Resp, CloseKind::Rst)]);
}

#[test]
fn closed_flow_retired_after_linger() {
    let mut h = H::dflt();
    h.handshake(100, 900);
    h.c(101, ACK | FIN, b"bye");
    h.s(901, ACK | FIN, b"");
    h.ts += capture::engine::CLOSED_LINGER_NS + 1;
    h.raw(&udp(A, 1, B, 2, b"tick"));
    assert_eq!(h.e.app.done.len(), 1);
    assert_eq!(h.e.app.done[0].reason, Some(EndReason::Closed));
    let (_, st) = h.done();
    assert_eq!(st.flows_closed, 1);
}

#[test]
fn midstream_pickup_guesses_originator() {
    // No SYN: the sender of the first packet is the originator.
    let mut h = H::dflt();
    h.s(5000, ACK, b"server first");
    h.c(77, ACK, b"client");
    let (app, st) = h.done();
    let r = one(&app);
    let c = r.ctx.as_ref().unwrap();
    assert!(!c.syn_seen);
    assert_eq!(c.orig.1, S);
    assert_eq!(r.streams[0], b"server first");
    assert_eq!(r.streams[1], b"client");
    assert_eq!(st.tcp_midstream_pickups, 1);

    // First packet a SYN-ACK: its receiver is the originator.
    let mut h = H::dflt();
    h.s(5000, SYN | ACK, b"");
    h.c(1, ACK, b"hi");
    h.s(5001, ACK, b"yo");
    let (app, st) = h.done();
    let r = one(&app);
    let c = r.ctx.as_ref().unwrap();
    assert_eq!(c.orig.1, C);
    assert_eq!(r.streams[0], b"hi");
    assert_eq!(r.streams[1], b"yo");
    assert_eq!(st.tcp_midstream_pickups, 0);
}

#[test]
fn syn_with_payload() {
    let mut h = H::dflt();
    h.c(10, SYN, b"early"); // TFO-style data in the SYN
    h.s(50, SYN | ACK, b"");
    h.c(16, ACK, b"+more");
    let (app, _) = h.done();
    assert_eq!(one(&app).streams[0], b"early+more");
}

#[test]
fn port_reuse_after_fin_and_new_isn() {
    let mut h = H::dflt();
    h.handshake(100, 900);
    h.c(101, ACK | FIN, b"one");
    h.s(901, ACK | FIN, b"");
    // Same 5-tuple, new connection right away.
    h.handshake(5_000_000, 77);
    h.c(5_000_001, ACK, b"two");
    // A retransmitted SYN of the live connection is not a new one.
    h.c(5_000_000, SYN, b"");
    // A SYN with a far ISN on a live flow is a new connection.
    h.c(3_000_000_000, SYN, b"");
    h.c(3_000_000_001, ACK, b"three");
    let (app, st) = h.done();
    assert_eq!(app.done.len(), 3);
    assert_eq!(app.done[0].reason, Some(EndReason::Reused));
    assert_eq!(app.done[0].streams[0], b"one");
    assert_eq!(app.done[1].reason, Some(EndReason::Reused));
    assert_eq!(app.done[1].streams[0], b"two");
    assert_eq!(app.done[2].streams[0], b"three");
    assert_eq!(st.flows_reused, 2);
    let ids: Vec<u64> = app
        .done
        .iter()
        .map(|r| r.ctx.as_ref().unwrap().id)
        .collect();
    assert!(ids[0] < ids[1] && ids[1] < ids[2]);
}

#[test]
fn keepalive_and_zero_window_probe() {
    let mut h = H::dflt();
    h.handshake(100, 900);
    h.c(101, ACK, b"abc");
    h.c(103, ACK, b"\0"); // keep-alive: one old byte (seq = next - 1), garbage
    h.c(103, ACK, b""); // pure keep-alive
    h.c(104, ACK, b"d"); // zero-window probe: the real next byte
    h.c(104, ACK, b"def"); // later retransmitted with more
    let (app, st) = h.done();
    assert_eq!(one(&app).streams[0], b"abcdef");
    assert_eq!(st.tcp_overlap_conflicts, 0);
}

#[test]
fn bypass_stops_callbacks_and_counts() {
    let mut h = H::new(EngineConfig::default());
    h.e.app.bypass_after = Some(4);
    h.handshake(100, 900);
    h.c(101, ACK, b"abcd");
    let calls = h.e.app.calls;
    h.c(105, ACK, b"efgh");
    h.s(901, ACK, b"server");
    h.c(110, ACK, b"out of order, would be buffered");
    assert_eq!(h.e.app.calls, calls, "no callbacks after bypass");
    let (app, st) = h.done();
    let r = one(&app);
    assert_eq!(r.streams[0], b"abcd");
    assert!(r.streams[1].is_empty());
    assert_eq!(st.bypassed_packets, 3);
}

#[test]
fn depth_limits_delivery_then_bypasses() {
    let cfg = EngineConfig {
        depth: 6,
        ..EngineConfig::default()
    };
    let mut h = H::new(cfg);
    h.handshake(100, 900);
    h.c(101, ACK, b"abcd");
    h.c(105, ACK, b"efgh");
    h.c(109, ACK, b"ijkl");
    h.s(901, ACK, b"0123456789");
    h.s(911, ACK, b"more");
    let (app, st) = h.done();
    let r = one(&app);
    assert_eq!(r.streams[0], b"abcdef");
    assert_eq!(r.streams[1], b"012345");
    assert_eq!(st.tcp_depth_reached, 2);
    assert_eq!(st.bypassed_packets, 1);
}

#[test]
fn lru_eviction_and_idle_timeout() {
    let cfg = EngineConfig {
        max_flows: 3,
        idle_timeout_ns: 10_000_000_000,
        ..EngineConfig::default()
    };
    let mut h = H::new(cfg);
    for port in 1..=5u16 {
        h.raw(&udp(A, port, B, 53, b"q"));
    }
    assert_eq!(h.e.flow_count(), 3);
    assert_eq!(h.e.stats.flows_evicted_lru, 2);
    // The oldest flows (ports 1 and 2) were evicted, with the reason reported.
    let ev: Vec<u16> =
        h.e.app
            .done
            .iter()
            .map(|r| r.ctx.as_ref().unwrap().orig.1)
            .collect();
    assert_eq!(ev, vec![1, 2]);
    assert!(h
        .e
        .app
        .done
        .iter()
        .all(|r| r.reason == Some(EndReason::Evicted)));
    // Touch port 3 so port 4 becomes the LRU; then port 6 evicts 4.
    h.raw(&udp(B, 53, A, 3, b"answer"));
    h.raw(&udp(A, 6, B, 53, b"q"));
    assert_eq!(h.e.app.done.last().unwrap().ctx.as_ref().unwrap().orig.1, 4);
    // Idle: 11 s later every flow times out on the next packet.
    h.ts += 11_000_000_000;
    h.raw(&udp(A, 7, B, 53, b"q"));
    assert_eq!(h.e.stats.flows_idle_timeout, 3);
    let (app, st) = h.done();
    assert_eq!(st.flows_created, 7);
    assert_eq!(app.done.len(), 7);
    // The answer reached flow 3 as a Resp datagram.
    let f3 = app
        .done
        .iter()
        .find(|r| r.ctx.as_ref().unwrap().orig.1 == 3)
        .unwrap();
    assert_eq!(f3.datagrams[1], vec![b"answer".to_vec()]);
    assert_eq!(f3.reason, Some(EndReason::IdleTimeout));
}

#[test]
fn fragmented_tcp_out_of_order_and_overlap() {
    let mut h = H::dflt();
    h.handshake(100, 900);
    let payload: Vec<u8> = (0..100u8).collect();
    let seg = tcp_hdr(C, S, 101, 0, ACK, &payload); // 120 bytes
                                                    // Fragments: [0,48) [40,88) overlap, [88,120) last; sent last-first.
    h.raw(&ipv4_frag(A, B, 6, 9, 88, false, &seg[88..]));
    h.raw(&ipv4_frag(A, B, 6, 9, 40, true, &seg[40..88]));
    assert_eq!(h.e.stats.ip_reassembled, 0);
    h.raw(&ipv4_frag(A, B, 6, 9, 0, true, &seg[..48]));
    let (app, st) = h.done();
    assert_eq!(st.ip_fragments, 3);
    assert_eq!(st.ip_reassembled, 1);
    assert_eq!(st.ip_fragment_overlaps, 0);
    assert_eq!(one(&app).streams[0], payload);
}

#[test]
fn fragment_timeout_is_counted() {
    let mut h = H::dflt();
    h.raw(&ipv4_frag(A, B, 17, 3, 0, true, &[0u8; 16]));
    h.ts += capture::defrag::FRAG_TIMEOUT_NS + 1;
    h.raw(&udp(A, 1, B, 2, b"x"));
    let (_, st) = h.done();
    assert_eq!(
        st.decode_problems
            .get(&capture::stats::DecodeProblem::FragmentDropped),
        Some(&1)
    );
}

#[test]
fn flow_hash_same_both_ways_through_engine_inputs() {
    let a = tcp(A, C, B, S, 1, 0, ACK, b"x");
    let b = tcp(B, S, A, C, 9, 0, ACK, b"y");
    let p = |d: &[u8]| {
        capture::decode::flow_hash(&RawPacket {
            ts_ns: 0,
            linktype: 101,
            data: d,
            orig_len: 0,
        })
    };
    assert_eq!(p(&a), p(&b));
    let f1 = ipv4_frag(A, B, 6, 9, 0, true, &[0u8; 24]);
    let f2 = ipv4_frag(B, A, 6, 9, 24, false, &[0u8; 8]);
    assert_eq!(p(&f1), p(&f2));
}

#[test]
fn bypassed_flow_costs_no_allocation_growth() {
    // Indirect check: after bypass, out-of-order segments are not buffered.
    let mut h = H::new(EngineConfig::default());
    h.e.app.bypass_after = Some(1);
    h.handshake(100, 900);
    h.c(101, ACK, b"a");
    for i in 0..100u32 {
        h.c(200 + i * 10, ACK, b"ooo data!");
    }
    let (_, st) = h.done();
    assert_eq!(st.bypassed_packets, 100);
    assert_eq!(st.tcp_out_of_order_segments, 0);
}
