//! `ringfence aspnet …`: open and make .NET Data Protection payloads and read ASP.NET Core
//! authentication cookies, against the key ring the .NET apps persist.

use std::sync::Arc;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::Utc;
use ringfence_aspnet::{cookie, AuthenticationTicket, DataProtector, KeyRing, KeySource};
use serde_json::json;

use crate::cli::{AspnetCommand, AspnetKeysArgs};
use crate::wiring::StartError;

/// Runs one `aspnet` subcommand, printing its result on stdout.
pub async fn run(command: AspnetCommand) -> Result<(), StartError> {
    let now = Utc::now();
    match command {
        AspnetCommand::Unprotect {
            keys,
            purposes,
            payload,
        } => {
            let protector = DataProtector::new(load(&keys).await?, purposes);
            let bytes = decode_base64url(&payload)?;
            let plaintext = protector.unprotect(&bytes).map_err(fail)?;
            println!("{}", STANDARD.encode(plaintext));
        }
        AspnetCommand::Protect {
            keys,
            purposes,
            plaintext,
        } => {
            let plaintext = STANDARD
                .decode(plaintext.trim())
                .map_err(|_| StartError("PLAINTEXT_BASE64 is not base64".into()))?;
            let protector = DataProtector::new(load(&keys).await?, purposes);
            let payload = protector.protect(&plaintext, now).map_err(fail)?;
            println!("{}", URL_SAFE_NO_PAD.encode(payload));
        }
        AspnetCommand::Cookie {
            keys,
            application_name,
            scheme,
            ticket_redis,
            ticket_redis_prefix,
            cookie_value,
        } => {
            let protector =
                cookie::cookie_protector(load(&keys).await?, application_name.as_deref(), &scheme);
            let mut ticket = cookie::read_cookie(&protector, &cookie_value, now).map_err(fail)?;
            if let Some(session_key) = cookie::session_key(&ticket).map(str::to_owned) {
                let Some(url) = ticket_redis else {
                    return Err(StartError(
                        "the cookie holds only an ITicketStore session key: give --ticket-redis"
                            .into(),
                    ));
                };
                let key = format!("{ticket_redis_prefix}{session_key}");
                ticket = cookie::read_stored_ticket(&url, &key, now)
                    .await
                    .map_err(fail)?;
            }
            println!("{}", ticket_json(&ticket));
        }
    }
    Ok(())
}

async fn load(keys: &AspnetKeysArgs) -> Result<Arc<KeyRing>, StartError> {
    let source = match (&keys.keys_dir, &keys.keys_redis) {
        (Some(dir), _) => KeySource::Dir(dir.clone()),
        (None, Some(url)) => KeySource::Redis {
            url: url.clone(),
            list: keys.keys_redis_key.clone(),
        },
        (None, None) => return Err(StartError("give --keys-dir or --keys-redis".into())),
    };
    source.load().await.map(Arc::new).map_err(fail)
}

fn decode_base64url(text: &str) -> Result<Vec<u8>, StartError> {
    URL_SAFE_NO_PAD
        .decode(text.trim().trim_end_matches('='))
        .map_err(|_| StartError("PAYLOAD is not base64url".into()))
}

fn fail(e: ringfence_aspnet::Error) -> StartError {
    StartError(e.to_string())
}

/// `{scheme, claims:[{type, value}], properties:{issued, expires, persistent, items}}`.
fn ticket_json(ticket: &AuthenticationTicket) -> serde_json::Value {
    let items: serde_json::Map<String, serde_json::Value> = ticket
        .properties
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    json!({
        "scheme": ticket.scheme,
        "claims": ticket.claims().collect::<Vec<_>>(),
        "properties": {
            "issued": ticket.issued().map(|t| t.to_rfc3339()),
            "expires": ticket.expires().map(|t| t.to_rfc3339()),
            "persistent": ticket.is_persistent(),
            "items": items,
        },
    })
}
