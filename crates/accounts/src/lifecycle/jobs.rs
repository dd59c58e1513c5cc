//! Work the request path hands off (the account lookup and mail of a password-reset request),
//! counted so shutdown and tests can wait for it.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// Spawned jobs still running. Cheap to clone; clones count the same jobs.
#[derive(Clone, Default)]
pub(crate) struct BackgroundJobs {
    inner: Arc<Jobs>,
}

#[derive(Default)]
struct Jobs {
    running: AtomicUsize,
    idle: Notify,
}

/// Counts one job while it lives, also when the job panics.
struct Running(Arc<Jobs>);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.running.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl BackgroundJobs {
    /// Runs `job` on the tokio runtime; [`BackgroundJobs::idle`] waits for it.
    pub(crate) fn spawn<F>(&self, job: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.inner.running.fetch_add(1, Ordering::SeqCst);
        let running = Running(Arc::clone(&self.inner));
        tokio::spawn(async move {
            let _running = running;
            job.await;
        });
    }

    /// Returns once no job is running.
    pub(crate) async fn idle(&self) {
        loop {
            let notified = self.inner.idle.notified();
            tokio::pin!(notified);
            // Registered before the check, so a job ending in between still wakes us.
            notified.as_mut().enable();
            if self.inner.running.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_waits_for_every_job_including_panicking_ones() {
        let jobs = BackgroundJobs::default();
        jobs.idle().await;
        let done = Arc::new(AtomicUsize::new(0));
        for i in 0..5u64 {
            let done = Arc::clone(&done);
            jobs.spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(5 * i)).await;
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
        jobs.spawn(async { panic!("a job failing must not hang idle()") });
        tokio::time::timeout(std::time::Duration::from_secs(5), jobs.idle())
            .await
            .expect("idle returns");
        assert_eq!(done.load(Ordering::SeqCst), 5);
    }
}
