#!/bin/bash
# Build the test PKIs with the openssl CLI only (no python `cryptography`).
#   pki.sh cases  OUTDIR   -> root/intermediates/leaves used by the per-feature cases
#   pki.sh estate OUTDIR   -> OLD/NEW internal roots for the estate (root-rotation) scenario
# Names and serials are fixed; keys (and therefore DER/SHA-256) change on every rebuild, which is why the
# generated PEMs are committed and every expected.json is written from them (see fingerprints.txt).
# TEST KEYS ONLY. Never trust these anywhere.
set -euo pipefail
mode=$1; out=$2
mkdir -p "$out"; cd "$out"
DAYS=${DAYS:-3650}

ext_ca()   { printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\n'; }
ext_leaf() { printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=%s\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\n%s' "$1" "$2"; }

# root NAME SUBJECT [md]
root() {
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.pem" -subj "$2" -days "$DAYS" \
    -"${3:-sha256}" -set_serial "0x$(printf %s "$1" | sha256sum | cut -c1-16)" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}
# ca NAME SUBJECT ISSUER
ca() {
  openssl req -new -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
  openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -out "$1.pem" -days "$DAYS" -sha256 \
    -set_serial "0x$(printf %s "$1" | sha256sum | cut -c1-16)" -extfile <(ext_ca) 2>/dev/null
  rm -f "$1.csr"
}
# leaf NAME SUBJECT ISSUER EKU SAN-LINE
leaf() {
  openssl req -new -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
  openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -out "$1.pem" -days 365 -sha256 \
    -set_serial "0x$(printf %s "$1" | sha256sum | cut -c1-16)" -extfile <(ext_leaf "$4" "$5") 2>/dev/null
  rm -f "$1.csr"
}
# EC (P-256) variants of ca/leaf
ecca() {
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
  openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -out "$1.pem" -days "$DAYS" -sha256 \
    -set_serial "0x$(printf %s "$1" | sha256sum | cut -c1-16)" -extfile <(ext_ca) 2>/dev/null
  rm -f "$1.csr"
}
ecleaf() {
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
  openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -out "$1.pem" -days 365 -sha256 \
    -set_serial "0x$(printf %s "$1" | sha256sum | cut -c1-16)" -extfile <(printf 'basicConstraints=critical,CA:FALSE\nextendedKeyUsage=%s\n%s' "$4" "$5") 2>/dev/null
  rm -f "$1.csr"
}
fp() { openssl x509 -in "$1" -outform DER | sha256sum | cut -d' ' -f1; }

case $mode in
cases)
  root root "/O=Trustmap Test/CN=Trustmap Test Root CA"
  root other-root "/O=Trustmap Test/CN=Trustmap Other Root CA"
  ca int "/O=Trustmap Test/CN=Trustmap Test Issuing CA" root
  ca client-int "/O=Trustmap Test/CN=Trustmap Test Client CA" root
  # long chain: root -> chain1 -> chain2 -> chain3 -> chain4 -> chain5 -> long leaf
  prev=root
  for i in 1 2 3 4 5; do ca "chain$i" "/O=Trustmap Test/CN=Trustmap Test Chain CA $i" "$prev"; prev="chain$i"; done
  leaf long "/O=Trustmap Test/CN=long.test.example" chain5 serverAuth "subjectAltName=DNS:long.test.example"
  leaf server "/O=Trustmap Test/CN=server.test.example" int serverAuth \
    "subjectAltName=DNS:server.test.example,DNS:mail.test.example,DNS:imap.test.example,DNS:pop3.test.example,DNS:ftp.test.example,DNS:ldap.test.example,DNS:xmpp.test.example,DNS:db.test.example,DNS:v6.test.example,DNS:tunnel.test.example"
  leaf alt "/O=Trustmap Test/CN=alt.test.example" int serverAuth "subjectAltName=DNS:alt.test.example,DNS:server.test.example"
  # small EC chain for the 1-byte-segment case (keeps that pcap small)
  ecca ec-int "/O=Trustmap Test/CN=Trustmap Test EC CA" root
  ecleaf ec "/CN=ec.test.example" ec-int serverAuth "subjectAltName=DNS:ec.test.example"
  cat ec.pem ec-int.pem > ec-chain.pem
  leaf client "/O=Trustmap Test/CN=client1.test.example" client-int clientAuth "subjectAltName=DNS:client1.test.example"
  # chain files in wire order (leaf first, no root)
  cat server.pem int.pem > server-chain.pem
  cat alt.pem int.pem > alt-chain.pem
  cat long.pem chain5.pem chain4.pem chain3.pem chain2.pem chain1.pem > long-chain.pem
  cat client.pem client-int.pem > client-chain.pem
  ;;
estate)
  root old-root "/O=Corp Example/CN=Corp Root CA G1"
  root new-root "/O=Corp Example/CN=Corp Root CA G2"
  ca old-int "/O=Corp Example/CN=Corp Issuing CA G1" old-root
  ca new-int "/O=Corp Example/CN=Corp Issuing CA G2" new-root
  leaf billing "/O=Corp Example/CN=billing.corp.example" old-int serverAuth "subjectAltName=DNS:billing.corp.example"
  leaf hr "/O=Corp Example/CN=hr.corp.example" old-int serverAuth "subjectAltName=DNS:hr.corp.example"
  leaf wiki "/O=Corp Example/CN=wiki.corp.example" new-int serverAuth "subjectAltName=DNS:wiki.corp.example"
  leaf intranet "/O=Corp Example/CN=intranet.corp.example" new-int serverAuth "subjectAltName=DNS:intranet.corp.example"
  leaf portal "/O=Corp Example/CN=portal.corp.example" new-int serverAuth "subjectAltName=DNS:portal.corp.example"
  leaf partner "/O=Partner Example/CN=partner.example" new-int serverAuth "subjectAltName=DNS:partner.example"
  # TLS 1.3 (and 1.2 for old clients) under OLD: hidden without keys, shown by a key log or a probe
  leaf ledger "/O=Corp Example/CN=ledger.corp.example" old-int serverAuth "subjectAltName=DNS:ledger.corp.example"
  leaf gateway "/O=Corp Example/CN=gateway.corp.example" old-int clientAuth "subjectAltName=DNS:gateway.corp.example"
  # appliance: self-signed, SHA-1, 10 years (3650 days), RSA 2048
  openssl req -x509 -newkey rsa:2048 -nodes -keyout printer.key -out printer.pem -sha1 -days 3650 \
    -subj "/O=Printer Vendor/CN=printer.corp.example" -set_serial 0x01 \
    -addext subjectAltName=DNS:printer.corp.example 2>/dev/null
  cat billing.pem old-int.pem old-root.pem > billing-chain.pem   # sends the root
  cat hr.pem old-int.pem > hr-chain.pem                          # does not send the root
  cat wiki.pem new-int.pem > wiki-chain.pem
  cat intranet.pem new-int.pem new-root.pem > intranet-chain.pem  # migrated, sends the root
  cat portal.pem new-int.pem > portal-chain.pem
  cat partner.pem new-int.pem > partner-chain.pem
  cat ledger.pem old-int.pem > ledger-chain.pem
  cat gateway.pem old-int.pem > gateway-chain.pem
  cat old-root.pem new-root.pem > trust-both.pem
  cp new-root.pem trust-new.pem; cp old-root.pem trust-old.pem
  ;;
*) echo "usage: $0 cases|estate OUTDIR" >&2; exit 2 ;;
esac
: > fingerprints.txt
for f in $(ls *.pem | grep -vE -- '-chain.pem$|^trust-'); do echo "$(fp "$f") ${f%.pem} $(openssl x509 -in "$f" -noout -subject -nameopt RFC2253 | sed 's/^subject=//')" >> fingerprints.txt; done
echo "TEST KEYS ONLY - generated by pcaps/gen/pki.sh; never trust these." > README
