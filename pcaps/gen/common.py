"""Shared helpers for the capture drivers (python3 stdlib only).

Everything here runs INSIDE a private network namespace created by netns_capture.sh or twons.sh;
only loopback / namespace-local addresses are used.
"""
import fcntl
import json
import os
import socket
import ssl
import struct
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)                      # pcaps/
CASES = os.path.join(ROOT, "cases")
PKI = os.path.join(CASES, "pki")
EPKI = os.path.join(CASES, "estate-pki")
SIOCOUTQNSD = 0x894B                              # bytes in the send queue not yet sent

ALERTS = {40: "handshake_failure", 42: "bad_certificate", 46: "certificate_unknown", 48: "unknown_ca"}


def pem_ders(path):
    """DER certificates of a PEM file, in file order."""
    text = open(path).read()
    out, start = [], 0
    while True:
        i = text.find("-----BEGIN CERTIFICATE-----", start)
        if i < 0:
            return out
        j = text.index("-----END CERTIFICATE-----", i) + len("-----END CERTIFICATE-----")
        out.append(ssl.PEM_cert_to_DER_cert(text[i:j]))
        start = j


def fps(*paths):
    import hashlib
    return [hashlib.sha256(d).hexdigest() for p in paths for d in pem_ders(p)]


def p(name):
    return os.path.join(PKI, name)


def ep(name):
    return os.path.join(EPKI, name)


def wait_listen(port, timeout=10.0, ip=None):
    """Wait until something listens on [ip:]port, by reading /proc (a probe connect would be captured)."""
    want = ":%04X" % port
    if ip and ":" not in ip:
        want = "%08X" % int.from_bytes(socket.inet_aton(ip), "little") + want
    files = ["/proc/net/tcp6", "/proc/net/tcp"]
    end = time.time() + timeout
    while time.time() < end:
        for f in files:
            try:
                for line in open(f).read().splitlines()[1:]:
                    cols = line.split()
                    if cols[1].endswith(want) and cols[3] == "0A":
                        return
            except OSError:
                pass
        time.sleep(0.05)
    raise RuntimeError("nothing listens on port %d" % port)


def s_server(ip, port, chain, key, *extra, naccept=1):
    """openssl s_server -www; chain = PEM file in wire order (leaf first). -cert takes only the leaf, so the
    rest goes to a temporary -cert_chain file."""
    import tempfile
    ders = pem_ders(chain)
    tmp = tempfile.mkdtemp()
    leaf, rest = os.path.join(tmp, "leaf.pem"), os.path.join(tmp, "rest.pem")
    open(leaf, "w").write(ssl.DER_cert_to_PEM_cert(ders[0]))
    open(rest, "w").write("".join(ssl.DER_cert_to_PEM_cert(d) for d in ders[1:]))
    cmd = ["openssl", "s_server", "-accept", "%s:%d" % (ip, port) if ":" not in ip else "[%s]:%d" % (ip, port),
           "-cert", leaf, "-key", key] + (["-cert_chain", rest] if len(ders) > 1 else []) + [ "-naccept", str(naccept), "-www", "-quiet"] + list(extra)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    wait_listen(port, ip=ip)
    return proc


def s_client(ip, port, bind, *extra, data=b"GET / HTTP/1.0\r\n\r\n", check=None, servername=None):
    host = "[%s]" % ip if ":" in ip else ip
    cmd = ["openssl", "s_client", "-connect", "%s:%d" % (host, port), "-nocommands", "-ign_eof", "-quiet"]
    if bind:
        cmd += ["-bind", ("[%s]:%d" % bind if ":" in bind[0] else "%s:%d" % bind)]
    if servername:
        cmd += ["-servername", servername]
    cmd += list(extra)
    r = subprocess.run(cmd, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    out = r.stdout + r.stderr
    if check is not None and check not in out:
        raise RuntimeError("s_client %s: expected %r in output:\n%s" % (cmd, check, out.decode(errors="replace")))
    return out


def hs(client, server, server_chain, sni, version, outcome="accepted", alert=None, client_chain=None,
       starttls=None, resumed=False, chain_visible=None, note=None):
    """One expected handshake. server_chain = what the server really sent (wire order), even when encrypted."""
    if chain_visible is None:
        chain_visible = version != "1.3" and not resumed
    d = {"client": {"ip": client[0], "port": client[1]}, "server": {"ip": server[0], "port": server[1]},
         "sni": sni, "starttls": starttls, "version": version, "resumed": resumed, "chain_visible": chain_visible,
         "server_chain": server_chain, "client_chain": client_chain, "outcome": outcome,
         "alert": None if alert is None else {"from": "client", "code": alert, "name": ALERTS.get(alert)}}
    if note:
        d["note"] = note
    return d


def write_expected(name, handshakes, description, **extra):
    doc = {"case": name, "pcap": name + ".pcap", "description": description}
    doc.update(extra)
    doc["handshakes"] = handshakes
    with open(os.path.join(CASES, name + ".expected.json"), "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")


def send_chunked(sock, data, chunk):
    """Write data in chunk-byte TCP segments: NODELAY, and wait until each piece has left the send queue
    before writing the next, so the kernel cannot coalesce them."""
    if chunk <= 0:
        sock.sendall(data)
        return
    for i in range(0, len(data), chunk):
        sock.sendall(data[i:i + chunk])
        for _ in range(20000):
            n = struct.unpack("i", fcntl.ioctl(sock.fileno(), SIOCOUTQNSD, b"\0\0\0\0"))[0]
            if n == 0:
                break
            time.sleep(0.0002)


def end_of_certificate_record(data):
    """Offset just past the TLS record holding a Certificate (handshake type 11) message, else len(data)."""
    off = 0
    while off + 5 <= len(data):
        ln = int.from_bytes(data[off + 3:off + 5], "big")
        if data[off] == 22 and off + 5 < len(data) and data[off + 5] == 11:
            return min(len(data), off + 5 + ln)
        off += 5 + ln
    return len(data)


class Pump:
    """TLS over a plain socket through ssl.MemoryBIO, so we decide how ciphertext is segmented."""

    def __init__(self, sock, ctx, server_side, server_hostname=None, chunk=0):
        self.sock, self.chunk = sock, chunk
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_side=server_side, server_hostname=server_hostname)

    only_through_certificate = False   # chunked up to the end of the Certificate record, then at once
    after_first = None   # chunk size to switch to after the first flight (None: keep)

    def flush(self):
        data = self.out.read()
        if data:
            cut = len(data)
            if self.chunk and self.only_through_certificate:
                cut = end_of_certificate_record(data)
            send_chunked(self.sock, data[:cut], self.chunk)
            send_chunked(self.sock, data[cut:], 0)
            if self.after_first is not None:
                self.chunk, self.after_first = self.after_first, None

    def _feed(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("peer closed")
        self.inc.write(data)

    def handshake(self):
        while True:
            try:
                self.obj.do_handshake()
                self.flush()
                return
            except ssl.SSLWantReadError:
                self.flush()
                self._feed()

    def write(self, data):
        self.obj.write(data)
        self.flush()

    def read(self):
        while True:
            try:
                return self.obj.read(65536)
            except ssl.SSLWantReadError:
                self.flush()
                self._feed()


def listen(ip, port):
    fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, port))
    s.listen(8)
    return s


def connect(ip, port, bind, reuse=False):
    fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
    c = socket.socket(fam, socket.SOCK_STREAM)
    if reuse:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if bind:
        c.bind(bind)
    c.connect((ip, port))
    return c


def server_ctx(chain, key, **kw):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(chain, key)
    ctx.maximum_version = kw.get("maxv", ssl.TLSVersion.TLSv1_2)
    return ctx


def client_ctx(cafile, maxv=ssl.TLSVersion.TLSv1_2):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile)
    ctx.maximum_version = maxv
    return ctx
