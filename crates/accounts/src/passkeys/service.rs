//! The passkey ceremonies over webauthn-rs, with their state in the shared token store.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::{
    AuthenticationResult, CreationChallengeResponse, DiscoverableAuthentication, Passkey,
    PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse, Url, Uuid, Webauthn, WebauthnBuilder, WebauthnError,
};
use webauthn_rs_proto::ResidentKeyRequirement;

use super::{PasskeyStore, PasskeyStoreError, StoredPasskey, CEREMONY_LIFETIME};
use crate::notify::AccountMail;
use crate::tokens::{account_binding, bindings_match, MailToken, MailTokenRecord, MailTokenStore};
use crate::{AccountError, Accounts, Email, TokenPurpose, TokenStoreError, User};

/// Longest passkey name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// A started ceremony: what the browser gets.
#[derive(Debug, Clone, Serialize)]
pub struct Ceremony {
    /// The token naming the ceremony's state; sent back with the finish.
    pub challenge_id: String,
    /// The options for `navigator.credentials.create/get` in their JSON form (binary fields
    /// URL-safe base64), as `PublicKeyCredential.parseCreationOptionsFromJSON` /
    /// `parseRequestOptionsFromJSON` take them.
    #[serde(rename = "publicKey")]
    pub public_key: serde_json::Value,
}

/// Why a passkey operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    /// The name is empty, too long or holds control characters. HTTP `422`.
    #[error("{0}")]
    InvalidName(String),
    /// The `challenge_id` names no live ceremony of this kind (and this user): unknown,
    /// finished already, expired. HTTP `400` `invalid_challenge`.
    #[error("this passkey ceremony is unknown, finished already or expired; please start again")]
    InvalidChallenge,
    /// The credential is not JSON of the expected shape. HTTP `400`.
    #[error("malformed credential: {0}")]
    MalformedCredential(String),
    /// The authenticator's answer does not verify (wrong origin, wrong RP id, wrong challenge,
    /// bad signature, no user verification, unknown credential). HTTP `400` on registration,
    /// `401` on sign-in.
    #[error("the passkey was refused: {0}")]
    Rejected(String),
    /// The credential is registered already. HTTP `409`.
    #[error("this passkey is registered already")]
    Duplicate,
    /// No such passkey of this user. HTTP `404`.
    #[error("no such passkey")]
    NotFound,
    /// A ceremony for one account (the second step of a sign-in, or re-authentication) was
    /// answered with a registered passkey of another account. HTTP `403`
    /// `passkey_other_account`; nobody is signed in or switched to that account.
    #[error("this passkey belongs to another account than the one signing in or signed in here; use one of this account's passkeys (or sign out first to use that account)")]
    OtherAccount,
    /// A ceremony for one account was asked for, and the account has no passkeys. HTTP `409`
    /// `no_passkeys`.
    #[error("this account has no passkeys")]
    NoPasskeys,
    /// The account side failed (disabled account, store down).
    #[error(transparent)]
    Account(#[from] AccountError),
}

impl From<PasskeyStoreError> for PasskeyError {
    fn from(e: PasskeyStoreError) -> Self {
        match e {
            PasskeyStoreError::Duplicate => PasskeyError::Duplicate,
            PasskeyStoreError::Unavailable(msg) => PasskeyError::Account(AccountError::Store(msg)),
            PasskeyStoreError::Corrupt(msg) | PasskeyStoreError::Migration(msg) => {
                PasskeyError::Account(AccountError::Corrupt(msg))
            }
        }
    }
}

impl From<TokenStoreError> for PasskeyError {
    fn from(e: TokenStoreError) -> Self {
        match e {
            TokenStoreError::Unavailable(msg) => PasskeyError::Account(AccountError::Store(msg)),
            other => PasskeyError::Account(AccountError::Corrupt(other.to_string())),
        }
    }
}

/// What a sign-in ceremony remembers. Untagged: the two kinds have distinct fields, and a
/// ceremony stored by a node of the previous release (always [`LoginState::AnyAccount`]) still
/// reads.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum LoginState {
    /// For one account (its id is the ceremony record's `user_id`): webauthn-rs's state, which
    /// lists that account's credentials.
    OneAccount {
        account_state: PasskeyAuthentication,
    },
    /// For whoever's discoverable passkey answers: webauthn-rs's state and, when the client
    /// named one, the account the passkey must belong to.
    AnyAccount {
        state: DiscoverableAuthentication,
        email: Option<String>,
    },
}

/// How a sign-in ceremony was started, which decides what its finish may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyScope {
    /// [`PasskeyService::start_login`]: any account's passkey; proving it is a complete
    /// sign-in.
    AnyAccount,
    /// [`PasskeyService::start_login_for`]: a passkey of one account (the second step after a
    /// password, or re-authentication of a signed-in session).
    OneAccount,
}

/// A finished sign-in ceremony: whose passkey answered, and how the ceremony was started.
#[derive(Debug, Clone)]
pub struct PasskeyProof {
    /// The owner of the passkey (enabled).
    pub user: User,
    /// How the ceremony was started.
    pub scope: CeremonyScope,
}

/// Passkeys of the accounts of one [`Accounts`]: registration, listing, removal and sign-in.
/// Cheap to clone.
#[derive(Clone)]
pub struct PasskeyService {
    inner: Arc<Inner>,
}

struct Inner {
    webauthn: Webauthn,
    accounts: Accounts,
    passkeys: Arc<dyn PasskeyStore>,
    ceremonies: Arc<dyn MailTokenStore>,
}

impl std::fmt::Debug for PasskeyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasskeyService")
            .field("origins", &self.inner.webauthn.get_allowed_origins())
            .finish_non_exhaustive()
    }
}

impl PasskeyService {
    /// The service for the relying party at `public_url` (its host is the RP id, its origin
    /// the one origin accepted), passkeys in `passkeys`, ceremony state in `ceremonies` (the
    /// fleet's shared token store).
    pub fn new(
        accounts: Accounts,
        passkeys: Arc<dyn PasskeyStore>,
        ceremonies: Arc<dyn MailTokenStore>,
        public_url: &str,
    ) -> Result<Self, AccountError> {
        let public_url = Url::parse(public_url).map_err(|e| {
            AccountError::InvalidConfig(format!("the public URL {public_url:?} is invalid: {e}"))
        })?;
        let rp_id = public_url.host_str().ok_or_else(|| {
            AccountError::InvalidConfig(format!("the public URL {public_url} has no host"))
        })?;
        let origin = Url::parse(&public_url.origin().ascii_serialization())
            .map_err(|e| AccountError::InvalidConfig(format!("public URL origin: {e}")))?;
        let webauthn = WebauthnBuilder::new(rp_id, &origin)
            .and_then(|b| b.rp_name("ringfence").build())
            .map_err(|e| {
                AccountError::InvalidConfig(format!(
                    "passkeys cannot use {public_url} as the relying party: {e}"
                ))
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                webauthn,
                accounts,
                passkeys,
                ceremonies,
            }),
        })
    }

    /// The passkey store.
    pub fn store(&self) -> &Arc<dyn PasskeyStore> {
        &self.inner.passkeys
    }

    /// How many passkeys the user has (`user.mfa.passkeys` in `/api/v1/me`).
    pub async fn count(&self, user_id: &str) -> Result<u64, PasskeyError> {
        Ok(self.inner.passkeys.count(user_id).await?)
    }

    /// The user's passkeys, oldest first.
    pub async fn list(&self, user_id: &str) -> Result<Vec<StoredPasskey>, PasskeyError> {
        Ok(self.inner.passkeys.list(user_id).await?)
    }

    /// Starts registering a passkey for `user` (the caller checked recent authentication). The
    /// options ask for a discoverable credential with user verification, and exclude the
    /// user's registered credentials.
    pub async fn start_registration(&self, user: &User) -> Result<Ceremony, PasskeyError> {
        let handle = user_handle(&user.id)?;
        let existing = self.inner.passkeys.list(&user.id).await?;
        let exclude = existing
            .iter()
            .filter_map(|p| parse_passkey(&p.credential).ok())
            .map(|p| p.cred_id().clone())
            .collect::<Vec<_>>();
        let (mut options, state): (CreationChallengeResponse, PasskeyRegistration) = self
            .inner
            .webauthn
            .start_passkey_registration(handle, &user.email, &user.email, Some(exclude))
            .map_err(|e| AccountError::Internal(format!("passkey registration options: {e}")))?;
        // Sign-in without an e-mail needs the authenticator to keep the credential (a
        // discoverable one); webauthn-rs's default only prefers it. Verification ignores it.
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.resident_key = Some(ResidentKeyRequirement::Required);
            selection.require_resident_key = true;
        }
        let record = self.inner.accounts.users().by_id(&user.id).await;
        let record = record
            .map_err(AccountError::from)?
            .ok_or(AccountError::UserNotFound)?;
        let payload = to_json(&state)?;
        let challenge_id = self
            .begin(
                TokenPurpose::PasskeyRegistration,
                &user.id,
                account_binding(&record),
                payload,
            )
            .await?;
        Ok(Ceremony {
            challenge_id,
            public_key: public_key_of(&options)?,
        })
    }

    /// Finishes a registration started by [`Self::start_registration`] for the same user: the
    /// ceremony is spent whatever the outcome (a refused answer needs a new start). Queues the
    /// [`AccountMail::PasskeyAdded`] notice.
    pub async fn finish_registration(
        &self,
        user: &User,
        challenge_id: &str,
        name: &str,
        credential: &serde_json::Value,
    ) -> Result<StoredPasskey, PasskeyError> {
        let name = check_name(name)?;
        let credential: RegisterPublicKeyCredential = serde_json::from_value(credential.clone())
            .map_err(|e| PasskeyError::MalformedCredential(e.to_string()))?;
        let taken = self
            .take(TokenPurpose::PasskeyRegistration, challenge_id)
            .await?;
        if taken.user_id != user.id {
            return Err(PasskeyError::InvalidChallenge);
        }
        let record = self
            .inner
            .accounts
            .users()
            .by_id(&user.id)
            .await
            .map_err(AccountError::from)?
            .ok_or(AccountError::UserNotFound)?;
        // A password or address change since the start voids the ceremony, as it voids links.
        if !bindings_match(&taken.binding, &account_binding(&record)) {
            return Err(PasskeyError::InvalidChallenge);
        }
        let state: PasskeyRegistration = from_payload(&taken)?;
        let passkey = self
            .inner
            .webauthn
            .finish_passkey_registration(&credential, &state)
            .map_err(rejected)?;
        let now = now_millis(&self.inner.accounts);
        let stored = StoredPasskey {
            id: Uuid::new_v4().to_string(),
            user_id: user.id.clone(),
            name,
            credential_id: URL_SAFE_NO_PAD.encode::<&[u8]>(passkey.cred_id().as_ref()),
            credential: to_json(&passkey)?,
            created_at: now,
            last_used_at: None,
        };
        self.inner.passkeys.insert(&stored).await?;
        self.inner.accounts.second_factors_changed(&user.id).await;
        tracing::info!(user_id = %user.id, passkey_id = %stored.id, "passkey registered");
        self.inner.accounts.notify(
            user,
            AccountMail::PasskeyAdded {
                name: stored.name.clone(),
            },
        );
        Ok(stored)
    }

    /// Renames the user's passkey `id`.
    pub async fn rename(&self, user: &User, id: &str, name: &str) -> Result<(), PasskeyError> {
        let name = check_name(name)?;
        if !self.inner.passkeys.rename(&user.id, id, &name).await? {
            return Err(PasskeyError::NotFound);
        }
        Ok(())
    }

    /// Removes the user's passkey `id` (the caller checked recent authentication) and queues
    /// the [`AccountMail::PasskeyRemoved`] notice.
    pub async fn delete(&self, user: &User, id: &str) -> Result<(), PasskeyError> {
        let removed = self
            .inner
            .passkeys
            .delete(&user.id, id)
            .await?
            .ok_or(PasskeyError::NotFound)?;
        self.inner.accounts.second_factors_changed(&user.id).await;
        tracing::info!(user_id = %user.id, passkey_id = %removed.id, "passkey removed");
        self.inner
            .accounts
            .notify(user, AccountMail::PasskeyRemoved { name: removed.name });
        Ok(())
    }

    /// Removes every passkey of the user (account deleted, second factors reset); returns how
    /// many. No notice: the caller's own notice covers it.
    pub async fn delete_all(&self, user_id: &str) -> Result<u64, PasskeyError> {
        let removed = self.inner.passkeys.delete_all(user_id).await?;
        self.inner.accounts.second_factors_changed(user_id).await;
        Ok(removed)
    }

    /// Starts a sign-in with a passkey. The options never list credentials, whatever `email`
    /// names: the authenticator offers its discoverable credentials for this RP, so the answer
    /// is the same whether or not the address has an account or passkeys. When `email` is
    /// given, the finish accepts only a passkey of that account.
    pub async fn start_login(&self, email: Option<&str>) -> Result<Ceremony, PasskeyError> {
        let email = match email.map(str::trim).filter(|e| !e.is_empty()) {
            Some(text) => Some(Email::parse(text)?.as_str().to_owned()),
            None => None,
        };
        let (mut options, state): (RequestChallengeResponse, DiscoverableAuthentication) = self
            .inner
            .webauthn
            .start_discoverable_authentication()
            .map_err(|e| AccountError::Internal(format!("passkey sign-in options: {e}")))?;
        // webauthn-rs marks it for conditional (autofill) UI; the pages use a button.
        options.mediation = None;
        let payload = to_json(&LoginState::AnyAccount { state, email })?;
        let challenge_id = self
            .begin(TokenPurpose::PasskeyLogin, "", String::new(), payload)
            .await?;
        Ok(Ceremony {
            challenge_id,
            public_key: public_key_of(&options)?,
        })
    }

    /// Starts a sign-in ceremony for `user` alone: the second step after the password, or the
    /// re-authentication of a signed-in session. The options list the user's credentials
    /// (`allowCredentials`), so the browser offers only those; user verification is required.
    /// [`PasskeyError::NoPasskeys`] when the user has none.
    pub async fn start_login_for(&self, user: &User) -> Result<Ceremony, PasskeyError> {
        let credentials = self
            .inner
            .passkeys
            .list(&user.id)
            .await?
            .iter()
            .map(|p| parse_passkey(&p.credential))
            .collect::<Result<Vec<_>, _>>()?;
        if credentials.is_empty() {
            return Err(PasskeyError::NoPasskeys);
        }
        let (mut options, account_state): (RequestChallengeResponse, PasskeyAuthentication) = self
            .inner
            .webauthn
            .start_passkey_authentication(&credentials)
            .map_err(|e| AccountError::Internal(format!("passkey sign-in options: {e}")))?;
        options.mediation = None;
        let payload = to_json(&LoginState::OneAccount { account_state })?;
        let challenge_id = self
            .begin(TokenPurpose::PasskeyLogin, &user.id, String::new(), payload)
            .await?;
        Ok(Ceremony {
            challenge_id,
            public_key: public_key_of(&options)?,
        })
    }

    /// Finishes a sign-in started by [`Self::start_login`] or [`Self::start_login_for`]: the
    /// ceremony is spent whatever the outcome. The credential must be registered, verify
    /// against the ceremony's challenge, this RP id and origin, and carry user verification;
    /// its stored sign counter and backup flags are updated.
    ///
    /// Started with [`Self::start_login`], it must also belong to the user its handle names
    /// (and to the e-mail's account when the start named one). Started with
    /// [`Self::start_login_for`], it must be one of that account's passkeys
    /// ([`PasskeyError::OtherAccount`] otherwise), and the check goes through that account's
    /// sign-in throttle like a password or a code (a refused answer counts, a locked account
    /// is [`AccountError::Throttled`]), from `client_ip`.
    ///
    /// Returns the owner, whom the caller signs in or re-authenticates.
    pub async fn finish_login(
        &self,
        challenge_id: &str,
        credential: &serde_json::Value,
        client_ip: Option<&str>,
    ) -> Result<PasskeyProof, PasskeyError> {
        let credential: PublicKeyCredential = serde_json::from_value(credential.clone())
            .map_err(|e| PasskeyError::MalformedCredential(e.to_string()))?;
        let taken = self.take(TokenPurpose::PasskeyLogin, challenge_id).await?;
        match from_payload(&taken)? {
            LoginState::AnyAccount { state, email } => {
                let user = self.finish_any(&credential, state, email).await?;
                Ok(PasskeyProof {
                    user,
                    scope: CeremonyScope::AnyAccount,
                })
            }
            LoginState::OneAccount { account_state } => {
                let user = self
                    .finish_one(&taken.user_id, &credential, &account_state, client_ip)
                    .await?;
                Ok(PasskeyProof {
                    user,
                    scope: CeremonyScope::OneAccount,
                })
            }
        }
    }

    /// The finish of a discoverable ceremony (any account's passkey).
    async fn finish_any(
        &self,
        credential: &PublicKeyCredential,
        state: DiscoverableAuthentication,
        email: Option<String>,
    ) -> Result<User, PasskeyError> {
        let (handle, credential_id) = self
            .inner
            .webauthn
            .identify_discoverable_authentication(credential)
            .map_err(rejected)?;
        let credential_id = URL_SAFE_NO_PAD.encode(credential_id);
        let unknown = || PasskeyError::Rejected("this passkey is not registered here".into());
        let stored = self
            .inner
            .passkeys
            .by_credential_id(&credential_id)
            .await?
            .ok_or_else(unknown)?;
        if user_handle(&stored.user_id)? != handle {
            return Err(unknown());
        }
        let passkey = parse_passkey(&stored.credential)?;
        let result = self
            .inner
            .webauthn
            .finish_discoverable_authentication_v2(credential, state, &passkey)
            .map_err(rejected)?;
        if !result.user_verified() {
            return Err(PasskeyError::Rejected("no user verification".into()));
        }
        let user = self
            .enabled_user(&stored.user_id)
            .await?
            .ok_or_else(unknown)?;
        if email.as_deref().is_some_and(|e| e != user.email) {
            return Err(unknown());
        }
        self.record_use(&stored, passkey, &result).await?;
        tracing::info!(user_id = %user.id, passkey_id = %stored.id, "signed in with a passkey");
        Ok(user)
    }

    /// The finish of a ceremony for the account `user_id`, under its sign-in throttle.
    async fn finish_one(
        &self,
        user_id: &str,
        credential: &PublicKeyCredential,
        state: &PasskeyAuthentication,
        client_ip: Option<&str>,
    ) -> Result<User, PasskeyError> {
        let user = self
            .enabled_user(user_id)
            .await?
            .ok_or(PasskeyError::InvalidChallenge)?;
        // Why a refused answer was refused; the throttle only learns that it was.
        let mut refusal = None;
        let mut accepted = None;
        let (refused, verified, account) = (&mut refusal, &mut accepted, &user);
        let right = self
            .inner
            .accounts
            .check_user_secret(&user, client_ip, move || async move {
                match self.verify_one(account, credential, state).await {
                    Ok(answer) => {
                        *verified = Some(answer);
                        Ok(true)
                    }
                    Err(PasskeyError::Account(e)) => Err(e),
                    Err(e) => {
                        *refused = Some(e);
                        Ok(false)
                    }
                }
            })
            .await?;
        match (right, accepted) {
            (true, Some((stored, passkey, result))) => {
                self.record_use(&stored, passkey, &result).await?;
                tracing::info!(user_id = %user.id, passkey_id = %stored.id, "passkey verified for its account");
                Ok(user)
            }
            _ => Err(refusal
                .unwrap_or_else(|| PasskeyError::Rejected("the passkey was not accepted".into()))),
        }
    }

    /// Checks an answer to a ceremony for `user`: one of the user's registered passkeys,
    /// verified, with user verification.
    async fn verify_one(
        &self,
        user: &User,
        credential: &PublicKeyCredential,
        state: &PasskeyAuthentication,
    ) -> Result<(StoredPasskey, Passkey, AuthenticationResult), PasskeyError> {
        let credential_id = URL_SAFE_NO_PAD.encode::<&[u8]>(credential.raw_id.as_ref());
        let stored = self
            .inner
            .passkeys
            .by_credential_id(&credential_id)
            .await?
            .ok_or_else(|| PasskeyError::Rejected("this passkey is not registered here".into()))?;
        if stored.user_id != user.id {
            return Err(PasskeyError::OtherAccount);
        }
        let passkey = parse_passkey(&stored.credential)?;
        let result = self
            .inner
            .webauthn
            .finish_passkey_authentication(credential, state)
            .map_err(rejected)?;
        if !result.user_verified() {
            return Err(PasskeyError::Rejected("no user verification".into()));
        }
        Ok((stored, passkey, result))
    }

    /// The account `user_id`; `None` when it is gone, [`AccountError::AccountDisabled`] when
    /// it may not sign in.
    async fn enabled_user(&self, user_id: &str) -> Result<Option<User>, PasskeyError> {
        let Some(record) = self
            .inner
            .accounts
            .users()
            .by_id(user_id)
            .await
            .map_err(AccountError::from)?
        else {
            return Ok(None);
        };
        if record.user.disabled {
            return Err(AccountError::AccountDisabled.into());
        }
        Ok(Some(record.user))
    }

    /// Keeps the credential's new sign counter and backup flags, and when it was used.
    async fn record_use(
        &self,
        stored: &StoredPasskey,
        mut passkey: Passkey,
        result: &AuthenticationResult,
    ) -> Result<(), PasskeyError> {
        passkey.update_credential(result);
        self.inner
            .passkeys
            .record_use(
                &stored.id,
                &to_json(&passkey)?,
                now_millis(&self.inner.accounts),
            )
            .await?;
        Ok(())
    }

    /// Stores a ceremony's state under a new challenge id.
    async fn begin(
        &self,
        purpose: TokenPurpose,
        user_id: &str,
        binding: String,
        payload: String,
    ) -> Result<String, PasskeyError> {
        let token = MailToken::generate();
        let now = now_millis(&self.inner.accounts);
        let record = MailTokenRecord {
            purpose,
            user_id: user_id.to_owned(),
            expires_at: now + CEREMONY_LIFETIME,
            binding,
            payload: Some(payload),
        };
        self.inner
            .ceremonies
            .insert(&token.hash(), &record, now)
            .await?;
        Ok(token.as_str().to_owned())
    }

    /// Takes a ceremony's state, once.
    async fn take(
        &self,
        purpose: TokenPurpose,
        challenge_id: &str,
    ) -> Result<MailTokenRecord, PasskeyError> {
        let token = MailToken::parse(challenge_id).ok_or(PasskeyError::InvalidChallenge)?;
        let now = now_millis(&self.inner.accounts);
        self.inner
            .ceremonies
            .take(&token.hash(), purpose, now)
            .await?
            .ok_or(PasskeyError::InvalidChallenge)
    }
}

/// The WebAuthn user handle of an account: its id, a UUID.
fn user_handle(user_id: &str) -> Result<Uuid, PasskeyError> {
    Uuid::parse_str(user_id).map_err(|_| {
        PasskeyError::Account(AccountError::Corrupt(format!(
            "user id {user_id} is not a UUID"
        )))
    })
}

fn check_name(name: &str) -> Result<String, PasskeyError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(PasskeyError::InvalidName("give the passkey a name".into()));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(PasskeyError::InvalidName(format!(
            "a passkey name has at most {MAX_NAME_CHARS} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(PasskeyError::InvalidName(
            "a passkey name cannot hold control characters".into(),
        ));
    }
    Ok(name.to_owned())
}

fn rejected(e: WebauthnError) -> PasskeyError {
    let reason = match e {
        WebauthnError::InvalidRPOrigin => "the origin is not this site's",
        WebauthnError::InvalidRPIDHash => "the relying party id is not this site's",
        WebauthnError::MismatchedChallenge => "the answer is for another challenge",
        WebauthnError::UserNotVerified => "no user verification",
        WebauthnError::AuthenticationFailure => "the signature does not verify",
        WebauthnError::CredentialPossibleCompromise => "the sign counter went backwards",
        _ => return PasskeyError::Rejected(e.to_string()),
    };
    PasskeyError::Rejected(reason.into())
}

fn to_json<T: Serialize>(value: &T) -> Result<String, PasskeyError> {
    serde_json::to_string(value)
        .map_err(|e| PasskeyError::Account(AccountError::Internal(format!("passkey state: {e}"))))
}

fn from_payload<T: for<'de> Deserialize<'de>>(record: &MailTokenRecord) -> Result<T, PasskeyError> {
    let text = record.payload.as_deref().unwrap_or_default();
    serde_json::from_str(text).map_err(|e| {
        PasskeyError::Account(AccountError::Corrupt(format!(
            "passkey ceremony state: {e}"
        )))
    })
}

fn parse_passkey(json: &str) -> Result<Passkey, PasskeyError> {
    serde_json::from_str(json)
        .map_err(|e| PasskeyError::Account(AccountError::Corrupt(format!("stored passkey: {e}"))))
}

/// The `publicKey` member of webauthn-rs's options, which already has the JSON form the
/// browser's `parse…OptionsFromJSON` take.
fn public_key_of<T: Serialize>(options: &T) -> Result<serde_json::Value, PasskeyError> {
    let mut value = serde_json::to_value(options)
        .map_err(|e| AccountError::Internal(format!("passkey options: {e}")))?;
    value
        .get_mut("publicKey")
        .map(serde_json::Value::take)
        .ok_or_else(|| AccountError::Internal("passkey options without publicKey".into()).into())
}

/// Now, in whole milliseconds (what the stores keep).
fn now_millis(accounts: &Accounts) -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    accounts.now().trunc_subsecs(3)
}
