//! What the enrichment stage hands downstream: the per-handshake [`Enrichment`] the events
//! carry, the [`Finding`]s, and the inventory's [`Observation`]. The stages after this one (sinks,
//! inventory) read these types; none of them is defined downstream.

use std::net::IpAddr;
use std::sync::Arc;

use trust::chain::ChainResult;

/// Extra per-handshake facts computed downstream of the analyzer (chain building, findings).
#[derive(Debug, Default, Clone)]
pub struct Enrichment {
    /// Chain building of the server chain: `trustmap.anchor` (preferred path), `trustmap.anchors`
    /// (every anchor reached) and `trustmap.chain_issues`.
    pub server: Option<Arc<ChainResult>>,
    /// Chain building of an mTLS client chain: `trustmap.client_anchor`.
    pub client: Option<Arc<ChainResult>>,
    /// Segment names from the rules (CIDR / SNI).
    pub segments: Vec<String>,
    /// `{"internal": bool, "basis": "..."}`.
    pub locality: Option<rules::Locality>,
    /// Heuristic labels, each `{"kind": "heuristic.…", "reasons": [...]}`.
    pub heuristics: Vec<rules::Heuristic>,
}

/// One finding (DESIGN.md §4), owned: enrichment decides which findings are emitted, and the sink
/// writes them after the handshake's `trustmap.tls` event.
#[derive(Debug, Clone, Default)]
pub struct Finding {
    pub severity: u8,
    pub code: &'static str,
    pub message: String,
    /// The removal rule (or distrust event id); also ECS `rule.id`.
    pub rule: Option<String>,
    /// The deciding entry's removal instant (Unix s).
    pub removed: Option<i64>,
    /// The CA: SHA-256 and subject (`null` when unknown).
    pub ca: Option<([u8; 32], Option<String>)>,
    /// The certificate the finding is about.
    pub cert_sha256: Option<[u8; 32]>,
    pub evidence: Option<&'static str>,
    pub alert: Option<u8>,
    /// Root program of the deciding built-in entry.
    pub program: Option<&'static str>,
    /// `"client"` for a finding about an mTLS client certificate.
    pub side: Option<&'static str>,
}

/// What the client did with the presented chain (DESIGN.md §4, "How the outcome is read").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    /// Fatal alert (`Some(code)`) or a bare close (`None`) right after the server's Certificate.
    Rejected(Option<u8>),
    Unknown,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Rejected(_) => "rejected",
            Outcome::Unknown => "unknown",
        }
    }
}

/// Place of a CA certificate in the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Root,
    Intermediate,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Root => "root",
            Role::Intermediate => "intermediate",
        }
    }
}

/// One CA certificate of a presented chain, or the anchor it reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaRef {
    /// SHA-256 of the DER.
    pub sha256: [u8; 32],
    pub subject: String,
    pub role: Role,
    /// Trust stores that hold it ("mozilla", "chrome", ...).
    pub stores: Vec<String>,
    /// Ids of removal rules that target it.
    pub removals: Vec<String>,
}

/// One handshake, as the inventory needs it.
#[derive(Debug, Clone)]
pub struct Observation {
    /// Capture time of the handshake.
    pub ts_ns: u64,
    pub client_ip: IpAddr,
    pub server_ip: IpAddr,
    pub server_port: u16,
    pub server_name: Option<String>,
    /// e.g. `["internal", "embedded", "heuristic:appliance"]`.
    pub segments: Vec<String>,
    /// False for TLS 1.3 (unless a key log decrypted the flight).
    pub chain_visible: bool,
    /// How the chain was known (`inventory --format json` endpoint `evidence`): `"observed"`
    /// (in the clear), `"keylog"` (decrypted with a key log); `None` without a chain.
    pub evidence: Option<&'static str>,
    pub resumed: bool,
    pub outcome: Outcome,
    /// Every CA certificate in the presented chain or reached as anchor.
    pub cas: Vec<CaRef>,
    pub leaf_sha256: Option<[u8; 32]>,
    /// Subject DNs from a CertificateRequest (for `client_auth_trusted_by`).
    pub client_auth_ca_names: Vec<String>,
    /// The server's verdict on the client's chain (true: accepted) and the CA that chain was
    /// built to (its anchor, or the top CA presented): `client_auth_trusted_by` learnt from
    /// outcomes, and `client_auth_rejected_by`.
    pub client_auth_outcome: Option<(bool, Box<CaRef>)>,
    /// What the post-quantum migration map needs (`inventory --algorithms`).
    pub algorithms: Algorithms,
}

/// One side signal (OCSP request, CA certificate or CRL fetch), as the inventory needs it: a
/// client depends on these CAs (those whose certificate is known).
#[derive(Debug, Clone)]
pub struct SignalObservation {
    pub ts_ns: u64,
    pub client_ip: IpAddr,
    /// `"ocsp"` or `"aia"`.
    pub evidence: &'static str,
    pub cas: Vec<CaRef>,
}

/// The algorithms one handshake showed, for the post-quantum migration map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Algorithms {
    /// The negotiated key-exchange group.
    pub group: Option<u16>,
    /// The server leaf's key and signature algorithms (as `CertInfo` names them).
    pub leaf_key: Option<String>,
    pub leaf_sig: Option<String>,
    /// A ClientHello was seen (the client's offers are known).
    pub client_seen: bool,
    /// The client offered a post-quantum key-exchange group / signature scheme.
    pub client_pq_group: bool,
    pub client_pq_sig: bool,
}
