//! Link, tunnel, IP and transport decode down to a TCP segment or UDP datagram.
//!
//! Style follows smoltcp's `wire`: every header is read through a small checked view (`Bytes`)
//! whose accessors return `Option`, so no offset computed from packet bytes can panic. The
//! dispatcher walks link layers, VLAN tags, MPLS stacks, PPPoE and tunnels (GRE, ERSPAN, VXLAN,
//! GENEVE, IP-in-IP, 6in4, IPv6-in-IPv6) with an explicit bound on nesting, and stops at the
//! innermost TCP/UDP header, or at an IP fragment that [`crate::defrag`] must reassemble first
//! (decode then continues with [`decode_ip_payload`] on the reassembled bytes).
use crate::flow::FlowKey;
use crate::stats::DecodeProblem;
use crate::RawPacket;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

/// Most tunnel encapsulations (GRE, VXLAN, GENEVE, IP-in-IP, MPLS, ERSPAN...) peeled from one
/// frame. Real networks rarely nest more than 2-3; a crafted frame could nest until the snaplen.
pub const MAX_TUNNEL_DEPTH: u8 = 8;
/// Most link-level layers (VLAN tags, MPLS labels, PPPoE) in one frame, across all tunnels.
pub const MAX_LAYERS: u8 = 32;
/// Most IPv6 extension headers walked in one packet.
pub const MAX_IPV6_EXT_HEADERS: usize = 16;
/// Most MPLS labels in one stack.
pub const MAX_MPLS_LABELS: usize = 16;

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
    pub const HIP: u8 = 139;
    pub const SHIM6: u8 = 140;
}

/// UDP ports that carry tunnels.
pub const VXLAN_PORT: u16 = 4789;
pub const GENEVE_PORT: u16 = 6081;

/// TCP flag bits.
pub mod tcpflag {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

/// A checked read-only view: every accessor is bounds-checked and returns `Option`.
#[derive(Clone, Copy)]
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn u8(&self, at: usize) -> Option<u8> {
        self.0.get(at).copied()
    }
    fn u16(&self, at: usize) -> Option<u16> {
        let b = self.0.get(at..at.checked_add(2)?)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&self, at: usize) -> Option<u32> {
        let b = self.0.get(at..at.checked_add(4)?)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u32_le(&self, at: usize) -> Option<u32> {
        let b = self.0.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn from(&self, at: usize) -> Option<&'a [u8]> {
        self.0.get(at..)
    }
    fn range(&self, at: usize, len: usize) -> Option<&'a [u8]> {
        self.0.get(at..at.checked_add(len)?)
    }
}

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

/// One UDP datagram, innermost headers only.
#[derive(Debug, Clone, Copy)]
pub struct UdpDatagram<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub payload: &'a [u8],
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

/// A TCP frame decoded ahead, on the reader thread, without borrowing the frame: the flow key is
/// computed there too and the payload is kept as an offset into the frame. The engine then needs
/// neither the frame's headers nor the key computation ([`crate::Engine::process_pre`]), and a
/// bypassed flow's packet bytes are never touched on the engine's core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreTcp {
    pub key: FlowKey,
    /// Whether the sender is the key's `lo` endpoint.
    pub src_is_lo: bool,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    pub payload_off: u32,
    pub payload_len: u32,
}

impl PreTcp {
    /// Decodes `pkt`; `None` unless it is a TCP segment (those keep the normal path).
    pub fn decode(pkt: &RawPacket<'_>) -> Option<PreTcp> {
        Self::plain(pkt).or_else(|| Self::decode_general(pkt))
    }

    /// The fast path for the frames that make up nearly all of a link: Ethernet, IPv4 without
    /// options and unfragmented, or IPv6 without extension headers, then TCP. Anything else (and
    /// anything malformed, so that [`decode`] counts the problem) is `None`. Gives exactly what
    /// [`Self::decode_general`] gives for the frames it takes (a test checks every corpus frame).
    fn plain(pkt: &RawPacket<'_>) -> Option<PreTcp> {
        if pkt.linktype != linktype::ETHERNET {
            return None;
        }
        let d = Bytes(pkt.data);
        let ip = d.from(14)?;
        let ipb = Bytes(ip);
        let (src, dst, v6, ip_len, total) = match d.u16(12)? {
            ethertype::IPV4 => {
                let total = usize::from(ipb.u16(2)?);
                // IHL 5, not a fragment (DF may be set), TCP, a sane total length.
                if ipb.u8(0)? != 0x45 || ipb.u16(6)? & 0x3fff != 0 || ipb.u8(9)? != ipproto::TCP {
                    return None;
                }
                if total < 20 || ip.len() < 20 {
                    return None;
                }
                let mut src = [0u8; 16];
                let mut dst = [0u8; 16];
                src[10..12].copy_from_slice(&[0xff, 0xff]);
                dst[10..12].copy_from_slice(&[0xff, 0xff]);
                src[12..].copy_from_slice(ipb.range(12, 4)?);
                dst[12..].copy_from_slice(ipb.range(16, 4)?);
                (src, dst, false, 20, total.min(ip.len()))
            }
            ethertype::IPV6 => {
                if ipb.u8(0)? >> 4 != 6 || ipb.u8(6)? != ipproto::TCP || ip.len() < 40 {
                    return None;
                }
                let plen = usize::from(ipb.u16(4)?);
                let total = if plen == 0 {
                    ip.len()
                } else {
                    plen.saturating_add(40).min(ip.len())
                };
                let src: [u8; 16] = ipb.range(8, 16)?.try_into().ok()?;
                let dst: [u8; 16] = ipb.range(24, 16)?.try_into().ok()?;
                (src, dst, true, 40, total)
            }
            _ => return None,
        };
        let tcp = Bytes(ip.get(ip_len..total)?);
        let off = usize::from(tcp.u8(12)? >> 4) * 4;
        if off < 20 || tcp.0.len() < off {
            return None;
        }
        let (sport, dport) = (tcp.u16(0)?, tcp.u16(2)?);
        let (key, src_is_lo) = FlowKey::from_bytes(6, (src, sport), (dst, dport), v6);
        Some(PreTcp {
            key,
            src_is_lo,
            seq: tcp.u32(4)?,
            ack: tcp.u32(8)?,
            flags: tcp.u8(13)?,
            window: tcp.u16(14)?,
            payload_off: u32::try_from(14 + ip_len + off).ok()?,
            payload_len: u32::try_from(tcp.0.len() - off).ok()?,
        })
    }

    /// Through the general decoder ([`decode`]).
    pub fn decode_general(pkt: &RawPacket<'_>) -> Option<PreTcp> {
        let Ok(Decoded::Tcp(t)) = decode(pkt) else {
            return None;
        };
        // The payload is a subslice of the frame; its offset, checked.
        let off = (t.payload.as_ptr() as usize).checked_sub(pkt.data.as_ptr() as usize)?;
        let end = off.checked_add(t.payload.len())?;
        if end > pkt.data.len() {
            return None;
        }
        let (key, src_is_lo) = FlowKey::new(6, t.src, t.sport, t.dst, t.dport);
        Some(PreTcp {
            key,
            src_is_lo,
            seq: t.seq,
            ack: t.ack,
            flags: t.flags,
            window: t.window,
            payload_off: u32::try_from(off).ok()?,
            payload_len: u32::try_from(t.payload.len()).ok()?,
        })
    }

    /// The segment again, its payload taken from `data` (the same frame).
    pub fn segment<'a>(&self, data: &'a [u8]) -> TcpSegment<'a> {
        let (src, sport) = self.key.endpoint(self.src_is_lo);
        let (dst, dport) = self.key.endpoint(!self.src_is_lo);
        let off = self.payload_off as usize;
        TcpSegment {
            src,
            dst,
            sport,
            dport,
            seq: self.seq,
            ack: self.ack,
            flags: self.flags,
            window: self.window,
            payload: data
                .get(off..off.saturating_add(self.payload_len as usize))
                .unwrap_or_default(),
        }
    }
}

/// What one frame decoded to.
#[derive(Debug, Clone, Copy)]
pub enum Decoded<'a> {
    Tcp(TcpSegment<'a>),
    Udp(UdpDatagram<'a>),
    Fragment(Fragment<'a>),
    /// Recognised but of no interest (ARP, ICMP, PPPoE discovery, LLDP, ...): not a problem.
    Other,
}

type DResult<'a> = Result<Decoded<'a>, DecodeProblem>;

/// Nesting bookkeeping: tunnels peeled and link-level layers walked.
#[derive(Clone, Copy)]
struct Depth {
    tunnels: u8,
    layers: u8,
}

impl Depth {
    fn tunnel(self) -> Result<Depth, DecodeProblem> {
        if self.tunnels >= MAX_TUNNEL_DEPTH {
            return Err(DecodeProblem::TunnelTooDeep);
        }
        Ok(Depth {
            tunnels: self.tunnels + 1,
            layers: self.layers.saturating_add(1),
        })
    }
    fn layer(self) -> Result<Depth, DecodeProblem> {
        if self.layers >= MAX_LAYERS {
            return Err(DecodeProblem::TunnelTooDeep);
        }
        Ok(Depth {
            tunnels: self.tunnels,
            layers: self.layers + 1,
        })
    }
}

/// Decodes one captured frame.
pub fn decode<'a>(pkt: &RawPacket<'a>) -> DResult<'a> {
    decode_link(pkt.linktype, pkt.data)
}

/// Decodes one frame of the given pcap link type.
pub fn decode_link(lt: u32, data: &[u8]) -> DResult<'_> {
    let d = Depth {
        tunnels: 0,
        layers: 0,
    };
    let b = Bytes(data);
    match lt {
        linktype::ETHERNET => ethernet(data, d),
        linktype::RAW | linktype::RAW_BSD12 | linktype::RAW_BSD14 => raw_ip(data, d),
        linktype::IPV4 => ipv4(data, d),
        linktype::IPV6 => ipv6(data, d),
        linktype::NULL | linktype::LOOP => {
            let le = b.u32_le(0).ok_or(DecodeProblem::TruncatedLink)?;
            let be = b.u32(0).ok_or(DecodeProblem::TruncatedLink)?;
            let rest = b.from(4).ok_or(DecodeProblem::TruncatedLink)?;
            // The AF value is in the capturing host's byte order (NULL) or network order (LOOP);
            // accept either. IPv6 is 24 (Net/OpenBSD), 28 (FreeBSD), 30 (Darwin), 10 (Linux).
            let af = if matches!(le, 2 | 10 | 24 | 28 | 30) {
                le
            } else {
                be
            };
            match af {
                2 => ipv4(rest, d),
                10 | 24 | 28 | 30 => ipv6(rest, d),
                _ => Err(DecodeProblem::UnsupportedEthertype),
            }
        }
        linktype::LINUX_SLL => {
            let proto = b.u16(14).ok_or(DecodeProblem::TruncatedLink)?;
            let rest = b.from(16).ok_or(DecodeProblem::TruncatedLink)?;
            sll_proto(proto, rest, d)
        }
        linktype::LINUX_SLL2 => {
            let proto = b.u16(0).ok_or(DecodeProblem::TruncatedLink)?;
            let rest = b.from(20).ok_or(DecodeProblem::TruncatedLink)?;
            sll_proto(proto, rest, d)
        }
        linktype::PPP | linktype::PPP_HDLC => ppp(data, d),
        _ => Err(DecodeProblem::UnsupportedLinkType),
    }
}

fn sll_proto(proto: u16, rest: &[u8], d: Depth) -> DResult<'_> {
    // Values below 0x0600 are ARPHRD-specific pseudo protocols (802.2 LLC, CAN, ...).
    if proto < 0x0600 {
        return Ok(Decoded::Other);
    }
    ether_dispatch(proto, rest, d)
}

fn raw_ip(data: &[u8], d: Depth) -> DResult<'_> {
    match data.first().map(|v| v >> 4) {
        Some(4) => ipv4(data, d),
        Some(6) => ipv6(data, d),
        Some(_) => Err(DecodeProblem::BadIpHeader),
        None => Err(DecodeProblem::TruncatedIp),
    }
}

/// PPP frame (optionally with HDLC address/control 0xff 0x03).
fn ppp(data: &[u8], d: Depth) -> DResult<'_> {
    let b = Bytes(data);
    let start = if b.u16(0) == Some(0xff03) { 2 } else { 0 };
    let proto = b.u16(start).ok_or(DecodeProblem::TruncatedLink)?;
    let rest = b.from(start + 2).ok_or(DecodeProblem::TruncatedLink)?;
    match proto {
        0x0021 => ipv4(rest, d),
        0x0057 => ipv6(rest, d),
        // Link/network control protocols (LCP, IPCP, IPV6CP, CHAP, PAP...): no payload for us.
        0xc021 | 0x8021 | 0x8057 | 0xc223 | 0xc023 | 0x80fd | 0x00fd => Ok(Decoded::Other),
        _ => Err(DecodeProblem::UnsupportedEthertype),
    }
}

fn ethernet(data: &[u8], d: Depth) -> DResult<'_> {
    let b = Bytes(data);
    let et = b.u16(12).ok_or(DecodeProblem::TruncatedLink)?;
    let rest = b.from(14).ok_or(DecodeProblem::TruncatedLink)?;
    ether_dispatch(et, rest, d)
}

fn ether_dispatch(et: u16, data: &[u8], d: Depth) -> DResult<'_> {
    let d = d.layer()?;
    let b = Bytes(data);
    match et {
        ethertype::IPV4 => ipv4(data, d),
        ethertype::IPV6 => ipv6(data, d),
        ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_OLD => {
            let inner = b.u16(2).ok_or(DecodeProblem::TruncatedLink)?;
            let rest = b.from(4).ok_or(DecodeProblem::TruncatedLink)?;
            ether_dispatch(inner, rest, d)
        }
        ethertype::MPLS_UC | ethertype::MPLS_MC => mpls(data, d),
        ethertype::PPPOE_SESS => {
            // ver/type 0x11, code 0x00, session id, length; then the PPP protocol.
            if b.u8(0) != Some(0x11) || b.u8(1) != Some(0) {
                return Err(DecodeProblem::BadTunnel);
            }
            // The PPPoE length excludes Ethernet padding. Trust it over the IP total length
            // (in the Zeek trace pppoe-over-qinq, an IPv4 header claims 46 bytes where PPPoE
            // correctly says 40: the rest is padding that must not become TCP payload).
            let len = usize::from(b.u16(4).ok_or(DecodeProblem::TruncatedLink)?);
            let body = b.from(6).ok_or(DecodeProblem::TruncatedLink)?;
            let body = body.get(..len).unwrap_or(body);
            ppp(body, d)
        }
        ethertype::TEB => ethernet(data, d.tunnel()?),
        ethertype::PPPOE_DISC | ethertype::ARP | ethertype::RARP | ethertype::LLDP => {
            Ok(Decoded::Other)
        }
        // 802.3 length field: an LLC frame (STP, CDP, ...), never IP for us.
        x if x < 0x0600 => Ok(Decoded::Other),
        _ => Err(DecodeProblem::UnsupportedEthertype),
    }
}

fn mpls(data: &[u8], d: Depth) -> DResult<'_> {
    let d = d.tunnel()?;
    let b = Bytes(data);
    let mut off = 0usize;
    for _ in 0..MAX_MPLS_LABELS {
        let entry = b.u32(off).ok_or(DecodeProblem::TruncatedLink)?;
        off += 4;
        if entry & 0x100 != 0 {
            let rest = b.from(off).ok_or(DecodeProblem::TruncatedLink)?;
            // No next-protocol field: guess by the first nibble after the bottom of stack.
            return match rest.first().map(|v| v >> 4) {
                Some(4) => ipv4(rest, d),
                Some(6) => ipv6(rest, d),
                // Pseudowire control word (first nibble 0), then an Ethernet frame.
                Some(0) => ethernet(rest.get(4..).ok_or(DecodeProblem::TruncatedLink)?, d),
                Some(_) => Err(DecodeProblem::BadTunnel),
                None => Err(DecodeProblem::TruncatedLink),
            };
        }
    }
    Err(DecodeProblem::TunnelTooDeep)
}

fn ipv4(data: &[u8], d: Depth) -> DResult<'_> {
    let b = Bytes(data);
    let vihl = b.u8(0).ok_or(DecodeProblem::TruncatedIp)?;
    if vihl >> 4 != 4 {
        return Err(DecodeProblem::BadIpHeader);
    }
    let ihl = usize::from(vihl & 0x0f) * 4;
    if ihl < 20 {
        return Err(DecodeProblem::BadIpHeader);
    }
    if data.len() < ihl {
        return Err(DecodeProblem::TruncatedIp);
    }
    let total = usize::from(b.u16(2).ok_or(DecodeProblem::TruncatedIp)?);
    // A total length of 0 is what TSO/LRO offload captures show: use what was captured.
    let total = if total == 0 { data.len() } else { total };
    if total < ihl {
        return Err(DecodeProblem::BadIpHeader);
    }
    // A total length beyond the captured bytes: snaplen cut, or a lower layer (PPPoE) that
    // trimmed a bogus length. Use what is there: the bytes present are real, and TCP
    // reassembly turns whatever is missing into a gap.
    let total = total.min(data.len());
    let id = b.u16(4).ok_or(DecodeProblem::TruncatedIp)?;
    let frag = b.u16(6).ok_or(DecodeProblem::TruncatedIp)?;
    let proto = b.u8(9).ok_or(DecodeProblem::TruncatedIp)?;
    let src = b.range(12, 4).ok_or(DecodeProblem::TruncatedIp)?;
    let dst = b.range(16, 4).ok_or(DecodeProblem::TruncatedIp)?;
    let src = IpAddr::V4(Ipv4Addr::new(src[0], src[1], src[2], src[3]));
    let dst = IpAddr::V4(Ipv4Addr::new(dst[0], dst[1], dst[2], dst[3]));
    let payload = data.get(ihl..total).ok_or(DecodeProblem::TruncatedIp)?;
    let more = frag & 0x2000 != 0;
    let offset = u32::from(frag & 0x1fff) * 8;
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
    l4(proto, src, dst, payload, d, false)
}

fn ipv6(data: &[u8], d: Depth) -> DResult<'_> {
    let b = Bytes(data);
    let v = b.u8(0).ok_or(DecodeProblem::TruncatedIp)?;
    if v >> 4 != 6 {
        return Err(DecodeProblem::BadIpHeader);
    }
    if data.len() < 40 {
        return Err(DecodeProblem::TruncatedIp);
    }
    let plen = usize::from(b.u16(4).ok_or(DecodeProblem::TruncatedIp)?);
    let next = b.u8(6).ok_or(DecodeProblem::TruncatedIp)?;
    let src = ip6(b.range(8, 16).ok_or(DecodeProblem::TruncatedIp)?);
    let dst = ip6(b.range(24, 16).ok_or(DecodeProblem::TruncatedIp)?);
    let rest = b.from(40).ok_or(DecodeProblem::TruncatedIp)?;
    // Payload length 0: jumbogram or offload capture; use what was captured.
    // (A length beyond the captured bytes is clamped, as for IPv4.)
    let payload = if plen == 0 {
        rest
    } else {
        rest.get(..plen).unwrap_or(rest)
    };
    l4(next, src, dst, payload, d, true)
}

fn ip6(b: &[u8]) -> IpAddr {
    let mut a = [0u8; 16];
    for (o, i) in a.iter_mut().zip(b.iter()) {
        *o = *i;
    }
    IpAddr::V6(Ipv6Addr::from(a))
}

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
    l4(proto, src, dst, data, d, v6)
}

/// Dispatches on the IP protocol, walking IPv6 extension headers and AH first.
fn l4<'a>(
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
                let next = b.u8(0).ok_or(DecodeProblem::TruncatedIp)?;
                let len = (usize::from(b.u8(1).ok_or(DecodeProblem::TruncatedIp)?) + 1) * 8;
                data = b.from(len).ok_or(DecodeProblem::TruncatedIp)?;
                proto = next;
            }
            ipproto::FRAGMENT if v6 => {
                let next = b.u8(0).ok_or(DecodeProblem::TruncatedIp)?;
                let off = b.u16(2).ok_or(DecodeProblem::TruncatedIp)?;
                let id = b.u32(4).ok_or(DecodeProblem::TruncatedIp)?;
                let rest = b.from(8).ok_or(DecodeProblem::TruncatedIp)?;
                let offset = u32::from(off & 0xfff8);
                let more = off & 1 != 0;
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
                let next = b.u8(0).ok_or(DecodeProblem::TruncatedIp)?;
                let len = (usize::from(b.u8(1).ok_or(DecodeProblem::TruncatedIp)?) + 2) * 4;
                data = b.from(len).ok_or(DecodeProblem::TruncatedIp)?;
                proto = next;
            }
            _ => return transport(proto, src, dst, data, d),
        }
    }
    Err(DecodeProblem::BadIpHeader)
}

fn transport<'a>(proto: u8, src: IpAddr, dst: IpAddr, data: &'a [u8], d: Depth) -> DResult<'a> {
    let b = Bytes(data);
    match proto {
        ipproto::TCP => {
            let sport = b.u16(0).ok_or(DecodeProblem::TruncatedTransport)?;
            let dport = b.u16(2).ok_or(DecodeProblem::TruncatedTransport)?;
            let seq = b.u32(4).ok_or(DecodeProblem::TruncatedTransport)?;
            let ack = b.u32(8).ok_or(DecodeProblem::TruncatedTransport)?;
            let off = usize::from(b.u8(12).ok_or(DecodeProblem::TruncatedTransport)? >> 4) * 4;
            let flags = b.u8(13).ok_or(DecodeProblem::TruncatedTransport)?;
            let window = b.u16(14).ok_or(DecodeProblem::TruncatedTransport)?;
            if off < 20 {
                return Err(DecodeProblem::TruncatedTransport);
            }
            let payload = b.from(off).ok_or(DecodeProblem::TruncatedTransport)?;
            Ok(Decoded::Tcp(TcpSegment {
                src,
                dst,
                sport,
                dport,
                seq,
                ack,
                flags,
                window,
                payload,
            }))
        }
        ipproto::UDP => {
            let sport = b.u16(0).ok_or(DecodeProblem::TruncatedTransport)?;
            let dport = b.u16(2).ok_or(DecodeProblem::TruncatedTransport)?;
            let ulen = usize::from(b.u16(4).ok_or(DecodeProblem::TruncatedTransport)?);
            if data.len() < 8 {
                return Err(DecodeProblem::TruncatedTransport);
            }
            let payload = if ulen == 0 {
                b.from(8)
            } else if ulen < 8 {
                return Err(DecodeProblem::TruncatedTransport);
            } else {
                b.range(8, ulen - 8)
            }
            .ok_or(DecodeProblem::TruncatedTransport)?;
            if dport == VXLAN_PORT {
                if let Some(r) = vxlan(payload, d) {
                    return r;
                }
            } else if dport == GENEVE_PORT {
                if let Some(r) = geneve(payload, d) {
                    return r;
                }
            }
            Ok(Decoded::Udp(UdpDatagram {
                src,
                dst,
                sport,
                dport,
                payload,
            }))
        }
        ipproto::IPIP => ipv4(data, d.tunnel()?),
        ipproto::IPV6 => ipv6(data, d.tunnel()?),
        ipproto::GRE => gre(data, d),
        ipproto::MPLS_IN_IP => mpls(data, d),
        ipproto::ESP => Err(DecodeProblem::UnsupportedIpProto),
        ipproto::ICMP
        | ipproto::ICMPV6
        | ipproto::IGMP
        | ipproto::OSPF
        | ipproto::PIM
        | ipproto::VRRP
        | ipproto::SCTP
        | ipproto::NONE => Ok(Decoded::Other),
        _ => Err(DecodeProblem::UnsupportedIpProto),
    }
}

/// VXLAN (RFC 7348): 8-byte header with the I flag set, then Ethernet. `None` when the header
/// does not look like VXLAN, so the datagram is handed over as plain UDP.
fn vxlan<'a>(data: &'a [u8], d: Depth) -> Option<DResult<'a>> {
    let b = Bytes(data);
    let flags = b.u8(0)?;
    if flags & 0x08 == 0 {
        return None;
    }
    let inner = b.from(8)?;
    Some(d.tunnel().and_then(|d| ethernet(inner, d)))
}

/// GENEVE (RFC 8926): version 0, options length in 4-byte words, protocol type.
fn geneve<'a>(data: &'a [u8], d: Depth) -> Option<DResult<'a>> {
    let b = Bytes(data);
    let first = b.u8(0)?;
    if first >> 6 != 0 {
        return None;
    }
    let optlen = usize::from(first & 0x3f) * 4;
    let proto = b.u16(2)?;
    let inner = b.from(8 + optlen)?;
    Some(d.tunnel().and_then(|d| ether_dispatch(proto, inner, d)))
}

/// GRE (RFC 2784/2890) version 0, with checksum/key/sequence fields, carrying IP, transparent
/// Ethernet, ERSPAN II/III or anything else with an EtherType.
fn gre(data: &[u8], d: Depth) -> DResult<'_> {
    let d = d.tunnel()?;
    let b = Bytes(data);
    let flags = b.u16(0).ok_or(DecodeProblem::BadTunnel)?;
    let proto = b.u16(2).ok_or(DecodeProblem::BadTunnel)?;
    if flags & 0x0007 != 0 {
        // Version 1 is PPTP's enhanced GRE (mostly MPPE-encrypted PPP).
        return Err(DecodeProblem::BadTunnel);
    }
    if flags & 0x4000 != 0 {
        // Source routing (RFC 1701), deprecated.
        return Err(DecodeProblem::BadTunnel);
    }
    let mut off = 4usize;
    if flags & 0x8000 != 0 {
        off += 4;
    }
    if flags & 0x2000 != 0 {
        off += 4;
    }
    let seq = flags & 0x1000 != 0;
    if seq {
        off += 4;
    }
    let rest = b.from(off).ok_or(DecodeProblem::BadTunnel)?;
    match proto {
        ethertype::ERSPAN2 => {
            if !seq {
                // ERSPAN type I: no ERSPAN header, the mirrored frame follows directly.
                return ethernet(rest, d);
            }
            ethernet(rest.get(8..).ok_or(DecodeProblem::BadTunnel)?, d)
        }
        ethertype::ERSPAN3 => {
            let e = Bytes(rest);
            let last = e.u8(11).ok_or(DecodeProblem::BadTunnel)?;
            let ft = (e.u8(10).ok_or(DecodeProblem::BadTunnel)? >> 2) & 0x1f;
            let hdr = if last & 0x01 != 0 { 20 } else { 12 };
            let inner = rest.get(hdr..).ok_or(DecodeProblem::BadTunnel)?;
            match ft {
                0 => ethernet(inner, d),
                _ => raw_ip(inner, d),
            }
        }
        _ => ether_dispatch(proto, rest, d),
    }
}

fn shard_hasher() -> &'static ahash::RandomState {
    static H: OnceLock<ahash::RandomState> = OnceLock::new();
    H.get_or_init(ahash::RandomState::new)
}

/// Symmetric flow hash of a raw packet for sharding to workers: the same value for both
/// directions of a TCP/UDP flow (innermost headers, through tunnels). The seed is random per
/// process (attackers choose 5-tuples) but fixed for the process's lifetime, so all workers agree.
/// `None` when the frame does not decode to a flow.
///
/// An IP fragment hashes by its address pair only (later fragments carry no ports), which is NOT
/// the hash of its flow's other packets, and for a fragmented tunnel packet not even the right
/// address pair. A sharding dispatcher must therefore reassemble fragments itself and route the
/// whole datagram by [`flow_hash_decoded`] of its payload (see `Engine::process_reassembled`),
/// never send fragments to workers by this value.
pub fn flow_hash(pkt: &RawPacket<'_>) -> Option<u64> {
    flow_hash_decoded(&decode(pkt).ok()?)
}

/// [`flow_hash`] of a frame already decoded (or of a reassembled datagram's payload decoded with
/// [`decode_ip_payload`]).
pub fn flow_hash_decoded(d: &Decoded<'_>) -> Option<u64> {
    let (a, b, pa, pb, proto) = match d {
        Decoded::Tcp(t) => (t.src, t.dst, t.sport, t.dport, 6u8),
        Decoded::Udp(u) => (u.src, u.dst, u.sport, u.dport, 17u8),
        Decoded::Fragment(f) => (f.src, f.dst, 0, 0, 0),
        Decoded::Other => return None,
    };
    let (lo, hi) = if (a, pa) <= (b, pb) {
        ((a, pa), (b, pb))
    } else {
        ((b, pb), (a, pa))
    };
    Some(shard_hasher().hash_one((lo, hi, proto)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0x45, 0, 0, 0, 0, 1, 0, 0, 64, 6, 0, 0];
        v.extend_from_slice(&src);
        v.extend_from_slice(&dst);
        v.extend_from_slice(&sport.to_be_bytes());
        v.extend_from_slice(&dport.to_be_bytes());
        v.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
        v.extend_from_slice(payload);
        let len = v.len() as u16;
        v[2..4].copy_from_slice(&len.to_be_bytes());
        v
    }

    fn eth(et: u16, body: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; 12];
        v.extend_from_slice(&et.to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn vlan_mpls_gre_vxlan_nest() {
        let ip = ipv4_tcp([10, 0, 0, 1], [10, 0, 0, 2], 1234, 443, b"\x16\x03");
        // VXLAN inside UDP inside GRE(key+seq) inside MPLS inside QinQ.
        let inner_eth = eth(0x0800, &ip);
        let mut vx = vec![0x08, 0, 0, 0, 0, 0, 1, 0];
        vx.extend_from_slice(&inner_eth);
        let mut udp = vec![0x12, 0x34, 0x12, 0xb5];
        udp.extend_from_slice(&((vx.len() + 8) as u16).to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.extend_from_slice(&vx);
        let mut outer_ip = vec![
            0x45, 0, 0, 0, 0, 1, 0, 0, 64, 17, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
        ];
        outer_ip.extend_from_slice(&udp);
        let l = outer_ip.len() as u16;
        outer_ip[2..4].copy_from_slice(&l.to_be_bytes());
        let mut gre = vec![0x30, 0, 0x08, 0x00, 0, 0, 0, 7, 0, 0, 0, 9];
        gre.extend_from_slice(&outer_ip);
        let mut gre_ip = vec![
            0x45, 0, 0, 0, 0, 1, 0, 0, 64, 47, 0, 0, 3, 3, 3, 3, 4, 4, 4, 4,
        ];
        gre_ip.extend_from_slice(&gre);
        let l = gre_ip.len() as u16;
        gre_ip[2..4].copy_from_slice(&l.to_be_bytes());
        let mut mpls = vec![0, 0x01, 0x00, 64, 0, 0x02, 0x01, 64];
        mpls.extend_from_slice(&gre_ip);
        let mut tags = vec![0, 10, 0x81, 0x00, 0, 20, 0x88, 0x47];
        tags.extend_from_slice(&mpls);
        let frame = eth(0x88a8, &tags);
        match decode_link(linktype::ETHERNET, &frame) {
            Ok(Decoded::Tcp(t)) => {
                assert_eq!(t.dport, 443);
                assert_eq!(t.payload, b"\x16\x03");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn tunnel_depth_capped() {
        let mut pkt = ipv4_tcp([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, b"");
        for _ in 0..20 {
            let mut outer = vec![
                0x45, 0, 0, 0, 0, 1, 0, 0, 64, 4, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
            ];
            outer.extend_from_slice(&pkt);
            let l = outer.len() as u16;
            outer[2..4].copy_from_slice(&l.to_be_bytes());
            pkt = outer;
        }
        assert!(matches!(
            decode_link(linktype::RAW, &pkt),
            Err(DecodeProblem::TunnelTooDeep)
        ));
    }

    #[test]
    fn null_loopback_both_orders_and_ipv6_afs() {
        let ip = ipv4_tcp([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, b"x");
        for hdr in [[2u8, 0, 0, 0], [0, 0, 0, 2]] {
            let mut f = hdr.to_vec();
            f.extend_from_slice(&ip);
            assert!(matches!(decode_link(0, &f), Ok(Decoded::Tcp(_))));
            assert!(matches!(decode_link(108, &f), Ok(Decoded::Tcp(_))));
        }
        let mut v6 = vec![0x60, 0, 0, 0, 0, 20, 6, 64];
        v6.extend_from_slice(&[0u8; 31]);
        v6.push(1);
        v6.extend_from_slice(&[
            0, 1, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0, 0, 0, 0, 0, 0,
        ]);
        for af in [24u32, 28, 30] {
            let mut f = af.to_le_bytes().to_vec();
            f.extend_from_slice(&v6);
            assert!(matches!(decode_link(0, &f), Ok(Decoded::Tcp(_))), "af {af}");
        }
    }

    #[test]
    fn flow_hash_symmetric() {
        let a = ipv4_tcp([10, 0, 0, 1], [10, 0, 0, 2], 1234, 443, b"");
        let b = ipv4_tcp([10, 0, 0, 2], [10, 0, 0, 1], 443, 1234, b"");
        let c = ipv4_tcp([10, 0, 0, 2], [10, 0, 0, 1], 444, 1234, b"");
        let p = |d: &[u8]| {
            flow_hash(&RawPacket {
                ts_ns: 0,
                linktype: linktype::RAW,
                data: d,
                orig_len: d.len() as u32,
            })
        };
        assert!(p(&a).is_some());
        assert_eq!(p(&a), p(&b));
        assert_ne!(p(&a), p(&c));
    }

    fn tcp_payload(r: DResult<'_>) -> Vec<u8> {
        match r {
            Ok(Decoded::Tcp(t)) => t.payload.to_vec(),
            other => panic!("not TCP: {other:?}"),
        }
    }

    fn ip4(proto: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![
            0x45, 0, 0, 0, 0, 1, 0, 0, 64, proto, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
        ];
        v.extend_from_slice(body);
        let l = v.len() as u16;
        v[2..4].copy_from_slice(&l.to_be_bytes());
        v
    }

    fn tcp_seg(payload: &[u8]) -> Vec<u8> {
        let mut v = vec![
            0x04, 0xd2, 0x01, 0xbb, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 1, 0, 0, 0, 0, 0,
        ];
        v.extend_from_slice(payload);
        v
    }

    fn ip6(next: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![0x60, 0, 0, 0];
        v.extend_from_slice(&(body.len() as u16).to_be_bytes());
        v.push(next);
        v.push(64);
        v.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        v.extend_from_slice(&[0; 11]);
        v.push(1);
        v.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        v.extend_from_slice(&[0; 11]);
        v.push(2);
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn linux_sll_and_sll2() {
        let ip = ipv4_tcp([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, b"sll");
        let mut sll = vec![0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(&ip);
        assert_eq!(tcp_payload(decode_link(linktype::LINUX_SLL, &sll)), b"sll");
        let mut sll2 = vec![0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6];
        sll2.extend_from_slice(&[0; 8]);
        sll2.extend_from_slice(&ip);
        assert_eq!(
            tcp_payload(decode_link(linktype::LINUX_SLL2, &sll2)),
            b"sll"
        );
        assert!(matches!(
            decode_link(linktype::LINUX_SLL2, &sll2[..10]),
            Err(DecodeProblem::TruncatedLink)
        ));
    }

    #[test]
    fn pppoe_session_trims_padding() {
        let ip = ipv4_tcp([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, b"");
        let mut body = vec![0x11, 0, 0x12, 0x34];
        body.extend_from_slice(&((ip.len() + 2) as u16).to_be_bytes());
        body.extend_from_slice(&[0x00, 0x21]);
        body.extend_from_slice(&ip);
        body.extend_from_slice(&[0xaa; 6]); // Ethernet padding
        let frame = eth(ethertype::PPPOE_SESS, &body);
        assert_eq!(tcp_payload(decode_link(1, &frame)), b"");
        // Discovery and LCP are recognised, not problems.
        assert!(matches!(
            decode_link(1, &eth(ethertype::PPPOE_DISC, &[0x11, 9, 0, 0, 0, 0])),
            Ok(Decoded::Other)
        ));
    }

    #[test]
    fn erspan_two_and_three() {
        let inner = eth(
            0x0800,
            &ipv4_tcp([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, b"span"),
        );
        // ERSPAN II: GRE with sequence number, 8-byte ERSPAN header.
        let mut g2 = vec![0x10, 0x00, 0x88, 0xbe, 0, 0, 0, 1];
        g2.extend_from_slice(&[0x10, 0x01, 0, 0, 0, 0, 0, 0]);
        g2.extend_from_slice(&inner);
        assert_eq!(tcp_payload(decode_link(101, &ip4(47, &g2))), b"span");
        // ERSPAN III with the optional 8-byte platform sub-header (O bit).
        let mut g3 = vec![0x10, 0x00, 0x22, 0xeb, 0, 0, 0, 1];
        g3.extend_from_slice(&[0x20, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01]);
        g3.extend_from_slice(&[0; 8]);
        g3.extend_from_slice(&inner);
        assert_eq!(tcp_payload(decode_link(101, &ip4(47, &g3))), b"span");
        // ERSPAN I: no sequence flag, no header.
        let mut g1 = vec![0x00, 0x00, 0x88, 0xbe];
        g1.extend_from_slice(&inner);
        assert_eq!(tcp_payload(decode_link(101, &ip4(47, &g1))), b"span");
    }

    #[test]
    fn gre_checksum_key_teb_and_geneve_options() {
        let inner = eth(
            0x0800,
            &ipv4_tcp([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, b"teb"),
        );
        let mut g = vec![0xa0, 0x00, 0x65, 0x58, 0, 0, 0, 0, 0, 0, 0, 42];
        g.extend_from_slice(&inner);
        assert_eq!(tcp_payload(decode_link(101, &ip4(47, &g))), b"teb");
        // GENEVE with 8 bytes of options, carrying Ethernet.
        let mut gv = vec![0x02, 0x00, 0x65, 0x58, 0, 0, 1, 0];
        gv.extend_from_slice(&[0x01, 0x02, 0x03, 0x01, 0, 0, 0, 0]);
        gv.extend_from_slice(&inner);
        let mut udp = vec![0x30, 0x39, 0x17, 0xc1];
        udp.extend_from_slice(&((gv.len() + 8) as u16).to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.extend_from_slice(&gv);
        assert_eq!(tcp_payload(decode_link(101, &ip4(17, &udp))), b"teb");
        // PPTP GRE (version 1) is counted as a bad tunnel.
        assert!(matches!(
            decode_link(101, &ip4(47, &[0x30, 0x01, 0x88, 0x0b, 0, 0, 0, 0])),
            Err(DecodeProblem::BadTunnel)
        ));
    }

    #[test]
    fn ipv6_extension_headers_and_fragments() {
        let seg = tcp_seg(b"v6");
        // Hop-by-hop (8) -> destination options (16) -> TCP.
        let mut body = vec![60, 0, 1, 4, 0, 0, 0, 0];
        body.extend_from_slice(&[6, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        body.extend_from_slice(&seg);
        assert_eq!(tcp_payload(decode_link(229, &ip6(0, &body))), b"v6");
        // AH then TCP.
        let mut ah = vec![6, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1];
        ah.extend_from_slice(&[0; 12]);
        ah.extend_from_slice(&seg);
        assert_eq!(tcp_payload(decode_link(229, &ip6(51, &ah))), b"v6");
        // A real fragment.
        let mut fr = vec![6, 0, 0x00, 0x01, 0, 0, 0, 9];
        fr.extend_from_slice(&seg[..16]);
        match decode_link(229, &ip6(44, &fr)) {
            Ok(Decoded::Fragment(f)) => {
                assert!(f.more && f.v6);
                assert_eq!((f.id, f.offset, f.proto), (9, 0, 6));
            }
            other => panic!("{other:?}"),
        }
        // Atomic fragment: decoded straight through.
        let mut at = vec![6, 0, 0, 0, 0, 0, 0, 9];
        at.extend_from_slice(&seg);
        assert_eq!(tcp_payload(decode_link(229, &ip6(44, &at))), b"v6");
        // ESP cannot be decoded.
        assert!(matches!(
            decode_link(229, &ip6(50, &[0; 16])),
            Err(DecodeProblem::UnsupportedIpProto)
        ));
    }

    #[test]
    fn six_in_four_ipv6_in_ipv6_and_mpls_pw() {
        let v6 = ip6(6, &tcp_seg(b"6in4"));
        assert_eq!(tcp_payload(decode_link(101, &ip4(41, &v6))), b"6in4");
        assert_eq!(tcp_payload(decode_link(101, &ip6(41, &v6))), b"6in4");
        // MPLS, bottom of stack, pseudowire control word, Ethernet.
        let inner = eth(0x0800, &ipv4_tcp([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, b"pw"));
        let mut m = vec![0, 0x01, 0x01, 64, 0, 0, 0, 0];
        m.extend_from_slice(&inner);
        assert_eq!(tcp_payload(decode_link(1, &eth(0x8847, &m))), b"pw");
        // IPv6 directly after the label stack.
        let mut m6 = vec![0, 0x01, 0x01, 64];
        m6.extend_from_slice(&v6);
        assert_eq!(tcp_payload(decode_link(1, &eth(0x8848, &m6))), b"6in4");
    }

    /// The fast path gives exactly the general decoder's result on every frame it takes, over
    /// the whole Zeek corpus and the project's own captures (VLAN, IPv6, tunnels, fragments,
    /// truncated frames all fall back), and it takes most TCP frames.
    #[test]
    fn plain_fast_path_matches_the_general_decoder() {
        let mut files: Vec<std::path::PathBuf> = Vec::new();
        for dir in [
            concat!(env!("CARGO_MANIFEST_DIR"), "/../pcaps/zeek"),
            concat!(env!("CARGO_MANIFEST_DIR"), "/../pcaps/cases"),
        ] {
            // A missing folder fails the test: it must not pass on whatever is left.
            let rd = std::fs::read_dir(dir)
                .unwrap_or_else(|e| panic!("missing test inputs: cannot read {dir}: {e}"));
            files.extend(
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng")),
            );
        }
        assert!(files.len() > 100, "{} captures", files.len());
        let (mut fast, mut tcp) = (0u64, 0u64);
        for f in &files {
            crate::source::read_file(f, &mut |pkt| {
                let general = PreTcp::decode_general(pkt);
                tcp += u64::from(general.is_some());
                if let Some(p) = PreTcp::plain(pkt) {
                    fast += 1;
                    assert_eq!(Some(p), general, "{f:?}");
                }
                // Cut frames: the fast path never takes what the general decoder rejects.
                for cut in [13usize, 20, 33, 40, 53, 60, 73] {
                    if let Some(d) = pkt.data.get(..cut) {
                        let short = RawPacket { data: d, ..*pkt };
                        if let Some(p) = PreTcp::plain(&short) {
                            assert_eq!(Some(p), PreTcp::decode_general(&short), "{f:?} cut {cut}");
                        }
                    }
                }
            })
            .unwrap_or_else(|e| panic!("{f:?}: not readable: {e}"));
        }
        assert!(tcp > 5_000 && fast * 10 > tcp * 7, "fast {fast} of {tcp}");
    }

    #[test]
    fn garbage_never_panics() {
        let mut x = 12345u64;
        for len in 0..300 {
            let mut v = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                v.push(x as u8);
            }
            for lt in [0, 1, 9, 12, 101, 108, 113, 228, 229, 276] {
                let _ = decode_link(lt, &v);
            }
        }
    }
}
