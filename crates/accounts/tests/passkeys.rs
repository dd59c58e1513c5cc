//! The passkey service on a real SQLite file with a manual clock: a ceremony lives 5 minutes,
//! is bound to its user, and disabling an account removes its passkeys.

mod common;

use std::sync::Arc;

use chrono::Duration;
use common::{fixture, GOOD_PASSWORD};
use ringfence_accounts::passkeys::conformance::passkey;
use ringfence_accounts::{Accounts, PasskeyError, PasskeyService, User};
use serde_json::json;

const PUBLIC_URL: &str = "http://localhost:8080";

/// The shape of a registration answer, with nothing in it that verifies.
fn junk_registration() -> serde_json::Value {
    json!({"id": "AA", "rawId": "AA", "type": "public-key",
           "response": {"clientDataJSON": "e30", "attestationObject": "oA"},
           "clientExtensionResults": {}})
}

/// Registers Ada and Bob.
async fn ada_and_bob(accounts: &Accounts) -> (User, User) {
    let register = |email| accounts.register(email, GOOD_PASSWORD);
    (
        register("ada@example.com").await.unwrap(),
        register("bob@example.com").await.unwrap(),
    )
}

#[tokio::test]
async fn a_ceremony_lives_five_minutes_for_its_own_user() {
    let f = fixture().await;
    let store = f.db.passkey_store().await.unwrap();
    let ceremonies = f.db.mail_token_store().await.unwrap();
    let accounts = f.accounts.clone().with_passkey_store(Arc::clone(&store));
    let service = PasskeyService::new(accounts.clone(), store, ceremonies, PUBLIC_URL).unwrap();
    let (ada, bob) = ada_and_bob(&accounts).await;

    // Just inside the lifetime the ceremony is there (the answer is judged, and refused).
    let started = service.start_registration(&ada).await.unwrap();
    f.clock.advance(Duration::minutes(5) - Duration::seconds(1));
    let result = service
        .finish_registration(&ada, &started.challenge_id, "Laptop", &junk_registration())
        .await;
    assert_matches!(result, Err(PasskeyError::Rejected(_)));

    // Past it, it is gone.
    let started = service.start_registration(&ada).await.unwrap();
    f.clock.advance(Duration::minutes(5) + Duration::seconds(1));
    let result = service
        .finish_registration(&ada, &started.challenge_id, "Laptop", &junk_registration())
        .await;
    assert_matches!(result, Err(PasskeyError::InvalidChallenge));

    // Another user cannot finish it (and it is spent by the attempt).
    let started = service.start_registration(&ada).await.unwrap();
    let result = service
        .finish_registration(&bob, &started.challenge_id, "Laptop", &junk_registration())
        .await;
    assert_matches!(result, Err(PasskeyError::InvalidChallenge));
    let result = service
        .finish_registration(&ada, &started.challenge_id, "Laptop", &junk_registration())
        .await;
    assert_matches!(result, Err(PasskeyError::InvalidChallenge));

    // A ceremony for one account (second step, re-authentication) needs its passkeys.
    let result = service.start_login_for(&bob).await;
    assert_matches!(result, Err(PasskeyError::NoPasskeys));

    // A sign-in ceremony cannot finish a registration.
    let login = service.start_login(None).await.unwrap();
    let result = service
        .finish_registration(&ada, &login.challenge_id, "Laptop", &junk_registration())
        .await;
    assert_matches!(result, Err(PasskeyError::InvalidChallenge));
}

#[tokio::test]
async fn disabling_an_account_keeps_its_passkeys_and_deleting_removes_them() {
    let f = fixture().await;
    let store = f.db.passkey_store().await.unwrap();
    let accounts = f.accounts.clone().with_passkey_store(Arc::clone(&store));
    let (ada, bob) = ada_and_bob(&accounts).await;
    store.insert(&passkey(&ada.id, "Laptop", 0)).await.unwrap();
    store.insert(&passkey(&ada.id, "Phone", 1)).await.unwrap();
    store.insert(&passkey(&bob.id, "Key", 0)).await.unwrap();
    assert_eq!(accounts.passkey_count(&ada.id).await.unwrap(), 2);

    accounts.disable(&ada.id).await.unwrap();
    accounts.enable(&ada.id).await.unwrap();
    assert_eq!(accounts.passkey_count(&ada.id).await.unwrap(), 2);

    accounts.delete(&ada.id).await.unwrap();
    assert_eq!(store.count(&ada.id).await.unwrap(), 0);
    assert_eq!(accounts.passkey_count(&bob.id).await.unwrap(), 1);

    accounts.delete(&bob.id).await.unwrap();
    assert_eq!(store.count(&bob.id).await.unwrap(), 0);
}

#[tokio::test]
async fn removing_a_passkey_mails_a_notice_and_touches_only_the_owners() {
    let f = fixture().await;
    let mails = ringfence_testkit::MailCollector::default();
    let store = f.db.passkey_store().await.unwrap();
    let ceremonies = f.db.mail_token_store().await.unwrap();
    let accounts = f
        .accounts
        .clone()
        .with_mailer(Arc::new(mails.clone()))
        .with_passkey_store(Arc::clone(&store));
    let service =
        PasskeyService::new(accounts.clone(), Arc::clone(&store), ceremonies, PUBLIC_URL).unwrap();
    let (ada, bob) = ada_and_bob(&accounts).await;
    let laptop = passkey(&ada.id, "Laptop", 0);
    store.insert(&laptop).await.unwrap();

    assert!(matches!(
        service.delete(&bob, &laptop.id).await,
        Err(PasskeyError::NotFound)
    ));
    assert!(matches!(
        service.rename(&ada, &laptop.id, "\u{7}bell").await,
        Err(PasskeyError::InvalidName(_))
    ));
    service
        .rename(&ada, &laptop.id, " Work laptop ")
        .await
        .unwrap();
    service.delete(&ada, &laptop.id).await.unwrap();
    assert_eq!(service.count(&ada.id).await.unwrap(), 0);
    let removed: Vec<_> = mails
        .all()
        .into_iter()
        .filter(|(to, _)| to == "ada@example.com")
        .map(|(_, mail)| mail)
        .filter(|mail| mail.kind() == "passkey_removed")
        .collect();
    assert_eq!(
        removed,
        vec![ringfence_accounts::AccountMail::PasskeyRemoved {
            name: "Work laptop".into()
        }]
    );
}
