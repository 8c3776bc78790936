#!/usr/bin/env python3
"""side-signals capture: runs INSIDE the capture namespace (build_all.sh side-signals). Real stacks:
OpenSSL 3.0 (`s_server`/`s_client`, the `openssl ocsp` client and responder) and python's http.server /
http.client. Writes pcaps/cases/side-pki/ (its own PKI: root -> issuing CA -> leaf, whose AIA and CRL
distribution point URLs point at 127.0.1.40) and pcaps/cases/side-signals.expected.json.

1. TLS 1.2 handshake, client 127.0.2.41 -> 127.0.1.41:443: the chain (leaf + issuing CA) with its URLs.
2. HTTP fetches from 127.0.2.40 to 127.0.1.40:80: the issuing CA's certificate (leaf AIA caIssuers), its CRL
   (leaf CRL DP), the root's CRL (issuing CA's CRL DP), and one page that is no signal.
3. OCSP to the `openssl ocsp` responder on 127.0.1.40:8080: a POST from the `openssl ocsp` client about the
   leaf, the same request as a GET (RFC 6960 A.1, from python), and a POST about the issuing CA (its issuer
   is the root).
"""
import base64
import http.client
import http.server
import json
import os
import subprocess
import tempfile
import threading
import urllib.parse

from common import CASES, fps, hs, s_server, s_client, wait_listen

PKI = os.path.join(CASES, "side-pki")
WEB = ("127.0.1.40", 80)
OCSP = ("127.0.1.40", 8080)
TLS = ("127.0.1.41", 443)
CLI = "127.0.2.40"


def sh(*cmd, check=True):
    return subprocess.run(list(cmd), check=check, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def pki():
    os.makedirs(PKI, exist_ok=True)
    f = lambda n: os.path.join(PKI, n)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    sh("openssl", "req", "-x509", *ec, "-keyout", f("root.key"), "-out", f("root.pem"), "-days", "3650",
       "-subj", "/O=Trustmap Test/CN=Trustmap Side Signal Root", "-addext", "basicConstraints=critical,CA:TRUE",
       "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    exts = {
        "int": "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
               "authorityInfoAccess=caIssuers;URI:http://127.0.1.40/root.crt\n"
               "crlDistributionPoints=URI:http://127.0.1.40/root.crl\n",
        "leaf": "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:side.test.example\n"
                "authorityInfoAccess=caIssuers;URI:http://127.0.1.40/int.crt,OCSP;URI:http://127.0.1.40:8080/\n"
                "crlDistributionPoints=URI:http://127.0.1.40/int.crl\n",
    }
    for name, subj, ca, serial in (("int", "/O=Trustmap Test/CN=Trustmap Side Signal Issuing CA", "root", "0x1001"),
                                   ("leaf", "/CN=side.test.example", "int", "0x2002")):
        open(f(name + ".ext"), "w").write(exts[name])
        sh("openssl", "req", *ec, "-keyout", f(name + ".key"), "-out", f(name + ".csr"), "-subj", subj)
        sh("openssl", "x509", "-req", "-in", f(name + ".csr"), "-CA", f(ca + ".pem"), "-CAkey", f(ca + ".key"),
           "-set_serial", serial, "-days", "3650", "-out", f(name + ".pem"), "-extfile", f(name + ".ext"))
        os.remove(f(name + ".csr"))
        os.remove(f(name + ".ext"))
    open(f("chain.pem"), "w").write(open(f("leaf.pem")).read() + open(f("int.pem")).read())
    # The responder's index (openssl ca format): the leaf and the issuing CA, both valid.
    with open(f("index.txt"), "w") as idx:
        idx.write("V\t351231235959Z\t\t2002\tunknown\t/CN=side.test.example\n")
        idx.write("V\t351231235959Z\t\t1001\tunknown\t/O=Trustmap Test/CN=Trustmap Side Signal Issuing CA\n")
    return f


def main():
    f = pki()
    web_root = tempfile.mkdtemp()
    for n in ("root", "int"):
        sh("openssl", "x509", "-in", f(n + ".pem"), "-outform", "DER", "-out", os.path.join(web_root, n + ".crt"))
        # The content is not read by trustmap (requests only); a placeholder stands for the CRL.
        open(os.path.join(web_root, n + ".crl"), "wb").write(b"placeholder CRL for " + n.encode())

    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=web_root)
    web = http.server.ThreadingHTTPServer(WEB, handler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    responder = subprocess.Popen(["openssl", "ocsp", "-index", f("index.txt"), "-port", str(OCSP[1]),
                                  "-rsigner", f("int.pem"), "-rkey", f("int.key"), "-CA", f("int.pem"),
                                  "-nrequest", "3"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listen(OCSP[1])

    # 1. The chain, in the clear.
    srv = s_server(*TLS, f("chain.pem"), f("leaf.key"), "-tls1_2")
    c = ("127.0.2.41", 40041)
    s_client(*TLS, c, "-tls1_2", "-CAfile", f("root.pem"), "-verify_return_error",
             servername="side.test.example", check=b"HTTP/1.0 200 ok")
    srv.wait(10)
    handshakes = [hs(c, TLS, fps(f("chain.pem")), "side.test.example", "1.2")]

    signals = []
    port = [40400]

    def get(path, server=WEB):
        port[0] += 1
        conn = http.client.HTTPConnection(*server, source_address=(CLI, port[0]), timeout=10)
        conn.request("GET", path)
        conn.getresponse().read()
        conn.close()
        return (CLI, port[0])

    # 2. CA certificate and CRL fetches.
    int_ca = "CN=Trustmap Side Signal Issuing CA, O=Trustmap Test"
    root_ca = "CN=Trustmap Side Signal Root, O=Trustmap Test"
    for path, kind, ca in (("/int.crt", "aia", int_ca), ("/int.crl", "crl", int_ca), ("/root.crl", "crl", root_ca)):
        cl = get(path)
        signals.append({"client": cl, "url": "http://127.0.1.40" + path, "method": "GET", "kind": kind,
                        "ca": ca, "serial": None})
    get("/index.html")  # no signal

    # 3. OCSP: POST (openssl ocsp client), GET (python), POST about the issuing CA.
    req = os.path.join(PKI, "leaf-req.der")
    sh("openssl", "ocsp", "-issuer", f("int.pem"), "-cert", f("leaf.pem"), "-no_nonce", "-reqout", req,
       "-url", "http://%s:%d/" % OCSP, check=False)
    # (the openssl ocsp client's Host header carries no port: the URL is not compared)
    signals.append({"client": None, "url": None, "method": "POST", "kind": "ocsp", "ca": int_ca,
                    "serial": "2002"})
    der = open(req, "rb").read()
    os.remove(req)
    cl = get("/" + urllib.parse.quote(base64.b64encode(der).decode(), safe=""), OCSP)
    signals.append({"client": cl, "url": None, "method": "GET", "kind": "ocsp", "ca": int_ca, "serial": "2002"})
    sh("openssl", "ocsp", "-issuer", f("root.pem"), "-cert", f("int.pem"), "-no_nonce",
       "-url", "http://%s:%d/" % OCSP, check=False)
    signals.append({"client": None, "url": None, "method": "POST", "kind": "ocsp", "ca": root_ca,
                    "serial": "1001"})
    responder.wait(10)
    web.shutdown()
    for s in signals:
        if s["client"]:
            s["client"] = {"ip": s["client"][0], "port": s["client"][1]}
    doc = {"case": "side-signals", "pcap": "side-signals.pcap",
           "description": __doc__.strip().split("\n\n")[0],
           "handshakes": handshakes, "side_signals": signals}
    with open(os.path.join(CASES, "side-signals.expected.json"), "w") as out:
        json.dump(doc, out, indent=2)
        out.write("\n")


if __name__ == "__main__":
    main()
