//! SHA-256 values: `[u8; 32]` everywhere inside trustmap, lowercase hex only where text is read
//! (rule files) or written (events, the inventory, reports).

/// A SHA-256 digest (of a certificate's DER, or of its SubjectPublicKeyInfo).
pub type Sha256 = [u8; 32];

/// Parses 64 hex digits (either case; the colon-separated form openssl prints is accepted).
pub fn parse_hex(s: &str) -> Option<Sha256> {
    let mut out = [0u8; 32];
    let mut digits = s.trim().bytes().filter(|b| *b != b':');
    for byte in &mut out {
        let hi = hex_val(digits.next()?)?;
        let lo = hex_val(digits.next()?)?;
        *byte = hi << 4 | lo;
    }
    digits.next().is_none().then_some(out)
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Lowercase hex.
pub fn to_hex(d: &Sha256) -> String {
    let mut buf = [0u8; 64];
    // The buffer is exactly twice the input: encode_to_slice cannot fail here.
    let _ = hex::encode_to_slice(d, &mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// `#[serde(serialize_with = "...")]` helpers: a digest as lowercase hex.
pub mod ser {
    use super::{to_hex, Sha256};
    use serde::Serializer;

    pub fn hex<S: Serializer>(d: &Sha256, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&to_hex(d))
    }

    pub fn hex_opt<S: Serializer>(d: &Option<Sha256>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&to_hex(d)),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejects() {
        let h = "00ff".repeat(16);
        let d = parse_hex(&h).unwrap();
        assert_eq!(d[0], 0);
        assert_eq!(d[1], 0xff);
        assert_eq!(to_hex(&d), h);
        assert_eq!(parse_hex(&h.to_ascii_uppercase()), Some(d));
        let colons: Vec<String> = d.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(parse_hex(&colons.join(":")), Some(d));
        assert_eq!(parse_hex(&h[..62]), None);
        assert_eq!(parse_hex(&format!("{h}00")), None);
        assert_eq!(parse_hex(&format!("{}zz", &h[..62])), None);
        assert_eq!(parse_hex(""), None);
    }
}
