#!/usr/bin/env bash
# A complete ringfence fleet on this machine, without Docker: Redis (shared key ring and
# sessions), PostgreSQL (user accounts), two ringfence nodes and HAProxy in front of them.
#
#   deploy/local-fleet.sh            then open http://127.0.0.1:8080, Ctrl-C stops everything
#
# Everything lives in a throwaway temporary directory that is removed on exit (set FLEET_KEEP=1
# to keep it, with the logs). Ports and paths, all optional:
#   FLEET_PORT        balancer              (default 8080)
#   FLEET_NODE1_PORT  node1                 (default 8081)
#   FLEET_NODE2_PORT  node2                 (default 8082)
#   FLEET_REDIS_PORT  redis-server          (default 16379)
#   FLEET_PG_PORT     PostgreSQL            (default 15432)
#   FLEET_BINARY      ringfence binary to run; when set, `cargo build --release` is skipped
# Needs redis-server, redis-cli, haproxy and PostgreSQL's server programs (initdb, postgres);
# Debian/Ubuntu: apt-get install redis-server redis-tools haproxy postgresql.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

fleet_port=${FLEET_PORT:-8080}
node1_port=${FLEET_NODE1_PORT:-8081}
node2_port=${FLEET_NODE2_PORT:-8082}
redis_port=${FLEET_REDIS_PORT:-16379}
pg_port=${FLEET_PG_PORT:-15432}

say() { printf 'local-fleet: %s\n' "$*" >&2; }
die() {
    say "$*"
    exit 1
}

# --- preflight: tools and ports, before anything is started -----------------------------------

for tool in redis-server redis-cli haproxy; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "$tool not found; install it (Debian/Ubuntu: apt-get install redis-server redis-tools haproxy postgresql)"
done

pg_bin=""
if command -v initdb >/dev/null 2>&1; then
    # Debian links initdb into PATH but keeps postgres next to the real file.
    candidate="$(dirname "$(readlink -f "$(command -v initdb)")")"
    [[ -x $candidate/postgres ]] && pg_bin=$candidate
fi
if [[ -z $pg_bin ]]; then
    pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
fi
[[ -n $pg_bin && -x $pg_bin/initdb && -x $pg_bin/postgres && -x $pg_bin/psql && -x $pg_bin/pg_isready ]] ||
    die "PostgreSQL server programs (initdb, postgres) not found; install them (Debian/Ubuntu: apt-get install postgresql)"

declare -A port_owner=(
    [$fleet_port]=FLEET_PORT [$node1_port]=FLEET_NODE1_PORT [$node2_port]=FLEET_NODE2_PORT
    [$redis_port]=FLEET_REDIS_PORT [$pg_port]=FLEET_PG_PORT
)
((${#port_owner[@]} == 5)) ||
    die "the five ports must differ: $fleet_port $node1_port $node2_port $redis_port $pg_port"
for port in "${!port_owner[@]}"; do
    [[ $port =~ ^[0-9]+$ ]] && ((port > 0 && port < 65536)) ||
        die "${port_owner[$port]}=$port is not a port number"
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "127.0.0.1:$port is already in use; pick another with ${port_owner[$port]}=..."
    fi
done

# PostgreSQL refuses to run as root: then its programs run as the postgres system user.
as_pg=()
if ((EUID == 0)); then
    id postgres >/dev/null 2>&1 ||
        die "running as root, but PostgreSQL refuses root and there is no postgres user (apt-get install postgresql creates it)"
    command -v setpriv >/dev/null 2>&1 || die "setpriv (util-linux) is needed to run PostgreSQL as the postgres user"
    as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups --)
fi

# --- build ---------------------------------------------------------------------------------------

if [[ -n ${FLEET_BINARY:-} ]]; then
    binary=$FLEET_BINARY
else
    say "building: cargo build --release"
    cargo build --release
    binary="${CARGO_TARGET_DIR:-$repo_root/target}/release/ringfence"
fi
[[ -x $binary ]] || die "no ringfence binary at $binary"
binary="$(readlink -f "$binary")"

# --- start ---------------------------------------------------------------------------------------

# As root, under /tmp: a $TMPDIR below /root would be closed to the postgres user.
if ((EUID == 0)); then tmp_base=/tmp; else tmp_base=${TMPDIR:-/tmp}; fi
tmp="$(mktemp -d "$tmp_base/ringfence-fleet.XXXXXX")"
# The postgres user must be able to walk into its directory below this one.
chmod 711 "$tmp"
logs=$tmp/logs
mkdir -p "$logs" "$tmp/redis" "$tmp/pg" "$tmp/node1" "$tmp/node2"

# name -> pid, in start order; stopped in reverse order.
names=()
declare -A pids=()

# Own sessions: a Ctrl-C in the terminal reaches only this script, which then stops the fleet
# in order (nodes drain first, while the stores still answer).
spawn() { # NAME LOGFILE CMD...
    local name=$1 log=$2
    shift 2
    if command -v setsid >/dev/null 2>&1; then
        setsid "$@" >>"$log" 2>&1 </dev/null &
    else
        "$@" >>"$log" 2>&1 </dev/null &
    fi
    pids[$name]=$!
    names+=("$name")
}

alive() {
    local pid=${pids[$1]:-}
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null
}

stop_one() { # NAME SIGNAL
    local pid=${pids[$1]:-}
    [[ -n $pid ]] && kill -s "$2" "$pid" 2>/dev/null || true
}

wait_gone() { # SECONDS NAME...
    local deadline=$((SECONDS + $1)) name
    shift
    for name in "$@"; do
        while alive "$name" && ((SECONDS < deadline)); do sleep 0.1; done
    done
}

cleaned=false
cleanup() {
    $cleaned && return
    cleaned=true
    trap - INT TERM
    say "stopping the fleet"
    # Nodes first: SIGTERM turns /readyz to 503 and lets requests in flight finish.
    stop_one node1 TERM
    stop_one node2 TERM
    wait_gone 15 node1 node2
    stop_one haproxy TERM
    stop_one postgres INT # fast shutdown: open connections are closed
    stop_one redis TERM   # flushes the AOF
    wait_gone 10 haproxy postgres redis
    local name
    for name in "${names[@]}"; do
        if alive "$name"; then
            say "$name did not stop in time; killing it"
            stop_one "$name" KILL
        fi
    done
    wait 2>/dev/null || true
    if [[ ${FLEET_KEEP:-} == 1 ]]; then
        say "kept $tmp (logs in $logs)"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail_start() { # NAME WHAT
    say "$1 $2; last lines of $logs/$1.log:"
    tail -n 30 "$logs/$1.log" >&2 || true
    exit 1
}

wait_for() { # NAME SECONDS CHECK...
    local name=$1 limit=$2 deadline=$((SECONDS + $2))
    shift 2
    until "$@"; do
        alive "$name" || fail_start "$name" "exited during startup"
        ((SECONDS < deadline)) || fail_start "$name" "was not ready after $limit s"
        sleep 0.2
    done
}

http_status() { # URL -> prints the status code, or 000
    if command -v curl >/dev/null 2>&1; then
        curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true
    else
        local rest=${1#http://} hostport path
        hostport=${rest%%/*}
        path=/${rest#*/}
        (
            exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}" || exit 0
            printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$path" "$hostport" >&3
            IFS=' ' read -r -t 2 _ code _ <&3 && printf '%s' "$code"
        ) 2>/dev/null || true
    fi
}
ready() { [[ "$(http_status "$1")" == 200 ]]; }

say "temporary directory: $tmp"

# Redis: append-only with fsync on every write, so a restarted Redis keeps keys and sessions.
spawn redis "$logs/redis.log" redis-server --port "$redis_port" --bind 127.0.0.1 \
    --protected-mode no --save "" --appendonly yes --appendfsync always --dir "$tmp/redis" \
    --daemonize no
redis_ping() { [[ "$(redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null)" == PONG ]]; }
wait_for redis 10 redis_ping
say "redis ready on 127.0.0.1:$redis_port"

# PostgreSQL: trust authentication on loopback only, superuser and database `ringfence`.
if ((${#as_pg[@]})); then chown postgres: "$tmp/pg"; fi
if ! (cd "$tmp/pg" && "${as_pg[@]}" env LC_ALL=C "$pg_bin/initdb" -D "$tmp/pg/data" -A trust \
    -U ringfence --no-sync -E UTF8 --locale=C) >"$logs/initdb.log" 2>&1; then
    say "initdb failed; last lines of $logs/initdb.log:"
    tail -n 30 "$logs/initdb.log" >&2
    exit 1
fi
spawn postgres "$logs/postgres.log" "${as_pg[@]}" env LC_ALL=C "$pg_bin/postgres" \
    -D "$tmp/pg/data" -p "$pg_port" -k "$tmp/pg" -c listen_addresses=127.0.0.1
pg_ready() { "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" -U ringfence -d postgres -t 1; }
wait_for postgres 30 pg_ready
"$pg_bin/psql" -X -q -h 127.0.0.1 -p "$pg_port" -U ringfence -d postgres \
    -c 'CREATE DATABASE ringfence' >>"$logs/postgres.log" 2>&1 ||
    fail_start postgres "could not create the database ringfence"
say "postgresql ready on 127.0.0.1:$pg_port"

# The nodes: same Redis and database, their own data dir; HAProxy on 127.0.0.1 is the only
# proxy whose X-Forwarded-For they believe.
start_node() { # NAME PORT
    spawn "$1" "$logs/$1.log" "$binary" serve --listen "127.0.0.1:$2" --node-name "$1" \
        --redis "redis://127.0.0.1:$redis_port/" \
        --database "postgres://ringfence@127.0.0.1:$pg_port/ringfence" \
        --data-dir "$tmp/$1" --trusted-proxy 127.0.0.1/32
}
start_node node1 "$node1_port"
start_node node2 "$node2_port"
node1_ready() { ready "http://127.0.0.1:$node1_port/readyz"; }
node2_ready() { ready "http://127.0.0.1:$node2_port/readyz"; }
wait_for node1 60 node1_ready
wait_for node2 60 node2_ready
say "nodes ready on 127.0.0.1:$node1_port and 127.0.0.1:$node2_port"

# HAProxy: deploy/haproxy.cfg with this run's ports (`t` stops at the first match per line, so
# one replacement never feeds the next).
sed -e "s/127\.0\.0\.1:8080\b/127.0.0.1:$fleet_port/;t" \
    -e "s/127\.0\.0\.1:8081\b/127.0.0.1:$node1_port/;t" \
    -e "s/127\.0\.0\.1:8082\b/127.0.0.1:$node2_port/" \
    deploy/haproxy.cfg >"$tmp/haproxy.cfg"
haproxy -c -q -f "$tmp/haproxy.cfg" >"$logs/haproxy.log" 2>&1 ||
    fail_start haproxy "rejected its configuration $tmp/haproxy.cfg"
spawn haproxy "$logs/haproxy.log" haproxy -db -f "$tmp/haproxy.cfg"
balancer_ready() { ready "http://127.0.0.1:$fleet_port/readyz"; }
wait_for haproxy 30 balancer_ready

echo "ringfence fleet ready: http://127.0.0.1:$fleet_port"
say "logs: $logs/{redis,postgres,node1,node2,haproxy}.log"
say "Ctrl-C stops everything and removes $tmp"

# Stay in the foreground. A node that dies is left dead (kill one to watch the other take over);
# the short sleeps let the INT/TERM traps run at once.
while :; do
    sleep 1 &
    wait $! || true
done
