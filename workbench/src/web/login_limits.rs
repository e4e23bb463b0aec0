//! Limits on failed logins, per account and address, per account, and per address. An
//! attempt is counted as a failure *before* its password is checked and refunded when it
//! succeeds, so parallel attempts cannot all pass the check while the slow hashes run.
//! One process's view: behind several replicas an attacker gets the limits once per replica,
//! which still stops guessing.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long a failed attempt counts.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failed attempts allowed per account from one address within `LOGIN_WINDOW`: stops one
/// client guessing one password.
pub const MAX_FAILURES_PER_ACCOUNT_AND_ADDRESS: usize = 5;
/// Failed attempts allowed per account from all addresses: stops many clients guessing one
/// password together (the account's owner may be locked out for the window meanwhile).
pub const MAX_FAILURES_PER_ACCOUNT: usize = 20;
/// Failed attempts allowed per address over all accounts: stops one client trying one
/// password on many accounts. Behind a reverse proxy every client has the proxy's address.
pub const MAX_FAILURES_PER_ADDRESS: usize = 50;
/// Sweep expired entries when the maps hold more keys than this, at most once a window.
const SWEEP_ABOVE_KEYS: usize = 4096;

/// An attempt counted as failed until `LoginLimiter::succeed` or `refund` takes it back.
#[derive(Debug)]
#[must_use = "a reservation is a failure until it is refunded or the login succeeds"]
pub struct Reservation {
    account: String,
    address: String,
    at: Instant,
}

/// Why an attempt was refused: which limit, and when the oldest failure in it expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub limit: &'static str,
    pub retry_after: Duration,
}

#[derive(Default)]
struct Attempts {
    pairs: HashMap<(String, String), VecDeque<Instant>>,
    accounts: HashMap<String, VecDeque<Instant>>,
    addresses: HashMap<String, VecDeque<Instant>>,
    last_sweep: Option<Instant>,
}

/// Failed login attempts in memory.
#[derive(Default)]
pub struct LoginLimiter {
    attempts: Mutex<Attempts>,
}

fn expire(times: &mut VecDeque<Instant>, now: Instant) {
    while times
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= LOGIN_WINDOW)
    {
        times.pop_front();
    }
}

fn remove_one(times: Option<&mut VecDeque<Instant>>, at: Instant) {
    if let Some(times) = times
        && let Some(index) = times.iter().rposition(|t| *t == at)
    {
        times.remove(index);
    }
}

impl LoginLimiter {
    fn lock(&self) -> MutexGuard<'_, Attempts> {
        // Counters only: a panic elsewhere cannot leave them inconsistent in a way that
        // matters, and failing open would switch the limits off.
        self.attempts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts an attempt on `account` from `address` as failed, unless a limit is reached.
    pub fn reserve(&self, account: &str, address: &str) -> Result<Reservation, Limited> {
        self.reserve_at(account, address, Instant::now())
    }

    fn reserve_at(
        &self,
        account: &str,
        address: &str,
        now: Instant,
    ) -> Result<Reservation, Limited> {
        let mut attempts = self.lock();
        attempts.sweep(now);
        let pair_key = (account.to_string(), address.to_string());
        let Attempts {
            pairs,
            accounts,
            addresses,
            ..
        } = &mut *attempts;
        let pair = pairs.entry(pair_key).or_default();
        let by_account = accounts.entry(account.to_string()).or_default();
        let by_address = addresses.entry(address.to_string()).or_default();
        let mut refusal: Option<Limited> = None;
        for (times, max, limit) in [
            (
                &mut *pair,
                MAX_FAILURES_PER_ACCOUNT_AND_ADDRESS,
                "failed logins for this account from this address",
            ),
            (
                &mut *by_account,
                MAX_FAILURES_PER_ACCOUNT,
                "failed logins for this account",
            ),
            (
                &mut *by_address,
                MAX_FAILURES_PER_ADDRESS,
                "failed logins from this address",
            ),
        ] {
            expire(times, now);
            if times.len() >= max {
                let oldest = times[times.len() - max];
                let retry_after = (oldest + LOGIN_WINDOW).saturating_duration_since(now);
                if refusal.is_none_or(|r| r.retry_after < retry_after) {
                    refusal = Some(Limited { limit, retry_after });
                }
            }
        }
        if let Some(refusal) = refusal {
            return Err(refusal);
        }
        pair.push_back(now);
        by_account.push_back(now);
        by_address.push_back(now);
        Ok(Reservation {
            account: account.to_string(),
            address: address.to_string(),
            at: now,
        })
    }

    /// A wrong password (or an unknown account): the attempt stays counted as it was reserved.
    pub fn fail(&self, reservation: Reservation) {
        tracing::debug!(address = %reservation.address, "failed login counted");
    }

    /// Takes back an attempt whose password was never checked (the server was busy).
    pub fn refund(&self, reservation: Reservation) {
        let mut attempts = self.lock();
        let Reservation {
            account,
            address,
            at,
        } = reservation;
        remove_one(attempts.accounts.get_mut(&account), at);
        remove_one(attempts.addresses.get_mut(&address), at);
        remove_one(attempts.pairs.get_mut(&(account, address)), at);
    }

    /// A correct password: the attempt did not fail, and the account's earlier failures from
    /// this address are forgiven. Failures counted per account and per address stay until
    /// they expire, so a guesser cannot reset them by logging in to an account of their own.
    pub fn succeed(&self, reservation: Reservation) {
        let key = (reservation.account.clone(), reservation.address.clone());
        self.refund(reservation);
        self.lock().pairs.remove(&key);
    }

    #[cfg(test)]
    fn failures(&self, account: &str, address: &str) -> (usize, usize, usize) {
        let attempts = self.lock();
        let len = |times: Option<&VecDeque<Instant>>| times.map_or(0, VecDeque::len);
        (
            len(attempts
                .pairs
                .get(&(account.to_string(), address.to_string()))),
            len(attempts.accounts.get(account)),
            len(attempts.addresses.get(address)),
        )
    }
}

impl Attempts {
    /// Forgets expired attempts and empty keys, so guesses at many made-up accounts do not
    /// grow the maps without end.
    fn sweep(&mut self, now: Instant) {
        let keys = self.pairs.len() + self.accounts.len() + self.addresses.len();
        let due = self
            .last_sweep
            .is_none_or(|last| now.saturating_duration_since(last) >= LOGIN_WINDOW);
        if keys <= SWEEP_ABOVE_KEYS || !due {
            return;
        }
        self.last_sweep = Some(now);
        let keep = |times: &mut VecDeque<Instant>| {
            expire(times, now);
            !times.is_empty()
        };
        self.pairs.retain(|_, times| keep(times));
        self.accounts.retain(|_, times| keep(times));
        self.addresses.retain(|_, times| keep(times));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_and_address_gets_five_attempts_then_waits_for_the_window() {
        let limiter = LoginLimiter::default();
        let start = Instant::now();
        for _ in 0..MAX_FAILURES_PER_ACCOUNT_AND_ADDRESS {
            let _failed = limiter.reserve_at("alice", "1.2.3.4", start).unwrap();
        }
        let refused = limiter.reserve_at("alice", "1.2.3.4", start).unwrap_err();
        assert_eq!(refused.retry_after, LOGIN_WINDOW);
        // Another address may still try, and the first one again once the window has passed.
        assert!(limiter.reserve_at("alice", "5.6.7.8", start).is_ok());
        assert!(
            limiter
                .reserve_at("alice", "1.2.3.4", start + LOGIN_WINDOW)
                .is_ok()
        );
    }

    #[test]
    fn many_addresses_share_the_account_limit_and_one_address_the_address_limit() {
        let limiter = LoginLimiter::default();
        let now = Instant::now();
        for n in 0..MAX_FAILURES_PER_ACCOUNT {
            let _failed = limiter
                .reserve_at("bob", &format!("10.0.0.{n}"), now)
                .unwrap();
        }
        assert_eq!(
            limiter
                .reserve_at("bob", "10.0.1.1", now)
                .unwrap_err()
                .limit,
            "failed logins for this account"
        );
        for n in 0..MAX_FAILURES_PER_ADDRESS {
            let _failed = limiter
                .reserve_at(&format!("user{n}"), "10.9.9.9", now)
                .unwrap();
        }
        assert_eq!(
            limiter
                .reserve_at("carol", "10.9.9.9", now)
                .unwrap_err()
                .limit,
            "failed logins from this address"
        );
    }

    #[test]
    fn success_refunds_its_attempt_and_forgives_the_pair_only() {
        let limiter = LoginLimiter::default();
        let _failed = limiter.reserve("alice", "1.2.3.4").unwrap();
        let _failed = limiter.reserve("alice", "1.2.3.4").unwrap();
        assert_eq!(limiter.failures("alice", "1.2.3.4"), (2, 2, 2));
        let attempt = limiter.reserve("alice", "1.2.3.4").unwrap();
        limiter.succeed(attempt);
        assert_eq!(limiter.failures("alice", "1.2.3.4"), (0, 2, 2));
        let busy = limiter.reserve("alice", "1.2.3.4").unwrap();
        limiter.refund(busy);
        assert_eq!(limiter.failures("alice", "1.2.3.4"), (0, 2, 2));
    }

    #[test]
    fn expired_keys_are_swept_once_there_are_many() {
        let limiter = LoginLimiter::default();
        let start = Instant::now();
        for n in 0..SWEEP_ABOVE_KEYS {
            // Past the address limit these are refused, and leave only empty entries.
            let _attempt = limiter.reserve_at(&format!("user{n}"), "10.0.0.1", start);
        }
        let _later = limiter.reserve_at("alice", "10.0.0.2", start + LOGIN_WINDOW);
        let attempts = limiter.lock();
        assert_eq!(attempts.pairs.len(), 1);
        assert_eq!(attempts.accounts.len(), 1);
    }
}
