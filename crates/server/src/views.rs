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

/// RFC 3339 to the second, UTC.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
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
