//! Policy findings on one presented chain (DESIGN.md §4): pure functions of the chain result, the
//! certificates, the SNI, the evaluation instant and a [`PolicyConfig`]. No clock, no I/O.
//!
//! Codes: `cert.expired`, `cert.not_yet_valid`, `cert.expiring`, `chain.incomplete`,
//! `chain.misordered`, `chain.unknown_anchor`, `cert.self_signed`, `key.weak`, `signature.weak`,
//! `cert.lifetime_exceeds_policy`, `tls.sni_mismatch`, `anchor.term_limit`.

use crate::chain::{ChainIssue, ChainResult, PathEnd};
use analyzer::cert::CertInfo;

/// Severity on the ECS `event.severity` scale used by trustmap (1 info .. 4 high).
pub const SEV_INFO: u8 = 1;
pub const SEV_LOW: u8 = 2;
pub const SEV_MEDIUM: u8 = 3;
pub const SEV_HIGH: u8 = 4;

/// Seconds per day (CA/B Forum: a day is 86,400 s; any excess counts as another day).
use rules::time::SECS_PER_DAY as DAY;

/// A CA named by a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingCa {
    pub sha256: [u8; 32],
    pub subject: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub code: &'static str,
    pub severity: u8,
    /// The certificate the finding is about.
    pub cert_sha256: [u8; 32],
    pub ca: Option<FindingCa>,
    pub message: String,
}

/// Tunables. The dated policies (the CA/B Forum lifetime schedule, Chrome's root term limit) are
/// not tunables: they come from `rules::policy`, the one copy of that data.
#[derive(Debug, Clone)]
pub struct PolicyConfig {
    /// `cert.expiring` fires when the leaf expires within this many seconds.
    pub expiring_within_secs: i64,
    pub min_rsa_bits: u32,
    pub min_ec_bits: u32,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            expiring_within_secs: 30 * DAY,
            min_rsa_bits: 2048,
            min_ec_bits: 256,
        }
    }
}

fn ca_of(c: &CertInfo) -> Option<FindingCa> {
    Some(FindingCa {
        sha256: c.sha256,
        subject: c.subject.clone(),
    })
}

fn f(
    code: &'static str,
    severity: u8,
    cert: &CertInfo,
    ca: Option<FindingCa>,
    message: String,
) -> Finding {
    Finding {
        code,
        severity,
        cert_sha256: cert.sha256,
        ca,
        message,
    }
}

/// Does `pattern` (a SAN dNSName or CN) cover `host`? Case-insensitive; a wildcard only as the whole
/// left-most label, matching exactly one non-empty label (RFC 6125 §6.4.3), never a public suffix
/// alone (at least two labels after the wildcard).
pub fn dns_name_matches(pattern: &str, host: &str) -> bool {
    let p = pattern.trim_end_matches('.').to_ascii_lowercase();
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    if let Some(rest) = p.strip_prefix("*.") {
        if rest.split('.').count() < 2 || rest.contains('*') {
            return false;
        }
        match h.split_once('.') {
            Some((first, hrest)) => !first.is_empty() && hrest == rest,
            None => false,
        }
    } else {
        !p.contains('*') && p == h
    }
}

fn cn_of(subject: &str) -> Option<&str> {
    subject.split(", ").find_map(|rdn| rdn.strip_prefix("CN="))
}

/// Does the leaf cover `sni`? SANs when present (IP SANs compared textually); CN only without SANs.
pub fn leaf_covers(leaf: &CertInfo, sni: &str) -> bool {
    if !leaf.alternative_names.is_empty() {
        return leaf
            .alternative_names
            .iter()
            .any(|n| dns_name_matches(n, sni) || n == sni);
    }
    cn_of(&leaf.subject).is_some_and(|cn| dns_name_matches(cn, sni))
}

/// MD2, MD5 or SHA-1 in a signature algorithm name.
pub fn weak_sig(alg: &str) -> bool {
    let a = alg.to_ascii_lowercase();
    a.contains("md5") || a.contains("md2") || a.contains("sha1") || a == "dsawithsha1"
}

/// All policy findings for one chain at `instant` (Unix s).
pub fn evaluate(
    chain: &ChainResult,
    presented: &[std::sync::Arc<CertInfo>],
    sni: Option<&str>,
    instant: i64,
    cfg: &PolicyConfig,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(leaf) = chain.leaf.as_deref() else {
        return out;
    };
    let pref = chain.preferred_path();
    let top = pref.and_then(|p| p.top()).map(|c| &**c);

    // Validity of the leaf.
    if instant > leaf.not_after {
        out.push(f(
            "cert.expired",
            SEV_HIGH,
            leaf,
            None,
            format!("leaf {} expired at {}", leaf.subject, leaf.not_after),
        ));
    } else if instant < leaf.not_before {
        out.push(f(
            "cert.not_yet_valid",
            SEV_HIGH,
            leaf,
            None,
            format!("leaf {} not valid before {}", leaf.subject, leaf.not_before),
        ));
    } else if leaf.not_after - instant <= cfg.expiring_within_secs {
        out.push(f(
            "cert.expiring",
            SEV_MEDIUM,
            leaf,
            None,
            format!(
                "leaf {} expires in {} days",
                leaf.subject,
                (leaf.not_after - instant) / DAY
            ),
        ));
    }
    // Chain structure.
    for issue in &chain.issues {
        match issue {
            ChainIssue::Incomplete => {
                let ca = top.filter(|t| t.sha256 != leaf.sha256).and_then(ca_of);
                out.push(f(
                    "chain.incomplete",
                    SEV_MEDIUM,
                    leaf,
                    ca,
                    format!(
                        "chain for {} does not reach a root with the certificates sent",
                        leaf.subject
                    ),
                ));
            }
            ChainIssue::Misordered => out.push(f(
                "chain.misordered",
                SEV_LOW,
                leaf,
                None,
                "certificates not sent in leaf-to-root order".into(),
            )),
            ChainIssue::UnknownAnchor(sha) => {
                let ca = pref
                    .and_then(|p| p.certs.iter().find(|c| c.sha256 == *sha))
                    .and_then(|c| ca_of(c));
                out.push(f(
                    "chain.unknown_anchor",
                    SEV_HIGH,
                    leaf,
                    ca,
                    "chain ends at a root no trust store carries".into(),
                ));
            }
            ChainIssue::SelfSignedLeaf => out.push(f(
                "cert.self_signed",
                SEV_HIGH,
                leaf,
                None,
                format!("leaf {} is self-signed", leaf.subject),
            )),
            ChainIssue::ExpiredIntermediate(sha) => {
                if let Some(c) = pref.and_then(|p| p.certs.iter().find(|c| c.sha256 == *sha)) {
                    let code = if instant < c.not_before {
                        "cert.not_yet_valid"
                    } else {
                        "cert.expired"
                    };
                    out.push(f(
                        code,
                        SEV_HIGH,
                        c,
                        ca_of(c),
                        format!("CA certificate {} outside its validity", c.subject),
                    ));
                }
            }
            ChainIssue::Unrelated(_) => {}
        }
    }
    // Keys and signatures of every certificate on the preferred path (or just the leaf).
    let certs: Vec<&CertInfo> = match pref {
        Some(p) => p.certs.iter().map(|c| &**c).collect(),
        None => presented.iter().map(|c| &**c).collect(),
    };
    let last = certs.len().saturating_sub(1);
    for (k, c) in certs.iter().enumerate() {
        let is_root = k == last && c.self_issued && k > 0;
        let weak_key = match c.public_key_algorithm.as_str() {
            "RSA" | "RSA-PSS" | "DSA" => c.public_key_size.is_some_and(|b| b < cfg.min_rsa_bits),
            "EC" => c.public_key_size.is_some_and(|b| b < cfg.min_ec_bits),
            _ => false,
        };
        if weak_key {
            out.push(f(
                "key.weak",
                SEV_MEDIUM,
                c,
                if k > 0 { ca_of(c) } else { None },
                format!(
                    "{} {}-bit key on {}",
                    c.public_key_algorithm,
                    c.public_key_size.unwrap_or(0),
                    c.subject
                ),
            ));
        }
        // A root's self-signature is not relied on, so a SHA-1 root is fine.
        if !is_root && weak_sig(&c.signature_algorithm) {
            out.push(f(
                "signature.weak",
                SEV_MEDIUM,
                c,
                if k > 0 { ca_of(c) } else { None },
                format!("{} signed with {}", c.subject, c.signature_algorithm),
            ));
        }
    }
    // Lifetime vs the CA/B Forum schedule: publicly-trusted leaves only (anchored in mozilla/chrome).
    let public = chain
        .anchors
        .iter()
        .any(|a| a.stores.iter().any(|s| s == "mozilla" || s == "chrome"));
    if public && !leaf.is_ca {
        if let Some((days, max)) = rules::lifetime_exceeds_policy(leaf.not_before, leaf.not_after) {
            out.push(f(
                "cert.lifetime_exceeds_policy",
                SEV_LOW,
                leaf,
                None,
                format!("validity {days} days exceeds {max} for certificates issued then"),
            ));
        }
    }
    if let Some(sni) = sni.filter(|s| !s.is_empty()) {
        if !leaf_covers(leaf, sni) {
            out.push(f(
                "tls.sni_mismatch",
                SEV_MEDIUM,
                leaf,
                None,
                format!("{sni} not covered by {}", leaf.subject),
            ));
        }
    }
    // Chrome root term limit: Chrome anchors past their term-limit removal date at the instant.
    let in_chrome = chain
        .anchor()
        .is_some_and(|a| a.stores.iter().any(|s| s == crate::anchors::STORE_CHROME));
    if let (Some(p), Some(t)) = (pref, top) {
        if p.end == PathEnd::Anchor
            && in_chrome
            && instant >= rules::chrome_root_term_end(t.not_before)
        {
            out.push(f(
                "anchor.term_limit",
                SEV_INFO,
                leaf,
                ca_of(t),
                format!(
                    "anchor {} is older than the 15-year root term limit",
                    t.subject
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anchors::unix_from_ymdhms;

    #[test]
    fn wildcard_rules() {
        assert!(dns_name_matches("*.example.com", "www.example.com"));
        assert!(dns_name_matches("*.Example.com", "WWW.example.com."));
        assert!(!dns_name_matches("*.example.com", "example.com"));
        assert!(!dns_name_matches("*.example.com", "a.b.example.com"));
        assert!(!dns_name_matches("*.com", "example.com"));
        assert!(!dns_name_matches("w*.example.com", "www.example.com"));
        assert!(dns_name_matches("example.com", "EXAMPLE.com"));
    }

    #[test]
    fn cn_only_without_sans() {
        let mut c = CertInfo {
            subject: "CN=*.corp.example, O=Corp".into(),
            ..Default::default()
        };
        assert!(leaf_covers(&c, "billing.corp.example"));
        c.alternative_names = vec!["other.example".into()];
        assert!(!leaf_covers(&c, "billing.corp.example"));
        c.alternative_names.push("10.0.0.1".into());
        assert!(leaf_covers(&c, "10.0.0.1"));
    }

    #[test]
    fn dated_policies_come_from_rules_policy() {
        let d = |y, m, dd| unix_from_ymdhms(y, m, dd, 0, 0, 0);
        assert_eq!(rules::chrome_root_term_end(d(2006, 11, 27)), d(2026, 4, 15));
        assert_eq!(rules::max_lifetime_days(d(2025, 1, 1)), 398);
        assert_eq!(rules::max_lifetime_days(d(2030, 1, 1)), 47);
    }
}
