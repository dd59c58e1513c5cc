//! The OpenAPI document of the JSON API, generated from the handlers' annotations and response
//! types, served at `GET /api/v1/openapi.json`. A test calls every documented operation and
//! checks the answers against it, so it stays true.

use axum::Json;
use utoipa::OpenApi;

use crate::api;

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(title = "ringfence", description = "Accounts and sessions shared by every node of a fleet. Cookie-authenticated writes carry X-CSRF-Token (from login or GET /api/v1/me)."),
    paths(api::register, api::login, api::logout, api::me, api::sessions, api::revoke,
          api::revoke_others, api::change_password, api::admin_stats, api::admin_revoke_user),
    tags((name = "accounts"), (name = "sessions"), (name = "admin"))
)]
pub struct ApiDoc;

/// `GET /api/v1/openapi.json`.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
