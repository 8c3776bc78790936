//! The TCP pre-decode made on the reader thread ([`PreTcp`]), with a fast path for plain
//! Ethernet/IP/TCP frames that reads the same header fields as the general decoder.
use super::ethernet::{self, ethertype};
use super::tcp::{self, TcpSegment};
use super::{decode, ipproto, ipv4, ipv6, linktype, Bytes, Decoded};
use crate::flow::FlowKey;
use crate::RawPacket;

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
        let eth: &[u8; ethernet::field::HEADER_LEN] = pkt
            .data
            .get(..ethernet::field::HEADER_LEN)?
            .try_into()
            .ok()?;
        let ip = Bytes(pkt.data).rest(ethernet::field::PAYLOAD)?;
        let (src, dst, v6, ip_len, total) = match Bytes(eth).u16(ethernet::field::ETHERTYPE)? {
            ethertype::IPV4 => {
                use ipv4::field;
                // One length check for the fixed header; the reads below fold to plain loads.
                let fixed: &[u8; ipv4::HEADER_LEN] = ip.get(..ipv4::HEADER_LEN)?.try_into().ok()?;
                let ipb = Bytes(fixed);
                let total = usize::from(ipb.u16(field::LENGTH)?);
                // IHL 5, not a fragment (DF may be set), TCP, a sane total length.
                if ipb.u8(field::VER_IHL)? != ipv4::VER_IHL_NO_OPTIONS
                    || ipb.u16(field::FLG_OFF)? & ipv4::FRAGMENT_BITS != 0
                    || ipb.u8(field::PROTOCOL)? != ipproto::TCP
                {
                    return None;
                }
                if total < ipv4::HEADER_LEN || ip.len() < ipv4::HEADER_LEN {
                    return None;
                }
                // Mapped into IPv6 (::ffff:a.b.c.d), as `FlowKey::new` keys an IPv4 address. Built
                // by hand so the compiler sees the constant prefix: the key's endpoint ordering
                // then compares 4 bytes, not 16 (a third of this function's cost otherwise).
                let mapped = |a: [u8; 4]| {
                    let mut m = [0u8; 16];
                    m[10] = 0xff;
                    m[11] = 0xff;
                    m[12..].copy_from_slice(&a);
                    m
                };
                let src = mapped(ipb.array(field::SRC_ADDR)?);
                let dst = mapped(ipb.array(field::DST_ADDR)?);
                (src, dst, false, ipv4::HEADER_LEN, total.min(ip.len()))
            }
            ethertype::IPV6 => {
                use ipv6::field;
                let fixed: &[u8; ipv6::HEADER_LEN] = ip.get(..ipv6::HEADER_LEN)?.try_into().ok()?;
                let ipb = Bytes(fixed);
                if super::ip_version(ipb.u8(field::VER_TC_FLOW)?) != ipv6::VERSION
                    || ipb.u8(field::NXT_HDR)? != ipproto::TCP
                    || ip.len() < ipv6::HEADER_LEN
                {
                    return None;
                }
                let plen = usize::from(ipb.u16(field::LENGTH)?);
                let total = if plen == 0 {
                    ip.len()
                } else {
                    plen.saturating_add(ipv6::HEADER_LEN).min(ip.len())
                };
                let src: [u8; 16] = ipb.array(field::SRC_ADDR)?;
                let dst: [u8; 16] = ipb.array(field::DST_ADDR)?;
                (src, dst, true, ipv6::HEADER_LEN, total)
            }
            _ => return None,
        };
        let (h, payload) = tcp::Header::parse(ip.get(ip_len..total)?)?;
        let (key, src_is_lo) =
            FlowKey::from_bytes(ipproto::TCP, (src, h.sport), (dst, h.dport), v6);
        let payload_off = ethernet::field::HEADER_LEN
            .checked_add(ip_len)?
            .checked_add(h.len)?;
        Some(PreTcp {
            key,
            src_is_lo,
            seq: h.seq,
            ack: h.ack,
            flags: h.flags,
            window: h.window,
            payload_off: u32::try_from(payload_off).ok()?,
            payload_len: u32::try_from(payload.len()).ok()?,
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
        let (key, src_is_lo) = FlowKey::new(ipproto::TCP, t.src, t.sport, t.dst, t.dport);
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
