//! Segments: which part of the network an endpoint belongs to, from `[[segment]]` rules (CIDRs
//! and SNI patterns), the address class (internal / external), and two *heuristic* labels
//! (probable appliance, probable third-party SaaS). Pure functions over simple inputs.
//!
//! Heuristics are labelled as such in every output (`Heuristic::kind` starts with
//! `heuristic.`): they guide an inventory review, they are not facts about the endpoint.

use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Longest server-name pattern (DNS names are at most 253 bytes).
pub const MAX_PATTERN_LEN: usize = 253;
/// Leaf validity above which a private/self-signed certificate looks hand-made (an appliance's
/// factory certificate): the CA/B Forum limit of 2018-2020, far above any automated issuance.
pub const APPLIANCE_VALIDITY_DAYS: u64 = 825;
/// RSA (and DSA) keys below this many bits are weak.
pub const MIN_RSA_BITS: u32 = 2048;
/// EC keys below this many bits are weak.
pub const MIN_EC_BITS: u32 = 224;

/// An IPv4 or IPv6 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Cidr {
    /// Network address (host bits zero).
    pub addr: IpAddr,
    /// Prefix length.
    pub len: u8,
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`) is treated as the IPv4 address: dual-stack sockets
/// report v4 peers that way.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn mask_v4(a: Ipv4Addr, len: u8) -> u32 {
    let m = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    };
    u32::from(a) & m
}

fn mask_v6(a: Ipv6Addr, len: u8) -> u128 {
    let m = if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    };
    u128::from(a) & m
}

impl FromStr for Cidr {
    type Err = String;
    /// `10.40.0.0/16`, `fd00::/8`, or a bare address (a /32 or /128). Host bits must be zero:
    /// `10.40.1.0/16` is almost always a typo for `/24`, so it is an error, not a silent mask.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr = canonical(
            a.parse::<IpAddr>()
                .map_err(|_| format!("invalid address {a:?} in {s:?}"))?,
        );
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            None => max,
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| format!("invalid prefix length {l:?} in {s:?} (0..={max})"))?,
        };
        let host_bits_set = match addr {
            IpAddr::V4(v4) => mask_v4(v4, len) != u32::from(v4),
            IpAddr::V6(v6) => mask_v6(v6, len) != u128::from(v6),
        };
        if host_bits_set {
            return Err(format!("{s:?} has host bits set beyond /{len}"));
        }
        Ok(Cidr { addr, len })
    }
}

impl Cidr {
    /// Whether `ip` lies in this prefix (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => mask_v4(a, self.len) == u32::from(n),
            (IpAddr::V6(n), IpAddr::V6(a)) => mask_v6(a, self.len) == u128::from(n),
            _ => false,
        }
    }
}

/// A server-name pattern. `*.example.com` matches any name *below* example.com, at any depth
/// (`a.example.com`, `a.b.example.com`) but not `example.com` itself: segment rules describe
/// services, not certificates, so one label is too narrow. A `*` inside a label (`api-*.x.com`)
/// matches within that label only. Comparison ignores case and a trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamePattern {
    /// Normalised pattern text.
    pub pattern: String,
}

fn norm_name(s: &str) -> String {
    s.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// Glob within one label: `*` matches any run of characters (no dots, as labels have none).
fn label_match(p: &str, n: &str) -> bool {
    match p.split_once('*') {
        None => p == n,
        Some((head, rest)) => {
            if !n.starts_with(head) {
                return false;
            }
            let n = &n[head.len()..];
            if rest.is_empty() {
                return true;
            }
            // Bounded: labels are at most 63 bytes, and each `*` tries each position once.
            (0..=n.len()).any(|i| n.is_char_boundary(i) && label_match(rest, &n[i..]))
        }
    }
}

impl NamePattern {
    /// Validate a pattern.
    pub fn new(s: &str) -> Result<Self, String> {
        let p = norm_name(s);
        if p.is_empty() || p.len() > MAX_PATTERN_LEN {
            return Err(format!(
                "server name pattern {s:?} must be 1..={MAX_PATTERN_LEN} bytes"
            ));
        }
        if p.split('.').any(str::is_empty) {
            return Err(format!("server name pattern {s:?} has an empty label"));
        }
        if p.split('.').any(|l| l.matches('*').count() > 1) {
            return Err(format!(
                "server name pattern {s:?}: at most one '*' per label"
            ));
        }
        if !p
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'*'))
        {
            return Err(format!(
                "server name pattern {s:?} has characters outside A-Z 0-9 - _ . *"
            ));
        }
        Ok(NamePattern { pattern: p })
    }

    /// Whether `name` (an SNI) matches.
    pub fn matches(&self, name: &str) -> bool {
        let n = norm_name(name);
        if n.is_empty() || n.len() > MAX_PATTERN_LEN {
            return false;
        }
        if let Some(suffix) = self.pattern.strip_prefix("*.") {
            // any depth below the suffix; the suffix labels may themselves hold globs
            let pl: Vec<&str> = suffix.split('.').collect();
            let nl: Vec<&str> = n.split('.').collect();
            if nl.len() <= pl.len() {
                return false;
            }
            let tail = &nl[nl.len() - pl.len()..];
            return pl.iter().zip(tail).all(|(p, l)| label_match(p, l))
                && nl[..nl.len() - pl.len()].iter().all(|l| !l.is_empty());
        }
        let pl: Vec<&str> = self.pattern.split('.').collect();
        let nl: Vec<&str> = n.split('.').collect();
        pl.len() == nl.len() && pl.iter().zip(&nl).all(|(p, l)| label_match(p, l))
    }
}

/// A `[[segment]]` rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Segment {
    /// Segment name, reported in the inventory.
    pub name: String,
    /// Address prefixes.
    pub cidrs: Vec<Cidr>,
    /// SNI patterns.
    pub server_names: Vec<NamePattern>,
    /// Overrides the address-class decision for matching endpoints (e.g. a DMZ range that is
    /// routable but ours, or a partner VPN range that is private but not ours).
    pub internal: Option<bool>,
    /// File the rule came from.
    #[serde(skip)]
    pub origin: String,
}

impl Segment {
    /// Whether an endpoint (address and optional SNI) belongs to this segment: any CIDR or any
    /// pattern matching is enough.
    pub fn matches(&self, ip: IpAddr, server_name: Option<&str>) -> bool {
        self.cidrs.iter().any(|c| c.contains(ip))
            || server_name.is_some_and(|n| self.server_names.iter().any(|p| p.matches(n)))
    }
}

/// Names of the segments an endpoint belongs to, in rule order.
pub fn segments_for<'a>(
    segments: &'a [Segment],
    ip: IpAddr,
    server_name: Option<&str>,
) -> Vec<&'a str> {
    segments
        .iter()
        .filter(|s| s.matches(ip, server_name))
        .map(|s| s.name.as_str())
        .collect()
}

/// Why an address was classified as internal or external.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressClass {
    /// RFC 1918 IPv4 private ranges.
    Rfc1918,
    /// IPv6 unique local addresses (fc00::/7, RFC 4193).
    UniqueLocal,
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 169.254.0.0/16, fe80::/10.
    LinkLocal,
    /// Everything else.
    Public,
}

/// The built-in address class of `ip`.
pub fn address_class(ip: IpAddr) -> AddressClass {
    match canonical(ip) {
        IpAddr::V4(v4) if v4.is_private() => AddressClass::Rfc1918,
        IpAddr::V4(v4) if v4.is_loopback() => AddressClass::Loopback,
        IpAddr::V4(v4) if v4.is_link_local() => AddressClass::LinkLocal,
        IpAddr::V6(v6) if v6.is_loopback() => AddressClass::Loopback,
        IpAddr::V6(v6) if (v6.segments()[0] & 0xfe00) == 0xfc00 => AddressClass::UniqueLocal,
        IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80 => AddressClass::LinkLocal,
        _ => AddressClass::Public,
    }
}

/// Internal or external, and on what basis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Locality {
    /// true for internal.
    pub internal: bool,
    /// `segment:<name>` when a segment's `internal` decided, else the address class name.
    pub basis: String,
}

/// Internal/external: the first matching segment with `internal` set decides; otherwise RFC 1918,
/// ULA, loopback and link-local are internal and everything else external.
pub fn locality(segments: &[Segment], ip: IpAddr, server_name: Option<&str>) -> Locality {
    if let Some(s) = segments
        .iter()
        .find(|s| s.internal.is_some() && s.matches(ip, server_name))
    {
        return Locality {
            internal: s.internal == Some(true),
            basis: format!("segment:{}", s.name),
        };
    }
    let c = address_class(ip);
    let basis = match c {
        AddressClass::Rfc1918 => "rfc1918",
        AddressClass::UniqueLocal => "unique_local",
        AddressClass::Loopback => "loopback",
        AddressClass::LinkLocal => "link_local",
        AddressClass::Public => "public",
    };
    Locality {
        internal: c != AddressClass::Public,
        basis: basis.into(),
    }
}

/// What kind of anchor the endpoint's chain reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnchorKind {
    /// A root of a public program (Mozilla, Chrome, ...).
    Public,
    /// An anchor given with `--anchors` (internal CA).
    Private,
    /// The leaf is self-signed.
    SelfSigned,
    /// No anchor found or chain not visible.
    Unknown,
}

/// Simple facts about one endpoint for the heuristics.
#[derive(Debug, Clone, Default)]
pub struct EndpointFacts<'a> {
    /// Server address.
    pub ip: Option<IpAddr>,
    /// SNI the client sent.
    pub server_name: Option<&'a str>,
    /// Negotiated version as trustmap prints it: `ssl3`/`3.0`, `1.0`, `1.1`, `1.2`, `1.3`
    /// (`tls1.0`-style also accepted).
    pub tls_version: Option<&'a str>,
    /// Anchor kind of the preferred path.
    pub anchor: Option<AnchorKind>,
    /// Leaf notBefore and notAfter, Unix seconds.
    pub leaf_validity: Option<(i64, i64)>,
    /// Leaf signature algorithm uses SHA-1 (or MD5).
    pub leaf_sig_sha1: bool,
    /// Leaf public key algorithm (`rsa`, `dsa`, `ec`, `ed25519`, ...) and size in bits.
    pub leaf_key: Option<(&'a str, u32)>,
}

/// One heuristic label with its reasons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heuristic {
    /// `heuristic.probable_appliance` or `heuristic.probable_saas`.
    pub kind: &'static str,
    /// Human-readable signals that triggered it.
    pub reasons: Vec<String>,
}

/// Label for probable embedded appliances.
pub const HEURISTIC_APPLIANCE: &str = "heuristic.probable_appliance";
/// Label for probable third-party SaaS endpoints.
pub const HEURISTIC_SAAS: &str = "heuristic.probable_saas";

fn legacy_version(v: &str) -> bool {
    let v = v.trim().to_ascii_lowercase();
    let v = v
        .trim_start_matches("tlsv")
        .trim_start_matches("tls")
        .trim_start_matches('v')
        .trim();
    matches!(v, "ssl3" | "sslv3" | "ssl3.0" | "3.0" | "1.0" | "1" | "1.1")
}

/// Weak-key test shared with the analyzer's `key.weak` idea: RSA/DSA < 2048, EC < 224 bits.
pub fn weak_key(alg: &str, bits: u32) -> bool {
    let a = alg.to_ascii_lowercase();
    if a.contains("rsa") || (a.contains("dsa") && !a.contains("ecdsa")) {
        bits < MIN_RSA_BITS
    } else if a.starts_with("ec") || a.contains("ecdsa") {
        bits < MIN_EC_BITS
    } else {
        false
    }
}

/// Heuristic labels for one endpoint. Appliance: a private or self-signed anchor with at least
/// one legacy signal (leaf validity > 825 days, SSL 3.0/TLS 1.0/1.1, SHA-1 signature, small
/// key), or two legacy signals whatever the anchor. SaaS: an external address, a public
/// anchor and an SNI.
pub fn heuristics(segments: &[Segment], f: &EndpointFacts<'_>) -> Vec<Heuristic> {
    let mut out = Vec::new();
    let mut signals = Vec::new();
    if let Some((nb, na)) = f.leaf_validity {
        let days = (na.saturating_sub(nb)).max(0) as u64 / 86_400;
        if days > APPLIANCE_VALIDITY_DAYS {
            signals.push(format!(
                "leaf validity {days} days > {APPLIANCE_VALIDITY_DAYS}"
            ));
        }
    }
    if let Some(v) = f.tls_version.filter(|v| legacy_version(v)) {
        signals.push(format!("legacy protocol version {v}"));
    }
    if f.leaf_sig_sha1 {
        signals.push("SHA-1 signature on the leaf".into());
    }
    if let Some((alg, bits)) = f.leaf_key.filter(|(a, b)| weak_key(a, *b)) {
        signals.push(format!("small {alg} key ({bits} bits)"));
    }
    let private = matches!(f.anchor, Some(AnchorKind::Private | AnchorKind::SelfSigned));
    if (private && !signals.is_empty()) || signals.len() >= 2 {
        let mut reasons = Vec::with_capacity(signals.len() + 1);
        if private {
            reasons.push(
                if f.anchor == Some(AnchorKind::SelfSigned) {
                    "self-signed leaf"
                } else {
                    "private anchor"
                }
                .to_string(),
            );
        }
        reasons.extend(signals);
        out.push(Heuristic {
            kind: HEURISTIC_APPLIANCE,
            reasons,
        });
    }
    if let (Some(ip), Some(sni), Some(AnchorKind::Public)) = (f.ip, f.server_name, f.anchor) {
        let loc = locality(segments, ip, Some(sni));
        if !loc.internal && !sni.is_empty() {
            out.push(Heuristic {
                kind: HEURISTIC_SAAS,
                reasons: vec![
                    format!("external address ({})", loc.basis),
                    "public anchor".into(),
                    format!("SNI {sni}"),
                ],
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_v4_v6() {
        let c: Cidr = "10.40.0.0/16".parse().unwrap();
        assert!(c.contains(ip("10.40.255.1")));
        assert!(c.contains(ip("::ffff:10.40.0.9")));
        assert!(!c.contains(ip("10.41.0.1")));
        assert!(!c.contains(ip("fd00::1")));
        let c6: Cidr = "fd00:1234::/32".parse().unwrap();
        assert!(c6.contains(ip("fd00:1234:ffff::1")));
        assert!(!c6.contains(ip("fd00:1235::1")));
        let host: Cidr = "192.0.2.7".parse().unwrap();
        assert_eq!(host.len, 32);
        assert!(host.contains(ip("192.0.2.7")) && !host.contains(ip("192.0.2.8")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.1")));
        for bad in [
            "10.40.1.0/16",
            "10.0.0.0/33",
            "fd00::/129",
            "10.0.0/8",
            "x/8",
            "10.0.0.0/-1",
            "::1/ 8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn sni_wildcards() {
        let p = NamePattern::new("*.Salesforce.com.").unwrap();
        assert!(p.matches("eu1.salesforce.com"));
        assert!(p.matches("a.b.SALESFORCE.com"));
        assert!(!p.matches("salesforce.com"));
        assert!(!p.matches("evilsalesforce.com"));
        assert!(!p.matches("salesforce.com.evil.net"));
        let q = NamePattern::new("api-*.corp.example").unwrap();
        assert!(q.matches("api-eu.corp.example"));
        assert!(q.matches("api-.corp.example"));
        assert!(!q.matches("web.corp.example"));
        assert!(!q.matches("x.api-eu.corp.example"));
        let exact = NamePattern::new("billing.corp.example").unwrap();
        assert!(exact.matches("BILLING.corp.example."));
        assert!(!exact.matches("a.billing.corp.example"));
        for bad in ["", "a..b", "**.x.com", "a b.com", &"a".repeat(300)] {
            assert!(NamePattern::new(bad).is_err(), "{bad}");
        }
    }

    fn seg(name: &str, cidrs: &[&str], names: &[&str], internal: Option<bool>) -> Segment {
        Segment {
            name: name.into(),
            cidrs: cidrs.iter().map(|c| c.parse().unwrap()).collect(),
            server_names: names.iter().map(|n| NamePattern::new(n).unwrap()).collect(),
            internal,
            origin: "t".into(),
        }
    }

    #[test]
    fn segments_and_locality() {
        let segs = vec![
            seg("embedded", &["10.40.0.0/16"], &[], None),
            seg(
                "saas:salesforce",
                &[],
                &["*.salesforce.com", "*.force.com"],
                None,
            ),
            seg("dmz", &["198.51.100.0/24"], &[], Some(true)),
        ];
        assert_eq!(segments_for(&segs, ip("10.40.1.2"), None), vec!["embedded"]);
        assert_eq!(
            segments_for(&segs, ip("203.0.113.5"), Some("na1.force.com")),
            vec!["saas:salesforce"]
        );
        assert!(segments_for(&segs, ip("203.0.113.5"), Some("force.com.example")).is_empty());
        assert_eq!(
            locality(&segs, ip("198.51.100.9"), None),
            Locality {
                internal: true,
                basis: "segment:dmz".into()
            }
        );
        assert!(locality(&segs, ip("10.1.2.3"), None).internal);
        assert!(locality(&segs, ip("fd12::1"), None).internal);
        assert!(locality(&segs, ip("fe80::1"), None).internal);
        assert!(locality(&segs, ip("127.0.0.1"), None).internal);
        assert!(locality(&segs, ip("169.254.1.1"), None).internal);
        assert!(!locality(&segs, ip("8.8.8.8"), None).internal);
        assert!(!locality(&segs, ip("2001:db8::1"), None).internal);
    }

    #[test]
    fn heuristic_labels() {
        let appliance = EndpointFacts {
            ip: Some(ip("10.40.3.3")),
            anchor: Some(AnchorKind::SelfSigned),
            leaf_validity: Some((0, 3650 * 86_400)),
            tls_version: Some("1.0"),
            ..Default::default()
        };
        let h = heuristics(&[], &appliance);
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].kind, HEURISTIC_APPLIANCE);
        assert_eq!(h[0].reasons.len(), 3);
        // one legacy signal under a public anchor is not enough
        let public_old = EndpointFacts {
            anchor: Some(AnchorKind::Public),
            tls_version: Some("1.1"),
            ..Default::default()
        };
        assert!(heuristics(&[], &public_old).is_empty());
        let weak = EndpointFacts {
            leaf_sig_sha1: true,
            leaf_key: Some(("rsa", 1024)),
            ..Default::default()
        };
        assert_eq!(heuristics(&[], &weak)[0].kind, HEURISTIC_APPLIANCE);
        let saas = EndpointFacts {
            ip: Some(ip("203.0.113.10")),
            server_name: Some("acme.my.salesforce.com"),
            anchor: Some(AnchorKind::Public),
            tls_version: Some("1.3"),
            ..Default::default()
        };
        let h = heuristics(&[], &saas);
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].kind, HEURISTIC_SAAS);
        let internal = EndpointFacts {
            ip: Some(ip("10.0.0.1")),
            ..saas.clone()
        };
        assert!(heuristics(&[], &internal).is_empty());
        assert!(
            weak_key("ec", 192)
                && !weak_key("ec", 256)
                && !weak_key("ed25519", 256)
                && !weak_key("rsa", 4096)
        );
    }
}
