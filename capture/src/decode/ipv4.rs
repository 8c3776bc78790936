//! IPv4 (RFC 791): options skipped, fragments handed to reassembly, a total length of 0 (offload
//! captures) or beyond the captured bytes taken as "what was captured".
use super::ip::{self, Fragment};
use super::{Bytes, DResult, DecodeProblem, Decoded, Depth};
use std::net::{IpAddr, Ipv4Addr};

/// The version nibble.
pub(super) const VERSION: u8 = 4;

pub(super) mod field {
    use crate::decode::Field;
    /// Version (high nibble) and header length in 4-byte words (low nibble).
    pub const VER_IHL: usize = 0;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    /// Flags (3 bits) and fragment offset in 8-byte units (13 bits).
    pub const FLG_OFF: Field = 6..8;
    pub const PROTOCOL: usize = 9;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}
/// Header without options.
pub(super) const HEADER_LEN: usize = 20;
/// Unit of the header length field.
const IHL_UNIT: usize = 4;
const IHL_MASK: u8 = 0x0f;
/// `VER_IHL` of a header without options.
pub(super) const VER_IHL_NO_OPTIONS: u8 =
    (VERSION << super::IP_VERSION_SHIFT) | (HEADER_LEN / IHL_UNIT) as u8;
/// More fragments follow.
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;
/// `FLG_OFF` bits that make a packet a fragment (DF may be set on a whole datagram).
pub(super) const FRAGMENT_BITS: u16 = FLAG_MF | FRAG_OFFSET_MASK;
/// Unit of the fragment offset.
const FRAG_OFFSET_UNIT: u32 = 8;

/// An IPv4 packet: its fragment, or its payload decoded on.
pub(super) fn decode(data: &[u8], d: Depth) -> DResult<'_> {
    let b = Bytes(data);
    let vihl = b.u8(field::VER_IHL).ok_or(DecodeProblem::TruncatedIp)?;
    if super::ip_version(vihl) != VERSION {
        return Err(DecodeProblem::BadIpHeader);
    }
    let ihl = usize::from(vihl & IHL_MASK) * IHL_UNIT;
    if ihl < HEADER_LEN {
        return Err(DecodeProblem::BadIpHeader);
    }
    if data.len() < ihl {
        return Err(DecodeProblem::TruncatedIp);
    }
    let total = usize::from(b.u16(field::LENGTH).ok_or(DecodeProblem::TruncatedIp)?);
    // A total length of 0 is what TSO/LRO offload captures show: use what was captured.
    let total = if total == 0 { data.len() } else { total };
    if total < ihl {
        return Err(DecodeProblem::BadIpHeader);
    }
    // A total length beyond the captured bytes: snaplen cut, or a lower layer (PPPoE) that
    // trimmed a bogus length. Use what is there: the bytes present are real, and TCP
    // reassembly turns whatever is missing into a gap.
    let total = total.min(data.len());
    let id = b.u16(field::IDENT).ok_or(DecodeProblem::TruncatedIp)?;
    let frag = b.u16(field::FLG_OFF).ok_or(DecodeProblem::TruncatedIp)?;
    let proto = b.u8(field::PROTOCOL).ok_or(DecodeProblem::TruncatedIp)?;
    let src = addr(b, field::SRC_ADDR)?;
    let dst = addr(b, field::DST_ADDR)?;
    let payload = data.get(ihl..total).ok_or(DecodeProblem::TruncatedIp)?;
    let more = frag & FLAG_MF != 0;
    let offset = u32::from(frag & FRAG_OFFSET_MASK) * FRAG_OFFSET_UNIT;
    if more || offset != 0 {
        return Ok(Decoded::Fragment(Fragment {
            src,
            dst,
            id: u32::from(id),
            proto,
            offset,
            more,
            payload,
            tunnels: d.tunnels,
            v6: false,
        }));
    }
    ip::payload(proto, src, dst, payload, d, false)
}

fn addr(b: Bytes<'_>, f: crate::decode::Field) -> Result<IpAddr, DecodeProblem> {
    let a: [u8; 4] = b.array(f).ok_or(DecodeProblem::TruncatedIp)?;
    Ok(IpAddr::V4(Ipv4Addr::from(a)))
}
