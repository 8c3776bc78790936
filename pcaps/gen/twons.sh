#!/bin/bash
# Two-namespace captures (a veth pair between namespace A = client and B = server), MTU 1500, offloads off.
#   twons.sh vlan6 OUT.pcap   IPv6 (ULA fd00:db8:6::/64) over 802.1Q VLAN 100, captured on the parent veth.
#                             If this kernel has no 8021q support the IPv6 traffic runs untagged on the veth
#                             and gen/pcapedit.py inserts the 802.1Q tag (VID 100) afterwards; the script says
#                             which on stderr and records it in the expected.json ("vlan_tag": "kernel"|"rewritten").
#   twons.sh vxlan OUT.pcap   VXLAN (VNI 42, UDP 4789) over a 10.99.0.0/24 underlay; overlay 10.200.0.0/24;
#                             captured on the underlay veth. (No GRE: the build kernel had no ip_gre; the same
#                             script tries GRE first if you set TUNNEL=gre.)
# Only namespaces created here; never any other address.
set -euo pipefail
mode=$1; out=$2
here=$(cd "$(dirname "$0")" && pwd)
A=tmA$$; B=tmB$$
cleanup() { ip netns pids "$B" 2>/dev/null | xargs -r kill 2>/dev/null || true; ip netns delete "$A" 2>/dev/null || true; ip netns delete "$B" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$A"; ip netns add "$B"
ip link add vA netns "$A" type veth peer name vB netns "$B"
for n in "$A:vA" "$B:vB"; do
  ns=${n%%:*}; ifc=${n#*:}
  ip netns exec "$ns" ip link set lo up
  ip netns exec "$ns" ip link set "$ifc" mtu 1500 up
  ip netns exec "$ns" ethtool -K "$ifc" tso off gso off gro off tx off rx off >/dev/null 2>&1 || true
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=0 || true
done
# fixed MACs: deterministic link layer
ip netns exec "$A" ip link set vA address 02:00:00:00:00:0a
ip netns exec "$B" ip link set vB address 02:00:00:00:00:0b
cap_if=vA; rewrite=""
case $mode in
vlan6)
  srv=fd00:db8:6::2; cli=fd00:db8:6::1; sni=v6.test.example; name=ipv6-vlan
  if ip netns exec "$A" ip link add link vA name vA.100 type vlan id 100 2>/dev/null; then
    ip netns exec "$B" ip link add link vB name vB.100 type vlan id 100
    ip netns exec "$A" ip link set vA.100 up; ip netns exec "$B" ip link set vB.100 up
    ip netns exec "$A" ip addr add $cli/64 dev vA.100 nodad; ip netns exec "$B" ip addr add $srv/64 dev vB.100 nodad
    tag=kernel
  else
    echo "twons.sh: no 8021q in this kernel: IPv6 untagged on the veth, VLAN tag inserted by pcapedit.py" >&2
    ip netns exec "$A" ip addr add $cli/64 dev vA nodad; ip netns exec "$B" ip addr add $srv/64 dev vB nodad
    tag=rewritten; rewrite=1
  fi
  encap='{"type": "802.1q", "vid": 100, "tag": "'$tag'"}'
  what="IPv6 (ULA) over 802.1Q VLAN 100 on a veth pair between two namespaces (vlan tag: $tag)"
  ;;
vxlan)
  srv=10.200.0.2; cli=10.200.0.1; sni=tunnel.test.example; name=vxlan
  ip netns exec "$A" ip addr add 10.99.0.1/24 dev vA; ip netns exec "$B" ip addr add 10.99.0.2/24 dev vB
  ip netns exec "$A" ip link add vx0 type vxlan id 42 dstport 4789 local 10.99.0.1 remote 10.99.0.2 dev vA
  ip netns exec "$B" ip link add vx0 type vxlan id 42 dstport 4789 local 10.99.0.2 remote 10.99.0.1 dev vB
  ip netns exec "$A" ip link set vx0 address 02:00:00:00:01:0a
  ip netns exec "$B" ip link set vx0 address 02:00:00:00:01:0b
  for ns in "$A" "$B"; do ip netns exec "$ns" ip link set vx0 mtu 1450 up; ip netns exec "$ns" ethtool -K vx0 tso off gso off gro off tx off rx off >/dev/null 2>&1 || true; done
  ip netns exec "$A" ip addr add $cli/24 dev vx0; ip netns exec "$B" ip addr add $srv/24 dev vx0
  encap='{"type": "vxlan", "vni": 42, "udp_port": 4789, "outer": ["10.99.0.1", "10.99.0.2"]}'
  what="TLS inside VXLAN (VNI 42, UDP 4789) between two namespaces; captured on the underlay veth (10.99.0.1 <-> 10.99.0.2); overlay MTU 1450"
  ;;
*) echo "usage: $0 vlan6|vxlan OUT" >&2; exit 2 ;;
esac
sleep 1
raw=$(mktemp --suffix .pcap); log=$(mktemp)
ip netns exec "$A" tcpdump -i $cap_if -U -s 0 -w "$raw" 2>"$log" &
dump=$!
for _ in $(seq 100); do grep -q "listening on" "$log" && break; sleep 0.1; done
sleep 0.5
ip netns exec "$B" python3 "$here/cases.py" serve "$srv" 443 &
srvpid=$!
for _ in $(seq 100); do ip netns exec "$B" ss -ltnH | grep -q ':443 ' && break; sleep 0.1; done
rc=0
ip netns exec "$A" python3 "$here/cases.py" tunnel "$name" "$srv" "$cli" "$sni" "$what" "$encap" || rc=$?
wait $srvpid || rc=$?
sleep 1
kill $dump; wait $dump 2>/dev/null || true
if [[ -n $rewrite ]]; then python3 "$here/pcapedit.py" vlan 100 "$raw" "$out"; else cp "$raw" "$out"; fi
rm -f "$raw" "$log"
chmod 644 "$out"
exit $rc
