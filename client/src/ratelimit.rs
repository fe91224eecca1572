//! Session-wide rate limits: token buckets for upload and download.
//!
//! [`TokenBucket`] is the sans-IO core: `rate` tokens (bytes) per second accrue up to a
//! burst of `capacity`; [`TokenBucket::take`] spends bytes already moved (the balance may
//! go negative) and says how long to wait before moving more, so over any run the bytes
//! moved are at most `capacity + rate × elapsed`. [`RateLimiter`] shares one bucket
//! between tasks (every connection of every torrent of a session) and sleeps for them.
//! The session applies it to every byte a connection reads or writes after the
//! handshake (protocol overhead included, as users measure it).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A token bucket on explicit time. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: u64,
    capacity: u64,
    /// Tokens available (negative: debt to wait off).
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket: `rate` bytes per second (at least 1), bursts of `capacity` bytes.
    pub fn new(now: Instant, rate: u64, capacity: u64) -> Self {
        TokenBucket {
            rate: rate.max(1),
            capacity,
            tokens: capacity as f64,
            last: now,
        }
    }

    /// A bucket for `rate` bytes per second with the default burst: a tenth of a second's
    /// worth, at least 16 KiB (one block) so small limits still move whole messages.
    pub fn with_rate(now: Instant, rate: u64) -> Self {
        TokenBucket::new(now, rate, (rate / 10).max(16 * 1024))
    }

    /// The rate in bytes per second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + dt * self.rate as f64).min(self.capacity as f64);
    }

    /// Spends `bytes` (already moved, or about to be); returns how long to wait before
    /// moving anything more (zero while the balance is positive).
    pub fn take(&mut self, now: Instant, bytes: u64) -> Duration {
        self.refill(now);
        self.tokens -= bytes as f64;
        self.wait(now)
    }

    /// How long until the balance is positive again.
    pub fn wait(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate as f64)
        }
    }
}

/// A [`TokenBucket`] shared between tasks; `None` inside means unlimited.
#[derive(Debug, Clone, Default)]
pub struct RateLimiter {
    bucket: Option<Arc<Mutex<TokenBucket>>>,
}

impl RateLimiter {
    /// A limiter for `rate` bytes per second (`None`: unlimited).
    pub fn new(rate: Option<u64>) -> Self {
        RateLimiter {
            bucket: rate.map(|r| Arc::new(Mutex::new(TokenBucket::with_rate(Instant::now(), r)))),
        }
    }

    /// Whether a limit is set.
    pub fn is_limited(&self) -> bool {
        self.bucket.is_some()
    }

    /// Accounts for `bytes` moved, then sleeps until more may move.
    pub async fn consume(&self, bytes: usize) {
        let Some(b) = &self.bucket else {
            return;
        };
        let wait = {
            let mut b = b.lock().unwrap_or_else(|p| p.into_inner());
            b.take(Instant::now(), bytes as u64)
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Sleeps until the balance is positive (before reading, so a reader never pulls
    /// data while in debt).
    pub async fn ready(&self) {
        let Some(b) = &self.bucket else {
            return;
        };
        let wait = {
            let mut b = b.lock().unwrap_or_else(|p| p.into_inner());
            b.wait(Instant::now())
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_lets_through_its_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(t0, 1000, 500);
        assert_eq!(b.take(t0, 500), Duration::ZERO);
        // 250 bytes of debt at 1000/s: wait 250 ms.
        assert_eq!(b.take(t0, 250), Duration::from_millis(250));
        assert_eq!(
            b.wait(t0 + Duration::from_millis(100)),
            Duration::from_millis(150)
        );
        assert_eq!(b.wait(t0 + Duration::from_millis(250)), Duration::ZERO);
        // Idle time refills up to the capacity, never beyond.
        let t1 = t0 + Duration::from_secs(100);
        assert_eq!(b.take(t1, 500), Duration::ZERO);
        assert!(b.take(t1, 1) > Duration::ZERO);
    }

    #[test]
    fn moving_n_bytes_takes_at_least_n_minus_burst_over_rate() {
        // Simulated time: a mover that always waits what it is told.
        let t0 = Instant::now();
        let mut b = TokenBucket::with_rate(t0, 100_000);
        let mut now = t0;
        let mut moved = 0u64;
        while moved < 1_000_000 {
            now += b.take(now, 16_384);
            moved += 16_384;
        }
        let elapsed = now - t0;
        let bound = (moved - 16_384 - 16_384) as f64 / 100_000.0;
        assert!(elapsed.as_secs_f64() >= bound, "{elapsed:?} < {bound}");
        assert!(elapsed.as_secs_f64() <= bound + 1.0, "{elapsed:?}");
    }

    #[test]
    fn unlimited_never_waits() {
        let r = RateLimiter::new(None);
        assert!(!r.is_limited());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let t = Instant::now();
            r.consume(1 << 30).await;
            r.ready().await;
            assert!(t.elapsed() < Duration::from_secs(1));
        });
    }
}
