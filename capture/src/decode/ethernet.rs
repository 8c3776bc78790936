//! Ethernet II and what an EtherType leads to: IP, 802.1Q/802.1ad VLAN tags, MPLS, PPPoE,
//! transparent Ethernet bridging (a tunnelled frame), and the link protocols that carry nothing
//! for us (ARP, LLDP, PPPoE discovery, 802.3 LLC frames).
use super::{ipv4, ipv6, mpls, nsh, ppp, tags, Bytes, DResult, DecodeProblem, Decoded, Depth};

/// EtherType values handled here.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const TEB: u16 = 0x6558;
    pub const RARP: u16 = 0x8035;
    pub const VLAN: u16 = 0x8100;
    pub const IPV6: u16 = 0x86dd;
    pub const MPLS_UC: u16 = 0x8847;
    pub const MPLS_MC: u16 = 0x8848;
    pub const PPPOE_DISC: u16 = 0x8863;
    pub const PPPOE_SESS: u16 = 0x8864;
    pub const QINQ: u16 = 0x88a8;
    pub const ERSPAN2: u16 = 0x88be;
    pub const LLDP: u16 = 0x88cc;
    pub const QINQ_OLD: u16 = 0x9100;
    pub const ERSPAN3: u16 = 0x22eb;
}

/// Ethernet II header.
pub(super) mod field {
    use crate::decode::{Field, Rest};
    pub const ETHERTYPE: Field = 12..14;
    pub const PAYLOAD: Rest = HEADER_LEN..;
    /// Bytes before the payload.
    pub const HEADER_LEN: usize = 14;
}

/// 802.1Q / 802.1ad tag, after the outer EtherType.
mod vlan_field {
    use crate::decode::{Field, Rest};
    pub const ETHERTYPE: Field = 2..4;
    pub const PAYLOAD: Rest = 4..;
}

/// Smallest EtherType: a smaller value in that place is an 802.3 length (an LLC frame), or in a
/// Linux cooked capture an ARPHRD-specific pseudo protocol.
pub(super) const MIN_ETHERTYPE: u16 = 0x0600;

/// Whether `f` looks like an Ethernet frame carrying IP, directly or after one 802.1Q tag (by
/// its EtherType and the IP version nibble): how a tunnel whose layout is not announced (L2TPv3's
/// cookie and sublayer, HP ERM on a configured port) is recognised.
pub(super) fn carries_ip(f: &[u8]) -> bool {
    let b = Bytes(f);
    let version = |at: usize| b.u8(at).map(super::ip_version);
    match b.u16(field::ETHERTYPE) {
        Some(ethertype::IPV4) => version(field::HEADER_LEN) == Some(ipv4::VERSION),
        Some(ethertype::IPV6) => version(field::HEADER_LEN) == Some(ipv6::VERSION),
        Some(ethertype::VLAN) => matches!(
            super::shifted(vlan_field::ETHERTYPE, field::HEADER_LEN).and_then(|f| b.u16(f)),
            Some(ethertype::IPV4 | ethertype::IPV6)
        ),
        _ => false,
    }
}

/// An Ethernet II frame.
pub(super) fn decode(data: &[u8], d: Depth) -> DResult<'_> {
    let b = Bytes(data);
    let et = b
        .u16(field::ETHERTYPE)
        .ok_or(DecodeProblem::TruncatedLink)?;
    let rest = b.rest(field::PAYLOAD).ok_or(DecodeProblem::TruncatedLink)?;
    dispatch(et, rest, d)
}

/// The payload `data` of EtherType `et` (one more link-level layer).
pub(super) fn dispatch(et: u16, data: &[u8], d: Depth) -> DResult<'_> {
    let d = d.layer()?;
    let b = Bytes(data);
    match et {
        ethertype::IPV4 => ipv4::decode(data, d),
        ethertype::IPV6 => ipv6::decode(data, d),
        ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_OLD => {
            let inner = b
                .u16(vlan_field::ETHERTYPE)
                .ok_or(DecodeProblem::TruncatedLink)?;
            let rest = b
                .rest(vlan_field::PAYLOAD)
                .ok_or(DecodeProblem::TruncatedLink)?;
            dispatch(inner, rest, d)
        }
        ethertype::MPLS_UC | ethertype::MPLS_MC => mpls::decode(data, d),
        ethertype::PPPOE_SESS => ppp::pppoe_session(data, d),
        ethertype::TEB => decode(data, d.tunnel()?),
        nsh::NSH_ETHERTYPE => nsh::decode(data, d),
        ethertype::PPPOE_DISC | ethertype::ARP | ethertype::RARP | ethertype::LLDP => {
            Ok(Decoded::Other)
        }
        // 802.3 length field: an LLC frame (STP, CDP, ...), never IP for us.
        x if x < MIN_ETHERTYPE => Ok(Decoded::Other),
        // The switch and fabric tags (rare: looked up only here, off the common path).
        x => tags::decode(x, data, d).unwrap_or(Err(DecodeProblem::UnsupportedEthertype(x))),
    }
}
