//! Per-IP request rate limit: a token bucket per source address, in a bounded table.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

/// A per-IP rate limit: each source IP may make `burst` requests at once and `per_second`
/// more every second after that (a token bucket).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    /// Requests per second allowed on average, per IP.
    pub per_second: f64,
    /// Requests allowed at once (the bucket size).
    pub burst: u32,
    /// Most IPs tracked at once (default 65 536; about 48 bytes each, so about 3 MiB).
    pub max_tracked: usize,
}

impl RateLimit {
    /// `per_second` requests per second per IP, bursts of twice that (at least 1).
    pub fn per_second(per_second: f64) -> Self {
        RateLimit {
            per_second,
            burst: (per_second * 2.0).clamp(1.0, u32::MAX as f64) as u32,
            max_tracked: 65_536,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The token buckets of a [`RateLimit`]. Sans-IO: [`check`](Self::check) takes `now`.
///
/// Bounded: at most [`RateLimit::max_tracked`] IPs. When the table is full, IPs whose bucket
/// has refilled (idle ones) are forgotten; if none has, the whole table is cleared. So the
/// limit fails open: a flood from more distinct (perhaps spoofed) UDP sources than the table
/// holds is not limited, but it can neither grow memory nor lock other clients out.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    buckets: HashMap<IpAddr, Bucket, std::hash::RandomState>,
}

impl RateLimiter {
    /// A limiter with no IP seen yet.
    pub fn new(limit: RateLimit) -> Self {
        RateLimiter {
            limit,
            buckets: HashMap::default(),
        }
    }

    /// The limit.
    pub fn limit(&self) -> &RateLimit {
        &self.limit
    }

    /// IPs currently tracked.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }

    /// Count one request from `ip` at `now`; `false` if it is over the limit (drop or refuse
    /// it). IPv4-mapped IPv6 addresses count as their IPv4 address.
    pub fn check(&mut self, now: Instant, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let burst = self.limit.burst as f64;
        let rate = self.limit.per_second;
        if !self.buckets.contains_key(&ip) && self.buckets.len() >= self.limit.max_tracked.max(1) {
            self.buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * rate < burst
            });
            if self.buckets.len() >= self.limit.max_tracked.max(1) {
                self.buckets.clear();
            }
        }
        let b = self.buckets.entry(ip).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_refills_at_the_rate() {
        let t = Instant::now();
        let mut r = RateLimiter::new(RateLimit {
            per_second: 10.0,
            burst: 5,
            max_tracked: 100,
        });
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!((0..8).filter(|_| r.check(t, a)).count(), 5);
        // Another IP has its own bucket.
        assert!(r.check(t, b));
        // 0.3 s later: 3 more for a.
        let t2 = t + Duration::from_millis(300);
        assert_eq!((0..8).filter(|_| r.check(t2, a)).count(), 3);
        // The mapped form of a is a.
        assert!(!r.check(t2, "::ffff:10.0.0.1".parse().unwrap()));
        // Long idle: a full bucket, never more than the burst.
        let t3 = t + Duration::from_secs(100);
        assert_eq!((0..8).filter(|_| r.check(t3, a)).count(), 5);
    }

    #[test]
    fn table_stays_bounded_and_fails_open() {
        let t = Instant::now();
        let mut r = RateLimiter::new(RateLimit {
            per_second: 1.0,
            burst: 1,
            max_tracked: 64,
        });
        for i in 0..10_000u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            assert!(r.check(t, ip), "a new IP is always let through");
            assert!(r.tracked() <= 64);
        }
        // A heavy hitter is still limited while the table churns below its bound.
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let mut r = RateLimiter::new(RateLimit {
            per_second: 1.0,
            burst: 1,
            max_tracked: 64,
        });
        assert!(r.check(t, a));
        assert!(!r.check(t, a));
        for i in 0..10u32 {
            r.check(t, IpAddr::from(i.to_be_bytes()));
        }
        assert!(!r.check(t, a));
    }
}
