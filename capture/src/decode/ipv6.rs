//! The IPv6 fixed header (RFC 8200); its extension headers are walked in `ip`. A payload length
//! of 0 (jumbogram, offload capture) or beyond the captured bytes is taken as "what was
//! captured".
use super::{ip, Bytes, DResult, DecodeProblem, Depth};
use std::net::{IpAddr, Ipv6Addr};

/// The version nibble.
pub(super) const VERSION: u8 = 6;

pub(super) mod field {
    use crate::decode::{Field, Rest};
    /// Version (high nibble), traffic class and flow label.
    pub const VER_TC_FLOW: usize = 0;
    pub const LENGTH: Field = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
    pub const PAYLOAD: Rest = super::HEADER_LEN..;
}
/// The fixed header.
pub(super) const HEADER_LEN: usize = 40;

/// An IPv6 packet: its payload decoded on (through its extension headers).
pub(super) fn decode(data: &[u8], d: Depth) -> DResult<'_> {
    let b = Bytes(data);
    let v = b.u8(field::VER_TC_FLOW).ok_or(DecodeProblem::TruncatedIp)?;
    if super::ip_version(v) != VERSION {
        return Err(DecodeProblem::BadIpHeader);
    }
    if data.len() < HEADER_LEN {
        return Err(DecodeProblem::TruncatedIp);
    }
    let plen = usize::from(b.u16(field::LENGTH).ok_or(DecodeProblem::TruncatedIp)?);
    let next = b.u8(field::NXT_HDR).ok_or(DecodeProblem::TruncatedIp)?;
    let src = addr(b, field::SRC_ADDR)?;
    let dst = addr(b, field::DST_ADDR)?;
    let rest = b.rest(field::PAYLOAD).ok_or(DecodeProblem::TruncatedIp)?;
    // Payload length 0: jumbogram or offload capture; use what was captured.
    // (A length beyond the captured bytes is clamped, as for IPv4.)
    let payload = if plen == 0 {
        rest
    } else {
        rest.get(..plen).unwrap_or(rest)
    };
    ip::payload(next, src, dst, payload, d, true)
}

fn addr(b: Bytes<'_>, f: crate::decode::Field) -> Result<IpAddr, DecodeProblem> {
    let a: [u8; 16] = b.array(f).ok_or(DecodeProblem::TruncatedIp)?;
    Ok(IpAddr::V6(Ipv6Addr::from(a)))
}
