//! Memory per idle tracked flow (issue target: at most 200 bytes), measured as the growth of the
//! process's resident set while an engine running the real TLS analyzer takes on 1M flows, each
//! opened by one segment and then idle: bypassed (the state of a flow after its handshake), only
//! a SYN seen, or waiting in the middle of a handshake record (for comparison: the deframer's
//! buffer is held until the record completes). The flow table's hash
//! index is measured at the fill it really has. `cargo bench -p capture --bench flow_memory`
#![forbid(unsafe_code)]

use capture::decode::linktype;
use capture::{Engine, EngineConfig, RawPacket};
use std::net::Ipv4Addr;

const FLOWS: usize = 1_000_000;
const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// Resident set size in bytes (Linux).
fn rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// One client -> server data segment of flow `i`, Ethernet framed: `payload` as the first bytes.
fn frame(i: usize, flags: u8, payload: &[u8]) -> Vec<u8> {
    let c = i as u32;
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
    let total = (40 + payload.len()) as u16;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0, 0]);
    f.extend_from_slice(&[10, (c >> 16) as u8, (c >> 8) as u8, c as u8]);
    f.extend_from_slice(&SERVER.octets());
    f.extend_from_slice(&(40_000 + (i % 20_000) as u16).to_be_bytes());
    f.extend_from_slice(&443u16.to_be_bytes());
    f.extend_from_slice(&1000u32.to_be_bytes());
    f.extend_from_slice(&1u32.to_be_bytes());
    f.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

/// Each case runs in a child process of its own, so that memory one case freed cannot hide the
/// next one's growth.
fn main() {
    let cases = [
        ("bypassed (TLS picked up mid-stream)", Kind::Bypassed),
        ("opened by a SYN, no payload yet", Kind::Syn),
        (
            "waiting inside a TLS record (deframer buffer held)",
            Kind::Waiting,
        ),
    ];
    if let Some(i) = std::env::var("FLOW_MEMORY_CASE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        if let Some(&(name, kind)) = cases.get(i) {
            measure(name, kind);
        }
        return;
    }
    let me = std::env::current_exe().expect("own path");
    for i in 0..cases.len() {
        let st = std::process::Command::new(&me)
            .env("FLOW_MEMORY_CASE", i.to_string())
            .status()
            .expect("run a case");
        assert!(st.success(), "case {i}");
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Bypassed,
    Syn,
    Waiting,
}

fn measure(name: &str, kind: Kind) {
    let cfg = EngineConfig {
        max_flows: FLOWS + 1,
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(
        cfg,
        analyzer::Analyzer::new(analyzer::AnalyzerConfig::default()),
    );
    let before = rss();
    for i in 0..FLOWS {
        // An application data record first: an established connection picked up mid-stream,
        // bypassed at once (the state a flow is in after its handshake). A TLS record header
        // claiming 512 bytes of handshake: waiting for the rest.
        let (flags, payload): (u8, &[u8]) = match kind {
            Kind::Bypassed => (0x18, &[0x17, 3, 3, 0, 32, 1, 2, 3, 4, 5, 6, 7, 8]),
            Kind::Syn => (0x02, &[]),
            Kind::Waiting => (0x18, &[0x16, 3, 1, 2, 0, 1, 0, 1, 252]),
        };
        let data = frame(i, flags, payload);
        engine.process(&RawPacket {
            ts_ns: 1_000_000_000 + i as u64,
            linktype: linktype::ETHERNET,
            data: &data,
            orig_len: data.len() as u32,
        });
        engine.app.out.clear();
    }
    let after = rss();
    let flows = engine.flow_count();
    assert_eq!(flows, FLOWS, "every flow tracked: {:?}", engine.stats);
    let per = after.saturating_sub(before) as f64 / flows as f64;
    println!(
        "flow_memory: {flows} idle tracked flows, {name}: RSS +{:.1} MiB = {per:.0} bytes per flow \
         (target <= 200); slab node {} bytes",
        after.saturating_sub(before) as f64 / (1 << 20) as f64,
        engine_node_size(),
    );
    std::hint::black_box(engine.finish());
}

/// The slab node of the engine's flow entry with the analyzer's per-flow state.
fn engine_node_size() -> usize {
    capture::engine::flow_node_size::<<analyzer::Analyzer as capture::App>::FlowState>()
}
