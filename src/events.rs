//! NDJSON event building (DESIGN.md §4, the event contract). Pure functions from analyzer records to
//! `serde_json::Value`; the sink only writes lines.

use analyzer::{Alert, CertInfo, CertRef, Handshake, Outcome, Protocol, Side};
use serde_json::{json, Map, Value};

use crate::time::{rfc3339_ns, rfc3339_s};

/// "1.2"-style version name and the ECS `tls.version_protocol`.
pub fn version_name(v: u16) -> (String, &'static str) {
    match v {
        0x0002 => ("2.0".into(), "ssl"),
        0x0300 => ("3.0".into(), "ssl"),
        0x0301 => ("1.0".into(), "tls"),
        0x0302 => ("1.1".into(), "tls"),
        0x0303 => ("1.2".into(), "tls"),
        0x0304 => ("1.3".into(), "tls"),
        0x7f00..=0x7fff => (format!("1.3-draft{}", v & 0xff), "tls"),
        0x7e01..=0x7e0f => ("1.3-experiment".into(), "tls"),
        0xfeff => ("1.0".into(), "dtls"),
        0xfefd => ("1.2".into(), "dtls"),
        0xfefc => ("1.3".into(), "dtls"),
        other => (format!("unknown-0x{other:04x}"), "tls"),
    }
}

/// IANA cipher suite name, or the hex code when unknown.
pub fn cipher_name(id: u16) -> String {
    match tls_parser::TlsCipherSuite::from_id(id) {
        Some(cs) => cs.name.to_string(),
        None => format!("0x{id:04x}"),
    }
}

/// TLS alert description names (RFC 8446 §6 plus the older ones).
pub fn alert_name(code: u8) -> &'static str {
    match code {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        21 => "decryption_failed",
        22 => "record_overflow",
        30 => "decompression_failure",
        40 => "handshake_failure",
        41 => "no_certificate",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        60 => "export_restriction",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        100 => "no_renegotiation",
        109 => "missing_extension",
        110 => "unsupported_extension",
        111 => "certificate_unobtainable",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        114 => "bad_certificate_hash_value",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => "unknown",
    }
}

fn hexs(b: &[u8]) -> String {
    hex::encode(b)
}

fn side_name(s: Side) -> &'static str {
    match s {
        Side::Client => "client",
        Side::Server => "server",
    }
}

/// One entry of `tls.*.chain`: the per-certificate summary in wire order.
fn chain_entry(c: &CertRef) -> Value {
    let mut m = Map::new();
    m.insert("sha256".into(), json!(hexs(&c.sha256)));
    match &c.info.parse_error {
        Some(e) => {
            m.insert("parse_error".into(), json!(e));
        }
        None => {
            m.insert("subject".into(), json!(c.info.subject));
            m.insert("issuer".into(), json!(c.info.issuer));
        }
    }
    Value::Object(m)
}

/// The ECS `x509.*` object for one certificate.
pub fn ecs_x509(ci: &CertInfo) -> Value {
    let mut m = Map::new();
    if ci.parse_error.is_some() {
        return Value::Object(m);
    }
    m.insert("serial_number".into(), json!(ci.serial));
    m.insert("subject".into(), json!({"distinguished_name": ci.subject}));
    m.insert("issuer".into(), json!({"distinguished_name": ci.issuer}));
    m.insert("not_before".into(), json!(rfc3339_s(ci.not_before)));
    m.insert("not_after".into(), json!(rfc3339_s(ci.not_after)));
    if !ci.alternative_names.is_empty() {
        m.insert("alternative_names".into(), json!(ci.alternative_names));
    }
    m.insert(
        "public_key_algorithm".into(),
        json!(ci.public_key_algorithm),
    );
    if let Some(sz) = ci.public_key_size {
        m.insert("public_key_size".into(), json!(sz));
    }
    if let Some(c) = &ci.public_key_curve {
        m.insert("public_key_curve".into(), json!(c));
    }
    m.insert("signature_algorithm".into(), json!(ci.signature_algorithm));
    Value::Object(m)
}

/// `tls.server` / `tls.client` certificate fields: our ordered `chain` plus the ECS leaf fields.
fn side_certs(m: &mut Map<String, Value>, chain: &[CertRef]) {
    m.insert(
        "chain".into(),
        Value::Array(chain.iter().map(chain_entry).collect()),
    );
    if let Some(leaf) = chain.first() {
        m.insert("hash".into(), json!({"sha256": hexs(&leaf.sha256)}));
        let ci = &leaf.info;
        if ci.parse_error.is_none() {
            m.insert("x509".into(), ecs_x509(ci));
            m.insert("not_before".into(), json!(rfc3339_s(ci.not_before)));
            m.insert("not_after".into(), json!(rfc3339_s(ci.not_after)));
            m.insert("subject".into(), json!(ci.subject));
            m.insert("issuer".into(), json!(ci.issuer));
        }
    }
}

fn endpoint(ep: &(std::net::IpAddr, u16)) -> Value {
    json!({"ip": ep.0.to_string(), "port": ep.1})
}

fn alert_json(a: &Alert) -> Value {
    json!({"from": side_name(a.from), "level": if a.level == 2 {"fatal"} else {"warning"},
           "code": a.code, "name": alert_name(a.code)})
}

/// Extra per-handshake facts computed downstream of the analyzer (chain building, findings).
#[derive(Debug, Default, Clone)]
pub struct Enrichment {
    /// `trustmap.anchor` (preferred path) and `trustmap.anchors` (every anchor reached).
    pub anchor: Option<Value>,
    pub anchors: Vec<Value>,
    /// `trustmap.client_anchor`: the anchor of an mTLS client chain.
    pub client_anchor: Option<Value>,
    /// Structural problems chain building found (`incomplete`, `misordered`, ...).
    pub chain_issues: Vec<Value>,
    /// Segment names from the rules (CIDR / SNI).
    pub segments: Vec<String>,
    /// `{"internal": bool, "basis": "..."}`.
    pub locality: Option<Value>,
    /// Heuristic labels, each `{"kind": "heuristic.…", "reasons": [...]}`.
    pub heuristics: Vec<Value>,
}

/// The `trustmap.tls` event of one handshake.
pub fn tls_event(h: &Handshake, extra: &Enrichment) -> Value {
    let transport = match h.transport {
        capture::Transport::Tcp => "tcp",
        capture::Transport::Udp => "udp",
    };
    let proto = match h.protocol {
        Protocol::Tls => "tls",
        Protocol::Dtls => "dtls",
        Protocol::Sslv2 => "ssl",
    };
    let mut tls = Map::new();
    if let Some(v) = h.version {
        let (name, vp) = version_name(v);
        tls.insert("version".into(), json!(name));
        tls.insert("version_protocol".into(), json!(vp));
    }
    if let Some(c) = h.cipher {
        tls.insert("cipher".into(), json!(cipher_name(c)));
    }
    tls.insert("established".into(), json!(h.established));
    tls.insert("resumed".into(), json!(h.resumed));
    if let Some(a) = h.alpn.first() {
        tls.insert("next_protocol".into(), json!(a));
    }
    let mut client = Map::new();
    if let Some(sni) = &h.server_name {
        client.insert("server_name".into(), json!(sni));
    }
    if let Some(j) = &h.ja3 {
        client.insert("ja3".into(), json!(j));
    }
    if let Some(j) = &h.ja4 {
        client.insert("ja4".into(), json!(j));
    }
    if !h.alpn.is_empty() {
        client.insert("alpn".into(), json!(h.alpn));
    }
    if !h.supported_versions.is_empty() {
        let names: Vec<String> = h
            .supported_versions
            .iter()
            .map(|v| version_name(*v).0)
            .collect();
        client.insert("supported_versions".into(), json!(names));
    }
    if let Some(chain) = &h.client_chain {
        side_certs(&mut client, chain);
    }
    let mut server = Map::new();
    if let Some(chain) = &h.server_chain {
        side_certs(&mut server, chain);
    }
    tls.insert("client".into(), Value::Object(client));
    tls.insert("server".into(), Value::Object(server));

    let mut tm = Map::new();
    tm.insert("chain_visible".into(), json!(h.chain_visible));
    tm.insert("starttls".into(), json!(h.starttls));
    tm.insert(
        "alert".into(),
        h.alert.as_ref().map(alert_json).unwrap_or(Value::Null),
    );
    tm.insert("outcome".into(), outcome_json(&h.outcome));
    if let Some(cas) = &h.cert_request_cas {
        tm.insert("certificate_request".into(), json!({"ca_names": cas.len()}));
    }
    tm.insert("anchor".into(), extra.anchor.clone().unwrap_or(Value::Null));
    if !extra.anchors.is_empty() {
        tm.insert("anchors".into(), Value::Array(extra.anchors.clone()));
    }
    if let Some(a) = &extra.client_anchor {
        tm.insert("client_anchor".into(), a.clone());
    }
    if !extra.chain_issues.is_empty() {
        tm.insert(
            "chain_issues".into(),
            Value::Array(extra.chain_issues.clone()),
        );
    }
    if !extra.segments.is_empty() {
        tm.insert("segments".into(), json!(extra.segments));
    }
    if let Some(l) = &extra.locality {
        tm.insert("locality".into(), l.clone());
    }
    if !extra.heuristics.is_empty() {
        tm.insert("heuristics".into(), Value::Array(extra.heuristics.clone()));
    }
    json!({
        "@timestamp": rfc3339_ns(h.ts_ns),
        "event": {"dataset": "trustmap.tls", "kind": "event", "start": rfc3339_ns(h.start_ts_ns)},
        "source": endpoint(&h.client),
        "destination": endpoint(&h.server),
        "network": {"transport": transport, "protocol": proto},
        "tls": Value::Object(tls),
        "trustmap": Value::Object(tm),
    })
}

fn outcome_json(o: &Outcome) -> Value {
    match o {
        Outcome::Accepted => json!({"result": "accepted"}),
        Outcome::RejectedAlert { code } => {
            json!({"result": "rejected", "evidence": "alert", "code": code, "name": alert_name(*code)})
        }
        Outcome::RejectedClose => json!({"result": "rejected", "evidence": "close"}),
        Outcome::Unknown => json!({"result": "unknown"}),
    }
}

/// The `trustmap.x509` event of a certificate seen for the first time in this run.
pub fn x509_event(ci: &CertInfo, ts_ns: u64) -> Value {
    let mut tm = Map::new();
    tm.insert("sha256".into(), json!(hexs(&ci.sha256)));
    if let Some(e) = &ci.parse_error {
        tm.insert("parse_error".into(), json!(e));
    } else {
        tm.insert("spki_sha256".into(), json!(ci.spki_sha256));
        tm.insert("ski".into(), json!(ci.ski));
        tm.insert("aki".into(), json!(ci.aki));
        tm.insert("is_ca".into(), json!(ci.is_ca));
        if let Some(p) = ci.path_len {
            tm.insert("path_len".into(), json!(p));
        }
        if !ci.eku.is_empty() {
            tm.insert("eku".into(), json!(ci.eku));
        }
        let scts: Vec<String> = ci
            .sct_timestamps
            .iter()
            .map(|ms| rfc3339_ns(ms.saturating_mul(1_000_000)))
            .collect();
        tm.insert("sct_timestamps".into(), json!(scts));
        tm.insert("self_issued".into(), json!(ci.self_issued));
    }
    json!({
        "@timestamp": rfc3339_ns(ts_ns),
        "event": {"dataset": "trustmap.x509", "kind": "event"},
        "x509": ecs_x509(ci),
        "related": {"hash": [hexs(&ci.sha256)]},
        "trustmap": Value::Object(tm),
    })
}
