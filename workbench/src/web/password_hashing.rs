//! The cap on password hashes running at once. One argon2id hash takes 19 MiB and tens of
//! milliseconds of CPU on a blocking thread, so without a cap a few hundred parallel logins
//! take gigabytes. Beyond the cap a request waits briefly for a turn, then is answered 503
//! with `Retry-After` instead of queueing without end.

use super::auth::{hash_password, verify_password};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// How long a request waits for a free hashing slot before it is answered "busy": several
/// hashes' time, so a short burst is absorbed and a flood is refused fast.
pub const HASH_QUEUE_WAIT: Duration = Duration::from_millis(500);
/// What the `Retry-After` header of a "busy" answer says, in seconds.
pub const BUSY_RETRY_AFTER_SECONDS: u64 = 1;

/// Every hashing slot was taken for longer than `HASH_QUEUE_WAIT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the server is busy checking passwords; try again in a moment")]
pub struct HashingBusy;

/// Runs argon2 on blocking threads, at most `slots` at a time.
#[derive(Debug, Clone)]
pub struct PasswordHashing {
    slots: Arc<Semaphore>,
    capacity: usize,
    wait: Duration,
}

impl PasswordHashing {
    /// At most `slots` hashes at once; 0 means one per CPU.
    pub fn new(slots: usize) -> Self {
        let capacity = if slots == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            slots
        };
        Self {
            slots: Arc::new(Semaphore::new(capacity)),
            capacity,
            wait: HASH_QUEUE_WAIT,
        }
    }

    /// The same cap with another wait for a slot (tests use a short one).
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// How many hashes may run at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether `password` matches the PHC `hash`.
    pub async fn verify(&self, password: String, hash: String) -> Result<bool, HashingBusy> {
        self.run(move || verify_password(&password, &hash)).await
    }

    /// Hashes a new password (argon2id, random salt).
    pub async fn hash(&self, password: String) -> Result<Result<String, String>, HashingBusy> {
        self.run(move || hash_password(&password)).await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashingBusy> {
        let permit = tokio::time::timeout(self.wait, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| HashingBusy)?
            .map_err(|_| HashingBusy)?;
        // The slot travels into the blocking task: when a client hangs up, its hash still
        // runs to the end and keeps the slot until then, so the cap holds in memory too.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|_| HashingBusy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_beyond_the_cap_are_refused_after_the_wait() {
        let hashing = PasswordHashing::new(1).with_wait(Duration::from_millis(20));
        let (started, wait_started) = tokio::sync::oneshot::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let busy = hashing.clone();
        let holder = tokio::spawn(async move {
            busy.run(move || {
                let _ = started.send(());
                let _ = released.recv();
            })
            .await
        });
        wait_started.await.unwrap();
        assert_eq!(
            hashing.verify("x".into(), "y".into()).await,
            Err(HashingBusy)
        );
        release.send(()).unwrap();
        holder.await.unwrap().unwrap();
        assert_eq!(
            hashing.verify("x".into(), "not a hash".into()).await,
            Ok(false)
        );
    }

    #[test]
    fn zero_slots_means_one_per_cpu() {
        assert!(PasswordHashing::new(0).capacity() >= 1);
        assert_eq!(PasswordHashing::new(3).capacity(), 3);
    }
}
