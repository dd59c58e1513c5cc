//! Command-line interface, exactly as the contract (`CONTRACT.md`) names it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Shared key ring and server-side sessions for apps that run on more than one node.
#[derive(Debug, Parser)]
#[command(name = "ringfence", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Where state lives. Every subcommand takes these.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Embedded stores (the SQLite file and the key-ring directory) live here.
    #[arg(
        long,
        env = "RINGFENCE_DATA_DIR",
        default_value = "./ringfence-data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// redis:// or rediss:// URL: the key ring and the sessions live in Redis, shared by every node.
    #[arg(long, env = "RINGFENCE_REDIS_URL", global = true)]
    pub redis: Option<String>,
    /// postgres://… or sqlite://…: where user accounts live (default: SQLite in the data dir).
    #[arg(long, env = "RINGFENCE_DATABASE_URL", global = true)]
    pub database: Option<String>,
    /// Every Redis key ringfence writes starts with this.
    #[arg(
        long,
        env = "RINGFENCE_REDIS_PREFIX",
        default_value = "ringfence:",
        global = true
    )]
    pub redis_prefix: String,
    /// Comma-separated redis://host:port seed nodes of a Redis Cluster (instead of --redis).
    #[arg(long, env = "RINGFENCE_REDIS_CLUSTER", global = true)]
    pub redis_cluster: Option<String>,
    /// PEM CA bundle that verifies a rediss:// server.
    #[arg(long, env = "RINGFENCE_REDIS_CA_FILE", global = true)]
    pub redis_ca_file: Option<PathBuf>,
    /// File holding 32 random bytes in base64: key material is stored only encrypted under it.
    #[arg(long, env = "RINGFENCE_MASTER_KEY_FILE", global = true)]
    pub master_key_file: Option<PathBuf>,
    /// A former master key, still accepted for reading during a rotation (repeatable).
    #[arg(
        long = "previous-master-key-file",
        env = "RINGFENCE_PREVIOUS_MASTER_KEY_FILES",
        value_delimiter = ',',
        global = true
    )]
    pub previous_master_key_files: Vec<PathBuf>,
    /// With --redis: answer repeat requests of a session from memory while Redis pushes every
    /// change to this node (RESP3 client-side tracking); `off` reads Redis on every request.
    #[arg(
        long,
        env = "RINGFENCE_SESSION_CACHE",
        default_value = "on",
        value_parser = parse_flag,
        action = clap::ArgAction::Set,
        global = true
    )]
    pub session_cache: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the web server.
    Serve(ServeArgs),
    /// Inspect and manage the key ring.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage user accounts.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Inspect and revoke sessions.
    #[command(subcommand)]
    Sessions(SessionsCommand),
}

/// `ringfence serve` options.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "RINGFENCE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Name of this node (X-Ringfence-Node, sessions' "node"); default: the host name.
    #[arg(long, env = "RINGFENCE_NODE_NAME")]
    pub node_name: Option<String>,
    /// This node never creates keys; it waits (not ready) until a key exists.
    #[arg(long, env = "RINGFENCE_NO_KEY_GENERATION", value_parser = parse_flag, num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    pub no_key_generation: bool,
    /// A session unused this long is over (90s, 30m, 12h, 14d).
    #[arg(long, env = "RINGFENCE_IDLE_TIMEOUT", default_value = "30m", value_parser = parse_duration)]
    pub idle_timeout: chrono::Duration,
    /// A session this old is over, however active.
    #[arg(long, env = "RINGFENCE_ABSOLUTE_TIMEOUT", default_value = "12h", value_parser = parse_duration)]
    pub absolute_timeout: chrono::Duration,
    /// Believe X-Forwarded-For / -Proto only from these peers (CIDR; repeatable).
    #[arg(
        long = "trusted-proxy",
        env = "RINGFENCE_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<String>,
    /// Most concurrent sessions per user; signing in beyond it ends the oldest (default and
    /// ceiling: 1,000).
    #[arg(long, env = "RINGFENCE_MAX_SESSIONS_PER_USER")]
    pub max_sessions_per_user: Option<u32>,
    /// How long a key protects new payloads (at least 7 days).
    #[arg(long, env = "RINGFENCE_KEY_LIFETIME", default_value = "90d", value_parser = parse_duration)]
    pub key_lifetime: chrono::Duration,
}

/// `ringfence keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Every key with id, created, activation, expiration and status.
    List {
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Create a key that activates now.
    New,
    /// Revoke a key (payloads under it never open again), every key with --all, or every key
    /// created before a time with --created-before.
    Revoke {
        /// The key id.
        #[arg(required_unless_present_any = ["all", "created_before"], conflicts_with_all = ["all", "created_before"])]
        id: Option<String>,
        /// Revoke every key; a new one is created at once.
        #[arg(long, conflicts_with = "created_before")]
        all: bool,
        /// Revoke every key created before this time (RFC 3339, e.g. 2026-11-01T00:00:00Z).
        #[arg(long, value_parser = parse_time)]
        created_before: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Re-seal every key under the current master key (a master-key rotation's second step).
    Rewrap,
}

/// `ringfence users …`.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a user; the password is read from standard input.
    Add {
        /// E-mail address.
        email: String,
        /// Make the user an administrator.
        #[arg(long)]
        admin: bool,
    },
    /// List users.
    List,
    /// Grant or withdraw the admin role. The user's sessions end, so the change takes effect at
    /// once, under a new session id at the next sign-in.
    SetAdmin {
        /// E-mail address.
        email: String,
        /// `on` or `off`.
        #[arg(value_parser = parse_flag, action = clap::ArgAction::Set)]
        admin: bool,
    },
}

/// `ringfence sessions …`.
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// List active sessions (of one user with --user).
    List {
        /// Only this user's sessions.
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke one session by id, or every session of a user with --user.
    Revoke {
        /// The session id.
        #[arg(required_unless_present = "user", conflicts_with = "user")]
        id: Option<String>,
        /// Revoke every session of this user.
        #[arg(long)]
        user: Option<String>,
    },
    /// Count active sessions and signed-in users, or one user's active sessions with --user.
    Count {
        /// Count only this user's active sessions.
        #[arg(long)]
        user: Option<String>,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// `90s`, `30m`, `12h`, `14d` (anything humantime reads).
pub fn parse_duration(text: &str) -> Result<chrono::Duration, String> {
    let std = humantime::parse_duration(text.trim())
        .map_err(|e| format!("not a duration ({e}); use e.g. 90s, 30m, 12h, 14d"))?;
    if std.is_zero() {
        return Err("must be longer than zero".to_owned());
    }
    chrono::Duration::from_std(std).map_err(|_| "duration too long".to_owned())
}

/// An RFC 3339 time.
pub fn parse_time(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("not an RFC 3339 time ({e}); use e.g. 2026-11-01T00:00:00Z"))
}

/// `1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off`/empty (for flags that are also variables).
pub fn parse_flag(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        other => Err(format!(
            "expected 1/0, true/false, yes/no or on/off, got {other:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("90s").unwrap(),
            chrono::Duration::seconds(90)
        );
        assert_eq!(
            parse_duration("30m").unwrap(),
            chrono::Duration::minutes(30)
        );
        assert_eq!(parse_duration("14d").unwrap(), chrono::Duration::days(14));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("0s").is_err());
    }

    #[test]
    fn the_session_cache_is_on_by_default_and_turns_off_with_off() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).map(|cli| cli.store.session_cache);
        assert!(parse(&["ringfence", "serve"]).unwrap());
        assert!(!parse(&["ringfence", "serve", "--session-cache", "off"]).unwrap());
        assert!(parse(&["ringfence", "serve", "--session-cache", "on"]).unwrap());
        assert!(parse(&["ringfence", "serve", "--session-cache", "sometimes"]).is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
