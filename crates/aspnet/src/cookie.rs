//! ASP.NET Core authentication cookies: the cookie handler's purpose chain, base64url payloads
//! holding a protected `TicketSerializer` ticket, chunked cookies, and the `ITicketStore`
//! indirection through a Redis `IDistributedCache`.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};

use crate::keys::KeyRing;
use crate::protector::DataProtector;
use crate::ticket::AuthenticationTicket;
use crate::Error;
#[cfg(feature = "redis")]
use crate::{from_ticks, to_ticks};

/// `CookieAuthenticationDefaults.CookiePrefix + scheme`: the default cookie name for `Cookies`.
pub const DEFAULT_COOKIE_NAME: &str = ".AspNetCore.Cookies";
/// The scheme `AddCookie()` registers.
pub const DEFAULT_SCHEME: &str = "Cookies";
/// The purpose the cookie handler's `TicketDataFormat` adds after the application's.
pub const COOKIE_HANDLER_PURPOSE: &str =
    "Microsoft.AspNetCore.Authentication.Cookies.CookieAuthenticationMiddleware";
/// The claim holding the `ITicketStore` key when a `SessionStore` is configured.
pub const SESSION_ID_CLAIM: &str = "Microsoft.AspNetCore.Authentication.Cookies-SessionId";
/// The value of a chunked cookie: the number of `NameC1…NameCN` cookies follows.
const CHUNKS_PREFIX: &str = "chunks-";
/// More chunks than this is not a browser's cookie jar.
const MAX_CHUNKS: usize = 64;

/// The protector of the cookie handler for `scheme` in the application `application_name` (the
/// app's `SetApplicationName`, its first purpose; `None` only for apps without a discriminator).
pub fn cookie_protector(
    ring: Arc<KeyRing>,
    application_name: Option<&str>,
    scheme: &str,
) -> DataProtector {
    let purposes = application_name
        .into_iter()
        .chain([COOKIE_HANDLER_PURPOSE, scheme, "v2"])
        .map(str::to_owned)
        .collect();
    DataProtector::new(ring, purposes)
}

/// The whole value of cookie `name` from a request's cookies (`lookup` gives one cookie's value):
/// the value itself, or for `chunks-N` the concatenation of `nameC1` … `nameCN`, as
/// `ChunkingCookieManager` splits it. `None` when a cookie is missing.
pub fn joined_cookie(name: &str, lookup: impl Fn(&str) -> Option<String>) -> Option<String> {
    let value = lookup(name)?;
    let Some(count) = value.strip_prefix(CHUNKS_PREFIX) else {
        return Some(value);
    };
    let count: usize = count.parse().ok().filter(|&n| n > 0 && n <= MAX_CHUNKS)?;
    (1..=count)
        .map(|i| lookup(&format!("{name}C{i}")))
        .collect::<Option<Vec<_>>>()
        .map(|parts| parts.concat())
}

/// The `name=value` pairs of a `Cookie` request header.
pub fn split_cookie_header(header: &str) -> impl Iterator<Item = (String, String)> + '_ {
    header.split(';').filter_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        Some((name.trim().to_owned(), value.trim().to_owned()))
    })
}

/// Splits a cookie value the way `ChunkingCookieManager` does for chunks of at most `chunk_size`
/// characters: `[(name, "chunks-N"), (nameC1, …), …]`, or the single cookie when it fits.
pub fn chunk_cookie(name: &str, value: &str, chunk_size: usize) -> Vec<(String, String)> {
    if value.len() <= chunk_size || chunk_size == 0 {
        return vec![(name.to_owned(), value.to_owned())];
    }
    // Chunks end on character boundaries (a base64url value is ASCII, so each is exactly
    // `chunk_size` bytes there).
    let mut chunks: Vec<String> = Vec::new();
    let mut current = String::new();
    for c in value.chars() {
        if current.len() + c.len_utf8() > chunk_size && !current.is_empty() {
            chunks.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    chunks.push(current);
    let mut cookies = vec![(name.to_owned(), format!("{CHUNKS_PREFIX}{}", chunks.len()))];
    for (i, chunk) in chunks.iter().enumerate() {
        cookies.push((format!("{name}C{}", i + 1), chunk.clone()));
    }
    cookies
}

/// Opens a cookie value (joined if it was chunked) into its ticket, refusing an expired one.
pub fn read_cookie(
    protector: &DataProtector,
    value: &str,
    now: DateTime<Utc>,
) -> Result<AuthenticationTicket, Error> {
    let payload = URL_SAFE_NO_PAD
        .decode(value.trim().trim_end_matches('='))
        .map_err(|_| Error::NotAPayload("the cookie is not base64url"))?;
    let ticket = AuthenticationTicket::from_bytes(&protector.unprotect(&payload)?)?;
    if let Some(expires) = ticket.expires() {
        if expires < now {
            return Err(Error::TicketExpired(expires));
        }
    }
    Ok(ticket)
}

/// The cookie value .NET's cookie handler would set for `ticket`.
pub fn write_cookie(
    protector: &DataProtector,
    ticket: &AuthenticationTicket,
    now: DateTime<Utc>,
) -> Result<String, Error> {
    Ok(URL_SAFE_NO_PAD.encode(protector.protect(&ticket.to_bytes(), now)?))
}

/// The `ITicketStore` key of a cookie ticket that holds only a session key.
pub fn session_key(ticket: &AuthenticationTicket) -> Option<&str> {
    ticket.claim(SESSION_ID_CLAIM)
}

/// Reads the ticket an `ITicketStore` over Redis `IDistributedCache` keeps under `key`: a hash
/// with `data` (the `TicketSerializer` bytes), `absexp` (absolute expiry, UTC ticks, -1 for none)
/// and `sldexp` (sliding window, ticks, -1 for none; Redis's TTL enforces it). Refuses an expired
/// or missing ticket. (Cargo feature `redis`.)
#[cfg(feature = "redis")]
pub async fn read_stored_ticket(
    redis_url: &str,
    key: &str,
    now: DateTime<Utc>,
) -> Result<AuthenticationTicket, Error> {
    let client =
        redis::Client::open(redis_url).map_err(|e| Error::TicketStoreUnavailable(e.to_string()))?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| Error::TicketStoreUnavailable(e.to_string()))?;
    read_stored_ticket_with(&mut conn, key, now).await
}

/// [`read_stored_ticket`] over a connection the caller keeps (a server's connection manager).
#[cfg(feature = "redis")]
pub async fn read_stored_ticket_with<C: redis::aio::ConnectionLike>(
    conn: &mut C,
    key: &str,
    now: DateTime<Utc>,
) -> Result<AuthenticationTicket, Error> {
    let (data, absexp): (Option<Vec<u8>>, Option<String>) = redis::cmd("HMGET")
        .arg(key)
        .arg("data")
        .arg("absexp")
        .query_async(conn)
        .await
        .map_err(|e| Error::TicketStoreUnavailable(e.to_string()))?;
    let data = data.ok_or_else(|| {
        Error::TicketStore(format!("no ticket under {key:?} (expired or signed out)"))
    })?;
    if let Some(absexp) = absexp {
        let ticks: i64 = absexp
            .parse()
            .map_err(|_| Error::TicketStore(format!("absexp {absexp:?} is not a tick count")))?;
        if ticks != -1 && ticks <= to_ticks(now) {
            let at = from_ticks(ticks).unwrap_or(DateTime::<Utc>::MIN_UTC);
            return Err(Error::TicketExpired(at));
        }
    }
    let ticket = AuthenticationTicket::from_bytes(&data)?;
    if let Some(expires) = ticket.expires() {
        if expires < now {
            return Err(Error::TicketExpired(expires));
        }
    }
    Ok(ticket)
}
