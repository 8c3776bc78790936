//! QUIC (v1, RFC 9000/9001; v2, RFC 9369): the TLS handshake carried in CRYPTO frames.
//!
//! Initial packets are protected with keys derived from the client's first Destination
//! Connection ID, which anyone on the path can compute: their CRYPTO frames give the ClientHello
//! (SNI, ALPN, JA4 `q`) and the ServerHello (version, cipher, key-exchange group) without any
//! secret. With a key log, the Handshake packets open too and give the server's chain (and an mTLS
//! client's). 1-RTT packets are never opened. Coalesced packets, Retry (new keys from the new
//! connection ID), Version Negotiation and padding are handled; CRYPTO data is reassembled by
//! offset, in any order, within bounds.

use std::collections::BTreeMap;

use ring::aead::quic::{self as hp, HeaderProtectionKey};
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf;

use crate::tls::decrypt::{
    TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256,
};
use crate::tls::reader::Rd;

pub const VERSION_1: u32 = 0x0000_0001;
pub const VERSION_2: u32 = 0x6b33_43cf;
/// RFC 9001 §5.2.
const SALT_V1: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad,
    0xcc, 0xbb, 0x7f, 0x0a,
];
/// RFC 9369 §3.3.1.
const SALT_V2: [u8; 20] = [
    0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb,
    0xf9, 0xbd, 0x2e, 0xd9,
];
/// Longest connection ID (RFC 9000 §17.2).
const MAX_CID_LEN: usize = 20;
/// CRYPTO bytes buffered per direction and space before they are contiguous.
pub const MAX_CRYPTO_BUFFER: usize = 256 * 1024;
/// Out-of-order CRYPTO fragments held per direction and space.
pub const MAX_CRYPTO_FRAGMENTS: usize = 256;
/// Packets that fail to open before a key set is given up.
const MAX_OPEN_FAILURES: u32 = 16;
/// Header-protection sample length.
const SAMPLE_LEN: usize = 16;

/// Packet number spaces with CRYPTO data trustmap reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    Initial,
    Handshake,
}

/// Long-header packet types, mapped from the version's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LongType {
    Initial,
    ZeroRtt,
    Handshake,
    Retry,
}

fn long_type(version: u32, bits: u8) -> LongType {
    // RFC 9369 §3.2 rotates the type codes.
    let bits = if version == VERSION_2 {
        (bits + 3) & 3
    } else {
        bits
    };
    match bits {
        0 => LongType::Initial,
        1 => LongType::ZeroRtt,
        2 => LongType::Handshake,
        _ => LongType::Retry,
    }
}

/// A version trustmap can read.
pub fn supported(version: u32) -> bool {
    version == VERSION_1 || version == VERSION_2
}

/// Does this datagram start with a QUIC long-header Initial packet of a supported version?
pub fn looks_like_initial(d: &[u8]) -> bool {
    let (Some(&b0), Some(v)) = (d.first(), d.get(1..5)) else {
        return false;
    };
    let version = u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
    b0 & 0xc0 == 0xc0
        && supported(version)
        && long_type(version, (b0 >> 4) & 3) == LongType::Initial
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand-Label with an empty context (RFC 8446 §7.1), as QUIC uses it, from a PRK.
fn expand_label_prk(prk: &hkdf::Prk, label: &[u8], out: &mut [u8]) -> Option<()> {
    let out_len = u16::try_from(out.len()).ok()?.to_be_bytes();
    let label_len = [u8::try_from(6 + label.len()).ok()?];
    let info: [&[u8]; 5] = [&out_len, &label_len, b"tls13 ", label, &[0]];
    prk.expand(&info, Len(out.len())).ok()?.fill(out).ok()
}

/// HKDF-Expand-Label from a traffic secret.
fn expand_label(alg: hkdf::Algorithm, secret: &[u8], label: &[u8], out: &mut [u8]) -> Option<()> {
    expand_label_prk(&hkdf::Prk::new_less_safe(alg, secret), label, out)
}

/// The keys of one direction in one packet-number space.
pub struct PacketKeys {
    key: LessSafeKey,
    iv: [u8; 12],
    hp: HeaderProtectionKey,
    /// Largest packet number opened (for decoding truncated packet numbers).
    largest: Option<u64>,
    failures: u32,
}

impl std::fmt::Debug for PacketKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketKeys")
            .field("largest", &self.largest)
            .finish()
    }
}

impl PacketKeys {
    /// Keys from a TLS traffic secret for `suite` (RFC 9001 §5.1; v2 labels per RFC 9369).
    pub fn from_secret(version: u32, suite: u16, secret: &[u8]) -> Option<Self> {
        let (aead_alg, hp_alg, hkdf_alg, key_len) = match suite {
            TLS_AES_128_GCM_SHA256 => (&aead::AES_128_GCM, &hp::AES_128, hkdf::HKDF_SHA256, 16),
            TLS_AES_256_GCM_SHA384 => (&aead::AES_256_GCM, &hp::AES_256, hkdf::HKDF_SHA384, 32),
            TLS_CHACHA20_POLY1305_SHA256 => (
                &aead::CHACHA20_POLY1305,
                &hp::CHACHA20,
                hkdf::HKDF_SHA256,
                32,
            ),
            _ => return None,
        };
        let (l_key, l_iv, l_hp): (&[u8], &[u8], &[u8]) = if version == VERSION_2 {
            (b"quicv2 key", b"quicv2 iv", b"quicv2 hp")
        } else {
            (b"quic key", b"quic iv", b"quic hp")
        };
        let mut key = [0u8; 32];
        let key = key.get_mut(..key_len)?;
        expand_label(hkdf_alg, secret, l_key, key)?;
        let mut iv = [0u8; 12];
        expand_label(hkdf_alg, secret, l_iv, &mut iv)?;
        let mut hpk = [0u8; 32];
        let hpk = hpk.get_mut(..key_len)?;
        expand_label(hkdf_alg, secret, l_hp, hpk)?;
        Some(PacketKeys {
            key: LessSafeKey::new(UnboundKey::new(aead_alg, key).ok()?),
            iv,
            hp: HeaderProtectionKey::new(hp_alg, hpk).ok()?,
            largest: None,
            failures: 0,
        })
    }

    /// The Initial keys of both directions (client, server) for a client's Destination
    /// Connection ID (RFC 9001 §5.2).
    pub fn initial(version: u32, dcid: &[u8]) -> Option<(PacketKeys, PacketKeys)> {
        let salt = if version == VERSION_2 {
            &SALT_V2[..]
        } else {
            &SALT_V1[..]
        };
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(dcid);
        let secret = |label: &[u8]| -> Option<[u8; 32]> {
            let mut s = [0u8; 32];
            expand_label_prk(&prk, label, &mut s)?;
            Some(s)
        };
        let (c, s) = (secret(b"client in")?, secret(b"server in")?);
        Some((
            PacketKeys::from_secret(version, TLS_AES_128_GCM_SHA256, &c)?,
            PacketKeys::from_secret(version, TLS_AES_128_GCM_SHA256, &s)?,
        ))
    }

    fn exhausted(&self) -> bool {
        self.failures >= MAX_OPEN_FAILURES
    }

    /// Removes header protection and opens one long-header packet: `packet` is the whole packet
    /// (its end given by the Length field), `pn_off` the offset of the packet number. Returns the
    /// plaintext frames.
    fn open(&mut self, packet: &[u8], pn_off: usize) -> Option<Vec<u8>> {
        let sample = packet.get(pn_off + 4..pn_off + 4 + SAMPLE_LEN)?;
        let Ok(mask) = self.hp.new_mask(sample) else {
            self.failures += 1;
            return None;
        };
        let mut header = packet.get(..pn_off + 4)?.to_vec();
        let first = header.first_mut()?;
        *first ^= mask.first()? & 0x0f;
        let pn_len = usize::from(*first & 0x03) + 1;
        header.truncate(pn_off + pn_len);
        let mut truncated = 0u64;
        for (i, m) in mask.iter().skip(1).take(pn_len).enumerate() {
            let b = header.get_mut(pn_off + i)?;
            *b ^= m;
            truncated = (truncated << 8) | u64::from(*b);
        }
        let pn = decode_pn(self.largest, truncated, pn_len);
        let mut nonce = self.iv;
        for (n, p) in nonce.iter_mut().skip(4).zip(pn.to_be_bytes()) {
            *n ^= p;
        }
        let mut payload = packet.get(pn_off + pn_len..)?.to_vec();
        match self.key.open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&header[..]),
            &mut payload,
        ) {
            Ok(plain) => {
                let n = plain.len();
                payload.truncate(n);
                self.largest = Some(self.largest.map_or(pn, |l| l.max(pn)));
                Some(payload)
            }
            Err(_) => {
                self.failures += 1;
                None
            }
        }
    }
}

/// RFC 9000 §A.3.
fn decode_pn(largest: Option<u64>, truncated: u64, pn_len: usize) -> u64 {
    let expected = largest.map_or(0, |l| l.wrapping_add(1));
    let bits = 8 * pn_len as u32;
    let win = 1u64 << bits;
    let hwin = win / 2;
    let mask = win - 1;
    let candidate = (expected & !mask) | truncated;
    if candidate.wrapping_add(hwin) <= expected && candidate < (1u64 << 62) - win {
        candidate + win
    } else if candidate > expected.wrapping_add(hwin) && candidate >= win {
        candidate - win
    } else {
        candidate
    }
}

/// A QUIC variable-length integer.
fn varint(r: &mut Rd<'_>) -> Option<u64> {
    let b0 = r.u8()?;
    let len = 1usize << (b0 >> 6);
    let mut v = u64::from(b0 & 0x3f);
    for _ in 1..len {
        v = (v << 8) | u64::from(r.u8()?);
    }
    Some(v)
}

/// CRYPTO data of one direction and space, joined by offset.
#[derive(Debug, Default)]
struct CryptoStream {
    /// Bytes delivered so far (the next expected offset).
    next: u64,
    pending: BTreeMap<u64, Vec<u8>>,
    pending_bytes: usize,
    /// A bound was hit: the stream is no longer followed.
    overflow: bool,
}

impl CryptoStream {
    /// Adds one CRYPTO frame; appends newly contiguous bytes to `out`.
    fn add(&mut self, offset: u64, data: &[u8], out: &mut Vec<u8>) {
        if self.overflow {
            return;
        }
        let end = offset.saturating_add(data.len() as u64);
        if end <= self.next {
            return; // retransmission
        }
        let skip = usize::try_from(self.next.saturating_sub(offset)).unwrap_or(usize::MAX);
        let (offset, data) = (offset.max(self.next), data.get(skip..).unwrap_or_default());
        if offset > self.next {
            if self.pending.len() >= MAX_CRYPTO_FRAGMENTS
                || self.pending_bytes + data.len() > MAX_CRYPTO_BUFFER
            {
                self.overflow = true;
                return;
            }
            self.pending_bytes += data.len();
            self.pending.insert(offset, data.to_vec());
            return;
        }
        out.extend_from_slice(data);
        self.next = end;
        while let Some((&o, _)) = self.pending.first_key_value() {
            if o > self.next {
                break;
            }
            let Some((o, d)) = self.pending.pop_first() else {
                break;
            };
            self.pending_bytes -= d.len();
            let e = o.saturating_add(d.len() as u64);
            if e > self.next {
                let skip = usize::try_from(self.next - o).unwrap_or(usize::MAX);
                out.extend_from_slice(d.get(skip..).unwrap_or_default());
                self.next = e;
            }
        }
    }
}

/// What the frames of opened packets gave.
#[derive(Debug, Default)]
pub struct Frames {
    /// Contiguous CRYPTO bytes per space, in order.
    pub crypto: Vec<(Space, Vec<u8>)>,
    /// A CONNECTION_CLOSE carrying a TLS alert (error code 0x0100 + alert).
    pub tls_alert: Option<u8>,
    /// A Retry: the client starts over (a new ClientHello, CRYPTO offsets from 0, new Initial
    /// keys from the new connection ID).
    pub retry: bool,
}

/// The QUIC side of one UDP flow.
#[derive(Debug, Default)]
pub struct QuicConn {
    pub version: u32,
    /// Initial keys: [client, server], from the client's Destination Connection ID.
    initial: Option<Box<[PacketKeys; 2]>>,
    /// Handshake keys from a key log: [client, server].
    handshake: [Option<Box<PacketKeys>>; 2],
    /// The DCID the Initial keys came from.
    dcid: Vec<u8>,
    /// A Retry was seen: the next client Initial's DCID gives new Initial keys.
    retried: bool,
    crypto: [[CryptoStream; 2]; 2],
    /// 1-RTT (short header) packets seen per side (client, server).
    pub short_packets: [u64; 2],
    pub version_negotiation: bool,
    pub undecryptable: u64,
}

fn side_index(client: bool) -> usize {
    usize::from(!client)
}

fn space_index(s: Space) -> usize {
    match s {
        Space::Initial => 0,
        Space::Handshake => 1,
    }
}

impl QuicConn {
    /// Handshake keys from a key log's TLS secrets, once the ServerHello named the suite.
    pub fn set_handshake_keys(&mut self, suite: u16, client: Option<&[u8]>, server: Option<&[u8]>) {
        let v = self.version;
        self.handshake = [
            client.and_then(|s| PacketKeys::from_secret(v, suite, s).map(Box::new)),
            server.and_then(|s| PacketKeys::from_secret(v, suite, s).map(Box::new)),
        ];
    }

    pub fn has_handshake_keys(&self) -> bool {
        self.handshake.iter().any(Option::is_some)
    }

    /// The first packet of `d` (a UDP datagram may coalesce several) from the client
    /// (`from_client`) or the server: opened where keys allow, its frames read. Returns the
    /// packet's length (the caller goes on with the rest, after acting on the frames: a
    /// ServerHello may bring the keys of the next packet) and what its frames gave; `None` when
    /// nothing more can be read from `d`.
    pub fn packet(&mut self, from_client: bool, d: &[u8]) -> Option<(usize, Frames)> {
        let b0 = *d.first()?;
        let mut out = Frames::default();
        if b0 & 0x80 == 0 {
            // Short header: 1-RTT, never opened; it fills the rest of the datagram.
            if b0 & 0x40 != 0 {
                self.short_packets[side_index(from_client)] += 1;
            }
            return Some((d.len(), out));
        }
        let len = self.long_packet(from_client, d, &mut out)?;
        (len > 0 && len <= d.len()).then_some((len, out))
    }

    /// One long-header packet at the start of `d`; returns its length.
    fn long_packet(&mut self, from_client: bool, d: &[u8], out: &mut Frames) -> Option<usize> {
        let mut r = Rd::new(d);
        let b0 = r.u8()?;
        let version = u32::from_be_bytes(r.take(4)?.try_into().ok()?);
        if version == 0 {
            self.version_negotiation = true;
            return None;
        }
        if !supported(version) {
            return None;
        }
        let dcid = r.vec8()?;
        let scid = r.vec8()?;
        if dcid.len() > MAX_CID_LEN || scid.len() > MAX_CID_LEN {
            return None;
        }
        let typ = long_type(version, (b0 >> 4) & 3);
        if typ == LongType::Retry {
            // A Retry fills the rest of its datagram.
            self.retried = true;
            self.crypto = Default::default();
            out.retry = true;
            return Some(d.len());
        }
        if typ == LongType::Initial {
            let _token = usize::try_from(varint(&mut r)?)
                .ok()
                .and_then(|n| r.take(n))?;
        }
        let len = usize::try_from(varint(&mut r)?).ok()?;
        let pn_off = d.len() - r.len();
        let total = pn_off.checked_add(len)?;
        let packet = d.get(..total)?;
        if self.version == 0 {
            self.version = version;
        }
        let space = match typ {
            LongType::Initial => Space::Initial,
            LongType::Handshake => Space::Handshake,
            _ => return Some(total), // 0-RTT: application data, never opened
        };
        if space == Space::Initial && from_client && (self.initial.is_none() || self.retried) {
            if self.initial.is_none() || dcid != self.dcid.as_slice() {
                self.initial = PacketKeys::initial(version, dcid).map(|(c, s)| Box::new([c, s]));
                self.dcid = dcid.to_vec();
            }
            self.retried = false;
        }
        let side = side_index(from_client);
        let keys = match space {
            Space::Initial => self.initial.as_deref_mut().and_then(|k| k.get_mut(side)),
            Space::Handshake => self.handshake.get_mut(side).and_then(|k| k.as_deref_mut()),
        };
        let Some(keys) = keys.filter(|k| !k.exhausted()) else {
            return Some(total);
        };
        match keys.open(packet, pn_off) {
            Some(plain) => self.frames(from_client, space, &plain, out),
            None => self.undecryptable += 1,
        }
        Some(total)
    }

    /// The frames of one opened packet.
    fn frames(&mut self, from_client: bool, space: Space, plain: &[u8], out: &mut Frames) {
        let mut r = Rd::new(plain);
        let stream = &mut self.crypto[space_index(space)][side_index(from_client)];
        let mut joined = Vec::new();
        while !r.is_empty() {
            let Some(t) = varint(&mut r) else { break };
            match t {
                0x00 | 0x01 => {} // PADDING, PING
                0x02 | 0x03 => {
                    // ACK: largest, delay, range count, first range, ranges, [ECN counts]
                    let ok = (|| {
                        varint(&mut r)?;
                        varint(&mut r)?;
                        let n = varint(&mut r)?;
                        varint(&mut r)?;
                        for _ in 0..n.min(1024) {
                            varint(&mut r)?;
                            varint(&mut r)?;
                        }
                        if t == 0x03 {
                            for _ in 0..3 {
                                varint(&mut r)?;
                            }
                        }
                        Some(())
                    })();
                    if ok.is_none() {
                        break;
                    }
                }
                0x06 => {
                    let (Some(off), Some(len)) = (varint(&mut r), varint(&mut r)) else {
                        break;
                    };
                    let Some(data) = usize::try_from(len).ok().and_then(|n| r.take(n)) else {
                        break;
                    };
                    stream.add(off, data, &mut joined);
                }
                0x1c | 0x1d => {
                    let code = varint(&mut r);
                    if let Some(c) = code.filter(|c| (0x0100..0x0200).contains(c)) {
                        out.tls_alert = u8::try_from(c - 0x0100).ok();
                    }
                    break;
                }
                _ => break, // not allowed in Initial/Handshake packets: stop reading
            }
        }
        if !joined.is_empty() {
            out.crypto.push((space, joined));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9001 Appendix A.1: the client's Initial keys for DCID 0x8394c8f03e515708.
    #[test]
    fn rfc9001_initial_keys() {
        let dcid = hex::decode("8394c8f03e515708").unwrap();
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &SALT_V1).extract(&dcid);
        let mut secret = [0u8; 32];
        expand_label_prk(&prk, b"client in", &mut secret).unwrap();
        assert_eq!(
            hex::encode(secret),
            "c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea"
        );
        let mut key = [0u8; 16];
        expand_label(hkdf::HKDF_SHA256, &secret, b"quic key", &mut key).unwrap();
        assert_eq!(hex::encode(key), "1f369613dd76d5467730efcbe3b1a22d");
        let mut iv = [0u8; 12];
        expand_label(hkdf::HKDF_SHA256, &secret, b"quic iv", &mut iv).unwrap();
        assert_eq!(hex::encode(iv), "fa044b2f42a3fd3b46fb255c");
        let mut hpk = [0u8; 16];
        expand_label(hkdf::HKDF_SHA256, &secret, b"quic hp", &mut hpk).unwrap();
        assert_eq!(hex::encode(hpk), "9f50449e04a0e810283a1e9933adedd2");
    }

    #[test]
    fn packet_numbers_and_varints() {
        // RFC 9000 A.3 example: largest 0xa82f30ea, truncated 0x9b32 (2 bytes) -> 0xa82f9b32.
        assert_eq!(decode_pn(Some(0xa82f30ea), 0x9b32, 2), 0xa82f9b32);
        assert_eq!(decode_pn(None, 0, 1), 0);
        let mut r = Rd::new(&[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c]);
        assert_eq!(varint(&mut r), Some(151_288_809_941_952_652));
        let mut r = Rd::new(&[0x40, 0x25]);
        assert_eq!(varint(&mut r), Some(37));
        assert_eq!(varint(&mut Rd::new(&[0x80, 1])), None);
    }

    /// Anyone can make Initial packets that open (their keys are public), so what they carry is
    /// hostile: random frames, random packets and random CRYPTO offsets never panic and stay
    /// within bounds.
    #[test]
    fn hostile_frames_and_packets_never_panic() {
        let mut rng = testkit::Rng::new(0x7175_6963);
        let mut c = QuicConn::default();
        for i in 0..20_000 {
            let n = rng.index(1400);
            let bytes = rng.bytes(n);
            let mut out = Frames::default();
            let space = if i % 2 == 0 {
                Space::Initial
            } else {
                Space::Handshake
            };
            c.frames(i % 3 == 0, space, &bytes, &mut out);
            let mut d = rng.bytes(n);
            if let Some(b) = d.first_mut() {
                *b |= 0xc0; // a long header
            }
            if let Some(v) = d.get_mut(1..5) {
                v.copy_from_slice(&VERSION_1.to_be_bytes());
            }
            let mut rest = &d[..];
            while let Some((len, _)) = c.packet(i % 2 == 0, rest) {
                rest = rest.get(len..).unwrap_or_default();
            }
        }
        for s in c.crypto.iter().flatten() {
            assert!(s.pending_bytes <= MAX_CRYPTO_BUFFER);
            assert!(s.pending.len() <= MAX_CRYPTO_FRAGMENTS);
        }
    }

    #[test]
    fn crypto_frames_join_in_any_order_within_bounds() {
        let mut s = CryptoStream::default();
        let mut out = Vec::new();
        s.add(5, b"fghij", &mut out);
        assert!(out.is_empty());
        s.add(0, b"abcde", &mut out);
        assert_eq!(out, b"abcdefghij");
        s.add(3, b"defghijk", &mut out);
        assert_eq!(out, b"abcdefghijk");
        let mut big = CryptoStream::default();
        big.add(10, &vec![0; MAX_CRYPTO_BUFFER + 1], &mut out);
        assert!(big.overflow);
    }
}
