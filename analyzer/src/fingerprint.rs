//! Client fingerprints: JA3 (Salesforce, BSD-3) and the JA4 TLS client fingerprint (FoxIO,
//! BSD-3 licensed part only: `JA4`, not JA4+).

use std::fmt::Write as _;

use crate::tls::handshake::{ext, is_grease, ClientHello};
use md5::Md5;
use sha2::{Digest, Sha256};

// One handshake costs both fingerprints, so they are written into one string each, with no
// per-item allocation.

/// Appends `v` to `out` in decimal (digits pushed directly: `write!` per item was most of JA3).
fn push_u16(out: &mut String, v: u16) {
    let mut buf = [0u8; 5];
    let mut i = buf.len();
    let mut v = v;
    loop {
        i -= 1;
        if let Some(d) = buf.get_mut(i) {
            *d = b'0' + (v % 10) as u8;
        }
        v /= 10;
        if v == 0 || i == 0 {
            break;
        }
    }
    for &d in buf.get(i..).unwrap_or(&[]) {
        out.push(char::from(d));
    }
}

/// Appends `items` to `out` in decimal, separated by `-`.
fn push_dec<T: Into<u16>>(out: &mut String, items: impl Iterator<Item = T>) {
    for (i, v) in items.enumerate() {
        if i > 0 {
            out.push('-');
        }
        push_u16(out, v.into());
    }
}

/// Appends the low `digits` nibbles of `v` to `out` as lowercase hex.
fn push_hex(out: &mut String, v: u16, digits: u32) {
    for k in (0..digits).rev() {
        let nibble = u32::from(v.checked_shr(4 * k).unwrap_or(0) & 0xf);
        out.push(char::from_digit(nibble, 16).unwrap_or('0'));
    }
}

/// Appends `items` to `out` as 4-digit lowercase hex, separated by `,`.
fn push_hex4_list(out: &mut String, items: impl Iterator<Item = u16>) {
    for (i, v) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_hex(out, v, 4);
    }
}

/// The JA3 string: `version,ciphers,extensions,groups,point_formats`, decimal, GREASE removed.
pub fn ja3_string(ch: &ClientHello) -> String {
    let ng = |v: &u16| !is_grease(*v);
    let mut s = String::with_capacity(
        8 + 6 * (ch.ciphers.len() + ch.extensions.len() + ch.groups.len())
            + 4 * ch.ec_point_formats.len(),
    );
    push_u16(&mut s, ch.version);
    s.push(',');
    push_dec(&mut s, ch.ciphers.iter().copied().filter(ng));
    s.push(',');
    push_dec(&mut s, ch.extensions.iter().copied().filter(ng));
    s.push(',');
    push_dec(&mut s, ch.groups.iter().copied().filter(ng));
    s.push(',');
    push_dec(&mut s, ch.ec_point_formats.iter().copied());
    s
}

/// JA3: MD5 of the JA3 string, lowercase hex.
pub fn ja3(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

/// Appends the first 12 hex digits of SHA-256(`s`), or twelve zeros for an empty `s`.
fn push_sha12(out: &mut String, s: &str) {
    if s.is_empty() {
        out.push_str("000000000000");
        return;
    }
    for b in Sha256::digest(s.as_bytes()).iter().take(6) {
        push_hex(out, u16::from(*b), 2);
    }
}

fn ja4_version(v: u16) -> &'static str {
    match v {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    }
}

/// Appends the first and last characters of the first ALPN value; of the hex of its bytes when
/// they are not alphanumeric (the JA4 specification: first and last hex digit, so 0xBA 0xAD gives
/// `bd`; FoxIO's tool prints `99` by an older rule); `00` without ALPN.
fn push_ja4_alpn(out: &mut String, first_alpn: &[u8]) {
    let b = first_alpn;
    let (Some(&f), Some(&l)) = (b.first(), b.last()) else {
        out.push_str("00");
        return;
    };
    if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() {
        out.push(char::from(f));
        out.push(char::from(l));
    } else {
        push_hex(out, u16::from(f >> 4), 1);
        push_hex(out, u16::from(l & 0xf), 1);
    }
}

/// JA4 TLS client fingerprint `a_b_c`. `proto` is 't' (TCP), 'q' (QUIC) or 'd' (DTLS).
pub fn ja4(ch: &ClientHello, proto: char) -> String {
    let ng = |v: &u16| !is_grease(*v);
    let versions = ch.supported_versions.iter().copied().filter(ng);
    // DTLS versions count downward: the "highest" is the smallest code.
    let version = if proto == 'd' {
        versions.min()
    } else {
        versions.max()
    }
    .unwrap_or(ch.version);
    let mut ciphers: Vec<u16> = ch.ciphers.iter().copied().filter(ng).collect();
    let exts = ch.extensions.iter().copied().filter(ng);
    let sni = if ch.extensions.contains(&ext::SERVER_NAME) {
        'd'
    } else {
        'i'
    };
    let mut out = String::with_capacity(36);
    let _ = write!(
        out,
        "{proto}{}{sni}{:02}{:02}",
        ja4_version(version),
        ciphers.len().min(99),
        exts.clone().count().min(99),
    );
    push_ja4_alpn(&mut out, &ch.first_alpn);
    out.push('_');
    ciphers.sort_unstable();
    let mut text =
        String::with_capacity(5 * (ciphers.len() + ch.extensions.len() + ch.sig_algs.len()));
    push_hex4_list(&mut text, ciphers.iter().copied());
    push_sha12(&mut out, &text);
    out.push('_');
    let mut se: Vec<u16> = exts
        .filter(|e| *e != ext::SERVER_NAME && *e != ext::ALPN)
        .collect();
    se.sort_unstable();
    if se.is_empty() {
        out.push_str("000000000000");
        return out;
    }
    text.clear();
    push_hex4_list(&mut text, se.iter().copied());
    let mut sigs = ch.sig_algs.iter().copied().filter(ng).peekable();
    if sigs.peek().is_some() {
        text.push('_');
        push_hex4_list(&mut text, sigs);
    }
    push_sha12(&mut out, &text);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the JA4 specification (FoxIO README, "JA4 TLS Client Fingerprint"):
    /// Chrome's ClientHello gives t13d1516h2_8daaf6152771_e5627efa2ab1.
    #[test]
    fn ja4_spec_example() {
        let ciphers = [
            0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014,
            0x009c, 0x009d, 0x002f, 0x0035,
        ];
        let mut c = vec![0x0a0a];
        c.extend_from_slice(&ciphers);
        let exts = [
            0x1a1a, 0x0000, 0x0017, 0xff01, 0x000a, 0x000b, 0x0023, 0x0010, 0x0005, 0x000d, 0x0012,
            0x0033, 0x002d, 0x002b, 0x001b, 0x4469, 0x0015,
        ];
        let ch = ClientHello {
            version: 0x0303,
            ciphers: c,
            extensions: exts.to_vec(),
            alpn: vec!["h2".into(), "http/1.1".into()],
            first_alpn: b"h2".to_vec(),
            supported_versions: vec![0x2a2a, 0x0304, 0x0303],
            sig_algs: vec![
                0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
            ],
            ..Default::default()
        };
        assert_eq!(ja4(&ch, 't'), "t13d1516h2_8daaf6152771_e5627efa2ab1");
    }

    #[test]
    fn ja3_drops_grease() {
        let ch = ClientHello {
            version: 771,
            ciphers: vec![0x1a1a, 4865, 4866],
            extensions: vec![0x2a2a, 0, 23],
            groups: vec![0x3a3a, 29, 23],
            ec_point_formats: vec![0],
            ..Default::default()
        };
        let s = ja3_string(&ch);
        assert_eq!(s, "771,4865-4866,0-23,29-23,0");
        assert_eq!(ja3(&s).len(), 32);
    }
}

#[cfg(test)]
mod alpn_tests {
    /// The JA4 specification (technical_details/JA4.md): a first ALPN value that is not
    /// alphanumeric gives the first and last hex digits of its bytes: 0xBA 0xAD -> "bd" (not the
    /// digits of a lossy text conversion, "ed"; FoxIO's tool prints "99", an older rule).
    #[test]
    fn non_alphanumeric_alpn_uses_the_bytes_hex() {
        let mut s = String::new();
        super::push_ja4_alpn(&mut s, &[0xba, 0xad]);
        assert_eq!(s, "bd");
        s.clear();
        super::push_ja4_alpn(&mut s, b"h2");
        assert_eq!(s, "h2");
        s.clear();
        super::push_ja4_alpn(&mut s, b"");
        assert_eq!(s, "00");
    }
}

#[cfg(test)]
mod push_tests {
    #[test]
    fn push_u16_is_display() {
        for v in (0..=u16::MAX).step_by(7).chain([0, 9, 10, 99, 100, 65535]) {
            let mut s = String::new();
            super::push_u16(&mut s, v);
            assert_eq!(s, v.to_string());
        }
    }
}
