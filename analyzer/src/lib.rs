//! Stream bytes to handshakes and certificates.
//!
//! `detect` finds TLS by content on any port (and after a STARTTLS exchange); `tls` deframes records
//! and joins handshake messages split across records (tls-parser does not); `dtls` does the same
//! for datagrams; `handshake` turns messages into a [`Handshake`]; `fingerprint` computes JA3/JA4;
//! `x509` parses each unique certificate once into a [`CertInfo`] held by the [`CertCache`].
#![forbid(unsafe_code)]

pub mod anomaly;
pub mod cert;
pub mod detect;
pub mod dtls;
pub mod fingerprint;
pub mod flow;
pub mod model;
pub mod names;
pub mod session;
pub mod sslv2;
pub mod tls;

pub use anomaly::{Anomalies, Anomaly};
pub use cert::{CertCache, CertInfo};
pub use flow::{Analyzer, AnalyzerConfig, Output};
pub use model::*;
