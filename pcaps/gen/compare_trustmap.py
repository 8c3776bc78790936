#!/usr/bin/env python3
"""Run a trustmap binary over every cases/*.pcap and compare its trustmap.tls events with the
expected.json files (counts, client ip/port, SNI, version, STARTTLS label, chains, resumed, alert).
Usage: compare_trustmap.py [PATH/TO/trustmap]   (default: ../target/release/trustmap)
Informational: CI has its own Rust tests; this is for people rebuilding the fixtures."""
import glob
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = os.path.join(os.path.dirname(HERE), "cases")
binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.dirname(HERE)),
                                                             "target", "release", "trustmap")
failed = 0
for exp_path in sorted(glob.glob(os.path.join(CASES, "*.expected.json"))):
    doc = json.load(open(exp_path))
    out = tempfile.NamedTemporaryFile(suffix=".ndjson", delete=False).name
    subprocess.run([binary, "analyze", "-q", os.path.join(CASES, doc["pcap"]), "-o", out, "--db", ":memory:"],
                   check=True, stderr=subprocess.DEVNULL)
    ev = [json.loads(l) for l in open(out) if '"trustmap.tls"' in l]
    os.unlink(out)
    probs = []
    if len(ev) != len(doc["handshakes"]):
        probs.append("%d events, %d expected" % (len(ev), len(doc["handshakes"])))
    for h, e in zip(doc["handshakes"], ev):
        t, tm = e.get("tls", {}), e.get("trustmap", {})
        server_chain = [c["sha256"] for c in (t.get("server") or {}).get("chain") or []]
        if h["chain_visible"] and server_chain != h["server_chain"]:
            probs.append("server chain")
        cc = (t.get("client") or {}).get("chain")
        if h["client_chain"] is not None and [c["sha256"] for c in cc or []] != h["client_chain"]:
            probs.append("client chain")
        if (t.get("client") or {}).get("server_name") != h["sni"]:
            probs.append("sni")
        if tm.get("starttls") != h["starttls"]:
            probs.append("starttls %r" % tm.get("starttls"))
        if (e["source"]["ip"], e["source"].get("port")) != (h["client"]["ip"], h["client"]["port"]):
            probs.append("client %r" % e["source"])
        if ((tm.get("alert") or {}).get("code")) != ((h["alert"] or {}).get("code")):
            probs.append("alert %r" % tm.get("alert"))
        if t.get("version") != h["version"]:
            probs.append("version %r" % t.get("version"))
        if bool(t.get("resumed")) != h["resumed"]:
            probs.append("resumed")
    failed += bool(probs)
    print("%-32s %s" % (doc["case"], "ok" if not probs else "; ".join(probs)))
sys.exit(1 if failed else 0)
