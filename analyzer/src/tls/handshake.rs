//! Pure parsers for complete handshake message bodies (no state here). ClientHello extensions are
//! walked by hand so that the wire order of extension types (needed by JA3) is kept, and so that the
//! DTLS cookie field fits in; tls-parser parses the SNI and ALPN contents.

use super::reader::{u16_list, Rd};

/// Handshake message types (RFC 8446 §4, RFC 5246 §7.4).
pub mod msg {
    pub const HELLO_REQUEST: u8 = 0;
    pub const CLIENT_HELLO: u8 = 1;
    pub const SERVER_HELLO: u8 = 2;
    pub const HELLO_VERIFY_REQUEST: u8 = 3;
    pub const NEW_SESSION_TICKET: u8 = 4;
    pub const ENCRYPTED_EXTENSIONS: u8 = 8;
    pub const CERTIFICATE: u8 = 11;
    pub const SERVER_KEY_EXCHANGE: u8 = 12;
    pub const CERTIFICATE_REQUEST: u8 = 13;
    pub const SERVER_HELLO_DONE: u8 = 14;
    pub const CERTIFICATE_VERIFY: u8 = 15;
    pub const CLIENT_KEY_EXCHANGE: u8 = 16;
    pub const FINISHED: u8 = 20;
    pub const CERTIFICATE_STATUS: u8 = 22;
}

/// Extension types we read.
pub mod ext {
    pub const SERVER_NAME: u16 = 0;
    pub const SUPPORTED_GROUPS: u16 = 10;
    pub const EC_POINT_FORMATS: u16 = 11;
    pub const SIGNATURE_ALGORITHMS: u16 = 13;
    pub const ALPN: u16 = 16;
    pub const SUPPORTED_VERSIONS: u16 = 43;
    pub const CERTIFICATE_AUTHORITIES: u16 = 47;
    pub const KEY_SHARE: u16 = 51;
}

/// Most extensions/ciphers kept from one hello (a hello holds a few dozen; the cap bounds memory).
pub const MAX_LIST_ITEMS: usize = 1024;

/// The SHA-256 of "HelloRetryRequest" that a TLS 1.3 HelloRetryRequest carries as its random.
pub const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// GREASE values (RFC 8701): 0x?a?a with both bytes equal.
pub fn is_grease(v: u16) -> bool {
    (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff)
}

/// What trustmap keeps from a ClientHello.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHello {
    pub version: u16,
    pub random: Vec<u8>,
    pub ciphers: Vec<u16>,
    /// Extension types in wire order (GREASE included; fingerprints drop them).
    pub extensions: Vec<u16>,
    pub sni: Option<String>,
    pub alpn: Vec<String>,
    /// The first ALPN value's bytes as sent (JA4 reads them, not their text form).
    pub first_alpn: Vec<u8>,
    pub supported_versions: Vec<u16>,
    pub groups: Vec<u16>,
    pub ec_point_formats: Vec<u8>,
    pub sig_algs: Vec<u16>,
}

/// Parses a ClientHello body. `dtls` adds the HelloVerifyRequest cookie field.
/// Returns None when the fixed part is truncated; a truncated extension block keeps what parsed.
pub fn parse_client_hello(body: &[u8], dtls: bool) -> Option<ClientHello> {
    let mut r = Rd::new(body);
    let version = r.u16()?;
    let random = r.take(32)?.to_vec();
    let _sid = r.vec8()?;
    if dtls {
        let _cookie = r.vec8()?;
    }
    let ciphers = r.vec16()?;
    let mut ch = ClientHello {
        version,
        random,
        ciphers: u16_list(ciphers).into_iter().take(MAX_LIST_ITEMS).collect(),
        ..Default::default()
    };
    let _comp = r.vec8()?;
    let Some(exts) = r.vec16() else {
        return Some(ch);
    };
    let mut e = Rd::new(exts);
    while !e.is_empty() && ch.extensions.len() < MAX_LIST_ITEMS {
        let Some(typ) = e.u16() else { break };
        let Some(data) = e.vec16() else { break };
        ch.extensions.push(typ);
        match typ {
            ext::SERVER_NAME => ch.sni = parse_sni(data),
            ext::ALPN => (ch.alpn, ch.first_alpn) = parse_alpn(data),
            ext::SUPPORTED_VERSIONS => {
                if let Some(l) = Rd::new(data).vec8() {
                    ch.supported_versions = u16_list(l);
                }
            }
            ext::SUPPORTED_GROUPS => {
                if let Some(l) = Rd::new(data).vec16() {
                    ch.groups = u16_list(l);
                }
            }
            ext::EC_POINT_FORMATS => {
                if let Some(l) = Rd::new(data).vec8() {
                    ch.ec_point_formats = l.to_vec();
                }
            }
            ext::SIGNATURE_ALGORITHMS => {
                if let Some(l) = Rd::new(data).vec16() {
                    ch.sig_algs = u16_list(l);
                }
            }
            _ => {}
        }
    }
    Some(ch)
}

fn parse_sni(data: &[u8]) -> Option<String> {
    use tls_parser::{parse_tls_extension_sni_content, SNIType, TlsExtension};
    let (_, TlsExtension::SNI(list)) = parse_tls_extension_sni_content(data).ok()? else {
        return None;
    };
    list.iter()
        .find(|(t, _)| *t == SNIType::HostName)
        .map(|(_, name)| String::from_utf8_lossy(name).into_owned())
}

/// The ALPN values as text, and the first one's raw bytes.
fn parse_alpn(data: &[u8]) -> (Vec<String>, Vec<u8>) {
    use tls_parser::{parse_tls_extension_alpn_content, TlsExtension};
    match parse_tls_extension_alpn_content(data) {
        Ok((_, TlsExtension::ALPN(v))) => (
            v.iter()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect(),
            v.first().map(|p| p.to_vec()).unwrap_or_default(),
        ),
        _ => (Vec::new(), Vec::new()),
    }
}

/// What trustmap keeps from a ServerHello (or TLS 1.3 HelloRetryRequest).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerHello {
    pub legacy_version: u16,
    /// supported_versions from the extension, if present.
    pub selected_version: Option<u16>,
    pub cipher: u16,
    pub hello_retry: bool,
    /// The key-exchange group of the key_share extension (TLS 1.3: the server's share, or the
    /// group a HelloRetryRequest asks for).
    pub group: Option<u16>,
}

impl ServerHello {
    /// The negotiated version: supported_versions wins over legacy_version.
    pub fn version(&self) -> u16 {
        self.selected_version.unwrap_or(self.legacy_version)
    }
}

/// True for TLS 1.3 and its drafts/experiments (certificates encrypted) and DTLS 1.3.
pub fn is_tls13(v: u16) -> bool {
    v == 0x0304 || v == 0xfefc || (v >> 8) == 0x7f || (v >> 8) == 0x7e || v == 0xfb17 || v == 0xfb1a
}

/// Parses a ServerHello body (TLS or DTLS: same layout).
pub fn parse_server_hello(body: &[u8]) -> Option<ServerHello> {
    let mut r = Rd::new(body);
    let legacy_version = r.u16()?;
    let random = r.take(32)?;
    // TLS 1.3 drafts before -22 (version 0x7fxx) have no session id field.
    let draft = (legacy_version >> 8) == 0x7f && (legacy_version & 0xff) < 22;
    if !draft {
        let _sid = r.vec8()?;
    }
    let cipher = r.u16()?;
    let mut sh = ServerHello {
        legacy_version,
        selected_version: None,
        cipher,
        hello_retry: random == HRR_RANDOM,
        group: None,
    };
    if !draft {
        let _comp = r.u8()?;
    }
    if let Some(exts) = r.vec16() {
        let mut e = Rd::new(exts);
        for _ in 0..MAX_LIST_ITEMS {
            let (Some(typ), Some(data)) = (e.u16(), e.vec16()) else {
                break;
            };
            if typ == ext::SUPPORTED_VERSIONS {
                sh.selected_version = super::reader::be16_at(data, 0);
            }
            if typ == ext::KEY_SHARE {
                sh.group = super::reader::be16_at(data, 0);
            }
        }
    }
    Some(sh)
}

/// The named group of a TLS <= 1.2 ServerKeyExchange (ECDHE: `ECParameters` with curve_type
/// named_curve); `None` for other key exchanges (DHE, RSA, explicit curves).
pub fn server_key_exchange_group(body: &[u8]) -> Option<u16> {
    /// ECCurveType named_curve (RFC 8422 §5.4).
    const NAMED_CURVE: u8 = 3;
    let mut r = Rd::new(body);
    (r.u8()? == NAMED_CURVE).then_some(())?;
    r.u16()
}

/// A Certificate message's list, as far as it could be parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertList<'a> {
    pub certs: Vec<&'a [u8]>,
    /// The list was cut or its lengths disagree; `certs` holds only entries that fit entirely.
    pub malformed: bool,
}

/// Most certificates kept from one Certificate message (real chains hold < 10).
pub const MAX_CERTS_PER_MESSAGE: usize = 64;

/// Parses a TLS ≤ 1.2 Certificate body: `certificate_list<0..2^24-1>` of `ASN.1Cert<1..2^24-1>`.
/// On a length mismatch, keeps the entries that lie entirely inside both the message and the
/// declared list and start with a DER SEQUENCE; this matches what can be vouched for.
pub fn parse_certificate(body: &[u8]) -> CertList<'_> {
    cert_list(Rd::new(body), false)
}

/// Parses a TLS 1.3 Certificate body (RFC 8446 §4.4.2): `certificate_request_context<0..255>`,
/// then `certificate_list<0..2^24-1>` of `CertificateEntry { cert_data<1..2^24-1>,
/// extensions<0..2^16-1> }`. The per-certificate extensions (OCSP status, SCTs) are skipped.
/// Same rules as [`parse_certificate`] on a length mismatch.
pub fn parse_certificate13(body: &[u8]) -> CertList<'_> {
    let mut r = Rd::new(body);
    if r.vec8().is_none() {
        return CertList {
            certs: Vec::new(),
            malformed: true,
        };
    }
    cert_list(r, true)
}

/// The certificate list at `r` (24-bit length, then entries; with `extensions`, each entry is
/// followed by its 16-bit-length extensions, as in TLS 1.3).
fn cert_list(mut r: Rd<'_>, extensions: bool) -> CertList<'_> {
    let mut out = CertList::default();
    let Some(list_len) = r.u24() else {
        out.malformed = true;
        return out;
    };
    let avail = r.len();
    if list_len != avail {
        out.malformed = true;
    }
    let Some(list) = r.take(list_len.min(avail)) else {
        out.malformed = true;
        return out;
    };
    let mut l = Rd::new(list);
    while !l.is_empty() {
        if out.certs.len() >= MAX_CERTS_PER_MESSAGE {
            out.malformed = true;
            break;
        }
        let cert = l.vec24();
        let ext_ok = !extensions || l.vec16().is_some();
        match cert {
            Some(c) if ext_ok && c.first() == Some(&0x30) => out.certs.push(c),
            _ => {
                out.malformed = true;
                break;
            }
        }
    }
    out
}

/// Parses the CA names of a TLS 1.3 CertificateRequest (RFC 8446 §4.3.2, the
/// certificate_authorities extension): `certificate_request_context<0..255>`, then
/// `extensions<2..2^16-1>`. No such extension gives an empty list.
pub fn parse_certificate_request13(body: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut r = Rd::new(body);
    let _context = r.vec8()?;
    let mut exts = Rd::new(r.vec16()?);
    let mut out = Vec::new();
    while !exts.is_empty() {
        let typ = exts.u16()?;
        let data = exts.vec16()?;
        if typ == ext::CERTIFICATE_AUTHORITIES {
            let mut names = Rd::new(Rd::new(data).vec16()?);
            while !names.is_empty() && out.len() < MAX_LIST_ITEMS {
                out.push(names.vec16()?.to_vec());
            }
        }
    }
    Some(out)
}

/// Parses the CA distinguished names of a CertificateRequest (TLS 1.0-1.2 layouts).
/// Returns the DER of each name.
pub fn parse_certificate_request(body: &[u8], version: u16) -> Option<Vec<Vec<u8>>> {
    let mut r = Rd::new(body);
    let _types = r.vec8()?;
    // TLS 1.2 and DTLS 1.2 add supported_signature_algorithms.
    if version == 0x0303 || version == 0xfefd {
        let _sigs = r.vec16()?;
    }
    let names = r.vec16()?;
    let mut n = Rd::new(names);
    let mut out = Vec::new();
    while !n.is_empty() && out.len() < MAX_LIST_ITEMS {
        out.push(n.vec16()?.to_vec());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grease_values() {
        assert!(is_grease(0x0a0a));
        assert!(is_grease(0xfafa));
        assert!(!is_grease(0x0a1a));
        assert!(!is_grease(0x1301));
    }

    #[test]
    fn certificate_list_exact_and_malformed() {
        // two certs "30 01 aa" and "30 00"
        let body = [0, 0, 11, 0, 0, 3, 0x30, 1, 0xaa, 0, 0, 2, 0x30, 0];
        let l = parse_certificate(&body);
        assert!(!l.malformed);
        assert_eq!(l.certs, vec![&[0x30, 1, 0xaa][..], &[0x30, 0][..]]);
        // declared list longer than the body: first cert kept, second cut
        let body = [0, 0, 20, 0, 0, 3, 0x30, 1, 0xaa, 0, 0, 9, 0x30, 0];
        let l = parse_certificate(&body);
        assert!(l.malformed);
        assert_eq!(l.certs.len(), 1);
        // empty list
        let l = parse_certificate(&[0, 0, 0]);
        assert!(!l.malformed && l.certs.is_empty());
    }

    #[test]
    fn tls13_certificate_and_request() {
        // context "", two entries with empty and non-empty extensions
        let body = [
            0, 0, 0, 17, 0, 0, 3, 0x30, 1, 0xaa, 0, 0, 0, 0, 2, 0x30, 0, 0, 2, 0xde, 0xad,
        ];
        let l = parse_certificate13(&body);
        assert!(!l.malformed, "{l:?}");
        assert_eq!(l.certs, vec![&[0x30, 1, 0xaa][..], &[0x30, 0][..]]);
        // client Certificate with a request context and no certificate
        let l = parse_certificate13(&[1, 7, 0, 0, 0]);
        assert!(!l.malformed && l.certs.is_empty());
        assert!(parse_certificate13(&[5, 1]).malformed);
        // CertificateRequest: context "", signature_algorithms, certificate_authorities [ "0\0" ]
        let req = [
            0, 0, 18, 0, 13, 0, 4, 0, 2, 4, 3, 0, 47, 0, 6, 0, 4, 0, 2, 0x30, 0,
        ];
        assert_eq!(parse_certificate_request13(&req), Some(vec![vec![0x30, 0]]));
        assert_eq!(parse_certificate_request13(&[0, 0, 0]), Some(vec![]));
        assert_eq!(parse_certificate_request13(&[0, 0, 9]), None);
    }

    #[test]
    fn server_hello_supported_versions_wins() {
        let mut b = vec![0x03, 0x03];
        b.extend_from_slice(&[7u8; 32]);
        b.push(0); // sid
        b.extend_from_slice(&[0x13, 0x01, 0x00]);
        b.extend_from_slice(&[0x00, 0x06, 0x00, 0x2b, 0x00, 0x02, 0x03, 0x04]);
        let sh = parse_server_hello(&b).unwrap();
        assert_eq!(sh.version(), 0x0304);
        assert_eq!(sh.cipher, 0x1301);
        assert!(!sh.hello_retry);
        assert!(is_tls13(sh.version()));
    }
}
