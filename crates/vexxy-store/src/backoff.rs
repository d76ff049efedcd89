//! Exponential backoff: the one formula behind every retry of the
//! service (failed job attempts, jobs of lost workers, webhook deliveries).

use std::time::Duration;

/// Waits that start at `base` and double with every attempt, never longer
/// than `cap`. A cap below the base is the base: the cap never shortens
/// the first wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Backoff {
    /// The longest wait unless configured otherwise: an hour.
    pub const DEFAULT_CAP: Duration = Duration::from_secs(3600);

    pub const fn new(base: Duration, cap: Duration) -> Self {
        Self { base, cap }
    }

    /// The wait after failed attempt `attempt`, counted from 1: `base`
    /// after the first, twice that after the second, and so on up to the
    /// cap. Attempts below 1 count as the first.
    pub fn delay(&self, attempt: i64) -> Duration {
        let cap = self.cap.max(self.base);
        let doublings = u32::try_from(attempt.saturating_sub(1).max(0)).unwrap_or(u32::MAX);
        2u32.checked_pow(doublings)
            .map_or(cap, |factor| self.base.saturating_mul(factor))
            .min(cap)
    }

    /// [`Self::delay`] in milliseconds, the unit of the store's time columns.
    pub fn delay_ms(&self, attempt: i64) -> i64 {
        i64::try_from(self.delay(attempt).as_millis()).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn doubles_per_attempt_from_the_base() {
        let b = Backoff::new(10 * S, Backoff::DEFAULT_CAP);
        let waits: Vec<u64> = (1..=6).map(|a| b.delay(a).as_secs()).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320]);
        assert_eq!(b.delay_ms(2), 20_000);
    }

    #[test]
    fn stops_at_the_cap_and_never_overflows() {
        let b = Backoff::new(2 * S, Backoff::DEFAULT_CAP);
        assert_eq!(b.delay(11), 2048 * S);
        assert_eq!(b.delay(12), 3600 * S);
        for attempt in [33, 64, 1_000, i64::MAX] {
            assert_eq!(b.delay(attempt), 3600 * S, "{attempt}");
        }
        let huge = Backoff::new(Duration::MAX, Duration::MAX);
        assert_eq!(huge.delay(40), Duration::MAX);
        assert_eq!(huge.delay_ms(40), i64::MAX);
    }

    #[test]
    fn odd_inputs_stay_sensible() {
        let b = Backoff::new(10 * S, 60 * S);
        // attempts below 1 count as the first
        for attempt in [0, -1, i64::MIN] {
            assert_eq!(b.delay(attempt), 10 * S, "{attempt}");
        }
        // a cap below the base does not shorten the first wait
        assert_eq!(Backoff::new(10 * S, S).delay(3), 10 * S);
        // a zero base is no wait at all
        assert_eq!(Backoff::new(Duration::ZERO, S).delay(5), Duration::ZERO);
    }
}
