//! Walking every key of a prefix, on one server or on every master of a cluster: what the admin
//! listings ([`crate::SessionStore::find`], [`crate::SessionStore::list_all`]) need now that no
//! global per-session index exists.

use async_trait::async_trait;
use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, RedisResult, Value};

/// One server whose keys a `SCAN` walks: the connection's only server, or one master of a
/// cluster (named by a slot it owns, see [`KeyScan`] for [`ClusterConnection`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanTarget {
    /// `None`: the server the connection talks to. `Some(slot)`: the master owning `slot`.
    slot: Option<u16>,
}

impl ScanTarget {
    /// The one server of a non-cluster connection.
    pub const SINGLE: ScanTarget = ScanTarget { slot: None };

    /// The cluster master that owns `slot`.
    pub fn master_of(slot: u16) -> Self {
        Self { slot: Some(slot) }
    }

    /// The slot that names the master, if this is a cluster target.
    pub fn slot(&self) -> Option<u16> {
        self.slot
    }
}

/// A connection through which every key can be reached by `SCAN`.
///
/// `SCAN` is not a keyed command: on a single server it sees everything, on a Redis Cluster only
/// the keys of the node it reaches. The admin listings therefore ask the connection for its
/// [`ScanTarget`]s and walk each one's cursor to the end. Implemented for the connections the
/// store is used with; another connection type implements it the same way (one target for a
/// single server).
#[async_trait]
pub trait KeyScan: ConnectionLike + Clone + Send + Sync + 'static {
    /// The servers that together hold every key, each once.
    async fn scan_targets(&mut self) -> RedisResult<Vec<ScanTarget>>;

    /// Sends `cmd` (a `SCAN`) to `target` and returns its reply.
    async fn query_target(&mut self, target: &ScanTarget, cmd: &Cmd) -> RedisResult<Value>;
}

/// A connection to one server: that server holds every key.
macro_rules! single_server_key_scan {
    ($($conn:ty),*) => {$(
        #[async_trait]
        impl KeyScan for $conn {
            async fn scan_targets(&mut self) -> RedisResult<Vec<ScanTarget>> {
                Ok(vec![ScanTarget::SINGLE])
            }

            async fn query_target(&mut self, _target: &ScanTarget, cmd: &Cmd) -> RedisResult<Value> {
                cmd.query_async(self).await
            }
        }
    )*};
}

single_server_key_scan!(ConnectionManager, MultiplexedConnection);

/// On a cluster the targets are the masters in `CLUSTER SLOTS`, each named by the first slot it
/// owns, and a `SCAN` is routed to "the master of that slot" through the client's own slot map.
/// Routing by slot rather than by address keeps working where the client reaches nodes under
/// other names than the ones the cluster announces (an address map for TLS host names) and
/// opens a connection to a master it has not talked to yet. While slots migrate, a key may be
/// seen twice or missed; the listings are admin tools and say so.
#[async_trait]
impl KeyScan for ClusterConnection {
    async fn scan_targets(&mut self) -> RedisResult<Vec<ScanTarget>> {
        let reply: Value = redis::cmd("CLUSTER").arg("SLOTS").query_async(self).await?;
        let masters = masters_from_cluster_slots(&reply);
        if masters.is_empty() {
            // An empty answer would make every listing report "no session" instead of failing.
            return Err(redis::RedisError::from((
                redis::ErrorKind::Parse,
                "CLUSTER SLOTS named no master to scan",
            )));
        }
        Ok(masters.into_iter().map(ScanTarget::master_of).collect())
    }

    async fn query_target(&mut self, target: &ScanTarget, cmd: &Cmd) -> RedisResult<Value> {
        match target.slot {
            Some(slot) => {
                let route = Route::new(slot, SlotAddr::Master);
                self.route_command(
                    cmd.clone(),
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                )
                .await
            }
            None => cmd.query_async(self).await,
        }
    }
}

/// The first slot of each distinct master in a `CLUSTER SLOTS` reply: entries are
/// `[start, end, [host, port, id, …], replicas…]`; a master owning several ranges is listed
/// once (by its id, or host and port when the id is missing). Malformed entries are skipped.
pub(crate) fn masters_from_cluster_slots(reply: &Value) -> Vec<u16> {
    let Value::Array(ranges) = reply else {
        return Vec::new();
    };
    let mut seen: Vec<(Vec<u8>, u16)> = Vec::new();
    for range in ranges {
        let Value::Array(items) = range else { continue };
        let (Some(Value::Int(start)), Some(Value::Array(master))) = (items.first(), items.get(2))
        else {
            continue;
        };
        let Ok(start) = u16::try_from(*start) else {
            continue;
        };
        let name: Vec<u8> = match (master.first(), master.get(1), master.get(2)) {
            (_, _, Some(Value::BulkString(id))) => id.clone(),
            (Some(Value::BulkString(host)), Some(Value::Int(port)), _) => {
                let mut name = host.clone();
                name.extend_from_slice(format!(":{port}").as_bytes());
                name
            }
            _ => continue,
        };
        match seen.iter_mut().find(|(known, _)| *known == name) {
            Some((_, first)) => *first = (*first).min(start),
            None => seen.push((name, start)),
        }
    }
    let mut slots: Vec<u16> = seen.into_iter().map(|(_, slot)| slot).collect();
    slots.sort_unstable();
    slots
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(host: &str, port: i64, id: &str) -> Value {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            Value::Int(port),
            Value::BulkString(id.as_bytes().to_vec()),
        ])
    }

    #[test]
    fn one_slot_per_master() {
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(10923),
                Value::Int(16383),
                node("127.0.0.1", 7002, "c"),
                node("127.0.0.1", 7005, "f"),
            ]),
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node("127.0.0.1", 7000, "a"),
            ]),
            Value::Array(vec![
                Value::Int(5461),
                Value::Int(10922),
                node("127.0.0.1", 7001, "b"),
            ]),
            // A second range of master "a".
            Value::Array(vec![
                Value::Int(16000),
                Value::Int(16001),
                node("127.0.0.1", 7000, "a"),
            ]),
            // Garbage is skipped.
            Value::Int(3),
            Value::Array(vec![Value::Int(1)]),
        ]);
        assert_eq!(masters_from_cluster_slots(&reply), vec![0, 5461, 10923]);
        assert!(masters_from_cluster_slots(&Value::Nil).is_empty());
    }
}
