//! X.509: each unique certificate is parsed once (cache keyed by its DER bytes) into a [`CertInfo`].

use std::collections::HashSet;
use std::sync::Arc;

/// The parsed fields trustmap keeps for one certificate (DESIGN.md §4, `trustmap.x509`).
/// Names are rendered RFC 4514 style, most specific RDN first ("CN=..., O=..., C=...").
#[derive(Debug, Clone, Default)]
pub struct CertInfo {
    pub sha256: [u8; 32],
    /// DER bytes (kept for chain building and signature checks).
    pub der: Vec<u8>,
    /// Set when x509-parser rejected the certificate; the other fields are then mostly empty.
    pub parse_error: Option<String>,
    /// Lowercase hex, no separators.
    pub serial: String,
    pub subject: String,
    pub issuer: String,
    /// DER of the subject and issuer Name (for exact matching against CertificateRequest CAs).
    pub subject_der: Vec<u8>,
    pub issuer_der: Vec<u8>,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// DNS names, IPs, emails, URIs from subjectAltName, as text.
    pub alternative_names: Vec<String>,
    /// "RSA", "EC", "Ed25519", "DSA", or the OID.
    pub public_key_algorithm: String,
    pub public_key_size: Option<u32>,
    pub public_key_curve: Option<String>,
    /// e.g. "sha256WithRSAEncryption", or the OID.
    pub signature_algorithm: String,
    /// SHA-256 of the DER SubjectPublicKeyInfo (`None` when the certificate did not parse that
    /// far).
    pub spki_sha256: Option<[u8; 32]>,
    /// Lowercase hex.
    pub ski: Option<String>,
    pub aki: Option<String>,
    pub is_ca: bool,
    pub path_len: Option<u32>,
    /// Extended key usage OIDs/names ("serverAuth", "clientAuth", ...).
    pub eku: Vec<String>,
    /// Embedded SCT timestamps (Unix milliseconds), in extension order.
    pub sct_timestamps: Vec<u64>,
    pub self_issued: bool,
    /// URIs where this certificate's issuer can be fetched (AIA caIssuers) and where its
    /// issuer's CRL is published (CRL distribution points), for the side signals: a client
    /// fetching one names the CA it is validating.
    pub ca_issuers_urls: Vec<String>,
    pub crl_urls: Vec<String>,
}

/// The hashes of a certificate's subject Name (DER) and subjectPublicKey bits, SHA-1 (what
/// OCSP clients send) and SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OcspHashes {
    pub name_sha1: [u8; 20],
    pub key_sha1: [u8; 20],
    pub name_sha256: [u8; 32],
    pub key_sha256: [u8; 32],
}

/// What an OCSP request's CertID names as its issuer (RFC 6960 §4.1.1) when the certificate
/// `der` is the issuer; `None` when it does not parse. Computed on demand (side signals are rare,
/// certificate parses are not).
pub fn ocsp_hashes(der: &[u8]) -> Option<OcspHashes> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let name = cert.tbs_certificate.subject.as_raw();
    let key = &cert.tbs_certificate.subject_pki.subject_public_key.data;
    Some(OcspHashes {
        name_sha1: sha1(name),
        key_sha1: sha1(key),
        name_sha256: self::sha256(name),
        key_sha256: self::sha256(key),
    })
}

/// SHA-1, for OCSP CertID matching and the Community ID flow hash only.
pub fn sha1(data: &[u8]) -> [u8; 20] {
    let d = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, data);
    <[u8; 20]>::try_from(d.as_ref()).unwrap_or_default()
}

/// URIs kept per certificate from AIA caIssuers and CRL distribution points.
const MAX_CERT_URLS: usize = 8;

/// Distinct certificates held by a [`CertCache`] before it is emptied (a few KiB each parsed).
pub const MAX_CACHED_CERTS: usize = 100_000;

/// A cached certificate, hashed and compared by its DER bytes, so a lookup by `&[u8]` needs
/// neither a SHA-256 nor a second copy of the DER as key.
#[derive(Debug)]
struct ByDer(Arc<CertInfo>);

impl std::hash::Hash for ByDer {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        // Must hash as the `[u8]` it borrows as.
        self.0.der.as_slice().hash(h)
    }
}

impl PartialEq for ByDer {
    fn eq(&self, o: &Self) -> bool {
        self.0.der == o.0.der
    }
}

impl Eq for ByDer {}

impl std::borrow::Borrow<[u8]> for ByDer {
    fn borrow(&self) -> &[u8] {
        &self.0.der
    }
}

/// Parses each distinct certificate once. One per worker, or shared behind a lock (read-mostly).
///
/// Keyed by the DER bytes themselves: a certificate seen again costs one keyed (ahash, randomly
/// seeded) hash of its bytes and one full compare, not a SHA-256 (the SHA-256 is computed once,
/// on the first sighting). Bounded: at [`MAX_CACHED_CERTS`] the cache is emptied (counted in
/// `resets`); a certificate seen again after that is parsed and reported as new again.
#[derive(Debug, Default)]
pub struct CertCache {
    set: HashSet<ByDer, ahash::RandomState>,
    pub hits: u64,
    pub misses: u64,
    /// Times the cache was emptied at [`MAX_CACHED_CERTS`].
    pub resets: u64,
}

impl CertCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the parsed certificate and whether it was new to this cache.
    pub fn get_or_parse(&mut self, der: &[u8]) -> (Arc<CertInfo>, bool) {
        if let Some(c) = self.set.get(der) {
            self.hits += 1;
            return (c.0.clone(), false);
        }
        self.misses += 1;
        if self.set.len() >= MAX_CACHED_CERTS {
            self.set.clear();
            self.resets += 1;
        }
        let info = Arc::new(parse(der, sha256(der)));
        self.set.insert(ByDer(info.clone()));
        (info, true)
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

/// Whether `der` is well-formed DER as a tree: one element spanning exactly its bytes, and every
/// constructed element's children exactly filling it (definite lengths only). Any certificate
/// has this shape, whatever its contents; bytes of another protocol spliced into one (a tunnel's
/// headers read as part of a TLS record) almost never keep it. Bounded: at most
/// [`MAX_DER_DEPTH`] levels and [`MAX_DER_ELEMENTS`] elements are walked.
pub fn is_well_formed_der(der: &[u8]) -> bool {
    let mut elements = 0usize;
    matches!(der_elements(der, 0, &mut elements), Some(()))
}

/// Nesting walked in [`is_well_formed_der`].
pub const MAX_DER_DEPTH: usize = 32;
/// Elements walked in [`is_well_formed_der`] (a certificate has a few hundred).
pub const MAX_DER_ELEMENTS: usize = 100_000;

/// Walks the elements that exactly fill `b`.
fn der_elements(mut b: &[u8], depth: usize, elements: &mut usize) -> Option<()> {
    const CONSTRUCTED: u8 = 0x20;
    const HIGH_TAG: u8 = 0x1f;
    const LONG_FORM: u8 = 0x80;
    const MAX_LEN_BYTES: usize = 4;
    if depth > MAX_DER_DEPTH {
        return None;
    }
    while !b.is_empty() {
        *elements += 1;
        if *elements > MAX_DER_ELEMENTS {
            return None;
        }
        let tag = *b.first()?;
        let mut at = 1;
        if tag & HIGH_TAG == HIGH_TAG {
            // High tag number: base-128 bytes, the last without the top bit (at most 4).
            let n = b.get(1..)?.iter().take(4).position(|x| x & 0x80 == 0)? + 1;
            at += n;
        }
        let first = *b.get(at)?;
        at += 1;
        let len = if first < LONG_FORM {
            usize::from(first)
        } else {
            let n = usize::from(first & !LONG_FORM);
            if n == 0 || n > MAX_LEN_BYTES {
                return None; // indefinite (BER) or absurd
            }
            let bytes = b.get(at..at + n)?;
            at += n;
            bytes.iter().fold(0usize, |a, &x| (a << 8) | usize::from(x))
        };
        let value = b.get(at..at.checked_add(len)?)?;
        if tag & CONSTRUCTED != 0 {
            der_elements(value, depth + 1, elements)?;
        }
        b = b.get(at + len..)?;
        if depth == 0 && !b.is_empty() {
            return None; // one element at the top
        }
    }
    Some(())
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    let d = sha2::Sha256::digest(data);
    let mut out = [0u8; 32];
    out.copy_from_slice(&d);
    out
}

/// Upper bound on embedded SCTs kept per certificate (real certificates carry 2-5).
pub const MAX_SCTS: usize = 32;
/// Upper bound on subjectAltName entries kept (CDN certificates carry a few hundred at most).
pub const MAX_ALT_NAMES: usize = 1024;

/// Parses one DER certificate. Never fails: a bad certificate keeps its fingerprint and the error.
///
/// Names: RFC 4514 style, RDNs in *reverse* DER order (most specific first: "CN=a, O=b, C=US"),
/// multi-valued RDNs joined with "+", attribute types by short name (CN, O, OU, C, L, ST, ...) or
/// dotted OID, values as text (non-string values as `#hex`). `,`, `+`, `"`, `\`, `<`, `>`, `;`
/// inside values are backslash-escaped so the rendering is unambiguous.
pub fn parse(der: &[u8], sha256: [u8; 32]) -> CertInfo {
    use x509_parser::prelude::*;
    use x509_parser::public_key::PublicKey;
    let mut info = CertInfo {
        sha256,
        der: der.to_vec(),
        ..Default::default()
    };
    let cert = match X509Certificate::from_der(der) {
        Ok((_, c)) => c,
        Err(e) => {
            info.parse_error = Some(e.to_string());
            return info;
        }
    };
    let tbs = &cert.tbs_certificate;
    info.serial = hex::encode(tbs.raw_serial());
    // Strip leading zero octets the DER INTEGER may carry for sign (keep at least one digit).
    let trimmed = info.serial.trim_start_matches("00");
    info.serial = if trimmed.is_empty() {
        "0".into()
    } else {
        trimmed.to_string()
    };
    info.subject = name_to_string(&tbs.subject);
    info.issuer = name_to_string(&tbs.issuer);
    info.subject_der = tbs.subject.as_raw().to_vec();
    info.issuer_der = tbs.issuer.as_raw().to_vec();
    info.not_before = tbs.validity.not_before.timestamp();
    info.not_after = tbs.validity.not_after.timestamp();
    info.self_issued = info.subject_der == info.issuer_der;

    let spki = &tbs.subject_pki;
    info.spki_sha256 = Some(self::sha256(spki.raw));
    let alg = &spki.algorithm.algorithm;
    info.public_key_algorithm = key_alg_name(&alg.to_id_string());
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => info.public_key_size = Some(rsa_bits(rsa.modulus)),
        Ok(PublicKey::EC(pt)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| curve_name(&o.to_id_string()));
            if let Some(c) = &curve {
                info.public_key_size = curve_bits(c).or(u32::try_from(pt.key_size()).ok());
            }
            info.public_key_curve = curve;
        }
        Ok(PublicKey::DSA(_)) => {}
        _ => {}
    }
    if info.public_key_algorithm == "Ed25519" {
        info.public_key_size = Some(256);
    } else if info.public_key_algorithm == "Ed448" {
        info.public_key_size = Some(456);
    }
    info.signature_algorithm = sig_alg_name(&cert.signature_algorithm.algorithm.to_id_string());

    for ext in tbs.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                for gn in san.general_names.iter().take(MAX_ALT_NAMES) {
                    match gn {
                        GeneralName::DNSName(s) => info.alternative_names.push(s.to_string()),
                        GeneralName::RFC822Name(s) => info.alternative_names.push(s.to_string()),
                        GeneralName::URI(s) => info.alternative_names.push(s.to_string()),
                        GeneralName::IPAddress(b) => {
                            if let Some(ip) = ip_from_bytes(b) {
                                info.alternative_names.push(ip);
                            }
                        }
                        _ => {}
                    }
                }
            }
            ParsedExtension::SubjectKeyIdentifier(k) => info.ski = Some(hex::encode(k.0)),
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                info.aki = a.key_identifier.as_ref().map(|k| hex::encode(k.0))
            }
            ParsedExtension::BasicConstraints(bc) => {
                info.is_ca = bc.ca;
                info.path_len = bc.path_len_constraint;
            }
            ParsedExtension::ExtendedKeyUsage(eku) => {
                let flags = [
                    (eku.any, "any"),
                    (eku.server_auth, "serverAuth"),
                    (eku.client_auth, "clientAuth"),
                    (eku.code_signing, "codeSigning"),
                    (eku.email_protection, "emailProtection"),
                    (eku.time_stamping, "timeStamping"),
                    (eku.ocsp_signing, "OCSPSigning"),
                ];
                for (set, name) in flags {
                    if set {
                        info.eku.push(name.to_string());
                    }
                }
                for o in eku.other.iter().take(64) {
                    info.eku.push(o.to_id_string());
                }
            }
            ParsedExtension::AuthorityInfoAccess(aia) => {
                let ca_issuers = x509_parser::oid_registry::OID_PKIX_ACCESS_DESCRIPTOR_CA_ISSUERS;
                for ad in aia
                    .accessdescs
                    .iter()
                    .filter(|a| a.access_method == ca_issuers)
                {
                    if let GeneralName::URI(u) = ad.access_location {
                        if info.ca_issuers_urls.len() < MAX_CERT_URLS {
                            info.ca_issuers_urls.push(u.to_string());
                        }
                    }
                }
            }
            ParsedExtension::CRLDistributionPoints(points) => {
                let names = points
                    .points
                    .iter()
                    .filter_map(|p| match &p.distribution_point {
                        Some(x509_parser::extensions::DistributionPointName::FullName(n)) => {
                            Some(n)
                        }
                        _ => None,
                    });
                for gn in names.flatten() {
                    if let GeneralName::URI(u) = gn {
                        if info.crl_urls.len() < MAX_CERT_URLS {
                            info.crl_urls.push(u.to_string());
                        }
                    }
                }
            }
            ParsedExtension::SCT(list) => {
                for sct in list.iter().take(MAX_SCTS) {
                    info.sct_timestamps.push(sct.timestamp);
                }
            }
            _ => {}
        }
    }
    info
}

/// RSA modulus size in bits, ignoring leading zero octets (x509-parser's `key_size` only drops one).
fn rsa_bits(modulus: &[u8]) -> u32 {
    let m = match modulus.iter().position(|&b| b != 0) {
        Some(i) => modulus.get(i..).unwrap_or(&[]),
        None => return 0,
    };
    let Some(&first) = m.first() else { return 0 };
    let bits = (m.len() as u64) * 8 - u64::from(first.leading_zeros());
    u32::try_from(bits).unwrap_or(u32::MAX)
}

fn ip_from_bytes(b: &[u8]) -> Option<String> {
    if let Ok(a) = <[u8; 4]>::try_from(b) {
        return Some(std::net::Ipv4Addr::from(a).to_string());
    }
    if let Ok(a) = <[u8; 16]>::try_from(b) {
        return Some(std::net::Ipv6Addr::from(a).to_string());
    }
    None
}

fn key_alg_name(oid: &str) -> String {
    match oid {
        "1.2.840.113549.1.1.1" => "RSA",
        "1.2.840.113549.1.1.10" => "RSA-PSS",
        "1.2.840.10045.2.1" => "EC",
        "1.3.101.112" => "Ed25519",
        "1.3.101.113" => "Ed448",
        "1.3.101.110" => "X25519",
        "1.2.840.10040.4.1" => "DSA",
        // FIPS 204 (ML-DSA) and FIPS 205 (SLH-DSA, SHA2-128s as the common one).
        "2.16.840.1.101.3.4.3.17" => "ML-DSA-44",
        "2.16.840.1.101.3.4.3.18" => "ML-DSA-65",
        "2.16.840.1.101.3.4.3.19" => "ML-DSA-87",
        "2.16.840.1.101.3.4.3.20" => "SLH-DSA-SHA2-128s",
        o => return o.to_string(),
    }
    .to_string()
}

fn curve_name(oid: &str) -> String {
    match oid {
        "1.2.840.10045.3.1.7" => "prime256v1",
        "1.3.132.0.34" => "secp384r1",
        "1.3.132.0.35" => "secp521r1",
        "1.3.132.0.10" => "secp256k1",
        "1.2.840.10045.3.1.1" => "prime192v1",
        "1.3.132.0.33" => "secp224r1",
        "1.3.36.3.3.2.8.1.1.7" => "brainpoolP256r1",
        "1.3.36.3.3.2.8.1.1.11" => "brainpoolP384r1",
        "1.3.36.3.3.2.8.1.1.13" => "brainpoolP512r1",
        o => return o.to_string(),
    }
    .to_string()
}

fn curve_bits(name: &str) -> Option<u32> {
    Some(match name {
        "prime256v1" | "secp256k1" | "brainpoolP256r1" => 256,
        "secp384r1" | "brainpoolP384r1" => 384,
        "secp521r1" => 521,
        "prime192v1" => 192,
        "secp224r1" => 224,
        "brainpoolP512r1" => 512,
        _ => return None,
    })
}

/// Signature algorithm names as OpenSSL prints them (so findings and tests can compare with it).
fn sig_alg_name(oid: &str) -> String {
    match oid {
        "1.2.840.113549.1.1.2" => "md2WithRSAEncryption",
        "1.2.840.113549.1.1.4" => "md5WithRSAEncryption",
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
        "1.2.840.113549.1.1.10" => "rsassaPss",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        "1.2.840.113549.1.1.14" => "sha224WithRSAEncryption",
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1",
        "1.2.840.10045.4.3.1" => "ecdsa-with-SHA224",
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.3.101.112" => "ED25519",
        "1.3.101.113" => "ED448",
        "1.2.840.10040.4.3" => "dsaWithSHA1",
        "2.16.840.1.101.3.4.3.2" => "dsa_with_SHA256",
        "2.16.840.1.101.3.4.3.17" => "ML-DSA-44",
        "2.16.840.1.101.3.4.3.18" => "ML-DSA-65",
        "2.16.840.1.101.3.4.3.19" => "ML-DSA-87",
        o => return o.to_string(),
    }
    .to_string()
}

fn attr_short_name(oid: &str) -> String {
    match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.5" => "serialNumber",
        "2.5.4.97" => "organizationIdentifier",
        "2.5.4.15" => "businessCategory",
        "2.5.4.17" => "postalCode",
        "2.5.4.4" => "SN",
        "2.5.4.42" => "GN",
        "2.5.4.12" => "title",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "1.3.6.1.4.1.311.60.2.1.3" => "jurisdictionC",
        "1.3.6.1.4.1.311.60.2.1.2" => "jurisdictionST",
        "1.3.6.1.4.1.311.60.2.1.1" => "jurisdictionL",
        o => return o.to_string(),
    }
    .to_string()
}

fn escape_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A DER-encoded Name (e.g. a CertificateRequest CA name) rendered like certificate subjects;
/// `None` when the bytes are not a Name.
pub fn der_name_to_string(der: &[u8]) -> Option<String> {
    use x509_parser::prelude::FromDer;
    let (_, name) = x509_parser::x509::X509Name::from_der(der).ok()?;
    Some(name_to_string(&name))
}

/// See [`parse`] for the rendering rules.
pub fn name_to_string(name: &x509_parser::x509::X509Name<'_>) -> String {
    let mut rdns: Vec<String> = Vec::new();
    for rdn in name.iter() {
        let parts: Vec<String> = rdn
            .iter()
            .map(|atv| {
                let t = attr_short_name(&atv.attr_type().to_id_string());
                let v = match atv.as_str() {
                    Ok(s) => escape_value(s),
                    Err(_) => match std::str::from_utf8(atv.attr_value().data) {
                        Ok(s) => escape_value(s),
                        Err(_) => format!("#{}", hex::encode(atv.attr_value().data)),
                    },
                };
                format!("{t}={v}")
            })
            .collect();
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    rdns.join(", ")
}
