//! What follows an IP header: IPv6 extension headers and AH are walked, an IPv6 fragment header
//! ends decode with a [`Fragment`], and the protocol then leads to TCP, UDP, a tunnel (IP-in-IP,
//! 6in4, IPv6-in-IPv6, GRE, MPLS-in-IP, L2TPv3) or a protocol that carries nothing for us.
use super::{
    gre, ipv4, ipv6, mobile, mpls, tcp, udp, Bytes, DResult, DecodeProblem, Decoded, Depth,
    MAX_LAYERS, MAX_TUNNEL_DEPTH,
};
use std::net::IpAddr;

/// Most IPv6 extension headers walked in one packet.
pub const MAX_IPV6_EXT_HEADERS: usize = 16;

/// IP protocol numbers handled here.
pub mod ipproto {
    pub const HOPOPT: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const IGMP: u8 = 2;
    pub const IPIP: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6: u8 = 41;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const GRE: u8 = 47;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const NONE: u8 = 59;
    pub const DSTOPTS: u8 = 60;
    pub const OSPF: u8 = 89;
    pub const PIM: u8 = 103;
    pub const VRRP: u8 = 112;
    pub const SCTP: u8 = 132;
    pub const MOBILITY: u8 = 135;
    pub const MPLS_IN_IP: u8 = 137;
    /// L2TPv3 directly over IP (RFC 3931).
    pub const L2TP: u8 = 115;
    pub const HIP: u8 = 139;
    pub const SHIM6: u8 = 140;
}

/// One IP fragment waiting for reassembly.
#[derive(Debug, Clone, Copy)]
pub struct Fragment<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IPv4 identification (16 bits) or IPv6 fragment identification.
    pub id: u32,
    /// Protocol of the reassembled payload (IPv6: next header of the fragment header).
    pub proto: u8,
    /// Byte offset of this fragment's payload within the datagram payload.
    pub offset: u32,
    /// More fragments follow.
    pub more: bool,
    pub payload: &'a [u8],
    /// Tunnels already peeled, so decode of the reassembled payload keeps the same bound.
    pub tunnels: u8,
    pub v6: bool,
}

/// IPv6 extension header in the generic format (hop-by-hop, routing, destination options,
/// mobility, HIP, shim6): length in 8-byte units, not counting the first 8 bytes.
mod ext_field {
    pub const NXT_HDR: usize = 0;
    pub const LENGTH: usize = 1;
}
const EXT_LEN_UNIT: usize = 8;
/// The length field does not count the first unit.
const EXT_LEN_BIAS: usize = 1;

/// IPv6 fragment header.
mod frag_field {
    use crate::decode::{Field, Rest};
    pub const NXT_HDR: usize = 0;
    /// Offset in 8-byte units (13 bits, pre-shifted by 3), 2 reserved bits, M flag.
    pub const FRAG_OFF: Field = 2..4;
    pub const IDENT: Field = 4..8;
    pub const PAYLOAD: Rest = 8..;
}
/// The offset bits of `FRAG_OFF`, read as a byte offset (the 8-byte units shifted by 3).
const FRAG_OFFSET_MASK: u16 = 0xfff8;
const FRAG_FLAG_M: u16 = 0x0001;

/// Authentication header (RFC 4302): length in 4-byte units, minus 2.
mod ah_field {
    pub const NXT_HDR: usize = 0;
    pub const LENGTH: usize = 1;
}
const AH_LEN_UNIT: usize = 4;
const AH_LEN_BIAS: usize = 2;

/// Continues decode with the payload of a reassembled IP datagram.
pub fn decode_ip_payload<'a>(
    proto: u8,
    src: IpAddr,
    dst: IpAddr,
    data: &'a [u8],
    tunnels: u8,
    v6: bool,
) -> DResult<'a> {
    let d = Depth {
        tunnels: tunnels.min(MAX_TUNNEL_DEPTH),
        layers: tunnels.min(MAX_LAYERS),
    };
    payload(proto, src, dst, data, d, v6)
}

/// The payload of an IP header: walks IPv6 extension headers and AH first, then dispatches on
/// the protocol.
pub(super) fn payload<'a>(
    mut proto: u8,
    src: IpAddr,
    dst: IpAddr,
    mut data: &'a [u8],
    d: Depth,
    v6: bool,
) -> DResult<'a> {
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        let b = Bytes(data);
        match proto {
            ipproto::HOPOPT
            | ipproto::ROUTING
            | ipproto::DSTOPTS
            | ipproto::MOBILITY
            | ipproto::HIP
            | ipproto::SHIM6
                if v6 =>
            {
                let next = b.u8(ext_field::NXT_HDR).ok_or(DecodeProblem::TruncatedIp)?;
                let units = b.u8(ext_field::LENGTH).ok_or(DecodeProblem::TruncatedIp)?;
                let len = (usize::from(units) + EXT_LEN_BIAS) * EXT_LEN_UNIT;
                data = b.rest(len..).ok_or(DecodeProblem::TruncatedIp)?;
                proto = next;
            }
            ipproto::FRAGMENT if v6 => {
                let next = b
                    .u8(frag_field::NXT_HDR)
                    .ok_or(DecodeProblem::TruncatedIp)?;
                let off = b
                    .u16(frag_field::FRAG_OFF)
                    .ok_or(DecodeProblem::TruncatedIp)?;
                let id = b.u32(frag_field::IDENT).ok_or(DecodeProblem::TruncatedIp)?;
                let rest = b
                    .rest(frag_field::PAYLOAD)
                    .ok_or(DecodeProblem::TruncatedIp)?;
                let offset = u32::from(off & FRAG_OFFSET_MASK);
                let more = off & FRAG_FLAG_M != 0;
                if offset == 0 && !more {
                    // Atomic fragment (RFC 6946): not really fragmented.
                    data = rest;
                    proto = next;
                    continue;
                }
                return Ok(Decoded::Fragment(Fragment {
                    src,
                    dst,
                    id,
                    proto: next,
                    offset,
                    more,
                    payload: rest,
                    tunnels: d.tunnels,
                    v6: true,
                }));
            }
            ipproto::AH => {
                let next = b.u8(ah_field::NXT_HDR).ok_or(DecodeProblem::TruncatedIp)?;
                let units = b.u8(ah_field::LENGTH).ok_or(DecodeProblem::TruncatedIp)?;
                let len = (usize::from(units) + AH_LEN_BIAS) * AH_LEN_UNIT;
                data = b.rest(len..).ok_or(DecodeProblem::TruncatedIp)?;
                proto = next;
            }
            _ => return transport(proto, src, dst, data, d),
        }
    }
    Err(DecodeProblem::BadIpHeader)
}

/// Dispatches on the (final) IP protocol.
fn transport<'a>(proto: u8, src: IpAddr, dst: IpAddr, data: &'a [u8], d: Depth) -> DResult<'a> {
    match proto {
        ipproto::TCP => tcp::decode(src, dst, data),
        ipproto::UDP => udp::decode(src, dst, data, d),
        ipproto::IPIP => ipv4::decode(data, d.tunnel()?),
        ipproto::IPV6 => ipv6::decode(data, d.tunnel()?),
        ipproto::GRE => gre::decode(data, d),
        ipproto::MPLS_IN_IP => mpls::decode(data, d),
        ipproto::L2TP => mobile::l2tpv3_ip(data, d),
        ipproto::ICMP
        | ipproto::ICMPV6
        | ipproto::IGMP
        | ipproto::OSPF
        | ipproto::PIM
        | ipproto::VRRP
        | ipproto::SCTP
        | ipproto::NONE => Ok(Decoded::Other),
        // ESP (encrypted) among them.
        p => Err(DecodeProblem::UnsupportedIpProto(p)),
    }
}
