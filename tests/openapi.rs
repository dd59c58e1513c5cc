//! The OpenAPI document at /api/v1/openapi.json is true: it lists exactly the API's routes, and
//! every operation, called on a running node, answers with a documented status and a body that
//! matches the documented schema field for field.

mod common;

use std::collections::BTreeSet;

use common::*;
use reqwest::{Client, Method, StatusCode};
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

/// Sends `request`, checks the answer against the document's `method path` operation, and
/// asserts its status.
async fn expect(
    doc: &Value,
    method: &str,
    path: &str,
    request: reqwest::RequestBuilder,
    status: StatusCode,
) {
    let response = request.send().await.unwrap();
    assert_eq!(
        conforms(doc, method, path, response).await,
        status,
        "{method} {path}"
    );
}

/// The document a node serves at `/api/v1/openapi.json`.
async fn document(base: &str) -> Value {
    reqwest::get(format!("{base}/api/v1/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// What a step of a [`Tour`] sends besides its method and path.
#[derive(Clone, Copy)]
enum With<'a> {
    /// Neither a CSRF header nor a body.
    Bare,
    /// The CSRF header.
    Csrf(&'a str),
    /// A JSON body.
    Json(&'a Value),
    /// The CSRF header and a JSON body.
    CsrfJson(&'a str, &'a Value),
    /// The CSRF header and a raw body, with its content type if any.
    CsrfRaw(&'a str, &'static str, Option<&'static str>),
}
use With::*;

/// One call of a [`Tour`]: who sends it, `"METHOD /path"` as called (`{id}`s filled in, a query
/// allowed), what it sends, and the status it must be answered with.
type Step<'a> = (&'a Client, &'a str, With<'a>, u16);

/// A running node's API checked against its document.
struct Tour<'a> {
    doc: &'a Value,
    base: &'a str,
}

impl Tour<'_> {
    /// Sends the steps in order; each answer must have the step's status, and the status and
    /// body must be documented for the operation the path falls under.
    async fn run(&self, steps: &[Step<'_>]) {
        for &(client, route, with, status) in steps {
            let (method, path) = route.split_once(' ').expect("METHOD /path");
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let request = client.request(method.clone(), format!("{}{path}", self.base));
            let request = match with {
                Bare => request,
                Csrf(token) => request.header("x-csrf-token", token),
                Json(body) => request.json(body),
                CsrfJson(token, body) => request.header("x-csrf-token", token).json(body),
                CsrfRaw(token, body, content_type) => {
                    let request = request.header("x-csrf-token", token).body(body);
                    match content_type {
                        Some(content_type) => request.header("content-type", content_type),
                        None => request,
                    }
                }
            };
            let method = method.as_str().to_lowercase();
            let operation = operation_of(self.doc, &method, path);
            let status = StatusCode::from_u16(status).unwrap();
            expect(self.doc, &method, &operation, request, status).await;
        }
    }
}

/// The documented path that `path` (as called, with a query or not) falls under for `method`:
/// literal segments match exactly, a `{name}` takes any one segment, and the template with the
/// most literal segments wins (`/sessions/revoke-others` is not a `/sessions/{id}`).
fn operation_of(doc: &Value, method: &str, path: &str) -> String {
    let called: Vec<&str> = path
        .split('?')
        .next()
        .unwrap_or_default()
        .split('/')
        .collect();
    doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, item)| item.get(method).is_some())
        .filter_map(|(template, _)| {
            let segments: Vec<&str> = template.split('/').collect();
            let fits = segments.len() == called.len()
                && segments
                    .iter()
                    .zip(&called)
                    .all(|(t, c)| t.starts_with('{') || t == c);
            let literal = segments.iter().filter(|t| !t.starts_with('{')).count();
            fits.then(|| (literal, template.clone()))
        })
        .max()
        .map(|(_, template)| template)
        .unwrap_or_else(|| panic!("{method} {path} falls under no documented operation"))
}

#[tokio::test]
async fn openapi_document_matches_the_running_api() {
    let data = tempfile::tempdir().unwrap();
    let node = node_with_admin("doc", data.path());
    let base = node.url();
    let doc = document(&base).await;
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
        "POST /api/v1/password/forgot",
        "POST /api/v1/password/reset",
        "POST /api/v1/email/verify",
        "POST /api/v1/email/verification",
        "POST /api/v1/email/change",
        "POST /api/v1/email/confirm",
        "GET /api/v1/admin/users",
        "DELETE /api/v1/admin/users/{id}",
        "POST /api/v1/admin/users/{id}/disable",
        "POST /api/v1/admin/users/{id}/enable",
        "POST /api/v1/admin/users/{id}/password",
        "POST /api/v1/admin/users/{id}/password-reset",
        "POST /api/v1/reauth",
        "POST /api/v1/mfa/totp/setup",
        "POST /api/v1/mfa/totp/confirm",
        "DELETE /api/v1/mfa/totp",
        "POST /api/v1/mfa/recovery-codes",
        "POST /api/v1/login/mfa",
        "POST /api/v1/passkeys/register/start",
        "POST /api/v1/passkeys/register/finish",
        "GET /api/v1/passkeys",
        "PATCH /api/v1/passkeys/{id}",
        "DELETE /api/v1/passkeys/{id}",
        "POST /api/v1/passkeys/login/start",
        "POST /api/v1/passkeys/login/finish",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(documented, routes);

    let user = browser();
    let other = browser();
    let admin = browser();
    let anonymous = browser();
    let tour = Tour {
        doc: &doc,
        base: &base,
    };
    let call = |client: &reqwest::Client, method: Method, path: &str| {
        client.request(method, format!("{base}{path}"))
    };
    // Signed out: every operation that needs a session says 401 in the documented shape.
    #[rustfmt::skip]
    let steps = [
        (&user, "GET /api/v1/me",                      Bare, 401),
        (&user, "GET /api/v1/sessions",                Bare, 401),
        (&user, "POST /api/v1/sessions/revoke-others", Bare, 401),
        (&user, "GET /api/v1/admin/stats",             Bare, 401),
    ];
    tour.run(&steps).await;
    let creds = serde_json::json!({"email": "doc@example.com", "password": PASSWORD});
    let weak = serde_json::json!({"email": "weak@example.com", "password": "short"});
    let wrong = serde_json::json!({"email": "doc@example.com", "password": "not the right one"});
    #[rustfmt::skip]
    let steps = [
        (&user, "POST /api/v1/register", Json(&creds), 201),
        (&user, "POST /api/v1/register", Json(&creds), 409),
        (&user, "POST /api/v1/register", Json(&weak),  422),
        (&user, "POST /api/v1/login",    Json(&wrong), 401),
        (&user, "POST /api/v1/login",    Json(&creds), 200),
    ];
    tour.run(&steps).await;
    call(&other, Method::POST, "/api/v1/login")
        .json(&creds)
        .send()
        .await
        .unwrap();
    let csrf = api_csrf(&user, &base).await;
    let unknown_ceremony = serde_json::json!({"challenge_id": "A".repeat(43), "name": "Laptop", "credential": {"id": "AA", "rawId": "AA", "type": "public-key", "response": {"clientDataJSON": "e30", "attestationObject": "oA"}, "clientExtensionResults": {}}});
    let rename = serde_json::json!({"name": "Phone"});
    let empty = serde_json::json!({});
    let change = serde_json::json!({"current_password": PASSWORD, "new_password": "an even longer passphrase"});
    let unknown_session = "DELETE /api/v1/sessions/AAAAAAAAAAAAAAAAAAAAAA";
    #[rustfmt::skip]
    let steps = [
        (&user,      "GET /api/v1/me",                        Bare,                               200),
        (&user,      "GET /api/v1/sessions",                  Bare,                               200),
        (&user,      "POST /api/v1/sessions/revoke-others",   Bare,                               403),
        (&user,      "POST /api/v1/sessions/revoke-others",   Csrf(&csrf),                        200),
        (&user,      unknown_session,                         Csrf(&csrf),                        404),
        (&user,      "GET /api/v1/passkeys",                  Bare,                               200),
        (&user,      "POST /api/v1/passkeys/register/start",  Csrf(&csrf),                        200),
        (&user,      "POST /api/v1/passkeys/register/finish", CsrfJson(&csrf, &unknown_ceremony), 422),
        (&user,      "PATCH /api/v1/passkeys/nope",           CsrfJson(&csrf, &rename),           404),
        (&user,      "DELETE /api/v1/passkeys/nope",          Csrf(&csrf),                        404),
        (&anonymous, "POST /api/v1/passkeys/login/start",     Json(&empty),                       200),
        // Signed in, the ceremony re-authenticates with the account's own passkeys: it has none.
        (&user,      "POST /api/v1/passkeys/login/start",     Json(&empty),                       409),
        // A registration's answer where an assertion belongs: malformed_credential.
        (&other,     "POST /api/v1/passkeys/login/finish",    Json(&unknown_ceremony),            422),
        (&user,      "POST /api/v1/password",                 CsrfJson(&csrf, &change),           204),
        (&user,      "GET /api/v1/admin/stats",               Bare,                               403),
    ];
    tour.run(&steps).await;
    let admin_creds = serde_json::json!({"email": "admin@example.com", "password": PASSWORD});
    call(&admin, Method::POST, "/api/v1/login")
        .json(&admin_creds)
        .send()
        .await
        .unwrap();
    let unknown = serde_json::json!({"email": "nobody@example.com"});
    let bad_token =
        serde_json::json!({"token": "not-a-token", "new_password": "an even longer passphrase"});
    let token = serde_json::json!({"token": "AAAA"});
    #[rustfmt::skip]
    let steps = [
        (&admin, "GET /api/v1/admin/stats",            Bare,             200),
        // The mail routes (issue 14): the answers a client without a mail can provoke.
        (&user,  "POST /api/v1/password/forgot",       Json(&unknown),   202),
        (&user,  "POST /api/v1/password/reset",        Json(&bad_token), 400),
        (&user,  "POST /api/v1/email/verify",          Json(&token),     400),
        (&user,  "POST /api/v1/email/confirm",         Json(&token),     400),
        (&admin, "POST /api/v1/email/verification",    Bare,             403),
        (&user,  "GET /api/v1/admin/users",            Bare,             403),
        (&admin, "GET /api/v1/admin/users?limit=1000", Bare,             400),
    ];
    tour.run(&steps).await;
    let listed = call(&admin, Method::GET, "/api/v1/admin/users?limit=1")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), StatusCode::OK);
    let listed: Value = listed.json().await.unwrap();
    check(
        &listed,
        &doc["paths"]["/api/v1/admin/users"]["get"]["responses"]["200"]["content"]
            ["application/json"]["schema"],
        &doc,
        "a page of users",
    )
    .unwrap();
    assert_eq!(listed["users"].as_array().unwrap().len(), 1, "{listed}");
    let found: Value = call(
        &admin,
        Method::GET,
        "/api/v1/admin/users?email=doc%40example.com",
    )
    .answer_json()
    .await;
    assert_eq!(found["users"][0]["email"], "doc@example.com", "{found}");
    assert_eq!(found["users"][0]["email_verified"], false, "{found}");
    assert_eq!(found["users"][0]["mfa"]["totp"], false, "{found}");

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
    let who = serde_json::json!({"email": "doc@example.com"});
    #[rustfmt::skip]
    let steps = [
        (&admin, "GET /api/v1/admin/stats?email=nobody%40example.com", Bare,                  404),
        // An administrator signs a user out everywhere; a non-admin may not.
        (&user,  "POST /api/v1/admin/revoke-user",                     CsrfJson(&csrf, &who), 403),
    ];
    tour.run(&steps).await;
    let admin_csrf = api_csrf(&admin, &base).await;
    for route in [
        "DELETE /api/v1/admin/users/{id}",
        "POST /api/v1/admin/users/{id}/disable",
        "POST /api/v1/admin/users/{id}/enable",
        "POST /api/v1/admin/users/{id}/password-reset",
    ] {
        let route = route.replace("{id}", "no-such-user");
        let route = route.as_str();
        #[rustfmt::skip]
        let steps = [
            (&admin, route, Csrf(&admin_csrf), 404),
            (&user,  route, Csrf(&csrf),       403),
        ];
        tour.run(&steps).await;
    }
    let revoke_user = "POST /api/v1/admin/revoke-user";
    let nobody = serde_json::json!({"email": "nobody@example.com"});
    #[rustfmt::skip]
    let steps = [
        (&admin, revoke_user, CsrfJson(&admin_csrf, &nobody), 404),
    ];
    tour.run(&steps).await;
    assert_eq!(
        call(&other, Method::GET, "/api/v1/me")
            .answer_status()
            .await,
        StatusCode::UNAUTHORIZED,
        "revoked by revoke-others above"
    );
    call(&other, Method::POST, "/api/v1/login").json(&serde_json::json!({"email": "doc@example.com", "password": "an even longer passphrase"})).send().await.unwrap();
    assert_eq!(
        call(&other, Method::GET, "/api/v1/me")
            .answer_status()
            .await,
        StatusCode::OK
    );
    #[rustfmt::skip]
    let steps = [
        (&admin, revoke_user, CsrfJson(&admin_csrf, &who), 200),
    ];
    tour.run(&steps).await;
    assert_eq!(
        call(&other, Method::GET, "/api/v1/me")
            .answer_status()
            .await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&user, Method::GET, "/api/v1/me").answer_status().await,
        StatusCode::UNAUTHORIZED
    );
    // A disabled account's right password is 403 (account_disabled); enabled again, an
    // administrator sets its password: a weak one is 422 with the reason, a strong one 204.
    let listed: Value = call(
        &admin,
        Method::GET,
        "/api/v1/admin/users?email=doc%40example.com",
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let id = listed["users"][0]["id"].as_str().unwrap().to_owned();
    let doc_creds =
        serde_json::json!({"email": "doc@example.com", "password": "an even longer passphrase"});
    let (disable, enable, set_password) = (
        format!("POST /api/v1/admin/users/{id}/disable"),
        format!("POST /api/v1/admin/users/{id}/enable"),
        format!("POST /api/v1/admin/users/{id}/password"),
    );
    let weak = serde_json::json!({"password": "password1234"});
    let strong = serde_json::json!({"password": "violet kettle harbour seventeen"});
    #[rustfmt::skip]
    let steps = [
        (&admin, disable.as_str(),      Csrf(&admin_csrf),              204),
        (&other, "POST /api/v1/login",  Json(&doc_creds),               403),
        (&admin, enable.as_str(),       Csrf(&admin_csrf),              204),
        (&admin, "POST /api/v1/admin/users/no-such-user/password", CsrfJson(&admin_csrf, &strong), 404),
        (&admin, set_password.as_str(), Csrf(&admin_csrf),              415),
        (&admin, set_password.as_str(), CsrfJson(&admin_csrf, &weak),   422),
        (&admin, set_password.as_str(), CsrfJson(&admin_csrf, &strong), 204),
        (&other, "POST /api/v1/login",  Json(&doc_creds),               401),
        (&admin, "POST /api/v1/logout", Csrf(&admin_csrf),              204),
    ];
    tour.run(&steps).await;
}

/// A node on a fresh data dir with one administrator, `admin@example.com`.
fn node_with_admin(name: &str, data: &std::path::Path) -> ringfence_testkit::NodeProcess {
    let dir = data.display().to_string();
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
    start_node(name, data, &[])
}

/// Finding 12 of issue 13: every operation lists every status it can answer and its security:
/// the session cookie, and the CSRF header on the cookie-authenticated writes.
#[tokio::test]
async fn finding_12_every_operation_lists_its_statuses_and_security() {
    let data = tempfile::tempdir().unwrap();
    let node = start_node("doc", data.path(), &[]);
    let doc = document(&node.url()).await;
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["session_cookie"]["type"], "apiKey", "{schemes}");
    assert_eq!(schemes["session_cookie"]["in"], "cookie");
    assert_eq!(schemes["session_cookie"]["name"], "ringfence_session");
    assert_eq!(schemes["csrf_header"]["type"], "apiKey");
    assert_eq!(schemes["csrf_header"]["in"], "header");
    assert_eq!(schemes["csrf_header"]["name"], "X-CSRF-Token");

    let none = serde_json::json!([{}]);
    let cookie = serde_json::json!([{"session_cookie": []}]);
    let write = serde_json::json!([{"session_cookie": [], "csrf_header": []}]);
    let optional_write = serde_json::json!([{}, {"session_cookie": [], "csrf_header": []}]);
    let pending = serde_json::json!([{"pending_sign_in_cookie": [], "csrf_header": []}]);
    // Anybody (passkey alone), a pending sign-in (second step) or a session (re-auth).
    let passkey_ceremony =
        serde_json::json!([{}, {"pending_sign_in_cookie": []}, {"session_cookie": []}]);
    // Each operation: its method and path, its security (by the names above) and every status
    // it lists.
    let operations = "
POST /api/v1/reauth                           write             204 400 401 403 413 415 422 429 503
POST /api/v1/mfa/totp/setup                   write             200 401 403 503
POST /api/v1/mfa/totp/confirm                 write             200 400 401 403 409 413 415 422 429 503
DELETE /api/v1/mfa/totp                       write             204 401 403 503
POST /api/v1/mfa/recovery-codes               write             200 401 403 409 503
POST /api/v1/login/mfa                        pending           200 400 401 403 413 415 422 429 503
POST /api/v1/register                         none              201 400 409 413 415 422 429 503
POST /api/v1/login                            none              200 400 401 403 413 415 422 429 503
POST /api/v1/logout                           optional_write    204 403 503
GET /api/v1/me                                cookie            200 401 503
GET /api/v1/sessions                          cookie            200 401 503
DELETE /api/v1/sessions/{id}                  write             204 401 403 404 503
POST /api/v1/sessions/revoke-others           write             200 401 403 503
POST /api/v1/password                         write             204 400 401 403 413 415 422 429 503
GET /api/v1/admin/stats                       cookie            200 400 401 403 404 503
POST /api/v1/admin/revoke-user                write             200 400 401 403 404 413 415 422 503
POST /api/v1/password/forgot                  none              202 400 413 415 422 429 503
POST /api/v1/password/reset                   none              204 400 413 415 422 503
POST /api/v1/email/verify                     none              204 400 413 415 422 503
POST /api/v1/email/verification               write             202 401 403 429 503
POST /api/v1/email/change                     write             202 400 401 403 409 413 415 422 429 503
POST /api/v1/email/confirm                    none              204 400 409 413 415 422 503
GET /api/v1/admin/users                       cookie            200 400 401 403 503
DELETE /api/v1/admin/users/{id}               write             204 401 403 404 503
POST /api/v1/admin/users/{id}/disable         write             204 401 403 404 503
POST /api/v1/admin/users/{id}/password        write             204 400 401 403 404 413 415 422 503
POST /api/v1/admin/users/{id}/enable          write             204 401 403 404 503
POST /api/v1/admin/users/{id}/password-reset  write             204 401 403 404 503
POST /api/v1/passkeys/register/start          write             200 401 403 404 503
POST /api/v1/passkeys/register/finish         write             201 400 401 403 404 409 413 415 422 503
GET /api/v1/passkeys                          cookie            200 401 404 503
PATCH /api/v1/passkeys/{id}                   write             204 400 401 403 404 413 415 422 503
DELETE /api/v1/passkeys/{id}                  write             204 401 403 404 503
POST /api/v1/passkeys/login/start             passkey_ceremony  200 400 401 403 404 409 413 415 422 503
POST /api/v1/passkeys/login/finish            passkey_ceremony  200 400 401 403 404 413 415 422 429 503
";
    let lines: Vec<&str> = operations
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 35);
    for line in lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (method, path) = (words[0].to_lowercase(), words[1]);
        let security = match words[2] {
            "none" => &none,
            "cookie" => &cookie,
            "write" => &write,
            "optional_write" => &optional_write,
            "pending" => &pending,
            "passkey_ceremony" => &passkey_ceremony,
            other => panic!("unknown security {other}"),
        };
        let statuses: Vec<u16> = words[3..].iter().map(|s| s.parse().unwrap()).collect();
        let operation = &doc["paths"][path][&method];
        let listed: BTreeSet<u16> = operation["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path} is not documented"))
            .keys()
            .map(|s| s.parse().unwrap())
            .collect();
        let expected: BTreeSet<u16> = statuses.iter().copied().collect();
        assert_eq!(listed, expected, "{method} {path}");
        assert_eq!(&operation["security"], security, "{method} {path}");
        // The CSRF header is the security scheme's, not a parameter of its own.
        let parameters = operation["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            parameters.iter().all(|p| !p["name"]
                .as_str()
                .unwrap_or_default()
                .eq_ignore_ascii_case("x-csrf-token")),
            "{method} {path}: {parameters:?}"
        );
    }
}

/// Every second-factor operation, called on a running node, answers with documented statuses
/// and bodies (the login's two shapes included).
#[tokio::test]
async fn mfa_operations_match_the_document() {
    use ringfence_accounts::factors::totp::TotpSecret;
    let data = tempfile::tempdir().unwrap();
    let node = start_node("doc", data.path(), &["--reauth-window".into(), "1s".into()]);
    let base = node.url();
    let doc = document(&base).await;
    let tour = Tour {
        doc: &doc,
        base: &base,
    };
    let user = browser();
    let call = |client: &reqwest::Client, method: Method, path: &str| {
        client.request(method, format!("{base}{path}"))
    };
    let creds = serde_json::json!({"email": "mfa@example.com", "password": PASSWORD});
    call(&user, Method::POST, "/api/v1/register")
        .json(&creds)
        .send()
        .await
        .unwrap();
    let login: Value = call(&user, Method::POST, "/api/v1/login")
        .json(&creds)
        .answer_json()
        .await;
    let csrf = login["csrf_token"].as_str().unwrap().to_owned();
    let confirm = "POST /api/v1/mfa/totp/confirm";
    let some_code = serde_json::json!({"code": "123456"});
    #[rustfmt::skip]
    let steps = [
        (&user, confirm,                           CsrfJson(&csrf, &some_code), 409),
        (&user, "POST /api/v1/mfa/recovery-codes", Csrf(&csrf),                 409),
        (&user, "POST /api/v1/mfa/totp/setup",     Bare,                        403),
        (&user, "POST /api/v1/mfa/totp/setup",     Csrf(&csrf),                 200),
    ];
    tour.run(&steps).await;
    let setup: Value = call(&user, Method::POST, "/api/v1/mfa/totp/setup")
        .header("x-csrf-token", &csrf)
        .answer_json()
        .await;
    let secret = TotpSecret::from_base32(setup["secret"].as_str().unwrap()).unwrap();
    let now = chrono::Utc::now();
    let not_digits = serde_json::json!({"code": "12345x"});
    let a_number = serde_json::json!({"code": 1});
    let current = serde_json::json!({"code": secret.code_at(now - chrono::Duration::seconds(30))});
    #[rustfmt::skip]
    let steps = [
        (&user, confirm,                           CsrfJson(&csrf, &not_digits),                  401),
        (&user, confirm,                           CsrfJson(&csrf, &a_number),                    422),
        (&user, confirm,                           CsrfRaw(&csrf, "{", Some("application/json")), 400),
        (&user, confirm,                           CsrfRaw(&csrf, "x", None),                     415),
        (&user, confirm,                           CsrfJson(&csrf, &current),                     200),
        (&user, "GET /api/v1/me",                  Bare,                                          200),
        (&user, "POST /api/v1/mfa/recovery-codes", Csrf(&csrf),                                   200),
    ];
    tour.run(&steps).await;
    // The two-step sign-in: the login's second shape, then the second step.
    let phone = browser();
    #[rustfmt::skip]
    let steps = [
        (&phone, "POST /api/v1/login/mfa", Json(&some_code), 401),
        (&phone, "POST /api/v1/login",     Json(&creds),     200),
    ];
    tour.run(&steps).await;
    let pending: Value = call(&phone, Method::POST, "/api/v1/login")
        .json(&creds)
        .answer_json()
        .await;
    assert_eq!(pending["mfa_required"], true);
    let pending_csrf = pending["csrf_token"].as_str().unwrap().to_owned();
    let second = "POST /api/v1/login/mfa";
    let empty = serde_json::json!({});
    let wrong = serde_json::json!({"code": secret.code_at(now + chrono::Duration::seconds(300))});
    let code = serde_json::json!({
        "code": secret.code_at(chrono::Utc::now() + chrono::Duration::seconds(30))
    });
    #[rustfmt::skip]
    let steps = [
        (&phone, second, Json(&some_code),                403),
        (&phone, second, CsrfJson(&pending_csrf, &empty), 422),
        (&phone, second, CsrfJson(&pending_csrf, &wrong), 401),
        (&phone, second, CsrfJson(&pending_csrf, &code),  200),
    ];
    tour.run(&steps).await;
    // Past the window: 403 reauth_required, then /reauth, then the operation.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let reauth = "POST /api/v1/reauth";
    let wrong_password = serde_json::json!({"password": "wrong password here"});
    let not_a_string = serde_json::json!({"password": 5});
    let password = serde_json::json!({"password": PASSWORD});
    let anonymous = browser();
    #[rustfmt::skip]
    let steps = [
        (&user,      "DELETE /api/v1/mfa/totp", Csrf(&csrf),                      403),
        (&user,      reauth,                    CsrfJson(&csrf, &wrong_password), 401),
        (&user,      reauth,                    CsrfJson(&csrf, &not_a_string),   422),
        (&user,      reauth,                    CsrfJson(&csrf, &creds),          422),
        (&user,      reauth,                    CsrfJson(&csrf, &password),       204),
        (&user,      "DELETE /api/v1/mfa/totp", Csrf(&csrf),                      204),
        (&phone,     reauth,                    Json(&password),                  403),
        (&anonymous, reauth,                    Json(&password),                  401),
    ];
    tour.run(&steps).await;
}

/// The `st` program of the schemathesis that scripts/test.sh installs (`RINGFENCE_SCHEMATHESIS`
/// names it; otherwise the virtualenv scripts/test.sh makes under the user's cache).
fn schemathesis() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("RINGFENCE_SCHEMATHESIS") {
        return path.into();
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cache")))
        .expect("HOME or XDG_CACHE_HOME is set");
    let st = cache.join("ringfence/schemathesis-venv/bin/st");
    assert!(
        st.exists(),
        "{} is missing: scripts/test.sh installs schemathesis (or set RINGFENCE_SCHEMATHESIS)",
        st.display()
    );
    st
}

/// Runs schemathesis against `base` with every check on, a bounded number of examples per
/// operation and a fixed seed (a failure reproduces), signed in with `session` (the session
/// cookie's value and its CSRF token); returns whether it found nothing, and its report.
async fn run_schemathesis(base: &str, session: (&str, &str), filter: &[&str]) -> (bool, String) {
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/schemathesis/schemathesis.toml");
    let reports = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(schemathesis());
    command
        .arg("--config-file")
        .arg(&config)
        .arg("--no-color")
        .arg("run")
        .arg(format!("{base}/api/v1/openapi.json"))
        .args(["--url", base])
        .args(["--checks", "all"])
        .args(["--max-examples", "25"])
        .args(["--seed", "13"])
        .args(["--workers", "2"])
        .args(["--request-timeout", "10"])
        .arg("--report-dir")
        .arg(reports.path())
        .args(filter)
        .env("NO_COLOR", "1")
        .env("RINGFENCE_SESSION_COOKIE", session.0)
        .env("RINGFENCE_CSRF_TOKEN", session.1)
        .current_dir(reports.path())
        .kill_on_drop(true);
    let output = tokio::time::timeout(std::time::Duration::from_secs(300), command.output())
        .await
        .expect("schemathesis finished within 5 minutes")
        .expect("schemathesis runs");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), report)
}

/// Finding 12 of issue 13: schemathesis, with every check on, finds nothing against a live
/// node: no 500, every status and body as documented, invalid input refused, the security
/// honoured. It runs signed in as an administrator (cookie and CSRF header from a sign-in the
/// test does), so the signed-in and admin operations are reached, not only their 401s.
#[tokio::test]
async fn finding_12_schemathesis_finds_nothing_against_a_live_node() {
    let data = tempfile::tempdir().unwrap();
    let node = node_with_admin("fuzzed", data.path());
    let base = node.url();

    // The operations that end the session the run is signed in with: logout, deleting a
    // session (the stateful phase takes ids from GET /api/v1/sessions, the current one among
    // them) and signing a user out everywhere (it takes the e-mail from GET /api/v1/me, the
    // administrator's own). In the same run they would leave every later operation its 401s
    // only, so they get a run of their own, last, with a session of their own.
    // The admin actions on a user (they may take the administrator's own id from GET
    // /api/v1/admin/users) join them.
    let ending = "^/api/v1/(logout|sessions/\\{id\\}|admin/revoke-user|admin/users/\\{id\\}.*)$";
    let (client, cookie, csrf) = sign_in_admin(&base).await;
    let (ok, report) =
        run_schemathesis(&base, (&cookie, &csrf), &["--exclude-path-regex", ending]).await;
    assert!(ok, "schemathesis found failures:\n{report}");
    assert_eq!(
        client
            .get(format!("{base}/api/v1/me"))
            .answer_status()
            .await,
        StatusCode::OK,
        "the session outlived the run: the operations were reached signed in"
    );
    let (_, cookie, csrf) = sign_in_admin(&base).await;
    let (ok, report) =
        run_schemathesis(&base, (&cookie, &csrf), &["--include-path-regex", ending]).await;
    assert!(ok, "schemathesis found failures:\n{report}");
    let log = node.output();
    assert!(!log.contains("panicked"), "{log}");
}

/// Signs in as `admin@example.com`: the client (holding the session), the session cookie's
/// value and the CSRF token.
async fn sign_in_admin(base: &str) -> (reqwest::Client, String, String) {
    let client = browser();
    let login = client
        .post(format!("{base}/api/v1/login"))
        .json(&serde_json::json!({"email": "admin@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let cookie = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.split(';').next()?.strip_prefix("ringfence_session="))
        .expect("the session cookie")
        .to_owned();
    let body: Value = login.json().await.unwrap();
    let csrf = body["csrf_token"].as_str().unwrap().to_owned();
    (client, cookie, csrf)
}
