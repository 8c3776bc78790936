//! UDP header (RFC 768), and the tunnels recognised by port (VXLAN, GENEVE, VXLAN-GPE, TZSP, HP
//! ERM by destination; GTP-U, L2TP and Teredo by either).
use super::{geneve, mirror, mobile, nsh, vxlan, Bytes, DResult, DecodeProblem, Decoded, Depth};
use std::net::IpAddr;

mod field {
    use crate::decode::{Field, Rest};
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    /// Header plus payload; 0 in offload captures (then: what was captured).
    pub const LENGTH: Field = 4..6;
    pub const PAYLOAD: Rest = super::HEADER_LEN..;
}
const HEADER_LEN: usize = 8;

/// One UDP datagram, innermost headers only.
#[derive(Debug, Clone, Copy)]
pub struct UdpDatagram<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub payload: &'a [u8],
}

/// A UDP datagram from `src` to `dst`, or the tunnelled frame it carries.
pub(super) fn decode<'a>(src: IpAddr, dst: IpAddr, data: &'a [u8], d: Depth) -> DResult<'a> {
    let b = Bytes(data);
    let sport = b
        .u16(field::SRC_PORT)
        .ok_or(DecodeProblem::TruncatedTransport)?;
    let dport = b
        .u16(field::DST_PORT)
        .ok_or(DecodeProblem::TruncatedTransport)?;
    let ulen = usize::from(
        b.u16(field::LENGTH)
            .ok_or(DecodeProblem::TruncatedTransport)?,
    );
    if data.len() < HEADER_LEN {
        return Err(DecodeProblem::TruncatedTransport);
    }
    let payload = if ulen == 0 {
        b.rest(field::PAYLOAD)
    } else if ulen < HEADER_LEN {
        return Err(DecodeProblem::TruncatedTransport);
    } else {
        data.get(HEADER_LEN..ulen)
    }
    .ok_or(DecodeProblem::TruncatedTransport)?;
    let tunnel = match dport {
        vxlan::VXLAN_PORT => vxlan::decode(payload, d),
        geneve::GENEVE_PORT => geneve::decode(payload, d),
        nsh::VXLAN_GPE_PORT => nsh::decode_gpe(payload, d),
        mirror::TZSP_PORT => mirror::tzsp(payload, d),
        mirror::HP_ERM_PORT => mirror::hp_erm(payload, d),
        _ => None,
    }
    .or_else(|| {
        // Tunnels whose endpoints both use the port (or whose replies come from it).
        let either = |p: u16| sport == p || dport == p;
        if either(mobile::GTPU_PORT) {
            mobile::gtpu(payload, d)
        } else if either(mobile::L2TP_PORT) {
            mobile::l2tp_udp(payload, d)
        } else if either(mobile::TEREDO_PORT) {
            mobile::teredo(payload, d)
        } else {
            None
        }
    });
    if let Some(r) = tunnel {
        return r;
    }
    Ok(Decoded::Udp(UdpDatagram {
        src,
        dst,
        sport,
        dport,
        payload,
    }))
}
