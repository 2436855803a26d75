//! Spate benchmark support: the statistics, checksums and tables the benchmark binaries report.
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
        Stats {
            median: middle(&sorted, |a, b| (a + b) / 2),
            min: sorted[0],
            max: sorted[sorted.len() - 1],
        }
    }
}

/// The median of `values`, which must not be empty; for an even count, the mean of the two
/// middle values (as [`Stats::median`]).
pub fn median(values: &[f64]) -> f64 {
    assert!(!values.is_empty(), "no values to take the median of");
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    middle(&sorted, |a, b| (a + b) / 2.0)
}

/// The middle element of `sorted` (not empty), or `mean` of the two middle ones.
fn middle<T: Copy>(sorted: &[T], mean: impl Fn(T, T) -> T) -> T {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        mean(sorted[n / 2 - 1], sorted[n / 2])
    }
}

/// Throughput in MB/s (10^6 bytes per second) of `bytes` processed in `time`.
pub fn mb_per_s(bytes: usize, time: Duration) -> f64 {
    bytes as f64 / 1e6 / time.as_secs_f64()
}

/// The machine the benchmarks report: `"<N> cores, <CPU model>"` (the logical CPUs this process
/// may use, and `/proc/cpuinfo`'s model name, or `unknown CPU`).
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string());
    format!("{cores} cores, {model}")
}

/// `time` in milliseconds.
pub fn ms(time: Duration) -> f64 {
    time.as_secs_f64() * 1e3
}

/// The ratio of two durations, `num / den`.
pub fn ratio(num: Duration, den: Duration) -> f64 {
    num.as_secs_f64() / den.as_secs_f64()
}

/// The geometric mean of `values` (which must be positive); `None` for none.
pub fn geomean(values: &[f64]) -> Option<f64> {
    (!values.is_empty())
        .then(|| (values.iter().map(|v| v.ln()).sum::<f64>() / values.len() as f64).exp())
}

/// Relative tolerance for floating-point checksums of the steady-state kernels. Native code is
/// built without fast-math and without FMA contraction, and wasm floating point is IEEE 754, so
/// the results are expected to be bit-identical; the tolerance only absorbs a last-bit
/// difference, and anything larger is a bug.
pub const FLOAT_REL_TOLERANCE: f64 = 1e-12;

/// A kernel's result: integer kernels must match exactly, floating-point ones within
/// [`FLOAT_REL_TOLERANCE`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Checksum {
    /// An exact integer checksum.
    Int(i64),
    /// A floating-point checksum.
    Float(f64),
}

impl Checksum {
    /// Whether `self` (from wasm) agrees with `native`: integers exactly, floats within
    /// [`FLOAT_REL_TOLERANCE`] of the larger magnitude. Different kinds never agree.
    pub fn agrees_with(self, native: Checksum) -> bool {
        match (self, native) {
            (Checksum::Int(a), Checksum::Int(b)) => a == b,
            (Checksum::Float(a), Checksum::Float(b)) => {
                a.to_bits() == b.to_bits()
                    || (a - b).abs() <= FLOAT_REL_TOLERANCE * a.abs().max(b.abs())
            }
            _ => false,
        }
    }

    /// Whether the two are the same bits (for floats: not just within the tolerance).
    pub fn identical(self, other: Checksum) -> bool {
        match (self, other) {
            (Checksum::Int(a), Checksum::Int(b)) => a == b,
            (Checksum::Float(a), Checksum::Float(b)) => a.to_bits() == b.to_bits(),
            _ => false,
        }
    }
}

impl std::fmt::Display for Checksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Checksum::Int(v) => write!(f, "{v}"),
            Checksum::Float(v) => write!(f, "{v:.17e}"),
        }
    }
}

/// A table of text cells printed either aligned for a terminal or as Markdown.
#[derive(Debug, Clone, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    left: usize,
}

impl Table {
    /// A table with these column titles; the first `left` columns are left-aligned, the rest
    /// right-aligned (numbers).
    pub fn new(header: &[&str], left: usize) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
            left,
        }
    }

    /// Appends a row; missing cells print empty, extra ones are dropped.
    pub fn row(&mut self, cells: Vec<String>) {
        let mut cells = cells;
        cells.resize(self.header.len(), String::new());
        self.rows.push(cells);
    }

    /// The table as text: Markdown (`| a | b |` with a separator line) or, otherwise, the same
    /// aligned columns without the pipes.
    pub fn render(&self, markdown: bool) -> String {
        let n = self.header.len();
        let width: Vec<usize> = (0..n)
            .map(|i| {
                std::iter::once(&self.header)
                    .chain(&self.rows)
                    .map(|r| r[i].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[String]| {
            let parts: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    if i < self.left {
                        format!("{c:<w$}", w = width[i])
                    } else {
                        format!("{c:>w$}", w = width[i])
                    }
                })
                .collect();
            if markdown {
                format!("| {} |", parts.join(" | "))
            } else {
                parts.join("  ").trim_end().to_string()
            }
        };
        let mut out = line(&self.header) + "\n";
        if markdown {
            let sep: Vec<String> = (0..n)
                .map(|i| {
                    let dashes = "-".repeat(width[i].max(3));
                    if i < self.left {
                        format!("{dashes}--")
                    } else {
                        format!("{}:", &format!("{dashes}--")[1..])
                    }
                })
                .collect();
            out += &format!("|{}|\n", sep.join("|"));
        }
        for r in &self.rows {
            out += &line(r);
            out.push('\n');
        }
        out
    }
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
        assert_eq!(median(&[1.5, 0.5, 1.0]), 1.0);
        assert_eq!(median(&[1.4, 1.0, 1.2, 0.9]), 1.1);
        assert_eq!(median(&[2.0]), 2.0);
    }

    #[test]
    fn throughput_in_decimal_megabytes() {
        assert_eq!(mb_per_s(5_000_000, Duration::from_millis(500)), 10.0);
    }

    #[test]
    fn ratios_and_geometric_mean() {
        assert!((ratio(ms(300), ms(200)) - 1.5).abs() < 1e-12);
        assert!((super::ms(Duration::from_micros(2500)) - 2.5).abs() < 1e-12);
        assert!((geomean(&[1.0, 4.0]).unwrap() - 2.0).abs() < 1e-12);
        assert_eq!(geomean(&[]), None);
    }

    #[test]
    fn checksums_agree_exactly_or_within_tolerance() {
        assert!(Checksum::Int(7).agrees_with(Checksum::Int(7)));
        assert!(!Checksum::Int(7).agrees_with(Checksum::Int(8)));
        assert!(Checksum::Float(1.0).agrees_with(Checksum::Float(1.0 + 1e-15)));
        assert!(!Checksum::Float(1.0).agrees_with(Checksum::Float(1.0 + 1e-9)));
        assert!(!Checksum::Float(1.0).identical(Checksum::Float(1.0 + 1e-15)));
        assert!(Checksum::Float(0.0).agrees_with(Checksum::Float(-0.0)));
        assert!(!Checksum::Float(f64::NAN).agrees_with(Checksum::Float(1.0)));
        assert!(!Checksum::Int(1).agrees_with(Checksum::Float(1.0)));
    }

    #[test]
    fn tables_render_as_text_and_markdown() {
        let mut t = Table::new(&["kernel", "ms"], 1);
        t.row(vec!["cg".into(), "12.5".into()]);
        t.row(vec!["mandel".into()]);
        assert_eq!(t.render(false), "kernel    ms\ncg      12.5\nmandel\n");
        assert_eq!(
            t.render(true),
            "| kernel |   ms |\n|--------|-----:|\n| cg     | 12.5 |\n| mandel |      |\n"
        );
    }
}
