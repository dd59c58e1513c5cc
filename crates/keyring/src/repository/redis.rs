//! Key documents in Redis, shared by every node of a fleet.
//!
//! ```text
//! {prefix}{keyring}:keys   HASH  key id -> key document (JSON)
//! {prefix}{keyring}:rev    STRING the ring revision (absent = 0)
//! ```
//!
//! Both keys carry the hash tag `{keyring}`, so on Redis Cluster they live in one slot and the
//! compare-and-set below stays a single-slot script. Reads and writes are Lua scripts, atomic on
//! the server: two nodes starting together on an empty Redis cannot both add a first key.

use async_trait::async_trait;
use redis::aio::ConnectionLike;
use redis::Script;

use super::{KeyRepository, RawDocument, RepositoryError, Revision, RingSnapshot};
use crate::document::KeyDocument;

const LOAD: &str = r"
local rev = redis.call('GET', KEYS[2])
return {rev or '0', redis.call('HGETALL', KEYS[1])}
";

const COMPARE_AND_WRITE: &str = r"
local rev = tonumber(redis.call('GET', KEYS[2]) or '0')
if rev ~= tonumber(ARGV[1]) then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('SET', KEYS[2], rev + 1)
return 1
";

/// Stores key documents in Redis. Generic over the connection so a single server
/// (`redis::aio::ConnectionManager`) and a cluster connection both fit.
#[derive(Clone)]
pub struct RedisKeyRepository<C> {
    conn: C,
    keys_key: String,
    rev_key: String,
    load: Script,
    cas: Script,
}

impl<C> RedisKeyRepository<C> {
    /// A repository on `conn` whose keys start with `prefix` (the contract's default is
    /// `ringfence:`).
    pub fn new(conn: C, prefix: &str) -> Self {
        Self {
            conn,
            keys_key: format!("{prefix}{{keyring}}:keys"),
            rev_key: format!("{prefix}{{keyring}}:rev"),
            load: Script::new(LOAD),
            cas: Script::new(COMPARE_AND_WRITE),
        }
    }
}

fn unavailable(error: redis::RedisError) -> RepositoryError {
    RepositoryError::Unavailable(error.to_string())
}

fn parse_revision(text: &[u8]) -> Result<Revision, RepositoryError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| RepositoryError::Corrupt("key ring revision is not a number".to_owned()))
}

#[async_trait]
impl<C> KeyRepository for RedisKeyRepository<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    async fn load(&self) -> Result<RingSnapshot, RepositoryError> {
        let mut conn = self.conn.clone();
        let (revision, fields): (Vec<u8>, Vec<(String, Vec<u8>)>) = self
            .load
            .key(&self.keys_key)
            .key(&self.rev_key)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let documents = fields
            .into_iter()
            .map(|(field, bytes)| RawDocument {
                name: format!("{} field {field}", self.keys_key),
                bytes,
            })
            .collect();
        Ok(RingSnapshot {
            revision: parse_revision(&revision)?,
            documents,
        })
    }

    async fn revision(&self) -> Result<Revision, RepositoryError> {
        let mut conn = self.conn.clone();
        let value: Option<Vec<u8>> = redis::cmd("GET")
            .arg(&self.rev_key)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        value.map_or(Ok(0), |v| parse_revision(&v))
    }

    async fn compare_and_write(
        &self,
        expected: Revision,
        documents: &[KeyDocument],
    ) -> Result<bool, RepositoryError> {
        let mut conn = self.conn.clone();
        let mut invocation = self.cas.key(&self.keys_key);
        invocation.key(&self.rev_key).arg(expected);
        for doc in documents {
            invocation.arg(doc.id.to_string()).arg(doc.to_json());
        }
        let written: i64 = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(written == 1)
    }

    fn describe(&self) -> String {
        format!("redis {}", self.keys_key)
    }
}
