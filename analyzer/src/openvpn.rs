//! OpenVPN's control channel (the reliability layer that carries its TLS handshake), over TCP
//! (each packet behind a 2-byte length) and UDP.
//!
//! A control packet is: opcode and key id (1 byte), the sender's session id (8), then, with
//! `tls-auth`, an HMAC of the configured digest (16 to 64 bytes), a replay packet id (4) and a
//! time (4); then an array of acknowledged message ids (a count, 4 bytes each, and the peer's
//! session id when the count is not 0) and, except in a bare ACK, the packet's own message id
//! (4) and its payload. The payloads of `P_CONTROL_V1` packets, in message-id order, are the TLS
//! byte stream. Nothing in the packet says whether `tls-auth` is on, or its digest: it is detected
//! on the first hard-reset packet, whose message id is 0 and whose replay time is the capture's
//! time. With `tls-crypt` (and `tls-crypt-v2`) everything after that header is encrypted: the
//! flow is counted as such and nothing is read from it.
//!
//! Retransmissions (the same message id again) are dropped; packets ahead of the next expected
//! id are held (bounded) until the gap is filled.

use std::collections::BTreeMap;

/// Opcodes (the high 5 bits of the first byte).
mod op {
    pub const HARD_RESET_CLIENT_V1: u8 = 1;
    pub const HARD_RESET_SERVER_V1: u8 = 2;
    pub const SOFT_RESET_V1: u8 = 3;
    pub const CONTROL_V1: u8 = 4;
    pub const ACK_V1: u8 = 5;
    pub const DATA_V1: u8 = 6;
    pub const HARD_RESET_CLIENT_V2: u8 = 7;
    pub const HARD_RESET_SERVER_V2: u8 = 8;
    pub const DATA_V2: u8 = 9;
    pub const HARD_RESET_CLIENT_V3: u8 = 10;
    pub const CONTROL_WKC_V1: u8 = 11;
}
const OPCODE_SHIFT: u32 = 3;
const KEY_ID_MASK: u8 = 0x07;

const OPCODE_LEN: usize = 1;
const SESSION_ID_LEN: usize = 8;
/// tls-auth / tls-crypt replay protection: packet id and time.
const REPLAY_LEN: usize = 8;
/// tls-crypt's authentication tag (HMAC-SHA256).
const TLS_CRYPT_TAG_LEN: usize = 32;
const MSG_ID_LEN: usize = 4;
/// Most message ids acknowledged in one packet (OpenVPN sends at most 8).
const MAX_ACKS: usize = 8;
/// HMAC sizes tried for tls-auth: MD5, SHA-1, SHA-224, SHA-256, SHA-384, SHA-512.
const HMAC_SIZES: [usize; 6] = [16, 20, 28, 32, 48, 64];
/// A replay time within this many seconds of the capture time is believed.
const TIME_SLACK_S: u64 = 400 * 86_400;
/// Largest replay packet id believed in a hard reset (the first packets of a session).
const MAX_FIRST_REPLAY_ID: u32 = 16;

/// Largest OpenVPN packet believed behind a TCP length prefix.
pub const MAX_PACKET: usize = 4096;
/// Smallest control packet: opcode, session id, ack count, message id.
const MIN_PACKET: usize = OPCODE_LEN + SESSION_ID_LEN + 1 + MSG_ID_LEN;
/// Control packets held ahead of a gap, per direction.
pub const MAX_HELD: usize = 64;

/// How the control channel is protected, as detected on its first packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    None,
    /// tls-auth with an HMAC of this many bytes.
    TlsAuth(usize),
    /// tls-crypt: encrypted, nothing to read.
    TlsCrypt,
}

/// Whether `first` (an opcode byte) starts a session: a hard reset with key id 0.
fn is_hard_reset(first: u8) -> bool {
    first & KEY_ID_MASK == 0
        && matches!(
            first >> OPCODE_SHIFT,
            op::HARD_RESET_CLIENT_V1
                | op::HARD_RESET_SERVER_V1
                | op::HARD_RESET_CLIENT_V2
                | op::HARD_RESET_SERVER_V2
                | op::HARD_RESET_CLIENT_V3
        )
}

/// The big-endian 2-byte length at `at`.
fn u16_at(b: &[u8], at: usize) -> Option<usize> {
    let l: [u8; 2] = b.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(usize::from(u16::from_be_bytes(l)))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at.checked_add(4)?)?
        .try_into()
        .ok()
        .map(u32::from_be_bytes)
}

/// Detects the protection from a hard-reset packet sent at capture time `ts_s` (seconds);
/// `None` when the packet is not a plausible OpenVPN hard reset.
pub fn detect(pkt: &[u8], ts_s: u64) -> Option<Protection> {
    if pkt.len() < MIN_PACKET || !is_hard_reset(*pkt.first()?) {
        return None;
    }
    let after_sid = OPCODE_LEN + SESSION_ID_LEN;
    // Replay protection at `at`: a small packet id and a time close to the capture's.
    let replay_at = |at: usize| {
        let id = u32_at(pkt, at);
        let t = u32_at(pkt, at + 4).map(u64::from);
        matches!(id, Some(1..=MAX_FIRST_REPLAY_ID))
            && t.is_some_and(|t| t.abs_diff(ts_s) <= TIME_SLACK_S)
    };
    // No protection: an empty ack array and message id 0.
    if pkt.get(after_sid) == Some(&0) && u32_at(pkt, after_sid + 1) == Some(0) {
        return Some(Protection::None);
    }
    if replay_at(after_sid) {
        return Some(Protection::TlsCrypt);
    }
    HMAC_SIZES.iter().copied().find_map(|h| {
        let acks = after_sid + h + REPLAY_LEN;
        (replay_at(after_sid + h) && pkt.get(acks).is_some_and(|&n| usize::from(n) <= MAX_ACKS))
            .then_some(Protection::TlsAuth(h))
    })
}

/// A looked-at control packet.
#[derive(Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    /// A message of the reliability layer: its id, and its TLS bytes (empty for a reset).
    Message { id: u32, tls: &'a [u8] },
    /// An acknowledgement, a data-channel packet, or a key renegotiation's packet (not read).
    Other,
    /// Encrypted (tls-crypt).
    Encrypted,
}

/// Parses one packet of a channel with protection `p`; `None` when it does not parse.
pub fn parse(pkt: &[u8], p: Protection) -> Option<Packet<'_>> {
    let first = *pkt.first()?;
    let opcode = first >> OPCODE_SHIFT;
    match opcode {
        op::DATA_V1 | op::DATA_V2 | op::SOFT_RESET_V1 => return Some(Packet::Other),
        op::CONTROL_WKC_V1 => return Some(Packet::Encrypted),
        _ if first & KEY_ID_MASK != 0 => return Some(Packet::Other),
        _ => {}
    }
    let mut at = OPCODE_LEN + SESSION_ID_LEN;
    match p {
        Protection::None => {}
        Protection::TlsAuth(h) => at += h + REPLAY_LEN,
        Protection::TlsCrypt => {
            return (pkt.len() >= at + REPLAY_LEN + TLS_CRYPT_TAG_LEN).then_some(Packet::Encrypted)
        }
    }
    let acks = usize::from(*pkt.get(at)?);
    if acks > MAX_ACKS {
        return None;
    }
    at += 1 + acks * MSG_ID_LEN;
    if acks > 0 {
        at += SESSION_ID_LEN;
    }
    if opcode == op::ACK_V1 {
        return (at <= pkt.len()).then_some(Packet::Other);
    }
    let id = u32_at(pkt, at)?;
    let payload = pkt.get(at + MSG_ID_LEN..)?;
    let tls = if opcode == op::CONTROL_V1 {
        payload
    } else {
        &[][..]
    };
    Some(Packet::Message { id, tls })
}

/// One direction's reliability layer: the TLS bytes in message-id order.
#[derive(Debug, Default)]
pub struct Reliable {
    next: u32,
    held: BTreeMap<u32, Vec<u8>>,
    /// Set when a gap could not be held: nothing more is delivered.
    pub broken: bool,
}

impl Reliable {
    /// Takes message `id`; calls `deliver` with every TLS payload now in order.
    pub fn push(&mut self, id: u32, tls: &[u8], mut deliver: impl FnMut(&[u8])) {
        if self.broken || id < self.next {
            return; // broken, or a retransmission
        }
        if id > self.next {
            if self.held.len() >= MAX_HELD && !self.held.contains_key(&id) {
                self.broken = true;
                self.held.clear();
                return;
            }
            self.held.entry(id).or_insert_with(|| tls.to_vec());
            return;
        }
        deliver(tls);
        self.next = self.next.wrapping_add(1);
        while let Some(t) = self.held.remove(&self.next) {
            deliver(&t);
            self.next = self.next.wrapping_add(1);
        }
    }
}

/// A TCP direction's 2-byte length framing: whole packets out of the byte stream.
#[derive(Debug, Default)]
pub struct TcpFraming {
    buf: Vec<u8>,
    /// A length outside what OpenVPN sends: the stream is not followed any further.
    pub broken: bool,
}

impl TcpFraming {
    /// Appends `data`; calls `packet` with each complete packet.
    pub fn push(&mut self, data: &[u8], mut packet: impl FnMut(&[u8])) {
        if self.broken {
            return;
        }
        self.buf.extend_from_slice(data);
        let mut at = 0;
        while let Some(len) = u16_at(&self.buf, at) {
            if !(MIN_PACKET..=MAX_PACKET).contains(&len) {
                self.broken = true;
                self.buf = Vec::new();
                return;
            }
            let Some(p) = self.buf.get(at + 2..at + 2 + len) else {
                break;
            };
            packet(p);
            at += 2 + len;
        }
        // Only what is left of a packet stays (at most MAX_PACKET + 1 bytes).
        self.buf.drain(..at.min(self.buf.len()));
    }
}

/// Whether the first bytes of a TCP direction look like OpenVPN: a length, then a hard reset.
pub fn looks_like_tcp_start(b: &[u8]) -> bool {
    u16_at(b, 0).is_some_and(|len| (MIN_PACKET..=MAX_PACKET).contains(&len))
        && b.get(2).is_some_and(|&f| is_hard_reset(f))
}

/// Whether a UDP datagram looks like the start of an OpenVPN session.
pub fn looks_like_udp_start(d: &[u8]) -> bool {
    d.len() >= MIN_PACKET && d.len() <= MAX_PACKET && d.first().is_some_and(|&f| is_hard_reset(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_764_000_000;

    fn reset(prot: &[u8]) -> Vec<u8> {
        let mut v = vec![op::HARD_RESET_CLIENT_V2 << OPCODE_SHIFT];
        v.extend_from_slice(&[7; 8]);
        v.extend_from_slice(prot);
        v.extend_from_slice(&[0, 0, 0, 0, 0]);
        v
    }

    #[test]
    fn detects_the_protection() {
        assert_eq!(detect(&reset(&[]), NOW), Some(Protection::None));
        for h in HMAC_SIZES {
            let mut prot = vec![0xab; h];
            prot.extend_from_slice(&1u32.to_be_bytes());
            prot.extend_from_slice(&(NOW as u32 - 5).to_be_bytes());
            assert_eq!(
                detect(&reset(&prot), NOW),
                Some(Protection::TlsAuth(h)),
                "{h}"
            );
        }
        let mut tc = 1u32.to_be_bytes().to_vec();
        tc.extend_from_slice(&(NOW as u32).to_be_bytes());
        tc.extend_from_slice(&[0x55; 40]);
        let mut v = vec![op::HARD_RESET_CLIENT_V2 << OPCODE_SHIFT];
        v.extend_from_slice(&[7; 8]);
        v.extend_from_slice(&tc);
        assert_eq!(detect(&v, NOW), Some(Protection::TlsCrypt));
        // Not a reset, or garbage.
        assert_eq!(detect(&[0x20; 40], NOW), None);
        assert_eq!(detect(&[0x38; 40], NOW), None);
    }

    #[test]
    fn messages_in_order_once() {
        let mut r = Reliable::default();
        let mut got = Vec::new();
        for (id, t) in [
            (0, b"" as &[u8]),
            (2, b"c"),
            (1, b"b"),
            (1, b"b"),
            (3, b"d"),
            (2, b"c"),
        ] {
            r.push(id, t, |x| got.extend_from_slice(x));
        }
        assert_eq!(got, b"bcd");
        let mut r = Reliable::default();
        for id in 1..=(MAX_HELD as u32 + 1) {
            r.push(id, b"x", |_| {});
        }
        assert!(r.broken);
    }

    #[test]
    fn tcp_framing_splits_and_joins() {
        let mut f = TcpFraming::default();
        let pkt = reset(&[]);
        let mut stream = (pkt.len() as u16).to_be_bytes().to_vec();
        stream.extend_from_slice(&pkt);
        stream.extend_from_slice(&stream.clone());
        let mut n = 0;
        for chunk in stream.chunks(5) {
            f.push(chunk, |p| {
                assert_eq!(p, &pkt[..]);
                n += 1
            });
        }
        assert_eq!(n, 2);
        assert!(looks_like_tcp_start(&stream));
        f.push(&[0xff, 0xff], |_| {});
        assert!(f.broken);
    }

    #[test]
    fn parses_control_and_ack() {
        // CONTROL_V1, one ack (id 0) with the peer's session id, message id 1, payload.
        let mut v = vec![op::CONTROL_V1 << OPCODE_SHIFT];
        v.extend_from_slice(&[1; 8]);
        v.extend_from_slice(&[1, 0, 0, 0, 0]);
        v.extend_from_slice(&[2; 8]);
        v.extend_from_slice(&1u32.to_be_bytes());
        v.extend_from_slice(b"\x16\x03\x01");
        assert_eq!(
            parse(&v, Protection::None),
            Some(Packet::Message {
                id: 1,
                tls: b"\x16\x03\x01"
            })
        );
        v[0] = op::ACK_V1 << OPCODE_SHIFT;
        assert_eq!(parse(&v, Protection::None), Some(Packet::Other));
        assert_eq!(parse(&v[..5], Protection::None), None);
    }
}
