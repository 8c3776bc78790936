//! The bench PKI: 2 RSA roots, 4 RSA issuing CAs, and `N` Ed25519 leaves with realistic
//! extensions (SANs, AKI/SKI, CRL DP, AIA, policies, two embedded SCTs).
//!
//! Why these choices:
//! - CA keys are fixed RSA-2048 keys (`keys/`): ring cannot generate RSA, and PKCS#1 v1.5
//!   signatures are deterministic, so CA certificates are realistic in size and byte-identical
//!   for a given seed.
//! - Leaf keys are Ed25519 derived from the seed: Ed25519 signatures are deterministic (so the
//!   TLS transcripts are too) and work for both TLS 1.2 (ECDHE_ECDSA suites) and TLS 1.3.
//! - Extensions make leaves ~1 kB, so a server flight (leaf + issuing CA) spans 2 TCP segments,
//!   like real traffic, which exercises the analyzer's reassembly.

use crate::rng::Rng;
use rcgen::{
    BasicConstraints, CertificateParams, CrlDistributionPoint, CustomExtension, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls::pki_types::PrivatePkcs8KeyDer;

/// Fixed CA keys (PKCS#8 DER), see `keys/README.md`.
const ROOT_KEYS: [&[u8]; 2] = [
    include_bytes!("../keys/root1.pk8.der"),
    include_bytes!("../keys/root2.pk8.der"),
];
const ICA_KEYS: [&[u8]; 4] = [
    include_bytes!("../keys/ica1.pk8.der"),
    include_bytes!("../keys/ica2.pk8.der"),
    include_bytes!("../keys/ica3.pk8.der"),
    include_bytes!("../keys/ica4.pk8.der"),
];

/// Every tenth chain also carries its root (a common misconfiguration seen in the wild).
const ROOT_SENT_EVERY: usize = 10;

/// PKCS#8 v1 prefix for an Ed25519 private key (RFC 8410); the 32-byte seed follows.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// Errors are only ever configuration bugs here, so a string is enough.
pub type Result<T> = std::result::Result<T, String>;

fn e<E: std::fmt::Display>(err: E) -> String {
    err.to_string()
}

/// One CA: certificate DER plus what is needed to sign with it.
pub struct Ca {
    /// Certificate (DER).
    pub der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
    /// Index of the parent root (for issuing CAs).
    pub root: usize,
}

/// The CA hierarchy shared by all chains.
pub struct Hierarchy {
    /// Self-signed roots.
    pub roots: Vec<Ca>,
    /// Issuing CAs; `ica[i]` is signed by `roots[i % 2]`.
    pub icas: Vec<Ca>,
}

/// A server chain as sent in the Certificate message, plus the private key of its leaf.
pub struct Chain {
    /// Certificates in wire order (leaf first).
    pub certs: Vec<Vec<u8>>,
    /// Leaf private key, PKCS#8 DER (Ed25519).
    pub leaf_key: Vec<u8>,
    /// SNI the client sends; also the leaf's CN and first SAN.
    pub server_name: String,
}

fn rsa_key(der: &[u8]) -> Result<KeyPair> {
    KeyPair::from_pkcs8_der_and_sign_algo(
        &PrivatePkcs8KeyDer::from(der.to_vec()),
        &rcgen::PKCS_RSA_SHA256,
    )
    .map_err(e)
}

fn ca_params(cn: &str, serial: u64, path_len: Option<u8>, years: (i32, i32)) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    // X.520 requires PrintableString for countryName; rcgen's default is UTF8String.
    if let Ok(c) = rcgen::string::PrintableString::try_from("XX") {
        p.distinguished_name
            .push(DnType::CountryName, rcgen::DnValue::PrintableString(c));
    }
    p.distinguished_name
        .push(DnType::OrganizationName, "trustmap bench PKI");
    p.distinguished_name.push(DnType::CommonName, cn);
    p.serial_number = Some(SerialNumber::from_slice(&serial.to_be_bytes()));
    p.not_before = rcgen::date_time_ymd(years.0, 1, 1);
    p.not_after = rcgen::date_time_ymd(years.1, 12, 31);
    p.is_ca = IsCa::Ca(match path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    p
}

impl Hierarchy {
    /// Builds the fixed roots and issuing CAs (deterministic, no randomness involved).
    pub fn new() -> Result<Self> {
        let mut roots = Vec::new();
        for (i, k) in ROOT_KEYS.iter().enumerate() {
            let key = rsa_key(k)?;
            let params = ca_params(
                &format!("trustmap Bench Root R{}", i + 1),
                0x5100 + i as u64,
                None,
                (2015, 2040),
            );
            let cert = params.self_signed(&key).map_err(e)?;
            roots.push(Ca {
                der: cert.der().to_vec(),
                issuer: Issuer::new(params, key),
                root: i,
            });
        }
        let mut icas = Vec::new();
        for (i, k) in ICA_KEYS.iter().enumerate() {
            let key = rsa_key(k)?;
            let root = i % roots.len();
            let mut params = ca_params(
                &format!("trustmap Bench Issuing CA {}", i + 1),
                0x1C00 + i as u64,
                Some(0),
                (2022, 2032),
            );
            params.use_authority_key_identifier_extension = true;
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            params.crl_distribution_points = vec![CrlDistributionPoint {
                uris: vec![format!("http://crl.bench.example/root{}.crl", root + 1)],
            }];
            let parent = roots.get(root).ok_or("no root")?;
            let cert = params.signed_by(&key, &parent.issuer).map_err(e)?;
            icas.push(Ca {
                der: cert.der().to_vec(),
                issuer: Issuer::new(params, key),
                root,
            });
        }
        Ok(Hierarchy { roots, icas })
    }

    /// Builds chain number `idx` (deterministic in `seed` and `idx`).
    pub fn chain(&self, seed: u64, idx: usize) -> Result<Chain> {
        let mut rng = Rng::derive(seed ^ 0xC4A1_0000, idx as u64);
        let ica_i = idx % self.icas.len();
        let ica = self.icas.get(ica_i).ok_or("no ica")?;
        let mut seed32 = [0u8; 32];
        rng.fill(&mut seed32);
        let mut leaf_key = ED25519_PKCS8_PREFIX.to_vec();
        leaf_key.extend_from_slice(&seed32);
        let kp = KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(leaf_key.clone()),
            &rcgen::PKCS_ED25519,
        )
        .map_err(e)?;

        let server_name = format!("svc{idx}.bench.example");
        let mut sans = vec![server_name.clone(), format!("www.svc{idx}.bench.example")];
        for k in 0..rng.range(0, 10) {
            sans.push(format!(
                "alt{k}-{:x}.svc{idx}.bench.example",
                rng.below(1 << 24)
            ));
        }
        let mut p = CertificateParams::new(sans).map_err(e)?;
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, &server_name);
        let serial = rng.bytes(16);
        let mut serial = serial;
        if let Some(b) = serial.first_mut() {
            *b &= 0x7f; // positive INTEGER
        }
        p.serial_number = Some(SerialNumber::from_slice(&serial));
        // Valid at the default capture start (2026-03-01): issued Apr..Dec 2025 for one year,
        // so benchmarks measure the common path, not expiry findings.
        let year = 2025;
        let month = 4 + rng.below(9) as u8;
        let day = 1 + rng.below(28) as u8;
        p.not_before = rcgen::date_time_ymd(year, month, day);
        p.not_after = rcgen::date_time_ymd(year + 1, month, day);
        p.use_authority_key_identifier_extension = true;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        p.crl_distribution_points = vec![CrlDistributionPoint {
            uris: vec![format!("http://crl.bench.example/ica{}.crl", ica_i + 1)],
        }];
        p.custom_extensions = vec![
            aia_extension(ica_i),
            policies_extension(),
            sct_extension(&mut rng, year),
        ];
        let cert = p.signed_by(&kp, &ica.issuer).map_err(e)?;

        let mut certs = vec![cert.der().to_vec(), ica.der.clone()];
        if idx % ROOT_SENT_EVERY == ROOT_SENT_EVERY - 1 {
            certs.push(self.roots.get(ica.root).ok_or("no root")?.der.clone());
        }
        Ok(Chain {
            certs,
            leaf_key,
            server_name,
        })
    }
}

/// DER TLV with a definite length.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    let n = content.len();
    if n < 0x80 {
        v.push(n as u8);
    } else if n < 0x100 {
        v.extend_from_slice(&[0x81, n as u8]);
    } else {
        v.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    }
    v.extend_from_slice(content);
    v
}

/// Encodes an OBJECT IDENTIFIER's content octets.
fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut out = Vec::new();
    let (a, b) = (
        arcs.first().copied().unwrap_or(0),
        arcs.get(1).copied().unwrap_or(0),
    );
    let mut all = vec![a * 40 + b];
    all.extend_from_slice(arcs.get(2..).unwrap_or(&[]));
    for mut x in all {
        let mut tmp = vec![(x & 0x7f) as u8];
        x >>= 7;
        while x > 0 {
            tmp.push(0x80 | (x & 0x7f) as u8);
            x >>= 7;
        }
        tmp.reverse();
        out.extend_from_slice(&tmp);
    }
    tlv(0x06, &out)
}

/// Authority Information Access: caIssuers + OCSP URIs (RFC 5280 4.2.2.1).
fn aia_extension(ica: usize) -> CustomExtension {
    let ca_issuers = tlv(
        0x30,
        &[
            oid(&[1, 3, 6, 1, 5, 5, 7, 48, 2]),
            tlv(
                0x86,
                format!("http://ca.bench.example/ica{}.der", ica + 1).as_bytes(),
            ),
        ]
        .concat(),
    );
    let ocsp = tlv(
        0x30,
        &[
            oid(&[1, 3, 6, 1, 5, 5, 7, 48, 1]),
            tlv(0x86, b"http://ocsp.bench.example"),
        ]
        .concat(),
    );
    CustomExtension::from_oid_content(
        &[1, 3, 6, 1, 5, 5, 7, 1, 1],
        tlv(0x30, &[ocsp, ca_issuers].concat()),
    )
}

/// Certificate Policies: CA/B Forum domain-validated (2.23.140.1.2.1).
fn policies_extension() -> CustomExtension {
    let pol = tlv(0x30, &oid(&[2, 23, 140, 1, 2, 1]));
    CustomExtension::from_oid_content(&[2, 5, 29, 32], tlv(0x30, &pol))
}

/// Embedded SCT list (RFC 6962 3.3): two SCTs with plausible ECDSA-shaped signatures.
/// The signatures are random (no log signed them), the structure is exact.
fn sct_extension(rng: &mut Rng, year: i32) -> CustomExtension {
    let mut list = Vec::new();
    for log in 0..2u8 {
        let mut sct = vec![0u8]; // v1
        sct.extend_from_slice(&[0xB0 + log; 32]); // log id
        let ms: u64 = ((year as u64 - 1970) * 365 * 86_400 + rng.below(300 * 86_400)) * 1000;
        sct.extend_from_slice(&ms.to_be_bytes());
        sct.extend_from_slice(&[0, 0]); // no extensions
        sct.extend_from_slice(&[4, 3]); // sha256 / ecdsa
        let mut sig = vec![0x30, 0x44, 0x02, 0x20];
        sig.extend_from_slice(&rng.bytes(32));
        sig.extend_from_slice(&[0x02, 0x20]);
        sig.extend_from_slice(&rng.bytes(32));
        if let Some(b) = sig.get_mut(4) {
            *b &= 0x7f;
        }
        if let Some(b) = sig.get_mut(38) {
            *b &= 0x7f;
        }
        sct.extend_from_slice(&(sig.len() as u16).to_be_bytes());
        sct.extend_from_slice(&sig);
        list.extend_from_slice(&(sct.len() as u16).to_be_bytes());
        list.extend_from_slice(&sct);
    }
    let mut tls = (list.len() as u16).to_be_bytes().to_vec();
    tls.extend_from_slice(&list);
    CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 11129, 2, 4, 2], tlv(0x04, &tls))
}
