#!/usr/bin/env python3
"""Post-process a classic pcap (python3 stdlib only). Used where the kernel of the build machine lacks the
feature (no sch_netem, no 8021q) or where the case is a cut of a real capture.

  pcapedit.py reorder-dup IN OUT   server->client data segments of the first TCP stream: the 2nd..4th are
                                   delivered in reverse order, the 1st and 3rd are also duplicated later
                                   (timestamps stay monotonic: contents move, time slots stay)
  pcapedit.py cut-syn IN OUT       drop every packet up to and including the first pure ACK after SYN/SYN-ACK
  pcapedit.py cut-ch IN OUT        drop every packet up to and including the client's first data segment
  pcapedit.py vlan VID IN OUT      insert an 802.1Q tag (TPID 0x8100, PCP 0, VID) after the MAC addresses
  pcapedit.py isn WHICH IN OUT     the first connection's SYN-ACK (or SYN) seen twice with different ISNs:
                                   WHICH = synack-before (a bogus SYN-ACK, then the real one the data
                                   follows), synack-after (the real one, then a bogus one), syn-before,
                                   synack-lost (only a bogus SYN-ACK: the data fits no start)
"""
import struct
import sys


def read(path):
    data = open(path, "rb").read()
    hdr, off, pkts = data[:24], 24, []
    magic = struct.unpack("<I", hdr[:4])[0]
    assert magic == 0xA1B2C3D4, "little-endian microsecond pcap expected"
    while off + 16 <= len(data):
        ts, us, incl, orig = struct.unpack("<IIII", data[off:off + 16])
        pkts.append([ts, us, data[off + 16:off + 16 + incl], orig])
        off += 16 + incl
    return hdr, pkts


def write(path, hdr, pkts):
    with open(path, "wb") as f:
        f.write(hdr)
        for ts, us, frame, orig in pkts:
            f.write(struct.pack("<IIII", ts, us, len(frame), orig if orig == len(frame) else len(frame)))
            f.write(frame)


def tcp(frame):
    """(src, sport, dst, dport, flags, payload_len) for Ethernet/IPv4/TCP frames, else None."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return None
    ip = frame[14:]
    ihl = (ip[0] & 15) * 4
    if ip[9] != 6:
        return None
    tot = struct.unpack(">H", ip[2:4])[0]
    t = ip[ihl:]
    doff = (t[12] >> 4) * 4
    sport, dport = struct.unpack(">HH", t[:4])
    return ip[12:16], sport, ip[16:20], dport, t[13], tot - ihl - doff


def main():
    op = sys.argv[1]
    if op == "isn":
        return isn(sys.argv[2], sys.argv[3], sys.argv[4])
    if op == "vlan":
        vid, src, dst = int(sys.argv[2]), sys.argv[3], sys.argv[4]
        hdr, pkts = read(src)
        for p in pkts:
            p[2] = p[2][:12] + struct.pack(">HH", 0x8100, vid & 0xFFF) + p[2][12:]
            p[3] += 4
        write(dst, hdr, pkts)
        return
    src, dst = sys.argv[2], sys.argv[3]
    hdr, pkts = read(src)
    info = [tcp(p[2]) for p in pkts]
    syn = next(i for i, t in enumerate(info) if t and t[4] & 0x12 == 0x02)
    client = (info[syn][0], info[syn][1])
    if op == "cut-syn":
        ack = next(i for i, t in enumerate(info) if i > syn + 1 and t and (t[0], t[1]) == client and t[4] & 0x10)
        pkts = pkts[ack + 1:]
    elif op == "cut-ch":
        ch = next(i for i, t in enumerate(info) if t and (t[0], t[1]) == client and t[5] > 0)
        pkts = pkts[ch + 1:]
    elif op == "reorder-dup":
        data = [i for i, t in enumerate(info) if t and (t[2], t[3]) == client and t[5] > 0]
        assert len(data) >= 4, "need at least 4 server data segments"
        slots = [pkts[i][:2] for i in range(len(pkts))]
        a, b, c, d = data[:4]
        frames = [p[2] for p in pkts]
        frames[b], frames[d] = frames[d], frames[b]           # 1st, 4th, 3rd, 2nd
        out = []
        for i, f in enumerate(frames):
            out.append([slots[i][0], slots[i][1], f, len(f)])
            if i == d:                                          # duplicates of the 1st and the 3rd right after
                out.append([slots[i][0], slots[i][1], frames[a], len(frames[a])])
                out.append([slots[i][0], slots[i][1], frames[c], len(frames[c])])
        pkts = out
    else:
        sys.exit(__doc__)
    write(dst, hdr, pkts)


def bogus_isn(frame):
    """The frame (Ethernet/IPv4/TCP) with its sequence number changed (TCP checksum not fixed:
    captures on loopback carry none that tshark checks)."""
    ihl = (frame[14] & 15) * 4
    t = 14 + ihl
    seq = struct.unpack(">I", frame[t + 4:t + 8])[0]
    return frame[:t + 4] + struct.pack(">I", seq ^ 0x5A5A5A5A) + frame[t + 8:]


def isn(which, src, dst):
    hdr, pkts = read(src)
    info = [tcp(p[2]) for p in pkts]
    syn = next(i for i, t in enumerate(info) if t and t[4] & 0x12 == 0x02)
    synack = next(i for i, t in enumerate(info) if t and t[4] & 0x12 == 0x12)
    at = syn if which == "syn-before" else synack
    ts, us, frame, orig = pkts[at]
    fake = [ts, us, bogus_isn(frame), orig]
    if which in ("synack-before", "syn-before"):
        pkts = pkts[:at] + [fake] + pkts[at:]
    elif which == "synack-after":
        pkts = pkts[:at + 1] + [fake] + pkts[at + 1:]
    elif which == "synack-lost":
        pkts = pkts[:at] + [fake] + pkts[at + 1:]
    else:
        sys.exit(__doc__)
    write(dst, hdr, pkts)


if __name__ == "__main__":
    main()
