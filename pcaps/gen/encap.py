#!/usr/bin/env python3
"""Encapsulation fixtures (python3 stdlib only): every frame of a real capture from a real TLS
stack (cases/mtls.pcap: OpenSSL mTLS, server and client chains; cases/ipv6-vlan.pcap for the
IPv6-only Teredo) is wrapped in one encapsulation that a span or mirror port can deliver, and
written to cases/encap/<name>.pcap with tshark's view of its certificates beside it
(<name>.tshark.jsonl, made by tools/tshark_oracle.py with the tshark options of MANIFEST: a
decode-as rule where tshark has no default for the port or EtherType, L2TPv3's session layout
where tshark would learn it from the control connection).
cases/encap/manifest.json lists each fixture, its base case and those rules.

  encap.py            all fixtures
  encap.py NAME...    only those

The outer headers are built here (addresses 192.0.2.0/24, documentation range); the inner
frames are the real capture's bytes, unchanged.
"""
import json
import os
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = os.path.join(os.path.dirname(HERE), "cases")
OUT = os.path.join(CASES, "encap")
ORACLE = os.path.join(os.path.dirname(HERE), "tools", "tshark_oracle.py")
sys.path.insert(0, HERE)
from pcapedit import read, write  # noqa: E402

MAC_A, MAC_B = bytes.fromhex("020000000a01"), bytes.fromhex("020000000b01")
IP_A, IP_B = bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2])


def eth(et, body, dst=MAC_B, src=MAC_A):
    return dst + src + struct.pack(">H", et) + body


def ipv4(proto, body, src=IP_A, dst=IP_B):
    hdr = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 1, 0, 64, proto, 0, src, dst)
    csum = 0
    for i in range(0, 20, 2):
        csum += (hdr[i] << 8) | hdr[i + 1]
    while csum >> 16:
        csum = (csum & 0xFFFF) + (csum >> 16)
    hdr = hdr[:10] + struct.pack(">H", ~csum & 0xFFFF) + hdr[12:]
    return hdr + body


def udp(sport, dport, body):
    return struct.pack(">HHHH", sport, dport, 8 + len(body), 0) + body


def over_udp(sport, dport, body):
    return eth(0x0800, ipv4(17, udp(sport, dport, body)))


def inner_ip(frame):
    """The IP packet of an Ethernet frame (after any 802.1Q tags)."""
    off = 12
    while frame[off:off + 2] in (b"\x81\x00", b"\x88\xa8"):
        off += 4
    return frame[off + 2:]


def vlan(frame, vid):
    return frame[:12] + struct.pack(">HH", 0x8100, vid) + frame[12:]


def tag(et, tag_bytes):
    """A tag after the MACs, then the frame's own EtherType and payload."""
    return lambda f, i: f[:12] + struct.pack(">H", et) + tag_bytes + f[12:]


def erspan2(f, i):
    gre = struct.pack(">HHI", 0x1000, 0x88BE, i)
    hdr = struct.pack(">HHI", 0x1000 | 100, 0x0001, 0)    # version 1, VLAN 100; session 1
    return eth(0x0800, ipv4(47, gre + hdr + vlan(f, 100)))


def erspan3(f, i):
    gre = struct.pack(">HHI", 0x1000, 0x22EB, i)
    hdr = struct.pack(">HHIHH", 0x2000 | 100, 0x0001, i * 1000, 0, 0x0001)   # O bit: sub-header
    return eth(0x0800, ipv4(47, gre + hdr + bytes(8) + f))


def mpls_pw(f, i):
    return eth(0x8847, struct.pack(">I", (16 << 12) | 0x100 | 64) + bytes(4) + f)


def nsh(f, i):
    # base (length 2 words, MD type 2, next protocol 3 = Ethernet), service path 1 index 255
    return eth(0x894F, bytes([0x00, 0x02, 0x02, 0x03]) + struct.pack(">I", (1 << 8) | 255) + f)


def vxlan_gpe_nsh(f, i):
    n = bytes([0x00, 0x02, 0x02, 0x01]) + struct.pack(">I", (1 << 8) | 255) + inner_ip(f)
    gpe = bytes([0x0C, 0, 0, 0x04]) + struct.pack(">I", 42 << 8)
    return over_udp(40000, 4790, gpe + n)


def gtpu(f, i):
    ip = inner_ip(f)
    ext = bytes([1, 0x10, 0x05, 0x00])         # PDU session container (QFI 5), no next
    body = struct.pack(">HBB", 0, 0, 0x85) + ext + ip
    return over_udp(2152, 2152, struct.pack(">BBHI", 0x34, 0xFF, len(body), 0x1234) + body)


def l2tpv2(f, i):
    ppp = b"\xff\x03\x00\x21" + inner_ip(f)
    hdr = struct.pack(">HHHH", 0x4002, 8 + len(ppp), 7, 9)
    return over_udp(1701, 1701, hdr + ppp)


def l2tpv3(f, i):
    return eth(0x0800, ipv4(115, struct.pack(">I", 0x1001) + bytes(4) + f))


def teredo(f, i):
    origin = struct.pack(">HH4s", 0x0000, 0xF227 ^ 0xFFFF, bytes(b ^ 0xFF for b in IP_A))
    return over_udp(3544, 40001, origin + inner_ip(f))


def tzsp(f, i):
    return over_udp(40002, 37008, bytes([1, 0, 0, 1, 0x01]) + f)


def hp_erm(f, i):
    return over_udp(40003, 7932, bytes(12) + f)


def geneve(f, i):
    return over_udp(40004, 6081, struct.pack(">HHI", 0, 0x6558, 7 << 8) + f)


# name: (base case, wrap, tshark options (decode-as rules, preferences), what it stands for)
MANIFEST = {
    "trustsec-sgt": ("mtls", tag(0x8909, bytes([1, 1, 0, 1, 0x00, 0x10])), [],
                     "Cisco TrustSec metadata (CMD, EtherType 0x8909) with SGT 16"),
    "vn-tag": ("mtls", tag(0x8926, bytes([0x80, 0x01, 0x00, 0x02])), [], "Cisco VN-Tag (0x8926)"),
    "e-tag": ("mtls", tag(0x893F, bytes(6)), [], "IEEE 802.1BR E-Tag (0x893f)"),
    "ttag": ("mtls", tag(0x8988, bytes([0, 0, 0x5F, 0x5E, 0x10, 0x00])), ["-d", "ethertype==0x8988,ttag"],
             "Cisco TTag timestamp (0x8988)"),
    "pbb": ("mtls", lambda f, i: eth(0x88A8, struct.pack(">HH", 200, 0x88E7) + struct.pack(">I", 5000) + f),
            [], "IEEE 802.1ah PBB: B-TAG, I-TAG (I-SID 5000), customer frame"),
    "erspan2-vlan": ("mtls", erspan2, [], "ERSPAN type II of a trunk port (802.1Q inside)"),
    "erspan3-subheader": ("mtls", erspan3, [], "ERSPAN type III with the optional platform sub-header"),
    "mpls-pw-cw": ("mtls", mpls_pw, ["-d", "mpls.label==16,pwethcw"],
                   "MPLS Ethernet pseudowire with a control word"),
    "nsh": ("mtls", nsh, [], "NSH (0x894f) carrying Ethernet"),
    "vxlan-gpe-nsh": ("mtls", vxlan_gpe_nsh, [], "VXLAN-GPE (UDP 4790) carrying NSH carrying IPv4"),
    "gtpu": ("mtls", gtpu, [], "GTP-U (UDP 2152) with a PDU session container extension header"),
    "l2tpv2": ("mtls", l2tpv2, [], "L2TPv2 (UDP 1701) data with length, PPP"),
    "l2tpv3-ip": ("mtls", l2tpv3, ["-o", "l2tp.cookie_size:None", "-o", "l2tp.l2_specific:Default L2-Specific",
                                   "-d", "l2tp.pw_type==0,eth"], "L2TPv3 over IP (protocol 115), default L2-specific sublayer, Ethernet"),
    "teredo": ("ipv6-vlan", teredo, [], "Teredo (UDP 3544) with an origin indication"),
    "tzsp": ("mtls", tzsp, [], "TZSP (UDP 37008) remote capture"),
    "hp-erm": ("mtls", hp_erm, ["-d", "udp.port==7932,hp_erm"], "HP/Aruba ERM remote mirroring (UDP 7932)"),
    "geneve-mirror": ("mtls", geneve, [], "GENEVE (UDP 6081), as GCP's out-of-band mirroring delivers"),
}


def build(name):
    base, wrap, rules, _ = MANIFEST[name]
    hdr, pkts = read(os.path.join(CASES, base + ".pcap"))
    out = []
    for i, (ts, us, frame, orig) in enumerate(pkts):
        if base == "ipv6-vlan" and b"\x86\xdd" not in frame[12:18]:
            continue                              # Teredo carries IPv6 only
        w = wrap(frame, i)
        out.append([ts, us, w, len(w)])
    pcap = os.path.join(OUT, name + ".pcap")
    write(pcap, hdr, out)
    args = ["python3", ORACLE, "--no-auto-decode"] + rules
    with open(os.path.join(OUT, name + ".tshark.jsonl"), "w") as f:
        subprocess.run(args + [pcap], stdout=f, stderr=subprocess.DEVNULL, check=True)


def main():
    names = sys.argv[1:] or list(MANIFEST)
    os.makedirs(OUT, exist_ok=True)
    for n in names:
        build(n)
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump({n: {"base": b, "tshark_options": r, "what": w} for n, (b, _, r, w) in MANIFEST.items()},
                  f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
