//! The one test suite every [`KeyRepository`] backend passes.
//!
//! Backends are tested by their crate's integration tests, which call [`run_all`] with a factory
//! that makes a fresh, empty store and `n` independent handles to it (separate connections, as
//! separate nodes would have). The suite includes the cold-start race: eight key rings opening
//! at once on one empty store must end with exactly one key.

use std::future::Future;
use std::sync::Arc;

use chrono::{Duration, Utc};

use crate::document::KeyDocument;
use crate::key::{Key, KeyId, KeyInfo, KeyMaterial};
use crate::repository::KeyRepository;
use crate::{KeyRing, KeyRingConfig, ManualClock};

fn document(revoked: bool) -> KeyDocument {
    let now = Utc::now();
    let key = Key {
        info: KeyInfo {
            id: KeyId::generate(),
            created_at: now,
            activates_at: now,
            expires_at: now + Duration::days(90),
            revoked_at: revoked.then_some(now),
        },
        material: KeyMaterial::generate(),
    };
    KeyDocument::seal(&key, None)
}

fn parse_all(snapshot: &crate::RingSnapshot) -> Vec<KeyDocument> {
    snapshot
        .documents
        .iter()
        .map(|raw| {
            KeyDocument::from_json(&raw.bytes).expect("backend returned a document it was given")
        })
        .collect()
}

/// Runs every check. `fresh(n)` returns `n` handles to one new, empty store.
pub async fn run_all<F, Fut>(fresh: F)
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Vec<Arc<dyn KeyRepository>>>,
{
    empty_store_is_revision_zero(&fresh(1).await[0]).await;
    compare_and_write_moves_revision(&fresh(2).await).await;
    documents_are_replaced_by_id(&fresh(1).await[0]).await;
    concurrent_writers_one_wins(&fresh(8).await).await;
    cold_start_makes_exactly_one_key(fresh(8).await).await;
}

/// An empty store has revision 0 and no documents.
pub async fn empty_store_is_revision_zero(repo: &Arc<dyn KeyRepository>) {
    let snapshot = repo.load().await.expect("load");
    assert_eq!(snapshot.revision, 0);
    assert!(snapshot.documents.is_empty());
    assert_eq!(repo.revision().await.expect("revision"), 0);
}

/// A write with the current revision lands and moves the revision; a stale one is refused;
/// another handle sees both.
pub async fn compare_and_write_moves_revision(handles: &[Arc<dyn KeyRepository>]) {
    let (a, b) = (&handles[0], &handles[1]);
    let first = document(false);
    assert!(a
        .compare_and_write(0, std::slice::from_ref(&first))
        .await
        .expect("write"));
    assert_eq!(b.revision().await.expect("revision"), 1);
    assert!(!b
        .compare_and_write(0, &[document(false)])
        .await
        .expect("stale write"));
    let second = document(false);
    assert!(b
        .compare_and_write(1, std::slice::from_ref(&second))
        .await
        .expect("write"));
    let snapshot = a.load().await.expect("load");
    assert_eq!(snapshot.revision, 2);
    let mut ids: Vec<KeyId> = parse_all(&snapshot).iter().map(|d| d.id).collect();
    ids.sort();
    let mut want = vec![first.id, second.id];
    want.sort();
    assert_eq!(ids, want);
}

/// Writing a document with an existing id replaces it (how revocation is stored).
pub async fn documents_are_replaced_by_id(repo: &Arc<dyn KeyRepository>) {
    let doc = document(false);
    assert!(repo
        .compare_and_write(0, std::slice::from_ref(&doc))
        .await
        .expect("write"));
    let mut revoked = doc.clone();
    revoked.revoked_at = Some(Utc::now());
    assert!(repo
        .compare_and_write(1, &[revoked.clone()])
        .await
        .expect("write"));
    let docs = parse_all(&repo.load().await.expect("load"));
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0], revoked);
}

/// Many writers with the same expected revision: exactly one wins.
pub async fn concurrent_writers_one_wins(handles: &[Arc<dyn KeyRepository>]) {
    let tasks: Vec<_> = handles
        .iter()
        .map(|repo| {
            let repo = Arc::clone(repo);
            tokio::spawn(async move { repo.compare_and_write(0, &[document(false)]).await })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        if task.await.expect("task").expect("write") {
            wins += 1;
        }
    }
    assert_eq!(wins, 1, "exactly one concurrent compare-and-write may win");
    assert_eq!(handles[0].load().await.expect("load").documents.len(), 1);
}

/// Key rings opening at once on one empty store (one handle each, like separate nodes) end
/// with exactly one key, and all of them use it.
pub async fn cold_start_makes_exactly_one_key(handles: Vec<Arc<dyn KeyRepository>>) {
    let clock = ManualClock::new(Utc::now());
    let tasks: Vec<_> = handles
        .into_iter()
        .map(|repo| {
            let clock = clock.shared();
            tokio::spawn(async move { KeyRing::open(repo, KeyRingConfig::default(), clock).await })
        })
        .collect();
    let mut rings = Vec::new();
    for task in tasks {
        rings.push(task.await.expect("task").expect("open"));
    }
    let first = rings[0].keys();
    assert_eq!(
        first.len(),
        1,
        "cold start must create exactly one key, got {first:?}"
    );
    for ring in &rings {
        ring.reload().await.expect("reload");
        assert_eq!(ring.keys().len(), 1);
        assert_eq!(ring.default_key_id(), Some(first[0].id));
    }
}
