//! The tier-up statistics: the engine's atomic counters, which compile threads and libcalls
//! update, and the [`Stats`] snapshot [`Engine::stats`](crate::Engine::stats) returns.

use spate_tiers::{CompileError, CompiledFunction, RegisterAllocator};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Times one compile on the thread that runs it: wall time, and the thread's CPU time.
///
/// The two differ when the thread waits for a CPU: on a loaded machine, or on a virtual machine
/// whose host runs other work on the virtual CPU (a kernel with a steal clock, as under KVM,
/// leaves that time out of the thread's CPU time).
pub(crate) struct CompileTimer {
    wall: Instant,
    cpu: Duration,
}

/// What a [`CompileTimer`] measured.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CompileTime {
    pub wall: Duration,
    pub cpu: Duration,
}

impl CompileTimer {
    /// Starts timing on the calling thread.
    pub(crate) fn start() -> CompileTimer {
        CompileTimer {
            cpu: thread_cpu_time(),
            wall: Instant::now(),
        }
    }

    /// The time since [`CompileTimer::start`]; call it on the same thread.
    pub(crate) fn stop(&self) -> CompileTime {
        CompileTime {
            wall: self.wall.elapsed(),
            cpu: thread_cpu_time().saturating_sub(self.cpu),
        }
    }
}

/// The calling thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`); zero if the clock is unavailable.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec that outlives the call, and the clock id is a
    // constant of the platform's C library.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Engine-wide counters (atomics; [`crate::Stats`] is the snapshot users see).
#[derive(Default)]
pub(crate) struct StatsCounters {
    pub baseline: TierCounters,
    pub optimized: TierCounters,
    pub tier_up_requests: AtomicU64,
    pub tier_ups: AtomicU64,
    pub osr_compiled: AtomicU64,
    pub osr_entries: AtomicU64,
    pub osr_outer_entries: AtomicU64,
    pub failures: AtomicU64,
    pub install_latency_total_ns: AtomicU64,
    pub install_latency_max_ns: AtomicU64,
    pub last_failure: Mutex<Option<String>>,
    pub first_call_compiles: AtomicU64,
    pub first_call_wait_ns: AtomicU64,
}

/// Per-tier counters.
#[derive(Default)]
pub(crate) struct TierCounters {
    pub functions: AtomicU64,
    pub single_pass_functions: AtomicU64,
    pub backtracking_functions: AtomicU64,
    pub osr_entries: AtomicU64,
    pub code_bytes: AtomicU64,
    pub compile_ns: AtomicU64,
    pub compile_cpu_ns: AtomicU64,
}

impl TierCounters {
    /// One function compiled into `bytes` of code in `time`.
    pub(crate) fn record(&self, bytes: usize, time: CompileTime) {
        self.functions.fetch_add(1, Ordering::Relaxed);
        self.add(bytes, time);
    }

    /// Function `f` compiled in `time`: [`TierCounters::record`], and its register allocator
    /// counted where the tier reports one.
    pub(crate) fn record_function(&self, f: &CompiledFunction, time: CompileTime) {
        self.record(f.code.len(), time);
        let by = match f.register_allocator {
            RegisterAllocator::Unreported => return,
            RegisterAllocator::SinglePass => &self.single_pass_functions,
            RegisterAllocator::Backtracking => &self.backtracking_functions,
        };
        by.fetch_add(1, Ordering::Relaxed);
    }

    /// One OSR entry compiled into `bytes` of code in `time`.
    pub(super) fn record_osr(&self, bytes: usize, time: CompileTime) {
        self.osr_entries.fetch_add(1, Ordering::Relaxed);
        self.add(bytes, time);
    }

    fn add(&self, bytes: usize, time: CompileTime) {
        self.code_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.compile_ns
            .fetch_add(time.wall.as_nanos() as u64, Ordering::Relaxed);
        self.compile_cpu_ns
            .fetch_add(time.cpu.as_nanos() as u64, Ordering::Relaxed);
    }

    fn snapshot(&self) -> TierStats {
        TierStats {
            functions: self.functions.load(Ordering::Relaxed),
            single_pass_functions: self.single_pass_functions.load(Ordering::Relaxed),
            backtracking_functions: self.backtracking_functions.load(Ordering::Relaxed),
            osr_entries: self.osr_entries.load(Ordering::Relaxed),
            code_bytes: self.code_bytes.load(Ordering::Relaxed),
            compile_time: Duration::from_nanos(self.compile_ns.load(Ordering::Relaxed)),
            compile_cpu_time: Duration::from_nanos(self.compile_cpu_ns.load(Ordering::Relaxed)),
        }
    }
}

impl StatsCounters {
    /// One more install, `d` after its request.
    pub(super) fn record_install_latency(&self, d: Duration) {
        let ns = d.as_nanos() as u64;
        self.install_latency_total_ns
            .fetch_add(ns, Ordering::Relaxed);
        self.install_latency_max_ns.fetch_max(ns, Ordering::Relaxed);
    }

    /// One failed compile of function `func_index`, kept as the last failure.
    pub(super) fn record_failure(&self, func_index: u32, e: &CompileError) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        *self.last_failure.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(format!("function {func_index}: {e}"));
    }

    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            baseline: self.baseline.snapshot(),
            optimized: self.optimized.snapshot(),
            tier_up_requests: self.tier_up_requests.load(Ordering::Relaxed),
            tier_ups: self.tier_ups.load(Ordering::Relaxed),
            osr_compiled: self.osr_compiled.load(Ordering::Relaxed),
            osr_entries: self.osr_entries.load(Ordering::Relaxed),
            osr_outer_entries: self.osr_outer_entries.load(Ordering::Relaxed),
            tier_up_failures: self.failures.load(Ordering::Relaxed),
            last_tier_up_failure: self
                .last_failure
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            install_latency_total: Duration::from_nanos(
                self.install_latency_total_ns.load(Ordering::Relaxed),
            ),
            install_latency_max: Duration::from_nanos(
                self.install_latency_max_ns.load(Ordering::Relaxed),
            ),
            first_call_compiles: self.first_call_compiles.load(Ordering::Relaxed),
            first_call_wait: Duration::from_nanos(self.first_call_wait_ns.load(Ordering::Relaxed)),
        }
    }
}

/// Compilation figures of one tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TierStats {
    /// Functions compiled by the tier.
    pub functions: u64,
    /// Of `functions`, those the tier reports compiling with Cranelift's single-pass register
    /// allocator (the baseline tier; see `Config::baseline_regalloc`).
    pub single_pass_functions: u64,
    /// Of `functions`, those compiled with Cranelift's backtracking register allocator (the
    /// baseline tier gives it to small functions with a loop nest by default).
    pub backtracking_functions: u64,
    /// On-stack-replacement entries compiled by the tier.
    pub osr_entries: u64,
    /// Bytes of machine code produced (functions and OSR entries).
    pub code_bytes: u64,
    /// Compile time summed over functions and OSR entries: the wall time of each compile on
    /// its thread, so with several compile threads the sum can exceed the time that passed.
    pub compile_time: Duration,
    /// The CPU time those compiles took on their threads. Below `compile_time` when a compile
    /// thread waited for a CPU (a busy machine, or a virtual machine's host running other work;
    /// where the kernel accounts steal time it is left out of this figure).
    pub compile_cpu_time: Duration,
}

/// A snapshot of an engine's compilation and tier-up figures ([`Engine::stats`](crate::Engine::stats)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// The baseline (Cranelift) tier.
    pub baseline: TierStats,
    /// The optimizing (LLVM) tier, both up front (optimized mode) and by tier-up.
    pub optimized: TierStats,
    /// Times baseline code reported an exhausted budget (at entry or at a loop header).
    pub tier_up_requests: u64,
    /// Functions whose optimized code was installed into their entry by tier-up.
    pub tier_ups: u64,
    /// OSR entries compiled and installed.
    pub osr_compiled: u64,
    /// Times baseline code left a loop for an OSR entry.
    pub osr_entries: u64,
    /// Of `osr_entries`, those taken at the header of a loop whose entry was compiled because a
    /// loop nested in it was hot (so the inner loops restart in optimized code).
    pub osr_outer_entries: u64,
    /// Tier-up compilations that failed (the function keeps running baseline code).
    pub tier_up_failures: u64,
    /// The most recent tier-up failure, if any.
    pub last_tier_up_failure: Option<String>,
    /// Sum over installs (functions and OSR entries) of the time from request to install.
    pub install_latency_total: Duration,
    /// Longest time from request to install.
    pub install_latency_max: Duration,
    /// Functions of lazily compiled modules (see [`crate::CompileStrategy`]) whose first call
    /// compiled them because the compile pool had not.
    pub first_call_compiles: u64,
    /// Total time first calls waited for a function's code (compiling it, or for the pool).
    pub first_call_wait: Duration,
}

impl TierStats {
    /// Adds `other`'s figures to these.
    pub fn merge(&mut self, other: &TierStats) {
        self.functions += other.functions;
        self.single_pass_functions += other.single_pass_functions;
        self.backtracking_functions += other.backtracking_functions;
        self.osr_entries += other.osr_entries;
        self.code_bytes += other.code_bytes;
        self.compile_time += other.compile_time;
        self.compile_cpu_time += other.compile_cpu_time;
    }
}

impl Stats {
    /// Combines the figures of two engines (for a tool that runs several): counts and times add
    /// up, the maximum latency is the larger one, and `other`'s last failure wins if it has one.
    pub fn merge(&mut self, other: &Stats) {
        self.baseline.merge(&other.baseline);
        self.optimized.merge(&other.optimized);
        self.tier_up_requests += other.tier_up_requests;
        self.tier_ups += other.tier_ups;
        self.osr_compiled += other.osr_compiled;
        self.osr_entries += other.osr_entries;
        self.osr_outer_entries += other.osr_outer_entries;
        self.tier_up_failures += other.tier_up_failures;
        self.install_latency_total += other.install_latency_total;
        self.install_latency_max = self.install_latency_max.max(other.install_latency_max);
        self.first_call_compiles += other.first_call_compiles;
        self.first_call_wait += other.first_call_wait;
        if other.last_tier_up_failure.is_some() {
            self.last_tier_up_failure
                .clone_from(&other.last_tier_up_failure);
        }
    }

    /// Mean time from a tier-up request to the optimized code being installed.
    pub fn install_latency_mean(&self) -> Option<Duration> {
        let n = self.tier_ups + self.osr_compiled;
        (n > 0).then(|| {
            Duration::from_nanos((self.install_latency_total.as_nanos() / u128::from(n)) as u64)
        })
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        writeln!(
            f,
            "tier       functions  osr-entries  code-bytes  compile-ms  on-cpu-ms"
        )?;
        for (name, t) in [("baseline", &self.baseline), ("optimized", &self.optimized)] {
            writeln!(
                f,
                "{name:<10} {:>9}  {:>11}  {:>10}  {:>10.2}  {:>9.2}",
                t.functions,
                t.osr_entries,
                t.code_bytes,
                ms(t.compile_time),
                ms(t.compile_cpu_time)
            )?;
        }
        let b = &self.baseline;
        if b.single_pass_functions + b.backtracking_functions > 0 {
            writeln!(
                f,
                "baseline register allocators: single-pass {} functions, backtracking {}",
                b.single_pass_functions, b.backtracking_functions
            )?;
        }
        write!(
            f,
            "tier-up requests {}, tier-ups {}, OSR entries taken {} ({} at an outer loop), \
             failures {}",
            self.tier_up_requests,
            self.tier_ups,
            self.osr_entries,
            self.osr_outer_entries,
            self.tier_up_failures
        )?;
        if let Some(mean) = self.install_latency_mean() {
            write!(
                f,
                "\nrequest-to-install mean {:.2} ms, max {:.2} ms",
                ms(mean),
                ms(self.install_latency_max)
            )?;
        }
        if self.first_call_compiles > 0 {
            write!(
                f,
                "\ncompiled at first call {} (callers waited {:.2} ms in all)",
                self.first_call_compiles,
                ms(self.first_call_wait)
            )?;
        }
        if let Some(e) = &self.last_tier_up_failure {
            write!(f, "\nlast tier-up failure: {e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_of_two_engines_merge() {
        let tier = |n: u64| TierStats {
            functions: n,
            single_pass_functions: n / 2,
            backtracking_functions: n - n / 2,
            osr_entries: n,
            code_bytes: 10 * n,
            compile_time: Duration::from_millis(n),
            compile_cpu_time: Duration::from_micros(n),
        };
        let mut a = Stats {
            baseline: tier(1),
            optimized: tier(2),
            tier_ups: 3,
            install_latency_total: Duration::from_millis(4),
            install_latency_max: Duration::from_millis(4),
            last_tier_up_failure: Some("a".into()),
            ..Stats::default()
        };
        let b = Stats {
            baseline: tier(10),
            tier_ups: 1,
            osr_outer_entries: 2,
            install_latency_total: Duration::from_millis(1),
            install_latency_max: Duration::from_millis(1),
            ..Stats::default()
        };
        a.merge(&b);
        assert_eq!(a.baseline, tier(11));
        assert_eq!(a.optimized, tier(2));
        assert_eq!((a.tier_ups, a.osr_outer_entries), (4, 2));
        assert_eq!(a.install_latency_total, Duration::from_millis(5));
        assert_eq!(a.install_latency_max, Duration::from_millis(4));
        assert_eq!(a.last_tier_up_failure.as_deref(), Some("a"));
    }
}
