//! The binary session record of the Redis layout v2: the value of one field of a user's hash.
//!
//! ```text
//! offset  size  field
//! 0       1     format version, 0x02
//! 1       6     expires_at = min(idle_expires_at, absolute_expires_at): unix ms, unsigned big-endian
//! 7       6     created_at: unix ms, unsigned big-endian
//! 13      1-10  last_seen_at - created_at, ms, zigzag varint
//! …       1-10  idle_expires_at - expires_at, ms, zigzag varint (0 while the idle timeout binds)
//! …       1-10  absolute_expires_at - expires_at, ms, zigzag varint (0 once the absolute one binds)
//! …       1     ip tag: 0 none, 4 IPv4, 6 IPv6, 1 text
//! …       0/4/16/n  the address: 4 or 16 bytes, or (tag 1) a varint length and UTF-8 text
//! …       1-10  user agent: varint (length + 1), 0 when absent; then the UTF-8 bytes
//! …       1-10  device label: varint length, then UTF-8
//! …       1-10  node: varint length, then UTF-8
//! ```
//!
//! Varints are LEB128 (7 bits a byte, low bits first, at most 10 bytes); zigzag maps 0, -1, 1,
//! -2, … to 0, 1, 2, 3, … so deltas of any sign encode. The record ends exactly after the node.
//!
//! `expires_at` and `created_at` sit at fixed offsets so the Lua scripts can read them with one
//! `string.byte` call each (a 6-byte number is exact in Lua's doubles): pruning needs the
//! expiry of every field, the per-user cap the creation time. Six bytes of milliseconds reach the
//! year 10889. An address is kept in binary only when it prints back to exactly the stored text
//! (`203.0.113.7`, `2001:db8::7`); anything else (a zone id, a non-canonical form) stays text, so
//! every record round-trips exactly.
//!
//! The scripts prune any field that does not start with version 2 and a full header, so another
//! record format is a new layout (new keys), not a new version byte under the same keys.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use chrono::{DateTime, Utc};

use crate::session::{from_millis, millis};
use crate::{Session, SessionId, StoreError};

/// The first byte of every record this code writes.
pub(super) const VERSION: u8 = 2;
/// Bytes before the variable part: version, expires_at, created_at.
pub(super) const HEADER_LEN: usize = 13;
/// Largest time a 6-byte field holds.
const MAX_MS: i64 = (1 << 48) - 1;

const IP_NONE: u8 = 0;
const IP_TEXT: u8 = 1;
const IP_V4: u8 = 4;
const IP_V6: u8 = 6;

/// The record of `session` (its user and id are in the key and the field name).
///
/// Fails only for times before 1970 or after the year 10889, which no session the manager makes
/// has; reported as [`StoreError::Corrupt`] (the session cannot be stored) rather than a panic.
pub(super) fn encode(session: &Session) -> Result<Vec<u8>, StoreError> {
    let expires = time_field(session.expires_at())?;
    let created = time_field(session.created_at)?;
    let mut out = Vec::with_capacity(
        HEADER_LEN
            + 12
            + session.ip.as_ref().map_or(0, |ip| ip.len() + 1)
            + session.user_agent.as_ref().map_or(0, String::len)
            + session.device.len()
            + session.node.len()
            + 8,
    );
    out.push(VERSION);
    out.extend_from_slice(&expires.to_be_bytes()[2..]);
    out.extend_from_slice(&created.to_be_bytes()[2..]);
    // The times are within 0..2^48, so the differences fit an i64 comfortably.
    put_signed(&mut out, millis(session.last_seen_at) - created);
    put_signed(&mut out, millis(session.idle_expires_at) - expires);
    put_signed(&mut out, millis(session.absolute_expires_at) - expires);
    match session.ip.as_deref() {
        None => out.push(IP_NONE),
        Some(text) => match text.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) if ip.to_string() == text => {
                out.push(IP_V4);
                out.extend_from_slice(&ip.octets());
            }
            Ok(IpAddr::V6(ip)) if ip.to_string() == text => {
                out.push(IP_V6);
                out.extend_from_slice(&ip.octets());
            }
            _ => {
                out.push(IP_TEXT);
                put_bytes(&mut out, text.as_bytes());
            }
        },
    }
    match session.user_agent.as_deref() {
        None => out.push(0),
        Some(agent) => {
            put_varint(&mut out, agent.len() as u64 + 1);
            out.extend_from_slice(agent.as_bytes());
        }
    }
    put_bytes(&mut out, session.device.as_bytes());
    put_bytes(&mut out, session.node.as_bytes());
    Ok(out)
}

/// The session `raw` (a field of `user_id`'s hash named `id`) holds. Any malformed input is
/// [`StoreError::Corrupt`], never a panic: the bytes come from the network.
pub(super) fn decode(user_id: &str, id: &SessionId, raw: &[u8]) -> Result<Session, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("session record {id}: {what}"));
    let mut r = Reader { raw, pos: 0 };
    if r.byte().map_err(|()| corrupt("empty"))? != VERSION {
        return Err(corrupt("unknown format version"));
    }
    let expires = r.time().map_err(|()| corrupt("truncated header"))?;
    let created = r.time().map_err(|()| corrupt("truncated header"))?;
    let mut delta = || r.signed().map_err(|()| corrupt("malformed time delta"));
    let (seen_delta, idle_delta, absolute_delta) = (delta()?, delta()?, delta()?);
    let ip = match r.byte().map_err(|()| corrupt("truncated address"))? {
        IP_NONE => None,
        IP_V4 => {
            let octets: [u8; 4] = r.array().map_err(|()| corrupt("truncated IPv4 address"))?;
            Some(Ipv4Addr::from(octets).to_string())
        }
        IP_V6 => {
            let octets: [u8; 16] = r.array().map_err(|()| corrupt("truncated IPv6 address"))?;
            Some(Ipv6Addr::from(octets).to_string())
        }
        IP_TEXT => Some(r.text().map_err(|()| corrupt("malformed address"))?),
        _ => return Err(corrupt("unknown address tag")),
    };
    let user_agent = match r.varint().map_err(|()| corrupt("malformed user agent"))? {
        0 => None,
        len => Some(
            r.text_of(len - 1)
                .map_err(|()| corrupt("malformed user agent"))?,
        ),
    };
    let device = r.text().map_err(|()| corrupt("malformed device label"))?;
    let node = r.text().map_err(|()| corrupt("malformed node"))?;
    if r.pos != raw.len() {
        return Err(corrupt("trailing bytes"));
    }

    let time = |ms: Option<i64>| {
        ms.filter(|ms| (0..=MAX_MS).contains(ms))
            .and_then(from_millis)
            .ok_or_else(|| corrupt("time out of range"))
    };
    let idle_expires_at = time(expires.checked_add(idle_delta))?;
    let absolute_expires_at = time(expires.checked_add(absolute_delta))?;
    let session = Session {
        id: id.clone(),
        user_id: user_id.to_owned(),
        created_at: time(Some(created))?,
        last_seen_at: time(created.checked_add(seen_delta))?,
        idle_expires_at,
        absolute_expires_at,
        ip,
        user_agent,
        device,
        node,
    };
    // The scripts prune by the stored expiry; one that disagrees with the times would keep a
    // session alive (or end it) against its own record.
    if millis(session.expires_at()) != expires {
        return Err(corrupt("expiry disagrees with the timeouts"));
    }
    Ok(session)
}

/// `(expires_at, last_seen_at)` in unix ms, read without decoding the rest: what the admin
/// listing needs to pass over records that cannot make its cut. `None` when the record is not
/// readable that far (a full [`decode`] then reports why).
pub(super) fn peek(raw: &[u8]) -> Option<(i64, i64)> {
    if raw.first() != Some(&VERSION) {
        return None;
    }
    let mut r = Reader { raw, pos: 1 };
    let expires = r.time().ok()?;
    let created = r.time().ok()?;
    let last_seen = created.checked_add(r.signed().ok()?)?;
    Some((expires, last_seen))
}

fn time_field(time: DateTime<Utc>) -> Result<i64, StoreError> {
    let ms = millis(time);
    if (0..=MAX_MS).contains(&ms) {
        Ok(ms)
    } else {
        Err(StoreError::Corrupt(format!(
            "session time {time} cannot be stored (before 1970 or after the year 10889)"
        )))
    }
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_signed(out: &mut Vec<u8>, n: i64) {
    put_varint(out, ((n << 1) ^ (n >> 63)) as u64);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A cursor over untrusted bytes: every read checks the length first.
struct Reader<'a> {
    raw: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], ()> {
        let end = self.pos.checked_add(n).ok_or(())?;
        let bytes = self.raw.get(self.pos..end).ok_or(())?;
        self.pos = end;
        Ok(bytes)
    }

    fn byte(&mut self) -> Result<u8, ()> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ()> {
        self.take(N)?.try_into().map_err(|_| ())
    }

    fn time(&mut self) -> Result<i64, ()> {
        let mut wide = [0u8; 8];
        wide[2..].copy_from_slice(self.take(6)?);
        Ok(i64::from_be_bytes(wide))
    }

    fn varint(&mut self) -> Result<u64, ()> {
        let mut n: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            // The tenth byte may only carry the 64th bit.
            if shift == 63 && bits > 1 {
                return Err(());
            }
            n |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(())
    }

    fn signed(&mut self) -> Result<i64, ()> {
        let n = self.varint()?;
        Ok(((n >> 1) as i64) ^ -((n & 1) as i64))
    }

    fn text_of(&mut self, len: u64) -> Result<String, ()> {
        let len = usize::try_from(len).map_err(|_| ())?;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| ())
    }

    fn text(&mut self) -> Result<String, ()> {
        let len = self.varint()?;
        self.text_of(len)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::conformance::sample_session;

    fn at(ms: i64) -> DateTime<Utc> {
        from_millis(ms).unwrap()
    }

    #[test]
    fn round_trips_every_shape() {
        let now = at(1_700_000_000_123);
        let mut cases = Vec::new();
        let full = sample_session("u", now);
        cases.push(full.clone());
        for ip in [
            None,
            Some("203.0.113.195"),
            Some("2001:db8::7"),
            Some("::ffff:192.0.2.1"),
            Some("fe80::1%eth0"),
            Some("2001:DB8::7"),
            Some("010.1.2.3"),
            Some("not an address"),
            Some(""),
        ] {
            let mut s = full.clone();
            s.ip = ip.map(str::to_owned);
            cases.push(s);
        }
        let mut bare = full.clone();
        bare.user_agent = None;
        bare.device = String::new();
        bare.node = "nœud-β".into();
        cases.push(bare);
        let mut empty_agent = full.clone();
        empty_agent.user_agent = Some(String::new());
        cases.push(empty_agent);
        // The absolute timeout binds; odd milliseconds everywhere; last seen before creation.
        let mut late = full.clone();
        late.last_seen_at = now + Duration::milliseconds(11 * 3_600_000 + 7);
        late.idle_expires_at = late.last_seen_at + Duration::minutes(30);
        late.absolute_expires_at = now + Duration::hours(12) - Duration::milliseconds(3);
        cases.push(late);
        let mut odd = full.clone();
        odd.last_seen_at = now - Duration::milliseconds(5);
        odd.idle_expires_at = now - Duration::milliseconds(1);
        odd.absolute_expires_at = now + Duration::days(400);
        cases.push(odd);
        let mut long = full.clone();
        long.user_agent = Some("x".repeat(crate::MAX_USER_AGENT_LEN));
        cases.push(long);

        for session in cases {
            let raw = encode(&session).unwrap();
            assert_eq!(raw[0], VERSION);
            assert_eq!(
                peek(&raw),
                Some((millis(session.expires_at()), millis(session.last_seen_at)))
            );
            let back = decode("u", &session.id, &raw).unwrap();
            assert_eq!(back, session);
        }
    }

    #[test]
    fn typical_record_is_small() {
        let mut s = sample_session("u", at(1_700_000_000_000));
        s.ip = Some("203.0.113.195".into());
        s.node = "node-1".into();
        let raw = encode(&s).unwrap();
        // 13 header + 6 deltas + 5 address + 71 agent + 17 device + 7 node.
        assert_eq!(raw.len(), 119, "{raw:?}");
    }

    #[test]
    fn times_outside_six_bytes_are_refused() {
        let mut s = sample_session("u", at(-1));
        assert!(matches!(encode(&s), Err(StoreError::Corrupt(_))));
        s = sample_session("u", at(MAX_MS));
        assert!(matches!(encode(&s), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn every_truncation_and_garbage_is_corrupt_not_a_panic() {
        let s = sample_session("u", at(1_700_000_000_000));
        let raw = encode(&s).unwrap();
        assert_eq!(peek(&raw[..13]), None);
        assert_eq!(peek(&[]), None);
        for len in 0..raw.len() {
            assert!(
                matches!(decode("u", &s.id, &raw[..len]), Err(StoreError::Corrupt(_))),
                "prefix of {len} bytes"
            );
        }
        let mut longer = raw.clone();
        longer.push(0);
        assert!(matches!(
            decode("u", &s.id, &longer),
            Err(StoreError::Corrupt(_))
        ));
        let mut patched = raw.clone();
        patched[0] = 1;
        assert!(decode("u", &s.id, &patched).is_err(), "version");
        // Neither timeout at the stored expiry: the idle delta (byte 14, 0 here) made 1.
        let mut patched = raw.clone();
        assert_eq!(patched[14], 0);
        patched[14] = 2;
        assert!(decode("u", &s.id, &patched).is_err(), "expiry mismatch");
        for bad in [
            &b"{\"c\":1}"[..],
            &[VERSION, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..],
            // An 11-byte varint.
            &[
                VERSION, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                0xff, 0xff, 0xff, 0xff, 0x01,
            ][..],
            // A huge length.
            &[
                VERSION, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff,
                0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ][..],
        ] {
            assert!(
                matches!(decode("u", &s.id, bad), Err(StoreError::Corrupt(_))),
                "{bad:?}"
            );
        }
        // Invalid UTF-8 in the node.
        let mut patched = raw.clone();
        let last = patched.len() - 1;
        patched[last] = 0xff;
        assert!(decode("u", &s.id, &patched).is_err());
        // Pseudo-random garbage never panics.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for round in 0..20_000 {
            let mut bytes = raw.clone();
            for _ in 0..(1 + round % 4) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let at = (state as usize) % bytes.len();
                bytes[at] = (state >> 32) as u8;
            }
            if round % 3 == 0 {
                bytes.truncate((state as usize >> 8) % (bytes.len() + 1));
            }
            let _ = decode("u", &s.id, &bytes);
        }
    }
}
