//! One capture worker: its pcap handle, its [`Engine`], the read loop, the drain on stop and the
//! per-worker counters handed to the periodic stats.
#![forbid(unsafe_code)]

use super::{sys, WorkerReport, BATCH, DRAIN_MAX_BATCHES, POLL_MS};
use crate::{App, Engine, EngineConfig, RawPacket};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// Nanoseconds per second and per microsecond (pcap packet headers carry µs).
const NS_PER_S: u64 = 1_000_000_000;
const NS_PER_US: u64 = 1_000;

/// A pcap 32-bit counter (it wraps) widened to 64 bits.
#[derive(Debug, Default)]
struct Wide {
    last: u32,
    total: u64,
}

impl Wide {
    fn update(&mut self, now: u32) -> u64 {
        self.total += u64::from(now.wrapping_sub(self.last));
        self.last = now;
        self.total
    }
}

/// Periodic stats: the calling thread bumps `epoch`; each worker answers with a snapshot tagged
/// with the epoch it saw.
pub(super) struct StatsSync {
    pub(super) epoch: AtomicU64,
    pub(super) slots: Vec<Slot>,
}

impl StatsSync {
    pub(super) fn new(workers: usize) -> Self {
        StatsSync {
            epoch: AtomicU64::new(0),
            slots: (0..workers).map(|_| Slot::default()).collect(),
        }
    }
}

/// One worker's latest snapshot.
#[derive(Default)]
pub(super) struct Slot {
    /// (epoch answered, counters).
    pub(super) snap: Mutex<(u64, WorkerReport)>,
    /// The worker left its read loop: its snapshot will not be refreshed any more.
    exited: AtomicBool,
}

impl Slot {
    pub(super) fn answered(&self, epoch: u64) -> bool {
        self.exited.load(Ordering::Acquire)
            || self.snap.lock().map(|g| g.0 >= epoch).unwrap_or(true)
    }
}

/// One worker's pcap counters.
#[derive(Default)]
struct PcapCounters {
    received: Wide,
    dropped: Wide,
    if_dropped: Wide,
}

impl PcapCounters {
    fn snapshot<A: App>(
        &mut self,
        cap: &mut pcap::Capture<pcap::Active>,
        engine: &Engine<A>,
    ) -> WorkerReport {
        let mut r = WorkerReport {
            flows: engine.flow_count(),
            engine: engine.stats.clone(),
            ..WorkerReport::default()
        };
        if let Ok(st) = cap.stats() {
            r.received = self.received.update(st.received);
            r.kernel_dropped = self.dropped.update(st.dropped);
            r.if_dropped = self.if_dropped.update(st.if_dropped);
        } else {
            r.received = self.received.total;
            r.kernel_dropped = self.dropped.total;
            r.if_dropped = self.if_dropped.total;
        }
        r
    }
}

fn ts_ns(h: &pcap::PacketHeader) -> u64 {
    let sec = u64::try_from(h.ts.tv_sec).unwrap_or(0);
    let usec = u64::try_from(h.ts.tv_usec).unwrap_or(0);
    sec.saturating_mul(NS_PER_S)
        .saturating_add(usec.saturating_mul(NS_PER_US))
}

/// Reads at most one batch into the engine; `Ok(n)` packets.
fn read_batch<A: App>(
    cap: &mut pcap::Capture<pcap::Active>,
    engine: &mut Engine<A>,
    linktype: u32,
) -> Result<usize, pcap::Error> {
    let r = cap.dispatch(Some(BATCH), |p| {
        engine.process(&RawPacket {
            ts_ns: ts_ns(p.header),
            linktype,
            data: p.data,
            orig_len: p.header.len,
        });
    });
    match r {
        Err(pcap::Error::TimeoutExpired) => Ok(0),
        r => r,
    }
}

/// What a worker shares with the calling thread and the other workers.
pub(super) struct Shared<'a> {
    /// Set by the caller (or a signal): read what is queued, flush, report.
    pub(super) stop: &'a AtomicBool,
    /// Set when a worker failed: the others stop too.
    pub(super) halt: &'a AtomicBool,
    pub(super) sync: &'a StatsSync,
}

/// One worker: read until stopped, drain, flush, report.
pub(super) fn run<A, S>(
    idx: usize,
    mut cap: pcap::Capture<pcap::Active>,
    mut engine: Engine<A>,
    on_output: &S,
    shared: &Shared<'_>,
) -> (WorkerReport, Option<String>)
where
    A: App,
    S: Fn(usize, &mut Engine<A>),
{
    let Shared { stop, halt, sync } = *shared;
    let linktype = cap.get_datalink().0 as u32;
    let mut counters = PcapCounters::default();
    let mut seen_epoch = 0u64;
    let mut error = None;
    while !stop.load(Ordering::Relaxed) && !halt.load(Ordering::Relaxed) {
        match read_batch(&mut cap, &mut engine, linktype) {
            Ok(0) => {
                if let Err(e) = sys::wait_readable(cap.as_fd(), POLL_MS) {
                    error = Some(e);
                    break;
                }
            }
            Ok(_) => on_output(idx, &mut engine),
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
        let e = sync.epoch.load(Ordering::Acquire);
        if e != seen_epoch {
            seen_epoch = e;
            let snap = counters.snapshot(&mut cap, &engine);
            if let Some(slot) = sync.slots.get(idx) {
                *slot.snap.lock().unwrap_or_else(|p| p.into_inner()) = (e, snap);
            }
        }
    }
    if error.is_none() {
        // What the kernel already queued belongs to this run.
        for _ in 0..DRAIN_MAX_BATCHES {
            match read_batch(&mut cap, &mut engine, linktype) {
                Ok(0) | Err(_) => break,
                Ok(_) => on_output(idx, &mut engine),
            }
        }
    }
    if let Some(slot) = sync.slots.get(idx) {
        slot.exited.store(true, Ordering::Release);
    }
    let mut rep = counters.snapshot(&mut cap, &engine);
    drop(cap);
    let ecfg = engine.cfg.clone();
    let (app, stats) = engine.finish();
    rep.engine = stats.clone();
    rep.flows = 0;
    // Hand the finished App (and final counters) to the output callback one last time.
    let mut last = Engine::new(
        EngineConfig {
            max_flows: 1,
            ..ecfg
        },
        app,
    );
    last.stats = stats;
    on_output(idx, &mut last);
    (rep, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_counter_survives_wrap() {
        let mut w = Wide::default();
        assert_eq!(w.update(10), 10);
        assert_eq!(w.update(u32::MAX), u64::from(u32::MAX));
        assert_eq!(w.update(4), u64::from(u32::MAX) + 5);
    }
}
