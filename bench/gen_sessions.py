#!/usr/bin/env python3
"""Writes synthetic ringfence sessions as Redis protocol for `redis-cli --pipe` (bench/load.sh).

The keys and the record are exactly what crates/sessions/src/redis_store.rs writes (see its
module docs):

    P{u:U}:s:S   string  {"c":..,"l":..,"i":..,"a":..,"p":"ip","u":"UA","d":"device","n":"node"}  PXAT expires
    P{u:U}:idx   zset    member S, score expires; PEXPIREAT = highest score
    Psessions    zset    member U:S, score expires
    Pusers       zset    member U, score = the user's latest expires

U is a UUID v4 (as ringfence-accounts makes them), S 22 characters of base64url. Every session
is alive for the whole benchmark: last seen in the past two minutes, idle timeout 30 minutes,
absolute 12 hours, created up to 6 hours ago.

    gen_sessions.py --count 1000000 --per-user 2 [--prefix ringfence:] [--now-ms MS] [--seed N]
"""

import argparse
import base64
import random
import sys
import time
import uuid

IDLE_MS = 30 * 60 * 1000
ABSOLUTE_MS = 12 * 3600 * 1000
# The same User-Agent as the sessions crate's memory test (70 bytes): figures stay comparable.
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
DEVICE = "Firefox on Linux"
NODE = "node-1"
GLOBAL_BATCH = 1000


def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if not isinstance(a, bytes):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, required=True, help="sessions to write")
    ap.add_argument("--per-user", type=int, default=2, help="sessions per synthetic user")
    ap.add_argument("--prefix", default="ringfence:")
    ap.add_argument("--now-ms", type=int, default=None)
    ap.add_argument("--seed", type=int, default=None, help="for repeatable ids (default: random)")
    a = ap.parse_args()
    if a.count < 0 or a.per_user < 1:
        ap.error("--count must be >= 0 and --per-user >= 1")
    if "{" in a.prefix or "}" in a.prefix:
        ap.error("the prefix must not contain { or }")

    rng = random.Random(a.seed)
    now = a.now_ms if a.now_ms is not None else int(time.time() * 1000)
    prefix = a.prefix.encode()
    sessions_key = prefix + b"sessions"
    users_key = prefix + b"users"
    out = sys.stdout.buffer
    buf = []
    sess_batch, user_batch = [], []

    def flush_globals(force=False):
        if sess_batch and (force or len(sess_batch) >= 2 * GLOBAL_BATCH):
            buf.append(resp(b"ZADD", sessions_key, *sess_batch))
            sess_batch.clear()
        if user_batch and (force or len(user_batch) >= 2 * GLOBAL_BATCH):
            buf.append(resp(b"ZADD", users_key, *user_batch))
            user_batch.clear()

    written = 0
    while written < a.count:
        k = min(a.per_user, a.count - written)
        user = str(uuid.UUID(int=rng.getrandbits(128), version=4)).encode()
        base = prefix + b"{u:" + user + b"}:"
        idx_args = []
        latest = 0
        for _ in range(k):
            sid = base64.urlsafe_b64encode(rng.randbytes(16))[:22]
            created = now - rng.randrange(10 * 60 * 1000, 6 * 3600 * 1000)
            last_seen = now - rng.randrange(0, 2 * 60 * 1000)
            expires = min(last_seen + IDLE_MS, created + ABSOLUTE_MS)
            ip = "203.0.%d.%d" % (rng.randrange(256), rng.randrange(1, 255))
            record = (
                '{"c":%d,"l":%d,"i":%d,"a":%d,"p":"%s","u":"%s","d":"%s","n":"%s"}'
                % (created, last_seen - created, IDLE_MS, ABSOLUTE_MS, ip, USER_AGENT, DEVICE, NODE)
            ).encode()
            buf.append(resp(b"SET", base + b"s:" + sid, record, b"PXAT", expires))
            idx_args += [b"%d" % expires, sid]
            sess_batch += [b"%d" % expires, user + b":" + sid]
            latest = max(latest, expires)
        buf.append(resp(b"ZADD", base + b"idx", *idx_args))
        buf.append(resp(b"PEXPIREAT", base + b"idx", latest))
        user_batch += [b"%d" % latest, user]
        written += k
        flush_globals()
        if len(buf) >= 4096:
            out.write(b"".join(buf))
            buf.clear()
    flush_globals(force=True)
    out.write(b"".join(buf))
    out.flush()


if __name__ == "__main__":
    main()
