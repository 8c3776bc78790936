//! Plaintext side signals: OCSP requests over HTTP (GET and POST, RFC 6960 appendix A) and
//! fetches of CA certificates (AIA caIssuers) and CRLs. A client asking about a certificate names
//! the CA it is validating, even when its TLS is 1.3 and the chains are hidden. Only the first
//! request of a connection is read (OCSP and CRL clients rarely reuse one).

use base64::Engine as _;
use x509_parser::asn1_rs::{Any, Class, FromDer, Tag};

/// What a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalKind {
    /// An OCSP request: its CertIDs name the issuer by hashes.
    Ocsp,
    /// A CA certificate fetch (AIA caIssuers: `.crt`, `.cer`, `.p7c`, `.der`).
    Aia,
    /// A CRL fetch (`.crl`).
    Crl,
}

impl SignalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SignalKind::Ocsp => "ocsp",
            SignalKind::Aia => "aia",
            SignalKind::Crl => "crl",
        }
    }

    /// The inventory's and the event's `evidence`: "ocsp", or "aia" for CA certificate and CRL
    /// fetches (both found through a certificate's URLs).
    pub fn evidence(self) -> &'static str {
        match self {
            SignalKind::Ocsp => "ocsp",
            SignalKind::Aia | SignalKind::Crl => "aia",
        }
    }
}

/// One CertID of an OCSP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertId {
    /// "sha1", "sha256", "sha384", "sha512" or "other".
    pub hash_algorithm: &'static str,
    pub issuer_name_hash: Vec<u8>,
    pub issuer_key_hash: Vec<u8>,
    /// The serial number's content octets.
    pub serial: Vec<u8>,
}

/// A side signal seen on the wire.
#[derive(Debug, Clone)]
pub struct SideSignal {
    pub ts_ns: u64,
    pub client: (std::net::IpAddr, u16),
    pub server: (std::net::IpAddr, u16),
    pub kind: SignalKind,
    /// "GET" or "POST".
    pub method: &'static str,
    /// `http://` + Host + target (at most [`MAX_URL`] bytes), as a client fetches it.
    pub url: String,
    /// The OCSP request's CertIDs (at most [`MAX_CERT_IDS`]); empty for AIA and CRL.
    pub cert_ids: Vec<CertId>,
}

/// Bytes of a request (line, headers and an OCSP body) read before giving up.
pub const MAX_REQUEST: usize = 8 * 1024;
/// Longest URL kept.
pub const MAX_URL: usize = 512;
/// CertIDs kept from one OCSP request.
pub const MAX_CERT_IDS: usize = 16;

/// What a client direction's first bytes gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The request is not complete yet (and still under [`MAX_REQUEST`]).
    NeedMore,
    /// Not a side signal (or not parseable within the bounds).
    None,
    Signal {
        kind: SignalKind,
        method: &'static str,
        url: String,
        cert_ids: Vec<CertId>,
    },
}

/// Does a direction start like a request this module reads?
pub fn is_candidate(prefix: &[u8]) -> bool {
    prefix.starts_with(b"GET ") || prefix.starts_with(b"POST ")
}

/// Reads an HTTP/1.x request from the start of a client direction; `server` names the host
/// in the URL when the request has no Host header (HTTP/1.0).
pub fn parse_request(buf: &[u8], server: (std::net::IpAddr, u16)) -> Parsed {
    let buf = buf.get(..MAX_REQUEST).unwrap_or(buf);
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        return if buf.len() < MAX_REQUEST {
            Parsed::NeedMore
        } else {
            Parsed::None
        };
    };
    let head = buf.get(..head_end).unwrap_or_default();
    let mut lines = head.split(|b| *b == b'\n').map(trim_cr);
    let mut first = lines.next().unwrap_or_default().split(|b| *b == b' ');
    let method: &'static str = match first.next() {
        Some(b"GET") => "GET",
        Some(b"POST") => "POST",
        _ => return Parsed::None,
    };
    let Some(target) = first.next().filter(|t| !t.is_empty()) else {
        return Parsed::None;
    };
    let (mut host, mut ctype, mut clen) = (None, None, None);
    for line in lines {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (
            line.get(..colon).unwrap_or_default(),
            trim(line.get(colon + 1..).unwrap_or_default()),
        );
        if name.eq_ignore_ascii_case(b"host") {
            host = Some(value);
        } else if name.eq_ignore_ascii_case(b"content-type") {
            ctype = Some(value);
        } else if name.eq_ignore_ascii_case(b"content-length") {
            clen = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<usize>().ok());
        }
    }
    // Built only for a request that is a signal.
    let url = || url_of(host, target, server);
    let (path, _query) = split_query(target);
    if method == "POST" {
        let ocsp = ctype.is_some_and(|c| starts_with_ignore_case(c, b"application/ocsp-request"));
        let Some(len) = clen.filter(|_| ocsp) else {
            return Parsed::None;
        };
        let body_start = head_end + 4;
        if body_start.saturating_add(len) > MAX_REQUEST {
            return Parsed::None;
        }
        let Some(body) = buf.get(body_start..body_start + len) else {
            return Parsed::NeedMore;
        };
        return match ocsp_cert_ids(body) {
            Some(cert_ids) => Parsed::Signal {
                kind: SignalKind::Ocsp,
                method,
                url: url(),
                cert_ids,
            },
            None => Parsed::None,
        };
    }
    // A file name first (cheap; base64 holds no '.', so an OCSP GET never looks like one).
    let ends = |ext: &[u8]| {
        path.len()
            .checked_sub(ext.len())
            .and_then(|at| path.get(at..))
            .is_some_and(|tail| tail.eq_ignore_ascii_case(ext))
    };
    let (kind, cert_ids) = if ends(b".crl") {
        (SignalKind::Crl, Vec::new())
    } else if [&b".crt"[..], b".cer", b".p7c", b".der"]
        .iter()
        .any(|e| ends(e))
    {
        (SignalKind::Aia, Vec::new())
    } else if let Some(ids) = ocsp_get(path) {
        (SignalKind::Ocsp, ids)
    } else {
        return Parsed::None;
    };
    Parsed::Signal {
        kind,
        method,
        url: url(),
        cert_ids,
    }
}

/// Standard base64, padded or not (clients differ).
const OCSP_BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// An OCSP GET carries `url-encoding(base64(DER))` after some `/` of the path (the responder's
/// own path may have segments, and the base64 itself may hold unencoded `/`).
fn ocsp_get(path: &[u8]) -> Option<Vec<CertId>> {
    let starts = path
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'/')
        .map(|(i, _)| i + 1)
        .take(32);
    for start in starts {
        let tail = path.get(start..).unwrap_or_default();
        if tail.len() < 16 {
            break;
        }
        let Some(text) = percent_decode(tail) else {
            continue;
        };
        if let Ok(der) = OCSP_BASE64.decode(&text) {
            if let Some(ids) = ocsp_cert_ids(&der) {
                return Some(ids);
            }
        }
    }
    None
}

/// The CertIDs of a DER OCSPRequest (RFC 6960 §4.1.1):
/// `SEQUENCE { tbsRequest SEQUENCE { [0] version OPT, [1] requestorName OPT,
/// requestList SEQUENCE OF Request { reqCert CertID, ... }, ... }, ... }`.
pub fn ocsp_cert_ids(der: &[u8]) -> Option<Vec<CertId>> {
    let (_, req) = Any::from_der(der).ok()?;
    let (_, tbs) = Any::from_der(universal(&req, Tag::Sequence)?).ok()?;
    let mut rest = universal(&tbs, Tag::Sequence)?;
    let list = loop {
        let (r, item) = Any::from_der(rest).ok()?;
        rest = r;
        if item.class() == Class::Universal {
            break universal(&item, Tag::Sequence)?;
        }
    };
    let mut out = Vec::new();
    let mut rest = list;
    while !rest.is_empty() && out.len() < MAX_CERT_IDS {
        let (r, request) = Any::from_der(rest).ok()?;
        rest = r;
        let (_, cert_id) = Any::from_der(universal(&request, Tag::Sequence)?).ok()?;
        let body = universal(&cert_id, Tag::Sequence)?;
        let (body, alg) = Any::from_der(body).ok()?;
        let (_, oid) = Any::from_der(universal(&alg, Tag::Sequence)?).ok()?;
        let (body, name) = Any::from_der(body).ok()?;
        let (body, key) = Any::from_der(body).ok()?;
        let (_, serial) = Any::from_der(body).ok()?;
        out.push(CertId {
            hash_algorithm: hash_name(universal(&oid, Tag::Oid)?),
            issuer_name_hash: universal(&name, Tag::OctetString)?.to_vec(),
            issuer_key_hash: universal(&key, Tag::OctetString)?.to_vec(),
            serial: universal(&serial, Tag::Integer)?.to_vec(),
        });
    }
    (!out.is_empty()).then_some(out)
}

/// The content of a universal-class element with this tag.
fn universal<'a>(a: &Any<'a>, tag: Tag) -> Option<&'a [u8]> {
    (a.class() == Class::Universal && a.tag() == tag).then_some(a.data)
}

fn hash_name(oid: &[u8]) -> &'static str {
    match oid {
        [0x2b, 0x0e, 0x03, 0x02, 0x1a] => "sha1",
        [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01] => "sha256",
        [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02] => "sha384",
        [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03] => "sha512",
        _ => "other",
    }
}

fn url_of(host: Option<&[u8]>, target: &[u8], server: (std::net::IpAddr, u16)) -> String {
    let target_text = String::from_utf8_lossy(target);
    let mut url = if target.starts_with(b"http://") {
        target_text.into_owned()
    } else {
        match host.filter(|h| !h.is_empty()) {
            Some(h) => format!("http://{}{target_text}", String::from_utf8_lossy(h)),
            None => match server {
                (std::net::IpAddr::V4(ip), 80) => format!("http://{ip}{target_text}"),
                (std::net::IpAddr::V4(ip), port) => format!("http://{ip}:{port}{target_text}"),
                (std::net::IpAddr::V6(ip), 80) => format!("http://[{ip}]{target_text}"),
                (std::net::IpAddr::V6(ip), port) => format!("http://[{ip}]:{port}{target_text}"),
            },
        }
    };
    if url.len() > MAX_URL {
        let mut end = MAX_URL;
        while !url.is_char_boundary(end) {
            end -= 1;
        }
        url.truncate(end);
    }
    url
}

fn split_query(target: &[u8]) -> (&[u8], &[u8]) {
    // An absolute-form target (through a proxy): drop scheme and authority.
    let target = match target.strip_prefix(b"http://") {
        Some(rest) => rest
            .iter()
            .position(|b| *b == b'/')
            .and_then(|i| rest.get(i..))
            .unwrap_or_default(),
        None => target,
    };
    match target.iter().position(|b| *b == b'?') {
        Some(i) => (
            target.get(..i).unwrap_or_default(),
            target.get(i + 1..).unwrap_or_default(),
        ),
        None => (target, &[]),
    }
}

fn percent_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut it = s.iter();
    while let Some(&b) = it.next() {
        if b == b'%' {
            let hi = (*it.next()? as char).to_digit(16)?;
            let lo = (*it.next()? as char).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
        } else {
            out.push(b);
        }
    }
    Some(out)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn trim_cr(l: &[u8]) -> &[u8] {
    l.strip_suffix(b"\r").unwrap_or(l)
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    v.get(start..end).unwrap_or_default()
}

fn starts_with_ignore_case(v: &[u8], p: &[u8]) -> bool {
    v.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRV: (std::net::IpAddr, u16) = (
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)),
        8080,
    );

    /// An OCSPRequest with one SHA-1 CertID (serial 0x1000), built by hand.
    fn ocsp_request() -> Vec<u8> {
        let name = [0x11u8; 20];
        let key = [0x22u8; 20];
        let mut cert_id = vec![
            0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00,
        ];
        cert_id.extend([0x04, 20]);
        cert_id.extend(name);
        cert_id.extend([0x04, 20]);
        cert_id.extend(key);
        cert_id.extend([0x02, 0x02, 0x10, 0x00]);
        let wrap = |tag: u8, body: Vec<u8>| {
            let mut v = vec![tag, body.len() as u8];
            v.extend(body);
            v
        };
        let request = wrap(0x30, wrap(0x30, cert_id));
        let list = wrap(0x30, request);
        wrap(0x30, wrap(0x30, list))
    }

    fn expected() -> Vec<CertId> {
        vec![CertId {
            hash_algorithm: "sha1",
            issuer_name_hash: vec![0x11; 20],
            issuer_key_hash: vec![0x22; 20],
            serial: vec![0x10, 0x00],
        }]
    }

    #[test]
    fn ocsp_post_waits_for_its_body() {
        let body = ocsp_request();
        let head = format!(
            "POST / HTTP/1.0\r\nHost: ocsp.example\r\nContent-Type: application/ocsp-request\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        assert_eq!(parse_request(head.as_bytes(), SRV), Parsed::NeedMore);
        let mut all = head.into_bytes();
        all.extend(&body);
        assert_eq!(
            parse_request(&all, SRV),
            Parsed::Signal {
                kind: SignalKind::Ocsp,
                method: "POST",
                url: "http://ocsp.example/".into(),
                cert_ids: expected()
            }
        );
    }

    #[test]
    fn ocsp_get_with_encoded_and_bare_slashes() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(ocsp_request());
        for enc in [b64.replace('/', "%2F").replace('+', "%2B"), b64.clone()] {
            let req = format!("GET /ocsp/{enc} HTTP/1.1\r\nHost: o.example\r\n\r\n");
            let Parsed::Signal { kind, cert_ids, .. } = parse_request(req.as_bytes(), SRV) else {
                panic!("not read: {req}");
            };
            assert_eq!((kind, cert_ids), (SignalKind::Ocsp, expected()));
        }
    }

    #[test]
    fn aia_and_crl_fetches_and_the_rest() {
        let get = |p: &str| {
            parse_request(
                format!("GET {p} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes(),
                SRV,
            )
        };
        assert!(matches!(
            get("/ca.CRL"),
            Parsed::Signal {
                kind: SignalKind::Crl,
                ..
            }
        ));
        assert!(
            matches!(get("/issuer.crt?x=1"), Parsed::Signal { kind: SignalKind::Aia, ref url, .. } if url == "http://h/issuer.crt?x=1")
        );
        assert_eq!(get("/index.html"), Parsed::None);
        // HTTP/1.0 without Host: the server's address names it.
        let Parsed::Signal { url, .. } = parse_request(b"GET /x.crl HTTP/1.0\r\n\r\n", SRV) else {
            panic!("not read");
        };
        assert_eq!(url, "http://192.0.2.1:8080/x.crl");
        assert_eq!(
            parse_request(b"GET /a.crl HTTP/1.1\r\nHost", SRV),
            Parsed::NeedMore
        );
        assert_eq!(parse_request(&[b'G'; MAX_REQUEST + 10], SRV), Parsed::None);
        // A body claimed past the bound, and a hostile one.
        let big = "POST / HTTP/1.1\r\nContent-Type: application/ocsp-request\r\nContent-Length: 99999\r\n\r\n";
        assert_eq!(parse_request(big.as_bytes(), SRV), Parsed::None);
        let bad = b"POST / HTTP/1.1\r\nContent-Type: application/ocsp-request\r\nContent-Length: 4\r\n\r\n\x30\x82\xff\xff";
        assert_eq!(parse_request(bad, SRV), Parsed::None);
    }

    #[test]
    fn truncated_ocsp_requests_never_panic() {
        let der = ocsp_request();
        for n in 0..der.len() {
            assert!(ocsp_cert_ids(&der[..n]).is_none() || n == der.len());
        }
        let mut rng = 0x1234_5678u32;
        for _ in 0..20_000 {
            let mut d = der.clone();
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            let i = rng as usize % d.len();
            d[i] = (rng >> 8) as u8;
            let _ = ocsp_cert_ids(&d);
        }
    }
}
