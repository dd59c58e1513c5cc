//! A real redis-server for the store conformance tests, and a connection to it.

use redis::aio::ConnectionManager;
use ringfence_testkit::{RedisOptions, RedisServer};

/// A redis-server without persistence, with `extra_args`.
pub fn redis_server(extra_args: Vec<String>) -> RedisServer {
    RedisServer::start_with(RedisOptions {
        appendonly: false,
        extra_args,
    })
    .unwrap()
}

/// A connection manager for `server`.
pub async fn connect(server: &RedisServer) -> ConnectionManager {
    redis::Client::open(server.url())
        .unwrap()
        .get_connection_manager()
        .await
        .unwrap()
}
