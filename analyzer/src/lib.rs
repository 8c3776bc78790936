//! Stream bytes to handshakes and certificates.
//!
//! `flow` is the [`Analyzer`], the `capture::App` that receives each flow's bytes. `detect` finds
//! TLS by content on any port (and after a STARTTLS exchange); `tls` deframes records, joins
//! handshake messages split across records (tls-parser does not) and parses them; `dtls` and
//! `sslv2` do the same for datagrams and SSLv2; `session` is the handshake's state machine (one
//! explicit state, the outcome set by transitions) that makes a [`Handshake`] (`model`);
//! `fingerprint` computes JA3/JA4; `cert` parses each unique certificate once into a [`CertInfo`]
//! held by the [`CertCache`]; `anomaly` counts what was wrong in the bytes; `names` names the
//! numbers on the wire. Trust (anchors, chains, findings) is the `trust` crate's.
#![forbid(unsafe_code)]

pub mod anomaly;
pub mod cert;
pub mod detect;
pub mod dtls;
pub mod fingerprint;
pub mod flow;
pub mod model;
pub mod names;
pub mod openvpn;
pub mod quic;
pub mod session;
pub mod sidesignal;
pub mod sslv2;
pub mod tls;

pub use anomaly::{Anomalies, Anomaly};
pub use cert::{CertCache, CertInfo};
pub use flow::{Analyzer, AnalyzerConfig, Output};
pub use model::*;
