//! TLS 1.3 record protection (RFC 8446 §5.2, §7.3), for the encrypted handshake flight only.
//!
//! A [`HandshakeDecrypter`] is made from one direction's handshake traffic secret (from a key
//! log) and the negotiated suite; it opens that direction's records in order (sequence numbers
//! from 0) until the direction's Finished, and is then dropped: the application traffic keys are
//! never derived, so application data is never decrypted. HKDF and the AEADs are `ring`'s (already
//! in the tree through x509-parser's signature checks).

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf;

/// TLS 1.3 cipher suites supported: AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305 (RFC 8446 B.4).
pub const TLS_AES_128_GCM_SHA256: u16 = 0x1301;
pub const TLS_AES_256_GCM_SHA384: u16 = 0x1302;
pub const TLS_CHACHA20_POLY1305_SHA256: u16 = 0x1303;

/// Record header length (the AEAD's additional data).
const HEADER_LEN: usize = 5;
/// Largest TLSCiphertext body (2^14 + 256, RFC 8446 §5.2).
pub const MAX_CIPHERTEXT: usize = (1 << 14) + 256;
/// Records that fail to open before the decrypter gives up (0-RTT data under early keys, or a
/// secret that belongs to another connection).
pub const MAX_FAILURES: u8 = 4;

/// Length type for HKDF-Expand with a caller-chosen output size.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand-Label(secret, label, "", len) (RFC 8446 §7.1).
fn expand_label(alg: hkdf::Algorithm, secret: &[u8], label: &[u8], out: &mut [u8]) -> Option<()> {
    let full_len = 6 + label.len();
    let out_len = u16::try_from(out.len()).ok()?.to_be_bytes();
    let label_len = [u8::try_from(full_len).ok()?];
    let info: [&[u8]; 5] = [&out_len, &label_len, b"tls13 ", label, &[0]];
    let prk = hkdf::Prk::new_less_safe(alg, secret);
    prk.expand(&info, Len(out.len())).ok()?.fill(out).ok()
}

/// What one opened record held: its real content type and plaintext.
#[derive(Debug, PartialEq, Eq)]
pub struct Opened {
    pub content_type: u8,
    pub plaintext: Vec<u8>,
}

/// Opens one direction's records under its handshake traffic keys.
pub struct HandshakeDecrypter {
    key: LessSafeKey,
    iv: [u8; 12],
    seq: u64,
    /// Records that failed to open.
    pub failures: u8,
    /// Records opened.
    pub opened: u64,
}

impl std::fmt::Debug for HandshakeDecrypter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandshakeDecrypter")
            .field("seq", &self.seq)
            .field("failures", &self.failures)
            .finish()
    }
}

impl HandshakeDecrypter {
    /// Keys for `suite` from a handshake traffic `secret`; `None` for another suite or a secret
    /// of the wrong size.
    pub fn new(suite: u16, secret: &[u8]) -> Option<Self> {
        let (aead_alg, hkdf_alg, key_len, secret_len) = match suite {
            TLS_AES_128_GCM_SHA256 => (&aead::AES_128_GCM, hkdf::HKDF_SHA256, 16, 32),
            TLS_AES_256_GCM_SHA384 => (&aead::AES_256_GCM, hkdf::HKDF_SHA384, 32, 48),
            TLS_CHACHA20_POLY1305_SHA256 => (&aead::CHACHA20_POLY1305, hkdf::HKDF_SHA256, 32, 32),
            _ => return None,
        };
        if secret.len() != secret_len {
            return None;
        }
        let mut key = [0u8; 32];
        let key = key.get_mut(..key_len)?;
        expand_label(hkdf_alg, secret, b"key", key)?;
        let mut iv = [0u8; 12];
        expand_label(hkdf_alg, secret, b"iv", &mut iv)?;
        let key = LessSafeKey::new(UnboundKey::new(aead_alg, key).ok()?);
        Some(HandshakeDecrypter {
            key,
            iv,
            seq: 0,
            failures: 0,
            opened: 0,
        })
    }

    /// Gave up: too many records failed to open.
    pub fn exhausted(&self) -> bool {
        self.failures >= MAX_FAILURES
    }

    /// Opens one whole record (header and body, outer type application_data). A record that does
    /// not open is counted and leaves the sequence number where it was (it was under other keys).
    pub fn open(&mut self, record: &[u8]) -> Option<Opened> {
        let (header, body) = (record.get(..HEADER_LEN)?, record.get(HEADER_LEN..)?);
        if body.len() > MAX_CIPHERTEXT || body.len() < self.key.algorithm().tag_len() + 1 {
            self.failures = self.failures.saturating_add(1);
            return None;
        }
        let mut nonce = self.iv;
        for (n, s) in nonce.iter_mut().skip(4).zip(self.seq.to_be_bytes()) {
            *n ^= s;
        }
        let mut buf = body.to_vec();
        let opened = self.key.open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(header),
            &mut buf,
        );
        let Ok(plain) = opened else {
            self.failures = self.failures.saturating_add(1);
            return None;
        };
        let plain_len = plain.len();
        self.seq = self.seq.wrapping_add(1);
        self.opened += 1;
        buf.truncate(plain_len);
        // TLSInnerPlaintext: content, the real type, zero padding.
        let end = buf.iter().rposition(|b| *b != 0)?;
        let content_type = *buf.get(end)?;
        buf.truncate(end);
        Some(Opened {
            content_type,
            plaintext: buf,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8448 §3 (simple 1-RTT handshake): the server handshake traffic secret, its key and iv.
    #[test]
    fn rfc8448_server_handshake_keys() {
        let secret =
            hex::decode("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38")
                .unwrap();
        let mut key = [0u8; 16];
        expand_label(hkdf::HKDF_SHA256, &secret, b"key", &mut key).unwrap();
        assert_eq!(hex::encode(key), "3fce516009c21727d0f2e4e86ee403bc");
        let mut iv = [0u8; 12];
        expand_label(hkdf::HKDF_SHA256, &secret, b"iv", &mut iv).unwrap();
        assert_eq!(hex::encode(iv), "5d313eb2671276ee13000b30");
    }

    #[test]
    fn short_or_damaged_records_fail_without_panicking() {
        let mut d = HandshakeDecrypter::new(TLS_AES_128_GCM_SHA256, &[7; 32]).unwrap();
        assert!(d.open(&[0x17, 3, 3]).is_none());
        assert!(d.open(&[0x17, 3, 3, 0, 17, 1, 2, 3]).is_none());
        let mut junk = vec![0x17, 3, 3, 0, 40];
        junk.extend_from_slice(&[0x55; 40]);
        for _ in 0..MAX_FAILURES {
            assert!(d.open(&junk).is_none());
        }
        assert!(d.exhausted());
    }

    #[test]
    fn round_trip_each_suite_and_padding() {
        for (suite, len) in [
            (TLS_AES_128_GCM_SHA256, 32),
            (TLS_AES_256_GCM_SHA384, 48),
            (TLS_CHACHA20_POLY1305_SHA256, 32),
        ] {
            let secret = vec![0x42; len];
            let mut d = HandshakeDecrypter::new(suite, &secret).unwrap();
            // Seal like a peer would, with the same derivation.
            let (alg, h, kl) = match suite {
                TLS_AES_128_GCM_SHA256 => (&aead::AES_128_GCM, hkdf::HKDF_SHA256, 16),
                TLS_AES_256_GCM_SHA384 => (&aead::AES_256_GCM, hkdf::HKDF_SHA384, 32),
                _ => (&aead::CHACHA20_POLY1305, hkdf::HKDF_SHA256, 32),
            };
            let mut key = vec![0u8; kl];
            expand_label(h, &secret, b"key", &mut key).unwrap();
            let mut iv = [0u8; 12];
            expand_label(h, &secret, b"iv", &mut iv).unwrap();
            let sealer = LessSafeKey::new(UnboundKey::new(alg, &key).unwrap());
            for seq in 0u64..3 {
                let mut nonce = iv;
                for (n, s) in nonce.iter_mut().skip(4).zip(seq.to_be_bytes()) {
                    *n ^= s;
                }
                let mut body = b"\x0b\x00\x00\x01\x00".to_vec();
                body.push(22); // inner type: handshake
                body.extend_from_slice(&[0, 0, 0]); // padding
                let n = body.len() + alg.tag_len();
                let header = [0x17, 3, 3, (n >> 8) as u8, n as u8];
                sealer
                    .seal_in_place_append_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(header),
                        &mut body,
                    )
                    .unwrap();
                let mut rec = header.to_vec();
                rec.extend_from_slice(&body);
                let o = d.open(&rec).unwrap();
                assert_eq!(o.content_type, 22);
                assert_eq!(o.plaintext, b"\x0b\x00\x00\x01\x00");
            }
            assert!(HandshakeDecrypter::new(suite, &secret[..len - 1]).is_none());
        }
        assert!(HandshakeDecrypter::new(0x1304, &[0; 32]).is_none());
    }
}
