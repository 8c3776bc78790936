//! TCP header (RFC 9293): read by the general decoder and, through the same [`Header::parse`],
//! by the fast path ([`super::PreTcp`]).
use super::{Bytes, DResult, DecodeProblem, Decoded};
use std::net::IpAddr;

/// TCP flag bits.
pub mod tcpflag {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

mod field {
    use crate::decode::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ_NUM: Field = 4..8;
    pub const ACK_NUM: Field = 8..12;
    /// Data offset in 4-byte words (high nibble).
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WIN_SIZE: Field = 14..16;
}
/// Header without options.
const HEADER_LEN: usize = 20;
/// Unit of the data offset.
const DATA_OFF_UNIT: usize = 4;
const DATA_OFF_SHIFT: u32 = 4;

/// One TCP segment, innermost headers only.
#[derive(Debug, Clone, Copy)]
pub struct TcpSegment<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    /// Flag bits (see [`tcpflag`]).
    pub flags: u8,
    pub window: u16,
    pub payload: &'a [u8],
}

impl TcpSegment<'_> {
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// The fields of a TCP header that decode keeps.
pub(super) struct Header {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    /// Header length, options included (the payload's offset in the segment).
    pub len: usize,
}

impl Header {
    /// The header of `seg` and the payload after it; `None` when the header is cut or its data
    /// offset is below the minimal header or beyond the segment.
    #[inline]
    pub(super) fn parse(seg: &[u8]) -> Option<(Header, &[u8])> {
        // One length check for the fixed header; the field reads below then fold to plain loads.
        let fixed: &[u8; HEADER_LEN] = seg.get(..HEADER_LEN)?.try_into().ok()?;
        let b = Bytes(fixed);
        let sport = b.u16(field::SRC_PORT)?;
        let dport = b.u16(field::DST_PORT)?;
        let seq = b.u32(field::SEQ_NUM)?;
        let ack = b.u32(field::ACK_NUM)?;
        let len = usize::from(b.u8(field::DATA_OFF)? >> DATA_OFF_SHIFT) * DATA_OFF_UNIT;
        let flags = b.u8(field::FLAGS)?;
        let window = b.u16(field::WIN_SIZE)?;
        if len < HEADER_LEN {
            return None;
        }
        let payload = seg.get(len..)?;
        Some((
            Header {
                sport,
                dport,
                seq,
                ack,
                flags,
                window,
                len,
            },
            payload,
        ))
    }
}

/// A TCP segment from `src` to `dst`.
pub(super) fn decode(src: IpAddr, dst: IpAddr, data: &[u8]) -> DResult<'_> {
    let (h, payload) = Header::parse(data).ok_or(DecodeProblem::TruncatedTransport)?;
    Ok(Decoded::Tcp(TcpSegment {
        src,
        dst,
        sport: h.sport,
        dport: h.dport,
        seq: h.seq,
        ack: h.ack,
        flags: h.flags,
        window: h.window,
        payload,
    }))
}
