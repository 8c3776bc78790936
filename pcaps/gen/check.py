#!/usr/bin/env python3
"""Compare every cases/*.expected.json with tshark's independent view (cases/expected-tshark/), and the
PEM fingerprints. Prints one line per disagreement; exit 1 if any is not an explained one.

Explained (expected) differences, reported as 'note:':
  * TLS 1.3 (chain_visible=false): tshark sees no Certificate without keys.
  * resumed handshakes: no Certificate on the wire.
  * midstream-after-clienthello: tshark sees no ClientHello, so no SNI.
"""
import glob
import json
import os
import sys

CASES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "cases")
bad = 0


def load(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


for exp_path in sorted(glob.glob(os.path.join(CASES, "*.expected.json"))):
    exp = json.load(open(exp_path))
    name = exp["case"]
    pc = os.path.join(CASES, exp["pcap"])
    if not os.path.exists(pc):
        print("%s: pcap missing" % name); bad += 1; continue
    if os.path.getsize(pc) >= 200 * 1024:
        print("%s: pcap too large (%d bytes)" % (name, os.path.getsize(pc))); bad += 1
    if exp.get("tshark_misses"):
        print("note: %s: not compared with tshark: %s" % (name, exp["tshark_misses"]))
        continue
    certs = load(os.path.join(CASES, "expected-tshark", name + ".tshark.jsonl"))
    sess = load(os.path.join(CASES, "expected-tshark", name + ".tshark.sessions.jsonl"))
    if len(sess) != len(exp["handshakes"]):
        print("%s: %d expected handshakes, tshark sees %d sessions" % (name, len(exp["handshakes"]), len(sess)))
        bad += 1
    for i, (h, s) in enumerate(zip(exp["handshakes"], sess)):
        tag = "%s#%d" % (name, i)
        if h.get("tshark_misses"):
            print("note: %s: not compared with tshark: %s" % (tag, h["tshark_misses"]))
            continue
        for k_exp, k_ts in (("ip", "client"), ("port", "cport")):
            if h["client"][k_exp] is not None and h["client"][k_exp] != s[k_ts]:
                print("%s: client %s %r != tshark %r" % (tag, k_exp, h["client"][k_exp], s[k_ts])); bad += 1
        if (h["server"]["ip"], h["server"]["port"]) != (s["server"], s["sport"]):
            print("%s: server %r != tshark %r" % (tag, h["server"], (s["server"], s["sport"]))); bad += 1
        if h["sni"] != s["sni"]:
            print("%s: sni %r != tshark %r" % (tag, h["sni"], s["sni"])); bad += 1
        if "TLS " + h["version"] != s["version"]:
            print("%s: version %r != tshark %r" % (tag, h["version"], s["version"])); bad += 1
        mine = [c for c in certs if c["stream"] == s["stream"]]
        srv = [c["sha256"] for c in mine if c["direction"] == "server->client"]
        cli = [c["sha256"] for c in mine if c["direction"] == "client->server"]
        # tshark reads the case's key log (if any): keyed TLS 1.3 handshakes show their chain to it
        if h["chain_visible"] or h.get("keylog"):
            if srv != [h["server_chain"]]:
                print("%s: server chain differs from tshark: %r" % (tag, srv)); bad += 1
        elif srv:
            print("%s: chain_visible=false but tshark shows a server Certificate" % tag); bad += 1
        else:
            print("note: %s: no visible server Certificate (%s), as expected" %
                  (tag, "resumed" if h["resumed"] else "TLS " + h["version"]))
        if h["client_chain"] is not None and cli != [h["client_chain"]]:
            print("%s: client chain %r != tshark %r" % (tag, h["client_chain"], cli)); bad += 1
        if h["client_chain"] is None and cli:
            print("%s: tshark sees a client Certificate" % tag); bad += 1
print("check.py: %d disagreement(s)" % bad)
sys.exit(1 if bad else 0)
