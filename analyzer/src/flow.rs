//! Per-flow TLS state and the [`capture::App`] implementation.
use crate::cert::{CertCache, CertInfo};
use crate::model::Handshake;
use capture::{App, CloseKind, Dir, EndReason, FlowCtx, TimestampNs, Verdict};
use std::sync::Arc;

/// Limits of the analyzer.
#[derive(Debug, Clone)]
pub struct AnalyzerConfig {
    /// Largest handshake message accepted (the Zeek corpus has a 339,629-byte Certificate).
    pub max_handshake_message: usize,
    /// Plaintext bytes scanned per direction looking for a STARTTLS upgrade / TLS start.
    pub max_plaintext_scan: usize,
}

impl Default for AnalyzerConfig {
    fn default() -> Self {
        AnalyzerConfig {
            max_handshake_message: 1 << 20,
            max_plaintext_scan: 64 * 1024,
        }
    }
}

/// What the analyzer produces; the caller drains [`Analyzer::out`] after each packet or batch.
#[derive(Debug, Clone)]
pub enum Output {
    /// A certificate seen for the first time in this run (for the `trustmap.x509` event).
    NewCert(Arc<CertInfo>, TimestampNs),
    Handshake(Box<Handshake>),
}

/// The TLS analyzer. Implements [`capture::App`].
#[derive(Debug, Default)]
pub struct Analyzer {
    pub cfg: AnalyzerConfig,
    pub certs: CertCache,
    pub out: Vec<Output>,
}

/// Per-flow state (lives inside the capture flow table).
#[derive(Debug, Default)]
pub struct FlowState {}

impl Analyzer {
    pub fn new(cfg: AnalyzerConfig) -> Self {
        Analyzer {
            cfg,
            certs: CertCache::new(),
            out: Vec::new(),
        }
    }
}

impl App for Analyzer {
    type FlowState = FlowState;

    fn on_stream(
        &mut self,
        _ctx: &FlowCtx,
        _s: &mut FlowState,
        _dir: Dir,
        _ts: TimestampNs,
        _data: &[u8],
    ) -> Verdict {
        Verdict::Continue
    }

    fn on_datagram(
        &mut self,
        _ctx: &FlowCtx,
        _s: &mut FlowState,
        _dir: Dir,
        _ts: TimestampNs,
        _data: &[u8],
    ) -> Verdict {
        Verdict::Continue
    }

    fn on_close(
        &mut self,
        _ctx: &FlowCtx,
        _s: &mut FlowState,
        _dir: Dir,
        _ts: TimestampNs,
        _kind: CloseKind,
    ) {
    }

    fn on_flow_end(&mut self, _ctx: &FlowCtx, _s: FlowState, _ts: TimestampNs, _reason: EndReason) {
    }
}
