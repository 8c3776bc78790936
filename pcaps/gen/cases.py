#!/usr/bin/env python3
"""Capture drivers, one per case: `cases.py CASE` runs INSIDE the capture namespace (see build_all.sh) and
writes pcaps/cases/CASE.expected.json. Real TLS stacks only: `openssl s_server`/`s_client` (OpenSSL 3.0)
and python's ssl module (the same OpenSSL). Servers live on 127.0.1.x, clients bind 127.0.2.x:4xxxx.
"""
import socket
import ssl
import sys
import threading
import time

from common import (p, fps, hs, write_expected, s_server, s_client, listen, connect, Pump,
                    server_ctx, client_ctx, wait_listen)

SRV_CHAIN = fps(p("server-chain.pem"))
ALT_CHAIN = fps(p("alt-chain.pem"))
LONG_CHAIN = fps(p("long-chain.pem"))
CLI_CHAIN = fps(p("client-chain.pem"))


def record_split_512():
    srv, cli = ("127.0.1.1", 443), ("127.0.2.1", 40001)
    proc = s_server(*srv, p("long-chain.pem"), p("long.key"), "-max_send_frag", "512", "-tls1_2")
    s_client(*srv, cli, "-tls1_2", "-CAfile", p("root.pem"), "-verify_return_error",
             servername="long.test.example", check=b"HTTP/1.0 200 ok")
    proc.wait(10)
    write_expected("record-split-512", [hs(cli, srv, LONG_CHAIN, "long.test.example", "1.2")],
                   "openssl s_server -max_send_frag 512: a 6-certificate chain (~%d bytes) whose Certificate "
                   "message spans many 512-byte TLS records" % sum(len(x) for x in open(p("long-chain.pem"))))


def tcp_1byte():
    """python ssl on both ends over MemoryBIO; every byte of the ClientHello and of the server flight through
    the Certificate record
    goes out in its own TCP segment (TCP_NODELAY, and the next byte is written only once the previous left
    the send queue). TCP timestamps are off in this namespace (smaller pcap)."""
    import subprocess
    subprocess.run(["sysctl", "-qw", "net.ipv4.tcp_timestamps=0"], check=True)
    srv, cli = ("127.0.1.2", 443), ("127.0.2.2", 40002)
    ls = listen(*srv)
    sctx = server_ctx(p("ec-chain.pem"), p("ec.key"))
    sctx.options |= ssl.OP_NO_TICKET

    def serve():
        c, _ = ls.accept()
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t = Pump(c, sctx, True, chunk=1)
        t.only_through_certificate = True
        t.handshake()
        t.chunk = 0
        t.read()
        t.write(b"bye\n")
        c.close()

    th = threading.Thread(target=serve)
    th.start()
    c = connect(*srv, cli)
    cctx = client_ctx(p("root.pem"))
    cctx.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")   # keeps the ClientHello (and the pcap) small
    t = Pump(c, cctx, False, "ec.test.example", chunk=1)
    t.after_first = 0      # ClientHello byte by byte, the client's second flight normally (pcap size)
    t.handshake()
    t.chunk = 0
    t.write(b"hello\n")
    assert t.read() == b"bye\n"
    c.close()
    th.join()
    write_expected("tcp-1byte", [hs(cli, srv, fps(p("ec-chain.pem")), "ec.test.example", "1.2")],
                   "every byte of the ClientHello and of the server's flight up to the end of the Certificate "
                   "record (ServerHello, Certificate with an EC leaf + intermediate) is its own 1-byte TCP segment (python ssl over MemoryBIO, TCP_NODELAY, SIOCOUTQNSD "
                   "wait between bytes; TCP timestamps off)")


def base_long():
    """The source capture of the reorder/duplicate and mid-stream cases (post-processed by pcapedit.py):
    TLS 1.2, long chain so the server flight is several MSS-sized segments."""
    srv, cli = ("127.0.1.3", 443), ("127.0.2.3", 40003)
    proc = s_server(*srv, p("long-chain.pem"), p("long.key"), "-tls1_2")
    s_client(*srv, cli, "-tls1_2", "-CAfile", p("root.pem"), "-verify_return_error",
             servername="long.test.example", check=b"HTTP/1.0 200 ok")
    proc.wait(10)
    h = hs(cli, srv, LONG_CHAIN, "long.test.example", "1.2")
    write_expected("reorder-dup", [h],
                   "post-processed (gen/pcapedit.py reorder-dup): the server's data segments carrying the "
                   "Certificate are delivered out of order and some are duplicated (kernel has no netem)")
    h2 = dict(h)
    write_expected("midstream-after-syn", [h2], "post-processed (gen/pcapedit.py cut-syn): the capture starts "
                   "right after the TCP three-way handshake (no SYN/SYN-ACK seen)")
    h3 = dict(h, sni=None, note="the ClientHello is not in the capture: no SNI, roles inferred from the "
                                "ServerHello/Certificate")
    write_expected("midstream-after-clienthello", [h3], "post-processed (gen/pcapedit.py cut-ch): the capture "
                   "starts after the client's first data segment (the ClientHello) was sent")


def port_reuse():
    """The same client ip:port connects twice to the same server ip:port (SO_REUSEADDR + fixed bind; the
    client aborts with RST so no TIME_WAIT blocks the second connect); the server presents a different
    certificate the second time."""
    srv, cli = ("127.0.1.4", 443), ("127.0.2.4", 40004)
    ls = listen(*srv)
    ctxs = [server_ctx(p("server-chain.pem"), p("server.key")), server_ctx(p("alt-chain.pem"), p("alt.key"))]

    def serve():
        for ctx in ctxs:
            c, _ = ls.accept()
            s = ctx.wrap_socket(c, server_side=True)
            s.recv(100)
            s.sendall(b"bye\n")
            try:
                s.recv(100)
            except OSError:
                pass
            s.close()

    th = threading.Thread(target=serve)
    th.start()
    import struct
    for _ in ctxs:
        c = connect(*srv, cli, reuse=True)
        s = client_ctx(p("root.pem")).wrap_socket(c, server_hostname="server.test.example")
        s.sendall(b"hello\n")
        assert s.recv(100) == b"bye\n"
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        time.sleep(0.3)
    th.join()
    write_expected("port-reuse", [hs(cli, srv, SRV_CHAIN, "server.test.example", "1.2"),
                                  hs(cli, srv, ALT_CHAIN, "server.test.example", "1.2")],
                   "two TCP connections with the identical 4-tuple (client aborts each with RST); the server "
                   "sends server.test.example the first time and alt.test.example the second")


def mtls():
    srv = ("127.0.1.5", 443)
    c1, c2 = ("127.0.2.5", 40005), ("127.0.2.6", 40006)
    proc = s_server(*srv, p("server-chain.pem"), p("server.key"), "-tls1_2", "-verify", "3",
                    "-CAfile", p("root.pem"), naccept=2)
    s_client(*srv, c1, "-tls1_2", "-CAfile", p("root.pem"), "-verify_return_error", "-cert", p("client.pem"),
             "-key", p("client.key"), "-cert_chain", p("client-int.pem"), servername="server.test.example",
             check=b"HTTP/1.0 200 ok")
    s_client(*srv, c2, "-tls1_2", "-CAfile", p("root.pem"), "-verify_return_error",
             servername="server.test.example", check=b"HTTP/1.0 200 ok")
    proc.wait(10)
    write_expected("mtls", [hs(c1, srv, SRV_CHAIN, "server.test.example", "1.2", client_chain=CLI_CHAIN),
                            hs(c2, srv, SRV_CHAIN, "server.test.example", "1.2", client_chain=[])],
                   "server sends CertificateRequest (CA names: Trustmap Test Root CA); the first client "
                   "presents client1 + its intermediate, the second an empty Certificate message",
                   certificate_request_ca_names=["CN=Trustmap Test Root CA,O=Trustmap Test"])


def tls13():
    srv, cli = ("127.0.1.6", 443), ("127.0.2.7", 40007)
    proc = s_server(*srv, p("server-chain.pem"), p("server.key"), "-tls1_3")
    s_client(*srv, cli, "-tls1_3", "-CAfile", p("root.pem"), "-verify_return_error",
             servername="server.test.example", check=b"HTTP/1.0 200 ok")
    proc.wait(10)
    write_expected("tls13", [hs(cli, srv, SRV_CHAIN, "server.test.example", "1.3")],
                   "TLS 1.3: the Certificate is encrypted (chain_visible=false); server_chain lists what was "
                   "sent, for reference only")


def tls10():
    srv, cli = ("127.0.1.7", 443), ("127.0.2.8", 40008)
    proc = s_server(*srv, p("server-chain.pem"), p("server.key"), "-tls1", "-cipher", "DEFAULT@SECLEVEL=0")
    s_client(*srv, cli, "-tls1", "-cipher", "DEFAULT@SECLEVEL=0", "-CAfile", p("root.pem"),
             "-verify_return_error", servername="server.test.example", check=b"HTTP/1.0 200 ok")
    proc.wait(10)
    write_expected("tls10", [hs(cli, srv, SRV_CHAIN, "server.test.example", "1.0")], "TLS 1.0 (SECLEVEL=0)")


def resumed_tls12():
    import os
    import tempfile
    srv = ("127.0.1.8", 443)
    c1, c2 = ("127.0.2.9", 40009), ("127.0.2.9", 40010)
    sess = os.path.join(tempfile.mkdtemp(), "sess.pem")
    proc = s_server(*srv, p("server-chain.pem"), p("server.key"), "-tls1_2", naccept=2)
    s_client(*srv, c1, "-tls1_2", "-CAfile", p("root.pem"), "-sess_out", sess, servername="server.test.example",
             check=b"HTTP/1.0 200 ok")
    out = s_client(*srv, c2, "-tls1_2", "-CAfile", p("root.pem"), "-sess_in", sess,
                   servername="server.test.example", check=b"HTTP/1.0 200 ok")
    proc.wait(10)
    write_expected("resumed-tls12", [hs(c1, srv, SRV_CHAIN, "server.test.example", "1.2"),
                                     hs(c2, srv, [], "server.test.example", "1.2", resumed=True)],
                   "TLS 1.2 full handshake, then the same client resumes (s_client -sess_out/-sess_in, session "
                   "ticket): the second handshake carries no Certificate")


def unknown_ca():
    srv, cli = ("127.0.1.9", 443), ("127.0.2.10", 40011)
    proc = s_server(*srv, p("server-chain.pem"), p("server.key"), "-tls1_2")
    s_client(*srv, cli, "-tls1_2", "-CAfile", p("other-root.pem"), "-verify_return_error",
             servername="server.test.example")
    proc.wait(10)
    write_expected("unknown-ca", [hs(cli, srv, SRV_CHAIN, "server.test.example", "1.2", outcome="rejected",
                                     alert=48)],
                   "the client trusts only 'Trustmap Other Root CA' and aborts with a fatal unknown_ca (48) alert")


def tls13_keylog():
    """TLS 1.3 from OpenSSL with the clients' key log (s_client -keylogfile, the NSS format
    SSLKEYLOGFILE writes) in pcaps/cases/tls13-keylog.keys: the three common suites, mTLS, a
    HelloRetryRequest, a client that refuses the chain (its unknown_ca alert is encrypted), and one
    connection whose secrets are not in the key log."""
    import os
    keys = os.path.join(os.path.dirname(p("root.pem")), "..", "tls13-keylog.keys")
    if os.path.exists(keys):
        os.remove(keys)
    sni = "server.test.example"
    a = ("127.0.1.30", 443)
    proc = s_server(*a, p("server-chain.pem"), p("server.key"), "-tls1_3", naccept=5)
    out = []
    for port, suite in ((40030, "TLS_AES_128_GCM_SHA256"), (40031, "TLS_AES_256_GCM_SHA384"),
                        (40032, "TLS_CHACHA20_POLY1305_SHA256")):
        c = ("127.0.2.30", port)
        s_client(*a, c, "-tls1_3", "-ciphersuites", suite, "-CAfile", p("root.pem"), "-verify_return_error",
                 "-keylogfile", keys, servername=sni, check=b"HTTP/1.0 200 ok")
        out.append(hs(c, a, SRV_CHAIN, sni, "1.3", chain_visible=True, note=suite))
    c = ("127.0.2.30", 40033)
    s_client(*a, c, "-tls1_3", "-CAfile", p("other-root.pem"), "-verify_return_error", "-keylogfile", keys,
             servername=sni)
    out.append(hs(c, a, SRV_CHAIN, sni, "1.3", outcome="rejected", alert=48, chain_visible=True,
                  note="the client trusts only the other root: encrypted unknown_ca"))
    c = ("127.0.2.30", 40034)
    s_client(*a, c, "-tls1_3", "-CAfile", p("root.pem"), "-verify_return_error", servername=sni,
             check=b"HTTP/1.0 200 ok")
    out.append(hs(c, a, SRV_CHAIN, sni, "1.3", chain_visible=False, note="no secrets in the key log"))
    proc.wait(10)
    b = ("127.0.1.31", 443)
    proc = s_server(*b, p("server-chain.pem"), p("server.key"), "-tls1_3", "-verify", "3",
                    "-CAfile", p("root.pem"))
    c = ("127.0.2.31", 40035)
    s_client(*b, c, "-tls1_3", "-CAfile", p("root.pem"), "-verify_return_error", "-cert", p("client.pem"),
             "-key", p("client.key"), "-cert_chain", p("client-int.pem"), "-keylogfile", keys,
             servername=sni, check=b"HTTP/1.0 200 ok")
    h = hs(c, b, SRV_CHAIN, sni, "1.3", client_chain=CLI_CHAIN, chain_visible=True,
           note="mTLS: the CertificateRequest's certificate_authorities extension names the test root")
    h["certificate_request_ca_names"] = ["CN=Trustmap Test Root CA,O=Trustmap Test"]
    out.append(h)
    proc.wait(10)
    d = ("127.0.1.32", 443)
    proc = s_server(*d, p("server-chain.pem"), p("server.key"), "-tls1_3", "-groups", "X25519")
    c = ("127.0.2.32", 40036)
    s_client(*d, c, "-tls1_3", "-groups", "P-256:X25519", "-CAfile", p("root.pem"), "-verify_return_error",
             "-keylogfile", keys, servername=sni, check=b"HTTP/1.0 200 ok")
    out.append(hs(c, d, SRV_CHAIN, sni, "1.3", chain_visible=True,
                  note="HelloRetryRequest: the client's P-256 share, the server wants X25519"))
    proc.wait(10)
    write_expected("tls13-keylog", out,
                   "TLS 1.3 (OpenSSL 3) with the clients' key log in tls13-keylog.keys: chain_visible is what "
                   "trustmap must report WITH --keylog (without it, every chain is hidden)", keylog="tls13-keylog.keys")


def py_mtls_server(ip, cafile, n):
    """Python ssl mTLS server, TLS 1.2, CERT_REQUIRED: its CertificateRequest names no CA (Python
    never sets a client CA list), so only its verdicts say which client CAs it trusts. Serves `n`
    connections in a thread; a refused client gets OpenSSL's fatal alert."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(p("server-chain.pem"), p("server.key"))
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cafile)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((ip, 443))
    ls.listen(8)

    def run():
        for _ in range(n):
            conn, _ = ls.accept()
            try:
                s = ctx.wrap_socket(conn, server_side=True)
                s.recv(100)
                s.sendall(b"HTTP/1.0 200 ok\r\n\r\n")
                s.close()
            except (ssl.SSLError, OSError):
                conn.close()
        ls.close()
    t = threading.Thread(target=run)
    t.start()
    return t


def mtls_outcomes():
    """Two Python mTLS servers with an empty CA list: A trusts the test root, B the estate's OLD
    root. Each gets a client chain under the test root (client.pem, client-int) and one under
    OLD (the estate's gateway.corp.example, Corp Issuing CA G1): each accepts one and refuses the
    other with a fatal alert (unknown_ca)."""
    import os
    est = lambda f: os.path.join(os.path.dirname(p("root.pem")), "..", "estate-pki", f)  # noqa: E731
    old_root, gw_chain = est("old-root.pem"), fps(est("gateway-chain.pem"))
    out, port = [], 40070
    for ip, trust in (("127.0.1.70", p("root.pem")), ("127.0.1.71", old_root)):
        t = py_mtls_server(ip, trust, 2)
        wait_listen(443, ip=ip)
        for cert, key, chain, fp in ((p("client.pem"), p("client.key"), p("client-int.pem"), CLI_CHAIN),
                                     (est("gateway.pem"), est("gateway.key"), est("old-int.pem"), gw_chain)):
            port += 1
            c = ("127.0.2.70", port)
            accepted = (trust == old_root) == (fp == gw_chain)
            s_client(ip, 443, c, "-tls1_2", "-CAfile", p("root.pem"), "-cert", cert, "-key", key,
                     "-cert_chain", chain, servername="server.test.example",
                     check=b"HTTP/1.0 200 ok" if accepted else None)
            h = hs(c, (ip, 443), SRV_CHAIN, "server.test.example", "1.2", client_chain=fp,
                   outcome="accepted" if accepted else "rejected")
            if not accepted:
                h["alert"] = {"from": "server", "code": 48, "name": "unknown_ca"}
            h["server_trusts"] = "test-root" if trust == p("root.pem") else "estate-old-root"
            h["client_cert_accepted"] = accepted
            out.append(h)
        t.join(10)
    write_expected("mtls-outcomes", out,
                   "Python ssl mTLS servers whose CertificateRequest names no CA: which client CAs each "
                   "trusts shows only in its verdicts (accepted, or a fatal alert from the server)")


def tunnel(name, srv_ip, cli_ip, sni, what, encap):
    """Runs in the client namespace of twons.sh; the server was started in the peer namespace."""
    import json
    srv, cli = (srv_ip, 443), (cli_ip, 40020)
    s_client(*srv, cli, "-tls1_2", "-CAfile", p("root.pem"), "-verify_return_error", servername=sni,
             check=b"HTTP/1.0 200 ok")
    write_expected(name, [hs(cli, srv, SRV_CHAIN, sni, "1.2")], what, encapsulation=json.loads(encap))


CASES = {f.__name__.replace("_", "-"): f for f in
         (record_split_512, tcp_1byte, base_long, port_reuse, mtls, tls13, tls10, resumed_tls12, unknown_ca,
          tls13_keylog, mtls_outcomes)}

if __name__ == "__main__":
    if sys.argv[1] == "serve":        # twons.sh: the server side in the peer namespace
        s_server(sys.argv[2], int(sys.argv[3]), p("server-chain.pem"), p("server.key"), "-tls1_2").wait(30)
    elif sys.argv[1] == "tunnel":
        tunnel(*sys.argv[2:])
    else:
        CASES[sys.argv[1]]()
