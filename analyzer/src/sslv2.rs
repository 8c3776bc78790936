//! SSL 2.0 records and the two cleartext hellos trustmap reads: the (SSLv2-compatible)
//! CLIENT-HELLO and the SERVER-HELLO, which carries the server certificate.

use crate::tls::reader::Rd;

pub const MSG_CLIENT_HELLO: u8 = 1;
pub const MSG_SERVER_HELLO: u8 = 4;
/// Largest SSLv2 record body (15-bit length with the 2-byte header).
pub const MAX_V2_RECORD: usize = 0x7fff;

/// Length of the record body if `b` starts with a 2-byte SSLv2 header (high bit set), with the
/// message type at offset 2 equal to `msg`.
pub fn v2_header(b: &[u8], msg: u8) -> Option<usize> {
    let b0 = *b.first()?;
    if b0 & 0x80 == 0 {
        return None;
    }
    let len = (((b0 & 0x7f) as usize) << 8) | (*b.get(1)? as usize);
    if *b.get(2)? != msg || len < 3 {
        return None;
    }
    Some(len)
}

/// Does `b` look like an SSLv2 (or v2-compatible) CLIENT-HELLO? Checks version and the three
/// declared lengths against the record length.
pub fn looks_like_client_hello(b: &[u8]) -> bool {
    let Some(len) = v2_header(b, MSG_CLIENT_HELLO) else {
        return false;
    };
    let Some(body) = b.get(3..) else { return false };
    let mut r = Rd::new(body);
    let (Some(ver), Some(cs), Some(sid), Some(ch)) = (r.u16(), r.u16(), r.u16(), r.u16()) else {
        return false;
    };
    (ver == 0x0002 || (ver >> 8) == 3)
        && cs % 3 == 0
        && cs > 0
        && (sid == 0 || sid == 16 || sid == 32)
        && (16..=32).contains(&ch)
        && 9 + cs as usize + sid as usize + ch as usize == len
}

/// Does `b` look like an SSLv2 SERVER-HELLO?
pub fn looks_like_server_hello(b: &[u8]) -> bool {
    let Some(len) = v2_header(b, MSG_SERVER_HELLO) else {
        return false;
    };
    let Some(body) = b.get(3..) else { return false };
    let mut r = Rd::new(body);
    let (Some(hit), Some(_ct), Some(ver), Some(cl), Some(cs), Some(cid)) =
        (r.u8(), r.u8(), r.u16(), r.u16(), r.u16(), r.u16())
    else {
        return false;
    };
    hit <= 1 && ver == 0x0002 && 11 + cl as usize + cs as usize + cid as usize == len
}

/// A v2 CLIENT-HELLO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2ClientHello {
    pub version: u16,
    /// 3-byte cipher kinds.
    pub ciphers: Vec<u32>,
}

/// Parses the record body (after the 2-byte header) of a CLIENT-HELLO.
pub fn parse_client_hello(body: &[u8]) -> Option<V2ClientHello> {
    let mut r = Rd::new(body);
    if r.u8()? != MSG_CLIENT_HELLO {
        return None;
    }
    let version = r.u16()?;
    let cs = r.u16()? as usize;
    let _sid = r.u16()?;
    let _ch = r.u16()?;
    let specs = r.take(cs)?;
    let ciphers = specs
        .chunks_exact(3)
        .filter_map(|c| match c {
            [a, b, d] => Some(((*a as u32) << 16) | ((*b as u32) << 8) | *d as u32),
            _ => None,
        })
        .collect();
    Some(V2ClientHello { version, ciphers })
}

/// A v2 SERVER-HELLO: the server certificate (DER, X.509 when certificate_type is 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2ServerHello<'a> {
    pub session_id_hit: bool,
    pub version: u16,
    pub certificate: Option<&'a [u8]>,
    pub first_cipher: Option<u32>,
}

/// Parses the record body (after the 2-byte header) of a SERVER-HELLO.
pub fn parse_server_hello(body: &[u8]) -> Option<V2ServerHello<'_>> {
    let mut r = Rd::new(body);
    if r.u8()? != MSG_SERVER_HELLO {
        return None;
    }
    let hit = r.u8()? != 0;
    let _cert_type = r.u8()?;
    let version = r.u16()?;
    let cl = r.u16()? as usize;
    let cs = r.u16()? as usize;
    let _cid = r.u16()?;
    let cert = r.take(cl)?;
    let specs = r.take(cs).unwrap_or_default();
    let first_cipher = match specs.get(..3) {
        Some([a, b, c]) => Some(((*a as u32) << 16) | ((*b as u32) << 8) | *c as u32),
        _ => None,
    };
    Some(V2ServerHello {
        session_id_hit: hit,
        version,
        certificate: if cl > 0 { Some(cert) } else { None },
        first_cipher,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_hello_roundtrip() {
        // header: len = 11 + 3 (cert) + 3 (cipher) + 16 (conn id)
        let mut b = vec![0x80, 33, 4, 0, 1, 0, 2, 0, 3, 0, 3, 0, 16, 0x30, 1, 0];
        b.extend_from_slice(&[1, 0, 0x80]);
        b.extend_from_slice(&[0xcc; 16]);
        assert!(looks_like_server_hello(&b));
        let sh = parse_server_hello(&b[2..]).unwrap();
        assert_eq!(sh.certificate, Some(&[0x30, 1, 0][..]));
        assert_eq!(sh.first_cipher, Some(0x010080));
        assert!(!looks_like_client_hello(&b));
    }
}
