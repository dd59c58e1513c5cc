//! Mail-link tokens in Redis: every node of a fleet redeems every token.
//!
//! # Key layout
//!
//! One string key per token, `P` being the prefix (normally `ringfence:`):
//!
//! | key | value | expiry |
//! |-----|-------|--------|
//! | `Pmailtoken:<purpose>:<sha256 hex of the token>` | JSON `{"u": user id, "e": expiry (unix ms), "b": binding, "n": payload (new address, ceremony state) or null}` | `PX` = expiry − now |
//!
//! `<purpose>` is `reset_password`, `verify_email` or `change_email`. A take is one `GETDEL` on
//! the key of the purpose asked for, so it is atomic (of concurrent takes exactly one gets the
//! value) and a take for another purpose looks at another key and cannot consume the token.
//! Every request touches one key, so the store works unchanged over a Redis Cluster connection.
//! `GETDEL` needs Redis 6.2 or later.
//!
//! Expiry decisions use the caller's `now` (the `e` field); Redis's own expiry only drops keys
//! the nodes already consider expired. A take of an expired token removes it and returns nothing.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::aio::{ConnectionLike, ConnectionManager};
use serde::{Deserialize, Serialize};

use super::{
    from_millis, millis, MailTokenRecord, MailTokenStore, TokenHash, TokenPurpose, TokenStoreError,
};

/// The value stored under a token's key (short names: there may be many).
#[derive(Serialize, Deserialize)]
struct StoredToken {
    u: String,
    e: i64,
    b: String,
    n: Option<String>,
}

/// [`MailTokenStore`] over Redis (see the module docs for the key layout).
#[derive(Clone)]
pub struct RedisMailTokenStore<C = ConnectionManager> {
    conn: C,
    prefix: String,
}

impl<C> std::fmt::Debug for RedisMailTokenStore<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisMailTokenStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl<C> RedisMailTokenStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// A store over any async connection (a `ConnectionManager` or a cluster connection),
    /// keys under `prefix` (normally `ringfence:`).
    pub fn new(conn: C, prefix: impl Into<String>) -> Self {
        Self {
            conn,
            prefix: prefix.into(),
        }
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The Redis key of a token of `purpose`.
    pub fn redis_key(&self, token: &TokenHash, purpose: TokenPurpose) -> String {
        format!(
            "{}mailtoken:{}:{}",
            self.prefix,
            purpose.as_str(),
            token.to_hex()
        )
    }

    /// Reads the value `command` (`GET` or `GETDEL`) returns for the token's key.
    async fn read(
        &self,
        command: &str,
        token: &TokenHash,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<MailTokenRecord>, TokenStoreError> {
        let mut conn = self.conn.clone();
        let value: Option<String> = redis::cmd(command)
            .arg(self.redis_key(token, purpose))
            .query_async(&mut conn)
            .await
            .map_err(map_redis_error)?;
        let Some(value) = value else { return Ok(None) };
        let stored: StoredToken = serde_json::from_str(&value)
            .map_err(|e| TokenStoreError::Corrupt(format!("mail token value: {e}")))?;
        if stored.e <= millis(now) {
            return Ok(None);
        }
        Ok(Some(MailTokenRecord {
            purpose,
            user_id: stored.u,
            expires_at: from_millis(stored.e)?,
            binding: stored.b,
            payload: stored.n,
        }))
    }
}

fn map_redis_error(error: redis::RedisError) -> TokenStoreError {
    match error.kind() {
        redis::ErrorKind::Parse | redis::ErrorKind::UnexpectedReturnType => {
            TokenStoreError::Corrupt(error.to_string())
        }
        // Refused or dropped connections, timeouts, a loading or failing-over server,
        // WRONGTYPE on a key someone else wrote: not usable right now.
        _ => TokenStoreError::Unavailable(error.to_string()),
    }
}

#[async_trait]
impl<C> MailTokenStore for RedisMailTokenStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    async fn insert(
        &self,
        token: &TokenHash,
        record: &MailTokenRecord,
        now: DateTime<Utc>,
    ) -> Result<(), TokenStoreError> {
        let expires_ms = millis(record.expires_at);
        let ttl_ms = expires_ms.saturating_sub(millis(now));
        if ttl_ms <= 0 {
            // Dead on arrival: nothing could ever redeem it.
            return Ok(());
        }
        let value = serde_json::to_string(&StoredToken {
            u: record.user_id.clone(),
            e: expires_ms,
            b: record.binding.clone(),
            n: record.payload.clone(),
        })
        .map_err(|e| TokenStoreError::Corrupt(format!("encoding a mail token: {e}")))?;
        let mut conn = self.conn.clone();
        let () = redis::cmd("SET")
            .arg(self.redis_key(token, record.purpose))
            .arg(value)
            .arg("PX")
            .arg(ttl_ms)
            .query_async(&mut conn)
            .await
            .map_err(map_redis_error)?;
        Ok(())
    }

    async fn find(
        &self,
        token: &TokenHash,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<MailTokenRecord>, TokenStoreError> {
        self.read("GET", token, purpose, now).await
    }

    async fn take(
        &self,
        token: &TokenHash,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<MailTokenRecord>, TokenStoreError> {
        self.read("GETDEL", token, purpose, now).await
    }
}
