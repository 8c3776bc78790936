//! Live capture: N libpcap handles joined to one `PACKET_FANOUT` group (symmetric flow hash), one
//! worker thread per handle owning its own [`Engine`], so no packet is handed between threads and
//! both directions of a flow always reach the same worker.
//!
//! # API
//! [`run`]`(cfg, engine_cfg, make_app, on_output, on_stats, stop)` blocks until `stop` is set (by
//! the caller, or by SIGINT/SIGTERM, which `run` hooks while it runs) and returns the final
//! [`LiveReport`].
//! - `make_app(worker)` builds the [`App`] of each worker, on that worker's thread (so the App need
//!   not be `Send`).
//! - `on_output(worker, &mut engine)` runs on the worker's thread after every batch of packets
//!   (at most [`BATCH`]), to drain the App's output. Its last call per worker comes after
//!   [`Engine::finish`] (every flow ended, reason `EndOfInput`), with the final counters in
//!   `engine.stats`.
//! - `on_stats(&report)` runs on the calling thread every [`LiveConfig::stats_interval`] (not at
//!   all when it is zero) with `report.is_final == false`, and once more at the end with the final
//!   report (`is_final == true`): per worker, packets received / dropped by the kernel / dropped by
//!   the interface (`pcap_stats`), flows in the table and the engine counters. The binary turns
//!   each call into a `trustmap.stats` event.
//!
//! ```no_run
//! use capture::live::{run, LiveConfig};
//! use capture::{App, Dir, EndReason, EngineConfig, FlowCtx, Verdict};
//! use std::sync::{atomic::AtomicBool, Arc};
//!
//! struct Count(u64);
//! impl App for Count {
//!     type FlowState = ();
//!     fn on_stream(&mut self, _: &FlowCtx, _: &mut (), _: Dir, _: u64, d: &[u8]) -> Verdict {
//!         self.0 += d.len() as u64;
//!         Verdict::Continue
//!     }
//!     fn on_datagram(&mut self, _: &FlowCtx, _: &mut (), _: Dir, _: u64, _: &[u8]) -> Verdict {
//!         Verdict::Bypass
//!     }
//!     fn on_flow_end(&mut self, _: &FlowCtx, _: (), _: u64, _: EndReason) {}
//! }
//!
//! let cfg = LiveConfig { workers: 2, user: Some("nobody".into()), ..LiveConfig::new("eth0") };
//! let report = run(
//!     &cfg,
//!     EngineConfig::default(),
//!     |_worker| Count(0),
//!     |_worker, engine| { let _bytes = engine.app.0; },
//!     |r| eprintln!("received {} kernel drops {}", r.received(), r.kernel_dropped()),
//!     Arc::new(AtomicBool::new(false)),
//! )?;
//! # Ok::<(), capture::live::LiveError>(())
//! ```
//!
//! # Shutdown
//! Handles are non-blocking. A worker reads batches while packets are waiting and otherwise
//! sleeps in `poll(2)` on the pcap fd for at most [`POLL_MS`], so the stop flag is looked at
//! every [`POLL_MS`] even on a quiet interface (a blocking TPACKET_V3 read never returns while
//! no packet arrives: the kernel does not retire an empty block). On stop, a worker reads what is
//! already in its ring (at most [`DRAIN_MAX_BATCHES`] batches), ends every flow
//! ([`Engine::finish`]) and reads its final `pcap_stats`. While `stop` is already set, a further
//! SIGINT/SIGTERM exits the process at once (status 1) without flushing; after `run` returns
//! they terminate the process as by default.
//!
//! # Privileges
//! Capturing needs CAP_NET_RAW (plus CAP_NET_ADMIN for promiscuous mode and large buffers); a
//! missing permission is reported as [`LiveError::Permission`] with that hint. With
//! [`LiveConfig::user`], once every handle is open, filtered and joined to the fanout group,
//! the process drops to that user (`getpwnam_r`, `setgroups` to its primary group only, `setgid`,
//! `setuid`) and checks that `setuid(0)` now fails, before any packet is read. Open output files
//! before calling `run`: the process cannot reopen root-owned paths afterwards.
//!
//! # Layout and unsafe code
//! `worker` holds the read loop of one worker, `signals` the SIGINT/SIGTERM handling, and `sys`
//! every `unsafe` call (the fanout `setsockopt`, `poll(2)` and the user/group calls, which have
//! no safe wrapper) behind small safe functions. The crate denies `unsafe_code` (forbids it
//! without the `live` feature) and only `sys` is allowed it, each block with a `// SAFETY:`
//! comment; `worker` and `signals` forbid it outright.

use crate::{App, Engine, EngineConfig, Stats};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod signals;
#[allow(unsafe_code)]
mod sys;
mod worker;

use worker::{Shared, StatsSync};

/// libpcap read timeout: with TPACKET_V3 this is how long the kernel keeps a partly filled ring
/// block before handing it over, i.e. the most a packet waits before a worker can see it.
pub const READ_TIMEOUT_MS: i32 = 100;
/// Longest sleep in `poll(2)` when no packet is waiting: the stop flag and stats requests are
/// looked at least this often.
pub const POLL_MS: i32 = 100;
/// Packets per `dispatch` call before the output callback runs.
pub const BATCH: usize = 256;
/// On stop, batches still read from the ring before the flows are flushed (bounds exit time on a
/// busy link).
pub const DRAIN_MAX_BATCHES: usize = 1024;
/// How long a periodic stats report waits for every worker's snapshot (a worker answers within
/// one batch or one [`POLL_MS`]).
const STATS_COLLECT_WAIT: Duration = Duration::from_millis(500);
/// Tick of the calling thread while workers run (checks for stats due and workers done).
const MAIN_TICK: Duration = Duration::from_millis(50);
/// Low 16 bits of a `PACKET_FANOUT` group id.
const FANOUT_GROUP_MASK: u32 = 0xffff;
/// Spreads the group ids of successive `run`s in one process.
const FANOUT_GROUP_STRIDE: u32 = 0x9e37;
/// Poll interval of the calling thread while it waits for the workers' stats snapshots.
const STATS_COLLECT_TICK: Duration = Duration::from_millis(2);
/// Shortest nap of the calling thread's loop.
const MIN_NAP: Duration = Duration::from_millis(1);

/// Settings of a live capture.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// Interface to capture on.
    pub iface: String,
    /// BPF filter (tcpdump syntax), applied in the kernel.
    pub bpf: Option<String>,
    /// Worker threads = pcap handles in the fanout group (at least 1).
    pub workers: usize,
    /// Bytes kept per packet.
    pub snaplen: i32,
    /// Kernel ring size per handle, bytes.
    pub buffer_size: i32,
    /// libpcap immediate mode (TPACKET_V2, every packet at once; lower latency, more CPU).
    pub immediate: bool,
    pub promisc: bool,
    /// Drop privileges to this user once every handle is open (see the module doc).
    pub user: Option<String>,
    /// Period of the `on_stats` callback; zero disables periodic reports (the final one stays).
    pub stats_interval: Duration,
}

impl LiveConfig {
    /// Defaults for `iface`: 1 worker, snaplen 65535, 64 MiB ring per handle, promiscuous, no
    /// filter, no privilege drop, stats every 60 s.
    pub fn new(iface: impl Into<String>) -> Self {
        LiveConfig {
            iface: iface.into(),
            bpf: None,
            workers: 1,
            snaplen: 65_535,
            buffer_size: 64 << 20,
            immediate: false,
            promisc: true,
            user: None,
            stats_interval: Duration::from_secs(60),
        }
    }
}

/// Counters of one worker at one instant (cumulative since `run` started).
#[derive(Debug, Clone, Default)]
pub struct WorkerReport {
    /// Packets the kernel queued to this worker's socket, including `kernel_dropped`
    /// (`pcap_stats` `ps_recv`).
    pub received: u64,
    /// Packets dropped because this worker's ring was full (`ps_drop`).
    pub kernel_dropped: u64,
    /// Drops counted by the interface itself (`ps_ifdrop`; promiscuous mode only). Interface-wide:
    /// every worker sees the same drops, see [`LiveReport::if_dropped`].
    pub if_dropped: u64,
    /// Flows in the worker's table (0 in the final report: every flow was ended).
    pub flows: usize,
    /// The worker's engine counters.
    pub engine: Stats,
}

/// What [`run`] hands to `on_stats` and returns.
#[derive(Debug, Clone, Default)]
pub struct LiveReport {
    /// One entry per worker, in worker order.
    pub workers: Vec<WorkerReport>,
    /// Wall time since the workers started (stats cadence only; events use capture time).
    pub elapsed: Duration,
    /// True for the last report, after every worker stopped and flushed its flows.
    pub is_final: bool,
}

impl LiveReport {
    /// Packets received by all workers (kernel drops included).
    pub fn received(&self) -> u64 {
        self.workers.iter().map(|w| w.received).sum()
    }
    /// Packets the kernel dropped, all workers.
    pub fn kernel_dropped(&self) -> u64 {
        self.workers.iter().map(|w| w.kernel_dropped).sum()
    }
    /// Interface drops (the largest worker count: they all count the same interface).
    pub fn if_dropped(&self) -> u64 {
        self.workers.iter().map(|w| w.if_dropped).max().unwrap_or(0)
    }
    /// Engine counters summed over the workers.
    pub fn engine(&self) -> Stats {
        let mut s = Stats::default();
        for w in &self.workers {
            s.merge(&w.engine);
        }
        s
    }
}

/// Why a live capture could not start or did not end cleanly.
#[derive(Debug)]
pub enum LiveError {
    /// Opening the interface was refused: CAP_NET_RAW (or root) is missing.
    Permission { iface: String, detail: String },
    /// libpcap refused the interface, the filter or another setting.
    Pcap(String),
    /// Joining the `PACKET_FANOUT` group failed (old kernel, or the group id is taken).
    Fanout(std::io::Error),
    /// The `--user` account could not be found or the privilege drop failed; nothing was read.
    User { user: String, detail: String },
    /// SIGINT/SIGTERM handlers could not be installed.
    Signal(std::io::Error),
    /// A worker stopped on a read error (e.g. the interface went down) or panicked; the other
    /// workers were stopped and flushed, and the final report was handed to `on_stats`.
    Worker { worker: usize, detail: String },
    /// A setting this build cannot honour.
    Unsupported(&'static str),
}

impl std::fmt::Display for LiveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LiveError::Permission { iface, detail } => write!(
                f,
                "no permission to capture on {iface} ({detail}): capturing needs CAP_NET_RAW \
                 (and CAP_NET_ADMIN for promiscuous mode); run as root, or grant it with \
                 `setcap cap_net_raw,cap_net_admin=eip /path/to/trustmap`"
            ),
            LiveError::Pcap(e) => write!(f, "pcap: {e}"),
            LiveError::Fanout(e) => write!(f, "PACKET_FANOUT: {e}"),
            LiveError::User { user, detail } => {
                write!(f, "cannot drop privileges to user {user:?}: {detail}")
            }
            LiveError::Signal(e) => write!(f, "signal handlers: {e}"),
            LiveError::Worker { worker, detail } => write!(f, "capture worker {worker}: {detail}"),
            LiveError::Unsupported(s) => write!(f, "{s}"),
        }
    }
}
impl std::error::Error for LiveError {}

fn pcap_err(iface: &str, e: pcap::Error) -> LiveError {
    let s = e.to_string();
    let l = s.to_ascii_lowercase();
    if l.contains("permission") || l.contains("not permitted") || l.contains("cap_net_raw") {
        LiveError::Permission {
            iface: iface.to_string(),
            detail: s,
        }
    } else {
        LiveError::Pcap(s)
    }
}

/// Distinguishes the fanout groups of several `run`s in one process.
static GROUP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Opens, filters and fans out one handle.
fn open_handle(cfg: &LiveConfig, group: u32) -> Result<pcap::Capture<pcap::Active>, LiveError> {
    let mut cap = pcap::Capture::from_device(cfg.iface.as_str())
        .map_err(|e| pcap_err(&cfg.iface, e))?
        .promisc(cfg.promisc)
        .snaplen(cfg.snaplen)
        .buffer_size(cfg.buffer_size)
        .immediate_mode(cfg.immediate)
        .timeout(READ_TIMEOUT_MS)
        .open()
        .map_err(|e| pcap_err(&cfg.iface, e))?;
    if let Some(f) = &cfg.bpf {
        cap.filter(f, true).map_err(|e| pcap_err(&cfg.iface, e))?;
    }
    sys::join_fanout(cap.as_fd(), group).map_err(LiveError::Fanout)?;
    cap.setnonblock().map_err(|e| pcap_err(&cfg.iface, e))
}

/// Becomes `name` for good: supplementary groups replaced by its primary group, then gid, then
/// uid; fails unless regaining root is impossible afterwards.
fn drop_privileges(name: &str) -> Result<(), LiveError> {
    let fail = |detail: String| LiveError::User {
        user: name.to_string(),
        detail,
    };
    let (uid, gid) = sys::lookup_user(name).map_err(fail)?;
    if uid == 0 {
        return Err(fail("it is uid 0: nothing would be dropped".to_string()));
    }
    sys::set_groups_to(gid).map_err(fail)?;
    sys::set_gid(gid).map_err(fail)?;
    sys::set_uid(uid).map_err(fail)?;
    // This must fail now that the process is no longer root.
    if sys::set_uid(0).is_ok() {
        return Err(fail("setuid(0) still succeeds after the drop".to_string()));
    }
    let ids = sys::ids();
    if ids != (uid, uid, gid, gid) {
        return Err(fail(format!("ids after the drop are {ids:?}")));
    }
    Ok(())
}

/// Runs `cfg.workers` capture workers until `stop` is set (also set by SIGINT/SIGTERM); see the
/// module doc for the callbacks. Returns the final report (also handed to `on_stats`).
pub fn run<A, F, S, T>(
    cfg: &LiveConfig,
    engine_cfg: EngineConfig,
    make_app: F,
    on_output: S,
    mut on_stats: T,
    stop: Arc<AtomicBool>,
) -> Result<LiveReport, LiveError>
where
    A: App,
    F: Fn(usize) -> A + Sync,
    S: Fn(usize, &mut Engine<A>) + Send + Sync,
    T: FnMut(&LiveReport),
{
    let n = cfg.workers.max(1);
    let seq = GROUP_SEQ.fetch_add(1, Ordering::Relaxed) as u32;
    let group = (std::process::id().wrapping_add(seq.wrapping_mul(FANOUT_GROUP_STRIDE)))
        & FANOUT_GROUP_MASK;
    let mut caps = Vec::with_capacity(n);
    for _ in 0..n {
        caps.push(open_handle(cfg, group)?);
    }
    if let Some(user) = &cfg.user {
        drop_privileges(user)?;
    }
    let sig_ids = signals::hook(&stop)?;
    let halt = AtomicBool::new(false);
    let sync = StatsSync::new(n);
    let start = Instant::now();
    let mut results: Vec<(WorkerReport, Option<String>)> = Vec::with_capacity(n);
    std::thread::scope(|s| {
        let handles: Vec<_> = caps
            .into_iter()
            .enumerate()
            .map(|(idx, cap)| {
                let (make_app, on_output, ecfg) = (&make_app, &on_output, engine_cfg.clone());
                let shared = Shared {
                    stop: &stop,
                    halt: &halt,
                    sync: &sync,
                };
                s.spawn(move || {
                    let engine = Engine::new(ecfg, make_app(idx));
                    let r = worker::run(idx, cap, engine, on_output, &shared);
                    if r.1.is_some() {
                        shared.halt.store(true, Ordering::Relaxed);
                    }
                    r
                })
            })
            .collect();
        let interval = cfg.stats_interval;
        let mut next = start + interval;
        while !handles.iter().all(|h| h.is_finished()) {
            let now = Instant::now();
            let nap = if interval.is_zero() {
                MAIN_TICK
            } else {
                MAIN_TICK.min(next.saturating_duration_since(now))
            };
            std::thread::sleep(nap.max(MIN_NAP));
            if interval.is_zero() || Instant::now() < next {
                continue;
            }
            let e = sync.epoch.fetch_add(1, Ordering::AcqRel) + 1;
            let deadline = Instant::now() + STATS_COLLECT_WAIT;
            while Instant::now() < deadline && !sync.slots.iter().all(|slot| slot.answered(e)) {
                std::thread::sleep(STATS_COLLECT_TICK);
            }
            let report = LiveReport {
                workers: sync
                    .slots
                    .iter()
                    .map(|slot| {
                        slot.snap
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .1
                            .clone()
                    })
                    .collect(),
                elapsed: start.elapsed(),
                is_final: false,
            };
            on_stats(&report);
            let now = Instant::now();
            while next <= now {
                next += interval;
            }
        }
        for (idx, h) in handles.into_iter().enumerate() {
            match h.join() {
                Ok(r) => results.push(r),
                Err(_) => results.push((
                    WorkerReport::default(),
                    Some(format!("worker {idx} panicked")),
                )),
            }
        }
    });
    signals::unhook(sig_ids);
    let mut first_error = None;
    let mut report = LiveReport {
        workers: Vec::with_capacity(n),
        elapsed: start.elapsed(),
        is_final: true,
    };
    for (idx, (rep, err)) in results.into_iter().enumerate() {
        report.workers.push(rep);
        if let (None, Some(detail)) = (&first_error, err) {
            first_error = Some(LiveError::Worker {
                worker: idx,
                detail,
            });
        }
    }
    on_stats(&report);
    match first_error {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_errors_carry_the_capability_hint() {
        let e = pcap_err(
            "eth0",
            pcap::Error::PcapError(
                "eth0: You don't have permission to perform this capture on that device \
                 (socket: Operation not permitted)"
                    .into(),
            ),
        );
        assert!(matches!(e, LiveError::Permission { .. }));
        assert!(e.to_string().contains("CAP_NET_RAW"), "{e}");
        let e = pcap_err(
            "eth9",
            pcap::Error::PcapError("No such device exists".into()),
        );
        assert!(matches!(e, LiveError::Pcap(_)));
    }

    #[test]
    fn report_totals() {
        let w = |r, d, i| WorkerReport {
            received: r,
            kernel_dropped: d,
            if_dropped: i,
            ..WorkerReport::default()
        };
        let rep = LiveReport {
            workers: vec![w(10, 1, 3), w(5, 2, 3)],
            ..LiveReport::default()
        };
        assert_eq!(
            (rep.received(), rep.kernel_dropped(), rep.if_dropped()),
            (15, 3, 3)
        );
    }
}
