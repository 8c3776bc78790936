//! Client fingerprints: JA3 (Salesforce, BSD-3) and the JA4 TLS client fingerprint (FoxIO,
//! BSD-3 licensed part only: `JA4`, not JA4+).

use crate::tls::handshake::{ext, is_grease, ClientHello};
use md5::Md5;
use sha2::{Digest, Sha256};

fn join<T: ToString>(v: impl Iterator<Item = T>, sep: &str) -> String {
    v.map(|x| x.to_string()).collect::<Vec<_>>().join(sep)
}

/// The JA3 string: `version,ciphers,extensions,groups,point_formats`, decimal, GREASE removed.
pub fn ja3_string(ch: &ClientHello) -> String {
    let ng = |v: &&u16| !is_grease(**v);
    format!(
        "{},{},{},{},{}",
        ch.version,
        join(ch.ciphers.iter().filter(ng), "-"),
        join(ch.extensions.iter().filter(ng), "-"),
        join(ch.groups.iter().filter(ng), "-"),
        join(ch.ec_point_formats.iter(), "-"),
    )
}

/// JA3: MD5 of the JA3 string, lowercase hex.
pub fn ja3(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

fn sha12(s: &str) -> String {
    if s.is_empty() {
        return "000000000000".into();
    }
    let h = hex::encode(Sha256::digest(s.as_bytes()));
    h.get(..12).unwrap_or_default().to_string()
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

/// First and last characters of the first ALPN value; hex of its bytes when not alphanumeric.
fn ja4_alpn(alpn: &[String]) -> String {
    let Some(first) = alpn.first().filter(|a| !a.is_empty()) else {
        return "00".into();
    };
    let b = first.as_bytes();
    let (Some(&f), Some(&l)) = (b.first(), b.last()) else {
        return "00".into();
    };
    if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() {
        format!("{}{}", f as char, l as char)
    } else {
        let h = hex::encode(b);
        let c = h.chars();
        format!(
            "{}{}",
            c.clone().next().unwrap_or('0'),
            c.last().unwrap_or('0')
        )
    }
}

/// JA4 TLS client fingerprint `a_b_c`. `proto` is 't' (TCP), 'q' (QUIC) or 'd' (DTLS).
pub fn ja4(ch: &ClientHello, proto: char) -> String {
    let version = ch
        .supported_versions
        .iter()
        .copied()
        .filter(|v| !is_grease(*v))
        .max()
        .unwrap_or(ch.version);
    // DTLS versions count downward: the "highest" is the smallest code.
    let version = if proto == 'd' {
        ch.supported_versions
            .iter()
            .copied()
            .filter(|v| !is_grease(*v))
            .min()
            .unwrap_or(ch.version)
    } else {
        version
    };
    let ciphers: Vec<u16> = ch
        .ciphers
        .iter()
        .copied()
        .filter(|c| !is_grease(*c))
        .collect();
    let exts: Vec<u16> = ch
        .extensions
        .iter()
        .copied()
        .filter(|e| !is_grease(*e))
        .collect();
    let sni = if exts.contains(&ext::SERVER_NAME) {
        'd'
    } else {
        'i'
    };
    let a = format!(
        "{proto}{}{sni}{:02}{:02}{}",
        ja4_version(version),
        ciphers.len().min(99),
        exts.len().min(99),
        ja4_alpn(&ch.alpn)
    );
    let mut sc = ciphers.clone();
    sc.sort_unstable();
    let b = sha12(&join(sc.iter().map(|c| format!("{c:04x}")), ","));
    let mut se: Vec<u16> = exts
        .iter()
        .copied()
        .filter(|e| *e != ext::SERVER_NAME && *e != ext::ALPN)
        .collect();
    se.sort_unstable();
    let mut cs = join(se.iter().map(|e| format!("{e:04x}")), ",");
    let sigs: Vec<String> = ch
        .sig_algs
        .iter()
        .filter(|s| !is_grease(**s))
        .map(|s| format!("{s:04x}"))
        .collect();
    if !sigs.is_empty() {
        cs.push('_');
        cs.push_str(&sigs.join(","));
    }
    let c = if se.is_empty() {
        "000000000000".to_string()
    } else {
        sha12(&cs)
    };
    format!("{a}_{b}_{c}")
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
