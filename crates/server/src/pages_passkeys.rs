//! `GET /account/passkeys`: the user's passkeys, with buttons to add and remove them (the
//! work is done by `/static/passkeys.js` over `/api/v1/passkeys/*`). Its section is the
//! `passkeys_section.html` partial, which `/account/security` embeds too.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ringfence_accounts::{StoredPasskey, User};
use ringfence_axum::RequestAuth;

use crate::errors::PageError;
use crate::pages::{signed_in, Layout};
use crate::state::AppState;
use crate::views::human_time;

/// One passkey as the page shows it.
pub struct PasskeyRow {
    /// Its id (for the remove button).
    pub id: String,
    /// Its name.
    pub name: String,
    /// When it was added, for people.
    pub created_at: String,
    /// When it last signed in, for people.
    pub last_used_at: Option<String>,
}

impl From<StoredPasskey> for PasskeyRow {
    fn from(p: StoredPasskey) -> Self {
        Self {
            id: p.id,
            name: p.name,
            created_at: human_time(p.created_at),
            last_used_at: p.last_used_at.map(human_time),
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "passkeys.html")]
struct PasskeysPage {
    layout: Layout,
    passkeys: Vec<PasskeyRow>,
}

/// The rows of the passkey section for `user`; `None` when passkeys are not enabled on this
/// node. A store that is down is the `503` page.
pub(crate) async fn passkey_rows(
    state: &AppState,
    user: &User,
) -> Result<Option<Vec<PasskeyRow>>, PageError> {
    let Some(service) = state.passkeys.as_ref() else {
        return Ok(None);
    };
    let list = service.list(&user.id).await.map_err(|e| {
        tracing::warn!(error = %e, "listing passkeys failed");
        PageError::status(
            StatusCode::SERVICE_UNAVAILABLE,
            "Passkeys unavailable",
            "Passkeys cannot be shown right now; try again shortly.",
        )
    })?;
    Ok(Some(list.into_iter().map(PasskeyRow::from).collect()))
}

/// `GET /account/passkeys`.
pub async fn passkeys(
    State(state): State<AppState>,
    auth: RequestAuth,
) -> Result<Response, PageError> {
    let (ctx, user, _) = signed_in(&state, &auth).await?;
    let passkeys = passkey_rows(&state, &user).await?.ok_or_else(|| {
        PageError::status(
            StatusCode::NOT_FOUND,
            "No passkeys here",
            "Passkeys are not enabled on this node.",
        )
    })?;
    Ok(PasskeysPage {
        layout: ctx.layout,
        passkeys,
    }
    .into_response())
}
