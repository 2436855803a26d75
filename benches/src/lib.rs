//! Spate benchmark support: the statistics the benchmark binaries report.
//!
//! The benchmarks themselves are binaries under `src/bin/` (see `docs/BENCHMARKS.md`); they are
//! never run by `cargo test`. This library holds the small pieces they share, with unit tests.

use std::time::Duration;

/// Summary of a set of timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// The median; for an even count, the mean of the two middle values.
    pub median: Duration,
    /// The fastest.
    pub min: Duration,
    /// The slowest.
    pub max: Duration,
}

impl Stats {
    /// Summarises `times`, which must not be empty.
    pub fn new(times: &[Duration]) -> Stats {
        assert!(!times.is_empty(), "no timings to summarise");
        let mut sorted = times.to_vec();
        sorted.sort_unstable();
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2
        };
        Stats {
            median,
            min: sorted[0],
            max: sorted[n - 1],
        }
    }
}

/// Throughput in MB/s (10^6 bytes per second) of `bytes` processed in `time`.
pub fn mb_per_s(bytes: usize, time: Duration) -> f64 {
    bytes as f64 / 1e6 / time.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        let s = Stats::new(&[ms(30), ms(10), ms(20)]);
        assert_eq!((s.median, s.min, s.max), (ms(20), ms(10), ms(30)));
        let s = Stats::new(&[ms(40), ms(10), ms(20), ms(30)]);
        assert_eq!((s.median, s.min, s.max), (ms(25), ms(10), ms(40)));
        assert_eq!(Stats::new(&[ms(7)]).median, ms(7));
    }

    #[test]
    fn throughput_in_decimal_megabytes() {
        assert_eq!(mb_per_s(5_000_000, Duration::from_millis(500)), 10.0);
    }
}
