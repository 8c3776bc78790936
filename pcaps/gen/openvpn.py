#!/usr/bin/env python3
"""OpenVPN captures (Debian's openvpn package, OpenSSL inside), run INSIDE the capture namespace
like cases.py: writes pcaps/cases/openvpn.expected.json (or the path given as its argument:
tests/encapsulations.rs runs it live that way). Point-to-point TLS mode (`--tls-server`
/ `--tls-client`, `--dev null`: no tunnel device), TLS 1.2 so that the chains are in the clear,
the test PKI's server and client chains. Each session runs until the client logs "Peer
Connection Initiated", then both ends stop.

  127.0.1.60  TCP (2-byte length framing), no control-channel authentication
  127.0.1.61  UDP, no control-channel authentication
  127.0.1.62  UDP, tls-auth with HMAC-SHA256 (32-byte HMAC)
  127.0.1.63  TCP, tls-auth with HMAC-SHA512 (64-byte HMAC)
  127.0.1.64  UDP, tls-crypt (the control channel is encrypted: no chain can be read)
Clients use 127.0.2.6x, port 4006x.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

from common import p, fps, hs, write_expected

SRV_CHAIN = fps(p("server-chain.pem"))
CLI_CHAIN = fps(p("client-chain.pem"))
SNI = None


def session(n, proto, auth=None, digest=None):
    tmp = tempfile.mkdtemp()
    srv_ip, cli_ip, cport = "127.0.1.%d" % (60 + n), "127.0.2.%d" % (60 + n), 40060 + n
    common = ["openvpn", "--dev", "null", "--verb", "3", "--tls-version-max", "1.2", "--ca", p("root.pem"),
              "--data-ciphers", "AES-256-GCM", "--ping", "1"]
    key = os.path.join(tmp, "ta.key")
    extra_s, extra_c = [], []
    if auth:
        subprocess.run(["openvpn", "--genkey", "secret", key], check=True, capture_output=True)
        if auth == "tls-auth":
            extra_s, extra_c = ["--tls-auth", key, "0"], ["--tls-auth", key, "1"]
        else:
            extra_s = extra_c = ["--tls-crypt", key]
        if digest:
            extra_s += ["--auth", digest]
            extra_c += ["--auth", digest]
    srv = common + ["--tls-server", "--dh", "none", "--cert", p("server-chain.pem"), "--key", p("server.key"),
                    "--local", srv_ip, "--lport", "1194"] + extra_s
    cli = common + ["--tls-client", "--cert", p("client-chain.pem"), "--key", p("client.key"),
                    "--remote", srv_ip, "1194", "--local", cli_ip, "--lport", str(cport), "--bind"] + extra_c
    if proto == "tcp":
        srv += ["--proto", "tcp-server"]
        cli += ["--proto", "tcp-client"]
    else:
        srv += ["--proto", "udp"]
        cli += ["--proto", "udp"]
    slog, clog = os.path.join(tmp, "s.log"), os.path.join(tmp, "c.log")
    s = subprocess.Popen(srv, stdout=open(slog, "w"), stderr=subprocess.STDOUT)
    time.sleep(1.0)
    c = subprocess.Popen(cli, stdout=open(clog, "w"), stderr=subprocess.STDOUT)
    end = time.time() + 20
    while time.time() < end and "Peer Connection Initiated" not in open(clog).read():
        time.sleep(0.1)
    ok = "Peer Connection Initiated" in open(clog).read()
    time.sleep(1.5)                              # a few data-channel pings
    for pr in (c, s):
        pr.terminate()
        pr.wait(10)
    if not ok:
        raise RuntimeError("openvpn %d did not connect:\n%s" % (n, open(clog).read()))
    tls_crypt = auth == "tls-crypt"
    h = hs((cli_ip, cport), (srv_ip, 1194), SRV_CHAIN, SNI, "1.2", client_chain=None if tls_crypt else CLI_CHAIN,
           chain_visible=not tls_crypt,
           note="OpenVPN %s, %s" % (proto.upper(), "%s %s" % (auth, digest or "") if auth else "no tls-auth"))
    h["transport"] = proto
    h["control_channel"] = auth or "plain"
    return h


def main():
    out = [session(0, "tcp"), session(1, "udp"), session(2, "udp", "tls-auth", "SHA256"),
           session(3, "tcp", "tls-auth", "SHA512"), session(4, "udp", "tls-crypt")]
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w") as f:
            json.dump({"case": "openvpn", "handshakes": out}, f, indent=2)
        return
    write_expected("openvpn", out,
                   "OpenVPN %s point-to-point TLS sessions (TLS 1.2): the chains travel inside the control "
                   "channel; tls-crypt encrypts it" % subprocess.run(["openvpn", "--version"], capture_output=True,
                                                                      text=True).stdout.split()[1],
                   tshark_misses="tshark 4.0 does not reassemble TLS across OpenVPN control packets: it shows "
                                 "no Certificate in any of these sessions (checked against the configured chains "
                                 "instead)")


if __name__ == "__main__":
    main()
