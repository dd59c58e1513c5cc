//! The AspNetUser extractor on a real HTTP server: a .NET authentication cookie (plain, chunked,
//! or an ITicketStore reference into a real redis-server) signs the request in.

use std::sync::Arc;

use axum::routing::get;
use axum::{Extension, Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{Duration, Utc};
use ringfence_aspnet::cookie;
#[cfg(feature = "redis")]
use ringfence_aspnet::cookie::SESSION_ID_CLAIM;
use ringfence_aspnet::ticket::{
    format_rfc1123, DEFAULT_NAME_CLAIM_TYPE, EMAIL_CLAIM_TYPE, NAME_IDENTIFIER_CLAIM_TYPE,
};
use ringfence_aspnet::{AuthenticationTicket, Claim, DataProtector, Identity, KeyRing, KeySource};
use ringfence_axum::{AspNetCookieAuth, AspNetUser};
#[cfg(feature = "redis")]
use ringfence_testkit::RedisServer;

fn ring() -> Arc<KeyRing> {
    Arc::new(KeyRing::from_xml(&[key_xml("0f8fad5b-d9cb-469f-a165-70867728950e", 5)]).unwrap())
}

/// A key created and activated `age_days` ago, as .NET writes it.
fn key_xml(id: &str, age_days: i64) -> String {
    let t = (Utc::now() - Duration::days(age_days)).to_rfc3339();
    let e = (Utc::now() + Duration::days(85)).to_rfc3339();
    let master = STANDARD.encode([age_days as u8; 64]);
    format!(
        r#"<key id="{id}" version="1"><creationDate>{t}</creationDate><activationDate>{t}</activationDate><expirationDate>{e}</expirationDate><descriptor deserializerType="Microsoft.AspNetCore.DataProtection.AuthenticatedEncryption.ConfigurationModel.AuthenticatedEncryptorDescriptorDeserializer, Microsoft.AspNetCore.DataProtection"><descriptor><encryption algorithm="AES_256_CBC" /><validation algorithm="HMACSHA256" /><masterKey><value>{master}</value></masterKey></descriptor></descriptor></key>"#
    )
}

fn alice(extra: Vec<Claim>) -> AuthenticationTicket {
    let mut claims = vec![
        Claim::new(NAME_IDENTIFIER_CLAIM_TYPE, "42"),
        Claim::new(DEFAULT_NAME_CLAIM_TYPE, "alice"),
        Claim::new(EMAIL_CLAIM_TYPE, "alice@example.com"),
    ];
    claims.extend(extra);
    AuthenticationTicket {
        scheme: "Cookies".into(),
        identities: vec![Identity::new("Cookies", claims)],
        properties: vec![(
            ".expires".into(),
            format_rfc1123(Utc::now() + Duration::hours(1)),
        )],
    }
}

async fn serve(auth: AspNetCookieAuth) -> String {
    let app = Router::new()
        .route(
            "/me",
            get(|user: AspNetUser| async move { Json((user.id, user.name, user.email)) }),
        )
        .layer(Extension(auth));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/me")
}

async fn get_me(url: &str, cookie_header: Option<&str>) -> (u16, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(header) = cookie_header {
        request = request.header("cookie", header);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn a_dotnet_cookie_signs_the_request_in_and_anything_else_is_401() {
    let protector = cookie::cookie_protector(ring(), Some("shop"), "Cookies");
    let url = serve(AspNetCookieAuth::new(protector.clone())).await;
    let value = cookie::write_cookie(&protector, &alice(vec![]), Utc::now()).unwrap();
    let (status, body) = get_me(&url, Some(&format!("other=1; .AspNetCore.Cookies={value}"))).await;
    assert_eq!(
        (status, body.as_str()),
        (200, r#"["42","alice","alice@example.com"]"#)
    );

    // Chunked, as ChunkingCookieManager sends a big ticket.
    let big = cookie::write_cookie(
        &protector,
        &alice(vec![Claim::new("blob", &"x".repeat(6000))]),
        Utc::now(),
    )
    .unwrap();
    let header = cookie::chunk_cookie(".AspNetCore.Cookies", &big, 4050)
        .into_iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    assert_eq!(get_me(&url, Some(&header)).await.0, 200);

    // No cookie, garbage, another app's cookie: 401.
    let other_app = DataProtector::new(
        ring(),
        vec![
            "blog".into(),
            cookie::COOKIE_HANDLER_PURPOSE.into(),
            "Cookies".into(),
            "v2".into(),
        ],
    );
    let foreign = cookie::write_cookie(&other_app, &alice(vec![]), Utc::now()).unwrap();
    for header in [
        None,
        Some(".AspNetCore.Cookies=garbage".to_string()),
        Some(format!(".AspNetCore.Cookies={foreign}")),
    ] {
        let (status, body) = get_me(&url, header.as_deref()).await;
        assert_eq!(status, 401, "{header:?}: {body}");
    }
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn a_ticket_store_cookie_is_resolved_in_redis() {
    let server = RedisServer::start().unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let manager = redis::aio::ConnectionManager::new(client.clone())
        .await
        .unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let absexp = ringfence_aspnet::to_ticks(Utc::now() + Duration::hours(1));
    let _: () = redis::cmd("HSET")
        .arg("shop:AuthSessionStore-9")
        .arg("absexp")
        .arg(absexp)
        .arg("sldexp")
        .arg(-1)
        .arg("data")
        .arg(alice(vec![]).to_bytes())
        .query_async(&mut conn)
        .await
        .unwrap();

    let protector = cookie::cookie_protector(ring(), Some("shop"), "Cookies");
    let url = serve(
        AspNetCookieAuth::new(protector.clone())
            .cookie_name(".Shop")
            .ticket_store(manager, "shop:"),
    )
    .await;
    let reference = |key: &str| AuthenticationTicket {
        scheme: "Cookies".into(),
        identities: vec![Identity::new(
            "Cookies",
            vec![Claim::new(SESSION_ID_CLAIM, key)],
        )],
        properties: vec![],
    };
    let value =
        cookie::write_cookie(&protector, &reference("AuthSessionStore-9"), Utc::now()).unwrap();
    let (status, body) = get_me(&url, Some(&format!(".Shop={value}"))).await;
    assert_eq!(
        (status, body.as_str()),
        (200, r#"["42","alice","alice@example.com"]"#)
    );
    // Signed out (the ticket removed from the store): 401.
    let _: () = redis::cmd("DEL")
        .arg("shop:AuthSessionStore-9")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(get_me(&url, Some(&format!(".Shop={value}"))).await.0, 401);
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn an_unreachable_ticket_store_is_503_not_a_sign_out() {
    let mut server = RedisServer::start().unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let manager = redis::aio::ConnectionManager::new(client).await.unwrap();
    let protector = cookie::cookie_protector(ring(), Some("shop"), "Cookies");
    let url = serve(AspNetCookieAuth::new(protector.clone()).ticket_store(manager, "")).await;
    let reference = AuthenticationTicket {
        scheme: "Cookies".into(),
        identities: vec![Identity::new(
            "Cookies",
            vec![Claim::new(SESSION_ID_CLAIM, "AuthSessionStore-1")],
        )],
        properties: vec![],
    };
    let value = cookie::write_cookie(&protector, &reference, Utc::now()).unwrap();
    server.stop();
    let (status, body) = get_me(&url, Some(&format!(".AspNetCore.Cookies={value}"))).await;
    assert_eq!(status, 503, "{body}");
}

#[tokio::test]
async fn a_key_dotnet_adds_later_is_accepted_after_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("key-a.xml"),
        key_xml("0f8fad5b-d9cb-469f-a165-70867728950e", 5),
    )
    .unwrap();
    let source = KeySource::Dir(dir.path().to_path_buf());
    let ring = Arc::new(source.load().await.unwrap());
    let auth = AspNetCookieAuth::new(cookie::cookie_protector(ring, Some("shop"), "Cookies"));
    let url = serve(auth.clone()).await;

    // The .NET app rotates: a newer key, which its cookies now use.
    let newer = key_xml("7c9e6679-7425-40de-944b-e07fc1f90ae7", 3);
    std::fs::write(dir.path().join("key-b.xml"), &newer).unwrap();
    let dotnet = cookie::cookie_protector(
        Arc::new(source.load().await.unwrap()),
        Some("shop"),
        "Cookies",
    );
    let value = cookie::write_cookie(&dotnet, &alice(vec![]), Utc::now()).unwrap();
    let header = format!(".AspNetCore.Cookies={value}");
    assert_eq!(
        get_me(&url, Some(&header)).await.0,
        401,
        "the new key is not loaded yet"
    );
    auth.reload_keys(&source).await.unwrap();
    assert_eq!(get_me(&url, Some(&header)).await.0, 200);
    // A failed reload keeps the ring in use.
    assert!(auth
        .reload_keys(&KeySource::Dir(dir.path().join("gone")))
        .await
        .is_err());
    assert_eq!(get_me(&url, Some(&header)).await.0, 200);
}
