//! The OpenAPI document of the JSON API, generated from the handlers' annotations and response
//! types, served at `GET /api/v1/openapi.json`. A test calls every documented operation and
//! checks the answers against it, so it stays true.

use axum::Json;
use ringfence_axum::{PENDING_COOKIE, SESSION_COOKIE};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{account_api, admin_users_api, api, api_mfa, api_passkeys};

/// The security schemes the operations name: the session cookie, and the antiforgery header
/// cookie-authenticated writes carry.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                SESSION_COOKIE,
                "the session cookie POST /api/v1/login sets",
            ))),
        );
        components.add_security_scheme(
            "pending_sign_in_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                PENDING_COOKIE,
                "the pending sign-in cookie POST /api/v1/login sets for a user with a second factor (5 minutes); POST /api/v1/login/mfa or the passkey sign-in ceremony completes it",
            ))),
        );
        components.add_security_scheme(
            "csrf_header",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-CSRF-Token",
                "the csrf_token of the login response or of GET /api/v1/me",
            ))),
        );
    }
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(title = "ringfence", description = "Accounts and sessions shared by every node of a fleet. Cookie-authenticated writes carry X-CSRF-Token (from login or GET /api/v1/me)."),
    paths(api::register, api::login, api::logout, api::me, api::sessions, api::revoke,
          api::revoke_others, api::change_password, api::admin_stats, api::admin_revoke_user,
          account_api::forgot_password, account_api::reset_password, account_api::verify_email,
          account_api::resend_verification, account_api::request_email_change,
          account_api::confirm_email_change,
          admin_users_api::list_users, admin_users_api::disable_user, admin_users_api::enable_user,
          admin_users_api::send_password_reset, admin_users_api::set_password,
          admin_users_api::delete_user,
          api_mfa::reauth, api_mfa::totp_setup, api_mfa::totp_confirm, api_mfa::totp_delete,
          api_mfa::recovery_codes, api_mfa::login_mfa,
          api_passkeys::register_start, api_passkeys::register_finish, api_passkeys::list,
          api_passkeys::rename, api_passkeys::delete, api_passkeys::login_start,
          api_passkeys::login_finish),
    tags((name = "accounts"), (name = "sessions"), (name = "admin"), (name = "mfa"), (name = "passkeys")),
    modifiers(&SecuritySchemes)
)]
pub struct ApiDoc;

/// `GET /api/v1/openapi.json`.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
