//! The pcap link types: Ethernet (on in `ethernet`), raw IP, BSD loopback (`NULL`/`LOOP`), Linux
//! cooked capture v1 and v2, and PPP (on in `ppp`).
use super::{ethernet, ipv4, ipv6, ppp, Bytes, DResult, DecodeProblem, Decoded, Depth};

/// pcap LINKTYPE_* values handled here.
pub mod linktype {
    pub const NULL: u32 = 0;
    pub const ETHERNET: u32 = 1;
    pub const PPP: u32 = 9;
    pub const RAW_BSD12: u32 = 12;
    pub const RAW_BSD14: u32 = 14;
    pub const PPP_HDLC: u32 = 50;
    pub const RAW: u32 = 101;
    pub const LOOP: u32 = 108;
    pub const LINUX_SLL: u32 = 113;
    pub const IPV4: u32 = 228;
    pub const IPV6: u32 = 229;
    pub const LINUX_SLL2: u32 = 276;
}

/// BSD loopback header: the address family, in the capturing host's byte order (`NULL`) or in
/// network order (`LOOP`).
mod null_field {
    use crate::decode::{Field, Rest};
    pub const FAMILY: Field = 0..4;
    pub const PAYLOAD: Rest = 4..;
}

/// Address family values of the loopback header.
mod af {
    pub const INET: u32 = 2;
    /// Linux.
    pub const INET6_LINUX: u32 = 10;
    /// NetBSD, OpenBSD.
    pub const INET6_BSD: u32 = 24;
    pub const INET6_FREEBSD: u32 = 28;
    pub const INET6_DARWIN: u32 = 30;
}

/// Linux cooked capture (SLL) v1 header.
mod sll_field {
    use crate::decode::{Field, Rest};
    pub const PROTOCOL: Field = 14..16;
    pub const PAYLOAD: Rest = 16..;
}

/// Linux cooked capture v2 (SLL2) header.
mod sll2_field {
    use crate::decode::{Field, Rest};
    pub const PROTOCOL: Field = 0..2;
    pub const PAYLOAD: Rest = 20..;
}

/// Decodes one frame of the given pcap link type.
pub fn decode_link(lt: u32, data: &[u8]) -> DResult<'_> {
    let d = Depth::OUTER;
    let b = Bytes(data);
    match lt {
        linktype::ETHERNET => ethernet::decode(data, d),
        linktype::RAW | linktype::RAW_BSD12 | linktype::RAW_BSD14 => raw_ip(data, d),
        linktype::IPV4 => ipv4::decode(data, d),
        linktype::IPV6 => ipv6::decode(data, d),
        linktype::NULL | linktype::LOOP => {
            let le = b
                .u32_le(null_field::FAMILY)
                .ok_or(DecodeProblem::TruncatedLink)?;
            let be = b
                .u32(null_field::FAMILY)
                .ok_or(DecodeProblem::TruncatedLink)?;
            let rest = b
                .rest(null_field::PAYLOAD)
                .ok_or(DecodeProblem::TruncatedLink)?;
            // The AF value is in the capturing host's byte order (NULL) or network order (LOOP);
            // accept either. IPv6 is 24 (Net/OpenBSD), 28 (FreeBSD), 30 (Darwin), 10 (Linux).
            let known = |v| {
                matches!(
                    v,
                    af::INET
                        | af::INET6_LINUX
                        | af::INET6_BSD
                        | af::INET6_FREEBSD
                        | af::INET6_DARWIN
                )
            };
            let family = if known(le) { le } else { be };
            match family {
                af::INET => ipv4::decode(rest, d),
                af::INET6_LINUX | af::INET6_BSD | af::INET6_FREEBSD | af::INET6_DARWIN => {
                    ipv6::decode(rest, d)
                }
                // An address family nothing here reads, counted under its value.
                f => Err(DecodeProblem::UnsupportedEthertype(
                    u16::try_from(f).unwrap_or(u16::MAX),
                )),
            }
        }
        linktype::LINUX_SLL => {
            let proto = b
                .u16(sll_field::PROTOCOL)
                .ok_or(DecodeProblem::TruncatedLink)?;
            let rest = b
                .rest(sll_field::PAYLOAD)
                .ok_or(DecodeProblem::TruncatedLink)?;
            sll_proto(proto, rest, d)
        }
        linktype::LINUX_SLL2 => {
            let proto = b
                .u16(sll2_field::PROTOCOL)
                .ok_or(DecodeProblem::TruncatedLink)?;
            let rest = b
                .rest(sll2_field::PAYLOAD)
                .ok_or(DecodeProblem::TruncatedLink)?;
            sll_proto(proto, rest, d)
        }
        linktype::PPP | linktype::PPP_HDLC => ppp::decode(data, d),
        _ => Err(DecodeProblem::UnsupportedLinkType),
    }
}

/// The payload of a Linux cooked capture, by its protocol field.
fn sll_proto(proto: u16, rest: &[u8], d: Depth) -> DResult<'_> {
    // Values below the EtherType range are ARPHRD-specific pseudo protocols (802.2 LLC, CAN, ...).
    if proto < ethernet::MIN_ETHERTYPE {
        return Ok(Decoded::Other);
    }
    ethernet::dispatch(proto, rest, d)
}

/// IPv4 or IPv6 by the version nibble (raw IP link types, ERSPAN III non-Ethernet frames).
pub(super) fn raw_ip(data: &[u8], d: Depth) -> DResult<'_> {
    match data.first().map(|&v| super::ip_version(v)) {
        Some(ipv4::VERSION) => ipv4::decode(data, d),
        Some(ipv6::VERSION) => ipv6::decode(data, d),
        Some(_) => Err(DecodeProblem::BadIpHeader),
        None => Err(DecodeProblem::TruncatedIp),
    }
}
