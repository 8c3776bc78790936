#!/usr/bin/env python3
"""STARTTLS cases: `starttls.py PROTO` runs inside the capture namespace. The server is a minimal python
implementation of the protocol's plaintext part that then wraps the socket with python ssl (server_side);
the client is the real `openssl s_client -starttls PROTO`. After TLS the client sends one line and the
server answers, so application data flows both ways.
"""
import socket
import ssl
import sys
import threading

from common import p, fps, hs, write_expected, listen, s_client

SNI = "server.test.example"
LDAP_OID = b"1.3.6.1.4.1.1466.20037"


def readline(c):
    buf = b""
    while not buf.endswith(b"\n"):
        b = c.recv(1)
        if not b:
            raise ConnectionError("closed")
        buf += b
    return buf


def recv_exact(c, n):
    buf = b""
    while len(buf) < n:
        b = c.recv(n - len(buf))
        if not b:
            raise ConnectionError("closed")
        buf += b
    return buf


def smtp(c):
    c.sendall(b"220 mail.test.example ESMTP trustmap-test\r\n")
    assert readline(c).upper().startswith((b"EHLO", b"HELO"))
    c.sendall(b"250-mail.test.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 STARTTLS\r\n")
    assert readline(c).upper().startswith(b"STARTTLS")
    c.sendall(b"220 2.0.0 Ready to start TLS\r\n")


def imap(c):
    c.sendall(b"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] imap.test.example ready\r\n")
    while True:
        line = readline(c)
        tag, cmd = line.split(b" ", 1)
        if cmd.upper().startswith(b"CAPABILITY"):
            c.sendall(b"* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\n" + tag + b" OK CAPABILITY completed\r\n")
        elif cmd.upper().startswith(b"STARTTLS"):
            c.sendall(tag + b" OK Begin TLS negotiation now\r\n")
            return


def pop3(c):
    c.sendall(b"+OK pop3.test.example POP3 ready\r\n")
    while True:
        line = readline(c).upper()
        if line.startswith(b"CAPA"):
            c.sendall(b"+OK\r\nTOP\r\nUIDL\r\nSTLS\r\n.\r\n")
        elif line.startswith(b"STLS"):
            c.sendall(b"+OK Begin TLS negotiation\r\n")
            return


def ftp(c):
    c.sendall(b"220 ftp.test.example FTP ready\r\n")
    assert readline(c).upper().startswith(b"AUTH TLS")
    c.sendall(b"234 AUTH TLS successful\r\n")


def ldap(c):
    # LDAPMessage ::= SEQUENCE { messageID, extendedReq [APPLICATION 23] { requestName [0] OID } }
    head = recv_exact(c, 2)
    assert head[0] == 0x30 and head[1] < 0x80
    msg = recv_exact(c, head[1])
    assert msg[:2] == b"\x02\x01" and msg[3] == 0x77 and LDAP_OID in msg, msg
    mid = msg[2]
    # extendedResp [APPLICATION 24] { resultCode success(0), matchedDN "", diagnosticMessage "",
    #                                 responseName [10] OID }
    body = b"\x0a\x01\x00\x04\x00\x04\x00" + b"\x8a" + bytes([len(LDAP_OID)]) + LDAP_OID
    op = b"\x78" + bytes([len(body)]) + body
    inner = b"\x02\x01" + bytes([mid]) + op
    c.sendall(b"\x30" + bytes([len(inner)]) + inner)


def xmpp(c):
    buf = b""
    while b"<stream:stream" not in buf or not buf.rstrip().endswith(b">"):
        buf += c.recv(4096)
    c.sendall(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
              b"xmlns:stream='http://etherx.jabber.org/streams' id='tm-1' from='xmpp.test.example' "
              b"version='1.0'><stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>"
              b"<required/></starttls></stream:features>")
    buf = b""
    while b"<starttls" not in buf or b"/>" not in buf:
        buf += c.recv(4096)
    c.sendall(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")


def postgres(c):
    req = recv_exact(c, 8)
    assert req == b"\x00\x00\x00\x08\x04\xd2\x16\x2f", req      # SSLRequest (80877103)
    c.sendall(b"S")


def mysql(c):
    # HandshakeV10 with CLIENT_SSL (0x0800) among the capabilities
    caps = 0x0001 | 0x0004 | 0x0200 | 0x0800 | 0x2000 | 0x8000 | 0x00080000 | 0x00200000
    payload = (b"\x0a" + b"8.0.36-trustmap-test\x00" + (4242).to_bytes(4, "little") + b"abcdefgh" + b"\x00"
               + (caps & 0xFFFF).to_bytes(2, "little") + b"\xff" + (2).to_bytes(2, "little")
               + (caps >> 16).to_bytes(2, "little") + bytes([21]) + b"\x00" * 10 + b"ijklmnopqrst\x00"
               + b"caching_sha2_password\x00")
    c.sendall(len(payload).to_bytes(3, "little") + b"\x00" + payload)
    hdr = recv_exact(c, 4)
    n = int.from_bytes(hdr[:3], "little")
    body = recv_exact(c, n)
    assert hdr[3] == 1 and n == 32 and int.from_bytes(body[:4], "little") & 0x0800, (hdr, body)


PROTOS = {  # name: (handler, server ip, port, client ip, client port, s_client -starttls name, extra args, line)
    "smtp": (smtp, "127.0.1.21", 25, "127.0.2.21", 40021, "smtp", ["-name", "client.test.example"], b"QUIT\r\n"),
    "imap": (imap, "127.0.1.22", 143, "127.0.2.22", 40022, "imap", [], b"a1 LOGOUT\r\n"),
    "pop3": (pop3, "127.0.1.23", 110, "127.0.2.23", 40023, "pop3", [], b"QUIT\r\n"),
    "ftp": (ftp, "127.0.1.24", 21, "127.0.2.24", 40024, "ftp", [], b"QUIT\r\n"),
    "ldap": (ldap, "127.0.1.25", 389, "127.0.2.25", 40025, "ldap", [], b"\x30\x05\x02\x01\x02\x42\x00"),
    "xmpp": (xmpp, "127.0.1.26", 5222, "127.0.2.26", 40026, "xmpp", ["-xmpphost", "xmpp.test.example"],
             b"</stream:stream>"),
    "postgres": (postgres, "127.0.1.27", 5432, "127.0.2.27", 40027, "postgres", [], b"X\x00\x00\x00\x04"),
    "mysql": (mysql, "127.0.1.28", 3306, "127.0.2.28", 40028, "mysql", [], b"\x01\x00\x00\x00\x01"),
}


LABEL = {"postgres": "postgresql"}     # the name trustmap's analyzer uses (trustmap.starttls)


def main(name):
    handler, sip, sport, cip, cport, proto, extra, line = PROTOS[name]
    ls = listen(sip, sport)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(p("server-chain.pem"), p("server.key"))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2      # keep the chain visible
    err = []

    def serve():
        try:
            c, _ = ls.accept()
            handler(c)
            s = ctx.wrap_socket(c, server_side=True)
            s.recv(4096)
            s.sendall(b"tls ok\r\n")
            s.close()
        except Exception as e:     # reported by the main thread
            err.append(e)

    th = threading.Thread(target=serve)
    th.start()
    s_client(sip, sport, (cip, cport), "-starttls", proto, *extra, "-tls1_2", "-CAfile", p("root.pem"),
             "-verify_return_error", servername=SNI, data=line, check=b"tls ok")
    th.join(10)
    if err:
        raise err[0]
    write_expected("starttls-" + name, [hs((cip, cport), (sip, sport), fps(p("server-chain.pem")), SNI, "1.2",
                                          starttls=LABEL.get(name, name))],
                   "%s STARTTLS: python plaintext server + `openssl s_client -starttls %s`" % (name, proto))


if __name__ == "__main__":
    main(sys.argv[1])
