//! The harness against the real programs.

use ringfence_testkit::{free_port, PostgresServer, RedisOptions, RedisServer, SmtpServer};

#[test]
fn free_ports_are_distinct_within_a_process() {
    let a = free_port();
    let b = free_port();
    assert_ne!(a, b);
    assert!(std::net::TcpListener::bind(("127.0.0.1", a)).is_ok());
}

#[test]
fn redis_answers_ping_and_restart_keeps_data() {
    let mut redis = RedisServer::start().unwrap();
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{}/", redis.port()));
    assert!(redis.is_running());
    assert_eq!(redis.redis_cli(&["PING"]).unwrap(), "PONG");
    assert_eq!(redis.redis_cli(&["SET", "k", "v"]).unwrap(), "OK");
    let port = redis.port();
    redis.restart().unwrap();
    assert_eq!(redis.port(), port);
    assert!(redis.is_running());
    assert_eq!(redis.redis_cli(&["GET", "k"]).unwrap(), "v");

    redis.stop();
    assert!(!redis.is_running());
    assert!(redis.redis_cli(&["PING"]).is_err() || redis.redis_cli(&["PING"]).unwrap() != "PONG");
    redis.restart().unwrap();
    assert_eq!(redis.redis_cli(&["GET", "k"]).unwrap(), "v");
}

#[test]
fn redis_without_appendonly_and_with_extra_args() {
    let redis = RedisServer::start_with(RedisOptions {
        appendonly: false,
        extra_args: vec!["--maxmemory".into(), "10mb".into()],
    })
    .unwrap();
    assert_eq!(
        redis.redis_cli(&["CONFIG", "GET", "appendonly"]).unwrap(),
        "appendonly\nno"
    );
    assert_eq!(
        redis.redis_cli(&["CONFIG", "GET", "maxmemory"]).unwrap(),
        "maxmemory\n10485760"
    );
}

#[test]
fn redis_with_a_bad_argument_fails_with_the_log() {
    let err = RedisServer::start_with(RedisOptions {
        appendonly: true,
        extra_args: vec!["--no-such-option".into(), "1".into()],
    })
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("redis.log"), "{msg}");
}

#[test]
fn dropping_redis_kills_it() {
    let redis = RedisServer::start().unwrap();
    let port = redis.port();
    let dir = redis.dir().to_path_buf();
    drop(redis);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    assert!(!dir.exists());
}

#[test]
fn postgres_starts_and_hands_out_databases() {
    let mut pg = PostgresServer::start().unwrap();
    assert_eq!(
        pg.url(),
        format!("postgres://ringfence@127.0.0.1:{}/ringfence", pg.port())
    );
    assert_eq!(pg.psql("select 1").unwrap(), "1");
    let a = pg.create_database("alpha").unwrap();
    let b = pg.fresh_database().unwrap();
    let c = pg.fresh_database().unwrap();
    assert_ne!(a, b);
    assert_ne!(b, c);
    assert!(a.ends_with("/alpha"));
    assert!(pg.create_database("bad name; drop").is_err());
    assert!(pg.psql("select * from no_such_table").is_err());

    pg.psql("create table t (x int); insert into t values (42)")
        .unwrap();
    pg.restart().unwrap();
    assert!(pg.is_running());
    assert_eq!(pg.psql("select x from t").unwrap(), "42");

    let dir = pg.dir().to_path_buf();
    drop(pg);
    assert!(!dir.exists());
}

#[test]
fn handles_are_send_and_sync_so_they_can_live_in_statics() {
    fn check<T: Send + Sync>() {}
    check::<RedisServer>();
    check::<PostgresServer>();
    check::<SmtpServer>();
}

#[test]
fn redis_in_cluster_mode_starts() {
    let redis = RedisServer::start_with(RedisOptions {
        appendonly: false,
        extra_args: vec!["--cluster-enabled".into(), "yes".into()],
    })
    .unwrap();
    assert!(redis
        .redis_cli(&["CLUSTER", "INFO"])
        .unwrap()
        .contains("cluster_state"));
    assert!(redis.dir().join("nodes.conf").exists());
}
