//! Steady state against native code: C kernels compiled to wasm32 and run by Spate in each tier
//! mode, against the same C compiled natively, in the same process and the same run.
//!
//! The kernels (`benches/kernels/*.c`, see `docs/BENCHMARKS.md`) are the Mandelbrot set (scalar
//! f64 and f32x4 SIMD), a dense f64 matrix multiply, conjugate gradients on a 3-D 7-point
//! stencil and a counting sort. Each is one exported function `run_<name>` that builds its
//! input, runs for about half a second natively and returns a checksum; it is called once, so
//! its hot loops must be optimized while they run (tier-up with on-stack replacement).
//!
//! For each kernel (after one untimed native warm-up call, which also faults in its arrays),
//! native runs and wasm runs alternate, starting and ending with a native run. Each wasm run, for
//! each repetition and tier mode, is a fresh `Engine`, `Module::new`
//! (compile), `Store` and `Instance` (instantiate), an untimed write to every page of the
//! instance's memory (so that, as on the native side, no first-touch page fault is timed;
//! `--cold-memory` leaves it out) and one call (run), each timed; the total is compile plus
//! instantiate plus run. Every wasm checksum is checked against native. Reported: medians over
//! the repetitions, ratios to the mean of the two native runs around each wasm run (medians of
//! the per-repetition ratios), the
//! engine's figures (Cranelift and LLVM compile time, tier-ups, OSR entries) and, from three
//! repetitions up, the best-of-N table (fastest wasm run over fastest native run). Each run also
//! records the share of its first call's wall time its thread spent off the CPU (wall time minus
//! the thread's CPU time: descheduling, or, where the kernel accounts steal time, a virtual
//! machine's host running other work), so a reader can tell a run slowed by the machine from one
//! slowed by the code; in tiered mode the same is recorded for the LLVM compile thread, whose
//! code the call waits for. `--max-off-cpu` repeats runs above a share.
//!
//! Build and run with `cargo run --release -p spate-benches --bin tiers`, or through
//! `scripts/bench-tiers.sh`.

mod report;

use anyhow::{Context, Result, bail};
use spate_benches::{Checksum, FLOAT_REL_TOLERANCE, Stats, Table, geomean, median, ms, ratio};
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: tiers [OPTIONS]

Runs the steady-state kernels natively and in Spate's tier modes and reports wall times, ratios
to native and compile figures.

options:
  --kernel NAME[,NAME]  kernels to run (default: all; repeatable; see --list)
  --tier LIST           comma-separated modes among baseline, optimized, tiered (default: all)
  --reps N              repetitions of every (kernel, mode), medians reported (default 3); native
                        and wasm runs alternate, starting and ending with a native run, and
                        each ratio is the median over the repetitions of wasm / the mean of
                        the native runs just before and just after it; from 3 up a further
                        table gives the best run of each mode over the best native run, the
                        range of the tiered runs' ratios, and the same ratio for each native
                        run against its own neighbours (the noise floor)
  --quick               one repetition (same as --reps 1)
  --calls N             calls of the kernel per run (default 1). The first call is the one the
                        tables report; with N > 1, calls 2..N run in the same instance (and
                        natively, paired as above) and a further table gives their median
                        ratio to native: the steady state once optimized code is installed,
                        with no compile wait in it
  --cold-memory         leave the wasm memory's pages to be faulted in during the timed call.
                        By default they are faulted in between instantiation and the call,
                        untimed, as the native kernel's arrays are by its untimed reference
                        call, so neither side's time has first-touch page faults in it
  --separate            run each kernel from its own module (benches/kernels/NAME.wasm) instead
                        of the module holding all five (benches/kernels/kernels.wasm)
  --threshold N         Config::tier_up_threshold (default: the engine's)
  --compile-threads N   Config::compile_threads (default: the engine's)
  --llvm-pipeline P     Config::llvm_pipeline: lean, o2 or o3 (default: the engine's, lean)
  --baseline-regalloc A Config::baseline_regalloc: single-pass, loop-nests or backtracking
                        (default: the engine's, loop-nests)
  --no-prefetch         Config::llvm_prefetch(false): no indirect-access prefetches in LLVM code
  --no-huge-pages       Config::memory_huge_pages(false): wasm memory on 4 KiB pages only, as
                        the native build's arrays are unless the system's transparent huge
                        pages are set to `always`
  --max-off-cpu P       repeat a timed run (native or wasm; up to 4 more times, the last one
                        kept) when its thread was off the CPU for more than P percent of the
                        wall time of its first call (wall time minus the thread's CPU time,
                        which, where the kernel accounts steal time, also leaves out the time
                        a virtual machine's host gave the CPU to others). A tiered run is also
                        repeated when its LLVM compile thread spent more than P percent of that
                        wall time off the CPU while compiling (wall minus CPU time of the
                        compiles; the call waits for their code, so a starved compile thread
                        slows it as its own thread would). Off by default: every run is kept;
                        the off-CPU shares are printed either way
  --markdown            print Markdown tables (for docs/BENCHMARKS.md)
  --list                list the kernels and exit
  -h, --help            this text";

// The native kernels, from the static library benches/build.rs builds out of benches/kernels.
unsafe extern "C" {
    fn run_mandel() -> i64;
    fn run_mandel_simd() -> i64;
    fn run_matmul() -> f64;
    fn run_cg() -> f64;
    fn run_sort() -> i64;
}

fn native_mandel() -> Checksum {
    // SAFETY: the kernels take no arguments and touch only their own static arrays; the
    // benchmark calls them from one thread.
    Checksum::Int(unsafe { run_mandel() })
}
fn native_mandel_simd() -> Checksum {
    // SAFETY: as in `native_mandel`.
    Checksum::Int(unsafe { run_mandel_simd() })
}
fn native_matmul() -> Checksum {
    // SAFETY: as in `native_mandel`.
    Checksum::Float(unsafe { run_matmul() })
}
fn native_cg() -> Checksum {
    // SAFETY: as in `native_mandel`.
    Checksum::Float(unsafe { run_cg() })
}
fn native_sort() -> Checksum {
    // SAFETY: as in `native_mandel`.
    Checksum::Int(unsafe { run_sort() })
}

/// One kernel: its name (`run_<name>` is the export and the C function), what it computes,
/// the native function and the module holding it alone.
struct Kernel {
    name: &'static str,
    what: &'static str,
    native: fn() -> Checksum,
    module: &'static [u8],
}

/// The module holding all five kernels.
static COMBINED: &[u8] = include_bytes!("../../../kernels/kernels.wasm");

static KERNELS: &[Kernel] = &[
    Kernel {
        name: "mandel",
        what: "Mandelbrot, scalar f64, 1728x1728, corner (0.300283, -0.48857), window 0.01, \
               1000 iterations",
        native: native_mandel,
        module: include_bytes!("../../../kernels/mandel.wasm"),
    },
    Kernel {
        name: "mandel_simd",
        what: "Mandelbrot, f32x4 SIMD, 3072x3072, same window and iteration limit",
        native: native_mandel_simd,
        module: include_bytes!("../../../kernels/mandel_simd.wasm"),
    },
    Kernel {
        name: "matmul",
        what: "dense f64 matrix multiply, 1400x1400, i-k-j loops",
        native: native_matmul,
        module: include_bytes!("../../../kernels/matmul.wasm"),
    },
    Kernel {
        name: "cg",
        what: "conjugate gradients, 7-point Laplacian on a 64^3 grid, 6 solves to 1e-10",
        native: native_cg,
        module: include_bytes!("../../../kernels/cg.wasm"),
    },
    Kernel {
        name: "sort",
        what: "counting sort, 2^21 keys in [0, 2^16), 84 rounds",
        native: native_sort,
        module: include_bytes!("../../../kernels/sort.wasm"),
    },
];

/// A tier mode of the engine, as the benchmark names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Baseline,
    Optimized,
    Tiered,
}

impl Mode {
    const ALL: [Mode; 3] = [Mode::Baseline, Mode::Optimized, Mode::Tiered];

    fn name(self) -> &'static str {
        match self {
            Mode::Baseline => "baseline",
            Mode::Optimized => "optimized",
            Mode::Tiered => "tiered",
        }
    }
}

/// The engine figures the benchmark reports, whatever the engine's statistics API looks like.
#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    /// Functions compiled by the baseline (Cranelift) tier and their compile time.
    baseline_functions: u64,
    baseline_compile: Duration,
    /// Functions and OSR entries compiled by the optimizing (LLVM) tier and its compile time.
    optimized_functions: u64,
    optimized_compile: Duration,
    /// The part of `optimized_compile` the compile threads spent waiting for a CPU (their wall
    /// time minus their CPU time).
    optimized_off_cpu: Duration,
    tier_up_requests: u64,
    tier_ups: u64,
    osr_entries: u64,
    install_latency_max: Duration,
}

/// Everything that touches the engine's configuration and statistics API, in one place.
mod engine_api {
    use super::{Figures, Mode, Options};

    /// The engine configuration for `mode` under the command line's engine options.
    pub fn config(mode: Mode, opts: &Options) -> spate::Config {
        let mut config = spate::Config::new();
        config.tier(match mode {
            Mode::Baseline => spate::TierMode::Baseline,
            Mode::Optimized => spate::TierMode::Optimized,
            Mode::Tiered => spate::TierMode::Tiered,
        });
        if let Some(n) = opts.threshold {
            config.tier_up_threshold(n);
        }
        if let Some(n) = opts.compile_threads {
            config.compile_threads(n);
        }
        if let Some(p) = opts.pipeline {
            config.llvm_pipeline(p);
        }
        if let Some(r) = opts.regalloc {
            config.baseline_regalloc(r);
        }
        config.llvm_prefetch(opts.prefetch);
        config.memory_huge_pages(opts.huge_pages);
        // `Module::new` is timed as the compile: it returns when every function is compiled.
        config.compile_strategy(spate::CompileStrategy::Eager);
        config
    }

    /// Waits (up to `timeout`) for tier-ups still compiling, so their compile time is counted.
    pub fn settle(engine: &spate::Engine, timeout: std::time::Duration) {
        engine.wait_for_tier_ups(timeout);
    }

    /// The engine's figures now.
    pub fn figures(engine: &spate::Engine) -> Figures {
        let s = engine.stats();
        Figures {
            baseline_functions: s.baseline.functions,
            baseline_compile: s.baseline.compile_time,
            optimized_functions: s.optimized.functions,
            optimized_compile: s.optimized.compile_time,
            optimized_off_cpu: s
                .optimized
                .compile_time
                .saturating_sub(s.optimized.compile_cpu_time),
            tier_up_requests: s.tier_up_requests,
            tier_ups: s.tier_ups,
            osr_entries: s.osr_entries,
            install_latency_max: s.install_latency_max,
        }
    }
}

struct Options {
    kernels: Vec<&'static Kernel>,
    modes: Vec<Mode>,
    reps: usize,
    /// Calls of the kernel per run; calls after the first are reported apart.
    calls: usize,
    /// Leave the wasm memory's pages to be faulted in by the timed call.
    cold_memory: bool,
    separate: bool,
    threshold: Option<u32>,
    compile_threads: Option<usize>,
    pipeline: Option<spate::LlvmPipeline>,
    regalloc: Option<spate::BaselineRegalloc>,
    prefetch: bool,
    huge_pages: bool,
    /// Repeat runs whose thread was off the CPU for more than this share of their wall time.
    max_off_cpu: Option<f64>,
    markdown: bool,
}

fn parse_args() -> Result<Options> {
    let mut opts = Options {
        kernels: Vec::new(),
        modes: Mode::ALL.to_vec(),
        reps: 3,
        calls: 1,
        cold_memory: false,
        separate: false,
        threshold: None,
        compile_threads: None,
        pipeline: None,
        regalloc: None,
        prefetch: true,
        huge_pages: true,
        max_off_cpu: None,
        markdown: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--kernel" => {
                for name in value("--kernel")?.split(',').map(str::trim) {
                    let k = KERNELS
                        .iter()
                        .find(|k| k.name == name)
                        .with_context(|| format!("unknown kernel `{name}` (see --list)"))?;
                    if !opts.kernels.iter().any(|o| o.name == k.name) {
                        opts.kernels.push(k);
                    }
                }
            }
            "--tier" => {
                opts.modes = value("--tier")?
                    .split(',')
                    .map(|t| {
                        let t = t.trim();
                        Mode::ALL
                            .into_iter()
                            .find(|m| m.name() == t)
                            .with_context(|| {
                                format!("unknown tier `{t}` (expected baseline, optimized, tiered)")
                            })
                    })
                    .collect::<Result<_>>()?;
            }
            "--reps" => opts.reps = value("--reps")?.parse().context("--reps")?,
            "--quick" => opts.reps = 1,
            "--calls" => opts.calls = value("--calls")?.parse().context("--calls")?,
            "--cold-memory" => opts.cold_memory = true,
            "--separate" => opts.separate = true,
            "--threshold" => {
                opts.threshold = Some(value("--threshold")?.parse().context("--threshold")?)
            }
            "--compile-threads" => {
                opts.compile_threads = Some(
                    value("--compile-threads")?
                        .parse()
                        .context("--compile-threads")?,
                )
            }
            "--llvm-pipeline" => {
                opts.pipeline = Some(
                    value("--llvm-pipeline")?
                        .parse()
                        .map_err(|e: String| anyhow::anyhow!(e))?,
                )
            }
            "--baseline-regalloc" => {
                opts.regalloc = Some(
                    value("--baseline-regalloc")?
                        .parse()
                        .map_err(|e: String| anyhow::anyhow!(e))?,
                )
            }
            "--no-prefetch" => opts.prefetch = false,
            "--no-huge-pages" => opts.huge_pages = false,
            "--max-off-cpu" => {
                let p: f64 = value("--max-off-cpu")?.parse().context("--max-off-cpu")?;
                if !(0.0..100.0).contains(&p) {
                    bail!("--max-off-cpu takes a percentage in [0, 100)");
                }
                opts.max_off_cpu = Some(p / 100.0);
            }
            "--markdown" => opts.markdown = true,
            "--list" => {
                for k in KERNELS {
                    println!("{:<12} {}", k.name, k.what);
                }
                std::process::exit(0);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            s => bail!("unknown argument `{s}`\n\n{USAGE}"),
        }
    }
    if opts.kernels.is_empty() {
        opts.kernels = KERNELS.iter().collect();
    }
    if opts.reps == 0 || opts.calls == 0 || opts.modes.is_empty() {
        bail!("--reps and --calls must be at least 1 and --tier must name a mode");
    }
    Ok(opts)
}

/// One timed run of a kernel in one mode.
#[derive(Debug, Clone, Copy)]
struct Run {
    compile: Duration,
    instantiate: Duration,
    run: Duration,
    total: Duration,
    checksum: Checksum,
    figures: Figures,
    /// The share of the first call's wall time its thread was off the CPU (later calls' shares
    /// are not kept).
    off_cpu: f64,
    /// Tiered mode: the time the LLVM compile thread spent off the CPU while compiling (see
    /// [`Figures::optimized_off_cpu`]), as a share of the first call's wall time; `None` in
    /// the other modes, which compile before the call. The first call waits for those compiles,
    /// so a compile thread kept from its CPU slows the run as its own thread would. Counted
    /// over every compile of the run, those that finished after the first call included (the
    /// figures are read once the tier-ups have settled), so it errs towards repeating a run.
    compile_off_cpu: Option<f64>,
    /// The mean of the native runs timed just before and just after this one (what its ratios
    /// are taken against).
    native: Duration,
    /// With `--calls` above 1: the median of this run's calls from the second on, and the mean
    /// of the bracketing native runs' medians of the same calls.
    later: Option<(Duration, Duration)>,
}

impl Run {
    /// Pairs this run with the native runs timed just before and just after it: a drift of a
    /// shared machine moves both brackets, and a run is never only the second of a pair.
    fn bracketed(mut self, before: &NativeRun, after: &NativeRun) -> Run {
        self.native = mean(before.first, after.first);
        self.later = match (self.later, before.later, after.later) {
            (Some((wasm, _)), Some(b), Some(a)) => Some((wasm, mean(b, a))),
            _ => None,
        };
        self
    }
}

/// Runs `kernel` in `engine` (fresh, of `mode`), `opts.calls` times in one instance, and checks
/// every checksum against `native`. The run's native figures are left zero, for
/// [`Run::bracketed`].
/// Times `Module::new` (compile), `Store` plus `Instance::new` (instantiate) and each call (the
/// first is the run); making the engine and looking up the export are not timed.
fn run_wasm(
    opts: &Options,
    engine: spate::Engine,
    mode: Mode,
    kernel: &Kernel,
    native: Checksum,
) -> Result<Run> {
    let bytes = if opts.separate {
        kernel.module
    } else {
        COMBINED
    };
    let export = format!("run_{}", kernel.name);

    let start = Instant::now();
    let module = spate::Module::new(&engine, bytes).context("compiling the module")?;
    let compile = start.elapsed();
    let start = Instant::now();
    let mut store = spate::Store::new(&engine, ());
    let instance =
        spate::Instance::new(&mut store, &module, &[]).context("instantiating the module")?;
    let instantiate = start.elapsed();
    if !opts.cold_memory {
        let memory = instance
            .get_memory(&store, "memory")
            .context("the kernels module exports no `memory`")?;
        fault_in(memory.data_mut(&mut store));
    }
    let mut times = Vec::with_capacity(opts.calls);
    let mut reported = None;
    for call in 1..=opts.calls {
        let (result, time) = match native {
            Checksum::Int(_) => {
                let f = instance.get_typed_func::<(), i64>(&mut store, &export)?;
                let start = Timer::start();
                let v = f.call(&mut store, ());
                (v.map(Checksum::Int), start.stop())
            }
            Checksum::Float(_) => {
                let f = instance.get_typed_func::<(), f64>(&mut store, &export)?;
                let start = Timer::start();
                let v = f.call(&mut store, ());
                (v.map(Checksum::Float), start.stop())
            }
        };
        let checksum = result.with_context(|| format!("calling {export} (call {call})"))?;
        if !checksum.agrees_with(native) {
            bail!(
                "checksum mismatch: kernel {} in {} mode returned {checksum} on call {call}, \
                 native returned {native} (integers must match exactly, floats within a \
                 relative {FLOAT_REL_TOLERANCE:e}); if benches/kernels/*.c changed, rerun \
                 benches/kernels/build.sh",
                kernel.name,
                mode.name()
            );
        }
        // Reported: the first call's checksum, or one that is not bit-identical to native's.
        if reported.is_none() || !checksum.identical(native) {
            reported = Some(checksum);
        }
        times.push(time);
    }
    let (checksum, (run, off_cpu)) = (reported.expect("at least one call"), times[0]);
    let times: Vec<Duration> = times.iter().map(|t| t.0).collect();
    // Outside the timed region: let background tier-ups finish so their compile time counts.
    engine_api::settle(&engine, Duration::from_secs(30));
    let figures = engine_api::figures(&engine);
    let compile_off_cpu = (mode == Mode::Tiered)
        .then(|| figures.optimized_off_cpu.as_secs_f64() / run.as_secs_f64().max(1e-9));
    drop(store);
    drop(module);
    Ok(Run {
        compile,
        instantiate,
        run,
        total: compile + instantiate + run,
        checksum,
        figures,
        off_cpu,
        compile_off_cpu,
        native: Duration::ZERO,
        later: later_median(&times).map(|wasm| (wasm, Duration::ZERO)),
    })
}

/// Writes every 4 KiB page of `bytes` with the byte it already holds, so the kernel's first
/// touch of a page finds it mapped (the state the native arrays are in after the native
/// reference call).
fn fault_in(bytes: &mut [u8]) {
    for i in (0..bytes.len()).step_by(4096) {
        // black_box hides that the value is the one already there, so the store stays.
        bytes[i] = std::hint::black_box(bytes[i]);
    }
}

/// The median of calls 2.. of one run, if there were any.
fn later_median(times: &[Duration]) -> Option<Duration> {
    (times.len() > 1).then(|| Stats::new(&times[1..]).median)
}

/// One native run of `calls` calls.
struct NativeRun {
    first: Duration,
    /// The median of calls 2.., if there were any.
    later: Option<Duration>,
    /// The share of the first call's wall time the thread was off the CPU.
    off_cpu: f64,
}

/// Times a call: wall time, and the share of it the calling thread spent off the CPU (wall
/// time minus the thread's CPU time). On a virtual machine whose kernel accounts steal time (a
/// paravirtual steal clock, as under KVM), a thread's CPU time leaves out the time the host ran
/// other work, so this share shows when a run was slowed by the machine rather than the code.
struct Timer {
    wall: Instant,
    cpu: Duration,
}

impl Timer {
    fn start() -> Timer {
        Timer {
            cpu: thread_cpu_time(),
            wall: Instant::now(),
        }
    }

    /// The wall time since [`Timer::start`] and the share of it spent off the CPU.
    fn stop(&self) -> (Duration, f64) {
        let wall = self.wall.elapsed();
        let cpu = thread_cpu_time().saturating_sub(self.cpu);
        let off = wall.saturating_sub(cpu).as_secs_f64() / wall.as_secs_f64().max(1e-9);
        (wall, off)
    }
}

/// The calling thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`).
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux provides.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Runs `run` once and again (up to four more times) while the first call of the attempt was
/// off the CPU for more than `max` of its wall time; returns the last attempt and how many
/// were repeated.
fn until_on_cpu<T>(
    max: Option<f64>,
    off_cpu: impl Fn(&T) -> f64,
    mut run: impl FnMut() -> Result<T>,
) -> Result<(T, usize)> {
    let mut repeated = 0;
    loop {
        let r = run()?;
        match max {
            Some(max) if off_cpu(&r) > max && repeated < 4 => repeated += 1,
            _ => return Ok((r, repeated)),
        }
    }
}

/// Calls the native kernel `calls` times; fails if a call's checksum differs from `reference`.
fn time_native(kernel: &Kernel, calls: usize, reference: Checksum) -> Result<NativeRun> {
    let mut times = Vec::with_capacity(calls);
    let mut off_cpu = 0.0;
    for call in 0..calls {
        let start = Timer::start();
        let v = (kernel.native)();
        let (time, off) = start.stop();
        times.push(time);
        if call == 0 {
            off_cpu = off;
        }
        if !v.identical(reference) {
            bail!(
                "kernel {}: native checksum changed between calls",
                kernel.name
            );
        }
    }
    Ok(NativeRun {
        first: times[0],
        later: later_median(&times),
        off_cpu,
    })
}

/// The median of each timing over `runs`, the median of the ratios of each run to the native
/// run paired with it, and the figures of the run with the median total.
struct Summary {
    compile: Duration,
    instantiate: Duration,
    run: Duration,
    total: Duration,
    /// Median over the repetitions of run / paired native (the mean of the runs around it).
    run_ratio: f64,
    /// Median over the repetitions of total / paired native run.
    total_ratio: f64,
    /// With `--calls` above 1: median over the repetitions of the later calls' median / the
    /// paired native run's.
    later_ratio: Option<f64>,
    /// The fastest run and the lowest total over the repetitions (the best-of-N table).
    best_run: Duration,
    best_total: Duration,
    /// The lowest and highest run / paired native run over the repetitions.
    run_ratio_range: (f64, f64),
    figures: Figures,
}

fn summarise(runs: &[Run]) -> Summary {
    let stats = |f: fn(&Run) -> Duration| Stats::new(&runs.iter().map(f).collect::<Vec<_>>());
    let ratios = |f: fn(&Run) -> Duration| -> Vec<f64> {
        runs.iter().map(|r| ratio(f(r), r.native)).collect()
    };
    let (run, total) = (stats(|r| r.run), stats(|r| r.total));
    let run_ratios = ratios(|r| r.run);
    let mut by_total: Vec<&Run> = runs.iter().collect();
    by_total.sort_by_key(|r| r.total);
    Summary {
        compile: stats(|r| r.compile).median,
        instantiate: stats(|r| r.instantiate).median,
        run: run.median,
        total: total.median,
        run_ratio: median(&run_ratios),
        total_ratio: median(&ratios(|r| r.total)),
        later_ratio: runs
            .iter()
            .map(|r| r.later.map(|(wasm, native)| ratio(wasm, native)))
            .collect::<Option<Vec<f64>>>()
            .map(|v| median(&v)),
        best_run: run.min,
        best_total: total.min,
        run_ratio_range: min_max(&run_ratios),
        figures: by_total[(by_total.len() - 1) / 2].figures,
    }
}

struct KernelResult {
    kernel: &'static Kernel,
    native: Duration,
    /// The fastest native run.
    native_best: Duration,
    /// With `--calls` above 1: the median of the native later calls' medians.
    native_later: Option<Duration>,
    checksum: Checksum,
    identical: bool,
    modes: Vec<(Mode, Result<Summary, String>)>,
    /// The native runs against their own brackets (see [`noise_floor`]), if there were three.
    noise: Option<NoiseFloor>,
    /// The off-CPU shares of the kept native runs and of the kept wasm runs (all modes), and
    /// how many runs `--max-off-cpu` repeated.
    off_cpu: (Vec<f64>, Vec<f64>, usize),
    /// The compile thread's off-CPU shares of the kept tiered runs ([`Run::compile_off_cpu`]).
    compile_off_cpu: Vec<f64>,
}

/// Identical code paired as the wasm runs are: each native run but the first and last over the
/// mean of the native runs before and after it. Its spread is what this machine does to a
/// ratio of 1.
#[derive(Debug, Clone, Copy, PartialEq)]
struct NoiseFloor {
    median: f64,
    min: f64,
    max: f64,
}

/// The mean of two durations.
fn mean(a: Duration, b: Duration) -> Duration {
    (a + b) / 2
}

/// The [`NoiseFloor`] of a kernel's native runs, in the order they ran (`None` below three).
fn noise_floor(natives: &[NativeRun]) -> Option<NoiseFloor> {
    let ratios: Vec<f64> = natives
        .windows(3)
        .map(|w| ratio(w[1].first, mean(w[0].first, w[2].first)))
        .collect();
    (!ratios.is_empty()).then(|| {
        let (min, max) = min_max(&ratios);
        NoiseFloor {
            median: median(&ratios),
            min,
            max,
        }
    })
}

/// The lowest and highest of `values` (infinities for none).
fn min_max(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

impl KernelResult {
    /// The baseline, optimized and tiered summaries, where those modes ran.
    fn summaries(&self) -> (Option<&Summary>, Option<&Summary>, Option<&Summary>) {
        let get = |m: Mode| {
            self.modes
                .iter()
                .find(|(mode, _)| *mode == m)
                .and_then(|(_, s)| s.as_ref().ok())
        };
        (get(Mode::Baseline), get(Mode::Optimized), get(Mode::Tiered))
    }
}

fn bench_kernel(opts: &Options, kernel: &'static Kernel) -> Result<KernelResult> {
    // The reference checksum, from an untimed first call that also warms up the native code
    // and faults in its static arrays.
    let checksum = (kernel.native)();
    let mut natives: Vec<NativeRun> = Vec::new();
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); opts.modes.len()];
    let mut unavailable: Vec<Option<String>> = vec![None; opts.modes.len()];
    let mut identical = true;
    // Native and wasm runs alternate, starting and ending with a native run: every wasm run's
    // ratios are taken against the mean of the native runs just before and just after it.
    let repeats = std::cell::Cell::new(0usize);
    let time_native_run = |rep: usize| -> Result<NativeRun> {
        let (run, again) = until_on_cpu(
            opts.max_off_cpu,
            |r: &NativeRun| r.off_cpu,
            || time_native(kernel, opts.calls, checksum),
        )?;
        repeats.set(repeats.get() + again);
        eprintln!(
            "  {:<12} rep {}  native     {:>9.1} ms{}{}",
            kernel.name,
            rep + 1,
            ms(run.first),
            later_note(run.later),
            off_cpu_note(run.off_cpu, None, again)
        );
        Ok(run)
    };
    natives.push(time_native_run(0)?);
    for rep in 0..opts.reps {
        for (i, &mode) in opts.modes.iter().enumerate() {
            if unavailable[i].is_some() {
                continue;
            }
            // An engine that cannot be created (a tier not built in) skips the mode; any other
            // failure, a wrong checksum included, stops the benchmark.
            let config = engine_api::config(mode, opts);
            let mut first = match spate::Engine::new(&config) {
                Ok(engine) => Some(engine),
                Err(e) => {
                    eprintln!("  {} mode unavailable: {e:#}", mode.name());
                    unavailable[i] = Some(format!("{e:#}"));
                    continue;
                }
            };
            let (r, again) = until_on_cpu(
                opts.max_off_cpu,
                |r: &Run| r.off_cpu.max(r.compile_off_cpu.unwrap_or(0.0)),
                || {
                    // A repeated attempt gets a fresh engine, as every run does.
                    let engine = match first.take() {
                        Some(engine) => engine,
                        None => spate::Engine::new(&config)?,
                    };
                    run_wasm(opts, engine, mode, kernel, checksum)
                        .with_context(|| format!("kernel {} in {} mode", kernel.name, mode.name()))
                },
            )?;
            repeats.set(repeats.get() + again);
            identical &= r.checksum.identical(checksum);
            eprintln!(
                "  {:<12} rep {}  {:<10} {:>9.1} ms run, {:>7.1} ms compile, {:>9.1} ms total \
                 (Cranelift {:.1} ms / {} fn, LLVM {:.1} ms / {} fn, tier-ups {}, OSR {}){}{}",
                kernel.name,
                rep + 1,
                mode.name(),
                ms(r.run),
                ms(r.compile),
                ms(r.total),
                ms(r.figures.baseline_compile),
                r.figures.baseline_functions,
                ms(r.figures.optimized_compile),
                r.figures.optimized_functions,
                r.figures.tier_ups,
                r.figures.osr_entries,
                later_note(r.later.map(|(wasm, _)| wasm)),
                off_cpu_note(r.off_cpu, r.compile_off_cpu, again),
            );
            let after = time_native_run(rep)?;
            let before = natives
                .last()
                .expect("the first native run came before the loop");
            runs[i].push(r.bracketed(before, &after));
            natives.push(after);
        }
    }
    let modes = opts
        .modes
        .iter()
        .zip(runs.iter().zip(unavailable))
        .map(|(&m, (r, u))| match u {
            Some(e) => (m, Err(e)),
            None => (m, Ok(summarise(r))),
        })
        .collect();
    let off_cpu = (
        natives.iter().map(|n| n.off_cpu).collect(),
        runs.iter().flatten().map(|r| r.off_cpu).collect(),
        repeats.get(),
    );
    let compile_off_cpu = runs
        .iter()
        .flatten()
        .filter_map(|r| r.compile_off_cpu)
        .collect();
    let native_stats = Stats::new(&natives.iter().map(|n| n.first).collect::<Vec<_>>());
    let native_later: Vec<Duration> = natives.iter().filter_map(|n| n.later).collect();
    Ok(KernelResult {
        kernel,
        native: native_stats.median,
        native_best: native_stats.min,
        native_later: (!native_later.is_empty()).then(|| Stats::new(&native_later).median),
        noise: noise_floor(&natives),
        off_cpu,
        compile_off_cpu,
        checksum,
        identical,
        modes,
    })
}

/// The off-CPU share of a run (and in tiered mode its compile thread's, see
/// [`Run::compile_off_cpu`]), and how many attempts before it were repeated for too high a
/// share (`--max-off-cpu`).
fn off_cpu_note(off_cpu: f64, compile_off_cpu: Option<f64>, repeated: usize) -> String {
    let again = match repeated {
        0 => String::new(),
        n => format!(", after {n} repeated"),
    };
    let compile = compile_off_cpu.map_or_else(String::new, |c| {
        format!(", compile thread {:.1}%", c * 100.0)
    });
    format!(" [off-CPU {:.1}%{compile}{again}]", off_cpu * 100.0)
}

/// `", later calls N ms"` for the progress lines, when there were later calls.
fn later_note(later: Option<Duration>) -> String {
    later.map_or_else(String::new, |t| {
        format!(", later calls {:.1} ms each (median)", ms(t))
    })
}

fn main() -> Result<()> {
    let opts = parse_args()?;
    let mut results = Vec::new();
    for &kernel in &opts.kernels {
        eprintln!("== {}: {}", kernel.name, kernel.what);
        results.push(bench_kernel(&opts, kernel)?);
    }
    report::report(&opts, &results);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::report::{tiered_lowest, within_goal};
    use super::*;

    #[test]
    fn runs_off_the_cpu_too_long_are_repeated_at_most_four_times() {
        // Shares of successive attempts; the last one is kept.
        let attempts = |shares: &'static [f64], max: Option<f64>| {
            let next = std::cell::Cell::new(0);
            let (kept, repeated) = until_on_cpu(
                max,
                |&s: &f64| s,
                || {
                    let i = next.get();
                    next.set(i + 1);
                    Ok(shares[i])
                },
            )
            .unwrap();
            (kept, repeated, next.get())
        };
        assert_eq!(attempts(&[0.5, 0.3, 0.01, 0.9], Some(0.02)), (0.01, 2, 3));
        assert_eq!(
            attempts(&[0.5; 6], Some(0.02)),
            (0.5, 4, 5),
            "gives up after 4"
        );
        assert_eq!(attempts(&[0.5, 0.0], None), (0.5, 0, 1), "no limit: kept");
        assert_eq!(
            attempts(&[0.02, 0.0], Some(0.02)),
            (0.02, 0, 1),
            "at the limit: kept"
        );
    }

    #[test]
    fn the_thread_cpu_time_advances_with_work_and_the_off_cpu_share_is_a_fraction() {
        let timer = Timer::start();
        let before = thread_cpu_time();
        let mut x = 0u64;
        while thread_cpu_time() - before < Duration::from_millis(20) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        std::thread::sleep(Duration::from_millis(30));
        let (wall, off) = timer.stop();
        assert!(wall >= Duration::from_millis(50), "{wall:?}");
        // The sleep is time off the CPU: at least 30 of the 50-odd milliseconds.
        assert!(off > 0.3 && off < 1.0, "off-CPU share {off}");
    }

    #[test]
    fn the_goal_column_is_decided_on_the_unrounded_ratio() {
        assert_eq!(within_goal(1.03), "yes (<= 1.03x)");
        assert_eq!(within_goal(1.0301), "yes");
        assert_eq!(within_goal(1.10), "yes");
        assert_eq!(within_goal(1.1001), "no");
    }

    fn summary(total_ratio: f64) -> Summary {
        let d = Duration::from_millis(1);
        Summary {
            compile: d,
            instantiate: d,
            run: d,
            total: d,
            run_ratio: 1.0,
            total_ratio,
            later_ratio: None,
            best_run: d,
            best_total: d,
            run_ratio_range: (1.0, 1.0),
            figures: Figures::default(),
        }
    }

    #[test]
    fn tiered_is_lowest_only_below_both_other_modes() {
        let (b, o) = (summary(2.0), summary(1.2));
        let key = |s: &Summary| s.total_ratio;
        assert_eq!(
            tiered_lowest(Some(&b), Some(&o), Some(&summary(1.1)), key),
            "yes"
        );
        assert_eq!(
            tiered_lowest(Some(&b), Some(&o), Some(&summary(1.2)), key),
            "no"
        );
        assert_eq!(tiered_lowest(Some(&b), None, Some(&summary(1.1)), key), "-");
    }

    #[test]
    fn faulting_memory_in_leaves_its_bytes_as_they_were() {
        let mut bytes: Vec<u8> = (0..3 * 4096 + 17).map(|i| (i * 7 % 251) as u8).collect();
        let before = bytes.clone();
        fault_in(&mut bytes);
        assert_eq!(bytes, before);
        fault_in(&mut []);
    }

    fn native_run(first_ms: u64, later_ms: Option<u64>) -> NativeRun {
        NativeRun {
            first: Duration::from_millis(first_ms),
            later: later_ms.map(Duration::from_millis),
            off_cpu: 0.0,
        }
    }

    #[test]
    fn a_wasm_run_is_paired_with_the_mean_of_its_brackets() {
        let d = Duration::from_millis;
        let run = Run {
            compile: d(1),
            instantiate: d(1),
            run: d(440),
            total: d(442),
            checksum: Checksum::Int(0),
            figures: Figures::default(),
            off_cpu: 0.0,
            compile_off_cpu: None,
            native: Duration::ZERO,
            later: Some((d(410), Duration::ZERO)),
        };
        let paired = run.bracketed(&native_run(400, Some(390)), &native_run(420, Some(410)));
        assert_eq!(paired.native, d(410));
        assert_eq!(paired.later, Some((d(410), d(400))));
        // Without later calls on both sides there is no later pair.
        let run = Run {
            later: None,
            ..paired
        };
        let unpaired = run.bracketed(&native_run(400, None), &native_run(420, None));
        assert_eq!(unpaired.later, None);
    }

    #[test]
    fn the_off_cpu_note_names_the_compile_thread_only_when_there_is_one() {
        assert_eq!(off_cpu_note(0.012, None, 0), " [off-CPU 1.2%]");
        assert_eq!(
            off_cpu_note(0.012, Some(0.2), 2),
            " [off-CPU 1.2%, compile thread 20.0%, after 2 repeated]"
        );
    }

    #[test]
    fn min_max_gives_the_extremes() {
        assert_eq!(min_max(&[1.0, 0.5, 2.0, 1.5]), (0.5, 2.0));
        assert_eq!(min_max(&[]), (f64::INFINITY, f64::NEG_INFINITY));
    }

    #[test]
    fn the_noise_floor_pairs_each_inner_native_run_with_its_neighbours() {
        assert_eq!(
            noise_floor(&[native_run(400, None), native_run(410, None)]),
            None
        );
        let floor = noise_floor(&[
            native_run(400, None),
            native_run(440, None), // over (400 + 400) / 2: 1.10
            native_run(400, None), // over (440 + 360) / 2: 1.00
            native_run(360, None), // over (400 + 400) / 2: 0.90
            native_run(400, None),
        ])
        .expect("three inner runs");
        assert!((floor.median - 1.0).abs() < 1e-12, "{floor:?}");
        assert!((floor.min - 0.9).abs() < 1e-12, "{floor:?}");
        assert!((floor.max - 1.1).abs() < 1e-12, "{floor:?}");
    }
}
