//! Link, tunnel, IP and transport decode down to a TCP segment or UDP datagram.
//!
//! Style follows smoltcp's `wire`: one file per layer, each with a private `mod field` naming the
//! byte ranges of its header, and every header is read through a small checked view (`Bytes`)
//! whose accessors take those ranges and return `Option`, so no offset computed from packet bytes
//! can panic. The dispatcher walks link layers (`link`, `ethernet`, `ppp`), VLAN tags, MPLS
//! stacks, PPPoE, the tags switches insert (`tags`: TrustSec, VN-Tag, E-Tag, TTag, R-TAG, PBB)
//! and tunnels (`gre` with ERSPAN, `vxlan`, `geneve`, `nsh` with VXLAN-GPE, `mpls`, `mobile`:
//! GTP-U, L2TP and Teredo, `mirror`: TZSP and HP ERM, IP-in-IP, 6in4, IPv6-in-IPv6, through
//! `ip`, `ipv4`, `ipv6`) with an explicit bound on nesting, and stops at
//! the innermost TCP/UDP header (`tcp`, `udp`), or at an IP fragment that [`crate::defrag`] must reassemble first
//! (decode then continues with [`decode_ip_payload`] on the reassembled bytes). [`PreTcp`] is the
//! fast path for plain Ethernet/IP/TCP frames, reading the same fields.
use crate::stats::DecodeProblem;
use crate::RawPacket;
use std::ops::{Range, RangeFrom};
use std::sync::OnceLock;

mod ethernet;
mod geneve;
mod gre;
mod ip;
mod ipv4;
mod ipv6;
mod link;
mod mirror;
mod mobile;
mod mpls;
mod nsh;
mod ppp;
mod pretcp;
mod tags;
mod tcp;
mod udp;
mod vxlan;

pub use ethernet::ethertype;
pub use geneve::GENEVE_PORT;
pub use ip::{decode_ip_payload, ipproto, Fragment, MAX_IPV6_EXT_HEADERS};
pub use link::{decode_link, linktype};
pub use mirror::{HP_ERM_PORT, TZSP_PORT};
pub use mobile::{GTPU_PORT, L2TP_PORT, TEREDO_PORT};
pub use mpls::MAX_MPLS_LABELS;
pub use nsh::{NSH_ETHERTYPE, VXLAN_GPE_PORT};
pub use pretcp::PreTcp;
pub use tcp::{tcpflag, TcpSegment};
pub use udp::UdpDatagram;
pub use vxlan::VXLAN_PORT;

/// Most tunnel encapsulations (GRE, VXLAN, GENEVE, IP-in-IP, MPLS, ERSPAN...) peeled from one
/// frame. Real networks rarely nest more than 2-3; a crafted frame could nest until the snaplen.
pub const MAX_TUNNEL_DEPTH: u8 = 8;
/// Most link-level layers (VLAN tags, MPLS labels, PPPoE) in one frame, across all tunnels.
pub const MAX_LAYERS: u8 = 32;

/// The bytes of a multi-byte header field (smoltcp's `wire::field::Field`).
type Field = Range<usize>;
/// Everything from an offset on: a header's payload.
type Rest = RangeFrom<usize>;

/// `f` moved `by` bytes further into the packet (`None` on overflow).
fn shifted(f: Field, by: usize) -> Option<Field> {
    Some(f.start.checked_add(by)?..f.end.checked_add(by)?)
}

/// Where the IP version sits in the first byte of an IPv4 or IPv6 header (high nibble).
const IP_VERSION_SHIFT: u32 = 4;

/// The IP version in `first`, the first byte of an IP header.
fn ip_version(first: u8) -> u8 {
    first >> IP_VERSION_SHIFT
}

/// A checked read-only view: every accessor is bounds-checked and returns `Option`.
#[derive(Clone, Copy)]
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    #[inline]
    fn u8(&self, at: usize) -> Option<u8> {
        self.0.get(at).copied()
    }
    /// The field's bytes as an array; `None` when they are not all there (or the field is not
    /// `N` bytes long).
    #[inline]
    fn array<const N: usize>(&self, f: Field) -> Option<[u8; N]> {
        self.0.get(f)?.try_into().ok()
    }
    #[inline]
    fn u16(&self, f: Field) -> Option<u16> {
        self.array(f).map(u16::from_be_bytes)
    }
    #[inline]
    fn u32(&self, f: Field) -> Option<u32> {
        self.array(f).map(u32::from_be_bytes)
    }
    fn u32_le(&self, f: Field) -> Option<u32> {
        self.array(f).map(u32::from_le_bytes)
    }
    fn rest(&self, r: Rest) -> Option<&'a [u8]> {
        self.0.get(r)
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
    /// A frame's outermost layer.
    const OUTER: Depth = Depth {
        tunnels: 0,
        layers: 0,
    };

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
    /// The protocol a fragment hashes with (its ports are unknown too).
    const FRAGMENT_PROTO: u8 = 0;
    let (a, b, pa, pb, proto) = match d {
        Decoded::Tcp(t) => (t.src, t.dst, t.sport, t.dport, ipproto::TCP),
        Decoded::Udp(u) => (u.src, u.dst, u.sport, u.dport, ipproto::UDP),
        Decoded::Fragment(f) => (f.src, f.dst, 0, 0, FRAGMENT_PROTO),
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
            Err(DecodeProblem::UnsupportedIpProto(50))
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

    fn udp4(sport: u16, dport: u16, body: &[u8]) -> Vec<u8> {
        let mut u = sport.to_be_bytes().to_vec();
        u.extend_from_slice(&dport.to_be_bytes());
        u.extend_from_slice(&((body.len() + 8) as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(body);
        ip4(17, &u)
    }

    /// Tags between the MACs' EtherType and the payload's: TrustSec (CMD with the SGT), VN-Tag,
    /// E-Tag, TTag, R-TAG, PBB; and an unknown EtherType counted by value.
    #[test]
    fn switch_and_fabric_tags() {
        let ip = ipv4_tcp([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, b"tag");
        let with = |et: u16, tag: &[u8]| {
            let mut v = tag.to_vec();
            v.extend_from_slice(&0x0800u16.to_be_bytes());
            v.extend_from_slice(&ip);
            eth(et, &v)
        };
        for (et, tag) in [
            (0x8909, vec![0x01, 0x01, 0x00, 0x01, 0x00, 0x10]),
            (0x8926, vec![0; 4]),
            (0x893f, vec![0; 6]),
            (0x8988, vec![0, 0, 0, 1, 2, 3]),
            (0xf1c1, vec![0, 0, 0, 7]),
            (0x88e7, vec![0; 16]),
        ] {
            assert_eq!(
                tcp_payload(decode_link(1, &with(et, &tag))),
                b"tag",
                "{et:#x}"
            );
        }
        // TrustSec inside a VLAN.
        let mut v = vec![
            0, 10, 0x89, 0x09, 0x01, 0x01, 0x00, 0x01, 0x00, 0x10, 0x08, 0x00,
        ];
        v.extend_from_slice(&ip);
        assert_eq!(tcp_payload(decode_link(1, &eth(0x8100, &v))), b"tag");
        assert!(matches!(
            decode_link(1, &eth(0x88b5, &ip)),
            Err(DecodeProblem::UnsupportedEthertype(0x88b5))
        ));
    }

    #[test]
    fn nsh_over_ethernet_gre_and_vxlan_gpe() {
        let ip = ipv4_tcp([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, b"nsh");
        // MD type 2, length 3 words (base, service path, one metadata word), next IPv4.
        let mut n = vec![0x00, 0x03, 0x02, 0x01, 0, 0, 1, 255, 0, 0, 0, 0];
        n.extend_from_slice(&ip);
        assert_eq!(tcp_payload(decode_link(1, &eth(0x894f, &n))), b"nsh");
        let mut g = vec![0x00, 0x00, 0x89, 0x4f];
        g.extend_from_slice(&n);
        assert_eq!(tcp_payload(decode_link(101, &ip4(47, &g))), b"nsh");
        // VXLAN-GPE next protocol NSH, which carries Ethernet.
        let mut ne = vec![0x00, 0x02, 0x02, 0x03, 0, 0, 1, 255];
        ne.extend_from_slice(&eth(0x0800, &ip));
        let mut gpe = vec![0x0c, 0, 0, 0x04, 0, 0, 42, 0];
        gpe.extend_from_slice(&ne);
        assert_eq!(
            tcp_payload(decode_link(101, &udp4(5555, 4790, &gpe))),
            b"nsh"
        );
    }

    #[test]
    fn gtpu_with_extension_headers() {
        let ip = ipv4_tcp([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, b"gtp");
        // E flag, next extension 0x85 (PDU session container, 1 unit), then none.
        let mut g = vec![
            0x34, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0x85, 1, 0x10, 0x05, 0x00,
        ];
        g.extend_from_slice(&ip);
        let l = (g.len() - 8) as u16;
        g[2..4].copy_from_slice(&l.to_be_bytes());
        assert_eq!(tcp_payload(decode_link(101, &udp4(2152, 2152, &g))), b"gtp");
        // Echo request: GTP, of no interest.
        let echo = [0x32, 0x01, 0, 4, 0, 0, 0, 0, 0, 1, 0, 0];
        assert!(matches!(
            decode_link(101, &udp4(2152, 2152, &echo)),
            Ok(Decoded::Other)
        ));
    }

    #[test]
    fn l2tp_v2_v3_and_teredo() {
        let ip = ipv4_tcp([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, b"l2tp");
        // v2 data with length and sequence, then PPP (address/control, IPv4).
        let mut v2 = vec![
            0x48, 0x02, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0, 0xff, 0x03, 0x00, 0x21,
        ];
        v2.extend_from_slice(&ip);
        assert_eq!(
            tcp_payload(decode_link(101, &udp4(1701, 1701, &v2))),
            b"l2tp"
        );
        // v3 over IP: session id, default L2-specific sublayer, Ethernet.
        let mut v3 = vec![0, 0, 0, 9, 0, 0, 0, 0];
        v3.extend_from_slice(&eth(0x0800, &ip));
        assert_eq!(tcp_payload(decode_link(101, &ip4(115, &v3))), b"l2tp");
        // v3 over IP, a 4-byte cookie and no sublayer.
        let mut v3c = vec![0, 0, 0, 9, 0xde, 0xad, 0xbe, 0xef];
        v3c.extend_from_slice(&eth(0x0800, &ip));
        assert_eq!(tcp_payload(decode_link(101, &ip4(115, &v3c))), b"l2tp");
        // Teredo with an origin indication.
        let v6 = ip6(6, &tcp_seg(b"teredo"));
        let mut t = vec![0, 0, 0xf2, 0x27, 1, 2, 3, 4];
        t.extend_from_slice(&v6);
        assert_eq!(
            tcp_payload(decode_link(101, &udp4(3544, 50000, &t))),
            b"teredo"
        );
        // Not Teredo: plain UDP.
        assert!(matches!(
            decode_link(101, &udp4(3544, 50000, b"hello")),
            Ok(Decoded::Udp(_))
        ));
    }

    #[test]
    fn tzsp_and_hp_erm_mirrors() {
        let frame = eth(
            0x0800,
            &ipv4_tcp([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, b"mirror"),
        );
        // TZSP: received, Ethernet, a 4-byte tag, padding, end.
        let mut tz = vec![1, 0, 0, 1, 0x0a, 4, 0, 0, 0, 1, 0, 1];
        tz.extend_from_slice(&frame);
        assert_eq!(
            tcp_payload(decode_link(101, &udp4(40000, 37008, &tz))),
            b"mirror"
        );
        let mut erm = vec![0u8; 12];
        erm.extend_from_slice(&frame);
        assert_eq!(
            tcp_payload(decode_link(101, &udp4(40000, 7932, &erm))),
            b"mirror"
        );
    }

    #[test]
    fn unsupported_values_are_counted_by_value_and_capped() {
        use crate::stats::{Stats, MAX_PROBLEM_VALUES};
        let mut a = Stats::default();
        for _ in 0..3 {
            a.problem(DecodeProblem::UnsupportedEthertype(0x8909));
        }
        a.problem(DecodeProblem::UnsupportedIpProto(50));
        a.problem(DecodeProblem::TruncatedLink);
        let mut b = Stats::default();
        for v in 0..(MAX_PROBLEM_VALUES as u16 + 10) {
            b.problem(DecodeProblem::UnsupportedEthertype(0x9000 + v));
        }
        a.merge(&b);
        let kind = DecodeProblem::UnsupportedEthertype(0).kind();
        assert_eq!(a.decode_problems[&kind], 3 + MAX_PROBLEM_VALUES as u64 + 10);
        assert_eq!(a.problem_values.len(), MAX_PROBLEM_VALUES);
        assert_eq!(a.problem_values_dropped, 10 + 2);
        let top = a.top_problem_values(2);
        assert_eq!(
            top[0],
            (DecodeProblem::UnsupportedEthertype(0x8909), 3),
            "{top:?}"
        );
        assert_eq!(
            top[0].0.with_value().as_deref(),
            Some("UnsupportedEthertype 0x8909")
        );
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
