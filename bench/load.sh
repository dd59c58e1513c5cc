#!/usr/bin/env bash
# Load benchmark (docs/benchmarks.md, "Load benchmark (wrk)"): one `ringfence serve` node on Redis
# beside the peer app (examples/peer_app.rs: tower-sessions + tower-sessions-redis-store +
# axum-login) on the same Redis, measured in the same run with wrk:
#
#   a. GET /healthz on ringfence                       the limit (no session, no store)
#   b. GET /api/v1/me on ringfence, signed in          ringfence's authenticated hot path (session
#                                                        cache on, the default with --redis)
#   n. the same on a second node with                  the hot path reading Redis every request
#      --session-cache off
#   c. GET /api/v1/me on the peer, signed in           the peer (one Redis GET per request)
#   l. GET /limit/redis-get on the peer app             one Redis GET and nothing else: the
#                                                        limit for one round trip per request
#   d. the same on the peer with with_always_save      the peer sliding its expiry (GET + SET)
#   r. p99 rounds: ROUNDS rounds of (b) and (c) as     the p99 comparison: one closed-loop run
#      paired legs in ABBA order (round 1 ringfence     per app is noise; the report gives the
#      then peer, round 2 peer then ringfence, ...)     per-round ratios, their median and range
#   o. the outside protocol (issue 16's 0.79x):      OUTSIDE_PAIRS (3) pairs at -t1, then at -t2:
#      4-second wrk runs, -c32, no warm-up, the       each pair runs /me on the cache-off node,
#      peer with a fred pool of 4                      the cache-on node and the pool-of-4 peer,
#                                                      the order reversed in every other pair
#   v. revocation latency: revoke on node A, time    REVOCATION_TRIALS trials (1,000), p50/p99/max
#      until node B refuses it while it serves the     (examples/revocation_latency.rs: two nodes in
#      session from its cache                          one process, wired as `serve` wires them)
#   f1. scale at 1k sessions: Redis memory per session and GET /api/v1/sessions latency
#   e. sign-in storm: (b) idle once more (the storm's adjacent baseline, ringfence_me_prestorm),
#      then (b) while a second wrk posts valid sign-ins for another user (argon2)
#   f2. the same at SCALE_TOTAL (1M) sessions (SCALE_1M=1)
#
# Every wrk leg (a-e, and f's listings on one connection) is measure(): a WARMUP-second warm-up
# (none for the storm leg, which follows the storm's own 1.5 s start), then DURATION seconds of
# wrk -tTHREADS -cCONNS with bench/wrk_report.lua, the server's and redis-server's CPU ticks from
# /proc/PID/stat, wrk's own CPU (bash `times`), Redis INFO commandstats, and the machine during
# the leg: the 1-minute load average at its end and /proc/stat deltas (all, idle, iowait, steal),
# from which the report shows steal+iowait and the CPU that processes other than the leg's own
# (server, redis-server, wrk) used.
#
# Everything runs on loopback, on free ports, in a temp dir that the exit trap removes together
# with every process this script started.
#
#   bench/load.sh                              # the whole run (about 7-9 minutes on 2 cores)
#   SCALE_1M=0 bench/load.sh                   # skip the 1M-session step
#   ROUNDS=0 bench/load.sh                     # skip the p99 rounds
#   REVOCATION_TRIALS=0 bench/load.sh          # skip the revocation latency step
#   DURATION=30 CONNS=64 THREADS=2 bench/load.sh
#
# Tunables (environment): THREADS (2), CONNS (32), DURATION (10, seconds), WARMUP (2, seconds),
# ROUNDS (6: rounds of step r, a positive even number so that each app goes first equally often,
# or 0 to skip it), LOGIN_CONNS (8, the storm's connections), PEER_ALWAYS_SAVE_RUN (1: run d),
# SCALE_1M (1), SCALE_TOTAL (1000000), SCALE_PER_USER (2, synthetic sessions per synthetic user),
# FILL_CONCURRENCY (64, inserts in flight while filling), LIST_DURATION (5, seconds),
# SKIP_BUILD (0), REVOCATION_TRIALS (1000, or 0 to skip step v), OUTSIDE_PAIRS (3, or 0 to skip
# step o), RESULTS (a file to copy the raw results to).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

THREADS="${THREADS:-2}"
CONNS="${CONNS:-32}"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
ROUNDS="${ROUNDS:-6}"
LOGIN_CONNS="${LOGIN_CONNS:-8}"
PEER_ALWAYS_SAVE_RUN="${PEER_ALWAYS_SAVE_RUN:-1}"
SCALE_1M="${SCALE_1M:-1}"
SCALE_TOTAL="${SCALE_TOTAL:-1000000}"
SCALE_PER_USER="${SCALE_PER_USER:-2}"
FILL_CONCURRENCY="${FILL_CONCURRENCY:-64}"
LIST_DURATION="${LIST_DURATION:-5}"
SKIP_BUILD="${SKIP_BUILD:-0}"
REVOCATION_TRIALS="${REVOCATION_TRIALS:-1000}"
OUTSIDE_PAIRS="${OUTSIDE_PAIRS:-3}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
LUA="$ROOT/bench/wrk_report.lua"

for n in THREADS CONNS DURATION WARMUP LOGIN_CONNS SCALE_TOTAL SCALE_PER_USER FILL_CONCURRENCY LIST_DURATION; do
    [[ "${!n}" =~ ^[1-9][0-9]*$ ]] || { echo "load.sh: $n must be a positive integer, not '${!n}'" >&2; exit 2; }
done
[[ "$REVOCATION_TRIALS" =~ ^(0|[1-9][0-9]*)$ ]] \
    || { echo "load.sh: REVOCATION_TRIALS must be 0 or a positive integer, not '$REVOCATION_TRIALS'" >&2; exit 2; }
[[ "$OUTSIDE_PAIRS" =~ ^(0|[1-9][0-9]*)$ ]] \
    || { echo "load.sh: OUTSIDE_PAIRS must be 0 or a positive integer, not '$OUTSIDE_PAIRS'" >&2; exit 2; }
[[ "$ROUNDS" =~ ^(0|[1-9][0-9]*)$ ]] && [ $((ROUNDS % 2)) = 0 ] \
    || { echo "load.sh: ROUNDS must be 0 or a positive even integer, not '$ROUNDS'" >&2; exit 2; }
for tool in redis-server redis-cli wrk curl python3; do
    command -v "$tool" >/dev/null || { echo "load.sh: $tool is not installed" >&2; exit 2; }
done

PASSWORD='correct horse battery staple'
BENCH_EMAIL=bench@example.com
STORM_EMAIL=storm@example.com
LIST_EMAIL=list@example.com
# A real browser's User-Agent (70 bytes, as in the sessions crate's memory test) for the sessions
# whose memory is measured.
FIREFOX_UA='Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0'

# --- processes and cleanup ---------------------------------------------------------------------

TMP=$(mktemp -d "${TMPDIR:-/tmp}/ringfence-load.XXXXXX")
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        # Bounded: give each process up to 5 s, then SIGKILL.
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for LOGFILE PATTERN PID WHAT: up to 30 s for PATTERN in LOGFILE while PID lives.
wait_for() {
    for _ in $(seq 300); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        if ! kill -0 "$3" 2>/dev/null; then
            echo "load.sh: $4 exited before it was ready:" >&2
            tail -20 "$1" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "load.sh: $4 not ready after 30 s:" >&2
    tail -20 "$1" >&2
    exit 1
}

# --- build and start ---------------------------------------------------------------------------

if [ "$SKIP_BUILD" != 1 ]; then
    cargo build --release --bin ringfence --example peer_app
    # The scale step's filler: synthetic sessions written through the real Redis store.
    cargo build --release -p ringfence-sessions --example fill_redis
    # Step v's two nodes.
    cargo build --release -p ringfence-sessions --example revocation_latency
fi
RINGFENCE="$TARGET_DIR/release/ringfence"
PEER="$TARGET_DIR/release/examples/peer_app"
FILL="$TARGET_DIR/release/examples/fill_redis"
REVOCATION="$TARGET_DIR/release/examples/revocation_latency"
for bin in "$RINGFENCE" "$PEER" "$FILL" "$REVOCATION"; do
    [ -x "$bin" ] || { echo "load.sh: $bin missing" >&2; exit 1; }
done

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$TMP" --appendonly no --save '' \
    --daemonize no >"$TMP/redis.log" 2>&1 &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
wait_for "$TMP/redis.log" "Ready to accept connections" "$REDIS_PID" redis-server
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }

REDIS_URL="redis://127.0.0.1:$REDIS_PORT/"
DB_URL="sqlite://$TMP/accounts.db"
STORE_FLAGS=(--redis "$REDIS_URL" --database "$DB_URL" --data-dir "$TMP/data")

for email in "$BENCH_EMAIL" "$STORM_EMAIL" "$LIST_EMAIL"; do
    printf '%s\n' "$PASSWORD" | env -u RUST_LOG "$RINGFENCE" users add "$email" "${STORE_FLAGS[@]}" >/dev/null
done

RF_PORT=$(free_port)
env -u RUST_LOG "$RINGFENCE" serve --listen "127.0.0.1:$RF_PORT" --node-name node-1 \
    --idle-timeout 30m --absolute-timeout 12h "${STORE_FLAGS[@]}" >"$TMP/ringfence.log" 2>&1 &
RF_PID=$!
PIDS+=("$RF_PID")
wait_for "$TMP/ringfence.log" "listening on http://" "$RF_PID" "ringfence serve"
RF="http://127.0.0.1:$RF_PORT"

# Step n: a second node on the same stores with the session cache off.
NC_PORT=$(free_port)
env -u RUST_LOG "$RINGFENCE" serve --listen "127.0.0.1:$NC_PORT" --node-name node-2 \
    --idle-timeout 30m --absolute-timeout 12h --session-cache off "${STORE_FLAGS[@]}" \
    >"$TMP/ringfence-nocache.log" 2>&1 &
NC_PID=$!
PIDS+=("$NC_PID")
wait_for "$TMP/ringfence-nocache.log" "listening on http://" "$NC_PID" "ringfence serve --session-cache off"
NC="http://127.0.0.1:$NC_PORT"

# The peers use Redis database 1: their keys (bare session ids) never meet ringfence's.
# start_peer LOG WHAT [VAR=VALUE ...]: a peer_app on a free port for the bench user, with those
# variables set; sets STARTED_PID and STARTED_URL.
start_peer() {
    local log=$1 what=$2 port
    shift 2
    port=$(free_port)
    env -u RUST_LOG PEER_EMAIL="$BENCH_EMAIL" PEER_PASSWORD="$PASSWORD" "$@" \
        "$PEER" "127.0.0.1:$port" "redis://127.0.0.1:$REDIS_PORT/1" >"$TMP/$log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    wait_for "$TMP/$log" "listening on http://" "$STARTED_PID" "$what"
    STARTED_URL="http://127.0.0.1:$port"
}

start_peer peer.log peer_app
PEER_PID=$STARTED_PID PEER_URL=$STARTED_URL

if [ "$PEER_ALWAYS_SAVE_RUN" = 1 ]; then
    start_peer peer-save.log "peer_app (always save)" PEER_ALWAYS_SAVE=1
    PEER_SAVE_PID=$STARTED_PID PEER_SAVE_URL=$STARTED_URL
fi

# Step o's peer: the outside measurement's fred pool of 4 (the peer above has the store
# example's 6).
if [ "$OUTSIDE_PAIRS" -gt 0 ]; then
    start_peer peer4.log "peer_app (pool of 4)" PEER_REDIS_POOL=4
    PEER4_PID=$STARTED_PID PEER4_URL=$STARTED_URL
fi

# sign_in URL EMAIL USER_AGENT JAR: posts the credentials, prints the Cookie header value.
sign_in() {
    local body status
    body=$(printf '{"email":"%s","password":"%s"}' "$2" "$PASSWORD")
    status=$(curl -sS --max-time 10 -o "$4.body" -w '%{http_code}' -c "$4" -A "$3" \
        -H 'content-type: application/json' -d "$body" "$1")
    [ "$status" = 200 ] || { echo "load.sh: sign-in at $1 answered $status: $(cat "$4.body")" >&2; exit 1; }
    # Netscape cookie file; curl marks HttpOnly cookies with a "#HttpOnly_" prefix.
    sed -e 's/^#HttpOnly_//' -e '/^#/d' -e '/^$/d' "$4" | awk -F'\t' '{printf "%s%s=%s", sep, $6, $7; sep="; "}'
}

# check_me URL COOKIE: the cookie must authenticate (200), and no cookie must not (401).
check_me() {
    local with without
    with=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -H "Cookie: $2" "$1")
    without=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "$1")
    [ "$with" = 200 ] && [ "$without" = 401 ] || {
        echo "load.sh: $1 answered $with with the cookie and $without without" >&2; exit 1; }
}

RF_COOKIE=$(sign_in "$RF/api/v1/login" "$BENCH_EMAIL" "$FIREFOX_UA" "$TMP/rf.jar")
check_me "$RF/api/v1/me" "$RF_COOKIE"
# The same session on the other node (the key ring and the sessions are shared).
check_me "$NC/api/v1/me" "$RF_COOKIE"
PEER_COOKIE=$(sign_in "$PEER_URL/login" "$BENCH_EMAIL" "$FIREFOX_UA" "$TMP/peer.jar")
check_me "$PEER_URL/api/v1/me" "$PEER_COOKIE"
if [ "$OUTSIDE_PAIRS" -gt 0 ]; then
    PEER4_COOKIE=$(sign_in "$PEER4_URL/login" "$BENCH_EMAIL" "$FIREFOX_UA" "$TMP/peer4.jar")
    check_me "$PEER4_URL/api/v1/me" "$PEER4_COOKIE"
fi
if [ "$PEER_ALWAYS_SAVE_RUN" = 1 ]; then
    PEER_SAVE_COOKIE=$(sign_in "$PEER_SAVE_URL/login" "$BENCH_EMAIL" "$FIREFOX_UA" "$TMP/peer-save.jar")
    check_me "$PEER_SAVE_URL/api/v1/me" "$PEER_SAVE_COOKIE"
fi

# --- measuring ---------------------------------------------------------------------------------

RESULTS_TSV="$TMP/results.tsv"
: >"$RESULTS_TSV"
CLK_TCK=$(getconf CLK_TCK)

# utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/PID/stat, counted after
# the parenthesised command name, which may hold spaces).
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }

# Calls per command since the last CONFIG RESETSTAT, as "get=N evalsha=M ...", leaving out the
# script's own INFO and CONFIG.
redis_calls() {
    rcli INFO commandstats | tr -d '\r' | awk -F'[_:=,]' '/^cmdstat_/ {
        name = $2; for (i = 3; i < NF; i++) if ($i == "calls") { calls = $(i + 1); break }
        if (name !~ /^(info|config)/) printf "%s=%s ", name, calls }'
}

# The machine's CPU ticks since boot, all CPUs, from the first line of /proc/stat: "all idle
# iowait steal" (user nice system idle iowait irq softirq steal; guest time is inside user).
sys_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9, $5, $6, $9; exit }' /proc/stat; }

# CPU time (user + system) of this shell's waited-for children, in microseconds, from the second
# line of bash's `times` ("XmY.YYYs XmY.YYYs"). `times` must run in this shell, not in a $(...)
# subshell (whose children start from zero), so it writes to a file.
children_us() {
    awk 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) { f = $i; gsub(/s$/, "", f); gsub(/,/, ".", f)
        split(f, a, "m"); t += a[1] * 60 + a[2] }; printf "%.0f\n", t * 1e6 }' "$1"
}

# measure NAME SERVER_PID WRK_ARGS...: warm-up, then one measured wrk run; appends a result row.
measure() {
    local name=$1 pid=$2 out="$TMP/wrk-$1.txt"
    shift 2
    if [ "$WARMUP" -gt 0 ] && [ -z "${NO_WARMUP:-}" ]; then
        wrk -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" --timeout 10s -s "$LUA" "$@" >/dev/null
    fi
    rcli CONFIG RESETSTAT >/dev/null
    local cpu0 rcpu0 cpu1 rcpu1 calls sys0 sys1 wrk_us load1
    cpu0=$(cpu_ticks "$pid"); rcpu0=$(cpu_ticks "$REDIS_PID"); sys0=$(sys_ticks)
    times >"$TMP/times0"
    wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --timeout 10s -s "$LUA" "$@" >"$out"
    times >"$TMP/times1"
    cpu1=$(cpu_ticks "$pid"); rcpu1=$(cpu_ticks "$REDIS_PID"); sys1=$(sys_ticks)
    calls=$(redis_calls)
    wrk_us=$(($(children_us "$TMP/times1") - $(children_us "$TMP/times0")))
    load1=$(cut -d' ' -f1 /proc/loadavg)
    local -a s0 s1
    read -r -a s0 <<<"$sys0"; read -r -a s1 <<<"$sys1"
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$(grep '^WRK_RESULT' "$out" | cut -d' ' -f2-)" \
        "server_ticks=$((cpu1 - cpu0)) redis_ticks=$((rcpu1 - rcpu0)) clk_tck=$CLK_TCK wrk_us=$wrk_us" \
        "$calls" "load1=$load1 sys_all_ticks=$((s1[0] - s0[0])) sys_idle_ticks=$((s1[1] - s0[1])) sys_iowait_ticks=$((s1[2] - s0[2])) sys_steal_ticks=$((s1[3] - s0[3]))" \
        >>"$RESULTS_TSV"
    grep -q '^WRK_RESULT' "$out" || { echo "load.sh: wrk printed no result for $name:" >&2; cat "$out" >&2; exit 1; }
    echo "  $name: $(grep -E 'Requests/sec' "$out" | tr -s ' ') (load average $load1)"
}

# Background traffic (each node's tracking connection pings every 200 ms and its key ring polls
# the revision as a safety net): measured while idle and subtracted from each run's commands per
# request by the report.
rcli CONFIG RESETSTAT >/dev/null
sleep 5
printf 'background\tseconds=5 %s\n' "$(redis_calls)" >>"$RESULTS_TSV"

echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "wrk -t$THREADS -c$CONNS -d${DURATION}s (warm-up ${WARMUP}s) on loopback; redis $(redis-server --version | grep -o 'v=[^ ]*')"
echo
measure healthz "$RF_PID" "$RF/healthz"
measure ringfence_me "$RF_PID" -H "Cookie: $RF_COOKIE" "$RF/api/v1/me"
measure ringfence_me_nocache "$NC_PID" -H "Cookie: $RF_COOKIE" "$NC/api/v1/me"
measure peer_me "$PEER_PID" -H "Cookie: $PEER_COOKIE" "$PEER_URL/api/v1/me"
# The one-round-trip limit: one Redis GET per request and nothing else (no cookie, no session).
measure limit_redis_get "$PEER_PID" "$PEER_URL/limit/redis-get"
if [ "$PEER_ALWAYS_SAVE_RUN" = 1 ]; then
    measure peer_me_always_save "$PEER_SAVE_PID" -H "Cookie: $PEER_SAVE_COOKIE" "$PEER_SAVE_URL/api/v1/me"
fi

# --- o. the outside protocol ------------------------------------------------------------------

# Issue 16 measured ringfence at 0.79x the peer from outside: alternating 4-second wrk runs at
# -t1 and -t2, -c32, no warm-up, a peer with a fred pool of 4. The same protocol here, in the same
# run as the 10-second legs above, so that the two ways of measuring meet the same binaries on
# the same machine: per pair, /me on the cache-off node, on the cache-on node and on the peer,
# the order reversed in every other pair.
if [ "$OUTSIDE_PAIRS" -gt 0 ]; then
    echo
    echo "outside protocol: $OUTSIDE_PAIRS pairs at -t1 and at -t2, -c$CONNS -d4s, no warm-up, peer pool of 4"
    for t in 1 2; do
        for pair in $(seq "$OUTSIDE_PAIRS"); do
            check_me "$PEER4_URL/api/v1/me" "$PEER4_COOKIE"
            if [ $((pair % 2)) = 1 ]; then legs="nocache cache peer4"; else legs="peer4 cache nocache"; fi
            for leg in $legs; do
                name="outside_t${t}_p${pair}_$leg"
                case $leg in
                    nocache) THREADS=$t DURATION=4 NO_WARMUP=1 measure "$name" "$NC_PID" -H "Cookie: $RF_COOKIE" "$NC/api/v1/me" ;;
                    cache) THREADS=$t DURATION=4 NO_WARMUP=1 measure "$name" "$RF_PID" -H "Cookie: $RF_COOKIE" "$RF/api/v1/me" ;;
                    peer4) THREADS=$t DURATION=4 NO_WARMUP=1 measure "$name" "$PEER4_PID" -H "Cookie: $PEER4_COOKIE" "$PEER4_URL/api/v1/me" ;;
                esac
            done
        done
    done
fi

# --- p99 rounds: ringfence /me and peer /me as paired legs, ABBA -------------------------------

# One closed-loop run per app, in a fixed order, gave p99 ratios of 0.89x-1.24x from run to run:
# the order and whatever else the machine did in those seconds decide more than the apps. Here
# each round measures both apps back to back, the order alternating (ringfence first in odd
# rounds, the peer first in even ones), so drift and order cancel out over the rounds and the
# report can show the per-round ratios and their spread.
if [ "$ROUNDS" -gt 0 ]; then
    echo
    echo "p99 rounds: $ROUNDS rounds of ringfence /me and peer /me, ABBA order"
    for round in $(seq "$ROUNDS"); do
        # The peer's session is never written again (no always_save), so its Redis TTL (30 min)
        # runs from the sign-in: stop, rather than measure 401s, on a run that long.
        check_me "$RF/api/v1/me" "$RF_COOKIE"
        check_me "$PEER_URL/api/v1/me" "$PEER_COOKIE"
        if [ $((round % 2)) = 1 ]; then order="ringfence peer"; else order="peer ringfence"; fi
        for app in $order; do
            if [ "$app" = ringfence ]; then
                measure "round${round}_ringfence_me" "$RF_PID" -H "Cookie: $RF_COOKIE" "$RF/api/v1/me"
            else
                measure "round${round}_peer_me" "$PEER_PID" -H "Cookie: $PEER_COOKIE" "$PEER_URL/api/v1/me"
            fi
        done
    done
fi

# --- revocation latency -------------------------------------------------------------------------

if [ "$REVOCATION_TRIALS" -gt 0 ]; then
    echo
    echo "revocation latency: $REVOCATION_TRIALS trials of revoke on node A, refused by node B (cache on)"
    out=$("$REVOCATION" "$REDIS_URL" "bench-revocation:" "$REVOCATION_TRIALS") \
        || { echo "load.sh: revocation_latency failed" >&2; exit 1; }
    printf 'revocation\t%s\n' "$out" >>"$RESULTS_TSV"
    echo "  $out"
fi

# --- scale: memory per session and listing, at 1k sessions --------------------------------------

# The listing user: five devices.
LIST_COOKIE=
for ua in "$FIREFOX_UA" \
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36' \
    'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1' \
    'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15' \
    "$FIREFOX_UA"; do
    LIST_COOKIE=$(sign_in "$RF/api/v1/login" "$LIST_EMAIL" "$ua" "$TMP/list.jar")
done

PREFIX=ringfence:
json_field() { python3 -c 'import json, sys; d = json.load(sys.stdin); print(d[sys.argv[1]][sys.argv[2]])' "$1" "$2"; }
ME_JSON=$(curl -sS --max-time 10 -H "Cookie: $RF_COOKIE" "$RF/api/v1/me")
BENCH_USER=$(json_field user id <<<"$ME_JSON")
LIST_ME_JSON=$(curl -sS --max-time 10 -H "Cookie: $LIST_COOKIE" "$RF/api/v1/me")
LIST_USER=$(json_field user id <<<"$LIST_ME_JSON")

# memory LABEL USER: the MEMORY USAGE figures a per-session sum is made of: the user's hash (all
# of their sessions) and the count keys (shared by every session), with the active sessions.
memory() {
    printf 'mem_%s\t%s sessions=%s used_memory=%s\n' "$1" \
        "$("$FILL" memory "$REDIS_URL" "$PREFIX" "$2")" "$(active_sessions)" \
        "$(rcli INFO memory | tr -d '\r' | awk -F: '/^used_memory:/ {print $2}')" >>"$RESULTS_TSV"
}

# active_sessions: what the store counts (its count keys, O(buckets)).
active_sessions() { "$FILL" count "$REDIS_URL" "$PREFIX"; }

# fill TOTAL: synthetic sessions, written through the real store, until TOTAL are active.
fill() {
    local have need out
    have=$(active_sessions)
    need=$(($1 - have))
    [ "$need" -gt 0 ] || return 0
    out=$("$FILL" fill "$REDIS_URL" "$PREFIX" "$need" "$SCALE_PER_USER" "$FILL_CONCURRENCY" 2>"$TMP/fill.log") \
        || { echo "load.sh: fill_redis failed:" >&2; cat "$TMP/fill.log" >&2; exit 1; }
    printf 'fill_%s\t%s\n' "$1" "$out" >>"$RESULTS_TSV"
    echo "  wrote synthetic sessions: $out"
}

# listing LABEL: GET /api/v1/sessions for the five-device user, one connection (pure latency).
listing() {
    local saved_threads=$THREADS saved_conns=$CONNS saved_duration=$DURATION
    THREADS=1 CONNS=1 DURATION=$LIST_DURATION
    measure "list_$1" "$RF_PID" -H "Cookie: $LIST_COOKIE" "$RF/api/v1/sessions"
    THREADS=$saved_threads CONNS=$saved_conns DURATION=$saved_duration
}

echo
echo "scale: 1k sessions"
fill 1000
memory bench_1k "$BENCH_USER"
memory list_1k "$LIST_USER"
listing 1k

# --- sign-in storm -----------------------------------------------------------------------------

echo
echo "sign-in storm: wrk -t1 -c$LOGIN_CONNS POST /api/v1/login ($STORM_EMAIL) during (b), after (b) idle as its baseline"
# The storm's baseline: the same route idle, immediately before (step b ran minutes earlier).
measure ringfence_me_prestorm "$RF_PID" -H "Cookie: $RF_COOKIE" "$RF/api/v1/me"
STORM_BODY=$(printf '{"email":"%s","password":"%s"}' "$STORM_EMAIL" "$PASSWORD")
WRK_BODY="$STORM_BODY" wrk -t1 -c"$LOGIN_CONNS" -d"$((DURATION + 3))s" --timeout 10s -s "$LUA" \
    "$RF/api/v1/login" >"$TMP/wrk-storm-login.txt" &
STORM_PID=$!
PIDS+=("$STORM_PID")
sleep 1.5
NO_WARMUP=1 measure ringfence_me_storm "$RF_PID" -H "Cookie: $RF_COOKIE" "$RF/api/v1/me"
wait "$STORM_PID" || true
printf 'storm_login\t%s\n' "$(grep '^WRK_RESULT' "$TMP/wrk-storm-login.txt" | cut -d' ' -f2-)" >>"$RESULTS_TSV"
echo "  logins: $(grep -E 'Requests/sec' "$TMP/wrk-storm-login.txt" | tr -s ' ')"

# --- scale: 1M ---------------------------------------------------------------------------------

if [ "$SCALE_1M" = 1 ]; then
    echo
    echo "scale: $SCALE_TOTAL sessions"
    BEFORE=$(rcli INFO memory | tr -d '\r' | awk -F: '/^used_memory:/ {print $2}')
    BEFORE_CARD=$(active_sessions)
    fill "$SCALE_TOTAL"
    AFTER=$(rcli INFO memory | tr -d '\r' | awk -F: '/^used_memory:/ {print $2}')
    AFTER_CARD=$(active_sessions)
    printf 'synthetic\tsessions=%s bytes=%s per_user=%s\n' "$((AFTER_CARD - BEFORE_CARD))" "$((AFTER - BEFORE))" \
        "$SCALE_PER_USER" >>"$RESULTS_TSV"
    memory bench_1m "$BENCH_USER"
    memory list_1m "$LIST_USER"
    listing 1m
    echo "  redis: $(rcli INFO memory | tr -d '\r' | grep -E '^used_memory_human:')"
fi

[ -n "${RESULTS:-}" ] && cp "$RESULTS_TSV" "$RESULTS"

# --- report ------------------------------------------------------------------------------------

python3 "$ROOT/bench/load_report.py" "$RESULTS_TSV"
