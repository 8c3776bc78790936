//! The analyzer's output records: what one handshake showed. Plain data, no parsing here.
use std::net::IpAddr;
use std::sync::Arc;

use crate::cert::CertInfo;

/// Which side sent something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Client,
    Server,
}

/// Record-layer family of the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Protocol {
    /// SSL 3.0 to TLS 1.3 over a byte stream.
    Tls,
    /// DTLS over datagrams.
    Dtls,
    /// SSL 2.0 (a v2 SERVER-HELLO carries the certificate).
    Sslv2,
    /// TLS 1.3 inside QUIC (RFC 9001): CRYPTO frames of Initial and Handshake packets.
    Quic,
}

/// A certificate as it appeared on the wire, with its parsed form from the cache.
#[derive(Debug, Clone)]
pub struct CertRef {
    pub sha256: [u8; 32],
    pub info: Arc<CertInfo>,
}

/// A plaintext alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alert {
    pub from: Side,
    /// 1 = warning, 2 = fatal.
    pub level: u8,
    pub code: u8,
    /// Capture time of the alert.
    pub ts_ns: u64,
    /// True when the alert came after the server's Certificate and before the sender's
    /// ChangeCipherSpec (the window in which a client rejects the chain).
    pub after_server_cert: bool,
}

/// How the client reacted to the server's chain (DESIGN.md §4, "How the outcome is read").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// ClientKeyExchange/ChangeCipherSpec/Finished with no fatal alert, or application data both ways.
    Accepted,
    /// Fatal alert from the client after the server's Certificate.
    RejectedAlert { code: u8 },
    /// The client closed (FIN/RST) right after the server's Certificate with no alert.
    RejectedClose,
    /// Not visible (TLS 1.3, capture ended, no chain, ...).
    Unknown,
}

/// Everything one TLS/DTLS handshake showed. Emitted once per handshake: when it completes, when
/// it fails, or when its flow ends.
#[derive(Debug, Clone)]
pub struct Handshake {
    /// Capture time at which the record is emitted (completion, failure or flow end).
    pub ts_ns: u64,
    /// Capture time of the first handshake message.
    pub start_ts_ns: u64,
    pub client: (IpAddr, u16),
    pub server: (IpAddr, u16),
    /// "tcp" or "udp".
    pub transport: capture::Transport,
    pub protocol: Protocol,
    /// Name of the plaintext protocol that upgraded to TLS ("smtp", "imap", "pop3", "ftp", "ldap",
    /// "xmpp", "postgresql", "mysql", ...), or None for TLS from the first byte.
    pub starttls: Option<&'static str>,
    /// The tunnel whose payload carried the TLS: "openvpn" (its control channel), or None.
    pub tunnel: Option<&'static str>,
    /// Negotiated version (supported_versions wins over legacy_version), e.g. 0x0303.
    pub version: Option<u16>,
    /// ClientHello legacy_version.
    pub client_version: Option<u16>,
    pub cipher: Option<u16>,
    /// Negotiated key-exchange group (TLS 1.3 key_share; TLS <= 1.2 ECDHE named curve).
    pub group: Option<u16>,
    pub server_name: Option<String>,
    pub alpn: Vec<String>,
    /// Versions offered in the ClientHello supported_versions extension.
    pub supported_versions: Vec<u16>,
    /// Key-exchange groups the client offered (supported_groups), for the algorithm map.
    pub offered_groups: Vec<u16>,
    /// Signature schemes the client offered (signature_algorithms).
    pub offered_sig_schemes: Vec<u16>,
    pub ja3: Option<String>,
    pub ja3_string: Option<String>,
    pub ja4: Option<String>,
    /// Server Certificate message, in wire order. None when not seen.
    pub server_chain: Option<Vec<CertRef>>,
    /// Client Certificate message, in wire order (empty when the client sent an empty one).
    pub client_chain: Option<Vec<CertRef>>,
    /// The server's verdict on that client chain: `Some(true)` accepted (the handshake completed),
    /// `Some(false)` rejected (a fatal alert from the server), `None` unknown or no chain.
    pub client_cert_verdict: Option<bool>,
    /// CA distinguished names (DER) from a CertificateRequest, if one was seen.
    pub cert_request_cas: Option<Vec<Vec<u8>>>,
    /// First fatal alert (or first alert if none was fatal).
    pub alert: Option<Alert>,
    /// ChangeCipherSpec/Finished seen both ways, or application data both ways.
    pub established: bool,
    /// Abbreviated handshake: the server resumed a session (no Certificate).
    pub resumed: bool,
    /// False for TLS 1.3 (certificates encrypted), unless a key log decrypted the flight.
    pub chain_visible: bool,
    /// How the chains were known: `Some(Handshake)` when a Certificate was read in the clear,
    /// `Some(Keylog)` when it was decrypted with key-log secrets, `None` when none was seen.
    pub chain_source: Option<ChainSource>,
    pub outcome: Outcome,
}

impl Handshake {
    /// The handshake of trustmap's own probe (`client` is the probe's address): the chain the
    /// server presented, with no client behaviour to judge (outcome unknown).
    #[allow(clippy::too_many_arguments)]
    pub fn probed(
        ts_ns: u64,
        client: (IpAddr, u16),
        server: (IpAddr, u16),
        server_name: Option<String>,
        version: Option<u16>,
        cipher: Option<u16>,
        chain: Vec<CertRef>,
        established: bool,
    ) -> Handshake {
        Handshake {
            ts_ns,
            start_ts_ns: ts_ns,
            client,
            server,
            transport: capture::Transport::Tcp,
            protocol: Protocol::Tls,
            starttls: None,
            tunnel: None,
            version,
            client_version: None,
            cipher,
            group: None,
            server_name,
            alpn: Vec::new(),
            supported_versions: Vec::new(),
            offered_groups: Vec::new(),
            offered_sig_schemes: Vec::new(),
            ja3: None,
            ja3_string: None,
            ja4: None,
            server_chain: Some(chain),
            client_chain: None,
            client_cert_verdict: None,
            cert_request_cas: None,
            alert: None,
            established,
            resumed: false,
            chain_visible: true,
            chain_source: Some(ChainSource::Probe),
            outcome: Outcome::Unknown,
        }
    }
}

/// How a chain was known (`trustmap.chain_source`); evidence of different kinds is never mixed
/// without this label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainSource {
    /// A Certificate message in the clear (TLS <= 1.2, SSLv2).
    Handshake,
    /// A TLS 1.3 Certificate decrypted with secrets from a key log.
    Keylog,
    /// Presented to trustmap's own opt-in probe (`trustmap probe`), not seen on the wire.
    Probe,
}

impl ChainSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ChainSource::Handshake => "handshake",
            ChainSource::Keylog => "keylog",
            ChainSource::Probe => "probe",
        }
    }
}
