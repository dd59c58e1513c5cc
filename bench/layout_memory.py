#!/usr/bin/env python3
"""Redis memory per session of the session layout v1 and of the leaner alternatives that led to
layout v2 (docs/benchmarks.md, "Where the bytes go"). These are prototypes written straight to
Redis: the layout crates/sessions writes now (v2, close to user-hash-bin below but keeping the
device label) is measured through the real store by the sessions crate's `memory_per_session`
test and by `fill_redis memory` (crates/sessions/examples/fill_redis.rs) in bench/load.sh. Writes synthetic sessions into an EMPTY scratch Redis
(it runs FLUSHALL between layouts: never point it at a server holding data you need) and prints
bytes per session two ways: the growth of `used_memory`, and `MEMORY USAGE ... SAMPLES 0` summed
over every key.

    redis-server --port 6390 --save '' --appendonly no &
    bench/layout_memory.py --port 6390 [--users 10000]

Layouts (P = "ringfence:", U = user id, S = session id, R = the record):

    v1            layout v1 of crates/sessions: string P{u:U}:s:S = R (JSON, PXAT), zset
                  P{u:U}:idx, and the global zsets Psessions (U:S) and Pusers (U)
    no-globals    v1 without Psessions / Pusers; counts kept instead in two small hashes of
                  per-minute expiry buckets (HINCRBY Pcount:sessions <minute> 1): O(buckets), not
                  O(sessions)
    short-ids     no-globals, with the UUID user id written as 22 characters of base64url in keys
    user-hash     one hash per user, P{u:U}: field S = R, PEXPIREAT = latest expiry; no index zset
                  (the expiry is in R); bucket counters; the hot path is one HGET
    user-hash-bin user-hash with a binary record (times as 6-byte / varint numbers, the IP as 4
                  bytes, no device label: it is derived from the User-Agent when listing) and short
                  user ids
"""

import argparse
import base64
import random
import subprocess
import time
import uuid

IDLE_MS = 30 * 60 * 1000
ABSOLUTE_MS = 12 * 3600 * 1000
# The same User-Agent as the sessions crate's memory test (70 bytes): figures stay comparable.
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
DEVICE = "Firefox on Linux"
NODE = "node-1"

P = b"ringfence:"


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def resp(*args):
    """One command in the Redis protocol, for `redis-cli --pipe`."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if not isinstance(a, bytes):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Redis:
    def __init__(self, port):
        self.port = str(port)

    def cli(self, *args):
        return subprocess.run(["redis-cli", "-p", self.port, *map(str, args)], check=True,
                              capture_output=True, text=True).stdout.strip()

    def pipe(self, data):
        r = subprocess.run(["redis-cli", "-p", self.port, "--pipe"], input=data, check=True,
                           capture_output=True)
        if b"errors: 0" not in r.stdout:
            raise SystemExit(f"redis-cli --pipe: {r.stdout.decode()} {r.stderr.decode()}")

    def used_memory(self):
        for line in self.cli("INFO", "memory").splitlines():
            if line.startswith("used_memory:"):
                return int(line.split(":")[1])
        raise SystemExit("no used_memory in INFO")

    def memory_usage_sum(self):
        keys = subprocess.run(["redis-cli", "-p", self.port, "--scan"], check=True,
                              capture_output=True, text=True).stdout.split()
        script = "".join(f"MEMORY USAGE {key} SAMPLES 0\n" for key in keys)
        out = subprocess.run(["redis-cli", "-p", self.port], input=script, check=True,
                             capture_output=True, text=True).stdout.split()
        return sum(int(x) for x in out)


def sessions_for(rng, now, k):
    for _ in range(k):
        sid = base64.urlsafe_b64encode(rng.randbytes(16))[:22]
        created = now - rng.randrange(10 * 60 * 1000, 6 * 3600 * 1000)
        last_seen = now - rng.randrange(0, 2 * 60 * 1000)
        expires = min(last_seen + IDLE_MS, created + ABSOLUTE_MS)
        ip = (203, 0, rng.randrange(256), rng.randrange(1, 255))
        yield sid, created, last_seen, expires, ip


def json_record(created, last_seen, ip):
    return ('{"c":%d,"l":%d,"i":%d,"a":%d,"p":"%s","u":"%s","d":"%s","n":"%s"}' % (
        created, last_seen - created, IDLE_MS, ABSOLUTE_MS, "%d.%d.%d.%d" % ip, USER_AGENT, DEVICE,
        NODE)).encode()


def bin_record(created, last_seen, ip):
    # version, created (6 bytes), deltas as varints, IPv4 tag + 4 bytes, UA and node length-prefixed.
    ua, node = USER_AGENT.encode(), NODE.encode()
    return (b"\x01" + created.to_bytes(6, "big") + varint(last_seen - created) + varint(IDLE_MS)
            + varint(ABSOLUTE_MS) + b"\x04" + bytes(ip) + varint(len(ua)) + ua + varint(len(node)) + node)


def write(layout, rng, users, per_user, now):
    buf = []
    for _ in range(users):
        u = uuid.UUID(int=rng.getrandbits(128), version=4)
        uid = str(u).encode()
        if layout in ("short-ids", "user-hash-bin"):
            uid = base64.urlsafe_b64encode(u.bytes)[:22]
        base = P + b"{u:" + uid + b"}"
        latest = 0
        idx = []
        for sid, created, last_seen, expires, ip in sessions_for(rng, now, per_user):
            latest = max(latest, expires)
            minute = b"%d" % (expires // 60000)
            if layout in ("v1", "no-globals", "short-ids"):
                buf.append(resp(b"SET", base + b":s:" + sid, json_record(created, last_seen, ip), b"PXAT", expires))
                idx += [b"%d" % expires, sid]
            else:
                rec = bin_record(created, last_seen, ip) if layout == "user-hash-bin" else json_record(created, last_seen, ip)
                buf.append(resp(b"HSET", base, sid, rec))
            if layout == "v1":
                buf.append(resp(b"ZADD", P + b"sessions", expires, uid + b":" + sid))
            else:
                buf.append(resp(b"HINCRBY", P + b"count:sessions", minute, 1))
        if idx:
            buf.append(resp(b"ZADD", base + b":idx", *idx))
            buf.append(resp(b"PEXPIREAT", base + b":idx", latest))
        else:
            buf.append(resp(b"PEXPIREAT", base, latest))
        if layout == "v1":
            buf.append(resp(b"ZADD", P + b"users", latest, uid))
        else:
            buf.append(resp(b"HINCRBY", P + b"count:users", b"%d" % (latest // 60000), 1))
    return b"".join(buf)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--users", type=int, default=10000, help="users per measurement")
    ap.add_argument("--per-user", default="1,2,5", help="sessions per user, comma-separated")
    a = ap.parse_args()
    r = Redis(a.port)
    if int(r.cli("DBSIZE")) != 0:
        raise SystemExit("layout_memory.py: the Redis at that port is not empty; use a scratch server")
    now = int(time.time() * 1000)
    layouts = ["v1", "no-globals", "short-ids", "user-hash", "user-hash-bin"]
    per_user = [int(x) for x in a.per_user.split(",")]
    print(f"bytes per session, {a.users} users per cell; used_memory growth / sum of MEMORY USAGE")
    print(f"{'layout':<15}" + "".join(f"{str(k) + '/user':>16}" for k in per_user))
    for layout in layouts:
        cells = []
        for k in per_user:
            r.cli("FLUSHALL")
            before = r.used_memory()
            r.pipe(write(layout, random.Random(7), a.users, k, now))
            grown = r.used_memory() - before
            n = a.users * k
            cells.append(f"{grown / n:>7.0f} / {r.memory_usage_sum() / n:<6.0f}")
        print(f"{layout:<15}" + "".join(f"{c:>16}" for c in cells))
    r.cli("FLUSHALL")
    print(f"record sizes: JSON {len(json_record(now, now, (203, 0, 113, 7)))} B, binary {len(bin_record(now, now, (203, 0, 113, 7)))} B")


if __name__ == "__main__":
    main()
