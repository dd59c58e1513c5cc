//! `ringfence users import`: ASP.NET Core Identity users (from a real FerretDB holding documents
//! shaped as AspNetCore.Identity.MongoDB writes them, and from an EF Core AspNetUsers JSON
//! export) keep their passwords, a second run changes nothing, and a malformed row is reported
//! and skipped without stopping the rest.

mod common;

use std::path::Path;

use common::{run, PASSWORD};
use mongodb::bson::{doc, oid::ObjectId, Bson, DateTime as BsonDateTime};
use reqwest::{Client, StatusCode};
use ringfence_accounts::Database;
use ringfence_testkit::MongoServer;

/// ASP.NET Core Identity hashes of [`PASSWORD`], computed from the format's definition
/// (Python's hashlib.pbkdf2_hmac): version 3 HMAC-SHA256 10,000 iterations, version 2, and
/// version 3 HMAC-SHA512 100,000 iterations (.NET 7's default).
const V3_SHA256: &str =
    "AQAAAAEAACcQAAAAEBAREhMUFRYXGBkaGxwdHh/acBfR+e1ZlFrorPmc+2WmO/4PhSIC+H8RKOwj6ebYag==";
const V2: &str = "ACAhIiMkJSYnKCkqKywtLi/F6+BAKcc5AOS5qH3Q23+6+tAJH6Sx5bD7JLK3cspZIA==";
const V3_SHA512: &str =
    "AQAAAAIAAYagAAAAEDAxMjM0NTY3ODk6Ozw9Pj8UhOkJ2hmheEWjYS4ArOllzvhInHmNsAp945ozDXEPAg==";

fn import(data_dir: &Path, source: &[&str]) -> common::Run {
    let data = data_dir.display().to_string();
    let mut args = vec!["users", "import", "--data-dir", data.as_str()];
    args.extend_from_slice(source);
    let result = run(&args, None, &[]);
    assert!(result.success, "import failed: {}", result.stderr);
    assert!(!result.stdout.contains(V2) && !result.stderr.contains(V2));
    result
}

/// `ringfence users list` on the data dir.
fn users_list(data_dir: &Path) -> common::Run {
    run(
        &[
            "users",
            "list",
            "--data-dir",
            &data_dir.display().to_string(),
        ],
        None,
        &[],
    )
}

/// The line with the counts.
fn counts(result: &common::Run) -> &str {
    result
        .stdout
        .lines()
        .find(|l| l.starts_with("imported "))
        .unwrap_or_else(|| panic!("no counts in: {}", result.stdout))
}

async fn sign_in(base: &str, email: &str, password: &str) -> (StatusCode, serde_json::Value) {
    let response = Client::new()
        .post(format!("{base}/api/v1/login"))
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or_default())
}

async fn stored_hash(data_dir: &Path, email: &str) -> String {
    let url = format!("sqlite://{}", data_dir.join("ringfence.db").display());
    let db = Database::connect(&url).await.unwrap();
    let email = ringfence_accounts::Email::parse(email).unwrap();
    let record = db
        .user_store()
        .await
        .unwrap()
        .by_email(&email)
        .await
        .unwrap()
        .unwrap();
    db.close().await;
    record.password_hash
}

/// Signs in as each imported user with the old password through a node on `data_dir`, and
/// checks the stored hash became argon2id; a locked user is disabled.
async fn imported_users_sign_in(data_dir: &Path, ok: &[&str], disabled: &str) {
    let mut node = common::start_node("import", data_dir, &[]);
    let base = node.url();
    for email in ok {
        assert!(stored_hash(data_dir, email)
            .await
            .starts_with("$aspnet-identity$"));
        let (status, _) = sign_in(&base, email, "not the password at all").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{email}");
        let (status, body) = sign_in(&base, email, PASSWORD).await;
        assert_eq!(status, StatusCode::OK, "{email}: {body}");
        let hash = stored_hash(data_dir, email).await;
        assert!(hash.starts_with("$argon2id$v=19$"), "{email}: re-hashed");
        // And again, against the new hash.
        let (status, _) = sign_in(&base, email, PASSWORD).await;
        assert_eq!(status, StatusCode::OK, "{email}");
    }
    let (status, body) = sign_in(&base, disabled, PASSWORD).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "account_disabled", "{body}");
    node.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_import_from_an_ef_core_json_export_keeps_passwords_and_runs_once() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let export = dir.path().join("AspNetUsers.json");
    let rows = serde_json::json!([
        {"Id": "0b7c6c36-63a4-4b8e-9d1f-0d6f6f0f1a01", "UserName": "ann@example.com",
         "Email": "Ann@Example.com", "NormalizedEmail": "ANN@EXAMPLE.COM", "EmailConfirmed": true,
         "PasswordHash": V3_SHA256, "TwoFactorEnabled": false, "LockoutEnd": null,
         "LockoutEnabled": true, "AccessFailedCount": 0},
        {"Id": "0b7c6c36-63a4-4b8e-9d1f-0d6f6f0f1a02", "Email": "bob@example.com",
         "EmailConfirmed": 0, "PasswordHash": V2, "TwoFactorEnabled": 1,
         "LockoutEnd": "2020-01-01T00:00:00.0000000+00:00"},
        {"Id": "0b7c6c36-63a4-4b8e-9d1f-0d6f6f0f1a03", "Email": "carol@example.com",
         "EmailConfirmed": 1, "PasswordHash": V3_SHA512,
         "LockoutEnd": "9999-12-31T23:59:59.9999999+00:00"},
        // The same address as Ann's once normalized: a duplicate.
        {"Id": "0b7c6c36-63a4-4b8e-9d1f-0d6f6f0f1a04", "Email": " ANN@example.COM",
         "PasswordHash": V2},
        {"Id": "0b7c6c36-63a4-4b8e-9d1f-0d6f6f0f1a05", "Email": null, "NormalizedEmail": null,
         "PasswordHash": V2},
        // Malformed rows: reported, the rest goes on.
        {"Id": "0b7c6c36-63a4-4b8e-9d1f-0d6f6f0f1a06", "Email": 42},
        {"Id": "0b7c6c36-63a4-4b8e-9d1f-0d6f6f0f1a07", "Email": "dan@example.com",
         "PasswordHash": "AQAAAAEAACcQ"},
        {"Id": "0b7c6c36-63a4-4b8e-9d1f-0d6f6f0f1a08", "Email": "eve@example.com",
         "PasswordHash": null}
    ]);
    std::fs::write(&export, rows.to_string()).unwrap();
    let json = export.display().to_string();

    let first = import(&data_dir, &["--aspnet-identity-json", &json]);
    assert_eq!(
        counts(&first),
        "imported 3, skipped 2 (already imported 0, deleted 0, no e-mail 1, duplicate address 1), failed 3",
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains(
            "failed: row 6 (Id 0b7c6c36-63a4-4b8e-9d1f-0d6f6f0f1a06): Email is not a string"
        ),
        "{}",
        first.stdout
    );
    assert!(
        first
            .stdout
            .contains("1a07: unusable password hash: truncated"),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains("1a08: no password hash"),
        "{}",
        first.stdout
    );
    assert!(
        first
            .stdout
            .contains("note: 1 imported users had two-factor sign-in on"),
        "{}",
        first.stdout
    );

    // A second run imports nothing and changes nothing.
    let second = import(&data_dir, &["--aspnet-identity-json", &json]);
    assert_eq!(
        counts(&second),
        "imported 0, skipped 5 (already imported 3, deleted 0, no e-mail 1, duplicate address 1), failed 3"
    );
    let list = users_list(&data_dir);
    assert!(list.success, "{}", list.stderr);
    let listed: Vec<&str> = list.stdout.lines().skip(1).collect();
    assert_eq!(listed.len(), 3, "{}", list.stdout);
    assert!(
        list.stdout.contains("0b7c6c36-63a4-4b8e-9d1f-0d6f6f0f1a01"),
        "the source's id is kept"
    );

    imported_users_sign_in(
        &data_dir,
        &["ann@example.com", "bob@example.com"],
        "carol@example.com",
    )
    .await;

    // A file that is not an export: one line, non-zero.
    std::fs::write(&export, "{\"not\": \"rows\"}").unwrap();
    let bad = run(
        &[
            "users",
            "import",
            "--data-dir",
            &data_dir.display().to_string(),
            "--aspnet-identity-json",
            &json,
        ],
        None,
        &[],
    );
    common::assert_one_line_failure(&bad, "expected a JSON array of AspNetUsers rows", "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_import_from_aspnetcore_identity_mongodb_documents_keeps_passwords_and_runs_once() {
    let Some(server) = tokio::task::spawn_blocking(MongoServer::start_or_skip)
        .await
        .unwrap()
    else {
        return;
    };
    let source_url = format!("{}identity", server.url());
    let client = mongodb::Client::with_uri_str(&source_url).await.unwrap();
    let users = client
        .database("identity")
        .collection::<mongodb::bson::Document>("AppUsers");
    let created = BsonDateTime::from_millis(1_600_000_000_000);
    let ann = ObjectId::new();
    let occurred = doc! { "Instant": created };
    users
        .insert_many([
            doc! {
                "_id": ann, "UserName": "ann", "NormalizedUserName": "ANN",
                "Email": { "Value": "Ann@Example.com", "NormalizedValue": "ANN@EXAMPLE.COM",
                           "ConfirmationRecord": occurred.clone() },
                "PhoneNumber": Bson::Null, "PasswordHash": V3_SHA256, "SecurityStamp": "X",
                "IsTwoFactorEnabled": false, "Claims": [], "Logins": [], "AccessFailedCount": 0,
                "IsLockoutEnabled": true, "LockoutEndDate": Bson::Null,
                "CreatedOn": occurred.clone(), "DeletedOn": Bson::Null,
            },
            doc! {
                "_id": ObjectId::new(), "UserName": "bob",
                "Email": { "Value": "bob@example.com", "NormalizedValue": "BOB@EXAMPLE.COM",
                           "ConfirmationRecord": Bson::Null },
                "PasswordHash": V2, "IsTwoFactorEnabled": true,
                "LockoutEndDate": { "Instant": BsonDateTime::from_millis(1_000) },
                "CreatedOn": occurred.clone(), "DeletedOn": Bson::Null,
            },
            doc! {
                "_id": ObjectId::new(), "UserName": "carol",
                "Email": { "Value": "carol@example.com", "ConfirmationRecord": occurred.clone() },
                "PasswordHash": V3_SHA512, "IsTwoFactorEnabled": false,
                "LockoutEndDate": { "Instant": BsonDateTime::MAX },
                "CreatedOn": occurred.clone(), "DeletedOn": Bson::Null,
            },
            // Deleted by the provider's soft delete.
            doc! {
                "_id": ObjectId::new(), "UserName": "gone",
                "Email": { "Value": "gone@example.com" }, "PasswordHash": V2,
                "CreatedOn": occurred.clone(), "DeletedOn": occurred.clone(),
            },
            doc! { "_id": ObjectId::new(), "UserName": "nomail", "Email": Bson::Null, "PasswordHash": V2 },
            doc! { "_id": ObjectId::new(), "UserName": "ann2", "Email": { "Value": "ANN@example.com" }, "PasswordHash": V2 },
            // Malformed: reported and skipped.
            doc! { "_id": ObjectId::new(), "UserName": "broken", "Email": { "Value": 7 } },
        ])
        .await
        .unwrap();
    client.shutdown().await;

    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let args = [
        "--aspnet-identity",
        source_url.as_str(),
        "--collection",
        "AppUsers",
    ];
    let first = import(&data_dir, &args);
    assert_eq!(
        counts(&first),
        "imported 3, skipped 3 (already imported 0, deleted 1, no e-mail 1, duplicate address 1), failed 1",
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains("Email.Value is not a string"),
        "{}",
        first.stdout
    );
    let second = import(&data_dir, &args);
    assert_eq!(
        counts(&second),
        "imported 0, skipped 6 (already imported 3, deleted 1, no e-mail 1, duplicate address 1), failed 1"
    );
    let list = users_list(&data_dir);
    assert!(
        list.stdout.contains(&ann.to_hex()),
        "the ObjectId is the account id: {}",
        list.stdout
    );

    imported_users_sign_in(
        &data_dir,
        &["ann@example.com", "bob@example.com"],
        "carol@example.com",
    )
    .await;

    // An unreachable source: one line, within the timeout, no password.
    let unreachable = run(
        &[
            "users",
            "import",
            "--aspnet-identity",
            "mongodb://u:hunter2@127.0.0.1:1/identity",
            "--data-dir",
            &data_dir.display().to_string(),
        ],
        None,
        &[],
    );
    common::assert_one_line_failure(&unreachable, "did not answer within 5 s", "hunter2");
}
