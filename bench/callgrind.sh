#!/usr/bin/env bash
# Instructions per request of one ringfence route under callgrind (docs/benchmarks.md, "Where the
# time goes"): counts instructions, not seconds, so the figure repeats whatever else the machine
# is doing. Starts its own redis-server and node on free loopback ports in a temp dir, signs in,
# warms up, zeroes the counters, runs wrk, and prints instructions per request and the top
# inclusive costs. Everything it started is stopped on exit.
#
#   bench/callgrind.sh                    # GET /api/v1/me, signed in
#   bench/callgrind.sh /healthz           # any GET route (the cookie is sent along)
#   TOP=120 DURATION=20 bench/callgrind.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUTE="${1:-/api/v1/me}"
DURATION="${DURATION:-10}"
TOP="${TOP:-60}"
for tool in valgrind callgrind_annotate callgrind_control redis-server redis-cli wrk curl python3; do
    command -v "$tool" >/dev/null || { echo "callgrind.sh: $tool is not installed" >&2; exit 2; }
done
[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release --bin ringfence
BIN="${CARGO_TARGET_DIR:-target}/release/ringfence"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/ringfence-callgrind.XXXXXX")
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# wait_for FILE PATTERN: up to 60 s (valgrind starts slowly).
wait_for() {
    for _ in $(seq 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    echo "callgrind.sh: '$2' never appeared in $1:" >&2; tail -20 "$1" >&2; exit 1
}

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$TMP" --save '' --appendonly no \
    >"$TMP/redis.log" 2>&1 &
PIDS+=($!)
wait_for "$TMP/redis.log" "Ready to accept connections"

FLAGS=(--redis "redis://127.0.0.1:$REDIS_PORT/" --database "sqlite://$TMP/accounts.db" --data-dir "$TMP/data")
PASSWORD='correct horse battery staple'
printf '%s\n' "$PASSWORD" | env -u RUST_LOG "$BIN" users add bench@example.com "${FLAGS[@]}" >/dev/null

PORT=$(free_port)
env -u RUST_LOG valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.out" \
    "$BIN" serve --listen "127.0.0.1:$PORT" "${FLAGS[@]}" >"$TMP/serve.log" 2>&1 &
SERVER=$!
PIDS+=("$SERVER")
wait_for "$TMP/serve.log" "listening on http://"
URL="http://127.0.0.1:$PORT"

# Argon2 under valgrind takes a while: a generous timeout, and the answer checked, since a failed
# sign-in would have wrk measure the 401 path instead of the route.
STATUS=$(curl -sS --max-time 300 -o "$TMP/login.body" -w '%{http_code}' -c "$TMP/jar" \
    -H 'content-type: application/json' \
    -d "{\"email\":\"bench@example.com\",\"password\":\"$PASSWORD\"}" "$URL/api/v1/login")
[ "$STATUS" = 200 ] || { echo "callgrind.sh: sign-in answered $STATUS: $(cat "$TMP/login.body")" >&2; exit 1; }
COOKIE=$(sed -e 's/^#HttpOnly_//' -e '/^#/d' -e '/^$/d' "$TMP/jar" | awk -F'\t' '{printf "%s%s=%s", sep, $6, $7; sep="; "}')
STATUS=$(curl -sS --max-time 60 -o "$TMP/route.body" -w '%{http_code}' -H "Cookie: $COOKIE" "$URL$ROUTE")
[ "$STATUS" = 200 ] || { echo "callgrind.sh: GET $ROUTE answered $STATUS: $(cat "$TMP/route.body")" >&2; exit 1; }

wrk -t1 -c4 -d5s --timeout 10s -H "Cookie: $COOKIE" "$URL$ROUTE" >/dev/null
callgrind_control -z "$SERVER" >/dev/null 2>&1
wrk -t1 -c4 -d"${DURATION}s" --timeout 10s -H "Cookie: $COOKIE" "$URL$ROUTE" >"$TMP/wrk.txt"
REQUESTS=$(awk '/requests in/ {print $1}' "$TMP/wrk.txt")
if grep -q 'Non-2xx' "$TMP/wrk.txt"; then
    echo "callgrind.sh: some answers were not 2xx, so the count is not the route's:" >&2
    grep 'Non-2xx' "$TMP/wrk.txt" >&2
    exit 1
fi
callgrind_control -d "$SERVER" >/dev/null 2>&1
sleep 1
DUMP=$(ls "$TMP"/cg.out.* | head -1)
TOTAL=$(callgrind_annotate "$DUMP" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "GET $ROUTE: $REQUESTS requests, $TOTAL instructions: $((TOTAL / REQUESTS)) per request"
echo
echo "top inclusive costs, instructions per request:"
callgrind_annotate --inclusive=yes "$DUMP" 2>/dev/null | grep -E '^ *[0-9,]+ \(' | head -"$TOP" \
    | awk -v n="$REQUESTS" '{c = $1; gsub(",", "", c); $1 = ""; $2 = ""; printf "%9d %s\n", c / n, $0}'
