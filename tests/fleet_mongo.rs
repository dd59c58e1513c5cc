//! The seed's setup on ringfence: users in MongoDB (FerretDB here), keys and sessions in Redis,
//! two nodes behind a real HAProxy (round robin). Accounts made on one node sign in on the
//! other, a user imported from ASP.NET Core Identity signs in through the balancer with the old
//! password, and `--database mongodb://…` without Redis refuses to start.

mod common;

use std::collections::BTreeSet;

use common::*;
use reqwest::StatusCode;
use ringfence_accounts::{Database, Email};
use ringfence_testkit::{MongoServer, RedisServer};

/// ASP.NET Core Identity version 3 (HMAC-SHA256, 10,000 iterations) hash of [`PASSWORD`].
const IMPORTED_HASH: &str =
    "AQAAAAEAACcQAAAAEBAREhMUFRYXGBkaGxwdHh/acBfR+e1ZlFrorPmc+2WmO/4PhSIC+H8RKOwj6ebYag==";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_on_mongodb_and_redis_behind_haproxy_shares_accounts_keys_and_sessions() {
    let Some(mongo) = tokio::task::spawn_blocking(MongoServer::start_or_skip)
        .await
        .unwrap()
    else {
        return;
    };
    let redis = RedisServer::start().expect("redis");
    let database = mongo.fresh_database();
    let store_args = ["--redis", &redis.url(), "--database", &database].map(str::to_owned);

    // Without Redis a MongoDB node would keep sessions to itself: it refuses to start.
    let lonely = run(&["users", "list", "--database", &database], None, &[]);
    assert_one_line_failure(&lonely, "needs --redis", "");

    // An ASP.NET Core Identity user, imported into MongoDB before the fleet starts.
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("AspNetUsers.json");
    let rows = serde_json::json!([{"Id": "4d1f0c2e-6a0b-4c7e-8d55-0f6c2b1a9e10",
        "Email": "seed@example.com", "EmailConfirmed": true, "PasswordHash": IMPORTED_HASH}]);
    std::fs::write(&export, rows.to_string()).unwrap();
    let mut import = vec!["users", "import", "--aspnet-identity-json"];
    let export_path = export.display().to_string();
    import.push(&export_path);
    import.extend(store_args.iter().map(String::as_str));
    let imported = run(&import, None, &[]);
    assert!(imported.success, "{}", imported.stderr);
    assert!(
        imported.stdout.contains("imported 1,"),
        "{}",
        imported.stdout
    );

    let mut dirs = Vec::new();
    let mut nodes = Vec::new();
    for name in ["node1", "node2"] {
        let dir = tempfile::tempdir().unwrap();
        let mut args = store_args.to_vec();
        args.extend(["--trusted-proxy".to_owned(), "127.0.0.1/32".to_owned()]);
        nodes.push(start_node(name, dir.path(), &args));
        dirs.push(dir);
    }
    let haproxy = balance(&nodes);
    let (a, b) = (nodes[0].url(), nodes[1].url());
    let lb = haproxy.url();

    // Registered through node1, signed in through node2: one account store.
    let client = browser();
    let response = register_page(&client, &a, "fleet@example.com").await;
    assert!(response.status().is_redirection(), "{}", response.status());
    let other = browser();
    let response = login_page(&other, &b, "fleet@example.com", PASSWORD).await;
    assert!(response.status().is_redirection(), "{}", response.status());
    assert_eq!(
        signed_in_as(&other, &a).await.as_deref(),
        Some("fleet@example.com")
    );

    // The imported user signs in through the balancer with the ASP.NET password and stays
    // signed in whichever node answers.
    let seed = browser();
    let response = login_page(&seed, &lb, "seed@example.com", PASSWORD).await;
    assert!(response.status().is_redirection(), "{}", response.status());
    let mut seen = BTreeSet::new();
    for _ in 0..6 {
        let response = seed.get(format!("{lb}/api/v1/me")).send().await.unwrap();
        seen.insert(node_of(&response));
        assert_eq!(response.status(), StatusCode::OK);
        let me: serde_json::Value = response.json().await.unwrap();
        assert_eq!(me["user"]["email"], "seed@example.com", "{me}");
    }
    assert_eq!(seen.len(), 2, "both nodes answered: {seen:?}");

    // Its stored hash is argon2id now.
    let db = Database::connect(&database).await.unwrap();
    let record = db
        .user_store()
        .await
        .unwrap()
        .by_email(&Email::parse("seed@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(record.password_hash.starts_with("$argon2id$"));
    db.close().await;
    drop(haproxy);
    drop(nodes);
}
