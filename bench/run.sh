#!/usr/bin/env bash
# Runs the criterion benchmarks as recorded in docs/benchmarks.md and prints the machine they
# ran on plus a summary table (median times and ratios) from criterion's JSON estimates.
#
#   bench/run.sh            # protect + sessions, short settings (about 2 minutes of measuring)
#   bench/run.sh protect    # one bench target
#   WARM_UP=3 MEASURE=10 bench/run.sh   # longer, steadier runs
set -euo pipefail
cd "$(dirname "$0")/.."

WARM_UP="${WARM_UP:-1}"
MEASURE="${MEASURE:-3}"
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(protect sessions)

echo "nproc: $(nproc)"
echo "cpu:   $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "rustc: $(rustc -V)"
echo

for target in "${targets[@]}"; do
    cargo bench --bench "$target" -- --warm-up-time "$WARM_UP" --measurement-time "$MEASURE"
done

# Summary: median of each benchmark, and for the round trips the ratio to raw AES-256-GCM and to
# the cookie crate's private jar of the same size.
python3 - <<'PY'
import json, pathlib

root = pathlib.Path("target/criterion")

def median_ns(group, bench, size=None):
    path = root / group / bench
    if size:
        path = path / size
    est = path / "new" / "estimates.json"
    if not est.exists():
        return None
    return json.loads(est.read_text())["median"]["point_estimate"]

def fmt(ns):
    return f"{ns / 1000:.3f} µs" if ns >= 1000 else f"{ns:.1f} ns"

for size in ("64B", "1KiB"):
    group = f"roundtrip_{size}"
    raw = median_ns(group, "raw_aes256gcm", size)
    jar = median_ns(group, "cookie_private_jar", size)
    if raw is None:
        continue
    print(f"\n{group}")
    print(f"  {'contender':<22} {'median':>12} {'vs raw':>8} {'vs jar':>8}")
    for bench in ("raw_aes256gcm", "raw_aes256gcm_header", "ringfence_bytes", "ringfence_base64", "cookie_private_jar"):
        ns = median_ns(group, bench, size)
        if ns is None:
            continue
        vs_jar = f"{ns / jar:.2f}x" if jar else "-"
        print(f"  {bench:<22} {fmt(ns):>12} {ns / raw:>7.2f}x {vs_jar:>8}")

group = "session_resolve_sqlite"
rows = [(b, median_ns(group, b)) for b in ("valid", "tampered", "garbage")]
if any(ns for _, ns in rows):
    print(f"\n{group}")
    for bench, ns in rows:
        if ns is not None:
            print(f"  {bench:<22} {fmt(ns):>12}")
PY
