//! Real processes for tests: `redis-server` (plain, TLS, or a whole Redis Cluster), PostgreSQL,
//! FerretDB (a MongoDB wire-protocol server: [`MongoServer`]),
//! HAProxy, an SMTP server (`aiosmtpd`: [`SmtpServer`], which reads back what it received) and
//! `ringfence` nodes, each on a free port of `127.0.0.1` with its own temporary directory, plus a
//! throwaway test CA ([`TestPki`]) for TLS. With the `accounts` feature, an in-memory account
//! mailer ([`MailCollector`]) for tests of what the accounts service sends.
//!
//! The API is synchronous (plain `std::process`), so it works from sync tests and from async
//! tests alike; starting a server blocks until it is ready or a bounded wait runs out, and the
//! error then names the server's log file and quotes its end.
//!
//! Everything stops by itself: dropping a handle kills its process and removes its directory,
//! and every child is also killed by the kernel when the test process exits (parent-death
//! signal), so a server kept in a `static` or left behind by an aborted test does not linger.
#![deny(missing_docs)]

mod cluster;
mod haproxy;
#[cfg(feature = "accounts")]
mod mail_collector;
mod mongo;
mod node;
mod postgres;
mod process;
mod redis;
mod smtp;
mod tls;

pub use cluster::{ClusterOptions, RedisCluster};
pub use haproxy::{HaProxy, HaProxyOptions};
#[cfg(feature = "accounts")]
pub use mail_collector::MailCollector;
pub use mongo::{MongoServer, FERRETDB_VERSION};
pub use node::NodeProcess;
pub use postgres::PostgresServer;
pub use process::{free_port, try_free_port};
pub use redis::{RedisOptions, RedisServer};
pub use smtp::{MailPart, ReceivedMail, SmtpServer};
pub use tls::TestPki;
