//! `ringfence`: the binary. Thin by design: parse options, open stores, hand over to the
//! libraries (`ringfence-server` for `serve`, the services for the admin subcommands).

mod aspnet;
mod cli;
mod commands;
mod import;
mod limits;
mod wiring;

use std::process::ExitCode;

use clap::Parser;
use ringfence_accounts::PasskeyService;
use ringfence_axum::{PublicUrl, Ringfence, StepUpSettings, TrustedProxies};
use ringfence_keyring::KeyRingConfig;
use ringfence_server::{AppState, ServeOptions, Server};
use ringfence_sessions::SessionConfig;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, ServeArgs, StoreArgs};
use crate::wiring::StartError;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // One line naming the problem, as the contract asks; `--help` has the rest.
            let rendered = e.render().to_string();
            let line = rendered
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("error: invalid arguments");
            eprintln!("{line}");
            return ExitCode::from(2);
        }
    };
    let serving = matches!(cli.command, Command::Serve(_));
    let default_level = if serving { "info" } else { "error" };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), StartError> {
    match cli.command {
        Command::Serve(args) => serve(&cli.store, *args).await,
        Command::Keys(command) => {
            // Only a revocation replaces the default key on the spot; `keys new` makes exactly
            // one key and `keys list` none.
            let generate = matches!(command, cli::KeysCommand::Revoke { .. });
            let services = open_for_admin(&cli.store, generate).await?;
            commands::keys(&services, command).await
        }
        Command::Users(users) => {
            let mut services = open_for_admin(&cli.store, false).await?;
            commands::users(&mut services, &cli.store, users).await
        }
        Command::Sessions(command) => {
            let services = open_for_admin(&cli.store, false).await?;
            commands::sessions(&services, command).await
        }
        // Reads only the .NET key ring it is pointed at: none of ringfence's own stores.
        Command::Aspnet(command) => aspnet::run(command).await,
    }
}

async fn open_for_admin(
    store: &StoreArgs,
    generate_keys: bool,
) -> Result<wiring::Services, StartError> {
    let keyring_config = KeyRingConfig {
        generate_keys,
        ..KeyRingConfig::default()
    };
    wiring::open(store, keyring_config, SessionConfig::default()).await
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

async fn serve(store: &StoreArgs, args: ServeArgs) -> Result<(), StartError> {
    if args.absolute_timeout < args.idle_timeout {
        return Err(StartError(
            "--absolute-timeout must not be shorter than --idle-timeout".to_owned(),
        ));
    }
    let node_name = args.node_name.clone().unwrap_or_else(host_name);
    let trusted = TrustedProxies::parse(&args.trusted_proxies)
        .map_err(|e| StartError(format!("--trusted-proxy: {e}")))?;
    // Before anything else can fail slowly: a signal during start-up then still stops the node.
    let stops = stop_signals()
        .map_err(|e| StartError(format!("cannot install the signal handlers: {e}")))?;
    let options = ServeOptions {
        header_read_timeout: to_std(args.header_read_timeout),
        idle_connection_timeout: to_std(args.idle_connection_timeout),
        max_connections: limits::fit_connection_cap(args.max_connections),
        drain_delay: to_std(args.drain_delay),
        ..ServeOptions::default()
    };
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| StartError(format!("cannot listen on {}: {e}", args.listen)))?;
    let address = listener
        .local_addr()
        .map_err(|e| StartError(format!("cannot read the listening address: {e}")))?;
    let metrics_listener = match &args.metrics_listen {
        Some(metrics_address) => Some(
            tokio::net::TcpListener::bind(metrics_address)
                .await
                .map_err(|e| {
                    StartError(format!(
                        "--metrics-listen: cannot listen on {metrics_address}: {e}"
                    ))
                })?,
        ),
        None => None,
    };
    let public_url_given = args.mail.public_url.is_some();
    let public_url = args
        .mail
        .public_url
        .clone()
        .unwrap_or_else(|| PublicUrl::for_listen_address(address));
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| StartError(format!("cannot install the metrics recorder: {e}")))?;
    let keyring_config = KeyRingConfig {
        generate_keys: !args.no_key_generation,
        key_lifetime: args.key_lifetime,
        ..KeyRingConfig::default()
    };
    let session_config = SessionConfig {
        idle_timeout: args.idle_timeout,
        absolute_timeout: args.absolute_timeout,
        max_sessions_per_user: args.max_sessions_per_user,
        node_name: node_name.clone(),
        ..SessionConfig::default()
    };
    let mut services = wiring::open(store, keyring_config, session_config).await?;
    let letters = wiring::attach_mail(&mut services, store, &args.mail, &public_url)?;
    let refresh = services.keyring.spawn_refresh();
    let ringfence = Ringfence::with_trusted_proxies(
        services.keyring.clone(),
        services.sessions.clone(),
        services.accounts.clone(),
        trusted,
    )
    .with_public_url(public_url.clone())
    .with_step_up(StepUpSettings {
        reauth_window: args.reauth_window,
        require_mfa_for_admins: args.require_mfa_for_admins,
    });
    let passkeys = PasskeyService::new(
        services.accounts.clone(),
        services.passkeys.clone(),
        services.ceremonies.clone(),
        public_url.as_str(),
    )
    .map_err(|e| StartError(e.to_string()))?;
    let state = AppState::new(ringfence, &node_name, Some(metrics)).with_passkeys(passkeys);
    tracing::info!(node = %node_name, keys = %services.keyring.describe_store(), database = services.database.backend(), "ringfence node starting");
    // Said once the stores answered: a node that cannot start says only why (one line).
    if public_url_given {
        tracing::info!(public_url = %public_url, "public URL");
    } else {
        tracing::info!(public_url = %public_url, "public URL not set: using the listen address (set --public-url to where users reach the app)");
    }
    let mut server = Server::new(listener).options(options);
    if let Some(metrics_listener) = metrics_listener {
        if let Ok(metrics_address) = metrics_listener.local_addr() {
            println!(
                "ringfence node {node_name} serves /metrics on http://{metrics_address}/metrics"
            );
        }
        server = server.metrics_listener(metrics_listener);
    }
    println!("ringfence node {node_name} listening on http://{address}");
    let result = server.run(state, stops).await;
    // Requests have finished: let the mails they queued go out (a reset requested just before
    // the signal is still looked up and mailed), within a grace period.
    if tokio::time::timeout(MAIL_SHUTDOWN_GRACE, services.accounts.wait_for_mail_jobs())
        .await
        .is_err()
    {
        tracing::warn!("mail jobs still running at shutdown");
    }
    let undelivered = letters.shutdown(MAIL_SHUTDOWN_GRACE).await;
    if undelivered > 0 {
        tracing::error!(undelivered, "mails left undelivered at shutdown");
    }
    refresh.abort();
    services.database.close().await;
    result.map_err(|e| StartError(format!("server failed: {e}")))?;
    tracing::info!("stopped");
    Ok(())
}

/// How long a stopping node (or an admin command) waits for queued mails to go out.
pub const MAIL_SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

fn to_std(duration: chrono::Duration) -> std::time::Duration {
    // The flags' ranges (cli.rs) keep every value non-negative and small.
    duration.to_std().unwrap_or_default()
}

/// One item per SIGTERM or SIGINT: the first starts the drain, a second skips its delay.
fn stop_signals() -> std::io::Result<std::pin::Pin<Box<dyn futures_util::Stream<Item = ()> + Send>>>
{
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate())?;
    let interrupt = signal(SignalKind::interrupt())?;
    Ok(Box::pin(futures_util::stream::unfold(
        (term, interrupt),
        |(mut term, mut interrupt)| async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = interrupt.recv() => {}
            }
            Some(((), (term, interrupt)))
        },
    )))
}
