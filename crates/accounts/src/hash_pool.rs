//! The threads password hashes run on: a few dedicated ones, at a background CPU priority.
//!
//! Why not tokio's blocking pool: an argon2id hash is ~20-60 ms of pure CPU. On a small machine
//! a burst of sign-ins on the blocking pool competes as an equal with the runtime's workers, so
//! every signed-in request waits behind hashes (the sign-in storm of `bench/load.sh` tripled
//! their p99). Hashes run here instead, on `threads` threads that lower their own scheduling
//! priority once at start (unprivileged: a thread may always lower its own priority, never raise
//! it back, which is why these threads do nothing else). Requests then take the CPU first and
//! sign-ins use what is left: under saturation sign-ins slow down, not everything.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use crate::AccountError;

/// The CPU priority of the password-hashing threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashPriority {
    /// The same priority as everything else in the process.
    Normal,
    /// Nice 19 (Linux): the lowest of the normal priorities; hashing still gets a small share
    /// of a saturated CPU.
    Low,
    /// `SCHED_IDLE` (Linux): the scheduler runs hashes only when no other thread wants the CPU
    /// and preempts them at once when one does, so signed-in requests see no hashing latency.
    /// The default. On other systems the same as [`HashPriority::Normal`].
    #[default]
    Idle,
}

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed set of hashing threads fed through a channel. Dropping the pool closes the channel;
/// each thread finishes its current job and exits.
pub(crate) struct HashPool {
    jobs: Mutex<mpsc::Sender<Job>>,
    threads: usize,
}

impl HashPool {
    /// Starts up to `threads` threads (at least one is attempted). If the system refuses to
    /// start any, [`HashPool::run`] falls back to tokio's blocking pool rather than failing.
    pub(crate) fn new(threads: usize, priority: HashPriority) -> Self {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let mut started = 0;
        for n in 0..threads.max(1) {
            let receiver = Arc::clone(&receiver);
            let spawned = std::thread::Builder::new()
                .name(format!("ringfence-argon2-{n}"))
                .spawn(move || worker(&receiver, priority));
            match spawned {
                Ok(_) => started += 1,
                Err(error) => tracing::warn!(%error, "cannot start a password hashing thread"),
            }
        }
        Self {
            jobs: Mutex::new(sender),
            threads: started,
        }
    }

    /// Runs `work` on a hashing thread and waits for it without blocking the runtime.
    pub(crate) async fn run<T, F>(&self, work: F) -> Result<T, AccountError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let lost = || AccountError::Internal("password hashing task failed".to_owned());
        if self.threads == 0 {
            return tokio::task::spawn_blocking(work).await.map_err(|_| lost());
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // A caller that gave up while the job queued (request cancelled, timed out) needs no
            // hash: under load, computing it anyway would spend the CPU on answers nobody reads.
            if reply.is_closed() {
                return;
            }
            // The caller may also go away while it runs: nothing to report then.
            let _ = reply.send(work());
        });
        self.jobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .send(job)
            .map_err(|_| lost())?;
        answer.await.map_err(|_| lost())
    }
}

fn worker(receiver: &Mutex<mpsc::Receiver<Job>>, priority: HashPriority) {
    lower_priority(priority);
    loop {
        // The lock is held only while waiting for the next job, never while hashing.
        let job = match receiver
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .recv()
        {
            Ok(job) => job,
            Err(mpsc::RecvError) => return,
        };
        // A panicking job drops its reply sender (the caller gets an error); the thread lives on.
        if catch_unwind(AssertUnwindSafe(job)).is_err() {
            tracing::error!("a password hashing job panicked");
        }
    }
}

/// Lowers the calling thread's scheduling priority. Failure only costs latency, so it is logged.
#[cfg(target_os = "linux")]
fn lower_priority(priority: HashPriority) {
    let outcome = match priority {
        HashPriority::Normal => return,
        // SAFETY: plain system calls on the calling thread (pid 0 / its own tid) with a valid,
        // initialized parameter struct; no memory is shared with the kernel beyond the call.
        HashPriority::Low => unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, 19)
        },
        HashPriority::Idle => unsafe {
            let param = libc::sched_param { sched_priority: 0 };
            libc::sched_setscheduler(0, libc::SCHED_IDLE, &param)
        },
    };
    if outcome != 0 {
        tracing::warn!(
            ?priority,
            error = %std::io::Error::last_os_error(),
            "cannot lower the password hashing thread's priority; sign-ins compete with requests"
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority(_priority: HashPriority) {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// (scheduling policy, nice value) of the calling thread.
    fn current() -> (i32, i32) {
        // SAFETY: read-only queries about the calling thread.
        unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            (
                libc::sched_getscheduler(0),
                libc::getpriority(libc::PRIO_PROCESS, tid),
            )
        }
    }

    #[tokio::test]
    async fn jobs_run_at_the_requested_priority() {
        let normal = current();
        let idle = HashPool::new(1, HashPriority::Idle);
        assert_eq!(idle.run(current).await.unwrap().0, libc::SCHED_IDLE);
        let low = HashPool::new(1, HashPriority::Low);
        assert_eq!(low.run(current).await.unwrap(), (libc::SCHED_OTHER, 19));
        let same = HashPool::new(1, HashPriority::Normal);
        assert_eq!(same.run(current).await.unwrap(), normal);
        // The caller's own thread is untouched.
        assert_eq!(current(), normal);
    }

    #[tokio::test]
    async fn a_job_whose_caller_left_is_skipped() {
        let pool = Arc::new(HashPool::new(1, HashPriority::Normal));
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Occupy the only thread, queue a job, abandon it, then free the thread.
        let occupier = Arc::clone(&pool);
        let busy = tokio::spawn(async move { occupier.run(move || hold.recv().is_ok()).await });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let flag = Arc::clone(&ran);
        let abandoned = pool.run(move || flag.store(true, std::sync::atomic::Ordering::SeqCst));
        let abandoned = tokio::time::timeout(std::time::Duration::from_millis(50), abandoned);
        assert!(abandoned.await.is_err(), "still queued behind the busy job");
        release.send(()).unwrap();
        assert!(busy.await.unwrap().unwrap());
        // The thread takes the next job only after the abandoned one: it ran by then, or not.
        assert_eq!(pool.run(|| 1).await.unwrap(), 1);
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_and_the_pool_lives_on() {
        let pool = HashPool::new(1, HashPriority::Normal);
        let result = pool.run(|| -> u32 { panic!("boom") }).await;
        assert!(
            matches!(result, Err(AccountError::Internal(_))),
            "{result:?}"
        );
        assert_eq!(pool.run(|| 7).await.unwrap(), 7);
    }
}
