//! Second factors in the accounts service: the FactorStore conformance suite on SQLite and a
//! real PostgreSQL, and TOTP / recovery codes end to end on a SQLite file with real sessions,
//! key ring, throttle and a manual clock (codes computed here from the secret).

mod common;

use std::sync::Arc;

use chrono::Duration;
use common::{fixture, Fixture, GOOD_PASSWORD};
use ringfence_accounts::factors::totp::{step_at, TotpSecret};
use ringfence_accounts::factors_conformance as conformance;
use ringfence_accounts::{
    AccountError, AccountMail, Accounts, Database, PostgresFactorStore, SecondFactorCode,
    SqliteFactorStore, User,
};
use ringfence_keyring::KeyRing;
use ringfence_testkit::MailCollector;
use ringfence_testkit::PostgresServer;

const IP: Option<&str> = Some("192.0.2.7");

struct Mfa {
    f: Fixture,
    accounts: Accounts,
    mail: MailCollector,
}

async fn mfa() -> Mfa {
    let f = fixture().await;
    let mail = MailCollector::default();
    let keyring = KeyRing::in_memory(f.clock.shared());
    let accounts = f
        .throttled()
        .await
        .with_mailer(Arc::new(mail.clone()))
        .with_factors(f.db.factor_store().await.unwrap(), &keyring);
    Mfa { f, accounts, mail }
}

impl Mfa {
    async fn user(&self) -> User {
        self.accounts
            .register("alice@example.com", GOOD_PASSWORD)
            .await
            .unwrap()
    }

    /// Sets TOTP up and confirms it; the secret and the recovery codes.
    async fn with_totp(&self, user: &User) -> (TotpSecret, Vec<String>) {
        let setup = self
            .accounts
            .begin_totp_setup(user, "ringfence")
            .await
            .unwrap();
        let secret = TotpSecret::from_base32(&setup.secret).unwrap();
        let codes = self
            .accounts
            .confirm_totp(
                user,
                &secret.code_at(ringfence_keyring::Clock::now(&self.f.clock)),
                IP,
            )
            .await
            .unwrap();
        (secret, codes)
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        ringfence_keyring::Clock::now(&self.f.clock)
    }
}

#[tokio::test]
async fn sqlite_factor_store_passes_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ringfence.db").display());
    let (a, b) = (
        Database::connect(&url).await.unwrap(),
        Database::connect(&url).await.unwrap(),
    );
    let a = SqliteFactorStore::new(a.sqlite_pool().unwrap().clone());
    a.migrate().await.unwrap();
    let b = SqliteFactorStore::new(b.sqlite_pool().unwrap().clone());
    conformance::run_all(&a).await;
    conformance::concurrent_uses_one_wins(&a, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_factor_store_passes_conformance() {
    let pg = PostgresServer::start().unwrap();
    let url = pg.fresh_database().unwrap();
    let (a, b) = (
        Database::connect(&url).await.unwrap(),
        Database::connect(&url).await.unwrap(),
    );
    let a = PostgresFactorStore::new(a.postgres_pool().unwrap().clone());
    a.migrate().await.unwrap();
    let b = PostgresFactorStore::new(b.postgres_pool().unwrap().clone());
    conformance::run_all(&a).await;
    conformance::concurrent_uses_one_wins(&a, &b).await;
    // Through Database, as the server opens it.
    let db = Database::connect(&url).await.unwrap();
    conformance::run_all(db.factor_store().await.unwrap().as_ref()).await;
}

#[tokio::test]
async fn totp_turns_on_only_after_a_right_code_and_the_secret_is_sealed() {
    let m = mfa().await;
    let user = m.user().await;
    assert!(!m.accounts.mfa_status(&user).await.unwrap().totp);
    let setup = m
        .accounts
        .begin_totp_setup(&user, "ringfence")
        .await
        .unwrap();
    assert!(setup
        .otpauth_uri
        .contains(&format!("secret={}", setup.secret)));
    let secret = TotpSecret::from_base32(&setup.secret).unwrap();
    // At rest the secret is sealed, never the base32 or raw bytes.
    let stored =
        m.f.db
            .factor_store()
            .await
            .unwrap()
            .totp(&user.id)
            .await
            .unwrap()
            .unwrap();
    let pending = stored.pending_secret.unwrap();
    assert!(!pending.contains(&setup.secret) && stored.secret.is_none());
    assert!(
        !m.accounts.mfa_status(&user).await.unwrap().totp,
        "not on before a code"
    );
    let wrong = format!(
        "{:06}",
        (secret.code_at(m.now()).parse::<u32>().unwrap() + 1) % 1_000_000
    );
    assert!(matches!(
        m.accounts.confirm_totp(&user, &wrong, IP).await,
        Err(AccountError::InvalidCode)
    ));
    assert!(!m.accounts.mfa_status(&user).await.unwrap().totp);
    let codes = m
        .accounts
        .confirm_totp(&user, &secret.code_at(m.now()), IP)
        .await
        .unwrap();
    assert_eq!(codes.len(), 10);
    let status = m.accounts.mfa_status(&user).await.unwrap();
    assert!(status.totp && status.has_second_factor());
    assert_eq!(status.recovery_codes_left, 10);
    assert_eq!(status.methods(), vec!["totp", "recovery_code"]);
    assert!(m
        .mail
        .all()
        .iter()
        .any(|(_, mail)| matches!(mail, AccountMail::FactorAdded { .. })));
}

#[tokio::test]
async fn a_code_works_once_and_the_confirming_code_does_not_sign_in() {
    let m = mfa().await;
    let user = m.user().await;
    let (secret, _) = m.with_totp(&user).await;
    let code = secret.code_at(m.now());
    assert!(matches!(
        m.accounts
            .verify_second_factor(&user, SecondFactorCode::Totp(&code), IP)
            .await,
        Err(AccountError::InvalidCode)
    ));
    m.f.clock.advance(Duration::seconds(30));
    let code = secret.code_at(m.now());
    m.accounts
        .verify_second_factor(&user, SecondFactorCode::Totp(&code), IP)
        .await
        .unwrap();
    assert!(
        matches!(
            m.accounts
                .verify_second_factor(&user, SecondFactorCode::Totp(&code), IP)
                .await,
            Err(AccountError::InvalidCode)
        ),
        "replayed within its window"
    );
}

#[tokio::test]
async fn drift_of_one_step_is_accepted_and_two_refused() {
    let m = mfa().await;
    let user = m.user().await;
    let (secret, _) = m.with_totp(&user).await;
    let verify = |at: chrono::DateTime<chrono::Utc>| {
        let code = secret.code_at(at);
        let accounts = m.accounts.clone();
        let user = user.clone();
        async move {
            accounts
                .verify_second_factor(&user, SecondFactorCode::Totp(&code), IP)
                .await
        }
    };
    let step = Duration::seconds(30);
    m.f.clock.advance(step * 10);
    assert!(
        verify(m.now() - step * 2).await.is_err(),
        "two steps behind"
    );
    assert!(verify(m.now() - step).await.is_ok(), "one step behind");
    m.f.clock.advance(step * 10);
    assert!(verify(m.now() + step * 2).await.is_err(), "two steps ahead");
    assert!(verify(m.now() + step).await.is_ok(), "one step ahead");
    // The step ahead was taken: the current step (older) is refused now.
    assert!(verify(m.now()).await.is_err());
    assert!(step_at(m.now()) > 0);
}

#[tokio::test]
async fn recovery_codes_work_once_and_a_new_set_voids_the_old() {
    let m = mfa().await;
    let user = m.user().await;
    let (_, codes) = m.with_totp(&user).await;
    let use_code = |code: String| {
        let accounts = m.accounts.clone();
        let user = user.clone();
        async move {
            accounts
                .verify_second_factor(&user, SecondFactorCode::Recovery(&code), IP)
                .await
        }
    };
    use_code(codes[0].to_lowercase()).await.unwrap();
    assert!(matches!(
        use_code(codes[0].clone()).await,
        Err(AccountError::InvalidCode)
    ));
    assert_eq!(
        m.accounts
            .mfa_status(&user)
            .await
            .unwrap()
            .recovery_codes_left,
        9
    );
    assert!(m
        .mail
        .all()
        .iter()
        .any(|(_, mail)| *mail == AccountMail::RecoveryCodeUsed { remaining: 9 }));
    let fresh = m.accounts.new_recovery_codes(&user).await.unwrap();
    assert!(matches!(
        use_code(codes[1].clone()).await,
        Err(AccountError::InvalidCode)
    ));
    use_code(fresh[9].clone()).await.unwrap();
    assert!(matches!(
        use_code("not a code".into()).await,
        Err(AccountError::InvalidCode)
    ));
}

#[tokio::test]
async fn wrong_codes_are_throttled_like_wrong_passwords() {
    let m = mfa().await;
    let user = m.user().await;
    let (secret, _) = m.with_totp(&user).await;
    m.f.clock.advance(Duration::seconds(90));
    let mut throttled = false;
    for _ in 0..8 {
        match m
            .accounts
            .verify_second_factor(&user, SecondFactorCode::Totp("000000"), IP)
            .await
        {
            Err(AccountError::InvalidCode) => {}
            Err(AccountError::Throttled { .. }) => {
                throttled = true;
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(throttled, "wrong codes must lock like wrong passwords");
    // Locked: even the right code is refused, and so is the right password.
    let right = secret.code_at(m.now());
    assert!(matches!(
        m.accounts
            .verify_second_factor(&user, SecondFactorCode::Totp(&right), IP)
            .await,
        Err(AccountError::Throttled { .. })
    ));
    assert!(matches!(
        m.accounts
            .authenticate_from("alice@example.com", GOOD_PASSWORD, IP)
            .await,
        Err(AccountError::Throttled { .. })
    ));
}

#[tokio::test]
async fn disabling_totp_deleting_and_reset_remove_every_factor() {
    let m = mfa().await;
    let user = m.user().await;
    m.with_totp(&user).await;
    assert!(m.accounts.disable_totp(&user).await.unwrap());
    assert_eq!(
        m.accounts.mfa_status(&user).await.unwrap(),
        Default::default()
    );
    assert!(matches!(
        m.accounts.new_recovery_codes(&user).await,
        Err(AccountError::MfaNotEnabled)
    ));
    m.with_totp(&user).await;
    assert!(m.accounts.reset_mfa(&user).await.unwrap());
    assert_eq!(
        m.accounts.mfa_status(&user).await.unwrap(),
        Default::default()
    );
    assert!(m
        .mail
        .all()
        .iter()
        .any(|(_, mail)| *mail == AccountMail::MfaReset));
    m.with_totp(&user).await;
    let before = m.accounts.mfa_status(&user).await.unwrap();
    assert!(before.totp);
    // Disabling keeps the factors: enabling again must not leave a password-only account.
    m.accounts.disable(&user.id).await.unwrap();
    m.accounts.enable(&user.id).await.unwrap();
    assert_eq!(m.accounts.mfa_status(&user).await.unwrap(), before);
    m.accounts.delete(&user.id).await.unwrap();
    assert_eq!(
        m.accounts.mfa_status(&user).await.unwrap(),
        Default::default()
    );
}

#[tokio::test]
async fn confirm_without_setup_is_refused() {
    let m = mfa().await;
    let user = m.user().await;
    assert!(matches!(
        m.accounts.confirm_totp(&user, "123456", IP).await,
        Err(AccountError::NoPendingTotp)
    ));
}

/// `user.mfa` of `/api/v1/me` on a node without a session cache (here: SQLite sessions): a copy
/// is shown within the user cache's second and only if read after the session began; this
/// node's own change shows at once, another node's (here: a second service on the same
/// database) within that second.
#[tokio::test]
async fn the_displayed_summary_follows_changes_without_a_session_cache() {
    let m = mfa().await;
    let user = m.user().await;
    let other_node = m.f.accounts.clone().with_factors(
        m.f.db.factor_store().await.unwrap(),
        &KeyRing::in_memory(m.f.clock.shared()),
    );
    let session =
        m.f.sessions
            .start(&user.id, &ringfence_sessions::ClientInfo::default())
            .await
            .unwrap()
            .session;
    // Past the session's first second (its copies are never from before it began).
    m.f.clock.advance(Duration::seconds(2));
    let off = m
        .accounts
        .displayed_mfa_status(&session, &user)
        .await
        .unwrap();
    assert!(!off.totp);
    assert!(
        !other_node
            .displayed_mfa_status(&session, &user)
            .await
            .unwrap()
            .totp
    );

    m.with_totp(&user).await;
    // This node changed it: shown at once.
    let on = m
        .accounts
        .displayed_mfa_status(&session, &user)
        .await
        .unwrap();
    assert!(on.totp);
    assert_eq!(on.recovery_codes_left, 10);
    // The other node may show its copy for the rest of the second, not longer.
    m.f.clock.advance(Duration::seconds(1));
    assert!(
        other_node
            .displayed_mfa_status(&session, &user)
            .await
            .unwrap()
            .totp
    );
}

/// A real store whose recovery codes cannot be written: a change of second factors that fails
/// half-way (TOTP turned on, its codes not stored).
struct CodesFail(Arc<dyn ringfence_accounts::FactorStore>);

#[async_trait::async_trait]
impl ringfence_accounts::FactorStore for CodesFail {
    async fn totp(
        &self,
        user_id: &str,
    ) -> Result<Option<ringfence_accounts::TotpRecord>, ringfence_accounts::UserStoreError> {
        self.0.totp(user_id).await
    }
    async fn put_pending_totp(
        &self,
        user_id: &str,
        sealed: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), ringfence_accounts::UserStoreError> {
        self.0.put_pending_totp(user_id, sealed, now).await
    }
    async fn confirm_totp(
        &self,
        user_id: &str,
        sealed: &str,
        step: i64,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, ringfence_accounts::UserStoreError> {
        self.0.confirm_totp(user_id, sealed, step, now).await
    }
    async fn take_totp_step(
        &self,
        user_id: &str,
        step: i64,
    ) -> Result<bool, ringfence_accounts::UserStoreError> {
        self.0.take_totp_step(user_id, step).await
    }
    async fn remove_totp(&self, user_id: &str) -> Result<bool, ringfence_accounts::UserStoreError> {
        self.0.remove_totp(user_id).await
    }
    async fn replace_recovery_codes(
        &self,
        _user_id: &str,
        _hashes: &[String],
    ) -> Result<(), ringfence_accounts::UserStoreError> {
        Err(ringfence_accounts::UserStoreError::Unavailable(
            "injected: the codes' write failed".to_owned(),
        ))
    }
    async fn take_recovery_code(
        &self,
        user_id: &str,
        hash: &str,
    ) -> Result<bool, ringfence_accounts::UserStoreError> {
        self.0.take_recovery_code(user_id, hash).await
    }
    async fn recovery_codes_left(
        &self,
        user_id: &str,
    ) -> Result<u32, ringfence_accounts::UserStoreError> {
        self.0.recovery_codes_left(user_id).await
    }
}

/// A change that fails half-way is still announced: the node drops its copy of the summary, so
/// `user.mfa` shows TOTP on (it is stored on) instead of the copy from before.
#[tokio::test]
async fn a_change_that_fails_half_way_still_drops_the_shown_summary() {
    let f = fixture().await;
    let accounts = f.accounts.clone().with_factors(
        Arc::new(CodesFail(f.db.factor_store().await.unwrap())),
        &KeyRing::in_memory(f.clock.shared()),
    );
    let user = accounts
        .register("alice@example.com", GOOD_PASSWORD)
        .await
        .unwrap();
    let session = f
        .sessions
        .start(&user.id, &ringfence_sessions::ClientInfo::default())
        .await
        .unwrap()
        .session;
    // Past the session's first second (its copies are never from before it began).
    f.clock.advance(Duration::seconds(2));
    let before = accounts
        .displayed_mfa_status(&session, &user)
        .await
        .unwrap();
    assert!(!before.totp);
    let setup = accounts.begin_totp_setup(&user, "ringfence").await.unwrap();
    let secret = TotpSecret::from_base32(&setup.secret).unwrap();
    let code = secret.code_at(ringfence_keyring::Clock::now(&f.clock));
    let result = accounts.confirm_totp(&user, &code, IP).await;
    assert!(matches!(result, Err(AccountError::Store(_))), "{result:?}");
    // Within the copy's second: without the announcement the old copy would still show.
    let after = accounts
        .displayed_mfa_status(&session, &user)
        .await
        .unwrap();
    assert!(after.totp, "TOTP is stored on");
}
