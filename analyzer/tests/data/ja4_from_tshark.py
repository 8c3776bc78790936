#!/usr/bin/env python3
"""Independent JA4 (TLS client) computation from tshark's dissection, for analyzer tests.

Usage: ja4_from_tshark.py PCAP... > ja4_tshark.tsv
Each line: stem, client ip, client port, ja4. Written from the FoxIO JA4 specification
(technical_details/JA4.md), not from trustmap's code: tshark parses the ClientHello, this script only
applies the rules (GREASE removed; sorted ciphers; sorted extensions without SNI/ALPN, then the
signature_algorithms extension's list in wire order).
"""
import hashlib, json, os, subprocess, sys

def grease(v):
    return (v & 0x0f0f) == 0x0a0a and (v >> 8) == (v & 0xff)

def as_list(x):
    if x is None:
        return []
    return x if isinstance(x, list) else [x]

def num(s):
    return int(s, 16) if isinstance(s, str) and s.startswith("0x") else int(s)

VERS = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3", 0x0002: "s2",
        0xfeff: "d1", 0xfefd: "d2", 0xfefc: "d3"}

def sha12(s):
    return hashlib.sha256(s.encode()).hexdigest()[:12] if s else "000000000000"

def ja4(hs):
    ciphers = [num(c) for c in as_list(hs.get("tls.handshake.ciphersuites", {}).get("tls.handshake.ciphersuite"))]
    ciphers = [c for c in ciphers if not grease(c)]
    exts, sigs, alpn, versions, sni = [], [], [], [], False
    for k, v in hs.items():
        if not k.startswith("Extension:"):
            continue
        for e in as_list(v):
            t = num(e["tls.handshake.extension.type"])
            if grease(t):
                continue
            exts.append(t)
            if t == 0:
                sni = True
            if t == 13:
                sigs = [num(s) for s in as_list(e.get("tls.handshake.sig_hash_algs", {}).get("tls.handshake.sig_hash_alg"))]
            if t == 16:
                alpn = as_list(e.get("tls.handshake.extensions_alpn_list", {}).get("tls.handshake.extensions_alpn_str"))
            if t == 43:
                versions = [num(x) for x in as_list(e.get("tls.handshake.extensions.supported_version"))]
    versions = [x for x in versions if not grease(x)]
    ver = max(versions) if versions else num(hs["tls.handshake.version"])
    a_alpn = "00"
    if alpn and alpn[0]:
        f, l = alpn[0][0], alpn[0][-1]
        if f.isalnum() and l.isalnum() and f.isascii() and l.isascii():
            a_alpn = f + l
        else:
            h = alpn[0].encode().hex()
            a_alpn = h[0] + h[-1]
    a = "t%s%s%02d%02d%s" % (VERS.get(ver, "00"), "d" if sni else "i", min(len(ciphers), 99), min(len(exts), 99), a_alpn)
    b = sha12(",".join("%04x" % c for c in sorted(ciphers)))
    se = sorted(e for e in exts if e not in (0, 16))
    cs = ",".join("%04x" % e for e in se)
    if sigs:
        cs += "_" + ",".join("%04x" % s for s in sigs if not grease(s))
    c = sha12(cs) if se else "000000000000"
    return "%s_%s_%s" % (a, b, c)

for pcap in sys.argv[1:]:
    stem = os.path.basename(pcap)[:-5]
    out = subprocess.run(["tshark", "-r", pcap, "-o", "tls.desegment_ssl_records:TRUE",
                          "-d", "tcp.port==6667,tls", "-d", "tcp.port==3389,tls", "-d", "tcp.port==80,tls",
                          "-Y", "tls.handshake.type==1", "-T", "json", "--no-duplicate-keys"],
                         capture_output=True, text=True).stdout
    for pkt in json.loads(out or "[]"):
        L = pkt["_source"]["layers"]
        last = lambda k: (as_list(L.get(k)) or [{}])[-1]  # innermost layer of tunnels
        ip = last("ip").get("ip.src") or last("ipv6").get("ipv6.src")
        port = last("tcp").get("tcp.srcport")
        for rec in as_list(L.get("tls")):
            for r in as_list(rec.get("tls.record")):
                for hs in as_list(r.get("tls.handshake")):
                    if isinstance(hs, dict) and hs.get("tls.handshake.type") == "1" and "tls.handshake.ciphersuites" in hs:
                        print("%s\t%s\t%s\t%s" % (stem, ip, port, ja4(hs)))
