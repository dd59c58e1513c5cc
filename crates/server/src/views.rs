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

/// `{id, email}` as the API shows a user.
#[derive(Debug, Serialize)]
pub struct UserJson {
    pub id: String,
    pub email: String,
    pub is_admin: bool,
}

impl From<&User> for UserJson {
    fn from(user: &User) -> Self {
        Self {
            id: user.id.clone(),
            email: user.email.clone(),
            is_admin: user.is_admin,
        }
    }
}

/// A session as the API shows it.
#[derive(Debug, Serialize)]
pub struct SessionJson {
    pub id: String,
    pub created_at: String,
    pub last_seen_at: String,
    pub expires_at: String,
    pub absolute_expires_at: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub device: String,
    pub node: String,
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
