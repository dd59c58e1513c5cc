//! Command-line interface, exactly as the contract (`CONTRACT.md`) names it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use ringfence_axum::PublicUrl;

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
    /// postgres://…, mongodb://… (with --redis) or sqlite://…: where user accounts live (default:
    /// SQLite in the data dir). Without --redis, a postgres:// database also holds the key ring,
    /// the sessions, the sign-in attempts and the mail links, so nodes on the same database form
    /// a fleet.
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
    Serve(Box<ServeArgs>),
    /// Inspect and manage the key ring.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage user accounts.
    Users(UsersArgs),
    /// Inspect and revoke sessions.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Read and write what ASP.NET Core apps share: Data Protection payloads and auth cookies.
    #[command(subcommand)]
    Aspnet(AspnetCommand),
}

/// Where a .NET Data Protection key ring lives (exactly one of the two).
#[derive(Debug, Clone, Args)]
pub struct AspnetKeysArgs {
    /// The directory `PersistKeysToFileSystem` writes key-*.xml files into.
    #[arg(
        long,
        required_unless_present = "keys_redis",
        conflicts_with = "keys_redis"
    )]
    pub keys_dir: Option<PathBuf>,
    /// redis:// URL of the Redis `PersistKeysToStackExchangeRedis` writes to.
    #[arg(long)]
    pub keys_redis: Option<String>,
    /// The Redis list holding the key XML.
    #[arg(long, default_value = ringfence_aspnet::DEFAULT_REDIS_KEY)]
    pub keys_redis_key: String,
}

/// `ringfence aspnet …`.
#[derive(Debug, Subcommand)]
pub enum AspnetCommand {
    /// Print, base64-encoded, the plaintext of a payload .NET's IDataProtector.Protect made.
    Unprotect {
        #[command(flatten)]
        keys: AspnetKeysArgs,
        /// The purpose chain, the application discriminator first (repeat in order).
        #[arg(long = "purpose", required = true)]
        purposes: Vec<String>,
        /// The payload, base64url as in cookies and tokens.
        payload: String,
    },
    /// Print a payload (base64url) that .NET's Unprotect opens, under the ring's default key.
    Protect {
        #[command(flatten)]
        keys: AspnetKeysArgs,
        /// The purpose chain, the application discriminator first (repeat in order).
        #[arg(long = "purpose", required = true)]
        purposes: Vec<String>,
        /// The plaintext, base64-encoded.
        plaintext: String,
    },
    /// Print as JSON the authentication ticket inside a .NET authentication cookie.
    Cookie {
        #[command(flatten)]
        keys: AspnetKeysArgs,
        /// The app's SetApplicationName (its first purpose).
        #[arg(long)]
        application_name: Option<String>,
        /// The authentication scheme of the cookie handler.
        #[arg(long, default_value = "Cookies")]
        scheme: String,
        /// redis:// URL of the IDistributedCache an ITicketStore keeps tickets in.
        #[arg(long)]
        ticket_redis: Option<String>,
        /// The cache's InstanceName, before every ticket key.
        #[arg(long, default_value = "")]
        ticket_redis_prefix: String,
        /// The cookie's value (a chunked cookie's chunks joined).
        cookie_value: String,
    },
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
    /// A session unused this long is over (90s, 30m, 12h, 14d; 1s to 366d).
    #[arg(long, env = "RINGFENCE_IDLE_TIMEOUT", default_value = "30m", value_parser = |t: &str| SESSION_TIMEOUT.parse(t))]
    pub idle_timeout: chrono::Duration,
    /// A session this old is over, however active (1s to 366d, not shorter than --idle-timeout).
    #[arg(long, env = "RINGFENCE_ABSOLUTE_TIMEOUT", default_value = "12h", value_parser = |t: &str| SESSION_TIMEOUT.parse(t))]
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
    /// How long a key protects new payloads (7d to 3650d).
    #[arg(long, env = "RINGFENCE_KEY_LIFETIME", default_value = "90d", value_parser = |t: &str| KEY_LIFETIME.parse(t))]
    pub key_lifetime: chrono::Duration,
    /// `--public-url` and the mail settings.
    #[command(flatten)]
    pub mail: MailArgs,
    /// On SIGTERM/SIGINT keep accepting and serving this long with /readyz at 503, so the
    /// balancer takes the node out first (0s to 10m; a second signal skips the wait).
    #[arg(long, env = "RINGFENCE_DRAIN_DELAY", default_value = "3s", value_parser = |t: &str| DRAIN_DELAY.parse(t))]
    pub drain_delay: chrono::Duration,
    /// Serve /metrics on this address and no longer on the main one. Without it, /metrics on
    /// the main listener answers only clients connected directly from loopback.
    #[arg(long, env = "RINGFENCE_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// A request's head must arrive in full within this, counted from when the node starts
    /// waiting for it (on a kept-alive connection: from the previous response), so it also ends
    /// idle keep-alive connections (1s to 10m).
    #[arg(long, env = "RINGFENCE_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = |t: &str| CONNECTION_TIMEOUT.parse(t))]
    pub header_read_timeout: chrono::Duration,
    /// A connection on which no byte moves either way for this long is closed (1s to 10m).
    #[arg(long, env = "RINGFENCE_IDLE_CONNECTION_TIMEOUT", default_value = "60s", value_parser = |t: &str| CONNECTION_TIMEOUT.parse(t))]
    pub idle_connection_timeout: chrono::Duration,
    /// Most connections open at once; beyond it new ones wait in the kernel's backlog
    /// (lowered at start to what the open-files limit allows).
    #[arg(long, env = "RINGFENCE_MAX_CONNECTIONS", default_value = "10000", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,
    /// How long after signing in (or POST /api/v1/reauth) a session may do sensitive
    /// operations: TOTP setup and removal, new recovery codes, passkeys, e-mail change
    /// (1s to 24h).
    #[arg(long, env = "RINGFENCE_REAUTH_WINDOW", default_value = "10m", value_parser = |t: &str| REAUTH_WINDOW.parse(t))]
    pub reauth_window: chrono::Duration,
    /// An administrator without a second factor gets 403 mfa_setup_required on admin routes
    /// (and the admin page sends them to set one up).
    #[arg(long, env = "RINGFENCE_REQUIRE_MFA_FOR_ADMINS", value_parser = parse_flag, num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    pub require_mfa_for_admins: bool,
}

/// Where links point and how mail goes: `serve` and the admin commands that send mail take the
/// same flags.
#[derive(Debug, Clone, Args)]
pub struct MailArgs {
    /// Where users reach the app: the base of every link in a mail (absolute http(s) URL, no
    /// query or fragment; never taken from a request's Host). An https:// URL makes every cookie
    /// Secure and adds Strict-Transport-Security. Default: http://localhost:PORT when listening
    /// on loopback, else http:// + the listen address (admin commands: http://localhost:8080).
    #[arg(long, env = "RINGFENCE_PUBLIC_URL", value_parser = parse_public_url, global = true)]
    pub public_url: Option<PublicUrl>,
    /// smtp://\[user:pass@\]host:port (plain; ?tls=required for STARTTLS) or smtps://…. Without
    /// it every mail is written as an .eml file to DATA_DIR/outbox/.
    #[arg(long, env = "RINGFENCE_SMTP_URL", global = true)]
    pub smtp_url: Option<String>,
    /// The From: of every mail (default: ringfence@ + the public URL's host).
    #[arg(long, env = "RINGFENCE_MAIL_FROM", global = true)]
    pub mail_from: Option<String>,
    /// Sign-in with the right password to an unverified address answers 403
    /// email_not_verified (and sends the verification mail again).
    #[arg(long, env = "RINGFENCE_REQUIRE_VERIFIED_EMAIL", value_parser = parse_flag, num_args = 0..=1, default_missing_value = "true", default_value = "false", global = true)]
    pub require_verified_email: bool,
    /// How long a password-reset link works (1m to 30d).
    #[arg(long, env = "RINGFENCE_RESET_TOKEN_LIFETIME", default_value = "1h", value_parser = |t: &str| MAIL_TOKEN_LIFETIME.parse(t), global = true)]
    pub reset_token_lifetime: chrono::Duration,
    /// How long an address-verification or address-change link works (1m to 30d).
    #[arg(long, env = "RINGFENCE_EMAIL_TOKEN_LIFETIME", default_value = "24h", value_parser = |t: &str| MAIL_TOKEN_LIFETIME.parse(t), global = true)]
    pub email_token_lifetime: chrono::Duration,
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

/// `ringfence users …`: the subcommand, and the mail flags (the commands that send mail send it
/// as `serve` would).
#[derive(Debug, Args)]
pub struct UsersArgs {
    /// `--public-url` and the mail settings (accepted after the subcommand too).
    #[command(flatten)]
    pub mail: MailArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: UsersCommand,
}

/// `ringfence users import`: where the ASP.NET Core Identity users are (exactly one source).
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// mongodb://…/DATABASE of an app using AspNetCore.Identity.MongoDB: its documents are read.
    #[arg(
        long,
        value_name = "URL",
        required_unless_present = "aspnet_identity_json",
        conflicts_with = "aspnet_identity_json"
    )]
    pub aspnet_identity: Option<String>,
    /// The collection holding the users (with --aspnet-identity; default: users).
    #[arg(long, conflicts_with = "aspnet_identity_json")]
    pub collection: Option<String>,
    /// A JSON export (an array of rows) of EF Core's AspNetUsers table.
    #[arg(long, value_name = "FILE")]
    pub aspnet_identity_json: Option<PathBuf>,
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
    /// Remove every second factor of a user (TOTP, recovery codes, passkeys): the way back for
    /// a user who lost them all. A notice is mailed.
    ResetMfa {
        /// E-mail address.
        email: String,
    },
    /// Grant or withdraw the admin role. The user's sessions end, so the change takes effect at
    /// once, under a new session id at the next sign-in.
    SetAdmin {
        /// E-mail address.
        email: String,
        /// `on` or `off`.
        #[arg(value_parser = parse_flag, action = clap::ArgAction::Set)]
        admin: bool,
    },
    /// Disable the account: every session of the user ends at once; sign-in with the right
    /// password answers 403 account_disabled.
    Disable {
        /// E-mail address.
        email: String,
    },
    /// Enable a disabled account again.
    Enable {
        /// E-mail address.
        email: String,
    },
    /// Delete the account: the account, its sessions and its factors are gone.
    Delete {
        /// E-mail address.
        email: String,
    },
    /// Set the password (read from standard input); every session of the user ends and a
    /// notice is mailed.
    SetPassword {
        /// E-mail address.
        email: String,
    },
    /// Bring over the users of an ASP.NET Core Identity store, their passwords kept (each
    /// re-hashed with argon2id at its first sign-in). Run again, it imports only what is new.
    Import(ImportArgs),
    /// Mail the user a password-reset link, or print the link instead with --print-link.
    ResetPassword {
        /// E-mail address.
        email: String,
        /// Print the link on standard output instead of mailing it.
        #[arg(long)]
        print_link: bool,
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

/// The range a duration flag accepts, both ends included and named in its error.
///
/// Every duration flag has one: a duration is added to the current time (session expiries, key
/// expiries), and an unbounded one (`100000000y`) overflowed the calendar at start or at every
/// sign-in. The upper ends are far beyond any sensible setting and far below any overflow.
#[derive(Debug, Clone, Copy)]
pub struct DurationRange {
    min: std::time::Duration,
    max: std::time::Duration,
    min_text: &'static str,
    max_text: &'static str,
}

const fn days(n: u64) -> std::time::Duration {
    std::time::Duration::from_secs(n * 86_400)
}

/// `--idle-timeout`, `--absolute-timeout`: 1 second to 366 days.
pub const SESSION_TIMEOUT: DurationRange = DurationRange {
    min: std::time::Duration::from_secs(1),
    max: days(366),
    min_text: "1s",
    max_text: "366d",
};
/// `--key-lifetime`: 7 days (the key ring's minimum) to 3650 days.
pub const KEY_LIFETIME: DurationRange = DurationRange {
    min: days(7),
    max: days(3650),
    min_text: "7d",
    max_text: "3650d",
};
/// `--drain-delay`: 0 to 10 minutes.
pub const DRAIN_DELAY: DurationRange = DurationRange {
    min: std::time::Duration::ZERO,
    max: std::time::Duration::from_secs(600),
    min_text: "0s",
    max_text: "10m",
};
/// `--reset-token-lifetime`, `--email-token-lifetime`: 1 minute to 30 days (what the accounts
/// service accepts: a link in an old mail must stop working some day).
pub const MAIL_TOKEN_LIFETIME: DurationRange = DurationRange {
    min: std::time::Duration::from_secs(60),
    max: days(30),
    min_text: "1m",
    max_text: "30d",
};

/// `--reauth-window`: 1 second to 24 hours.
pub const REAUTH_WINDOW: DurationRange = DurationRange {
    min: std::time::Duration::from_secs(1),
    max: std::time::Duration::from_secs(86_400),
    min_text: "1s",
    max_text: "24h",
};
/// `--header-read-timeout`, `--idle-connection-timeout`: 1 second to 10 minutes.
pub const CONNECTION_TIMEOUT: DurationRange = DurationRange {
    min: std::time::Duration::from_secs(1),
    max: std::time::Duration::from_secs(600),
    min_text: "1s",
    max_text: "10m",
};

impl DurationRange {
    /// Parses `text` (`90s`, `30m`, `12h`, `14d`) and checks it is within the range.
    pub fn parse(&self, text: &str) -> Result<chrono::Duration, String> {
        let std = parse_std_duration(text)?;
        if std < self.min || std > self.max {
            return Err(format!(
                "must be between {} and {}",
                self.min_text, self.max_text
            ));
        }
        chrono::Duration::from_std(std).map_err(|_| "duration too long".to_owned())
    }
}

/// `90s`, `30m`, `12h`, `14d` (anything humantime reads).
fn parse_std_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("not a duration ({e}); use e.g. 90s, 30m, 12h, 14d"))
}

/// `--public-url`: an absolute http(s) URL without query or fragment.
pub fn parse_public_url(text: &str) -> Result<PublicUrl, String> {
    PublicUrl::parse(text.trim()).map_err(|e| e.to_string())
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
            SESSION_TIMEOUT.parse("90s").unwrap(),
            chrono::Duration::seconds(90)
        );
        assert_eq!(
            SESSION_TIMEOUT.parse("30m").unwrap(),
            chrono::Duration::minutes(30)
        );
        assert!(SESSION_TIMEOUT.parse("soon").is_err());
        assert_eq!(
            SESSION_TIMEOUT.parse("14d").unwrap(),
            chrono::Duration::days(14)
        );
        assert_eq!(DRAIN_DELAY.parse("0s").unwrap(), chrono::Duration::zero());
        assert_eq!(
            REAUTH_WINDOW.parse("10m").unwrap(),
            chrono::Duration::minutes(10)
        );
        for (range, text) in [
            (REAUTH_WINDOW, "0s"),
            (REAUTH_WINDOW, "25h"),
            (SESSION_TIMEOUT, "100000000y"),
            (SESSION_TIMEOUT, "367d"),
            (SESSION_TIMEOUT, "0s"),
            (KEY_LIFETIME, "6d"),
            (KEY_LIFETIME, "100000000y"),
            (DRAIN_DELAY, "11m"),
            (CONNECTION_TIMEOUT, "0s"),
            (MAIL_TOKEN_LIFETIME, "59s"),
            (MAIL_TOKEN_LIFETIME, "31d"),
        ] {
            let error = range.parse(text).unwrap_err();
            assert!(error.starts_with("must be between"), "{text}: {error}");
        }
        assert!(KEY_LIFETIME.parse("soon").is_err());
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
