#!/bin/bash
# Rebuild every fixture under pcaps/cases/ from scratch: PKIs, captures, expected.json, tshark cross-check.
# Needs root and the Debian packages: openssl iproute2 ethtool tcpdump tshark python3 (stdlib only).
# NOT run by CI (CI uses the committed pcaps). Only namespaces created by the scripts; no other address.
#   gen/build_all.sh            everything
#   gen/build_all.sh CASE...    only those captures (keeps the current PKI)
set -euo pipefail
cd "$(dirname "$0")/.."              # pcaps/
[[ $(id -u) == 0 ]] || { echo "build_all.sh: needs root (network namespaces, tcpdump)" >&2; exit 1; }
for t in openssl openvpn ip ethtool tcpdump tshark python3; do command -v $t >/dev/null || { echo "missing: $t" >&2; exit 1; }; done
CAP=tools/netns_capture.sh
LOOPBACK_CASES="record-split-512 tcp-1byte port-reuse mtls tls13 tls10 resumed-tls12 unknown-ca tls13-keylog quic-keylog mtls-outcomes"
STARTTLS="smtp imap pop3 ftp ldap xmpp postgres mysql"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

build() {
  case $1 in
  reorder-dup|midstream-after-syn|midstream-after-clienthello)
    # one real capture, three post-processed cases (gen/pcapedit.py)
    $CAP "$tmp/base-long.pcap" -- python3 gen/cases.py base-long >/dev/null
    python3 gen/pcapedit.py reorder-dup "$tmp/base-long.pcap" cases/reorder-dup.pcap
    python3 gen/pcapedit.py cut-syn "$tmp/base-long.pcap" cases/midstream-after-syn.pcap
    python3 gen/pcapedit.py cut-ch "$tmp/base-long.pcap" cases/midstream-after-clienthello.pcap ;;
  starttls-*) $CAP "cases/$1.pcap" -- python3 gen/starttls.py "${1#starttls-}" >/dev/null ;;
  ipv6-vlan) gen/twons.sh vlan6 cases/ipv6-vlan.pcap ;;
  vxlan) gen/twons.sh vxlan cases/vxlan.pcap ;;
  estate) $CAP cases/estate.pcap -- python3 gen/estate.py >/dev/null ;;
  side-signals)
    # its own PKI (cases/side-pki): OCSP, CA certificate and CRL requests over HTTP
    $CAP cases/side-signals.pcap -- python3 gen/sidesignals.py >/dev/null ;;
  openvpn)
    # Debian's openvpn package, point-to-point TLS mode over TCP and UDP, tls-auth, tls-crypt
    $CAP cases/openvpn.pcap -- python3 gen/openvpn.py >/dev/null ;;
  quic-keylog)
    # aioquic from PyPI (pip install aioquic)
    $CAP cases/quic-keylog.pcap -- python3 gen/quic.py >/dev/null ;;
  tcp-isn)
    # the first connection of mtls.pcap with its SYN-ACK (or SYN) seen twice with different ISNs
    mkdir -p cases/tcp
    for w in synack-before synack-after syn-before synack-lost; do
      python3 gen/pcapedit.py isn $w cases/mtls.pcap cases/tcp/isn-$w.pcap
      python3 tools/tshark_oracle.py cases/tcp/isn-$w.pcap > cases/tcp/isn-$w.tshark.jsonl 2>/dev/null
    done ;;
  encap)
    # every frame of mtls.pcap (and ipv6-vlan.pcap) wrapped in each mirror/tunnel encapsulation,
    # with tshark's view of each (gen/encap.py; rebuild after mtls or ipv6-vlan)
    python3 gen/encap.py ;;
  tls13-keylog)
    $CAP cases/tls13-keylog.pcap -- python3 gen/cases.py tls13-keylog >/dev/null
    # the same capture with its key log inside (pcapng Decryption Secrets Block)
    editcap --inject-secrets tls,cases/tls13-keylog.keys cases/tls13-keylog.pcap cases/tls13-keylog.pcapng ;;
  *) $CAP "cases/$1.pcap" -- python3 gen/cases.py "$1" >/dev/null ;;
  esac
  chmod 644 cases/*.pcap
}

if [[ $# -eq 0 ]]; then
  rm -rf cases/pki cases/estate-pki cases/expected-tshark
  rm -f cases/*.pcap cases/*.expected.json cases/estate-rules.toml
  gen/pki.sh cases cases/pki
  gen/pki.sh estate cases/estate-pki
  set -- $LOOPBACK_CASES reorder-dup $(for s in $STARTTLS; do echo starttls-$s; done) ipv6-vlan vxlan estate side-signals openvpn encap tcp-isn
fi
for c in "$@"; do echo "== $c" >&2; build "$c"; done

# independent cross-check: tshark's view of every case (certificate messages and sessions)
mkdir -p cases/expected-tshark
for f in cases/*.pcap; do
  n=$(basename "$f" .pcap)
  keys=(); [[ -f cases/$n.keys ]] && keys=(--keylog "cases/$n.keys")
  python3 tools/tshark_oracle.py "${keys[@]}" "$f" > "cases/expected-tshark/$n.tshark.jsonl" 2>/dev/null
  python3 tools/tshark_oracle.py --sessions "${keys[@]}" "$f" > "cases/expected-tshark/$n.tshark.sessions.jsonl" 2>/dev/null
done
python3 gen/check.py
du -ch cases/*.pcap | tail -1
