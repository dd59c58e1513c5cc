//! No user enumeration through timing: signing in with an unknown e-mail takes as long as with a
//! known e-mail and a wrong password (real argon2id at OWASP parameters, no throttle so no lock
//! interferes). Its own test binary, so no other test of this crate hashes at the same time.

mod common;

use std::time::{Duration, Instant};

use common::{fixture, OTHER_PASSWORD};
use ringfence_accounts::{AccountError, Accounts, Argon2Params};

const SAMPLES: usize = 21;

async fn timed(accounts: &Accounts, email: &str) -> Duration {
    let started = Instant::now();
    let err = accounts
        .authenticate(email, OTHER_PASSWORD)
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert_matches!(err, AccountError::InvalidCredentials);
    elapsed
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn median_sign_in_time_does_not_reveal_whether_an_account_exists() {
    let f = fixture().await;
    assert_eq!(f.accounts.hasher().params(), Argon2Params::OWASP);
    f.register("alice@example.com").await;
    f.accounts.hasher().warm_up().await.unwrap();
    // One round of each before measuring: connections, caches, lazy statics.
    timed(&f.accounts, "alice@example.com").await;
    timed(&f.accounts, "nobody@example.com").await;

    // Interleaved, so a burst of load on the machine hits both series alike.
    let mut known = Vec::with_capacity(SAMPLES);
    let mut unknown = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        known.push(timed(&f.accounts, "alice@example.com").await);
        unknown.push(timed(&f.accounts, &format!("nobody{i}@example.com")).await);
    }
    let (known, unknown) = (median(known), median(unknown));
    println!("median sign-in: known e-mail, wrong password {known:?}; unknown e-mail {unknown:?}");
    let ratio = unknown.as_secs_f64() / known.as_secs_f64();
    assert!(
        (0.5..=1.5).contains(&ratio),
        "unknown e-mail median {unknown:?} vs wrong password median {known:?} (ratio {ratio:.2})"
    );
}
