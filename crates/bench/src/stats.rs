//! Latency percentiles.

use std::time::Duration;

/// Collects timings of one operation.
#[derive(Debug, Default)]
pub struct Recorder {
    times: Vec<Duration>,
    items: usize,
}

/// Percentiles by the nearest-rank method.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub count: usize,
    pub p50: Duration,
    pub p95: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// Rows returned per call, on average.
    pub items_per_call: f64,
}

impl Recorder {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, took: Duration, items: usize) {
        self.times.push(took);
        self.items += items;
    }

    #[must_use]
    pub fn finish(mut self) -> Summary {
        self.times.sort_unstable();
        let n = self.times.len();
        let rank = |p: f64| {
            if n == 0 {
                return Duration::ZERO;
            }
            let r = ((p / 100.0) * n as f64).ceil() as usize;
            self.times[r.clamp(1, n) - 1]
        };
        Summary {
            count: n,
            p50: rank(50.0),
            p95: rank(95.0),
            p99: rank(99.0),
            max: self.times.last().copied().unwrap_or_default(),
            items_per_call: if n == 0 { 0.0 } else { self.items as f64 / n as f64 },
        }
    }
}

/// `1.23 s`, `45.6 ms`, `2 min 03 s`.
#[must_use]
pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 120.0 {
        format!("{} min {:02} s", d.as_secs() / 60, d.as_secs() % 60)
    } else if s >= 1.0 {
        format!("{s:.2} s")
    } else {
        format!("{:.1} ms", s * 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut r = Recorder::new();
        for ms in 1..=100 {
            r.add(Duration::from_millis(ms), 2);
        }
        let s = r.finish();
        assert_eq!(s.count, 100);
        assert_eq!(s.p50, Duration::from_millis(50));
        assert_eq!(s.p95, Duration::from_millis(95));
        assert_eq!(s.p99, Duration::from_millis(99));
        assert_eq!(s.max, Duration::from_millis(100));
        assert!((s.items_per_call - 2.0).abs() < f64::EPSILON);
    }
}
