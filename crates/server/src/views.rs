//! What pages and JSON show of sessions, keys and users.

use chrono::{DateTime, SecondsFormat, Utc};
use ringfence_accounts::User;
use ringfence_keyring::KeyInfo;
use ringfence_sessions::Session;
use serde::Serialize;

/// "just now", "3 minutes ago", "2 days ago".
pub fn ago(now: DateTime<Utc>, then: DateTime<Utc>) -> String {
    let seconds = (now - then).num_seconds().max(0);
    let (n, unit) = match seconds {
        0..=59 => return "just now".to_owned(),
        60..=3599 => (seconds / 60, "minute"),
        3600..=86_399 => (seconds / 3600, "hour"),
        _ => (seconds / 86_400, "day"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// RFC 3339 to the second, UTC: `2026-12-07T00:33:53Z`.
///
/// Written digit by digit: `/api/v1/me` shows four of these per request, and chrono's
/// formatter goes through `core::fmt` for each field. Years outside 0-9999 (which RFC 3339
/// cannot write as four digits) take chrono's way.
pub fn timestamp(t: DateTime<Utc>) -> String {
    use chrono::{Datelike, Timelike};
    let year = t.year();
    if !(0..=9999).contains(&year) {
        return t.to_rfc3339_opts(SecondsFormat::Secs, true);
    }
    let mut out = *b"0000-00-00T00:00:00Z";
    let mut put = |at: usize, width: usize, mut value: u32| {
        for i in (at..at + width).rev() {
            // A digit: `value % 10` is below 10.
            out[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year.unsigned_abs());
    put(5, 2, t.month());
    put(8, 2, t.day());
    put(11, 2, t.hour());
    put(14, 2, t.minute());
    put(17, 2, t.second());
    // Only ASCII digits and separators were written.
    String::from_utf8_lossy(&out).into_owned()
}

/// "22 Nov 2026, 11:42 UTC": for people, on pages.
pub fn human_time(t: DateTime<Utc>) -> String {
    t.format("%-d %b %Y, %H:%M UTC").to_string()
}

/// A user as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserJson {
    /// The user's id (a UUID).
    pub id: String,
    /// The normalized (lower-case) e-mail address.
    pub email: String,
    /// Whether the user may use the admin page and API.
    pub is_admin: bool,
    /// Whether the owner proved they read mail at this address.
    pub email_verified: bool,
    /// The user's second factors (`GET /api/v1/me` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mfa: Option<crate::api_mfa::MfaJson>,
}

impl From<&User> for UserJson {
    fn from(user: &User) -> Self {
        Self {
            id: user.id.clone(),
            email: user.email.clone(),
            is_admin: user.is_admin,
            email_verified: user.email_verified,
            mfa: None,
        }
    }
}

/// A session (one signed-in device) as the API shows it. Times are RFC 3339, UTC.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionJson {
    /// Public session id (a hash of the secret in the cookie).
    pub id: String,
    /// When the user signed in on this device.
    pub created_at: String,
    /// Last activity recorded (updated once a tenth of the idle timeout has passed).
    pub last_seen_at: String,
    /// When the session ends unless used: the earlier of the idle and absolute expiries.
    pub expires_at: String,
    /// When the session ends however active.
    pub absolute_expires_at: String,
    /// Client address at sign-in.
    pub ip: Option<String>,
    /// User-Agent at sign-in.
    pub user_agent: Option<String>,
    /// Device label parsed from the User-Agent ("Firefox on Linux").
    pub device: String,
    /// Node that created the session.
    pub node: String,
    /// Whether this is the session making the request.
    pub current: bool,
}

impl SessionJson {
    pub fn new(session: &Session, current: bool) -> Self {
        Self {
            id: session.id.to_string(),
            created_at: timestamp(session.created_at),
            last_seen_at: timestamp(session.last_seen_at),
            expires_at: timestamp(session.expires_at()),
            absolute_expires_at: timestamp(session.absolute_expires_at),
            ip: session.ip.clone(),
            user_agent: session.user_agent.clone(),
            device: session.device.clone(),
            node: session.node.clone(),
            current,
        }
    }
}

/// A session as the "where you're signed in" page shows it.
pub struct SessionRow {
    pub id: String,
    pub device: String,
    pub ip: String,
    pub user_agent: String,
    pub node: String,
    pub created_at: String,
    pub last_seen_at: String,
    pub created_ago: String,
    pub last_seen_ago: String,
    pub current: bool,
}

impl SessionRow {
    pub fn new(session: &Session, current: bool, now: DateTime<Utc>) -> Self {
        Self {
            id: session.id.to_string(),
            device: session.device.clone(),
            ip: session
                .ip
                .clone()
                .unwrap_or_else(|| "unknown address".to_owned()),
            user_agent: session.user_agent.clone().unwrap_or_default(),
            node: session.node.clone(),
            created_at: human_time(session.created_at),
            last_seen_at: human_time(session.last_seen_at),
            created_ago: ago(now, session.created_at),
            last_seen_ago: if current {
                "now".to_owned()
            } else {
                ago(now, session.last_seen_at)
            },
            current,
        }
    }
}

/// A key as the admin page shows it.
pub struct KeyRow {
    pub id: String,
    pub status: String,
    pub created_at: String,
    pub activates_at: String,
    pub expires_at: String,
    pub is_default: bool,
}

impl KeyRow {
    pub fn new(key: &KeyInfo, is_default: bool, now: DateTime<Utc>) -> Self {
        Self {
            id: key.id.to_string(),
            status: format!("{:?}", key.status(now)).to_lowercase(),
            created_at: timestamp(key.created_at),
            activates_at: timestamp(key.activates_at),
            expires_at: timestamp(key.expires_at),
            is_default,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn timestamps_match_chronos_rfc3339() {
        let mut t = DateTime::<Utc>::from_timestamp(0, 0).unwrap();
        // Every month and day boundary over several years, leap days included, and odd times.
        for _ in 0..5000 {
            assert_eq!(timestamp(t), t.to_rfc3339_opts(SecondsFormat::Secs, true));
            t += Duration::seconds(86_399 * 7 + 3_601);
        }
        let sub_second = DateTime::<Utc>::from_timestamp(1_796_000_000, 999_999_999).unwrap();
        assert_eq!(timestamp(sub_second), "2026-11-30T00:53:20Z");
        for odd in [
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
            DateTime::<Utc>::from_timestamp(-62_167_219_200, 0).unwrap(),
            DateTime::<Utc>::from_timestamp(253_402_300_799, 0).unwrap(),
            DateTime::<Utc>::from_timestamp(253_402_300_800, 0).unwrap(),
        ] {
            assert_eq!(
                timestamp(odd),
                odd.to_rfc3339_opts(SecondsFormat::Secs, true)
            );
        }
    }

    #[test]
    fn ago_reads_like_a_person_would_say_it() {
        let now = Utc::now();
        assert_eq!(ago(now, now), "just now");
        assert_eq!(ago(now, now - Duration::minutes(1)), "1 minute ago");
        assert_eq!(ago(now, now - Duration::minutes(3)), "3 minutes ago");
        assert_eq!(ago(now, now - Duration::hours(5)), "5 hours ago");
        assert_eq!(ago(now, now - Duration::days(2)), "2 days ago");
        assert_eq!(ago(now, now + Duration::minutes(2)), "just now");
    }
}
