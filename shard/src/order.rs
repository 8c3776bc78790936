//! The one output order of the packet stage, whatever the number of workers.
//!
//! Every analyzer output is caused by one packet of the capture (its global sequence number) and
//! comes either from the clock tick of that packet (flows retired because the clock passed their
//! idle timeout or close linger: the "sweep"), or from processing the packet itself. Order:
//! 1. by packet sequence number;
//! 2. sweep outputs before the packet's own outputs;
//! 3. within one sweep (and within the end-of-input flush, `Engine::finish`): the canonical order
//!    of [`canonical_cmp`], because a single engine retires flows in its LRU order and sharded
//!    engines each in their own: new certificates first (by SHA-256), then handshakes by start
//!    time, transport, client, server. Ties exist only between outputs of one flow, which one
//!    engine produced in its own order, so a stable sort keeps them as they came.
//!
//! A packet's own outputs come from the one engine that owns its flow, in that engine's order.
//! `NewCert` is passed on once per certificate per run: each worker has its own certificate
//! cache, so the later copies (in this order) are dropped. The first copy is the one a single
//! engine would have emitted: same certificate, same packet, same timestamp.

use std::cmp::Ordering;
use std::collections::HashSet;

use analyzer::Output;
use capture::Transport;
use std::net::IpAddr;

use super::instr::Instrumentation;

/// Certificates remembered by [`Emitter`] for dropping cross-worker repeats (4x what one
/// worker's certificate cache holds).
pub const MAX_SEEN_CERTS: usize = 4 * analyzer::cert::MAX_CACHED_CERTS;

/// Canonical order of the outputs of one sweep (see the module doc).
pub fn canonical_cmp(a: &Output, b: &Output) -> Ordering {
    fn transport(t: Transport) -> u8 {
        match t {
            Transport::Tcp => 0,
            Transport::Udp => 1,
        }
    }
    // Certificates first (by hash), then handshakes and side signals by time and addresses.
    type Key = (u64, u8, u8, (IpAddr, u16), (IpAddr, u16));
    fn key(o: &Output) -> Option<Key> {
        match o {
            Output::NewCert(..) => None,
            Output::Handshake(h) => {
                Some((h.start_ts_ns, 0, transport(h.transport), h.client, h.server))
            }
            Output::SideSignal(s) => Some((s.ts_ns, 1, 0, s.client, s.server)),
        }
    }
    match (a, b) {
        (Output::NewCert(x, _), Output::NewCert(y, _)) => x.sha256.cmp(&y.sha256),
        _ => key(a).cmp(&key(b)),
    }
}

/// Puts the outputs of one sweep in canonical order (stable).
pub fn canonical_sort(v: &mut [Output]) {
    v.sort_by(canonical_cmp);
}

/// Certificates already passed on, across workers: 32 bytes each, emptied at
/// [`MAX_SEEN_CERTS`] (a certificate first seen before that may then be reported again, as it is
/// by a worker whose certificate cache was emptied). Offline ([`Emitter`]) and live capture use
/// this one set.
#[derive(Debug, Default)]
pub struct SeenCerts(HashSet<[u8; 32]>);

impl SeenCerts {
    /// True the first time `sha256` is offered (since the last reset).
    pub fn first_sighting(&mut self, sha256: &[u8; 32]) -> bool {
        if self.0.len() >= MAX_SEEN_CERTS && !self.0.contains(sha256) {
            self.0.clear();
        }
        self.0.insert(*sha256)
    }
}

/// Hands outputs, already in the final order, to the caller: drops repeated certificates and
/// measures handshakes.
pub struct Emitter<'a> {
    on_output: &'a mut dyn FnMut(Output) -> Result<(), String>,
    seen: SeenCerts,
    pub instr: Instrumentation,
}

impl<'a> Emitter<'a> {
    pub fn new(on_output: &'a mut dyn FnMut(Output) -> Result<(), String>) -> Self {
        Emitter {
            on_output,
            seen: SeenCerts::default(),
            instr: Instrumentation::default(),
        }
    }

    /// Passes one output on (unless it repeats a certificate).
    pub fn emit(&mut self, o: Output) -> Result<(), String> {
        match &o {
            Output::NewCert(ci, _) => {
                if !self.seen.first_sighting(&ci.sha256) {
                    self.instr.duplicate_certs += 1;
                    return Ok(());
                }
                self.instr.certs += 1;
            }
            Output::Handshake(h) => {
                self.instr.handshakes += 1;
                if h.server_chain.is_some() {
                    self.instr.chains += 1;
                }
                self.instr
                    .handshake_ns
                    .record(h.ts_ns.saturating_sub(h.start_ts_ns));
            }
            Output::SideSignal(_) => {}
        }
        (self.on_output)(o)
    }

    /// Passes on the outputs of one sweep in canonical order; leaves `v` empty.
    pub fn emit_sweep(&mut self, v: &mut Vec<Output>) -> Result<(), String> {
        canonical_sort(v);
        for o in v.drain(..) {
            self.emit(o)?;
        }
        Ok(())
    }
}
