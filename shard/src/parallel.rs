//! `--workers N` (N > 1): one reader thread, N engine threads, and the calling thread putting the
//! outputs back in order.
//!
//! - The reader reads the inputs and fills batches: up to [`BATCH_PACKETS`] frames copied into one
//!   reusable byte arena, each with the worker that owns its flow (symmetric flow hash of the
//!   innermost 5-tuple, see [`Router`]) and the capture clock (highest timestamp so far). A batch is
//!   shared (`Arc`) by all workers and comes back through a return channel when the last one is
//!   done with it; at most [`MAX_BATCHES`] exist, so steady state allocates nothing per packet and
//!   memory is bounded.
//! - IP fragments are reassembled by the reader (one fragment table, as in a single engine): later
//!   fragments carry no ports, so only the whole datagram can be routed to its flow's worker. The
//!   reassembled datagram travels in the batch in place of the fragment that completed it.
//! - Each worker runs its own `Engine<Analyzer>` over the frames it owns, and advances its clock at
//!   every frame of the batch (its own or not), so every engine retires idle and closed flows at
//!   the same packet, with the same time, as a single engine would.
//! - Each output is tagged with the sequence number of the frame that caused it and whether it came
//!   from the clock tick (sweep) or from the frame itself. The calling thread takes one result per
//!   worker per batch (a batch is the watermark: a worker's results are complete up to its end), so
//!   it buffers one batch of outputs at most, and emits them in the order of [`super::order`].
//!
//! What can differ from one worker: the flow table limit is per worker (`max_flows / N` each), so
//! when tables are full the LRU victims are not the same.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;

use analyzer::flow::AnalyzerStats;
use analyzer::tls::keylog::KeyLog;
use analyzer::{Analyzer, AnalyzerConfig, Output};
use capture::decode::{self, Decoded};
use capture::defrag::{Defrag, FragResult, Reassembled};
use capture::{Engine, EngineConfig, RawPacket, Stats};
use crossbeam_channel::{bounded, select, Receiver, Sender};

use super::instr::{Hist, Sampler};
use super::order::{canonical_cmp, Emitter};
use super::{file_done, PacketOptions, PacketSummary};

/// Frames per batch.
pub const BATCH_PACKETS: usize = 512;
/// A batch is sent once its arena holds this many bytes (a single larger frame still fits: the
/// source caps frames, and the arena shrinks back after an outsized batch).
pub const BATCH_BYTES: usize = 1 << 20;
/// Batches in existence at once (filling, queued, being processed): bounds memory and how far the
/// reader runs ahead.
pub const MAX_BATCHES: usize = 8;
/// Most worker threads (more are not useful, and each holds an engine).
pub const MAX_WORKERS: usize = 64;

/// Entry of a batch that no worker owns (only the clock moves).
const NOBODY: usize = usize::MAX;

/// How an entry's bytes are to be processed.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A captured frame.
    Frame { linktype: u32, orig_len: u32 },
    /// The payload of a datagram the reader reassembled from fragments.
    Datagram {
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        v6: bool,
        tunnels: u8,
    },
    /// Nothing to process (a fragment kept by the reader): the clock only.
    Tick,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    ts: u64,
    /// Capture clock after this frame: highest timestamp so far.
    clock: u64,
    start: usize,
    len: usize,
    worker: usize,
    kind: Kind,
}

/// Consecutive frames of the capture, starting at sequence number `first_seq`.
#[derive(Debug, Default)]
struct Batch {
    first_seq: u64,
    entries: Vec<Entry>,
    data: Vec<u8>,
}

impl Batch {
    fn push(&mut self, ts: u64, clock: u64, worker: usize, kind: Kind, bytes: &[u8]) {
        let start = self.data.len();
        self.data.extend_from_slice(bytes);
        self.entries.push(Entry {
            ts,
            clock,
            start,
            len: bytes.len(),
            worker,
            kind,
        });
    }

    fn full(&self) -> bool {
        self.entries.len() >= BATCH_PACKETS || self.data.len() >= BATCH_BYTES
    }

    fn bytes(&self, e: &Entry) -> &[u8] {
        self.data
            .get(e.start..e.start.saturating_add(e.len))
            .unwrap_or_default()
    }

    fn reset(&mut self, first_seq: u64) {
        self.first_seq = first_seq;
        self.entries.clear();
        self.data.clear();
        if self.data.capacity() > 4 * BATCH_BYTES {
            self.data.shrink_to(BATCH_BYTES);
        }
    }
}

/// Where the reader sends one frame.
#[derive(Debug)]
enum Route {
    /// The frame, to this worker.
    Frame(usize),
    /// A datagram completed by this fragment, to this worker.
    Datagram(usize, Reassembled),
    /// A fragment that completed nothing (kept, or dropped and counted, by the reader).
    Tick,
}

/// Chooses the worker of each frame and reassembles IP fragments (one table, like an engine's, with
/// the same limits and the same clock), counting what it keeps in its own [`Stats`].
struct Router {
    workers: usize,
    clock: u64,
    defrag: Defrag,
    stats: Stats,
}

impl Router {
    fn new(workers: usize, cfg: &EngineConfig) -> Self {
        Router {
            workers: workers.max(1),
            clock: 0,
            defrag: Defrag::new(cfg.max_frag_datagrams, cfg.max_frag_bytes),
            stats: Stats::default(),
        }
    }

    fn pick(&self, d: &Decoded<'_>) -> usize {
        // Frames that are no flow (ARP, decode problems) go to worker 0, which counts them.
        decode::flow_hash_decoded(d).map_or(0, |h| (h % self.workers as u64) as usize)
    }

    fn route(&mut self, pkt: &RawPacket<'_>) -> Route {
        // The same steps as `Engine::process`: clock, fragment expiry, then the frame.
        self.clock = self.clock.max(pkt.ts_ns);
        if !self.defrag.is_empty() {
            self.defrag.expire(self.clock);
        }
        match decode::decode(pkt) {
            Ok(Decoded::Fragment(f)) => {
                self.stats.packets += 1;
                self.stats.bytes += pkt.data.len() as u64;
                match self.defrag.add(self.clock, &f) {
                    FragResult::Complete(dg) => {
                        let w = match decode::decode_ip_payload(
                            dg.proto,
                            dg.src,
                            dg.dst,
                            &dg.payload,
                            dg.tunnels,
                            dg.v6,
                        ) {
                            Ok(d) => self.pick(&d),
                            Err(_) => 0,
                        };
                        Route::Datagram(w, dg)
                    }
                    FragResult::Pending | FragResult::Dropped => Route::Tick,
                }
            }
            Ok(d) => Route::Frame(self.pick(&d)),
            Err(_) => Route::Frame(0),
        }
    }

    /// The reader's counters, with the fragment table's folded in as an engine does.
    fn finish(mut self) -> Stats {
        let mut seen = Default::default();
        self.defrag.stats.fold_new_into(&mut seen, &mut self.stats);
        self.stats
    }
}

/// Free batches: recycled from the return channel, new ones up to [`MAX_BATCHES`].
struct Pool {
    made: usize,
    returns: Receiver<Arc<Batch>>,
    /// Disconnected when the calling thread stops (error): the reader must not wait any more.
    abort: Receiver<()>,
}

impl Pool {
    /// A returned batch is reusable once the last worker gave its reference back.
    fn reuse(a: Arc<Batch>) -> Option<Batch> {
        Arc::try_unwrap(a).ok()
    }

    /// An empty batch, waiting for one to come back when all exist. `None`: stop.
    fn get(&mut self) -> Option<Batch> {
        while let Ok(a) = self.returns.try_recv() {
            if let Some(b) = Self::reuse(a) {
                return Some(b);
            }
        }
        if self.made < MAX_BATCHES {
            self.made += 1;
            return Some(Batch::default());
        }
        loop {
            select! {
                recv(self.returns) -> a => match a {
                    Ok(a) => {
                        if let Some(b) = Self::reuse(a) {
                            return Some(b);
                        }
                    }
                    Err(_) => return None,
                },
                recv(self.abort) -> _ => return None,
            }
        }
    }
}

/// What the reader hands back at the end.
struct ReaderEnd {
    files: u64,
    truncated_files: Vec<String>,
    stats: Stats,
}

/// Sends a batch to every worker. False when a worker is gone (the run is stopping).
fn send(batch: Batch, txs: &[Sender<Arc<Batch>>]) -> bool {
    if batch.entries.is_empty() {
        return true;
    }
    let a = Arc::new(batch);
    txs.iter().all(|tx| tx.send(Arc::clone(&a)).is_ok())
}

/// The reader thread: inputs -> routed batches.
fn read_all(
    inputs: &[PathBuf],
    keylog: Option<Arc<KeyLog>>,
    mut router: Router,
    txs: Vec<Sender<Arc<Batch>>>,
    mut pool: Pool,
) -> Result<ReaderEnd, String> {
    let mut sum = PacketSummary::default();
    let mut cur = Batch::default();
    pool.made = 1;
    let mut seq = 0u64;
    let mut stopped = false;
    for path in inputs {
        let mut secrets = |text: &[u8]| super::add_secrets(keylog.as_deref(), text);
        let res = capture::source::read_file_secrets(
            path,
            false,
            &mut |pkt, _| {
                if stopped {
                    return;
                }
                match router.route(pkt) {
                    Route::Frame(w) => {
                        let kind = Kind::Frame {
                            linktype: pkt.linktype,
                            orig_len: pkt.orig_len,
                        };
                        cur.push(pkt.ts_ns, router.clock, w, kind, pkt.data);
                    }
                    Route::Datagram(w, dg) => {
                        let kind = Kind::Datagram {
                            src: dg.src,
                            dst: dg.dst,
                            proto: dg.proto,
                            v6: dg.v6,
                            tunnels: dg.tunnels,
                        };
                        cur.push(pkt.ts_ns, router.clock, w, kind, &dg.payload);
                    }
                    Route::Tick => cur.push(pkt.ts_ns, router.clock, NOBODY, Kind::Tick, &[]),
                }
                seq += 1;
                if cur.full() {
                    let full = std::mem::take(&mut cur);
                    match send(full, &txs).then(|| pool.get()).flatten() {
                        Some(mut b) => {
                            b.reset(seq);
                            cur = b;
                        }
                        None => stopped = true,
                    }
                }
            },
            &mut secrets,
        );
        if stopped {
            return Err("stopped".into());
        }
        if let Err(e) = file_done(&mut sum, path, res) {
            // What was read before the error is analysed, as with one worker.
            let _ = send(cur, &txs);
            return Err(e);
        }
    }
    let _ = send(cur, &txs);
    Ok(ReaderEnd {
        files: sum.files,
        truncated_files: sum.truncated_files,
        stats: router.finish(),
    })
}

/// One output and where in the capture it came from.
struct Tagged {
    seq: u64,
    /// From the clock tick of frame `seq` (before the frame itself).
    sweep: bool,
    out: Output,
}

/// What a worker reports.
enum Msg {
    /// The outputs of one batch, in the worker's order.
    Batch(Vec<Tagged>),
    /// End of input: the outputs of `Engine::finish` and the counters.
    Final(Box<WorkerEnd>),
}

struct WorkerEnd {
    outs: Vec<Output>,
    stats: Stats,
    analyzer: AnalyzerStats,
    packet_ns: Hist,
}

/// A worker thread: its frames of every batch through its engine, and the clock of all frames.
fn work(
    me: usize,
    cfg: EngineConfig,
    acfg: AnalyzerConfig,
    rx: Receiver<Arc<Batch>>,
    back: Sender<Arc<Batch>>,
    tx: Sender<Msg>,
) {
    let mut engine = Engine::new(cfg, Analyzer::new(acfg));
    let mut sampler = Sampler::default();
    let mut dg = Reassembled {
        src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        proto: 0,
        v6: false,
        tunnels: 0,
        payload: Vec::new(),
    };
    for batch in rx.iter() {
        let mut outs: Vec<Tagged> = Vec::new();
        for (seq, e) in (batch.first_seq..).zip(batch.entries.iter()) {
            let mine = e.worker == me;
            let t0 = if mine { sampler.start() } else { None };
            if e.clock > engine.now() {
                engine.advance_clock(e.clock);
                outs.extend(engine.app.out.drain(..).map(|out| Tagged {
                    seq,
                    sweep: true,
                    out,
                }));
            }
            if mine {
                match e.kind {
                    Kind::Frame { linktype, orig_len } => engine.process(&RawPacket {
                        ts_ns: e.ts,
                        linktype,
                        data: batch.bytes(e),
                        orig_len,
                    }),
                    Kind::Datagram {
                        src,
                        dst,
                        proto,
                        v6,
                        tunnels,
                    } => {
                        dg.src = src;
                        dg.dst = dst;
                        dg.proto = proto;
                        dg.v6 = v6;
                        dg.tunnels = tunnels;
                        dg.payload.clear();
                        dg.payload.extend_from_slice(batch.bytes(e));
                        engine.process_reassembled(e.ts, &dg);
                    }
                    Kind::Tick => {}
                }
                sampler.stop(t0);
                outs.extend(engine.app.out.drain(..).map(|out| Tagged {
                    seq,
                    sweep: false,
                    out,
                }));
            }
        }
        // The reader may be gone already (end of input): nothing to give back then.
        let _ = back.send(batch);
        if tx.send(Msg::Batch(outs)).is_err() {
            return;
        }
    }
    let (app, stats) = engine.finish();
    let _ = tx.send(Msg::Final(Box::new(WorkerEnd {
        outs: app.out,
        stats,
        analyzer: app.stats,
        packet_ns: sampler.hist,
    })));
}

/// Merges the workers' results, batch by batch, into the final order; returns their final reports.
fn merge(em: &mut Emitter<'_>, rxs: &[Receiver<Msg>]) -> Result<Vec<WorkerEnd>, String> {
    let gone = || "an analysis worker stopped unexpectedly".to_string();
    let mut tagged: Vec<Tagged> = Vec::new();
    loop {
        let mut finals = Vec::new();
        for rx in rxs {
            match rx.recv().map_err(|_| gone())? {
                Msg::Batch(mut v) => tagged.append(&mut v),
                Msg::Final(w) => finals.push(*w),
            }
        }
        if !finals.is_empty() {
            if finals.len() != rxs.len() || !tagged.is_empty() {
                return Err("analysis workers out of step".into());
            }
            return Ok(finals);
        }
        tagged.sort_by(|a, b| {
            a.seq.cmp(&b.seq).then(b.sweep.cmp(&a.sweep)).then_with(|| {
                if a.sweep && b.sweep {
                    canonical_cmp(&a.out, &b.out)
                } else {
                    std::cmp::Ordering::Equal
                }
            })
        });
        for t in tagged.drain(..) {
            em.emit(t.out)?;
        }
    }
}

/// Runs the inputs over `opts.workers` engines (at most [`MAX_WORKERS`]).
pub fn run(
    opts: &PacketOptions,
    on_output: &mut dyn FnMut(Output) -> Result<(), String>,
) -> Result<PacketSummary, String> {
    let n = opts.workers.clamp(1, MAX_WORKERS);
    let mut em = Emitter::new(on_output);
    em.instr.workers = n;
    let spawn_err = |e: std::io::Error| format!("starting analysis threads: {e}");
    let (finals, reader_end) = thread::scope(|s| -> Result<_, String> {
        let (back_tx, back_rx) = bounded::<Arc<Batch>>(MAX_BATCHES * n);
        let (abort_tx, abort_rx) = bounded::<()>(1);
        let mut in_txs = Vec::with_capacity(n);
        let mut res_rxs = Vec::with_capacity(n);
        let mut workers = Vec::with_capacity(n);
        for w in 0..n {
            let (itx, irx) = bounded::<Arc<Batch>>(MAX_BATCHES);
            let (rtx, rrx) = bounded::<Msg>(MAX_BATCHES);
            let cfg = EngineConfig {
                max_flows: (opts.engine.max_flows / n).max(1),
                ..opts.engine.clone()
            };
            let acfg = opts.analyzer.clone();
            let back = back_tx.clone();
            let h = thread::Builder::new()
                .name(format!("trustmap-w{w}"))
                .spawn_scoped(s, move || work(w, cfg, acfg, irx, back, rtx))
                .map_err(spawn_err)?;
            workers.push(h);
            in_txs.push(itx);
            res_rxs.push(rrx);
        }
        drop(back_tx);
        let router = Router::new(n, &opts.engine);
        let pool = Pool {
            made: 0,
            returns: back_rx,
            abort: abort_rx,
        };
        let inputs = &opts.inputs;
        let keylog = opts.analyzer.keylog.clone();
        let reader = thread::Builder::new()
            .name("trustmap-reader".into())
            .spawn_scoped(s, move || read_all(inputs, keylog, router, in_txs, pool))
            .map_err(spawn_err)?;
        let merged = merge(&mut em, &res_rxs);
        // Stop everyone if the merge ended early: workers fail to send, the reader stops waiting.
        drop(res_rxs);
        drop(abort_tx);
        let reader_res = reader
            .join()
            .map_err(|_| "the packet reader panicked".to_string())?;
        for h in workers {
            h.join()
                .map_err(|_| "an analysis worker panicked".to_string())?;
        }
        let finals = merged?;
        Ok((finals, reader_res?))
    })?;
    let mut sum = PacketSummary {
        capture: reader_end.stats,
        files: reader_end.files,
        truncated_files: reader_end.truncated_files,
        ..PacketSummary::default()
    };
    let mut last: Vec<Output> = Vec::new();
    let mut packet_ns = em.instr.packet_ns.clone();
    for mut w in finals {
        sum.capture.merge(&w.stats);
        sum.analyzer.merge(&w.analyzer);
        packet_ns.merge(&w.packet_ns);
        last.append(&mut w.outs);
    }
    em.instr.packet_ns = packet_ns;
    em.emit_sweep(&mut last)?;
    sum.instr = em.instr;
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    use testkit::packet::{eth, ipv4_frag, tcp_hdr, udp_hdr, vxlan as vxlan_hdr};

    fn ip4(proto: u8, src: [u8; 4], dst: [u8; 4], body: &[u8]) -> Vec<u8> {
        ipv4_frag(src, dst, proto, 0, 0, false, body)
    }

    fn tcp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        tcp_hdr(sport, dport, 1, 0, 0x18, payload)
    }

    /// VXLAN (UDP 4789) carrying an Ethernet frame with `inner` IPv4.
    fn vxlan(inner: &[u8]) -> Vec<u8> {
        udp_hdr(0xc000, 4789, &vxlan_hdr(1, &eth(0x0800, inner)))
    }

    /// Splits an IP payload into two fragments (first one 8-byte aligned).
    fn fragments(proto: u8, src: [u8; 4], dst: [u8; 4], id: u16, body: &[u8]) -> [Vec<u8>; 2] {
        let cut = 24.min(body.len() / 8 * 8);
        [
            ipv4_frag(src, dst, proto, id, 0, true, &body[..cut]),
            ipv4_frag(src, dst, proto, id, cut as u16, false, &body[cut..]),
        ]
    }

    fn frame(r: &mut Router, ts: u64, data: &[u8]) -> Route {
        r.route(&RawPacket {
            ts_ns: ts,
            linktype: decode::linktype::RAW,
            data,
            orig_len: data.len() as u32,
        })
    }

    fn frame_worker(r: &mut Router, ts: u64, data: &[u8]) -> usize {
        match frame(r, ts, data) {
            Route::Frame(w) => w,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// Feeds both fragments, in the given order; returns the worker of the reassembled datagram.
    fn datagram_worker(r: &mut Router, ts: u64, frags: &[Vec<u8>; 2], reverse: bool) -> usize {
        let (a, b) = if reverse {
            (&frags[1], &frags[0])
        } else {
            (&frags[0], &frags[1])
        };
        assert!(matches!(frame(r, ts, a), Route::Tick));
        match frame(r, ts, b) {
            Route::Datagram(w, _) => w,
            other => panic!("expected a datagram, got {other:?}"),
        }
    }

    #[test]
    fn fragments_of_a_flow_reach_the_flows_worker() {
        let (a, b) = ([10, 0, 0, 1], [10, 0, 0, 2]);
        for n in 2..=4 {
            let mut r = Router::new(n, &EngineConfig::default());
            let mut seen = std::collections::HashSet::new();
            let mut id = 1u16;
            for port in 40_000..40_016u16 {
                let w = frame_worker(&mut r, 1, &ip4(6, a, b, &tcp(port, 443, b"")));
                // The other direction, unfragmented.
                assert_eq!(
                    frame_worker(&mut r, 2, &ip4(6, b, a, &tcp(443, port, b""))),
                    w
                );
                // A fragmented segment each way, fragments in order and in reverse.
                let big = tcp(port, 443, &[0x16; 100]);
                let f = fragments(6, a, b, id, &big);
                assert_eq!(datagram_worker(&mut r, 3, &f, false), w);
                let big = tcp(443, port, &[0x17; 100]);
                let f = fragments(6, b, a, id + 1, &big);
                assert_eq!(datagram_worker(&mut r, 4, &f, true), w);
                // The same flow inside VXLAN: unfragmented, then with the outer packet fragmented
                // (the outer fragments know nothing of the inner ports).
                let inner = ip4(6, a, b, &tcp(port, 443, &[0x16; 64]));
                let (o1, o2) = ([192, 0, 2, 1], [192, 0, 2, 2]);
                let wv = frame_worker(&mut r, 5, &ip4(17, o1, o2, &vxlan(&inner)));
                assert_eq!(wv, w, "inner flow hash through VXLAN");
                let f = fragments(17, o1, o2, id + 2, &vxlan(&inner));
                assert_eq!(datagram_worker(&mut r, 6, &f, false), w);
                id += 3;
                seen.insert(w);
            }
            assert!(seen.len() > 1, "16 flows over {n} workers all on one");
            let st = r.finish();
            assert_eq!(st.ip_fragments, 16 * 6);
            assert_eq!(st.ip_reassembled, 16 * 3);
            assert_eq!(st.packets, 16 * 6);
        }
    }

    #[test]
    fn batch_bytes_never_panic_on_bad_ranges() {
        let mut b = Batch::default();
        b.push(1, 1, 0, Kind::Tick, b"abc");
        let bad = Entry {
            start: 2,
            len: usize::MAX,
            ..b.entries[0]
        };
        assert_eq!(b.bytes(&bad), b"");
        assert_eq!(b.bytes(&b.entries[0]), b"abc");
        b.reset(7);
        assert!(b.entries.is_empty() && b.data.is_empty() && b.first_seq == 7);
    }
}
