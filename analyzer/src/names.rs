//! Names for the numbers on the wire: protocol versions, cipher suites, alert descriptions. Used
//! by every output (events, summaries, reports), so they live with the parser that reads the
//! numbers.

use std::borrow::Cow;

/// "1.2"-style version name and the ECS `tls.version_protocol`.
pub fn version_name(v: u16) -> (Cow<'static, str>, &'static str) {
    let (name, proto): (&'static str, &'static str) = match v {
        0x0002 => ("2.0", "ssl"),
        0x0300 => ("3.0", "ssl"),
        0x0301 => ("1.0", "tls"),
        0x0302 => ("1.1", "tls"),
        0x0303 => ("1.2", "tls"),
        0x0304 => ("1.3", "tls"),
        0x7f00..=0x7fff => return (format!("1.3-draft{}", v & 0xff).into(), "tls"),
        0x7e01..=0x7e0f => ("1.3-experiment", "tls"),
        0xfeff => ("1.0", "dtls"),
        0xfefd => ("1.2", "dtls"),
        0xfefc => ("1.3", "dtls"),
        other => return (format!("unknown-0x{other:04x}").into(), "tls"),
    };
    (Cow::Borrowed(name), proto)
}

/// IANA cipher suite name, or the hex code when unknown.
pub fn cipher_name(id: u16) -> Cow<'static, str> {
    match tls_parser::TlsCipherSuite::from_id(id) {
        Some(cs) => Cow::Borrowed(cs.name),
        None => format!("0x{id:04x}").into(),
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

/// Named group (key exchange) names, as ECS `tls.curve` and the IANA registry spell them,
/// including the post-quantum hybrids; the hex code when unknown.
pub fn group_name(id: u16) -> Cow<'static, str> {
    let name = match id {
        23 => "secp256r1",
        24 => "secp384r1",
        25 => "secp521r1",
        29 => "x25519",
        30 => "x448",
        256 => "ffdhe2048",
        257 => "ffdhe3072",
        258 => "ffdhe4096",
        259 => "ffdhe6144",
        260 => "ffdhe8192",
        512 => "MLKEM512",
        513 => "MLKEM768",
        514 => "MLKEM1024",
        0x11eb => "SecP256r1MLKEM768",
        0x11ec => "X25519MLKEM768",
        0x11ed => "SecP384r1MLKEM1024",
        0x6399 => "X25519Kyber768Draft00",
        0x639a => "SecP256r1Kyber768Draft00",
        _ => return format!("0x{id:04x}").into(),
    };
    Cow::Borrowed(name)
}

/// A group that resists a quantum computer (ML-KEM alone or in a hybrid).
pub fn group_is_post_quantum(id: u16) -> bool {
    matches!(id, 512..=514 | 0x11eb..=0x11ed | 0x6399 | 0x639a)
}

/// TLS SignatureScheme names as the IANA registry spells them (RFC 8446 §4.2.3, RFC 8734, the
/// ML-DSA draft's mldsa44/65/87, and TLS 1.2's hash/signature pairs); the hex code when unknown.
pub fn sig_scheme_name(id: u16) -> Cow<'static, str> {
    let name = match id {
        0x0201 => "rsa_pkcs1_sha1",
        0x0202 => "dsa_sha1",
        0x0203 => "ecdsa_sha1",
        0x0301 => "rsa_pkcs1_sha224",
        0x0302 => "dsa_sha224",
        0x0303 => "ecdsa_sha224",
        0x0401 => "rsa_pkcs1_sha256",
        0x0402 => "dsa_sha256",
        0x0403 => "ecdsa_secp256r1_sha256",
        0x0501 => "rsa_pkcs1_sha384",
        0x0502 => "dsa_sha384",
        0x0503 => "ecdsa_secp384r1_sha384",
        0x0601 => "rsa_pkcs1_sha512",
        0x0602 => "dsa_sha512",
        0x0603 => "ecdsa_secp521r1_sha512",
        0x0804 => "rsa_pss_rsae_sha256",
        0x0805 => "rsa_pss_rsae_sha384",
        0x0806 => "rsa_pss_rsae_sha512",
        0x0807 => "ed25519",
        0x0808 => "ed448",
        0x0809 => "rsa_pss_pss_sha256",
        0x080a => "rsa_pss_pss_sha384",
        0x080b => "rsa_pss_pss_sha512",
        0x081a => "ecdsa_brainpoolP256r1tls13_sha256",
        0x081b => "ecdsa_brainpoolP384r1tls13_sha384",
        0x081c => "ecdsa_brainpoolP512r1tls13_sha512",
        0x0904 => "mldsa44",
        0x0905 => "mldsa65",
        0x0906 => "mldsa87",
        _ => return format!("0x{id:04x}").into(),
    };
    Cow::Borrowed(name)
}

/// A signature scheme (TLS SignatureScheme) that resists a quantum computer: ML-DSA-44/65/87.
pub fn sig_scheme_is_post_quantum(id: u16) -> bool {
    matches!(id, 0x0904..=0x0906)
}

/// A certificate key or signature algorithm name (as [`crate::CertInfo`] spells it) that
/// resists a quantum computer.
pub fn cert_alg_is_post_quantum(name: &str) -> bool {
    name.starts_with("ML-DSA") || name.starts_with("SLH-DSA")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_and_pq() {
        assert_eq!(group_name(4588), "X25519MLKEM768");
        assert_eq!(group_name(0x11eb), "SecP256r1MLKEM768");
        assert_eq!(group_name(0x11ed), "SecP384r1MLKEM1024");
        assert_eq!(group_name(29), "x25519");
        assert_eq!(group_name(0xabcd), "0xabcd");
        assert!(group_is_post_quantum(4588) && !group_is_post_quantum(29));
    }

    #[test]
    fn sig_scheme_names_and_pq() {
        assert_eq!(sig_scheme_name(0x0804), "rsa_pss_rsae_sha256");
        assert_eq!(sig_scheme_name(0x0403), "ecdsa_secp256r1_sha256");
        assert_eq!(sig_scheme_name(0x0905), "mldsa65");
        assert_eq!(sig_scheme_name(0x0a0a), "0x0a0a");
        assert!(sig_scheme_is_post_quantum(0x0904) && !sig_scheme_is_post_quantum(0x0807));
    }
}
