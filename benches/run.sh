#!/usr/bin/env bash
# trustmap line-rate benchmark: offline analysis speed against the physical limit.
#
# Generates (or reuses) a realistic TLS capture with trustmap-benchgen, then measures side by side,
# on the same file and in the same run (page cache warm for everyone):
#   cat FILE > /dev/null                      the physical limit (reading the bytes)
#   tcpdump -nr FILE 'tcp port 1'             libpcap read + BPF filter (matches nothing)
#   tshark ... -e tls.handshake.certificate   the usual way to extract certificates (on a smaller
#                                             file, rate scaled to the big one; said so in output)
#   trustmap analyze FILE -o /dev/null --db :memory:   (and --workers 2 when supported)
# Each is run --runs times (best wall time kept), with /usr/bin/time -v for peak RSS and CPU time.
# Then trustmap runs once more with -o events.ndjson, and the number of trustmap.tls events with a
# server chain is checked against the generator's manifest (every Certificate message found).
#
# Usage: benches/run.sh [--size 1G] [--tshark-size 64M] [--runs 3] [--seed 1] [--dir DIR]
#                       [--trustmap PATH] [--no-tshark] [--gen-args "--tls13-share 0.5 ..."] [--clean]
# Generated files are kept in DIR for reuse (same size/seed/args); --clean deletes them at the end.
# Exit: 0 ok (trustmap skipped if its binary is absent), 1 a check failed, 2 usage.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIZE=1G
TSHARK_SIZE=64M
RUNS=3
SEED=1
DIR=${TMPDIR:-/tmp}/trustmap-bench
TRUSTMAP=$ROOT/target/release/trustmap
DO_TSHARK=1
GEN_ARGS=""
CLEAN=0

while [ $# -gt 0 ]; do
    case "$1" in
        --size) SIZE=$2; shift 2 ;;
        --tshark-size) TSHARK_SIZE=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --seed) SEED=$2; shift 2 ;;
        --dir) DIR=$2; shift 2 ;;
        --trustmap) TRUSTMAP=$2; shift 2 ;;
        --no-tshark) DO_TSHARK=0; shift ;;
        --clean) CLEAN=1; shift ;;
        --gen-args) GEN_ARGS=$2; shift 2 ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
case "$RUNS" in ''|*[!0-9]*) echo "run.sh: --runs needs a number" >&2; exit 2 ;; esac
[ "$RUNS" -ge 1 ] || { echo "run.sh: --runs must be >= 1" >&2; exit 2; }

mkdir -p "$DIR"
RESULTS=$DIR/results.tsv
: > "$RESULTS"
FAILED=0
CORES=$(nproc)

say() { printf '%s\n' "$*" >&2; }

# --- generator -------------------------------------------------------------------------------
GEN=$ROOT/target/release/trustmap-benchgen
if [ ! -x "$GEN" ] || [ -n "$(find "$ROOT/benches/gen" -newer "$GEN" -type f 2>/dev/null | head -1)" ]; then
    say "building trustmap-benchgen (release)..."
    (cd "$ROOT" && cargo build --release -q -p trustmap-benchgen)
fi

# gen SIZE -> path; reuses a file made with the same size/seed/args (its manifest proves it finished).
gen() {
    local size=$1 tag
    tag=$(printf '%s' "$size $SEED $GEN_ARGS" | md5sum | cut -c1-8)
    local f=$DIR/gen-$size-s$SEED-$tag.pcap
    if [ -s "$f" ] && [ -s "$f.manifest.json" ]; then
        say "reusing $f"
    else
        # shellcheck disable=SC2086
        "$GEN" -o "$f" --size "$size" --seed "$SEED" $GEN_ARGS >&2
        # Written back now, not during the timed runs (dirty pages slowed the first tools ~1.5x).
        sync
    fi
    printf '%s\n' "$f"
}

mf() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1.manifest.json" "$2"; }

FILE=$(gen "$SIZE")
BYTES=$(mf "$FILE" bytes)
PACKETS=$(mf "$FILE" packets)
HANDSHAKES=$(mf "$FILE" connections)
CERT_MSGS=$(mf "$FILE" server_certificate_messages)

# Warm the page cache so every tool reads from memory: we compare CPU cost, not the disk.
cat "$FILE" > /dev/null

# --- measurement -----------------------------------------------------------------------------
# measure NAME BYTES PACKETS HANDSHAKES CMD...: best-of-RUNS wall time, max peak RSS, CPU of best.
measure() {
    local name=$1 bytes=$2 pkts=$3 hs=$4; shift 4
    local best="" best_cpu="" rss_max=0 i tv out
    tv=$(mktemp)
    for ((i = 1; i <= RUNS; i++)); do
        local t0 t1 rc=0
        t0=$(date +%s%N)
        /usr/bin/time -v -o "$tv" "$@" > /dev/null 2> "$DIR/$name.stderr" || rc=$?
        t1=$(date +%s%N)
        if [ "$rc" -ne 0 ]; then
            say "  $name: exit $rc (see $DIR/$name.stderr)"
            rm -f "$tv"
            printf '%s\tFAILED\n' "$name" >> "$RESULTS"
            return 1
        fi
        local wall rss cpu
        wall=$(( t1 - t0 ))
        rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tv")
        cpu=$(awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {printf "%.3f", u+s}' "$tv")
        [ "$rss" -gt "$rss_max" ] && rss_max=$rss
        if [ -z "$best" ] || [ "$wall" -lt "$best" ]; then best=$wall; best_cpu=$cpu; fi
    done
    rm -f "$tv"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$best" "$best_cpu" "$rss_max" "$bytes" "$pkts" "$hs" >> "$RESULTS"
}

say "measuring on $FILE ($BYTES bytes, $PACKETS packets, $HANDSHAKES handshakes), best of $RUNS..."
measure cat "$BYTES" "$PACKETS" "$HANDSHAKES" cat "$FILE"
measure tcpdump "$BYTES" "$PACKETS" "$HANDSHAKES" tcpdump -nr "$FILE" 'tcp port 1' || FAILED=1

TSHARK_NOTE=""
if [ "$DO_TSHARK" = 1 ] && command -v tshark > /dev/null; then
    SMALL=$(gen "$TSHARK_SIZE")
    cat "$SMALL" > /dev/null
    measure tshark "$(mf "$SMALL" bytes)" "$(mf "$SMALL" packets)" "$(mf "$SMALL" connections)" \
        tshark -r "$SMALL" -Y tls.handshake.certificate -T fields -e tls.handshake.certificate || FAILED=1
    TSHARK_NOTE="tshark measured on $(basename "$SMALL") ($(mf "$SMALL" bytes) bytes); its rates are per byte/packet, so the ratio is scaled to the big file"
    got=$(tshark -r "$SMALL" -Y 'tls.handshake.type == 11' -T fields -e frame.number 2>/dev/null | wc -l)
    want=$(mf "$SMALL" server_certificate_messages)
    if [ "$got" = "$want" ]; then
        say "  tshark check: $got Certificate messages = manifest"
    else
        say "  tshark check FAILED: $got Certificate messages, manifest says $want"
        FAILED=1
    fi
else
    say "  tshark: skipped"
fi

TRUSTMAP_NOTE=""
if [ -x "$TRUSTMAP" ] && "$TRUSTMAP" analyze --help > /dev/null 2>&1; then
    measure trustmap "$BYTES" "$PACKETS" "$HANDSHAKES" \
        "$TRUSTMAP" analyze "$FILE" -o /dev/null --db :memory: || FAILED=1
    if "$TRUSTMAP" analyze --help 2>&1 | grep -q -- '--workers'; then
        measure trustmap-w2 "$BYTES" "$PACKETS" "$HANDSHAKES" \
            "$TRUSTMAP" analyze "$FILE" -o /dev/null --db :memory: --workers 2 || FAILED=1
    fi
    EV=$DIR/events.ndjson
    if "$TRUSTMAP" analyze "$FILE" -o "$EV" --db :memory: > /dev/null 2> "$DIR/trustmap-check.stderr"; then
        # Count trustmap.tls events with a non-empty server chain; compare leaves with the manifest.
        if python3 - "$EV" "$FILE.manifest.json" >&2 <<'PY'
import json, sys
ev, mf = sys.argv[1], json.load(open(sys.argv[2]))
n, leaves = 0, {}
with open(ev) as f:
    for line in f:
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("event", {}).get("dataset") != "trustmap.tls":
            continue
        chain = (((e.get("tls") or {}).get("server") or {}).get("chain")) or []
        if chain:
            n += 1
            leaf = chain[0].get("sha256", "")
            leaves[leaf] = leaves.get(leaf, 0) + 1
want = mf["server_certificate_messages"]
missing = [c["server_name"] for c in mf["chains"] if leaves.get(c["leaf_sha256"]) != c["connections"]]
print(f"  trustmap check: {n} trustmap.tls events with a server chain, manifest says {want}; "
      f"{len(leaves)} distinct leaves (manifest {mf['unique_chains_in_clear']}); "
      f"{len(missing)} chains with a wrong count{': ' + ', '.join(missing[:5]) if missing else ''}")
sys.exit(0 if n == want and not missing else 1)
PY
        then :; else FAILED=1; TRUSTMAP_NOTE="trustmap did NOT report every chain"; fi
    else
        say "  trustmap check run failed (see $DIR/trustmap-check.stderr)"
        FAILED=1
    fi
else
    say "  trustmap: skipped ($TRUSTMAP not built or no 'analyze' subcommand yet)"
    TRUSTMAP_NOTE="trustmap skipped: binary absent"
fi

# --- report ----------------------------------------------------------------------------------
python3 - "$RESULTS" "$CORES" "$BYTES" <<'PY'
import sys
rows, cores, big = {}, int(sys.argv[2]), int(sys.argv[3])
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    if len(f) < 7:
        rows[f[0]] = None
        continue
    name, ns, cpu, rss, b, p, hs = f
    wall = int(ns) / 1e9
    rows[name] = dict(wall=wall, cpu=float(cpu), rss=int(rss), bytes=int(b), pkts=int(p), hs=int(hs),
                      # seconds this tool would need for the big file (tshark ran on a smaller one)
                      wall_big=wall * big / int(b))
print(f"\n{'tool':<12} {'wall s':>8} {'cpu s':>7} {'Gbit/s':>8} {'Mpps':>7} {'hs/s/core':>11} {'peak RSS MB':>12}")
for name, r in rows.items():
    if r is None:
        print(f"{name:<12} FAILED")
        continue
    gbps = r["bytes"] * 8 / r["wall"] / 1e9
    mpps = r["pkts"] / r["wall"] / 1e6
    # Handshakes/s only means something for tools that parse TLS.
    hs = f"{r['hs'] / max(r['cpu'], 1e-9):11.0f}" if name not in ("cat", "tcpdump") else f"{'-':>11}"
    print(f"{name:<12} {r['wall']:8.3f} {r['cpu']:7.2f} {gbps:8.2f} {mpps:7.2f} {hs} {r['rss']/1024:12.1f}")
print("(Gbit/s over pcap file bytes; hs/s/core = handshakes / CPU seconds (user+sys); "
      f"{cores} cores; page cache warm)")
def ratio(a, b, what):
    ra, rb = rows.get(a), rows.get(b)
    if ra and rb:
        print(f"  {what}: {rb['wall_big'] / ra['wall_big']:.3f}")
for t in ("trustmap", "trustmap-w2"):
    ratio(t, "cat", f"{t}/cat (throughput as a share of the physical limit)")
    ratio(t, "tcpdump", f"{t}/tcpdump (throughput vs libpcap read+filter)")
    ratio(t, "tshark", f"tshark/{t} (time ratio at equal size = {t} speed-up over tshark)")
PY
[ -n "$TSHARK_NOTE" ] && say "note: $TSHARK_NOTE"
[ -n "$TRUSTMAP_NOTE" ] && say "note: $TRUSTMAP_NOTE"
if [ "$CLEAN" = 1 ]; then
    rm -f "$DIR"/gen-*.pcap "$DIR"/gen-*.pcap.manifest.json "$DIR/events.ndjson"
    say "raw results: $RESULTS (generated files deleted)"
else
    say "raw results: $RESULTS; generated files kept in $DIR for reuse (--clean deletes them)"
fi
exit "$FAILED"
