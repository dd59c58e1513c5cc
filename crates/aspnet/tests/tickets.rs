//! TicketSerializer (version 5) read and written, authentication cookies (chunked too), and
//! ITicketStore tickets in a real redis-server.

mod common;

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::*;
use ringfence_aspnet::cookie;
use ringfence_aspnet::ticket::{self, format_rfc1123};
use ringfence_aspnet::{AuthenticationTicket, Claim, Error, Identity, KeyRing};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

fn ring() -> Arc<KeyRing> {
    let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let xml = key_xml(
        "5fbb6b0c-6b9a-4f6c-9d36-0d5b1a8f4a11",
        t,
        t,
        t + Duration::days(90),
        &descriptor("AES_256_CBC", "HMACSHA256", &master_key(9)),
    );
    Arc::new(KeyRing::from_xml(&[xml]).unwrap())
}

fn signed_in(expires: DateTime<Utc>) -> AuthenticationTicket {
    AuthenticationTicket {
        scheme: "Cookies".into(),
        identities: vec![Identity::new(
            "Cookies",
            vec![
                Claim::new(ticket::NAME_IDENTIFIER_CLAIM_TYPE, "42"),
                Claim::new(ticket::DEFAULT_NAME_CLAIM_TYPE, "alice"),
                Claim::new(ticket::EMAIL_CLAIM_TYPE, "alice@example.com"),
            ],
        )],
        properties: vec![
            (".issued".into(), format_rfc1123(now())),
            (".expires".into(), format_rfc1123(expires)),
            (".persistent".into(), String::new()),
        ],
    }
}

/// Every field away from its default, an actor with its own actor, a bootstrap context.
fn everything() -> AuthenticationTicket {
    let mut claim = Claim::new("role", "admin");
    claim.value_type = "http://www.w3.org/2001/XMLSchema#integer".into();
    claim.issuer = "https://issuer.example".into();
    claim.original_issuer = "https://original.example".into();
    claim.properties = vec![("k".into(), "v".into()), ("é".into(), "ü".repeat(200))];
    let mut inner_actor = Identity::new("", vec![]);
    inner_actor.bootstrap_context = Some("inner".into());
    let mut actor = Identity::new("Bearer", vec![Claim::new("sub", "service")]);
    actor.actor = Some(Box::new(inner_actor));
    let mut identity = Identity::new("Custom", vec![claim, Claim::new("name", "bob")]);
    identity.name_claim_type = "name".into();
    identity.role_claim_type = "role".into();
    identity.bootstrap_context = Some("bootstrap".into());
    identity.actor = Some(Box::new(actor));
    AuthenticationTicket {
        scheme: "Custom".into(),
        identities: vec![identity, Identity::new("Second", vec![])],
        properties: vec![
            (".redirect".into(), "/".into()),
            ("x".into(), String::new()),
        ],
    }
}

#[test]
fn a_ticket_survives_our_writer_and_reader_field_for_field() {
    for ticket in [
        everything(),
        signed_in(now()),
        AuthenticationTicket {
            scheme: String::new(),
            identities: vec![],
            properties: vec![],
        },
    ] {
        let read = AuthenticationTicket::from_bytes(&ticket.to_bytes()).unwrap();
        assert_eq!(read, ticket);
    }
}

/// A .NET BinaryWriter string, written independently of the crate.
fn s(out: &mut Vec<u8>, text: &str) {
    assert!(text.len() < 128);
    out.push(text.len() as u8);
    out.extend_from_slice(text.as_bytes());
}

fn i(out: &mut Vec<u8>, n: i32) {
    out.extend_from_slice(&n.to_le_bytes());
}

#[test]
fn every_default_value_shorthand_reads_as_its_default_and_is_written_as_the_shorthand() {
    let mut b = Vec::new();
    i(&mut b, 5);
    s(&mut b, "Cookies");
    i(&mut b, 1);
    s(&mut b, "Cookies"); // authentication type
    s(&mut b, "\0"); // name claim type: ClaimsIdentity.DefaultNameClaimType
    s(&mut b, "\0"); // role claim type: ClaimsIdentity.DefaultRoleClaimType
    i(&mut b, 2);
    // Claim 1: type = the identity's name claim type, string value type, LOCAL AUTHORITY twice.
    s(&mut b, "\0");
    s(&mut b, "alice");
    s(&mut b, "\0");
    s(&mut b, "\0");
    s(&mut b, "\0");
    i(&mut b, 0);
    // Claim 2: an issuer of its own, the original issuer defaulting to it.
    s(&mut b, "sub");
    s(&mut b, "7");
    s(&mut b, "\0");
    s(&mut b, "idp");
    s(&mut b, "\0");
    i(&mut b, 0);
    b.push(0); // no bootstrap context
    b.push(0); // no actor
    i(&mut b, 1); // properties version
    i(&mut b, 1);
    s(&mut b, ".persistent");
    s(&mut b, "");

    let ticket = AuthenticationTicket::from_bytes(&b).unwrap();
    let identity = &ticket.identities[0];
    assert_eq!(identity.name_claim_type, ticket::DEFAULT_NAME_CLAIM_TYPE);
    assert_eq!(identity.role_claim_type, ticket::DEFAULT_ROLE_CLAIM_TYPE);
    let alice = &identity.claims[0];
    assert_eq!(alice.claim_type, ticket::DEFAULT_NAME_CLAIM_TYPE);
    assert_eq!(alice.value_type, ticket::STRING_VALUE_TYPE);
    assert_eq!(
        (alice.issuer.as_str(), alice.original_issuer.as_str()),
        ("LOCAL AUTHORITY", "LOCAL AUTHORITY")
    );
    let sub = &identity.claims[1];
    assert_eq!(
        (sub.issuer.as_str(), sub.original_issuer.as_str()),
        ("idp", "idp")
    );
    assert!(ticket.is_persistent());
    assert_eq!(ticket.to_bytes(), b, "our writer uses the same shorthands");
}

#[test]
fn malformed_tickets_are_errors_never_panics() {
    let bytes = everything().to_bytes();
    for len in 0..bytes.len() {
        assert!(
            matches!(
                AuthenticationTicket::from_bytes(&bytes[..len]),
                Err(Error::Ticket(_))
            ),
            "{len}"
        );
    }
    let mut wrong_version = bytes.clone();
    wrong_version[0] = 4;
    assert!(AuthenticationTicket::from_bytes(&wrong_version)
        .unwrap_err()
        .to_string()
        .contains("version 4"));
    let mut huge_count = Vec::new();
    i(&mut huge_count, 5);
    s(&mut huge_count, "x");
    i(&mut huge_count, i32::MAX);
    assert!(matches!(
        AuthenticationTicket::from_bytes(&huge_count),
        Err(Error::Ticket(_))
    ));
    let mut trailing = bytes;
    trailing.push(0);
    assert!(matches!(
        AuthenticationTicket::from_bytes(&trailing),
        Err(Error::Ticket(_))
    ));
}

#[test]
fn a_cookie_opens_under_its_application_and_scheme_only() {
    let protector = cookie::cookie_protector(ring(), Some("shop"), "Cookies");
    assert_eq!(
        protector.purposes(),
        ["shop", cookie::COOKIE_HANDLER_PURPOSE, "Cookies", "v2"]
    );
    let value =
        cookie::write_cookie(&protector, &signed_in(now() + Duration::days(14)), now()).unwrap();
    assert!(
        !value.contains(['+', '/', '=']),
        "base64url without padding"
    );
    let ticket = cookie::read_cookie(&protector, &value, now()).unwrap();
    assert_eq!(ticket.claim(ticket::NAME_IDENTIFIER_CLAIM_TYPE), Some("42"));
    assert_eq!(ticket.issued(), Some(now()));
    assert!(ticket.is_persistent());
    for other in [
        cookie::cookie_protector(ring(), Some("blog"), "Cookies"),
        cookie::cookie_protector(ring(), Some("shop"), "Identity.Application"),
        cookie::cookie_protector(ring(), None, "Cookies"),
    ] {
        assert!(matches!(
            cookie::read_cookie(&other, &value, now()),
            Err(Error::Unauthentic)
        ));
    }
    assert!(matches!(
        cookie::read_cookie(&protector, "not base64!", now()),
        Err(Error::NotAPayload(_))
    ));
}

#[test]
fn an_expired_cookie_ticket_is_refused() {
    let protector = cookie::cookie_protector(ring(), Some("shop"), "Cookies");
    let value =
        cookie::write_cookie(&protector, &signed_in(now() + Duration::minutes(5)), now()).unwrap();
    assert!(cookie::read_cookie(&protector, &value, now() + Duration::minutes(4)).is_ok());
    let err = cookie::read_cookie(&protector, &value, now() + Duration::minutes(6)).unwrap_err();
    assert!(matches!(err, Error::TicketExpired(_)), "{err}");
}

#[test]
fn chunked_cookies_are_split_and_joined_as_the_chunking_cookie_manager_does() {
    let protector = cookie::cookie_protector(ring(), Some("shop"), "Cookies");
    let mut big = signed_in(now() + Duration::days(1));
    big.identities[0]
        .claims
        .push(Claim::new("blob", &"x".repeat(9000)));
    let value = cookie::write_cookie(&protector, &big, now()).unwrap();
    let cookies = cookie::chunk_cookie(".AspNetCore.Cookies", &value, 4050);
    assert_eq!(cookies[0].1, format!("chunks-{}", cookies.len() - 1));
    assert_eq!(cookies[1].0, ".AspNetCore.CookiesC1");
    let lookup = |name: &str| {
        cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let joined = cookie::joined_cookie(".AspNetCore.Cookies", lookup).unwrap();
    assert_eq!(joined, value);
    assert_eq!(
        cookie::read_cookie(&protector, &joined, now()).unwrap(),
        big
    );
    // A missing chunk or a silly count is no cookie.
    let missing = |name: &str| {
        if name.ends_with("C2") {
            None
        } else {
            lookup(name)
        }
    };
    assert_eq!(cookie::joined_cookie(".AspNetCore.Cookies", missing), None);
    assert_eq!(
        cookie::joined_cookie("c", |_| Some("chunks-99999".into())),
        None
    );
    // Chunks never split a character.
    let odd = cookie::chunk_cookie("c", "aéé", 3);
    assert_eq!(
        odd[1..].iter().map(|(_, v)| v.as_str()).collect::<Vec<_>>(),
        ["aé", "é"]
    );
    // A small value stays one cookie.
    assert_eq!(
        cookie::chunk_cookie("c", "abc", 4050),
        vec![("c".to_string(), "abc".to_string())]
    );
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn ticket_store_tickets_are_read_from_redis_and_expired_ones_refused() {
    use ringfence_aspnet::cookie::SESSION_ID_CLAIM;
    use ringfence_testkit::RedisServer;
    let server = RedisServer::start().unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let full = signed_in(now() + Duration::days(1));
    let store = |key: &'static str, absexp: i64| {
        let data = full.to_bytes();
        redis::cmd("HSET")
            .arg(key)
            .arg("absexp")
            .arg(absexp)
            .arg("sldexp")
            .arg(-1)
            .arg("data")
            .arg(data)
            .clone()
    };
    let _: () = store(
        "AuthSessionStore-live",
        ringfence_aspnet::to_ticks(now() + Duration::hours(1)),
    )
    .query_async(&mut conn)
    .await
    .unwrap();
    let _: () = store("AuthSessionStore-forever", -1)
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = store(
        "AuthSessionStore-old",
        ringfence_aspnet::to_ticks(now() - Duration::seconds(1)),
    )
    .query_async(&mut conn)
    .await
    .unwrap();

    // The cookie holds only the session key; the store has the ticket.
    let protector = cookie::cookie_protector(ring(), Some("shop"), "Cookies");
    let mut reference = Identity::new(
        "Cookies",
        vec![Claim::new(SESSION_ID_CLAIM, "AuthSessionStore-live")],
    );
    reference.claims[0].issuer = "Cookies".into();
    reference.claims[0].original_issuer = "Cookies".into();
    let cookie_ticket = AuthenticationTicket {
        scheme: "Cookies".into(),
        identities: vec![reference],
        properties: vec![],
    };
    let value = cookie::write_cookie(&protector, &cookie_ticket, now()).unwrap();
    let opened = cookie::read_cookie(&protector, &value, now()).unwrap();
    let key = cookie::session_key(&opened).unwrap();
    assert_eq!(
        cookie::read_stored_ticket(&server.url(), key, now())
            .await
            .unwrap(),
        full
    );
    assert_eq!(
        cookie::read_stored_ticket(&server.url(), "AuthSessionStore-forever", now())
            .await
            .unwrap(),
        full
    );
    let err = cookie::read_stored_ticket(&server.url(), "AuthSessionStore-old", now())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TicketExpired(_)), "{err}");
    let err = cookie::read_stored_ticket(&server.url(), "AuthSessionStore-gone", now())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TicketStore(_)), "{err}");
}
