//! Community ID v1 (the flow hash SIEMs join sensors on: Zeek, Suricata, Wireshark and ECS's
//! `network.community_id`): `"1:" + base64(SHA-1(seed, source address, destination address,
//! protocol, 0, source port, destination port))`, with the endpoints ordered so that both
//! directions of a flow hash alike. Seed 0, as the other tools use by default.

use std::net::IpAddr;

use base64::Engine as _;

/// IP protocol numbers of the transports trustmap reports.
pub const TCP: u8 = 6;
pub const UDP: u8 = 17;

fn addr_bytes(a: &IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

/// The Community ID of a flow between `a` and `b` (in either order) over `proto`.
pub fn v1(a: (IpAddr, u16), b: (IpAddr, u16), proto: u8) -> String {
    const SEED: u16 = 0;
    let (ab, bb) = (addr_bytes(&a.0), addr_bytes(&b.0));
    let ((sa, sp), (da, dp)) = if (&ab, a.1) <= (&bb, b.1) {
        ((ab, a.1), (bb, b.1))
    } else {
        ((bb, b.1), (ab, a.1))
    };
    let mut buf = Vec::with_capacity(2 + 32 + 6);
    buf.extend_from_slice(&SEED.to_be_bytes());
    buf.extend_from_slice(&sa);
    buf.extend_from_slice(&da);
    buf.push(proto);
    buf.push(0);
    buf.extend_from_slice(&sp.to_be_bytes());
    buf.extend_from_slice(&dp.to_be_bytes());
    format!(
        "1:{}",
        base64::engine::general_purpose::STANDARD.encode(analyzer::cert::sha1(&buf))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tshark 4.0 (`--enable-protocol communityid`) on pcaps/cases/mtls.pcap's first flow.
    #[test]
    fn matches_tshark() {
        let c = (IpAddr::from([127, 0, 2, 5]), 40005);
        let s = (IpAddr::from([127, 0, 1, 5]), 443);
        assert_eq!(v1(c, s, TCP), "1:hE9wYS3DaACJz63nz36lOBvLL8c=");
        assert_eq!(v1(s, c, TCP), v1(c, s, TCP));
    }
}
