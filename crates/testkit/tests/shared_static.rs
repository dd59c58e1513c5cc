//! One server shared by several tests through a `static`: its `Drop` never runs, the
//! parent-death signal stops it when the test binary exits.

use std::sync::OnceLock;

use ringfence_testkit::{PostgresServer, RedisServer};

fn redis() -> &'static RedisServer {
    static REDIS: OnceLock<RedisServer> = OnceLock::new();
    REDIS.get_or_init(|| RedisServer::start().unwrap())
}

fn postgres() -> &'static PostgresServer {
    static PG: OnceLock<PostgresServer> = OnceLock::new();
    PG.get_or_init(|| PostgresServer::start().unwrap())
}

#[test]
fn first_user_of_the_shared_servers() {
    redis().redis_cli(&["SET", "shared", "1"]).unwrap();
    let url = postgres().fresh_database().unwrap();
    assert!(url.starts_with(&postgres().database_url("t_")));
}

#[test]
fn second_user_of_the_shared_servers() {
    // Runs on another test thread; the servers must survive the first test's thread ending.
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(redis().redis_cli(&["PING"]).unwrap(), "PONG");
    assert_eq!(postgres().psql("select 2").unwrap(), "2");
    postgres().fresh_database().unwrap();
}
