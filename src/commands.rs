//! The admin subcommands: `keys`, `users`, `sessions`.

use std::io::Read;

use chrono::{Duration, SecondsFormat};
use ringfence_keyring::KeyId;
use ringfence_sessions::{Session, SessionId};
use serde_json::json;

use ringfence_axum::PublicUrl;

use crate::cli::{KeysCommand, SessionsCommand, StoreArgs, UsersArgs, UsersCommand};
use crate::wiring::{self, Services, StartError};

fn ts(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn err(e: impl std::fmt::Display) -> StartError {
    StartError(e.to_string())
}

/// `ringfence keys …`.
pub async fn keys(services: &Services, command: KeysCommand) -> Result<(), StartError> {
    let ring = &services.keyring;
    match command {
        KeysCommand::List { json } => {
            let now = services.clock.now();
            let default = ring.default_key_id();
            let keys = ring.keys();
            if json {
                let list: Vec<_> = keys
                    .iter()
                    .map(|k| {
                        json!({
                            "id": k.id.to_string(),
                            "created_at": ts(k.created_at),
                            "activates_at": ts(k.activates_at),
                            "expires_at": ts(k.expires_at),
                            "revoked": k.revoked_at.is_some(),
                            "revoked_at": k.revoked_at.map(ts),
                            "default": Some(k.id) == default,
                            "status": k.status(now),
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                println!(
                    "{:<38} {:<9} {:<21} {:<21} {:<21}",
                    "ID", "STATUS", "CREATED", "ACTIVATES", "EXPIRES"
                );
                for k in &keys {
                    let status = format!("{:?}", k.status(now)).to_lowercase();
                    let mark = if Some(k.id) == default {
                        " (default)"
                    } else {
                        ""
                    };
                    println!(
                        "{:<38} {:<9} {:<21} {:<21} {:<21}{mark}",
                        k.id.to_string(),
                        status,
                        ts(k.created_at),
                        ts(k.activates_at),
                        ts(k.expires_at)
                    );
                }
            }
            for (name, why) in ring.bad_documents() {
                eprintln!("warning: skipped unreadable key document {name}: {why}");
            }
        }
        KeysCommand::New => {
            let key = ring.create_key().await.map_err(err)?;
            println!("{}", key.id);
        }
        KeysCommand::Revoke { id: Some(id), .. } => {
            let id: KeyId = id.parse().map_err(err)?;
            ring.revoke(id).await.map_err(err)?;
            println!("revoked {id}");
            print_default(ring);
        }
        KeysCommand::Revoke {
            id: None,
            created_before,
            ..
        } => {
            // --all: every key that exists now, i.e. created before a moment after now.
            let before =
                created_before.unwrap_or_else(|| services.clock.now() + Duration::milliseconds(1));
            let count = ring.revoke_created_before(before).await.map_err(err)?;
            println!("revoked {count} keys");
            print_default(ring);
        }
        KeysCommand::Rewrap => {
            let count = ring.rewrap().await.map_err(err)?;
            println!("re-sealed {count} keys");
        }
    }
    Ok(())
}

fn print_default(ring: &ringfence_keyring::KeyRing) {
    match ring.default_key_id() {
        Some(id) => println!("default key {id}"),
        None => println!("no usable key: a node that may generate keys creates one"),
    }
}

/// The first line of standard input: the password for `users add` and `users set-password`.
fn read_password() -> Result<String, StartError> {
    let mut input = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut input)
        .map_err(|e| StartError(format!("cannot read the password from standard input: {e}")))?;
    let password = input.lines().next().unwrap_or("").to_owned();
    if password.is_empty() {
        return Err(StartError("no password on standard input".to_owned()));
    }
    Ok(password)
}

/// Where links point when `--public-url` is not given to an admin command: where `serve` is on
/// its default listen address.
fn admin_public_url(args: &UsersArgs) -> PublicUrl {
    args.mail.public_url.clone().unwrap_or_else(|| {
        PublicUrl::for_listen_address(std::net::SocketAddr::from(([127, 0, 0, 1], 8080)))
    })
}

/// Whether the command mails someone (a notice or a link), so it needs the mail queue.
fn sends_mail(command: &UsersCommand) -> bool {
    matches!(
        command,
        UsersCommand::SetPassword { .. }
            | UsersCommand::ResetPassword {
                print_link: false,
                ..
            }
    )
}

/// `ringfence users …`. The commands that send mail send it as `serve` would (the same flags);
/// they wait for it to be delivered (or written to the outbox) and fail if it was not.
pub async fn users(
    services: &mut Services,
    store: &StoreArgs,
    args: UsersArgs,
) -> Result<(), StartError> {
    let public_url = admin_public_url(&args);
    let letters = if sends_mail(&args.command) {
        Some(wiring::attach_mail(
            services,
            store,
            &args.mail,
            &public_url,
        )?)
    } else {
        services.accounts = services
            .accounts
            .clone()
            .with_mail_settings(wiring::mail_flow_settings(&args.mail)?);
        None
    };
    let result = user_command(services, &public_url, args.command).await;
    if let Some(letters) = letters {
        let undelivered = letters.shutdown(crate::MAIL_SHUTDOWN_GRACE).await;
        if result.is_ok() && undelivered > 0 {
            return Err(StartError(format!(
                "the mail could not be delivered within {}s (is the SMTP server reachable?)",
                crate::MAIL_SHUTDOWN_GRACE.as_secs()
            )));
        }
    }
    result
}

async fn user_command(
    services: &Services,
    public_url: &PublicUrl,
    command: UsersCommand,
) -> Result<(), StartError> {
    let accounts = &services.accounts;
    match command {
        UsersCommand::Add { email, admin } => {
            let password = read_password()?;
            let user = services
                .accounts
                .add_user(&email, &password, admin)
                .await
                .map_err(err)?;
            println!(
                "{} {}{}",
                user.id,
                user.email,
                if user.is_admin { " (admin)" } else { "" }
            );
        }
        UsersCommand::SetAdmin { email, admin } => {
            let user_id = user_id_of(services, &email).await?;
            services
                .accounts
                .set_admin(&user_id, admin)
                .await
                .map_err(err)?;
            // A privilege change never rides on an old session id.
            let ended = services.sessions.end_all(&user_id).await.map_err(err)?;
            println!(
                "{email} is {} an administrator; {ended} sessions ended",
                if admin { "now" } else { "no longer" }
            );
        }
        UsersCommand::ResetMfa { email } => {
            let user = services
                .accounts
                .user_by_email(&email)
                .await
                .map_err(err)?
                .ok_or_else(|| StartError(format!("no user with e-mail {email}")))?;
            let removed = services.accounts.reset_mfa(&user).await.map_err(err)?;
            if removed {
                println!("second factors of {email} removed; they sign in with the password alone until they set one up");
            } else {
                println!("{email} had no second factor");
            }
        }
        UsersCommand::List => {
            println!("{:<36} {:<6} {:<21} EMAIL", "ID", "ADMIN", "CREATED");
            let mut offset = 0;
            loop {
                let page = services.accounts.list(500, offset).await.map_err(err)?;
                for u in &page {
                    println!(
                        "{:<36} {:<6} {:<21} {}",
                        u.id,
                        if u.is_admin { "yes" } else { "no" },
                        ts(u.created_at),
                        u.email
                    );
                }
                if page.len() < 500 {
                    break;
                }
                offset += 500;
            }
        }
        UsersCommand::Disable { email } => {
            let ended = accounts
                .disable(&user_id_of(services, &email).await?)
                .await
                .map_err(err)?;
            println!("{email} is disabled; {ended} sessions ended");
        }
        UsersCommand::Enable { email } => {
            accounts
                .enable(&user_id_of(services, &email).await?)
                .await
                .map_err(err)?;
            println!("{email} is enabled");
        }
        UsersCommand::Delete { email } => {
            let ended = accounts
                .delete(&user_id_of(services, &email).await?)
                .await
                .map_err(err)?;
            println!("{email} is deleted; {ended} sessions ended");
        }
        UsersCommand::SetPassword { email } => {
            let user_id = user_id_of(services, &email).await?;
            let password = read_password()?;
            let ended = accounts
                .set_password(&user_id, &password, None)
                .await
                .map_err(err)?;
            println!("password of {email} set; {ended} sessions ended");
        }
        UsersCommand::Import(args) => crate::import::run(services, args).await?,
        UsersCommand::ResetPassword {
            email,
            print_link: true,
        } => {
            let issued = accounts
                .admin_reset_link(&user_id_of(services, &email).await?)
                .await
                .map_err(err)?;
            let mail = ringfence_accounts::AccountMail::ResetPassword { link: issued };
            let path = mail
                .link_path()
                .ok_or_else(|| StartError("no reset link was made".to_owned()))?;
            println!("{}", public_url.join(&path));
        }
        UsersCommand::ResetPassword {
            email,
            print_link: false,
        } => {
            accounts
                .send_password_reset(&user_id_of(services, &email).await?)
                .await
                .map_err(err)?;
            println!("reset link mailed to {email}");
        }
    }
    Ok(())
}

fn print_sessions(sessions: &[Session], emails: &std::collections::HashMap<String, String>) {
    println!(
        "{:<22} {:<28} {:<20} {:<21} {:<21} {:<10} USER",
        "ID", "DEVICE", "IP", "CREATED", "LAST SEEN", "NODE"
    );
    for s in sessions {
        println!(
            "{:<22} {:<28} {:<20} {:<21} {:<21} {:<10} {}",
            s.id.as_str(),
            s.device,
            s.ip.as_deref().unwrap_or("-"),
            ts(s.created_at),
            ts(s.last_seen_at),
            s.node,
            emails
                .get(&s.user_id)
                .map(String::as_str)
                .unwrap_or(&s.user_id),
        );
    }
}

async fn user_id_of(services: &Services, email: &str) -> Result<String, StartError> {
    services
        .accounts
        .user_by_email(email)
        .await
        .map_err(err)?
        .map(|u| u.id)
        .ok_or_else(|| StartError(format!("no user with e-mail {email}")))
}

/// `ringfence sessions …`.
pub async fn sessions(services: &Services, command: SessionsCommand) -> Result<(), StartError> {
    let manager = &services.sessions;
    match command {
        SessionsCommand::List { user } => {
            let list = match &user {
                Some(email) => manager
                    .list(&user_id_of(services, email).await?)
                    .await
                    .map_err(err)?,
                None => manager.list_all(10_000).await.map_err(err)?,
            };
            let mut emails = std::collections::HashMap::new();
            for s in &list {
                if !emails.contains_key(&s.user_id) {
                    if let Ok(Some(u)) = services.accounts.user(&s.user_id).await {
                        emails.insert(s.user_id.clone(), u.email);
                    }
                }
            }
            print_sessions(&list, &emails);
        }
        SessionsCommand::Revoke { id: Some(id), .. } => {
            let id = SessionId::parse(&id)
                .ok_or_else(|| StartError(format!("not a session id: {id:?}")))?;
            let session = manager
                .find(&id)
                .await
                .map_err(err)?
                .ok_or_else(|| StartError(format!("no active session {id}")))?;
            manager
                .end_by_id(&session.user_id, &id)
                .await
                .map_err(err)?;
            println!("revoked session {id}");
        }
        SessionsCommand::Revoke { id: None, user } => {
            let email = user.unwrap_or_default();
            let count = manager
                .end_all(&user_id_of(services, &email).await?)
                .await
                .map_err(err)?;
            println!("revoked {count} sessions of {email}");
        }
        SessionsCommand::Count {
            user: Some(email),
            json,
        } => {
            let count = manager
                .count_for_user(&user_id_of(services, &email).await?)
                .await
                .map_err(err)?;
            if json {
                println!("{}", json!({"user": email, "active_sessions": count}));
            } else {
                println!("active sessions of {email}: {count}");
            }
        }
        SessionsCommand::Count { user: None, json } => {
            let counts = manager.counts().await.map_err(err)?;
            if json {
                println!(
                    "{}",
                    json!({"active_sessions": counts.active_sessions, "signed_in_users": counts.signed_in_users})
                );
            } else {
                println!("active sessions: {}", counts.active_sessions);
                println!("signed-in users: {}", counts.signed_in_users);
            }
        }
    }
    Ok(())
}
