//! The packet engine: decode -> defrag -> flow lookup -> reassembly -> App callbacks.
//!
//! Time is capture time only: "now" is the highest packet timestamp seen. Timeouts are swept on
//! every packet, but each sweep only looks at the least recently used flow, the oldest closed
//! flow and the oldest fragment datagram, so the cost is amortised O(1) per packet.
//!
//! A flow is stamped with "now" (not with its packet's own timestamp) when it is used, so the
//! recency list stays sorted by stamp: a sweep retires exactly the flows unused for longer than the
//! idle timeout, whatever else is in the table. A packet with an older timestamp (reordered
//! capture, concatenated files) neither retires its own flow at once nor shields older flows
//! behind it, and engines that share one clock (sharded analysis, see [`Engine::advance_clock`])
//! retire the same flows at the same packet as a single engine would.
use crate::decode::{self, tcpflag, Decoded, PreTcp, TcpSegment, UdpDatagram};
use crate::defrag::{Defrag, DefragStats, FragResult, Reassembled};
use crate::flow::{FlowKey, FlowTable, Keyed};
use crate::reassembly::{Event, Limits, TcpDir};
use crate::stats::DecodeProblem;
use crate::{App, Dir, EndReason, FlowCtx, RawPacket, Stats, Transport, Verdict};
use std::collections::VecDeque;

/// A flow whose both directions closed (or that saw a RST) stays this long (capture time) to
/// absorb the last ACKs and retransmissions, then is retired with `EndReason::Closed`.
pub const CLOSED_LINGER_NS: u64 = 10_000_000_000;
/// A SYN on a live flow whose sequence number is this far from the expected one starts a new
/// connection (the old one reused the 5-tuple without us seeing it close).
pub const REUSE_SEQ_DISTANCE: i64 = 1 << 24;

/// Limits of the engine. Every table and buffer is capped by one of these.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Most flows tracked at once; the least recently used is evicted beyond this.
    pub max_flows: usize,
    /// A flow with no packet for this long is retired (capture time).
    pub idle_timeout_ns: u64,
    /// Bytes per direction reassembled before the flow is bypassed (handshake depth).
    pub depth: usize,
    /// Out-of-order bytes buffered per direction, waiting for a hole to fill.
    pub max_ooo_bytes: usize,
    /// Out-of-order segments buffered per direction.
    pub max_ooo_segments: usize,
    /// Fragment reassembly: datagrams in progress at once, and bytes per datagram.
    pub max_frag_datagrams: usize,
    pub max_frag_bytes: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_flows: 1 << 20,
            idle_timeout_ns: 120_000_000_000,
            depth: 1 << 20,
            max_ooo_bytes: 256 * 1024,
            max_ooo_segments: 256,
            max_frag_datagrams: 4096,
            max_frag_bytes: 65_535 + 8,
        }
    }
}

/// One flow table entry: the context, the App's state and the TCP directions, in one place.
struct Flow<S> {
    ctx: FlowCtx,
    state: S,
    /// TCP only (UDP leaves them untouched; they hold no heap memory until out-of-order data).
    dirs: [TcpDir; 2],
    /// Whether the originator is the `lo` endpoint of the flow key.
    orig_is_lo: bool,
    /// No more callbacks (App verdict, or depth reached in both directions).
    bypass: bool,
    /// Both directions closed or a RST was seen: queued for retirement.
    closing: bool,
}

impl<S> Flow<S> {
    fn proto(&self) -> u8 {
        match self.ctx.transport {
            Transport::Tcp => 6,
            Transport::Udp => 17,
        }
    }
}

impl<S> Keyed for Flow<S> {
    fn flow_key(&self) -> FlowKey {
        let (o, r) = (self.ctx.orig, self.ctx.resp);
        FlowKey::new(self.proto(), o.0, o.1, r.0, r.1).0
    }

    fn has_key(&self, key: &FlowKey) -> bool {
        let (o, r) = (self.ctx.orig, self.ctx.resp);
        let (lo, hi) = if self.orig_is_lo { (o, r) } else { (r, o) };
        key.is(self.proto(), lo, hi)
    }
}

/// Owns the flow table and drives an [`App`].
pub struct Engine<A: App> {
    pub cfg: EngineConfig,
    pub app: A,
    pub stats: Stats,
    table: FlowTable<Flow<A::FlowState>>,
    defrag: Defrag,
    /// Flows queued for retirement after they closed: (close time, slot, flow id).
    closed: VecDeque<(u64, u32, u64)>,
    now: u64,
    /// The clock at the last sweep.
    swept_at: u64,
    next_id: u64,
    lim: Limits,
    /// Defrag counters already folded into `stats`.
    frag_seen: DefragStats,
}

impl<A: App> Engine<A> {
    pub fn new(cfg: EngineConfig, app: A) -> Self {
        let lim = Limits {
            depth: cfg.depth as u64,
            max_ooo_bytes: cfg.max_ooo_bytes,
            max_ooo_segments: cfg.max_ooo_segments,
        };
        Engine {
            table: FlowTable::new(cfg.max_flows),
            defrag: Defrag::new(cfg.max_frag_datagrams, cfg.max_frag_bytes),
            closed: VecDeque::new(),
            now: 0,
            swept_at: 0,
            next_id: 1,
            lim,
            frag_seen: DefragStats::default(),
            cfg,
            app,
            stats: Stats::default(),
        }
    }

    /// The App, e.g. to drain its output between packets.
    pub fn app_mut(&mut self) -> &mut A {
        &mut self.app
    }

    /// Flows currently in the table.
    pub fn flow_count(&self) -> usize {
        self.table.len()
    }

    /// Highest capture time seen so far.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Processes one captured frame.
    pub fn process(&mut self, pkt: &RawPacket<'_>) {
        self.stats.packets += 1;
        self.stats.bytes += pkt.data.len() as u64;
        self.now = self.now.max(pkt.ts_ns);
        self.sweep();
        let ts = pkt.ts_ns;
        match decode::decode(pkt) {
            Ok(Decoded::Tcp(t)) => self.tcp(ts, &t),
            Ok(Decoded::Udp(u)) => self.udp(ts, &u),
            Ok(Decoded::Fragment(f)) => {
                let r = self.defrag.add(self.now, &f);
                self.sync_defrag();
                if let FragResult::Complete(dg) = r {
                    self.reassembled(ts, &dg);
                }
            }
            Ok(Decoded::Other) => self.stats.other_packets += 1,
            Err(p) => self.stats.problem(p),
        }
    }

    /// Processes a frame that the reader already decoded to a TCP segment ([`PreTcp::decode`] of
    /// this same frame): the same steps as [`Self::process`], without decoding again.
    pub fn process_pre(&mut self, pkt: &RawPacket<'_>, pre: &PreTcp) {
        self.stats.packets += 1;
        self.stats.bytes += pkt.data.len() as u64;
        self.now = self.now.max(pkt.ts_ns);
        self.sweep();
        // The common case at line rate: a segment of a bypassed flow without SYN/FIN/RST costs
        // one lookup and a flag check (what the full path below would do for it, minus building
        // the segment).
        if pre.flags & (tcpflag::SYN | tcpflag::FIN | tcpflag::RST) == 0 {
            if let Some(s) = self.table.find(&pre.key) {
                if self.table.get(s).is_some_and(|f| f.bypass) {
                    self.table.touch(s, self.now);
                    self.stats.tcp_segments += 1;
                    self.stats.bypassed_packets += 1;
                    return;
                }
            }
        }
        let t = pre.segment(pkt.data);
        self.tcp_keyed(pkt.ts_ns, &t, pre.key, pre.src_is_lo);
    }

    /// Moves the clock to `ts_ns` (if later) and retires what timed out, as a packet with that
    /// timestamp would. Sharded analysis calls it on every worker for every packet of the capture,
    /// so all engines share one clock and time flows out at the same packet as a single engine.
    pub fn advance_clock(&mut self, ts_ns: u64) {
        self.now = self.now.max(ts_ns);
        self.sweep();
    }

    /// Processes a datagram that a dispatcher reassembled from IP fragments, as [`Self::process`]
    /// does after the last fragment arrived (the frames themselves were counted by the
    /// dispatcher). Sharded analysis reassembles before choosing a worker: later fragments carry
    /// no ports, so only the whole datagram can be routed to its flow's worker.
    pub fn process_reassembled(&mut self, ts_ns: u64, dg: &Reassembled) {
        self.now = self.now.max(ts_ns);
        self.sweep();
        self.reassembled(ts_ns, dg);
    }

    fn reassembled(&mut self, ts: u64, dg: &Reassembled) {
        match decode::decode_ip_payload(dg.proto, dg.src, dg.dst, &dg.payload, dg.tunnels, dg.v6) {
            Ok(Decoded::Tcp(t)) => self.tcp(ts, &t),
            Ok(Decoded::Udp(u)) => self.udp(ts, &u),
            // A fragment inside a reassembled datagram (nested tunnel fragments)
            // is not reassembled a second time.
            Ok(Decoded::Fragment(_)) => self.stats.problem(DecodeProblem::Other),
            Ok(Decoded::Other) => self.stats.other_packets += 1,
            Err(p) => self.stats.problem(p),
        }
    }

    /// Ends every flow still in the table (reason `EndOfInput`) and returns the App and counters.
    pub fn finish(mut self) -> (A, Stats) {
        while let Some((slot, _)) = self.table.oldest() {
            self.end_flow(slot, EndReason::EndOfInput);
        }
        self.sync_defrag();
        (self.app, self.stats)
    }

    fn sync_defrag(&mut self) {
        self.defrag
            .stats
            .fold_new_into(&mut self.frag_seen, &mut self.stats);
    }

    /// Retires idle flows (LRU tail), lingering closed flows and stale fragments.
    fn sweep(&mut self) {
        // Nothing can time out again before the clock moves: a flow used since the last sweep
        // is stamped "now", so sweep once per clock value (a caller's `advance_clock` followed by
        // `process` of the same packet costs one sweep, not two).
        if self.now <= self.swept_at {
            return;
        }
        self.swept_at = self.now;
        let idle = self.cfg.idle_timeout_ns;
        while let Some((slot, last)) = self.table.oldest() {
            if last.saturating_add(idle) >= self.now {
                break;
            }
            let closing = self.table.get(slot).is_some_and(|f| f.closing);
            self.end_flow(
                slot,
                if closing {
                    EndReason::Closed
                } else {
                    EndReason::IdleTimeout
                },
            );
        }
        while let Some(&(t, slot, id)) = self.closed.front() {
            if t.saturating_add(CLOSED_LINGER_NS) >= self.now {
                break;
            }
            self.closed.pop_front();
            if self.table.get(slot).is_some_and(|f| f.ctx.id == id) {
                self.end_flow(slot, EndReason::Closed);
            }
        }
        if !self.defrag.is_empty() {
            self.defrag.expire(self.now);
            self.sync_defrag();
        }
    }

    /// Removes a flow: flushes what is buffered (gaps, close) unless bypassed, then hands the
    /// state back to the App.
    fn end_flow(&mut self, slot: u32, reason: EndReason) {
        let Some(mut flow) = self.table.remove(slot) else {
            return;
        };
        let reason = if flow.closing && matches!(reason, EndReason::Evicted) {
            EndReason::Closed
        } else {
            reason
        };
        match reason {
            EndReason::Closed => self.stats.flows_closed += 1,
            EndReason::IdleTimeout => self.stats.flows_idle_timeout += 1,
            EndReason::Evicted => self.stats.flows_evicted_lru += 1,
            EndReason::Reused => self.stats.flows_reused += 1,
            EndReason::EndOfInput => {}
        }
        let now = self.now;
        if !flow.bypass && flow.ctx.transport == Transport::Tcp {
            let Flow {
                ctx, state, dirs, ..
            } = &mut flow;
            for dir in [Dir::Orig, Dir::Resp] {
                let app = &mut self.app;
                let mut sink = |e: Event<'_>| deliver(app, ctx, state, dir, now, e);
                let Some(d) = dirs.get_mut(dir.index()) else {
                    continue;
                };
                if d.flush(&self.lim, &mut self.stats, &mut sink) == Verdict::Bypass {
                    break;
                }
            }
        }
        self.app.on_flow_end(&flow.ctx, flow.state, now, reason);
    }

    /// Makes room and inserts a new flow.
    fn create(&mut self, key: FlowKey, flow: Flow<A::FlowState>) -> Option<u32> {
        if self.table.is_full() {
            if let Some((slot, _)) = self.table.oldest() {
                self.end_flow(slot, EndReason::Evicted);
            }
        }
        self.stats.flows_created += 1;
        self.table.insert(key, self.now, flow)
    }

    fn new_ctx(
        &mut self,
        transport: Transport,
        orig: (std::net::IpAddr, u16),
        resp: (std::net::IpAddr, u16),
        syn: bool,
        ts: u64,
    ) -> FlowCtx {
        let id = self.next_id;
        self.next_id += 1;
        FlowCtx {
            id,
            transport,
            orig,
            resp,
            syn_seen: syn,
            first_ts_ns: ts,
        }
    }

    fn udp(&mut self, ts: u64, u: &UdpDatagram<'_>) {
        self.stats.udp_datagrams += 1;
        let (key, src_is_lo) = FlowKey::new(17, u.src, u.sport, u.dst, u.dport);
        let slot = match self.table.find(&key) {
            Some(s) => {
                self.table.touch(s, self.now);
                s
            }
            None => {
                let ctx = self.new_ctx(
                    Transport::Udp,
                    (u.src, u.sport),
                    (u.dst, u.dport),
                    false,
                    ts,
                );
                let flow = Flow {
                    ctx,
                    state: A::FlowState::default(),
                    dirs: Default::default(),
                    orig_is_lo: src_is_lo,
                    bypass: false,
                    closing: false,
                };
                match self.create(key, flow) {
                    Some(s) => s,
                    None => return,
                }
            }
        };
        let Some(flow) = self.table.get_mut(slot) else {
            return;
        };
        if flow.bypass {
            self.stats.bypassed_packets += 1;
            return;
        }
        let dir = if src_is_lo == flow.orig_is_lo {
            Dir::Orig
        } else {
            Dir::Resp
        };
        let v = self
            .app
            .on_datagram(&flow.ctx, &mut flow.state, dir, ts, u.payload);
        if v == Verdict::Bypass {
            flow.bypass = true;
        }
    }

    fn tcp(&mut self, ts: u64, t: &TcpSegment<'_>) {
        let (key, src_is_lo) = FlowKey::new(6, t.src, t.sport, t.dst, t.dport);
        self.tcp_keyed(ts, t, key, src_is_lo);
    }

    fn tcp_keyed(&mut self, ts: u64, t: &TcpSegment<'_>, key: FlowKey, src_is_lo: bool) {
        self.stats.tcp_segments += 1;
        let syn = t.has(tcpflag::SYN);
        let ack = t.has(tcpflag::ACK);
        let fin = t.has(tcpflag::FIN);
        let rst = t.has(tcpflag::RST);
        let mut slot = self.table.find(&key);
        if let Some(s) = slot {
            self.table.touch(s, self.now);
            // Port reuse: a pure SYN on a flow that closed, or with a different ISN.
            if syn && !ack {
                let reused = self.table.get(s).is_some_and(|f| {
                    let di = if src_is_lo == f.orig_is_lo { 0 } else { 1 };
                    let Some(d) = f.dirs.get(di) else {
                        return false;
                    };
                    let any_closed = f.closing || f.dirs.iter().any(|d| d.close_seen);
                    // Before any data, a SYN with another ISN is the same connection retrying
                    // (its direction keeps both starts; the data decides).
                    let no_data = f.dirs.iter().all(TcpDir::untouched);
                    any_closed
                        || (d.started()
                            && if d.syn_seen() {
                                d.isn() != t.seq && !no_data
                            } else {
                                d.distance(t.seq).abs() > REUSE_SEQ_DISTANCE
                            })
                });
                if reused {
                    self.end_flow(s, EndReason::Reused);
                    slot = None;
                }
            }
        }
        let slot = match slot {
            Some(s) => s,
            None => {
                if rst && t.payload.is_empty() {
                    // A lone RST opens nothing worth tracking.
                    return;
                }
                // Originator: the SYN sender; the receiver of a SYN-ACK; else the sender.
                let (orig, resp, orig_is_lo) = if syn && ack {
                    ((t.dst, t.dport), (t.src, t.sport), !src_is_lo)
                } else {
                    ((t.src, t.sport), (t.dst, t.dport), src_is_lo)
                };
                if !syn {
                    self.stats.tcp_midstream_pickups += 1;
                }
                let ctx = self.new_ctx(Transport::Tcp, orig, resp, syn, ts);
                let flow = Flow {
                    ctx,
                    state: A::FlowState::default(),
                    dirs: Default::default(),
                    orig_is_lo,
                    bypass: false,
                    closing: false,
                };
                match self.create(key, flow) {
                    Some(s) => s,
                    None => return,
                }
            }
        };
        let now = self.now;
        let Some(flow) = self.table.get_mut(slot) else {
            return;
        };
        let dir = if src_is_lo == flow.orig_is_lo {
            Dir::Orig
        } else {
            Dir::Resp
        };
        let was_closing = flow.closing;
        if flow.bypass {
            // Bypassed: a flag check, plus close tracking so the slot is freed early.
            self.stats.bypassed_packets += 1;
            if let Some(d) = flow.dirs.get_mut(dir.index()) {
                if fin || rst {
                    d.close_seen = true;
                }
            }
        } else {
            let Flow {
                ctx, state, dirs, ..
            } = &mut *flow;
            let app = &mut self.app;
            let mut sink = |e: Event<'_>| deliver(app, ctx, state, dir, ts, e);
            let v = match dirs.get_mut(dir.index()) {
                Some(d) => d.segment(
                    t.seq,
                    syn,
                    fin,
                    rst,
                    t.payload,
                    &self.lim,
                    &mut self.stats,
                    &mut sink,
                ),
                None => Verdict::Continue,
            };
            let both_done = flow.dirs.iter().all(|d| d.done());
            if v == Verdict::Bypass || both_done {
                flow.bypass = true;
                for d in flow.dirs.iter_mut() {
                    d.free();
                }
            }
        }
        if !was_closing && (rst || flow.dirs.iter().all(|d| d.close_seen)) {
            flow.closing = true;
            let id = flow.ctx.id;
            self.closed.push_back((now, slot, id));
        }
    }
}

/// Routes one reassembly event to the App.
fn deliver<A: App>(
    app: &mut A,
    ctx: &FlowCtx,
    state: &mut A::FlowState,
    dir: Dir,
    ts: u64,
    e: Event<'_>,
) -> Verdict {
    match e {
        Event::Data(d) => app.on_stream(ctx, state, dir, ts, d),
        Event::Gap(n) => {
            app.on_gap(ctx, state, dir, ts, n);
            Verdict::Continue
        }
        Event::Close(k) => {
            app.on_close(ctx, state, dir, ts, k);
            Verdict::Continue
        }
    }
}

/// Bytes of one flow table slab node with App state `S` (for the per-flow memory budget).
pub fn flow_node_size<S>() -> usize {
    crate::flow::node_size::<Flow<S>>()
}

#[cfg(test)]
mod size_tests {
    use super::*;

    #[test]
    fn flow_entry_is_small() {
        let flow = std::mem::size_of::<Flow<()>>();
        let dir = std::mem::size_of::<TcpDir>();
        let node = crate::flow::node_size::<Flow<()>>();
        eprintln!(
            "flow {flow} dir {dir} node {node} ctx {}",
            std::mem::size_of::<FlowCtx>()
        );
        // Plus ~10 bytes in the hash index (a u32 slot and a control byte, at the index's fill):
        // ~170 bytes per idle tracked flow with the analyzer's 16-byte state.
        assert!(dir <= 32, "TCP direction {dir} bytes");
        assert!(node <= 152, "slab node {node} bytes");
    }
}

#[cfg(test)]
mod clock_tests {
    use super::*;

    /// Records (source port, reason, time) of every flow that ends.
    #[derive(Default)]
    struct Ends(Vec<(u16, EndReason, u64)>);

    impl App for Ends {
        type FlowState = ();
        fn on_stream(&mut self, _: &FlowCtx, _: &mut (), _: Dir, _: u64, _: &[u8]) -> Verdict {
            Verdict::Continue
        }
        fn on_datagram(&mut self, _: &FlowCtx, _: &mut (), _: Dir, _: u64, _: &[u8]) -> Verdict {
            Verdict::Continue
        }
        fn on_flow_end(&mut self, ctx: &FlowCtx, _: (), ts: u64, reason: EndReason) {
            self.0.push((ctx.orig.1, reason, ts));
        }
    }

    fn udp(sport: u16) -> Vec<u8> {
        let mut v = vec![
            0x45, 0, 0, 29, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        v.extend_from_slice(&sport.to_be_bytes());
        v.extend_from_slice(&[0, 53, 0, 9, 0, 0, b'q']);
        v
    }

    fn feed(e: &mut Engine<Ends>, ts: u64, sport: u16) {
        let d = udp(sport);
        e.process(&RawPacket {
            ts_ns: ts,
            linktype: crate::decode::linktype::RAW,
            data: &d,
            orig_len: d.len() as u32,
        });
    }

    const S: u64 = 1_000_000_000;

    #[test]
    fn older_timestamps_are_stamped_with_the_clock() {
        let cfg = EngineConfig {
            idle_timeout_ns: 10 * S,
            ..EngineConfig::default()
        };
        let mut e = Engine::new(cfg, Ends::default());
        feed(&mut e, 100 * S, 1);
        // A second file that starts earlier: its flow lives as long as the clock says.
        feed(&mut e, 5 * S, 2);
        feed(&mut e, 6 * S, 2);
        feed(&mut e, 105 * S, 3);
        assert!(e.app.0.is_empty(), "{:?}", e.app.0);
        // 11 s after flows 1 and 2 were last used: both idle, flow 3 not.
        e.advance_clock(111 * S);
        assert_eq!(
            e.app.0,
            vec![
                (1, EndReason::IdleTimeout, 111 * S),
                (2, EndReason::IdleTimeout, 111 * S)
            ]
        );
        e.advance_clock(116 * S);
        assert_eq!(e.app.0.len(), 3);
    }
}
