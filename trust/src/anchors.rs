//! Trust anchors: the built-in Mozilla (NSS certdata.txt) and Chrome (Chrome Root Store textproto)
//! stores, user anchors from PEM (`--anchors`), and "known CA" certificates that are not anchors
//! (e.g. roots of distrusted CAs that current stores no longer carry) so chain building can still
//! name them.
//!
//! The source files are embedded (`include_str!`) so the binary needs no data files at run time;
//! their provenance is in `analyzer/data/trust/*.SOURCE`. Parsing happens once, at start-up
//! ([`TrustStores::builtin`]); see the `builtin_parse_time` test for the cost.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use analyzer::cert::{parse, sha256, CertInfo};

/// NSS root store (Mozilla), byte-identical copy; see `data/trust/certdata.txt.SOURCE`.
pub const CERTDATA_TXT: &str = include_str!("../data/trust/certdata.txt");
/// Chrome Root Store v17 anchors and constraints.
pub const CHROME_TEXTPROTO: &str = include_str!("../data/trust/chrome_root_store.textproto");
/// PEMs of every Chrome Root Store v16 anchor (superset of v17).
pub const CHROME_CERTS: &str = include_str!("../data/trust/chrome_root_store.v16.certs");

/// (CKA_ISSUER, CKA_SERIAL_NUMBER) DER: joins NSS certificate and trust objects.
type IssuerSerial = (Vec<u8>, Vec<u8>);

/// Store names.
pub const STORE_MOZILLA: &str = "mozilla";
pub const STORE_CHROME: &str = "chrome";

/// Cap on certificates read from one user PEM file or directory (hostile or mistaken input).
pub const MAX_USER_ANCHORS: usize = 10_000;
/// Cap on one PEM file's size.
pub const MAX_PEM_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// One Chrome Root Store constraint set: the anchor is trusted if *any* set holds; inside a set
/// *all* present fields must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChromeConstraint {
    pub sct_not_after_sec: Option<i64>,
    pub sct_all_after_sec: Option<i64>,
    pub min_version: Option<String>,
    pub max_version_exclusive: Option<String>,
}

/// A certificate the trust stores know: an anchor (non-empty `stores`) and/or a known CA (`tags`).
#[derive(Debug, Clone)]
pub struct TrustEntry {
    pub cert: Arc<CertInfo>,
    /// Stores that trust it as an anchor for server authentication ("mozilla", "chrome", user names).
    pub stores: Vec<String>,
    /// Tags of "known CA, not an anchor" registrations (e.g. a distrust event id).
    pub tags: Vec<String>,
    /// NSS `CKA_NSS_SERVER_DISTRUST_AFTER` (Unix seconds): leaves with notBefore after it are distrusted.
    pub nss_server_distrust_after: Option<i64>,
    /// Chrome constraint sets (empty = unconstrained).
    pub chrome_constraints: Vec<ChromeConstraint>,
}

impl TrustEntry {
    pub fn is_anchor(&self) -> bool {
        !self.stores.is_empty()
    }

    /// Does Chrome trust a leaf with these embedded SCT timestamps (Unix ms) through this anchor,
    /// for a Chrome of `chrome_version` (None = the newest, i.e. version constraints ignored
    /// except `max_version_exclusive`, which then fails)? True when unconstrained or when any
    /// constraint set holds (all its present fields).
    pub fn chrome_trusts(&self, sct_timestamps_ms: &[u64], chrome_version: Option<u32>) -> bool {
        if !self.stores.iter().any(|s| s == STORE_CHROME) {
            return false;
        }
        if self.chrome_constraints.is_empty() {
            return true;
        }
        let secs: Vec<i64> = sct_timestamps_ms
            .iter()
            .map(|ms| i64::try_from(ms / 1000).unwrap_or(i64::MAX))
            .collect();
        self.chrome_constraints.iter().any(|c| {
            let ver = |v: &Option<String>| v.as_deref().and_then(|s| s.parse::<u32>().ok());
            c.sct_not_after_sec
                .is_none_or(|lim| secs.iter().any(|&t| t <= lim))
                && c.sct_all_after_sec
                    .is_none_or(|lim| !secs.is_empty() && secs.iter().all(|&t| t > lim))
                && ver(&c.min_version).is_none_or(|m| chrome_version.is_none_or(|v| v >= m))
                && ver(&c.max_version_exclusive)
                    .is_none_or(|m| chrome_version.is_some_and(|v| v < m))
        })
    }
}

/// All anchors and known CAs, indexed by certificate SHA-256 and by subject DER.
#[derive(Debug, Default, Clone)]
pub struct TrustStores {
    entries: Vec<TrustEntry>,
    by_sha: HashMap<[u8; 32], usize>,
    by_subject: HashMap<Vec<u8>, Vec<usize>>,
}

impl TrustStores {
    /// No anchors at all.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Mozilla + Chrome, from the embedded data.
    pub fn builtin() -> Self {
        let mut s = Self::empty();
        s.load_certdata(CERTDATA_TXT);
        s.load_chrome(CHROME_TEXTPROTO, CHROME_CERTS);
        s
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[TrustEntry] {
        &self.entries
    }

    /// The entry for this certificate SHA-256, if known.
    pub fn get(&self, sha: &[u8; 32]) -> Option<&TrustEntry> {
        self.by_sha.get(sha).and_then(|&i| self.entries.get(i))
    }

    /// Entries whose subject DER equals `subject_der` (issuer candidates).
    pub fn by_subject<'a>(
        &'a self,
        subject_der: &[u8],
    ) -> impl Iterator<Item = &'a TrustEntry> + 'a {
        self.by_subject
            .get(subject_der)
            .into_iter()
            .flatten()
            .filter_map(|&i| self.entries.get(i))
    }

    /// Anchors only (entries with at least one store).
    pub fn anchors(&self) -> impl Iterator<Item = &TrustEntry> {
        self.entries.iter().filter(|e| e.is_anchor())
    }

    fn entry_mut(&mut self, der: &[u8]) -> Option<&mut TrustEntry> {
        let sha = sha256(der);
        let idx = match self.by_sha.get(&sha) {
            Some(&i) => i,
            None => {
                let info = parse(der, sha);
                if info.parse_error.is_some() {
                    return None;
                }
                let i = self.entries.len();
                self.by_subject
                    .entry(info.subject_der.clone())
                    .or_default()
                    .push(i);
                self.by_sha.insert(sha, i);
                self.entries.push(TrustEntry {
                    cert: Arc::new(info),
                    stores: Vec::new(),
                    tags: Vec::new(),
                    nss_server_distrust_after: None,
                    chrome_constraints: Vec::new(),
                });
                i
            }
        };
        self.entries.get_mut(idx)
    }

    /// Adds `der` as an anchor of `store`. Returns false if the certificate does not parse.
    pub fn add_anchor(&mut self, der: &[u8], store: &str) -> bool {
        match self.entry_mut(der) {
            Some(e) => {
                if !e.stores.iter().any(|s| s == store) {
                    e.stores.push(store.to_string());
                }
                true
            }
            None => false,
        }
    }

    /// Registers a CA certificate that is *not* an anchor (e.g. a distrusted root no current store
    /// carries), so a chain that stops at an intermediate can still be followed up to it.
    /// Returns false if the certificate does not parse.
    pub fn add_known_ca(&mut self, der: &[u8], tag: &str) -> bool {
        match self.entry_mut(der) {
            Some(e) => {
                if !e.tags.iter().any(|s| s == tag) {
                    e.tags.push(tag.to_string());
                }
                true
            }
            None => false,
        }
    }

    /// Registers every certificate of a PEM buffer as a known CA tagged `tag` (see
    /// [`add_known_ca`](Self::add_known_ca)); returns how many parsed. A certificate that is
    /// already an anchor stays one and gains the tag. The built-in distrust history goes in with
    /// `for (event, _role, pem) in rules::distrust_certs() { stores.add_known_ca_pem(pem.as_bytes(), event); }`.
    pub fn add_known_ca_pem(&mut self, pem: &[u8], tag: &str) -> usize {
        let mut n = 0;
        for der in pem_ders(pem).into_iter().take(MAX_USER_ANCHORS) {
            if self.add_known_ca(&der, tag) {
                n += 1;
            }
        }
        n
    }

    /// Entries carrying `tag` (known CAs registered under it, anchors or not).
    pub fn tagged<'a>(&'a self, tag: &'a str) -> impl Iterator<Item = &'a TrustEntry> + 'a {
        self.entries
            .iter()
            .filter(move |e| e.tags.iter().any(|t| t == tag))
    }

    /// Adds every certificate of a PEM buffer as an anchor of `store`; returns how many parsed.
    pub fn add_pem_anchors(&mut self, pem: &[u8], store: &str) -> usize {
        let mut n = 0;
        for der in pem_ders(pem).into_iter().take(MAX_USER_ANCHORS) {
            if self.add_anchor(&der, store) {
                n += 1;
            }
        }
        n
    }

    /// `--anchors PATH`: a PEM file, or a directory whose regular files (not recursive) are read
    /// as PEM. Returns the number of anchors added.
    pub fn add_anchors_path(&mut self, path: &Path, store: &str) -> std::io::Result<usize> {
        let mut files = Vec::new();
        if path.is_dir() {
            for ent in std::fs::read_dir(path)? {
                let p = ent?.path();
                if p.is_file() {
                    files.push(p);
                }
            }
            files.sort();
        } else {
            files.push(path.to_path_buf());
        }
        let mut n = 0;
        for f in files.into_iter().take(MAX_USER_ANCHORS) {
            if std::fs::metadata(&f)?.len() > MAX_PEM_FILE_BYTES {
                continue;
            }
            let data = std::fs::read(&f)?;
            n += self.add_pem_anchors(&data, store);
            if n >= MAX_USER_ANCHORS {
                break;
            }
        }
        Ok(n)
    }

    /// NSS certdata.txt: CKO_CERTIFICATE objects joined with CKO_NSS_TRUST objects by
    /// (issuer, serial); only `CKA_TRUST_SERVER_AUTH CKT_NSS_TRUSTED_DELEGATOR` become anchors.
    /// `CKA_NSS_SERVER_DISTRUST_AFTER` may sit on either object (Izenpe carries it on the trust one).
    pub fn load_certdata(&mut self, text: &str) -> usize {
        struct Obj {
            class: String,
            attrs: HashMap<String, Vec<u8>>,
            server_auth: Option<String>,
        }
        let mut objs: Vec<Obj> = Vec::new();
        let mut cur: Option<Obj> = None;
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            let line = line.trim_end();
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let mut parts = line.splitn(3, ' ');
            let (Some(name), Some(ty)) = (parts.next(), parts.next()) else {
                continue;
            };
            let rest = parts.next().unwrap_or("");
            if name == "CKA_CLASS" {
                if let Some(o) = cur.take() {
                    objs.push(o);
                }
                cur = Some(Obj {
                    class: rest.to_string(),
                    attrs: HashMap::new(),
                    server_auth: None,
                });
                continue;
            }
            let Some(o) = cur.as_mut() else { continue };
            if ty == "MULTILINE_OCTAL" {
                let mut bytes = Vec::new();
                for l in lines.by_ref() {
                    if l.trim() == "END" {
                        break;
                    }
                    for oct in l.trim().split('\\').filter(|s| !s.is_empty()) {
                        if let Ok(b) = u8::from_str_radix(oct, 8) {
                            bytes.push(b);
                        }
                    }
                }
                o.attrs.insert(name.to_string(), bytes);
            } else if name == "CKA_TRUST_SERVER_AUTH" {
                o.server_auth = Some(rest.to_string());
            }
        }
        if let Some(o) = cur.take() {
            objs.push(o);
        }
        let key = |o: &Obj| -> Option<IssuerSerial> {
            Some((
                o.attrs.get("CKA_ISSUER")?.clone(),
                o.attrs.get("CKA_SERIAL_NUMBER")?.clone(),
            ))
        };
        let mut trust: HashMap<IssuerSerial, (bool, Option<i64>)> = HashMap::new();
        for o in objs.iter().filter(|o| o.class == "CKO_NSS_TRUST") {
            if let Some(k) = key(o) {
                let delegator = o.server_auth.as_deref() == Some("CKT_NSS_TRUSTED_DELEGATOR");
                let da = o
                    .attrs
                    .get("CKA_NSS_SERVER_DISTRUST_AFTER")
                    .and_then(|v| utctime(v));
                trust.insert(k, (delegator, da));
            }
        }
        let mut n = 0;
        for o in objs.iter().filter(|o| o.class == "CKO_CERTIFICATE") {
            let (Some(k), Some(der)) = (key(o), o.attrs.get("CKA_VALUE")) else {
                continue;
            };
            let Some(&(true, trust_da)) = trust.get(&k) else {
                continue;
            };
            let cert_da = o
                .attrs
                .get("CKA_NSS_SERVER_DISTRUST_AFTER")
                .and_then(|v| utctime(v));
            if self.add_anchor(der, STORE_MOZILLA) {
                if let Some(e) = self.entry_mut(der) {
                    e.nss_server_distrust_after = cert_da.or(trust_da);
                }
                n += 1;
            }
        }
        n
    }

    /// Chrome Root Store textproto + the PEM file holding the DERs (matched by SHA-256).
    pub fn load_chrome(&mut self, textproto: &str, certs_pem: &str) -> usize {
        let mut ders: HashMap<[u8; 32], Vec<u8>> = HashMap::new();
        for der in pem_ders(certs_pem.as_bytes()) {
            ders.insert(sha256(&der), der);
        }
        let mut n = 0;
        for (sha_hex, constraints) in parse_chrome_textproto(textproto) {
            let Ok(bytes) = hex::decode(&sha_hex) else {
                continue;
            };
            let Ok(sha) = <[u8; 32]>::try_from(bytes.as_slice()) else {
                continue;
            };
            let Some(der) = ders.get(&sha) else { continue };
            if self.add_anchor(der, STORE_CHROME) {
                if let Some(e) = self.entry_mut(der) {
                    e.chrome_constraints = constraints;
                }
                n += 1;
            }
        }
        n
    }
}

/// (sha256_hex, constraints) per `trust_anchors { ... }` block. A small line-based reader: the
/// file is generated and regular (one field per line, `constraints: {` / `}` nesting).
pub fn parse_chrome_textproto(text: &str) -> Vec<(String, Vec<ChromeConstraint>)> {
    let mut out = Vec::new();
    let mut cur: Option<(String, Vec<ChromeConstraint>)> = None;
    let mut in_constraint: Option<ChromeConstraint> = None;
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('#') || l.is_empty() {
            continue;
        }
        if l.starts_with("trust_anchors") {
            cur = Some((String::new(), Vec::new()));
            continue;
        }
        if l.starts_with("constraints") {
            in_constraint = Some(ChromeConstraint::default());
            continue;
        }
        if l == "}" {
            if let Some(c) = in_constraint.take() {
                if let Some(a) = cur.as_mut() {
                    a.1.push(c);
                }
            } else if let Some(a) = cur.take() {
                out.push(a);
            }
            continue;
        }
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let v = v.trim().trim_matches('"').to_string();
        match (k.trim(), in_constraint.as_mut(), cur.as_mut()) {
            ("sha256_hex", None, Some(a)) => a.0 = v.to_ascii_lowercase(),
            ("sct_not_after_sec", Some(c), _) => c.sct_not_after_sec = v.parse().ok(),
            ("sct_all_after_sec", Some(c), _) => c.sct_all_after_sec = v.parse().ok(),
            ("min_version", Some(c), _) => c.min_version = Some(v),
            ("max_version_exclusive", Some(c), _) => c.max_version_exclusive = Some(v),
            _ => {}
        }
    }
    out
}

/// All certificate DERs in a PEM buffer (other PEM labels are skipped).
pub fn pem_ders(pem: &[u8]) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(pem)
        .take(MAX_USER_ANCHORS)
        .map_while(Result::ok)
        .filter(|p| p.label == "CERTIFICATE")
        .map(|p| p.contents)
        .collect()
}

/// "YYMMDDHHMMSSZ" (ASN.1 UTCTime as NSS stores distrust-after) to Unix seconds.
fn utctime(v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?;
    let d = s.strip_suffix('Z')?;
    if d.len() != 12 || !d.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |i: usize| -> Option<u32> { d.get(i..i + 2)?.parse().ok() };
    let yy = i64::from(n(0)?);
    let year = if yy >= 50 { 1900 + yy } else { 2000 + yy };
    let hms = |i| n(i).map(i64::from);
    Some(unix_from_ymdhms(
        year,
        n(2)?,
        n(4)?,
        hms(6)?,
        hms(8)?,
        hms(10)?,
    ))
}

/// Civil date and time to Unix seconds (UTC), on [`rules::time::unix_from_date`] (the one
/// civil-date conversion in the workspace).
pub fn unix_from_ymdhms(y: i64, m: u32, d: u32, hh: i64, mm: i64, ss: i64) -> i64 {
    rules::time::unix_from_date(y, m, d) + hh * 3600 + mm * 60 + ss
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_counts_and_constraints() {
        let t0 = std::time::Instant::now();
        let s = TrustStores::builtin();
        eprintln!("builtin trust stores parsed in {:?}", t0.elapsed());
        let moz = s
            .anchors()
            .filter(|e| e.stores.iter().any(|x| x == "mozilla"))
            .count();
        let chr = s
            .anchors()
            .filter(|e| e.stores.iter().any(|x| x == "chrome"))
            .count();
        assert_eq!(chr, 134, "README: Chrome Root Store v17 has 134 anchors");
        // NSS server-auth trusted delegators in builtins 2.86: count cross-checked with
        // `grep -c "CKA_TRUST_SERVER_AUTH CK_TRUST CKT_NSS_TRUSTED_DELEGATOR" certdata.txt`.
        let expected_moz = CERTDATA_TXT
            .matches("CKA_TRUST_SERVER_AUTH CK_TRUST CKT_NSS_TRUSTED_DELEGATOR")
            .count();
        assert_eq!(moz, expected_moz);
        assert!(moz > 100);
        // Entrust Root Certification Authority: distrust-after 2024-11-30T23:59:59Z in NSS, SCT
        // constraint in Chrome.
        let sha = hex::decode("73c176434f1bc6d5adf45b0e76e727287c8de57616c1e6e6141a2b2cbc7d8e4c")
            .unwrap();
        let e = s
            .get(&<[u8; 32]>::try_from(sha.as_slice()).unwrap())
            .unwrap();
        assert_eq!(e.nss_server_distrust_after, Some(1733011199));
        assert!(e
            .chrome_constraints
            .iter()
            .any(|c| c.sct_not_after_sec == Some(1731369599)
                && c.min_version.as_deref() == Some("131")));
    }

    #[test]
    fn chrome_entrust_constraints() {
        let s = TrustStores::builtin();
        let sha = hex::decode("73c176434f1bc6d5adf45b0e76e727287c8de57616c1e6e6141a2b2cbc7d8e4c")
            .unwrap();
        let e = s
            .get(&<[u8; 32]>::try_from(sha.as_slice()).unwrap())
            .unwrap();
        let before = 1_731_369_599_000u64; // exactly the SCT limit (inclusive)
        let after = 1_731_369_600_000u64;
        assert!(e.chrome_trusts(&[after, before], None));
        assert!(!e.chrome_trusts(&[after], None));
        assert!(!e.chrome_trusts(&[], Some(131)));
        assert!(e.chrome_trusts(&[after], Some(130)));
        // Unconstrained anchor (ISRG Root X1 by subject).
        let isrg = s
            .anchors()
            .find(|e| e.cert.subject.starts_with("CN=ISRG Root X1,"))
            .unwrap();
        assert!(isrg.chrome_constraints.is_empty());
        assert!(isrg.chrome_trusts(&[], None));
    }

    #[test]
    fn user_anchors_from_file_and_dir() {
        let dir = testkit::TempDir::new("anchors");
        std::fs::write(dir.join("bundle.pem"), CHROME_CERTS).unwrap();
        std::fs::write(dir.join("notes.txt"), "no certificates here").unwrap();
        let mut s = TrustStores::empty();
        assert_eq!(
            s.add_anchors_path(&dir.join("bundle.pem"), "corp").unwrap(),
            135
        );
        let mut d = TrustStores::empty();
        assert_eq!(d.add_anchors_path(dir.path(), "corp").unwrap(), 135);
        assert!(d.anchors().all(|e| e.stores == vec!["corp"]));
        assert!(d
            .add_anchors_path(&dir.join("missing.pem"), "corp")
            .is_err());
    }

    #[test]
    fn utctime_conversion() {
        assert_eq!(utctime(b"241130235959Z"), Some(1733011199));
        assert_eq!(utctime(b"991231235959Z"), Some(946684799));
        assert_eq!(utctime(b"bad"), None);
    }

    #[test]
    fn known_ca_is_not_anchor() {
        let der = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../analyzer/tests/data/x509/x509-generalizedtime.0.der"
        ))
        .unwrap();
        let mut s = TrustStores::empty();
        assert!(s.add_known_ca(&der, "test-event"));
        assert_eq!(s.anchors().count(), 0);
        assert_eq!(s.len(), 1);
        assert!(s.add_anchor(&der, "corp"));
        assert_eq!(s.anchors().count(), 1);
        assert_eq!(s.entries()[0].tags, vec!["test-event"]);
        assert!(!s.add_known_ca(b"junk", "x"));
    }

    #[test]
    fn known_ca_pem_keeps_anchor_status_and_adds_tags() {
        let mut s = TrustStores::builtin();
        let before = s.len();
        let anchors_before = s.anchors().count();
        // Two certificates: one already an anchor (from the Chrome bundle), one not.
        let isrg = s
            .anchors()
            .find(|e| e.cert.subject.starts_with("CN=ISRG Root X1,"))
            .map(|e| e.cert.der.clone())
            .unwrap();
        let other = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../analyzer/tests/data/x509/x509-generalizedtime.0.der"
        ))
        .unwrap();
        let pem = |der: &[u8]| {
            use std::fmt::Write;
            let b64 = base64_encode(der);
            let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
            for line in b64.as_bytes().chunks(64) {
                let _ = writeln!(out, "{}", std::str::from_utf8(line).unwrap());
            }
            out.push_str("-----END CERTIFICATE-----\n");
            out
        };
        let bundle = format!("{}{}# comment\n{}", pem(&isrg), pem(&other), pem(&isrg));
        assert_eq!(s.add_known_ca_pem(bundle.as_bytes(), "ev-1"), 3);
        assert_eq!(s.add_known_ca_pem(pem(&isrg).as_bytes(), "ev-2"), 1);
        assert_eq!(s.len(), before + 1, "one new entry; the anchor is shared");
        assert_eq!(s.anchors().count(), anchors_before, "no new anchor");
        let e = s.get(&sha256(&isrg)).unwrap();
        assert!(e.is_anchor());
        assert!(e.stores.contains(&STORE_MOZILLA.to_string()));
        assert_eq!(e.tags, vec!["ev-1", "ev-2"]);
        let o = s.get(&sha256(&other)).unwrap();
        assert!(!o.is_anchor());
        assert_eq!(o.tags, vec!["ev-1"]);
        assert_eq!(s.tagged("ev-1").count(), 2);
        assert_eq!(s.tagged("ev-2").count(), 1);
        assert_eq!(s.tagged("none").count(), 0);
    }

    /// Standard base64 with padding (test helper; the crate only decodes PEM).
    fn base64_encode(data: &[u8]) -> String {
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for ch in data.chunks(3) {
            let b = [ch[0], *ch.get(1).unwrap_or(&0), *ch.get(2).unwrap_or(&0)];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
                if i <= ch.len() {
                    out.push(T[((n >> shift) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}
