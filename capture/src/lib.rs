//! Packets to ordered stream bytes.
//!
//! `source` reads pcap/pcapng (optionally gzip, or stdin) in pure Rust; `decode` peels link layers,
//! tunnels and IP (with `defrag` for fragments) down to TCP/UDP; `flow` keeps the bounded flow table;
//! `reassembly` orders each TCP direction up to the handshake depth; `engine` wires them together and
//! hands contiguous bytes to an [`App`] (the TLS analyzer), which decides when a flow is bypassed.
//!
//! Everything here treats packet bytes as hostile: no panics, every buffer and table is capped, and
//! every drop is counted in [`Stats`].
#![cfg_attr(not(feature = "live"), forbid(unsafe_code))]
#![cfg_attr(feature = "live", deny(unsafe_code))]

pub mod decode;
pub mod defrag;
pub mod engine;
pub mod flow;
// The only module with `unsafe` code: `live::sys`, where `live/mod.rs` allows it (nowhere else).
#[cfg(feature = "live")]
pub mod live;
pub mod reassembly;
pub mod source;
pub mod stats;

pub use engine::{Engine, EngineConfig};
pub use stats::Stats;

use std::net::IpAddr;

/// Nanoseconds since the Unix epoch, taken from the capture (never the wall clock).
pub type TimestampNs = u64;

/// One captured frame as the source hands it over: link type (pcap LINKTYPE_*) plus bytes.
#[derive(Debug, Clone, Copy)]
pub struct RawPacket<'a> {
    pub ts_ns: TimestampNs,
    /// pcap LINKTYPE_* value of the interface that captured this frame.
    pub linktype: u32,
    pub data: &'a [u8],
    /// Original length on the wire (may exceed `data.len()` when the snaplen cut it).
    pub orig_len: u32,
}

/// Transport of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Tcp,
    Udp,
}

/// Direction inside a flow, relative to the originator (the SYN sender; without a SYN, the sender of
/// the first packet seen). The analyzer decides who is the TLS client from the messages themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    /// From the originator to the responder.
    Orig,
    /// From the responder back to the originator.
    Resp,
}

impl Dir {
    pub fn other(self) -> Dir {
        match self {
            Dir::Orig => Dir::Resp,
            Dir::Resp => Dir::Orig,
        }
    }
    pub fn index(self) -> usize {
        match self {
            Dir::Orig => 0,
            Dir::Resp => 1,
        }
    }
}

/// What the engine knows about a flow, handed to the [`App`] with every callback.
#[derive(Debug, Clone)]
pub struct FlowCtx {
    /// Unique per run (monotonic), also distinguishes flows that reuse a 5-tuple.
    pub id: u64,
    pub transport: Transport,
    pub orig: (IpAddr, u16),
    pub resp: (IpAddr, u16),
    /// True when the originator was established by a SYN (not guessed mid-stream).
    pub syn_seen: bool,
    /// Capture time of the flow's first packet.
    pub first_ts_ns: TimestampNs,
}

/// The App's answer after seeing bytes: keep feeding this flow, or stop (bypass) it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Continue,
    /// Nothing more is wanted from this flow: later packets cost one lookup and a flag check.
    Bypass,
}

/// How one direction of a TCP stream closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseKind {
    Fin,
    Rst,
}

/// Why a flow left the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// Both sides closed (FIN/RST) and the flow was retired.
    Closed,
    /// No packet for longer than the idle timeout.
    IdleTimeout,
    /// The table was full and this was the least recently used flow.
    Evicted,
    /// A new connection reused the 5-tuple (SYN after close, or a large sequence jump).
    Reused,
    /// End of input.
    EndOfInput,
}

/// The consumer of reassembled bytes (the TLS analyzer implements this).
///
/// The engine stores one `FlowState` per flow inside its flow table, so the App's state costs no
/// second lookup. Callbacks for one flow arrive in capture order.
pub trait App {
    type FlowState: Default;

    /// New contiguous, in-order bytes of one TCP direction (never overlapping earlier bytes).
    fn on_stream(
        &mut self,
        ctx: &FlowCtx,
        state: &mut Self::FlowState,
        dir: Dir,
        ts_ns: TimestampNs,
        data: &[u8],
    ) -> Verdict;

    /// A hole in one TCP direction that will never be filled (buffer cap, or data lost before a
    /// later segment was forced through). `len` bytes are missing before the next `on_stream`.
    fn on_gap(
        &mut self,
        ctx: &FlowCtx,
        state: &mut Self::FlowState,
        dir: Dir,
        ts_ns: TimestampNs,
        len: u64,
    ) {
        let _ = (ctx, state, dir, ts_ns, len);
    }

    /// One UDP datagram payload (after IP reassembly).
    fn on_datagram(
        &mut self,
        ctx: &FlowCtx,
        state: &mut Self::FlowState,
        dir: Dir,
        ts_ns: TimestampNs,
        data: &[u8],
    ) -> Verdict;

    /// One direction closed (FIN or RST), after all of its in-order bytes were delivered.
    fn on_close(
        &mut self,
        ctx: &FlowCtx,
        state: &mut Self::FlowState,
        dir: Dir,
        ts_ns: TimestampNs,
        kind: CloseKind,
    ) {
        let _ = (ctx, state, dir, ts_ns, kind);
    }

    /// The flow leaves the table; the state is handed back for final emission.
    fn on_flow_end(
        &mut self,
        ctx: &FlowCtx,
        state: Self::FlowState,
        ts_ns: TimestampNs,
        reason: EndReason,
    );
}
