//! Network Service Header (RFC 8300), after EtherType 0x894f, in GRE, or in VXLAN-GPE: a base
//! header whose length (in 4-byte words) covers the service path header and any metadata, and a
//! next-protocol field; and VXLAN-GPE itself (UDP 4790), whose header names the next protocol
//! the same way.
use super::{ethernet, ipv4, ipv6, mpls, Bytes, DResult, DecodeProblem, Depth};

/// The EtherType (and GRE protocol type) of NSH.
pub const NSH_ETHERTYPE: u16 = 0x894f;
/// The UDP destination port of VXLAN-GPE.
pub const VXLAN_GPE_PORT: u16 = 4790;

mod field {
    /// Version (2 bits), O, U, TTL (high 4 bits).
    pub const VERSION: usize = 0;
    /// TTL (low 2 bits) and length (6 bits).
    pub const LENGTH: usize = 1;
    pub const NEXT_PROTOCOL: usize = 3;
}
const VERSION_SHIFT: u32 = 6;
const LENGTH_MASK: u8 = 0x3f;
const WORD: usize = 4;
/// Base header and service path header: the shortest NSH.
const MIN_LEN: usize = 8;

mod gpe_field {
    pub const FLAGS: usize = 0;
    pub const NEXT_PROTOCOL: usize = 3;
    pub const HEADER_LEN: usize = 8;
}
/// VXLAN-GPE's P flag: the next-protocol field is present.
const GPE_FLAG_P: u8 = 0x04;

/// Next-protocol values shared by NSH and VXLAN-GPE.
mod next {
    pub const IPV4: u8 = 1;
    pub const IPV6: u8 = 2;
    pub const ETHERNET: u8 = 3;
    pub const NSH: u8 = 4;
    pub const MPLS: u8 = 5;
}

/// An NSH packet and its payload (one more tunnel).
pub(super) fn decode(data: &[u8], d: Depth) -> DResult<'_> {
    let d = d.tunnel()?;
    let b = Bytes(data);
    let v = b.u8(field::VERSION).ok_or(DecodeProblem::BadTunnel)?;
    if v >> VERSION_SHIFT != 0 {
        return Err(DecodeProblem::BadTunnel);
    }
    let len =
        usize::from(b.u8(field::LENGTH).ok_or(DecodeProblem::BadTunnel)? & LENGTH_MASK) * WORD;
    if len < MIN_LEN {
        return Err(DecodeProblem::BadTunnel);
    }
    let np = b.u8(field::NEXT_PROTOCOL).ok_or(DecodeProblem::BadTunnel)?;
    let rest = b.rest(len..).ok_or(DecodeProblem::BadTunnel)?;
    next_protocol(np, rest, d)
}

/// A VXLAN-GPE datagram; `None` when its header does not name a next protocol (plain UDP then).
pub(super) fn decode_gpe(data: &[u8], d: Depth) -> Option<DResult<'_>> {
    let b = Bytes(data);
    if b.u8(gpe_field::FLAGS)? & GPE_FLAG_P == 0 {
        return None;
    }
    let np = b.u8(gpe_field::NEXT_PROTOCOL)?;
    let rest = b.rest(gpe_field::HEADER_LEN..)?;
    Some(d.tunnel().and_then(|d| next_protocol(np, rest, d)))
}

fn next_protocol(np: u8, rest: &[u8], d: Depth) -> DResult<'_> {
    match np {
        next::IPV4 => ipv4::decode(rest, d),
        next::IPV6 => ipv6::decode(rest, d),
        next::ETHERNET => ethernet::decode(rest, d),
        next::NSH => decode(rest, d),
        next::MPLS => mpls::decode(rest, d),
        _ => Err(DecodeProblem::BadTunnel),
    }
}
