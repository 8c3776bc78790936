#!/usr/bin/env python3
"""Estate scenario (root rotation, removal verification): runs inside the capture namespace and writes
cases/estate.expected.json and cases/estate-rules.toml. The internal root is being rotated from
OLD = "Corp Root CA G1" to NEW = "Corp Root CA G2"; the rule retires OLD with both dates before the capture.
Real stacks only: openssl s_server / s_client.
"""
import datetime
import json
import os

from common import ep, fps, hs, s_server, s_client, CASES

OLD, NEW = fps(ep("old-root.pem"))[0], fps(ep("new-root.pem"))[0]
ROOT_SUBJ = {"old": "CN=Corp Root CA G1,O=Corp Example", "new": "CN=Corp Root CA G2,O=Corp Example"}

# name: ip, sni, chain file, key, chains_to, version, extra s_server args
SERVERS = {
    "billing": ("127.0.1.1", "billing.corp.example", "billing-chain.pem", "billing.key", "old", "1.2", []),
    "hr": ("127.0.1.2", "hr.corp.example", "hr-chain.pem", "hr.key", "old", "1.2", []),
    "wiki": ("127.0.1.3", "wiki.corp.example", "wiki-chain.pem", "wiki.key", "new", "1.2", []),
    "intranet": ("127.0.1.4", "intranet.corp.example", "intranet-chain.pem", "intranet.key", "new", "1.2", []),
    "partner": ("127.0.1.5", "partner.example", "partner-chain.pem", "partner.key", "new", "1.2",
                ["-verify", "3", "-CAfile", ep("old-root.pem")]),
    "printer": ("127.0.1.6", "printer.corp.example", "printer.pem", "printer.key", "self-signed", "1.0",
                ["-tls1", "-cipher", "DEFAULT@SECLEVEL=0"]),
    "portal": ("127.0.1.7", "portal.corp.example", "portal-chain.pem", "portal.key", "new", "1.3", []),
    # TLS 1.3 for current clients and 1.2 for old ones, still under OLD: a key log, a probe or the
    # TLS 1.2 sighting is the only way to see its chain
    "ledger": ("127.0.1.8", "ledger.corp.example", "ledger-chain.pem", "ledger.key", "old", "1.3", []),
}
# servers that also accept TLS 1.2; clients' protocol when it is not the server's version
BOTH_12_13 = {"ledger"}
CLIENT_VERSION = {("old-only", "ledger"): "1.2"}
# handshakes whose secrets the clients write to estate.keys (s_client -keylogfile)
KEYLOGGED = {("both", "ledger"), ("new-only", "ledger")}
CLIENTS = {"both": ("127.0.2.1", "trust-both.pem"), "new-only": ("127.0.2.2", "trust-new.pem"),
           "old-only": ("127.0.2.3", "trust-old.pem")}
# (client, server, outcome, alert)
PLAN = [
    ("both", "billing", "accepted", None),        # trusts both roots: completes with an OLD server
    ("both", "wiki", "accepted", None),
    ("new-only", "hr", "rejected", 48),            # trusts only NEW: unknown_ca against an OLD server
    ("new-only", "billing", "rejected", 48),       # ... also when the OLD root itself is sent
    ("new-only", "intranet", "accepted", None),
    ("old-only", "hr", "accepted", None),          # trusts only OLD: completes against an OLD server
    ("old-only", "billing", "accepted", None),
    ("both", "partner", "accepted", None),         # mTLS: CertificateRequest names the OLD root; client chain
    ("both", "printer", "accepted", None),         # appliance, TLS 1.0, SHA-1 self-signed (pinned by client)
    ("both", "portal", "accepted", None),          # TLS 1.3: chain not visible
    ("both", "ledger", "accepted", None),          # TLS 1.3 under OLD, keys in estate.keys: residual use
    ("new-only", "ledger", "rejected", 48),        # ... its encrypted unknown_ca: an outage of the removal
    ("old-only", "ledger", "accepted", None),      # TLS 1.2 sighting of the same endpoint, after them
]


def main():
    counts = {}
    for _, srv, _, _ in PLAN:
        counts[srv] = counts.get(srv, 0) + 1
    keys = os.path.join(CASES, "estate.keys")
    if os.path.exists(keys):
        os.remove(keys)
    procs = {}
    for name, (ip, sni, chain, key, _, ver, extra) in SERVERS.items():
        vargs = [] if name in BOTH_12_13 else {"1.2": ["-tls1_2"], "1.3": ["-tls1_3"], "1.0": []}[ver]
        procs[name] = s_server(ip, 443, ep(chain), ep(key), *vargs, *extra, naccept=counts[name])
    hss, port = [], 41000
    t0 = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    for cname, sname, outcome, alert in PLAN:
        port += 1
        cip, trust = CLIENTS[cname]
        ip, sni, chain, key, to, ver, extra = SERVERS[sname]
        ver = CLIENT_VERSION.get((cname, sname), ver)
        args = ["-CAfile", ep(trust), "-verify_return_error"]
        client_chain = None
        if sname == "printer":
            pinned = os.path.join(os.path.dirname(ep("x")), "trust-both-printer.pem")
            open(pinned, "w").write(open(ep(trust)).read() + open(ep("printer.pem")).read())
            args = ["-CAfile", pinned, "-verify_return_error", "-tls1", "-cipher", "DEFAULT@SECLEVEL=0"]
        elif ver == "1.3":
            args.append("-tls1_3")
        else:
            args.append("-tls1_2")
        if sname == "partner":
            args += ["-cert", ep("gateway.pem"), "-key", ep("gateway.key"), "-cert_chain", ep("old-int.pem")]
            client_chain = fps(ep("gateway-chain.pem"))
        keylogged = (cname, sname) in KEYLOGGED
        if keylogged:
            args += ["-keylogfile", keys]
        s_client(ip, 443, (cip, port), *args, servername=sni,
                 check=b"HTTP/1.0 200 ok" if outcome == "accepted" else None)
        h = dict(hs((cip, port), (ip, 443), fps(ep(chain)), sni, ver, outcome=outcome, alert=alert,
                    client_chain=client_chain), client_trusts=cname, server_name=sname)
        if keylogged:
            h["keylog"] = True    # chain_visible stays what trustmap sees WITHOUT estate.keys
        hss.append(h)
    for pr in procs.values():
        pr.wait(10)
    servers = []
    for name, (ip, sni, chain, key, to, ver, extra) in SERVERS.items():
        ch = fps(ep(chain))
        s = {"name": name, "ip": ip, "port": 443, "sni": sni, "chains_to": to,
             "root_sha256": {"old": OLD, "new": NEW}.get(to, ch[-1]),
             "sends_root": (to == "self-signed") or ch[-1] in (OLD, NEW), "version": ver, "chain": ch,
             "chain_visible": ver != "1.3"}
        if name in BOTH_12_13:
            s["also_tls12"] = True
        if name == "partner":
            s["certificate_request_ca_names"] = [ROOT_SUBJ["old"]]
            s["client_auth_trusts"] = "old"
        if name == "printer":
            s["appliance"] = {"self_signed": True, "signature": "sha1WithRSAEncryption", "validity_days": 3650}
        servers.append(s)
    doc = {"case": "estate", "pcap": "estate.pcap",
           "description": "internal root rotation OLD (Corp Root CA G1) -> NEW (Corp Root CA G2); see README",
           "capture_started": t0.strftime("%Y-%m-%dT%H:%M:%SZ"),
           "roots": {"old": {"sha256": OLD, "subject": ROOT_SUBJ["old"]},
                     "new": {"sha256": NEW, "subject": ROOT_SUBJ["new"]}},
           "intermediates": {"old": fps(ep("old-int.pem"))[0], "new": fps(ep("new-int.pem"))[0]},
           "clients": {k: {"ip": v[0], "trusts": {"both": ["old", "new"], "new-only": ["new"],
                                                   "old-only": ["old"]}[k]} for k, v in CLIENTS.items()},
           "rules": "estate-rules.toml", "keylog": "estate.keys", "removal_id": "corp-root-g1-retirement",
           "servers": servers, "handshakes": hss}
    with open(os.path.join(CASES, "estate.expected.json"), "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    announced = (t0 - datetime.timedelta(days=120)).strftime("%Y-%m-%dT00:00:00Z")
    removed = (t0 - datetime.timedelta(days=14)).strftime("%Y-%m-%dT00:00:00Z")
    with open(os.path.join(CASES, "estate-rules.toml"), "w") as f:
        f.write("""# Rules for pcaps/cases/estate.pcap (generated by pcaps/gen/estate.py).
# Both dates lie BEFORE the capture (%s), so every OLD-root use in the capture is residual.

[[removal]]
id = "corp-root-g1-retirement"
name = "Retire Corp Root CA G1 (OLD) in favour of Corp Root CA G2 (NEW)"
ca = { sha256 = "%s" }
announced = "%s"
removed = "%s"

[[segment]]
name = "embedded"
cidrs = ["127.0.1.6/32"]
internal = true

[[segment]]
name = "appliance:printer"
server_names = ["printer.corp.example"]

[[segment]]
name = "partner"
server_names = ["partner.example"]
""" % (doc["capture_started"], OLD, announced, removed))


if __name__ == "__main__":
    main()
