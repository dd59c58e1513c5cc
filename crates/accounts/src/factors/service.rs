//! The second-factor operations of [`Accounts`]: set up, confirm, check and remove TOTP;
//! issue and use recovery codes; what `/api/v1/me` shows; the administrator's reset.

use std::sync::Arc;

use ringfence_keyring::{KeyRing, Protector};
use serde::Serialize;

use super::recovery::{RecoveryCode, RECOVERY_CODE_COUNT};
use super::status_cache::{Freshness, Vouched};
use super::totp::{self, TotpSecret};
use super::FactorStore;
use crate::notify::{AccountMail, SecondFactor};
use crate::{AccountError, Accounts, User, CLOCK_SKEW_ALLOWANCE};
use ringfence_sessions::Session;

/// Key-ring purpose of sealed TOTP secrets (the user id is a sub-purpose).
pub const TOTP_SECRET_PURPOSE: &str = "ringfence.mfa.v1/totp-secret";

/// The second-factor store and the protector of TOTP secrets.
#[derive(Clone)]
pub struct FactorService {
    store: Arc<dyn FactorStore>,
    secrets: Protector,
}

/// What a user's second factors are (`user.mfa` in `/api/v1/me`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MfaStatus {
    /// TOTP is on.
    pub totp: bool,
    /// Passkeys registered. [`Accounts::mfa_status`] leaves it 0; the passkey feature fills
    /// it from its own store.
    pub passkeys: u32,
    /// Recovery codes not used yet.
    pub recovery_codes_left: u32,
}

impl MfaStatus {
    /// Whether the user has a second factor (TOTP or a passkey).
    pub fn has_second_factor(&self) -> bool {
        self.totp || self.passkeys > 0
    }

    /// The methods the second step of signing in accepts (`methods` of the login answer).
    pub fn methods(&self) -> Vec<&'static str> {
        let mut methods = Vec::new();
        if self.totp {
            methods.push("totp");
        }
        if self.passkeys > 0 {
            methods.push("passkey");
        }
        if self.recovery_codes_left > 0 {
            methods.push("recovery_code");
        }
        methods
    }
}

/// What `POST /api/v1/mfa/totp/setup` gives: the secret (base32) and its `otpauth://` URI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TotpSetup {
    /// The secret, base32 without padding, to type into an authenticator app.
    pub secret: String,
    /// The `otpauth://totp/…` URI (for the QR code).
    pub otpauth_uri: String,
}

/// A second-factor code a user typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondFactorCode<'a> {
    /// A TOTP code.
    Totp(&'a str),
    /// A recovery code.
    Recovery(&'a str),
}

impl<'a> SecondFactorCode<'a> {
    /// A code of either kind, told apart by form: six digits are a TOTP code, anything else is
    /// taken as a recovery code (for `{code}` fields that accept both).
    pub fn either(input: &'a str) -> Self {
        if totp::parse_code(input).is_some() {
            SecondFactorCode::Totp(input)
        } else {
            SecondFactorCode::Recovery(input)
        }
    }
}

impl Accounts {
    /// The same service with second factors stored in `store` and TOTP secrets sealed under
    /// `keyring` (purpose [`TOTP_SECRET_PURPOSE`]).
    pub fn with_factors(self, store: Arc<dyn FactorStore>, keyring: &KeyRing) -> Self {
        let secrets = keyring.protector(TOTP_SECRET_PURPOSE);
        self.with_factor_service(FactorService { store, secrets })
    }

    /// The second-factor store, when configured.
    pub fn factor_store(&self) -> Option<&Arc<dyn FactorStore>> {
        self.factor_service().map(|f| &f.store)
    }

    fn factors(&self) -> Result<&FactorService, AccountError> {
        self.factor_service().ok_or_else(|| {
            AccountError::InvalidConfig("second factors are not configured".to_owned())
        })
    }

    /// The user's second factors; all off when second factors are not configured.
    pub async fn mfa_status(&self, user: &User) -> Result<MfaStatus, AccountError> {
        let passkeys = u32::try_from(self.passkey_count(&user.id).await?).unwrap_or(u32::MAX);
        let Some(factors) = self.factor_service() else {
            return Ok(MfaStatus {
                passkeys,
                ..MfaStatus::default()
            });
        };
        let (totp, recovery_codes_left) = factors.store.summary(&user.id).await?;
        Ok(MfaStatus {
            totp,
            passkeys,
            recovery_codes_left,
        })
    }

    /// [`Accounts::mfa_status`] to show it (`user.mfa` of `/api/v1/me`, asked on every call)
    /// to the user of `session`: this node's copy while the session store vouches that nothing
    /// of the user changed since it was read, on any node, or, on a node without a session
    /// cache, by the user cache's rule (see `factors::status_cache`); otherwise read. Decisions
    /// (the second step of signing in, administrators' required factor) use
    /// [`Accounts::mfa_status`].
    pub async fn displayed_mfa_status(
        &self,
        session: &Session,
        user: &User,
    ) -> Result<MfaStatus, AccountError> {
        let sessions = self.sessions();
        let cache = self.mfa_cache();
        let now = self.clock_now();
        let freshness = Freshness {
            sessions,
            // As for the user: never a copy from before the session began (clocks of two
            // nodes up to the allowance apart).
            fresh_since: session.created_at + CLOCK_SKEW_ALLOWANCE,
            now,
            ttl: self.user_cache_ttl(),
        };
        if let Some(status) = cache.get(&user.id, &freshness) {
            return Ok(status);
        }
        // Both taken before the read: a change announced, or made here, while it is in flight
        // keeps the result from being used.
        let ticket = cache.ticket();
        let vouched = match sessions.user_watch(&user.id) {
            Some(watch) => Vouched::Watch(watch),
            None => Vouched::ReadAt(now),
        };
        let status = self.mfa_status(user).await?;
        cache.put(ticket, &user.id, status, vouched, &freshness);
        Ok(status)
    }

    /// After a change of the user's second factors is stored: every node drops its copy of the
    /// summary ([`Accounts::displayed_mfa_status`]). A failure to tell the other nodes is
    /// logged, not returned: the change itself is stored, decisions read the store, and what
    /// the others may show meanwhile is the old summary, until the user's sessions next change
    /// or their tracking connection's lease runs out.
    pub(crate) async fn second_factors_changed(&self, user_id: &str) {
        self.mfa_cache().forget(user_id);
        if let Err(error) = self.sessions().announce_user_change(user_id).await {
            tracing::warn!(%error, user_id, "could not tell the other nodes that second factors changed");
        }
    }

    /// Runs a change of `user_id`'s second factors made of several store steps, then tells
    /// every node ([`Accounts::second_factors_changed`]) whether it succeeded or not: a change
    /// that fails half-way may have stored its first steps (TOTP off, the codes not yet
    /// voided), and every node must stop showing the old summary all the same.
    async fn changing_factors<T>(
        &self,
        user_id: &str,
        change: impl AsyncFnOnce() -> Result<T, AccountError>,
    ) -> Result<T, AccountError> {
        let result = change().await;
        self.second_factors_changed(user_id).await;
        result
    }

    /// Starts setting up TOTP: a new secret, stored sealed as pending (an earlier pending one
    /// is replaced; TOTP already on stays on with its secret until this one is confirmed).
    /// `issuer` names the app in the authenticator. The caller checks recent authentication.
    pub async fn begin_totp_setup(
        &self,
        user: &User,
        issuer: &str,
    ) -> Result<TotpSetup, AccountError> {
        let factors = self.factors()?;
        let secret = TotpSecret::generate();
        let sealed = factors.seal(&user.id, &secret)?;
        factors
            .store
            .put_pending_totp(&user.id, &sealed, self.now())
            .await?;
        tracing::info!(user_id = %user.id, "TOTP setup started");
        Ok(TotpSetup {
            secret: secret.to_base32(),
            otpauth_uri: secret.otpauth_uri(issuer, &user.email),
        })
    }

    /// The pending (not yet confirmed) TOTP setup, to show again (a form with a wrong code).
    pub async fn pending_totp_setup(
        &self,
        user: &User,
        issuer: &str,
    ) -> Result<Option<TotpSetup>, AccountError> {
        let factors = self.factors()?;
        let Some(sealed) = factors
            .store
            .totp(&user.id)
            .await?
            .and_then(|r| r.pending_secret)
        else {
            return Ok(None);
        };
        let secret = factors.unseal(&user.id, &sealed).await?;
        Ok(Some(TotpSetup {
            secret: secret.to_base32(),
            otpauth_uri: secret.otpauth_uri(issuer, &user.email),
        }))
    }

    /// Confirms the pending TOTP secret with a code of it: TOTP is on from now (the code's
    /// step is taken, so it cannot sign in again), and a new set of recovery codes (returned,
    /// shown once) replaces any old one. A wrong code is [`AccountError::InvalidCode`] and
    /// counts toward the user's throttle; no pending secret is [`AccountError::NoPendingTotp`].
    pub async fn confirm_totp(
        &self,
        user: &User,
        code: &str,
        client_ip: Option<&str>,
    ) -> Result<Vec<String>, AccountError> {
        let factors = self.factors()?;
        let pending = factors
            .store
            .totp(&user.id)
            .await?
            .and_then(|r| r.pending_secret)
            .ok_or(AccountError::NoPendingTotp)?;
        let now = self.now();
        let right = self
            .check_user_secret(user, client_ip, || async {
                let secret = factors.unseal(&user.id, &pending).await?;
                let Some(step) = secret.matching_step(code, now) else {
                    return Ok(false);
                };
                Ok(factors
                    .store
                    .confirm_totp(&user.id, &pending, step, now)
                    .await?)
            })
            .await?;
        if !right {
            return Err(AccountError::InvalidCode);
        }
        // TOTP is on from here: the codes' failure must not keep the news from the nodes.
        let codes = self
            .changing_factors(&user.id, async || {
                self.replace_recovery_codes(factors, user).await
            })
            .await?;
        tracing::info!(user_id = %user.id, "TOTP turned on");
        self.notify(
            user,
            AccountMail::FactorAdded {
                factor: SecondFactor::Totp,
            },
        );
        Ok(codes)
    }

    /// Checks a second-factor code of `user` (the second step of signing in, or
    /// re-authentication), under the sign-in throttle: a TOTP code of the confirmed secret
    /// whose step was not taken yet (it is taken now), or an unused recovery code (it is used
    /// up now, and a notice mailed). A wrong, replayed or malformed code is
    /// [`AccountError::InvalidCode`].
    pub async fn verify_second_factor(
        &self,
        user: &User,
        code: SecondFactorCode<'_>,
        client_ip: Option<&str>,
    ) -> Result<(), AccountError> {
        let factors = self.factors()?;
        let now = self.now();
        let right = self
            .check_user_secret(user, client_ip, || async {
                match code {
                    SecondFactorCode::Totp(code) => {
                        let Some(sealed) =
                            factors.store.totp(&user.id).await?.and_then(|r| r.secret)
                        else {
                            return Ok(false);
                        };
                        let secret = factors.unseal(&user.id, &sealed).await?;
                        match secret.matching_step(code, now) {
                            Some(step) => Ok(factors.store.take_totp_step(&user.id, step).await?),
                            None => Ok(false),
                        }
                    }
                    SecondFactorCode::Recovery(code) => {
                        let Some(code) = RecoveryCode::parse(code) else {
                            return Ok(false);
                        };
                        Ok(factors
                            .store
                            .take_recovery_code(&user.id, &code.hash_for(&user.id))
                            .await?)
                    }
                }
            })
            .await?;
        if !right {
            return Err(AccountError::InvalidCode);
        }
        if let SecondFactorCode::Recovery(_) = code {
            self.second_factors_changed(&user.id).await;
            let remaining = factors.store.recovery_codes_left(&user.id).await?;
            tracing::info!(user_id = %user.id, remaining, "recovery code used");
            self.notify(user, AccountMail::RecoveryCodeUsed { remaining });
        }
        Ok(())
    }

    /// Turns TOTP off and voids the recovery codes (they stand in for a factor that is gone).
    /// `false` if TOTP was not on. The caller checks recent authentication.
    pub async fn disable_totp(&self, user: &User) -> Result<bool, AccountError> {
        let factors = self.factors()?;
        let was_on = self
            .changing_factors(&user.id, async || {
                let was_on = factors.store.remove_totp(&user.id).await?;
                factors.store.replace_recovery_codes(&user.id, &[]).await?;
                Ok(was_on)
            })
            .await?;
        if was_on {
            tracing::info!(user_id = %user.id, "TOTP turned off");
            self.notify(
                user,
                AccountMail::FactorRemoved {
                    factor: SecondFactor::Totp,
                },
            );
        }
        Ok(was_on)
    }

    /// A new set of recovery codes (returned, shown once); the old set stops working.
    /// [`AccountError::MfaNotEnabled`] without TOTP. The caller checks recent authentication.
    pub async fn new_recovery_codes(&self, user: &User) -> Result<Vec<String>, AccountError> {
        let factors = self.factors()?;
        let on = factors
            .store
            .totp(&user.id)
            .await?
            .is_some_and(|r| r.secret.is_some());
        if !on {
            return Err(AccountError::MfaNotEnabled);
        }
        let codes = self
            .changing_factors(&user.id, async || {
                self.replace_recovery_codes(factors, user).await
            })
            .await?;
        tracing::info!(user_id = %user.id, "new recovery codes issued");
        self.notify(
            user,
            AccountMail::FactorAdded {
                factor: SecondFactor::RecoveryCodes,
            },
        );
        Ok(codes)
    }

    /// An administrator removes every second factor of `user` (`users reset-mfa`: the user
    /// lost them all) and a notice is mailed. Returns whether there was anything to remove.
    pub async fn reset_mfa(&self, user: &User) -> Result<bool, AccountError> {
        let removed = self.remove_factors(&user.id).await?;
        tracing::info!(user_id = %user.id, removed, "second factors reset by an administrator");
        self.notify(user, AccountMail::MfaReset);
        Ok(removed)
    }

    /// Removes every second factor of a user, passkeys included (account deleted, admin
    /// reset), no notice. Nothing to do when second factors are not configured.
    pub async fn remove_factors(&self, user_id: &str) -> Result<bool, AccountError> {
        self.changing_factors(user_id, async || {
            let had_passkeys = self.remove_passkeys(user_id).await? > 0;
            let Some(factors) = self.factor_service() else {
                return Ok(had_passkeys);
            };
            let had_totp = factors.store.remove_totp(user_id).await?;
            let had_codes = factors.store.recovery_codes_left(user_id).await? > 0;
            factors.store.replace_recovery_codes(user_id, &[]).await?;
            Ok(had_passkeys || had_totp || had_codes)
        })
        .await
    }

    async fn replace_recovery_codes(
        &self,
        factors: &FactorService,
        user: &User,
    ) -> Result<Vec<String>, AccountError> {
        let codes: Vec<RecoveryCode> = (0..RECOVERY_CODE_COUNT)
            .map(|_| RecoveryCode::generate())
            .collect();
        let hashes: Vec<String> = codes.iter().map(|c| c.hash_for(&user.id)).collect();
        factors
            .store
            .replace_recovery_codes(&user.id, &hashes)
            .await?;
        Ok(codes.iter().map(RecoveryCode::display).collect())
    }
}

impl FactorService {
    fn protector(&self, user_id: &str) -> Protector {
        self.secrets.purpose(user_id)
    }

    fn seal(&self, user_id: &str, secret: &TotpSecret) -> Result<String, AccountError> {
        self.protector(user_id)
            .protect(secret.as_bytes())
            .map_err(|e| AccountError::Store(format!("sealing a TOTP secret: {e}")))
    }

    async fn unseal(&self, user_id: &str, sealed: &str) -> Result<TotpSecret, AccountError> {
        let bytes = self
            .protector(user_id)
            .unprotect(sealed)
            .await
            .map_err(|e| AccountError::Corrupt(format!("TOTP secret of user {user_id}: {e}")))?;
        TotpSecret::from_bytes(bytes).ok_or_else(|| {
            AccountError::Corrupt(format!(
                "TOTP secret of user {user_id} has the wrong length"
            ))
        })
    }
}
