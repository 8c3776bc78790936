//! NDJSON event building (DESIGN.md §4, the event contract): typed views that borrow the analyzer
//! records and serialise straight to bytes, with no intermediate `serde_json::Value`.
//!
//! Why typed views: one event per handshake is the hot path of a handshake-heavy capture, and a
//! `Value` tree costs a map node and a key string per field before a byte is written. Struct fields
//! are declared in byte order of their JSON names, so the output keeps the sorted key order that
//! `Value` (a `BTreeMap`) produced and consumers may have come to rely on.

use std::collections::hash_map::{Entry, HashMap};
use std::net::IpAddr;

use analyzer::{Alert, CertInfo, CertRef, Handshake, Outcome, Protocol, Side};
use enrich::{Enrichment, Finding};
use serde::ser::Error as _;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use trust::chain::{AnchorRef, ChainIssue};

use analyzer::names::{alert_name, cipher_name, group_name, sig_scheme_name, version_name};
use analyzer::tls::handshake::is_grease;
use rules::time::{rfc3339_ns, rfc3339_s};

/// Lowercase hex of a SHA-256, serialised without an intermediate `String`.
#[derive(Clone, Copy)]
pub struct Hex32<'a>(pub &'a [u8; 32]);

impl Serialize for Hex32<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 64];
        hex::encode_to_slice(self.0, &mut buf).map_err(S::Error::custom)?;
        s.serialize_str(std::str::from_utf8(&buf).map_err(S::Error::custom)?)
    }
}

/// Serialises every item of an iterator as one JSON array (the iterator is cloned, not consumed).
struct Seq<I>(I);

impl<I> Serialize for Seq<I>
where
    I: Iterator + Clone,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.clone())
    }
}

fn side_name(s: Side) -> &'static str {
    match s {
        Side::Client => "client",
        Side::Server => "server",
    }
}

#[derive(Serialize)]
struct Sha256<'a> {
    sha256: Hex32<'a>,
}

#[derive(Serialize)]
struct Dn<'a> {
    distinguished_name: &'a str,
}

#[derive(Serialize)]
struct Endpoint {
    ip: IpAddr,
    port: u16,
}

impl Endpoint {
    fn of(ep: &(IpAddr, u16)) -> Self {
        Endpoint {
            ip: ep.0,
            port: ep.1,
        }
    }
}

#[derive(Serialize)]
struct EventMeta {
    dataset: &'static str,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    severity: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    start: Option<String>,
}

/// One entry of `tls.*.chain`: the per-certificate summary in wire order.
struct ChainEntry<'a>(&'a CertRef);

impl Serialize for ChainEntry<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let c = self.0;
        let mut m = s.serialize_map(None)?;
        match &c.info.parse_error {
            Some(e) => {
                m.serialize_entry("parse_error", e)?;
                m.serialize_entry("sha256", &Hex32(&c.sha256))?;
            }
            None => {
                m.serialize_entry("issuer", &c.info.issuer)?;
                m.serialize_entry("sha256", &Hex32(&c.sha256))?;
                m.serialize_entry("subject", &c.info.subject)?;
            }
        }
        m.end()
    }
}

/// The ECS `x509.*` object of one certificate (`{}` for one that failed to parse).
pub struct EcsX509<'a>(pub &'a CertInfo);

impl Serialize for EcsX509<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let ci = self.0;
        let mut m = s.serialize_map(None)?;
        if ci.parse_error.is_some() {
            return m.end();
        }
        if !ci.alternative_names.is_empty() {
            m.serialize_entry("alternative_names", &ci.alternative_names)?;
        }
        m.serialize_entry(
            "issuer",
            &Dn {
                distinguished_name: &ci.issuer,
            },
        )?;
        m.serialize_entry("not_after", &rfc3339_s(ci.not_after))?;
        m.serialize_entry("not_before", &rfc3339_s(ci.not_before))?;
        m.serialize_entry("public_key_algorithm", &ci.public_key_algorithm)?;
        if let Some(c) = &ci.public_key_curve {
            m.serialize_entry("public_key_curve", c)?;
        }
        if let Some(sz) = ci.public_key_size {
            m.serialize_entry("public_key_size", &sz)?;
        }
        m.serialize_entry("serial_number", &ci.serial)?;
        m.serialize_entry("signature_algorithm", &ci.signature_algorithm)?;
        m.serialize_entry(
            "subject",
            &Dn {
                distinguished_name: &ci.subject,
            },
        )?;
        m.end()
    }
}

/// `tls.client` / `tls.server`: the ClientHello facts (client side only), our ordered `chain`, and
/// the ECS leaf fields.
struct TlsSide<'a> {
    hello: Option<&'a Handshake>,
    chain: Option<&'a [CertRef]>,
}

impl Serialize for TlsSide<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let hello = self.hello;
        let leaf = self.chain.and_then(|c| c.first());
        let parsed = leaf.map(|l| &*l.info).filter(|ci| ci.parse_error.is_none());
        let mut m = s.serialize_map(None)?;
        if let Some(h) = hello.filter(|h| !h.alpn.is_empty()) {
            m.serialize_entry("alpn", &h.alpn)?;
        }
        if let Some(c) = self.chain {
            m.serialize_entry("chain", &Seq(c.iter().map(ChainEntry)))?;
        }
        if let Some(l) = leaf {
            m.serialize_entry(
                "hash",
                &Sha256 {
                    sha256: Hex32(&l.sha256),
                },
            )?;
        }
        if let Some(ci) = parsed {
            m.serialize_entry("issuer", &ci.issuer)?;
        }
        if let Some(h) = hello {
            if let Some(j) = &h.ja3 {
                m.serialize_entry("ja3", j)?;
            }
            if let Some(j) = &h.ja4 {
                m.serialize_entry("ja4", j)?;
            }
        }
        if let Some(ci) = parsed {
            m.serialize_entry("not_after", &rfc3339_s(ci.not_after))?;
            m.serialize_entry("not_before", &rfc3339_s(ci.not_before))?;
        }
        if let Some(sni) = hello.and_then(|h| h.server_name.as_ref()) {
            m.serialize_entry("server_name", sni)?;
        }
        // The signature schemes the client offered (ClientHello signature_algorithms, GREASE
        // left out): what its certificate verification can accept, e.g. ML-DSA.
        if let Some(h) = hello.filter(|h| !h.offered_sig_schemes.is_empty()) {
            let names = h
                .offered_sig_schemes
                .iter()
                .filter(|v| !is_grease(**v))
                .map(|v| sig_scheme_name(*v));
            m.serialize_entry("signature_algorithms", &Seq(names))?;
        }
        if let Some(ci) = parsed {
            m.serialize_entry("subject", &ci.subject)?;
        }
        if let Some(h) = hello.filter(|h| !h.supported_versions.is_empty()) {
            let names = h.supported_versions.iter().map(|v| version_name(*v).0);
            m.serialize_entry("supported_versions", &Seq(names))?;
        }
        if let Some(ci) = parsed {
            m.serialize_entry("x509", &EcsX509(ci))?;
        }
        m.end()
    }
}

#[derive(Serialize)]
struct AlertJson {
    code: u8,
    from: &'static str,
    level: &'static str,
    name: &'static str,
}

impl AlertJson {
    fn of(a: &Alert) -> Self {
        AlertJson {
            code: a.code,
            from: side_name(a.from),
            level: if a.level == 2 { "fatal" } else { "warning" },
            name: alert_name(a.code),
        }
    }
}

struct OutcomeJson<'a>(&'a Outcome);

impl Serialize for OutcomeJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        match self.0 {
            Outcome::Accepted => m.serialize_entry("result", "accepted")?,
            Outcome::RejectedAlert { code } => {
                m.serialize_entry("code", code)?;
                m.serialize_entry("evidence", "alert")?;
                m.serialize_entry("name", alert_name(*code))?;
                m.serialize_entry("result", "rejected")?;
            }
            Outcome::RejectedClose => {
                m.serialize_entry("evidence", "close")?;
                m.serialize_entry("result", "rejected")?;
            }
            Outcome::Unknown => m.serialize_entry("result", "unknown")?,
        }
        m.end()
    }
}

/// `trustmap.anchor` and the entries of `trustmap.anchors`.
#[derive(Serialize)]
struct AnchorJson<'a> {
    sha256: Hex32<'a>,
    store: &'a [String],
    subject: &'a str,
}

impl<'a> AnchorJson<'a> {
    fn of(a: &'a AnchorRef) -> Self {
        AnchorJson {
            sha256: Hex32(&a.sha256),
            store: &a.stores,
            subject: &a.subject,
        }
    }
}

/// One entry of `trustmap.chain_issues`: a name, or `{name: detail}`.
struct IssueJson<'a>(&'a ChainIssue);

impl Serialize for IssueJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let (name, sha) = match self.0 {
            ChainIssue::Incomplete => return s.serialize_str("incomplete"),
            ChainIssue::Misordered => return s.serialize_str("misordered"),
            ChainIssue::SelfSignedLeaf => return s.serialize_str("self_signed_leaf"),
            ChainIssue::Unrelated(i) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("unrelated", i)?;
                return m.end();
            }
            ChainIssue::UnknownAnchor(sha) => ("unknown_anchor", sha),
            ChainIssue::ExpiredIntermediate(sha) => ("expired_intermediate", sha),
        };
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(name, &Hex32(sha))?;
        m.end()
    }
}

#[derive(Serialize)]
struct LocalityJson<'a> {
    basis: &'a str,
    internal: bool,
}

#[derive(Serialize)]
struct HeuristicJson<'a> {
    kind: &'a str,
    reasons: &'a [String],
}

/// The `trustmap` object of a `trustmap.tls` event.
struct TlsTrustmap<'a> {
    h: &'a Handshake,
    extra: &'a Enrichment,
}

impl Serialize for TlsTrustmap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let (h, x) = (self.h, self.extra);
        let server = x.server.as_deref();
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("alert", &h.alert.as_ref().map(AlertJson::of))?;
        m.serialize_entry(
            "anchor",
            &server.and_then(|r| r.anchor()).map(AnchorJson::of),
        )?;
        if let Some(r) = server.filter(|r| !r.anchors.is_empty()) {
            m.serialize_entry("anchors", &Seq(r.anchors.iter().map(AnchorJson::of)))?;
        }
        if let Some(cas) = &h.cert_request_cas {
            #[derive(Serialize)]
            struct CertRequest {
                ca_names: usize,
            }
            m.serialize_entry(
                "certificate_request",
                &CertRequest {
                    ca_names: cas.len(),
                },
            )?;
        }
        if let Some(r) = server.filter(|r| !r.issues.is_empty()) {
            m.serialize_entry("chain_issues", &Seq(r.issues.iter().map(IssueJson)))?;
        }
        m.serialize_entry("chain_source", &h.chain_source.map(|c| c.as_str()))?;
        m.serialize_entry("chain_visible", &h.chain_visible)?;
        if let Some(a) = x.client.as_deref().and_then(|r| r.anchor()) {
            m.serialize_entry("client_anchor", &AnchorJson::of(a))?;
        }
        if !x.heuristics.is_empty() {
            let hs = x.heuristics.iter().map(|hz| HeuristicJson {
                kind: hz.kind,
                reasons: &hz.reasons,
            });
            m.serialize_entry("heuristics", &Seq(hs))?;
        }
        if let Some(l) = &x.locality {
            let l = LocalityJson {
                basis: &l.basis,
                internal: l.internal,
            };
            m.serialize_entry("locality", &l)?;
        }
        m.serialize_entry("outcome", &OutcomeJson(&h.outcome))?;
        if !x.segments.is_empty() {
            m.serialize_entry("segments", &x.segments)?;
        }
        m.serialize_entry("starttls", &h.starttls)?;
        if let Some(t) = h.tunnel {
            m.serialize_entry("tunnel", t)?;
        }
        m.end()
    }
}

/// The `tls` object of a `trustmap.tls` event; `server` is `tls.server` already rendered.
struct Tls<'a> {
    h: &'a Handshake,
    server: Option<&'a RawValue>,
}

impl Serialize for Tls<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let h = self.h;
        let mut m = s.serialize_map(None)?;
        if let Some(c) = h.cipher {
            m.serialize_entry("cipher", &cipher_name(c))?;
        }
        let client = TlsSide {
            hello: Some(h),
            chain: h.client_chain.as_deref(),
        };
        m.serialize_entry("client", &client)?;
        // ECS tls.curve: the negotiated key-exchange group (visible without keys in TLS 1.3).
        if let Some(g) = h.group {
            m.serialize_entry("curve", &group_name(g))?;
        }
        m.serialize_entry("established", &h.established)?;
        if let Some(a) = h.alpn.first() {
            m.serialize_entry("next_protocol", a)?;
        }
        m.serialize_entry("resumed", &h.resumed)?;
        match self.server {
            Some(raw) => m.serialize_entry("server", raw)?,
            None => {
                let server = TlsSide {
                    hello: None,
                    chain: h.server_chain.as_deref(),
                };
                m.serialize_entry("server", &server)?;
            }
        }
        if let Some(v) = h.version {
            let (name, vp) = version_name(v);
            m.serialize_entry("version", &name)?;
            m.serialize_entry("version_protocol", vp)?;
        }
        m.end()
    }
}

/// The `trustmap.tls` event of one handshake.
pub struct TlsEvent<'a> {
    pub h: &'a Handshake,
    pub extra: &'a Enrichment,
    /// `tls.server` already rendered (see [`ServerSideCache`]), or None to render it here.
    pub server: Option<&'a RawValue>,
}

/// Distinct presented server chains whose rendered `tls.server` object is kept.
pub const MAX_RENDERED_CHAINS: usize = 4096;

/// `tls.server` objects rendered once per presented chain: they depend on the certificates only,
/// and are most of an event's bytes when servers repeat their chains. Bounded: cleared when full.
#[derive(Default)]
pub struct ServerSideCache {
    rendered: HashMap<Vec<[u8; 32]>, Box<RawValue>>,
}

impl ServerSideCache {
    /// The rendered `tls.server` of `h` (None without a server chain).
    pub fn get(&mut self, h: &Handshake) -> Result<Option<&RawValue>, serde_json::Error> {
        let Some(chain) = h.server_chain.as_deref() else {
            return Ok(None);
        };
        let key: Vec<[u8; 32]> = chain.iter().map(|c| c.sha256).collect();
        if !self.rendered.contains_key(&key) && self.rendered.len() >= MAX_RENDERED_CHAINS {
            self.rendered.clear();
        }
        let raw = match self.rendered.entry(key) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let side = TlsSide {
                    hello: None,
                    chain: Some(chain),
                };
                e.insert(serde_json::value::to_raw_value(&side)?)
            }
        };
        Ok(Some(&**raw))
    }
}

/// ECS `network` of a flow's event.
#[derive(Serialize)]
struct Network {
    community_id: String,
    protocol: &'static str,
    transport: &'static str,
}

impl Serialize for TlsEvent<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let h = self.h;
        let network = Network {
            community_id: crate::community_id::v1(
                h.client,
                h.server,
                match h.transport {
                    capture::Transport::Tcp => crate::community_id::TCP,
                    capture::Transport::Udp => crate::community_id::UDP,
                },
            ),
            protocol: match h.protocol {
                Protocol::Tls => "tls",
                Protocol::Dtls => "dtls",
                Protocol::Sslv2 => "ssl",
                Protocol::Quic => "quic",
            },
            transport: match h.transport {
                capture::Transport::Tcp => "tcp",
                capture::Transport::Udp => "udp",
            },
        };
        let event = EventMeta {
            dataset: "trustmap.tls",
            kind: "event",
            severity: None,
            start: Some(rfc3339_ns(h.start_ts_ns)),
        };
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("@timestamp", &rfc3339_ns(h.ts_ns))?;
        m.serialize_entry("destination", &Endpoint::of(&h.server))?;
        m.serialize_entry("event", &event)?;
        m.serialize_entry("network", &network)?;
        m.serialize_entry("source", &Endpoint::of(&h.client))?;
        let tls = Tls {
            h,
            server: self.server,
        };
        m.serialize_entry("tls", &tls)?;
        m.serialize_entry(
            "trustmap",
            &TlsTrustmap {
                h,
                extra: self.extra,
            },
        )?;
        m.end()
    }
}

/// The `trustmap.x509` event of a certificate seen for the first time in this run.
pub struct X509Event<'a> {
    pub cert: &'a CertInfo,
    pub ts_ns: u64,
}

impl Serialize for X509Event<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        struct Trustmap<'a>(&'a CertInfo);
        impl Serialize for Trustmap<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let ci = self.0;
                let mut m = s.serialize_map(None)?;
                if let Some(e) = &ci.parse_error {
                    m.serialize_entry("parse_error", e)?;
                    m.serialize_entry("sha256", &Hex32(&ci.sha256))?;
                    return m.end();
                }
                m.serialize_entry("aki", &ci.aki)?;
                if !ci.eku.is_empty() {
                    m.serialize_entry("eku", &ci.eku)?;
                }
                m.serialize_entry("is_ca", &ci.is_ca)?;
                if let Some(p) = ci.path_len {
                    m.serialize_entry("path_len", &p)?;
                }
                let scts = ci
                    .sct_timestamps
                    .iter()
                    .map(|ms| rfc3339_ns(ms.saturating_mul(1_000_000)));
                m.serialize_entry("sct_timestamps", &Seq(scts))?;
                m.serialize_entry("self_issued", &ci.self_issued)?;
                m.serialize_entry("sha256", &Hex32(&ci.sha256))?;
                m.serialize_entry("ski", &ci.ski)?;
                match &ci.spki_sha256 {
                    Some(d) => m.serialize_entry("spki_sha256", &Hex32(d))?,
                    None => m.serialize_entry("spki_sha256", "")?,
                }
                m.end()
            }
        }
        let ci = self.cert;
        let event = EventMeta {
            dataset: "trustmap.x509",
            kind: "event",
            severity: None,
            start: None,
        };
        #[derive(Serialize)]
        struct Related<'a> {
            hash: [Hex32<'a>; 1],
        }
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("@timestamp", &rfc3339_ns(self.ts_ns))?;
        m.serialize_entry("event", &event)?;
        m.serialize_entry(
            "related",
            &Related {
                hash: [Hex32(&ci.sha256)],
            },
        )?;
        m.serialize_entry("trustmap", &Trustmap(ci))?;
        m.serialize_entry("x509", &EcsX509(ci))?;
        m.end()
    }
}

/// The `trustmap.finding` object of one finding.
struct FindingJson<'a>(&'a Finding);

impl Serialize for FindingJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let f = self.0;
        use serde::ser::SerializeMap;
        #[derive(Serialize)]
        struct AlertRef {
            code: u8,
            name: &'static str,
        }
        #[derive(Serialize)]
        struct CaRef<'a> {
            sha256: Hex32<'a>,
            subject: Option<&'a str>,
        }
        #[derive(Serialize)]
        struct CertRef<'a> {
            sha256: Hex32<'a>,
        }
        let mut m = s.serialize_map(None)?;
        if let Some(code) = f.alert {
            let a = AlertRef {
                code,
                name: alert_name(code),
            };
            m.serialize_entry("alert", &a)?;
        }
        if let Some((sha256, subject)) = &f.ca {
            let ca = CaRef {
                sha256: Hex32(sha256),
                subject: subject.as_deref(),
            };
            m.serialize_entry("ca", &ca)?;
        }
        if let Some(sha256) = &f.cert_sha256 {
            m.serialize_entry(
                "cert",
                &CertRef {
                    sha256: Hex32(sha256),
                },
            )?;
        }
        m.serialize_entry("code", f.code)?;
        if let Some(e) = f.evidence {
            m.serialize_entry("evidence", e)?;
        }
        m.serialize_entry("message", &f.message)?;
        if let Some(p) = f.program {
            m.serialize_entry("program", p)?;
        }
        if let Some(r) = f.removed {
            m.serialize_entry("removed", &rfc3339_s(r))?;
        }
        if let Some(r) = &f.rule {
            m.serialize_entry("rule", r)?;
        }
        if let Some(side) = f.side {
            m.serialize_entry("side", side)?;
        }
        m.end()
    }
}

/// The `trustmap.finding` event of one finding about handshake `h`, evaluated at `instant`.
pub struct FindingEvent<'a> {
    pub h: &'a Handshake,
    pub finding: &'a Finding,
    pub instant: i64,
}

impl Serialize for FindingEvent<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        #[derive(Serialize)]
        struct Id<'a> {
            id: &'a str,
        }
        #[derive(Serialize)]
        struct Client<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            server_name: Option<&'a str>,
        }
        #[derive(Serialize)]
        struct Tls<'a> {
            client: Client<'a>,
        }
        #[derive(Serialize)]
        struct Trustmap<'a> {
            /// How the chain the finding is about was known (never mixed without this label).
            #[serde(skip_serializing_if = "Option::is_none")]
            chain_source: Option<&'static str>,
            evaluated_at: String,
            finding: FindingJson<'a>,
        }
        let (h, f) = (self.h, self.finding);
        let event = EventMeta {
            dataset: "trustmap.finding",
            kind: "alert",
            severity: Some(f.severity),
            start: None,
        };
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("@timestamp", &rfc3339_ns(h.ts_ns))?;
        m.serialize_entry("destination", &Endpoint::of(&h.server))?;
        m.serialize_entry("event", &event)?;
        if let Some(id) = &f.rule {
            m.serialize_entry("rule", &Id { id })?;
        }
        m.serialize_entry("source", &Endpoint::of(&h.client))?;
        let tls = Tls {
            client: Client {
                server_name: h.server_name.as_deref(),
            },
        };
        m.serialize_entry("tls", &tls)?;
        let tm = Trustmap {
            chain_source: h.chain_source.map(|c| c.as_str()),
            evaluated_at: rfc3339_s(self.instant),
            finding: FindingJson(f),
        };
        m.serialize_entry("trustmap", &tm)?;
        m.end()
    }
}

/// The `trustmap.side_signal` event: an OCSP request, CA certificate or CRL fetch over plaintext
/// HTTP, with the CAs it names (`evidence` "ocsp" for OCSP, "aia" for CA certificate and CRL
/// fetches).
pub struct SideSignalEvent<'a> {
    pub s: &'a analyzer::sidesignal::SideSignal,
    pub e: &'a enrich::SignalEnrichment,
}

impl Serialize for SideSignalEvent<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        #[derive(Serialize)]
        struct Url<'a> {
            full: &'a str,
        }
        #[derive(Serialize)]
        struct Request {
            method: &'static str,
        }
        #[derive(Serialize)]
        struct Http {
            request: Request,
        }
        #[derive(Serialize)]
        struct CertIdJson {
            hash_algorithm: &'static str,
            issuer_key_hash: String,
            issuer_name_hash: String,
            serial: String,
        }
        #[derive(Serialize)]
        struct Ca<'a> {
            matched_by: &'static str,
            removals: &'a [String],
            #[serde(skip_serializing_if = "Option::is_none")]
            serial: Option<&'a str>,
            sha256: Option<Hex32<'a>>,
            stores: &'a [String],
            subject: &'a str,
        }
        #[derive(Serialize)]
        struct Signal<'a> {
            cas: Vec<Ca<'a>>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            cert_ids: Vec<CertIdJson>,
            evidence: &'static str,
            kind: &'static str,
            unmatched: usize,
        }
        #[derive(Serialize)]
        struct Trustmap<'a> {
            side_signal: Signal<'a>,
        }
        let sig = self.s;
        let none: &[String] = &[];
        let cas = self
            .e
            .matches
            .iter()
            .map(|m| Ca {
                matched_by: m.matched_by.as_str(),
                removals: m.ca.as_ref().map_or(none, |c| c.removals.as_slice()),
                serial: m.serial.as_deref(),
                sha256: m.ca.as_ref().map(|c| Hex32(&c.sha256)),
                stores: m.ca.as_ref().map_or(none, |c| c.stores.as_slice()),
                subject: &m.subject,
            })
            .collect();
        let cert_ids = sig
            .cert_ids
            .iter()
            .map(|c| CertIdJson {
                hash_algorithm: c.hash_algorithm,
                issuer_key_hash: hex::encode(&c.issuer_key_hash),
                issuer_name_hash: hex::encode(&c.issuer_name_hash),
                serial: hex::encode(&c.serial),
            })
            .collect();
        let event = EventMeta {
            dataset: "trustmap.side_signal",
            kind: "event",
            severity: None,
            start: None,
        };
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("@timestamp", &rfc3339_ns(sig.ts_ns))?;
        m.serialize_entry("destination", &Endpoint::of(&sig.server))?;
        m.serialize_entry("event", &event)?;
        m.serialize_entry(
            "http",
            &Http {
                request: Request { method: sig.method },
            },
        )?;
        m.serialize_entry(
            "network",
            &Network {
                community_id: crate::community_id::v1(
                    sig.client,
                    sig.server,
                    crate::community_id::TCP,
                ),
                protocol: "http",
                transport: "tcp",
            },
        )?;
        m.serialize_entry("source", &Endpoint::of(&sig.client))?;
        m.serialize_entry(
            "trustmap",
            &Trustmap {
                side_signal: Signal {
                    cas,
                    cert_ids,
                    evidence: sig.kind.evidence(),
                    kind: sig.kind.as_str(),
                    unmatched: self.e.unmatched,
                },
            },
        )?;
        m.serialize_entry("url", &Url { full: &sig.url })?;
        m.end()
    }
}
