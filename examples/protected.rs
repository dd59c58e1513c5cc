//! An app protecting its own routes with ringfence's extractors: a page for signed-in users
//! (`CurrentUser`), an admin-only route (`RequireAdmin`: `403` for others, checked before the
//! body is read) and an HTML form whose antiforgery token is checked before its fields are read
//! (`CsrfForm`).
//!
//! ```sh
//! cargo run --example protected
//! ```
//!
//! Environment: `LISTEN` (default `127.0.0.1:3000`), `DATA_DIR` (default `example-data`),
//! `ADMIN_EMAIL` and `ADMIN_PASSWORD` (an administrator created at start if absent).

use axum::response::Html;
use axum::routing::get;
use axum::Router;
use ringfence_axum::{
    account_routes, ApiError, CsrfForm, CurrentUser, RequestAuth, RequireAdmin, Ringfence,
};
use serde::Deserialize;

/// The notes form: `_csrf` is checked by `CsrfForm`, `note` is the app's own field.
#[derive(Deserialize)]
struct NoteForm {
    note: String,
}

/// A form page: the token goes in a hidden `_csrf` field.
async fn notes_page(
    auth: RequestAuth,
    CurrentUser { user, .. }: CurrentUser,
) -> Result<Html<String>, ApiError> {
    let token = auth.csrf_token()?;
    Ok(Html(format!(
        "<p>Notes of {}</p><form method=post action=/notes>\
         <input type=\"hidden\" name=\"_csrf\" value=\"{token}\"><input name=note><button>Save</button></form>",
        html_escape(&user.email)
    )))
}

/// Reached only with a valid token: a cross-site post gets `400` before this runs.
async fn save_note(
    CurrentUser { user, .. }: CurrentUser,
    CsrfForm(form): CsrfForm<NoteForm>,
) -> String {
    format!(
        "saved {} characters for {}\n",
        form.note.chars().count(),
        user.email
    )
}

/// Administrators only.
async fn admin(RequireAdmin { user, .. }: RequireAdmin) -> String {
    format!("admin area: welcome {}\n", user.email)
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data_dir = std::env::var("DATA_DIR").unwrap_or_else(|_| "example-data".into());
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());

    let ringfence = Ringfence::builder().embedded(data_dir).build().await?;
    // The first administrator, from the environment (`ringfence users add --admin` does the
    // same for `ringfence serve`); taken means it exists from an earlier start.
    if let (Ok(email), Ok(password)) = (
        std::env::var("ADMIN_EMAIL"),
        std::env::var("ADMIN_PASSWORD"),
    ) {
        match ringfence.accounts().add_user(&email, &password, true).await {
            Ok(_) | Err(ringfence_accounts::AccountError::EmailTaken) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let app = Router::new()
        .route("/notes", get(notes_page).post(save_note))
        .route("/admin", get(admin))
        .merge(account_routes())
        .layer(ringfence.layer());

    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    ringfence_axum::serve(listener, app).await?;
    Ok(())
}
