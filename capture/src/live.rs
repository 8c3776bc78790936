//! Live capture: N libpcap handles joined to one PACKET_FANOUT group (symmetric hash), one worker
//! thread per handle owning its own [`Engine`], so no packet is handed between threads.
//!
//! The only module allowed `unsafe`: the fanout `setsockopt` has no safe wrapper.
use crate::{App, Engine, EngineConfig, RawPacket, Stats};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Linux `PACKET_FANOUT` socket option and modes (not exported by `libc`).
const PACKET_FANOUT: libc::c_int = 18;
const PACKET_FANOUT_HASH: u32 = 0;
const PACKET_FANOUT_FLAG_DEFRAG: u32 = 0x8000;
/// Read timeout so the stop flag is looked at regularly.
const READ_TIMEOUT_MS: i32 = 100;
/// Packets per `dispatch` call before the output callback runs.
const BATCH: usize = 256;

#[derive(Debug, Clone)]
pub struct LiveConfig {
    pub iface: String,
    pub bpf: Option<String>,
    pub workers: usize,
    pub snaplen: i32,
    pub buffer_size: i32,
    pub immediate: bool,
    pub promisc: bool,
    /// Not implemented yet: privilege drop after opening.
    pub user: Option<String>,
    pub stats_interval: Duration,
}

#[derive(Debug, Clone, Default)]
pub struct WorkerReport {
    pub received: u64,
    pub kernel_dropped: u64,
    pub if_dropped: u64,
    pub engine: Stats,
}

#[derive(Debug, Clone, Default)]
pub struct LiveReport {
    pub workers: Vec<WorkerReport>,
}

#[derive(Debug)]
pub enum LiveError {
    Permission { iface: String, detail: String },
    Pcap(String),
    Fanout(std::io::Error),
    Unsupported(&'static str),
}

impl std::fmt::Display for LiveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LiveError::Permission { iface, detail } => write!(
                f,
                "no permission to capture on {iface} ({detail}); run as root or grant \
                 `setcap cap_net_raw,cap_net_admin=eip trustmap`"
            ),
            LiveError::Pcap(e) => write!(f, "pcap: {e}"),
            LiveError::Fanout(e) => write!(f, "PACKET_FANOUT: {e}"),
            LiveError::Unsupported(s) => write!(f, "{s}"),
        }
    }
}
impl std::error::Error for LiveError {}

fn pcap_err(iface: &str, e: pcap::Error) -> LiveError {
    let s = e.to_string();
    if s.contains("permission") || s.contains("Operation not permitted") {
        LiveError::Permission {
            iface: iface.to_string(),
            detail: s,
        }
    } else {
        LiveError::Pcap(s)
    }
}

/// Runs `cfg.workers` capture workers until `stop` is set (also set by SIGINT/SIGTERM).
/// `on_output` runs after each batch; the last call per worker follows `finish()`.
pub fn run<A, F, S>(
    cfg: &LiveConfig,
    engine_cfg: EngineConfig,
    make_app: F,
    on_output: S,
    stop: Arc<AtomicBool>,
) -> Result<LiveReport, LiveError>
where
    A: App,
    F: Fn(usize) -> A + Sync,
    S: Fn(usize, &mut Engine<A>) + Send + Sync,
{
    if cfg.user.is_some() {
        return Err(LiveError::Unsupported("--user is not implemented yet"));
    }
    let group = (std::process::id() & 0xffff) as u32;
    let mut caps = Vec::new();
    for _ in 0..cfg.workers.max(1) {
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
        let val: libc::c_int =
            (group | ((PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG) << 16)) as libc::c_int;
        // SAFETY: the fd is a live packet socket owned by `cap`; `val` is a valid c_int whose size
        // is passed exactly.
        let rc = unsafe {
            libc::setsockopt(
                cap.as_raw_fd(),
                libc::SOL_PACKET,
                PACKET_FANOUT,
                &val as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(LiveError::Fanout(std::io::Error::last_os_error()));
        }
        caps.push(cap);
    }
    let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone());
    let _ = signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone());
    let mut report = LiveReport::default();
    std::thread::scope(|s| {
        let handles: Vec<_> = caps
            .into_iter()
            .enumerate()
            .map(|(idx, mut cap)| {
                let (make_app, on_output, stop, ecfg) =
                    (&make_app, &on_output, &stop, engine_cfg.clone());
                s.spawn(move || {
                    let linktype = cap.get_datalink().0 as u32;
                    let mut engine = Engine::new(ecfg.clone(), make_app(idx));
                    let mut rep = WorkerReport::default();
                    while !stop.load(Ordering::Relaxed) {
                        let r = cap.dispatch(Some(BATCH), |p| {
                            let ts = (p.header.ts.tv_sec as u64)
                                .saturating_mul(1_000_000_000)
                                .saturating_add((p.header.ts.tv_usec as u64).saturating_mul(1000));
                            engine.process(&RawPacket {
                                ts_ns: ts,
                                linktype,
                                data: p.data,
                                orig_len: p.header.len,
                            });
                        });
                        match r {
                            Ok(n) if n > 0 => on_output(idx, &mut engine),
                            Ok(_) | Err(pcap::Error::TimeoutExpired) => {}
                            Err(_) => break,
                        }
                    }
                    if let Ok(st) = cap.stats() {
                        rep.received = st.received.into();
                        rep.kernel_dropped = st.dropped.into();
                        rep.if_dropped = st.if_dropped.into();
                    }
                    let (app, stats) = engine.finish();
                    rep.engine = stats.clone();
                    let mut last = Engine::new(
                        EngineConfig {
                            max_flows: 1,
                            ..ecfg
                        },
                        app,
                    );
                    last.stats = stats;
                    on_output(idx, &mut last);
                    rep
                })
            })
            .collect();
        for h in handles {
            if let Ok(r) = h.join() {
                report.workers.push(r);
            }
        }
    });
    Ok(report)
}
