//! The OpenAPI document at /api/v1/openapi.json is true: it lists exactly the API's routes, and
//! every operation, called on a running node, answers with a documented status and a body that
//! matches the documented schema field for field.

mod common;

use std::collections::BTreeSet;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Checks `value` against an OpenAPI 3.1 schema (the subset utoipa emits), resolving `$ref`s.
fn check(value: &Value, schema: &Value, doc: &Value, at: &str) -> Result<(), String> {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.trim_start_matches("#/components/schemas/");
        let target = &doc["components"]["schemas"][name];
        if target.is_null() {
            return Err(format!("{at}: unresolved {reference}"));
        }
        return check(value, target, doc, at);
    }
    if let Some(options) = schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))
        .and_then(Value::as_array)
    {
        return if options.iter().any(|s| check(value, s, doc, at).is_ok()) {
            Ok(())
        } else {
            Err(format!("{at}: {value} matches none of {options:?}"))
        };
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let ok_type = |t: &str| match t {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => false,
    };
    if !types.is_empty() && !types.iter().any(|t| ok_type(t)) {
        return Err(format!("{at}: {value} is not {types:?}"));
    }
    if let (Some(object), Some(properties)) = (
        value.as_object(),
        schema.get("properties").and_then(Value::as_object),
    ) {
        // Every field the answer has is documented, and every field the document requires is
        // there (an optional one, such as the stats' `user`, may be left out).
        let got: BTreeSet<&String> = object.keys().collect();
        let documented: BTreeSet<&String> = properties.keys().collect();
        let required: BTreeSet<&String> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|names| {
                names
                    .iter()
                    .filter_map(Value::as_str)
                    .filter_map(|n| properties.get_key_value(n).map(|(k, _)| k))
                    .collect()
            })
            .unwrap_or_default();
        if !got.is_subset(&documented) || !required.is_subset(&got) {
            return Err(format!(
                "{at}: fields {got:?} but the document says {documented:?} (required {required:?})"
            ));
        }
        for (name, property) in properties {
            if let Some(field) = object.get(name) {
                check(field, property, doc, &format!("{at}.{name}"))?;
            }
        }
    }
    if let (Some(items), Some(item_schema)) = (value.as_array(), schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            check(item, item_schema, doc, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// Asserts the answer's status is documented for the operation and its body matches.
async fn conforms(
    doc: &Value,
    method: &str,
    path: &str,
    response: reqwest::Response,
) -> StatusCode {
    let status = response.status();
    let documented = &doc["paths"][path][method]["responses"][status.as_str()];
    assert!(
        !documented.is_null(),
        "{method} {path} answered {status}, which the document does not list"
    );
    let body = response.text().await.unwrap();
    match documented["content"]["application/json"]["schema"].clone() {
        Value::Null => assert!(
            body.is_empty(),
            "{method} {path} {status}: undocumented body {body}"
        ),
        schema => {
            let value: Value = serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("{method} {path}: {e}: {body}"));
            check(&value, &schema, doc, &format!("{method} {path} {status}")).unwrap();
        }
    }
    status
}

#[tokio::test]
async fn openapi_document_matches_the_running_api() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().display().to_string();
    let (ok, _, err) = cli(
        &[
            "users",
            "add",
            "admin@example.com",
            "--admin",
            "--data-dir",
            &dir,
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(ok, "{err}");
    let node = start_node("doc", data.path(), &[]);
    let base = node.url();
    let doc: Value = reqwest::get(format!("{base}/api/v1/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    // The schemas are real (the field-by-field checks below are not vacuous).
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["SessionJson"]["properties"]
            .as_object()
            .map(|p| p.len()),
        Some(10)
    );
    assert!(schemas["LoginResponse"]["properties"]["csrf_token"].is_object());
    assert!(check(
        &serde_json::json!({"user": {}}),
        &schemas["RegisterResponse"],
        &doc,
        "self-test"
    )
    .is_err());

    // Exactly the API's routes (the contract's list), no more, no fewer.
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    let routes: BTreeSet<String> = [
        "POST /api/v1/register",
        "POST /api/v1/login",
        "POST /api/v1/logout",
        "GET /api/v1/me",
        "GET /api/v1/sessions",
        "DELETE /api/v1/sessions/{id}",
        "POST /api/v1/sessions/revoke-others",
        "POST /api/v1/password",
        "GET /api/v1/admin/stats",
        "POST /api/v1/admin/revoke-user",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(documented, routes);

    let user = browser();
    let other = browser();
    let admin = browser();
    let call = |client: &reqwest::Client, method: Method, path: &str| {
        client.request(method, format!("{base}{path}"))
    };
    // Signed out: every operation that needs a session says 401 in the documented shape.
    for (method, path) in [
        ("get", "/api/v1/me"),
        ("get", "/api/v1/sessions"),
        ("post", "/api/v1/sessions/revoke-others"),
        ("get", "/api/v1/admin/stats"),
    ] {
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        assert_eq!(
            conforms(
                &doc,
                method,
                path,
                call(&user, m, path).send().await.unwrap()
            )
            .await,
            StatusCode::UNAUTHORIZED
        );
    }
    let creds = serde_json::json!({"email": "doc@example.com", "password": PASSWORD});
    assert_eq!(
        conforms(
            &doc,
            "post",
            "/api/v1/register",
            call(&user, Method::POST, "/api/v1/register")
                .json(&creds)
                .send()
                .await
                .unwrap()
        )
        .await,
        StatusCode::CREATED
    );
    assert_eq!(
        conforms(
            &doc,
            "post",
            "/api/v1/register",
            call(&user, Method::POST, "/api/v1/register")
                .json(&creds)
                .send()
                .await
                .unwrap()
        )
        .await,
        StatusCode::CONFLICT
    );
    let weak = serde_json::json!({"email": "weak@example.com", "password": "short"});
    assert_eq!(
        conforms(
            &doc,
            "post",
            "/api/v1/register",
            call(&user, Method::POST, "/api/v1/register")
                .json(&weak)
                .send()
                .await
                .unwrap()
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let wrong = serde_json::json!({"email": "doc@example.com", "password": "not the right one"});
    assert_eq!(
        conforms(
            &doc,
            "post",
            "/api/v1/login",
            call(&user, Method::POST, "/api/v1/login")
                .json(&wrong)
                .send()
                .await
                .unwrap()
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    let login = call(&user, Method::POST, "/api/v1/login")
        .json(&creds)
        .send()
        .await
        .unwrap();
    assert_eq!(
        conforms(&doc, "post", "/api/v1/login", login).await,
        StatusCode::OK
    );
    call(&other, Method::POST, "/api/v1/login")
        .json(&creds)
        .send()
        .await
        .unwrap();
    let me = call(&user, Method::GET, "/api/v1/me").send().await.unwrap();
    let csrf = {
        let text = me.text().await.unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        value["csrf_token"].as_str().unwrap().to_owned()
    };
    assert_eq!(
        conforms(
            &doc,
            "get",
            "/api/v1/me",
            call(&user, Method::GET, "/api/v1/me").send().await.unwrap()
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(
        conforms(
            &doc,
            "get",
            "/api/v1/sessions",
            call(&user, Method::GET, "/api/v1/sessions")
                .send()
                .await
                .unwrap()
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(
        conforms(
            &doc,
            "post",
            "/api/v1/sessions/revoke-others",
            call(&user, Method::POST, "/api/v1/sessions/revoke-others")
                .send()
                .await
                .unwrap()
        )
        .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        conforms(
            &doc,
            "post",
            "/api/v1/sessions/revoke-others",
            call(&user, Method::POST, "/api/v1/sessions/revoke-others")
                .header("x-csrf-token", &csrf)
                .send()
                .await
                .unwrap()
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(
        conforms(
            &doc,
            "delete",
            "/api/v1/sessions/{id}",
            call(
                &user,
                Method::DELETE,
                "/api/v1/sessions/AAAAAAAAAAAAAAAAAAAAAA"
            )
            .header("x-csrf-token", &csrf)
            .send()
            .await
            .unwrap()
        )
        .await,
        StatusCode::NOT_FOUND
    );
    let change = serde_json::json!({"current_password": PASSWORD, "new_password": "an even longer passphrase"});
    assert_eq!(
        conforms(
            &doc,
            "post",
            "/api/v1/password",
            call(&user, Method::POST, "/api/v1/password")
                .header("x-csrf-token", &csrf)
                .json(&change)
                .send()
                .await
                .unwrap()
        )
        .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        conforms(
            &doc,
            "get",
            "/api/v1/admin/stats",
            call(&user, Method::GET, "/api/v1/admin/stats")
                .send()
                .await
                .unwrap()
        )
        .await,
        StatusCode::FORBIDDEN
    );
    let admin_creds = serde_json::json!({"email": "admin@example.com", "password": PASSWORD});
    call(&admin, Method::POST, "/api/v1/login")
        .json(&admin_creds)
        .send()
        .await
        .unwrap();
    assert_eq!(
        conforms(
            &doc,
            "get",
            "/api/v1/admin/stats",
            call(&admin, Method::GET, "/api/v1/admin/stats")
                .send()
                .await
                .unwrap()
        )
        .await,
        StatusCode::OK
    );
    // One user's count, and an unknown one.
    let one = call(
        &admin,
        Method::GET,
        "/api/v1/admin/stats?email=admin%40example.com",
    )
    .send()
    .await
    .unwrap();
    let body: Value = serde_json::from_str(&one.text().await.unwrap()).unwrap();
    assert_eq!(body["user"]["active_sessions"], 1, "{body}");
    check(
        &body,
        &doc["paths"]["/api/v1/admin/stats"]["get"]["responses"]["200"]["content"]
            ["application/json"]["schema"],
        &doc,
        "stats with a user",
    )
    .unwrap();
    assert_eq!(
        conforms(
            &doc,
            "get",
            "/api/v1/admin/stats",
            call(
                &admin,
                Method::GET,
                "/api/v1/admin/stats?email=nobody%40example.com"
            )
            .send()
            .await
            .unwrap()
        )
        .await,
        StatusCode::NOT_FOUND
    );
    // An administrator signs a user out everywhere; a non-admin may not.
    let who = serde_json::json!({"email": "doc@example.com"});
    assert_eq!(
        conforms(
            &doc,
            "post",
            "/api/v1/admin/revoke-user",
            call(&user, Method::POST, "/api/v1/admin/revoke-user")
                .header("x-csrf-token", &csrf)
                .json(&who)
                .send()
                .await
                .unwrap()
        )
        .await,
        StatusCode::FORBIDDEN
    );
    let admin_me: Value = call(&admin, Method::GET, "/api/v1/me")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let admin_csrf = admin_me["csrf_token"].as_str().unwrap().to_owned();
    let nobody = serde_json::json!({"email": "nobody@example.com"});
    assert_eq!(
        conforms(
            &doc,
            "post",
            "/api/v1/admin/revoke-user",
            call(&admin, Method::POST, "/api/v1/admin/revoke-user")
                .header("x-csrf-token", &admin_csrf)
                .json(&nobody)
                .send()
                .await
                .unwrap()
        )
        .await,
        StatusCode::NOT_FOUND
    );
    let other_me = call(&other, Method::GET, "/api/v1/me")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(
        other_me,
        StatusCode::UNAUTHORIZED,
        "revoked by revoke-others above"
    );
    call(&other, Method::POST, "/api/v1/login").json(&serde_json::json!({"email": "doc@example.com", "password": "an even longer passphrase"})).send().await.unwrap();
    assert_eq!(
        call(&other, Method::GET, "/api/v1/me")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let revoke = call(&admin, Method::POST, "/api/v1/admin/revoke-user")
        .header("x-csrf-token", &admin_csrf)
        .json(&who)
        .send()
        .await
        .unwrap();
    assert_eq!(
        conforms(&doc, "post", "/api/v1/admin/revoke-user", revoke).await,
        StatusCode::OK
    );
    assert_eq!(
        call(&other, Method::GET, "/api/v1/me")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&user, Method::GET, "/api/v1/me")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        conforms(
            &doc,
            "post",
            "/api/v1/logout",
            call(&admin, Method::POST, "/api/v1/logout")
                .header("x-csrf-token", &admin_csrf)
                .send()
                .await
                .unwrap()
        )
        .await,
        StatusCode::NO_CONTENT
    );
}
