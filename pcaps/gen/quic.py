#!/usr/bin/env python3
"""QUIC captures from a real stack (aioquic, from PyPI), run INSIDE the capture namespace like
cases.py: `quic.py` writes pcaps/cases/quic-keylog.expected.json and the clients' key log
pcaps/cases/quic-keylog.keys (aioquic's secrets_log_file, the NSS format).

Connections (servers on 127.0.1.4x:443, clients bound to 127.0.2.40:4004x):
  - QUIC v1, a ClientHello large enough (many ALPN values) to span two Initial packets;
  - QUIC v2 (RFC 9369);
  - mTLS: the server asks for a client certificate, the client sends its chain (both in Handshake
    packets);
  - a server that sends a Retry first (the Initial keys change with the new connection ID);
  - one QUIC v1 connection whose secrets are not in the key log.
"""
import asyncio
import os
import sys

from aioquic import tls
from aioquic.asyncio import connect, serve
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.packet import QuicProtocolVersion

from common import p, fps, hs, write_expected

SNI = "server.test.example"
SRV_CHAIN = fps(p("server-chain.pem"))
CLI_CHAIN = fps(p("client-chain.pem"))
KEYS = os.path.join(os.path.dirname(p("root.pem")), "..", "quic-keylog.keys")
ALPN = ["hq-interop"]
# 60 long ALPN names push the ClientHello past one Initial packet.
MANY_ALPN = ["hq-interop"] + ["x-trustmap-padding-protocol-%02d" % i for i in range(60)]


class RequestClientCertificate:
    """aioquic's servers send a CertificateRequest only when the TLS context's
    `_request_client_certificate` is set (aioquic's own tests set it the same way): while this is
    active, every server-side context gets it."""

    def __enter__(self):
        self.init = tls.Context.__init__

        def init(ctx, *a, **kw):
            self.init(ctx, *a, **kw)
            if not ctx._is_client:
                ctx._request_client_certificate = True
        tls.Context.__init__ = init

    def __exit__(self, *exc):
        tls.Context.__init__ = self.init


async def one(srv, port, version=QuicProtocolVersion.VERSION_1, alpn=ALPN, keylog=True, retry=False,
              mtls=False):
    scfg = QuicConfiguration(is_client=False, alpn_protocols=ALPN, supported_versions=[version])
    scfg.load_cert_chain(p("server-chain.pem"), p("server.key"))
    if keylog and retry:
        # aioquic's client logs no secrets for the connection that follows a Retry: the server's
        # key log has them (same NSS format).
        scfg.secrets_log_file = open(KEYS, "a")
    server = await serve(srv, 443, configuration=scfg, retry=retry)
    ccfg = QuicConfiguration(is_client=True, alpn_protocols=alpn, server_name=SNI,
                             supported_versions=[version])
    ccfg.load_verify_locations(p("root.pem"))
    if mtls:
        ccfg.load_cert_chain(p("client-chain.pem"), p("client.key"))
    if keylog and not retry:
        ccfg.secrets_log_file = open(KEYS, "a")
    if mtls:
        with RequestClientCertificate():
            async with connect(srv, 443, configuration=ccfg, local_port=port) as c:
                await c.ping()
    else:
        async with connect(srv, 443, configuration=ccfg, local_port=port) as c:
            await c.ping()
    for cfg in (ccfg, scfg):
        if cfg.secrets_log_file is not None:
            cfg.secrets_log_file.close()
    server.close()
    await asyncio.sleep(0.2)


async def main():
    if os.path.exists(KEYS):
        os.remove(KEYS)
    out = []
    # aioquic binds the client to the wildcard address, so its source address is the one the
    # kernel picks on lo (127.0.0.1); the ports are fixed.
    cli = "127.0.0.1"
    await one("127.0.1.40", 40040, alpn=MANY_ALPN)
    out.append(hs((cli, 40040), ("127.0.1.40", 443), SRV_CHAIN, SNI, "1.3", chain_visible=True,
                  note="QUIC v1; the ClientHello spans two Initial packets"))
    await one("127.0.1.41", 40041, version=QuicProtocolVersion.VERSION_2)
    out.append(hs((cli, 40041), ("127.0.1.41", 443), SRV_CHAIN, SNI, "1.3", chain_visible=True,
                  note="QUIC v2 (RFC 9369)"))
    await one("127.0.1.42", 40042, mtls=True)
    out.append(hs((cli, 40042), ("127.0.1.42", 443), SRV_CHAIN, SNI, "1.3", chain_visible=True,
                  client_chain=CLI_CHAIN, note="mTLS: the client's chain in its Handshake packets"))
    await one("127.0.1.43", 40043, retry=True)
    h = hs((cli, 40043), ("127.0.1.43", 443), SRV_CHAIN, SNI, "1.3", chain_visible=True,
           note="the server sends a Retry first")
    h["tshark_misses"] = "tshark 4.0 does not follow the Retry (no chain with the key log)"
    out.append(h)
    await one("127.0.1.44", 40044, keylog=False)
    out.append(hs((cli, 40044), ("127.0.1.44", 443), SRV_CHAIN, SNI, "1.3", chain_visible=False,
                  note="no secrets in the key log"))
    write_expected("quic-keylog", out,
                   "QUIC handshakes from aioquic %s with the clients' key log in quic-keylog.keys; "
                   "chain_visible is what trustmap must report WITH --keylog" % __import__("aioquic").__version__,
                   keylog="quic-keylog.keys")


if __name__ == "__main__":
    asyncio.run(main())
