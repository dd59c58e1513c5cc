//! The account lifecycle over mail: address verification, forgotten passwords, address changes,
//! notices, and administrators' control of accounts.
//!
//! The flows are methods of [`Accounts`]; they need two things it is given with builders:
//!
//! - a [`MailTokenStore`] ([`Accounts::with_mail_tokens`]) for the single-use tokens of mail
//!   links (see [`crate::tokens`] for their format and storage);
//! - an [`AccountMailer`] ([`Accounts::with_mailer`]) that queues the mails.
//!
//! Without a token store the flows that need tokens answer [`AccountError::InvalidConfig`] and
//! registration sends no verification mail; without a mailer, mails are dropped (logged at
//! debug level), which suits the admin CLI printing a reset link.
//!
//! # Throttling of mail requests
//!
//! Every request that sends mail on someone's behalf is counted in the sign-in throttle's
//! [`crate::AttemptStore`] (when [`Accounts::with_throttle`] configured one) under its own keys,
//! with [`MailFlowSettings::mail_throttle`] as the schedule: its `account_free_attempts` apply
//! per e-mail address (password reset) or per user (verification again, address change), its
//! `address_free_attempts` per client address (password reset). A locked key answers
//! [`AccountError::Throttled`]; the count is the same for addresses with and without an account.
//! Keys are `reset:`, `mailip:`, `resend:` or `change:` followed by a hex SHA-256, so neither
//! addresses nor user ids appear in them.

mod admin;
mod email;
mod jobs;
mod password;

use std::sync::Arc;

use chrono::{DateTime, Duration, DurationRound, Utc};
use sha2::{Digest, Sha256};

use crate::notify::{AccountMail, AccountMailer};
use crate::service::throttled;
use crate::tokens::{
    account_binding, bindings_match, hex, IssuedToken, MailToken, MailTokenRecord, MailTokenStore,
    TokenPurpose,
};
use crate::{AccountError, Accounts, Email, ThrottlePolicy, User, UserRecord};

use jobs::BackgroundJobs;

/// Shortest accepted token lifetime.
const MIN_LIFETIME: Duration = Duration::minutes(1);
/// Longest accepted token lifetime: a link in an old mail must stop working some day.
const MAX_LIFETIME: Duration = Duration::days(30);

/// Settings of the mail flows. Fields are public for configuration;
/// [`Accounts::with_mail_settings`] clamps values outside the ranges
/// [`MailFlowSettings::validate`] describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailFlowSettings {
    /// How long a password-reset link works. Default 1 hour.
    pub reset_token_lifetime: Duration,
    /// How long an address-verification link works. Default 24 hours.
    pub verify_token_lifetime: Duration,
    /// How long an address-change confirmation link works. Default 24 hours.
    pub change_token_lifetime: Duration,
    /// Refuse sign-in with [`AccountError::EmailNotVerified`] until the address is verified.
    /// Default off.
    pub require_verified_email: bool,
    /// How many mails may be asked for (see the module docs). Default: 3 per address or user
    /// and 10 per client address before the first lock of 1 minute, doubling up to 1 hour,
    /// forgotten 1 hour after the last request.
    pub mail_throttle: ThrottlePolicy,
}

impl Default for MailFlowSettings {
    fn default() -> Self {
        Self {
            reset_token_lifetime: Duration::hours(1),
            verify_token_lifetime: Duration::hours(24),
            change_token_lifetime: Duration::hours(24),
            require_verified_email: false,
            mail_throttle: ThrottlePolicy {
                account_free_attempts: 3,
                address_free_attempts: 10,
                base_delay: Duration::minutes(1),
                max_delay: Duration::hours(1),
                window: Duration::hours(1),
                ..ThrottlePolicy::default()
            },
        }
    }
}

impl MailFlowSettings {
    /// Checks the values: every lifetime between 1 minute and 30 days, the throttle as
    /// [`ThrottlePolicy::validate`] wants it.
    pub fn validate(&self) -> Result<(), AccountError> {
        for (name, lifetime) in [
            ("reset", self.reset_token_lifetime),
            ("verification", self.verify_token_lifetime),
            ("e-mail change", self.change_token_lifetime),
        ] {
            if !(MIN_LIFETIME..=MAX_LIFETIME).contains(&lifetime) {
                return Err(AccountError::InvalidConfig(format!(
                    "the {name} link lifetime must be between 1 minute and 30 days"
                )));
            }
        }
        self.mail_throttle.validate()
    }

    /// The settings with every value moved into the range [`MailFlowSettings::validate`]
    /// accepts.
    pub fn clamped(self) -> Self {
        let clamp = |d: Duration| d.clamp(MIN_LIFETIME, MAX_LIFETIME);
        Self {
            reset_token_lifetime: clamp(self.reset_token_lifetime),
            verify_token_lifetime: clamp(self.verify_token_lifetime),
            change_token_lifetime: clamp(self.change_token_lifetime),
            require_verified_email: self.require_verified_email,
            mail_throttle: self.mail_throttle.clamped(),
        }
    }

    /// How long a token of `purpose` works.
    pub fn lifetime(&self, purpose: TokenPurpose) -> Duration {
        match purpose {
            TokenPurpose::ResetPassword => self.reset_token_lifetime,
            TokenPurpose::VerifyEmail => self.verify_token_lifetime,
            TokenPurpose::ChangeEmail => self.change_token_lifetime,
            TokenPurpose::PasskeyRegistration | TokenPurpose::PasskeyLogin => {
                crate::passkeys::CEREMONY_LIFETIME
            }
        }
    }
}

/// What the mail flows of one [`Accounts`] use.
#[derive(Clone, Default)]
pub(crate) struct MailFlows {
    tokens: Option<Arc<dyn MailTokenStore>>,
    mailer: Option<Arc<dyn AccountMailer>>,
    settings: MailFlowSettings,
    jobs: BackgroundJobs,
}

/// The kinds of mail request counted (see the module docs).
#[derive(Debug, Clone, Copy)]
enum MailLimit {
    /// Password-reset requests for one address.
    ResetAddress,
    /// Password-reset requests from one client address.
    ResetClient,
    /// Verification mails asked for again by one user.
    Resend,
    /// Address changes asked for by one user.
    Change,
}

impl MailLimit {
    fn prefix(self) -> &'static str {
        match self {
            MailLimit::ResetAddress => "reset",
            MailLimit::ResetClient => "mailip",
            MailLimit::Resend => "resend",
            MailLimit::Change => "change",
        }
    }

    /// The attempt-store key for `subject` (an address, a client address or a user id).
    fn key(self, subject: &str) -> String {
        let mut hasher = Sha256::new();
        hasher.update(b"ringfence/mail-throttle/v1/");
        hasher.update(self.prefix().as_bytes());
        hasher.update([0]);
        hasher.update(subject.as_bytes());
        format!("{}:{}", self.prefix(), hex(&hasher.finalize()))
    }

    fn free_attempts(self, policy: &ThrottlePolicy) -> u32 {
        match self {
            MailLimit::ResetClient => policy.address_free_attempts,
            _ => policy.account_free_attempts,
        }
    }
}

impl Accounts {
    /// The same service storing mail-link tokens in `store` (see [`crate::tokens`]).
    pub fn with_mail_tokens(self, store: Arc<dyn MailTokenStore>) -> Self {
        let mut mail = self.mail().clone();
        mail.tokens = Some(store);
        self.with_mail_flows(mail)
    }

    /// The same service queuing its mails with `mailer`.
    pub fn with_mailer(self, mailer: Arc<dyn AccountMailer>) -> Self {
        let mut mail = self.mail().clone();
        mail.mailer = Some(mailer);
        self.with_mail_flows(mail)
    }

    /// The same service with other mail-flow settings, [clamped](MailFlowSettings::clamped)
    /// into range (check them with [`MailFlowSettings::validate`] first to report bad ones).
    pub fn with_mail_settings(self, settings: MailFlowSettings) -> Self {
        let mut mail = self.mail().clone();
        mail.settings = settings.clamped();
        self.with_mail_flows(mail)
    }

    /// The mail-flow settings in force.
    pub fn mail_settings(&self) -> &MailFlowSettings {
        &self.mail().settings
    }

    /// The mail-link token store, when one is configured.
    pub fn mail_tokens(&self) -> Option<&Arc<dyn MailTokenStore>> {
        self.mail().tokens.as_ref()
    }

    /// Waits until the work requests handed off (the lookup and mail of
    /// [`Accounts::request_password_reset`]) has finished: for graceful shutdown and tests.
    pub async fn wait_for_mail_jobs(&self) {
        self.mail().jobs.idle().await
    }

    /// Queues a notice (or any [`AccountMail`]) for the user's address. For the flows of other
    /// features too: issue 15 sends [`AccountMail::FactorAdded`] and the like through this.
    /// Never fails: without a mailer the mail is dropped, an unreadable stored address is
    /// logged.
    pub fn notify(&self, user: &User, mail: AccountMail) {
        match Email::parse(&user.email) {
            Ok(to) => self.mail_to(&to, &user.id, mail),
            Err(_) => tracing::error!(
                user_id = %user.id,
                kind = mail.kind(),
                "stored e-mail address is malformed; mail not sent"
            ),
        }
    }

    fn mail_to(&self, to: &Email, user_id: &str, mail: AccountMail) {
        let kind = mail.kind();
        match &self.mail().mailer {
            Some(mailer) => {
                mailer.send(to, mail);
                // Neither the address nor the link: the id is enough to follow a user.
                tracing::info!(user_id, kind, "account mail queued");
            }
            None => tracing::debug!(user_id, kind, "no mailer configured; mail dropped"),
        }
    }

    fn token_store(&self) -> Result<&Arc<dyn MailTokenStore>, AccountError> {
        self.mail().tokens.as_ref().ok_or_else(|| {
            AccountError::InvalidConfig("no store for mail-link tokens is configured".into())
        })
    }

    /// Stores a new token of `purpose` for the account as it is now.
    async fn issue(
        &self,
        record: &UserRecord,
        purpose: TokenPurpose,
        new_email: Option<&Email>,
    ) -> Result<IssuedToken, AccountError> {
        let store = self.token_store()?;
        let now = self.now();
        let lifetime = self.mail().settings.lifetime(purpose);
        // Stores keep milliseconds: the expiry handed out is the one they will apply.
        let expires_at = (now + lifetime)
            .duration_trunc(Duration::milliseconds(1))
            .unwrap_or(now + lifetime);
        let token = MailToken::generate();
        let stored = MailTokenRecord {
            purpose,
            user_id: record.user.id.clone(),
            expires_at,
            binding: account_binding(record),
            payload: new_email.map(|e| e.as_str().to_owned()),
        };
        store.insert(&token.hash(), &stored, now).await?;
        tracing::info!(user_id = %record.user.id, purpose = purpose.as_str(), "mail token issued");
        Ok(IssuedToken {
            token,
            expires_at,
            valid_for: lifetime,
        })
    }

    /// Issues a token and queues the action mail `build` makes of it, to `to`.
    async fn send_action_mail(
        &self,
        record: &UserRecord,
        to: &Email,
        purpose: TokenPurpose,
        new_email: Option<&Email>,
        build: impl FnOnce(IssuedToken) -> AccountMail,
    ) -> Result<(), AccountError> {
        if self.mail().mailer.is_none() {
            // A link nobody receives is only a liability.
            tracing::debug!(
                user_id = %record.user.id,
                purpose = purpose.as_str(),
                "no mailer configured; no token issued"
            );
            return Ok(());
        }
        let issued = self.issue(record, purpose, new_email).await?;
        self.mail_to(to, &record.user.id, build(issued));
        Ok(())
    }

    /// The token's record when `text` is a token of `purpose`, live, and still bound to its
    /// account; `take` spends it, otherwise it stays. Every refusal is
    /// [`AccountError::InvalidToken`].
    async fn redeem(
        &self,
        text: &str,
        purpose: TokenPurpose,
        take: bool,
    ) -> Result<(MailTokenRecord, UserRecord), AccountError> {
        let store = self.token_store()?;
        let token = MailToken::parse(text).ok_or(AccountError::InvalidToken)?;
        let now = self.now();
        let found = if take {
            store.take(&token.hash(), purpose, now).await?
        } else {
            store.find(&token.hash(), purpose, now).await?
        };
        let record = found.ok_or(AccountError::InvalidToken)?;
        let user = self.bound_user(&record).await?;
        Ok((record, user))
    }

    /// The account a token acts on, if the token still holds for it: the account exists, is
    /// not disabled, and has the address and password it had when the token was issued.
    async fn bound_user(&self, token: &MailTokenRecord) -> Result<UserRecord, AccountError> {
        let user = self
            .users()
            .by_id(&token.user_id)
            .await?
            .ok_or(AccountError::InvalidToken)?;
        let holds = !user.user.disabled && bindings_match(&token.binding, &account_binding(&user));
        if !holds {
            tracing::info!(user_id = %user.user.id, purpose = token.purpose.as_str(), "mail token no longer matches its account");
            return Err(AccountError::InvalidToken);
        }
        Ok(user)
    }

    /// Counts a mail request on each of `limits` (kind and subject); refuses with
    /// [`AccountError::Throttled`] when one of them is locked. Nothing is counted without a
    /// throttle.
    async fn count_mail_request(&self, limits: &[(MailLimit, &str)]) -> Result<(), AccountError> {
        let Some(throttle) = self.throttle() else {
            return Ok(());
        };
        let store = throttle.store();
        let policy = self.mail().settings.mail_throttle;
        let keys: Vec<(String, u32)> = limits
            .iter()
            .map(|(limit, subject)| (limit.key(subject), limit.free_attempts(&policy)))
            .collect();
        let now = self.now();
        let mut locked: Option<DateTime<Utc>> = None;
        for (key, _) in &keys {
            locked = locked.max(store.check(key, now).await?);
        }
        if let Some(until) = locked {
            return Err(throttled(until, now));
        }
        for (key, free) in &keys {
            store.record_failure(key, *free, &policy, now).await?;
        }
        Ok(())
    }

    /// The last word on a sign-in whose password was right: a disabled account is refused
    /// with [`AccountError::AccountDisabled`]; under `require_verified_email` an unverified
    /// address is refused with [`AccountError::EmailNotVerified`] and sent a verification mail
    /// (counted like [`Accounts::resend_verification`]; when that limit is reached, no mail).
    /// Only the right password learns either: a wrong one gets the usual
    /// [`AccountError::InvalidCredentials`] before this.
    pub(crate) async fn admit(&self, user: User) -> Result<User, AccountError> {
        if user.disabled {
            tracing::info!(user_id = %user.id, "sign-in refused: account disabled");
            return Err(AccountError::AccountDisabled);
        }
        if self.mail().settings.require_verified_email && !user.email_verified {
            tracing::info!(user_id = %user.id, "sign-in refused: e-mail address not verified");
            if let Err(e) = self.resend_verification(&user.id).await {
                tracing::info!(user_id = %user.id, error = %e, "no verification mail at sign-in");
            }
            return Err(AccountError::EmailNotVerified);
        }
        Ok(user)
    }

    /// Registration sends the verification mail; registration succeeds whether or not the mail
    /// could be prepared (the user can ask again).
    pub(crate) async fn send_verification_after_registration(&self, user: &User) {
        if self.mail().tokens.is_none() {
            return;
        }
        let result = async {
            let record = self
                .users()
                .by_id(&user.id)
                .await?
                .ok_or(AccountError::UserNotFound)?;
            self.send_verification(&record).await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(user_id = %user.id, error = %e, "verification mail after registration failed");
        }
    }

    /// Issues a verification token and queues the mail to the account's address.
    async fn send_verification(&self, record: &UserRecord) -> Result<(), AccountError> {
        let to = stored_email(&record.user)?;
        self.send_action_mail(record, &to, TokenPurpose::VerifyEmail, None, |link| {
            AccountMail::VerifyEmail { link }
        })
        .await
    }
}

/// The account's address as an [`Email`]; a stored one that does not parse is corrupt data.
fn stored_email(user: &User) -> Result<Email, AccountError> {
    Email::parse(&user.email).map_err(|_| {
        AccountError::Corrupt(format!("stored e-mail of user {} is malformed", user.id))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_settings_are_valid_and_follow_the_contract() {
        let s = MailFlowSettings::default();
        s.validate().unwrap();
        assert_eq!(s.lifetime(TokenPurpose::ResetPassword), Duration::hours(1));
        assert_eq!(s.lifetime(TokenPurpose::VerifyEmail), Duration::hours(24));
        assert_eq!(s.lifetime(TokenPurpose::ChangeEmail), Duration::hours(24));
        assert!(!s.require_verified_email);
    }

    #[test]
    fn bad_lifetimes_are_reported_and_clamped() {
        let bad = MailFlowSettings {
            reset_token_lifetime: Duration::seconds(5),
            verify_token_lifetime: Duration::days(365),
            ..MailFlowSettings::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(AccountError::InvalidConfig(_))
        ));
        let c = bad.clamped();
        c.validate().unwrap();
        assert_eq!(c.reset_token_lifetime, MIN_LIFETIME);
        assert_eq!(c.verify_token_lifetime, MAX_LIFETIME);
    }

    #[test]
    fn limit_keys_hide_their_subject_and_fit_the_attempt_store() {
        let key = MailLimit::ResetAddress.key("alice@example.com");
        assert!(key.starts_with("reset:"));
        assert!(!key.contains("alice"));
        assert_ne!(key, MailLimit::Resend.key("alice@example.com"));
        for limit in [
            MailLimit::ResetAddress,
            MailLimit::ResetClient,
            MailLimit::Resend,
            MailLimit::Change,
        ] {
            // The attempt store's keys are at most 72 bytes.
            assert!(limit.key("x").len() <= 72, "{limit:?}");
        }
    }
}
