//! The behaviour every [`PasskeyStore`] must have. Each check takes a migrated store and an
//! existing user id (passkeys reference their user); the backends' tests call [`run_all`].

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::{PasskeyStore, PasskeyStoreError, StoredPasskey};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
        .single()
        .unwrap_or_default()
        + Duration::milliseconds(456)
}

/// A fresh passkey of `user_id` named `name`, registered `minutes` after a fixed instant.
pub fn passkey(user_id: &str, name: &str, minutes: i64) -> StoredPasskey {
    StoredPasskey {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user_id.to_owned(),
        name: name.to_owned(),
        credential_id: uuid::Uuid::new_v4().simple().to_string(),
        credential: format!("{{\"cred\":\"{}\"}}", uuid::Uuid::new_v4()),
        created_at: t0() + Duration::minutes(minutes),
        last_used_at: None,
    }
}

/// Every check, for two users `alice` and `bob` that exist in the store's database.
pub async fn run_all(store: &dyn PasskeyStore, alice: &str, bob: &str) {
    inserted_passkeys_are_listed_oldest_first_and_counted(store, alice, bob).await;
    a_credential_id_is_registered_once(store, alice, bob).await;
    use_updates_the_credential_and_time(store, alice).await;
    rename_and_delete_touch_only_the_owners_passkey(store, alice, bob).await;
    delete_all_removes_one_users_passkeys(store, alice, bob).await;
}

/// Several passkeys per user, listed oldest first; another user's are not listed.
pub async fn inserted_passkeys_are_listed_oldest_first_and_counted(
    store: &dyn PasskeyStore,
    alice: &str,
    bob: &str,
) {
    store.delete_all(alice).await.unwrap();
    store.delete_all(bob).await.unwrap();
    let second = passkey(alice, "phone", 2);
    let first = passkey(alice, "laptop", 1);
    let other = passkey(bob, "key", 0);
    for p in [&second, &first, &other] {
        store.insert(p).await.unwrap();
    }
    assert_eq!(
        store.list(alice).await.unwrap(),
        vec![first.clone(), second]
    );
    assert_eq!(store.count(alice).await.unwrap(), 2);
    assert_eq!(store.count(bob).await.unwrap(), 1);
    assert_eq!(
        store.by_credential_id(&first.credential_id).await.unwrap(),
        Some(first)
    );
    assert_eq!(store.by_credential_id("nope").await.unwrap(), None);
}

/// One credential belongs to one account.
pub async fn a_credential_id_is_registered_once(store: &dyn PasskeyStore, alice: &str, bob: &str) {
    let p = passkey(alice, "a", 0);
    store.insert(&p).await.unwrap();
    let mut again = passkey(bob, "b", 0);
    again.credential_id = p.credential_id.clone();
    assert!(matches!(
        store.insert(&again).await,
        Err(PasskeyStoreError::Duplicate)
    ));
}

/// A sign-in rewrites the credential (counter, backup flags) and the last use.
pub async fn use_updates_the_credential_and_time(store: &dyn PasskeyStore, alice: &str) {
    let p = passkey(alice, "used", 0);
    store.insert(&p).await.unwrap();
    let used = t0() + Duration::hours(1);
    assert!(store.record_use(&p.id, "{\"n\":2}", used).await.unwrap());
    let now = store
        .by_credential_id(&p.credential_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now.credential, "{\"n\":2}");
    assert_eq!(now.last_used_at, Some(used));
    assert!(!store.record_use("missing", "{}", used).await.unwrap());
}

/// Rename and delete name the owner: another user's id is as good as a missing one.
pub async fn rename_and_delete_touch_only_the_owners_passkey(
    store: &dyn PasskeyStore,
    alice: &str,
    bob: &str,
) {
    let p = passkey(alice, "old name", 0);
    store.insert(&p).await.unwrap();
    assert!(!store.rename(bob, &p.id, "stolen").await.unwrap());
    assert!(store.rename(alice, &p.id, "new name").await.unwrap());
    assert_eq!(store.delete(bob, &p.id).await.unwrap(), None);
    let removed = store.delete(alice, &p.id).await.unwrap().unwrap();
    assert_eq!(removed.name, "new name");
    assert_eq!(store.delete(alice, &p.id).await.unwrap(), None);
}

/// Removing a user's passkeys leaves the others'.
pub async fn delete_all_removes_one_users_passkeys(
    store: &dyn PasskeyStore,
    alice: &str,
    bob: &str,
) {
    store.insert(&passkey(alice, "x", 0)).await.unwrap();
    store.insert(&passkey(bob, "y", 0)).await.unwrap();
    let bobs = store.count(bob).await.unwrap();
    assert!(store.delete_all(alice).await.unwrap() >= 1);
    assert_eq!(store.count(alice).await.unwrap(), 0);
    assert_eq!(store.count(bob).await.unwrap(), bobs);
}
