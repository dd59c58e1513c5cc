//! `ringfence aspnet unprotect|protect|cookie` as processes, against a key directory shaped as
//! .NET writes it and a real redis-server list.

/// The key XML the aspnet crate's tests write, as .NET does.
#[path = "../crates/aspnet/tests/common/mod.rs"]
mod aspnet_xml;
mod common;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::{Duration, Utc};
use common::{assert_one_line_failure, run};
use ringfence_aspnet::ticket::{format_rfc1123, NAME_IDENTIFIER_CLAIM_TYPE};
use ringfence_aspnet::{cookie, AuthenticationTicket, Claim, DataProtector, Identity, KeyRing};
use ringfence_testkit::RedisServer;
use std::sync::Arc;

const KEY_ID: &str = "3b4f2a10-9c1d-4e5f-8a7b-6c5d4e3f2a1b";

/// A key as .NET writes it: made ten days ago, expiring in eighty, with an unencrypted master
/// key for `encryption` and HMACSHA256.
fn key_xml(id: &str, encryption: &str) -> String {
    let created = Utc::now() - Duration::days(10);
    let expires = Utc::now() + Duration::days(80);
    let descriptor = aspnet_xml::descriptor(encryption, "HMACSHA256", &aspnet_xml::master_key(0));
    aspnet_xml::key_xml(id, created, created, expires, &descriptor)
}

fn keys_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(format!("key-{KEY_ID}.xml")),
        key_xml(KEY_ID, "AES_256_CBC"),
    )
    .unwrap();
    dir
}

fn dir_args(dir: &tempfile::TempDir) -> Vec<String> {
    vec!["--keys-dir".into(), dir.path().display().to_string()]
}

fn aspnet(sub: &str, keys: &[String], rest: &[&str]) -> common::Run {
    let mut args: Vec<&str> = vec!["aspnet", sub];
    args.extend(keys.iter().map(String::as_str));
    args.extend(rest);
    run(&args, None, &[])
}

#[test]
fn aspnet_protect_then_unprotect_round_trips_through_the_key_directory() {
    let dir = keys_dir();
    let keys = dir_args(&dir);
    let plaintext = STANDARD.encode("hello .NET");
    let made = aspnet(
        "protect",
        &keys,
        &["--purpose", "MyApp", "--purpose", "Orders", &plaintext],
    );
    assert!(made.success, "{}", made.stderr);
    let payload = made.stdout.trim();
    // What the library (as .NET would) makes opens too, and the other way round.
    let ring = Arc::new(KeyRing::from_dir(dir.path()).unwrap());
    let protector = DataProtector::new(ring, vec!["MyApp".into(), "Orders".into()]);
    assert_eq!(
        protector
            .unprotect(&URL_SAFE_NO_PAD.decode(payload).unwrap())
            .unwrap(),
        b"hello .NET"
    );
    let opened = aspnet(
        "unprotect",
        &keys,
        &["--purpose", "MyApp", "--purpose", "Orders", payload],
    );
    assert!(opened.success, "{}", opened.stderr);
    assert_eq!(opened.stdout.trim(), plaintext);
}

#[test]
fn aspnet_unprotect_failures_are_one_line_and_specific() {
    let dir = keys_dir();
    let keys = dir_args(&dir);
    let ring = Arc::new(KeyRing::from_dir(dir.path()).unwrap());
    let payload = DataProtector::new(ring, vec!["app".into()])
        .protect(b"secret", Utc::now())
        .unwrap();
    let encoded = URL_SAFE_NO_PAD.encode(&payload);

    let wrong = aspnet("unprotect", &keys, &["--purpose", "other", &encoded]);
    assert_one_line_failure(&wrong, "purpose chain differs", "secret");
    let mut tampered = payload.clone();
    *tampered.last_mut().unwrap() ^= 1;
    let run = aspnet(
        "unprotect",
        &keys,
        &["--purpose", "app", &URL_SAFE_NO_PAD.encode(&tampered)],
    );
    assert_one_line_failure(&run, "does not authenticate", "secret");
    let mut unknown = payload.clone();
    unknown[4..20].copy_from_slice(&[0x22; 16]);
    let run = aspnet(
        "unprotect",
        &keys,
        &["--purpose", "app", &URL_SAFE_NO_PAD.encode(&unknown)],
    );
    assert_one_line_failure(&run, "not in the key ring", "secret");
    let run = aspnet("unprotect", &keys, &["--purpose", "app", "***"]);
    assert_one_line_failure(&run, "not base64url", "secret");
    let run = aspnet(
        "unprotect",
        &["--keys-dir".into(), "/nonexistent/keys".into()],
        &["--purpose", "app", &encoded],
    );
    assert_one_line_failure(&run, "cannot read the key ring", "secret");

    std::fs::write(
        dir.path().join("revocation-1.xml"),
        format!(r#"<revocation version="1"><revocationDate>{}</revocationDate><key id="{KEY_ID}"/><reason>leak</reason></revocation>"#, Utc::now().to_rfc3339()),
    )
    .unwrap();
    let run = aspnet("unprotect", &keys, &["--purpose", "app", &encoded]);
    assert_one_line_failure(&run, "has been revoked", "secret");
}

#[test]
fn aspnet_reads_the_key_ring_from_a_redis_list() {
    let server = RedisServer::start().unwrap();
    let status = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &server.port().to_string(),
            "RPUSH",
            "MyApp-Keys",
            &key_xml(KEY_ID, "AES_128_GCM"),
        ])
        .output()
        .unwrap();
    assert!(status.status.success());
    let keys = vec![
        "--keys-redis".into(),
        server.url(),
        "--keys-redis-key".into(),
        "MyApp-Keys".into(),
    ];
    let plaintext = STANDARD.encode([0u8, 1, 2, 255]);
    let made = aspnet("protect", &keys, &["--purpose", "p", &plaintext]);
    assert!(made.success, "{}", made.stderr);
    let opened = aspnet("unprotect", &keys, &["--purpose", "p", made.stdout.trim()]);
    assert_eq!(opened.stdout.trim(), plaintext, "{}", opened.stderr);
    // The default list is empty here: no key protects anything.
    let run = aspnet(
        "protect",
        &["--keys-redis".into(), server.url()],
        &["--purpose", "p", &plaintext],
    );
    assert_one_line_failure(&run, "no usable default key", "");
}

/// The signed-in user's id: letters, so no timestamp or number in a message can contain it by chance.
const USER_ID: &str = "user-qzx";

fn signed_in() -> AuthenticationTicket {
    AuthenticationTicket {
        scheme: "Cookies".into(),
        identities: vec![Identity::new(
            "Cookies",
            vec![
                Claim::new(NAME_IDENTIFIER_CLAIM_TYPE, USER_ID),
                Claim::new("email", "a@example.com"),
            ],
        )],
        properties: vec![
            (".issued".into(), format_rfc1123(Utc::now())),
            (
                ".expires".into(),
                format_rfc1123(Utc::now() + Duration::days(14)),
            ),
            (".persistent".into(), String::new()),
        ],
    }
}

#[test]
fn aspnet_cookie_prints_the_ticket_of_a_dotnet_cookie() {
    let dir = keys_dir();
    let ring = Arc::new(KeyRing::from_dir(dir.path()).unwrap());
    let protector = cookie::cookie_protector(ring, Some("shop"), "Cookies");
    let value = cookie::write_cookie(&protector, &signed_in(), Utc::now()).unwrap();
    let run = aspnet(
        "cookie",
        &dir_args(&dir),
        &["--application-name", "shop", &value],
    );
    assert!(run.success, "{}", run.stderr);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["scheme"], "Cookies");
    assert_eq!(json["claims"][0]["type"], NAME_IDENTIFIER_CLAIM_TYPE);
    assert_eq!(json["claims"][0]["value"], USER_ID);
    assert_eq!(
        json["claims"][1],
        serde_json::json!({"type": "email", "value": "a@example.com"})
    );
    assert_eq!(json["properties"]["persistent"], true);
    assert!(json["properties"]["expires"].is_string());
    // Another application's or scheme's cookie handler does not open it.
    let run = aspnet(
        "cookie",
        &dir_args(&dir),
        &["--application-name", "blog", &value],
    );
    assert_one_line_failure(&run, "does not authenticate", USER_ID);
    let run = aspnet(
        "cookie",
        &dir_args(&dir),
        &["--application-name", "shop", "--scheme", "Other", &value],
    );
    assert_one_line_failure(&run, "does not authenticate", USER_ID);
}

#[test]
fn aspnet_cookie_resolves_an_ticket_store_session_key_in_redis() {
    let dir = keys_dir();
    let server = RedisServer::start().unwrap();
    let ring = Arc::new(KeyRing::from_dir(dir.path()).unwrap());
    let protector = cookie::cookie_protector(ring, Some("shop"), "Cookies");
    let reference = AuthenticationTicket {
        scheme: "Cookies".into(),
        identities: vec![Identity::new(
            "Cookies",
            vec![Claim::new(cookie::SESSION_ID_CLAIM, "AuthSessionStore-1")],
        )],
        properties: vec![],
    };
    let value = cookie::write_cookie(&protector, &reference, Utc::now()).unwrap();
    let redis = |args: &[&str]| {
        let mut cmd = std::process::Command::new("redis-cli");
        cmd.args(["-p", &server.port().to_string()]).args(args);
        assert!(cmd.output().unwrap().status.success());
    };
    let data_file = dir.path().join("ticket.bin");
    std::fs::write(&data_file, signed_in().to_bytes()).unwrap();
    let absexp = ringfence_aspnet::to_ticks(Utc::now() + Duration::hours(1)).to_string();
    redis(&[
        "HSET",
        "app:AuthSessionStore-1",
        "absexp",
        &absexp,
        "sldexp",
        "-1",
    ]);
    // redis-cli -x takes the binary ticket from stdin as the last argument.
    let out = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &server.port().to_string(),
            "-x",
            "HSET",
            "app:AuthSessionStore-1",
            "data",
        ])
        .stdin(std::fs::File::open(&data_file).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success());

    let keys = dir_args(&dir);
    let url = server.url();
    let through_store = [
        "--application-name",
        "shop",
        "--ticket-redis",
        &url,
        "--ticket-redis-prefix",
        "app:",
        &value,
    ];
    let run = aspnet("cookie", &keys, &through_store);
    assert!(run.success, "{}", run.stderr);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["claims"][0]["value"], USER_ID);
    let run = aspnet("cookie", &keys, &["--application-name", "shop", &value]);
    assert_one_line_failure(&run, "--ticket-redis", "");
    let past = ringfence_aspnet::to_ticks(Utc::now() - Duration::seconds(5)).to_string();
    redis(&["HSET", "app:AuthSessionStore-1", "absexp", &past]);
    let run = aspnet("cookie", &keys, &through_store);
    assert_one_line_failure(&run, "expired", USER_ID);
}

/// `examples/aspnet_service.rs` as a process, its key ring in the Redis list .NET writes: a
/// cookie a .NET app issued signs the request in; none, a tampered one or another app's is `401`.
#[tokio::test]
async fn aspnet_service_example_signs_in_a_dotnet_cookie_with_the_ring_from_redis() {
    let server = RedisServer::start().unwrap();
    let xml = key_xml(KEY_ID, "AES_256_CBC");
    server
        .redis_cli(&["RPUSH", ringfence_aspnet::DEFAULT_REDIS_KEY, &xml])
        .unwrap();
    let service = common::start_example(
        "aspnet_service",
        &[
            ("ASPNET_KEYS_REDIS", server.url()),
            ("ASPNET_APPLICATION_NAME", "shop".to_owned()),
        ],
    );
    let ring = Arc::new(KeyRing::from_xml(&[xml]).unwrap());
    let issue = |application: &str| {
        let protector = cookie::cookie_protector(ring.clone(), Some(application), "Cookies");
        cookie::write_cookie(&protector, &signed_in(), Utc::now()).unwrap()
    };
    let me = format!("{}/me", service.url());
    let client = reqwest::Client::new();
    let get = |cookie: Option<String>| {
        let mut request = client.get(&me);
        if let Some(value) = cookie {
            request = request.header("cookie", format!(".AspNetCore.Cookies={value}"));
        }
        request.send()
    };

    let response = get(Some(issue("shop"))).await.unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["id"], USER_ID);

    assert_eq!(get(None).await.unwrap().status(), 401);
    assert_eq!(get(Some(issue("another-app"))).await.unwrap().status(), 401);
    let mut tampered = issue("shop");
    tampered.replace_range(20..21, if &tampered[20..21] == "A" { "B" } else { "A" });
    assert_eq!(get(Some(tampered)).await.unwrap().status(), 401);
}
