//! The `spate` command.

use std::io::Write as _;
use std::num::NonZeroUsize;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use spate_launcher::compile::compile_file;
use spate_launcher::engine::{
    CompileChoice, EngineSettings, PipelineChoice, RegallocChoice, TierChoice,
};
use spate_launcher::run::{Outcome, RunOptions};
use spate_launcher::wast::{FileReport, Totals, WastRunner};

/// Exit status when the input is bad or a script has failures.
const EXIT_FAILURE: u8 = 1;
/// Exit status for usage errors (clap uses the same).
const EXIT_USAGE: u8 = 2;
/// Exit status when the engine itself failed (panicked) on an input.
const EXIT_INTERNAL: u8 = 3;

/// How long the command waits at exit for a background tier-up compile under way.
const EXIT_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// How many failures of one script are printed unless `--verbose` is given.
const FAILURES_SHOWN: usize = 20;

#[derive(Parser)]
#[command(
    name = "spate",
    version,
    about = "Spate: a streaming, tiered WebAssembly engine.",
    long_about = "Spate: a streaming, tiered WebAssembly engine.\n\n\
        Spate validates and compiles a module while it is still arriving, runs it at once with \
        fast baseline (Cranelift) code, and recompiles hot functions with an optimizing (LLVM) \
        tier on background threads, swapping them in without a pause; long-running loops reach \
        the optimized code through on-stack replacement.",
    after_help = "Examples:\n  \
        spate run hello.wasm                      run a WASI program\n  \
        spate run --dir data app.wasm -- -v in.txt  give it a directory and arguments\n  \
        spate compile app.wasm                    validate and compile, print size and timings\n  \
        spate compile --tier optimized --stats app.wasm   compile with LLVM, print per-tier figures\n  \
        spate compile --tier baseline app.wat     the same for a text module, baseline tier\n  \
        spate wast tests/*.wast                   run WebAssembly scripts\n  \
        spate wast -v --compile-threads 1 f.wast  run one script, showing every message\n\n\
        Run `spate help <COMMAND>` for the flags of each command.",
    disable_help_subcommand = false
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a WASI program (a module exporting `_start`) from a file or URL.
    #[command(
        long_about = "Run a WebAssembly program that uses WASI (wasi_snapshot_preview1): call its \
            `_start` export, or another export with --invoke.\n\n\
            MODULE is a file, binary (.wasm, streamed into the compiler as it is read) or \
            WebAssembly text (.wat), or an http:// or https:// URL, compiled while it \
            downloads. The program gets the host's stdin, stdout and stderr (its output passes \
            straight through), the ARGS after MODULE (argv[0] is the module's file name), the \
            environment variables given with --env (the host's only with --inherit-env), and \
            the directories given with --dir: nothing else of the host's file system.\n\n\
            Exit status: the program's own (its proc_exit / exit() status, 0 when _start \
            returns); 134 when it traps (the command prints `error: wasm trap: ...` naming the \
            trap, the function and the byte offset); 1 when the module cannot be read, \
            compiled or instantiated (a missing import, say), with a one-line error; 2 for a \
            usage error.",
        after_help = "Examples:\n  \
            spate run hello.wasm\n  \
            spate run --dir ./data::/data --env LANG=C app.wasm -- --input /data/in.txt\n  \
            spate run --tier optimized --stats compute.wasm\n  \
            spate run --invoke add math.wasm -- 2 3\n  \
            spate run https://example.org/app.wasm"
    )]
    Run(RunArgs),

    /// Run WebAssembly script (.wast) files and count passed and failed directives.
    #[command(
        long_about = "Run WebAssembly script (.wast) files, as used by the WebAssembly \
            specification's test suite.\n\n\
            Every directive counts once, as passed or failed: module, module definition / \
            instance, register, invoke, assert_return (NaN patterns included), assert_trap \
            (calls and uninstantiable modules), assert_exhaustion, assert_invalid, \
            assert_malformed and assert_unlinkable. Scripts may import the `spectest` module. \
            Each file runs in its own store.\n\n\
            Failures print as `FILE:LINE:COLUMN: DIRECTIVE: MESSAGE`, then one status line per \
            file. The last line is always `N passed, N failed`. The exit status is 0 when \
            nothing failed, 1 otherwise, 2 for a usage error.",
        after_help = "Examples:\n  \
            spate wast address.wast                 run one script\n  \
            spate wast spec/                        run every .wast file in a directory\n  \
            spate wast --verbose binary.wast        also show expected vs actual error messages"
    )]
    Wast(WastArgs),

    /// Validate and compile a module; print its size, function count and compile time.
    #[command(
        long_about = "Validate and compile one WebAssembly module, then print its size, the \
            number of functions it defines, the size of the machine code and the compile \
            time.\n\n\
            A binary module is streamed from the file into the compiler; a file that does not \
            start with a NUL byte is read as WebAssembly text. A malformed, truncated or invalid \
            module prints an error naming the problem and exits with status 1; a failure of the \
            engine itself exits with status 3.",
        after_help = "Examples:\n  \
            spate compile app.wasm\n  \
            spate compile --tier baseline --compile-threads 2 app.wasm\n  \
            spate compile --tier optimized --stats app.wasm\n  \
            spate compile module.wat"
    )]
    Compile(CompileArgs),
}

/// Flags that configure the engine, accepted by every command.
#[derive(Args)]
struct EngineArgs {
    /// Compiler tiers. `baseline`: every function compiled once, quickly, with Cranelift.
    /// `optimized`: every function through LLVM before anything runs (long batch jobs).
    /// `tiered` (default): baseline at once, hot functions recompiled by LLVM in the background
    /// and swapped in; hot loops switch over through on-stack replacement.
    /// Example: `--tier optimized`
    #[arg(long, value_enum, value_name = "TIER", default_value_t = TierChoice::Tiered)]
    tier: TierChoice,

    /// Tiered mode: calls plus loop iterations after which a function is recompiled by the
    /// optimizing tier (default 10000). `0` tiers up every function at its first call.
    /// Example: `--tier-up-threshold 0`
    #[arg(long, value_name = "N")]
    tier_up_threshold: Option<u32>,

    /// Tiered mode: background threads compiling hot functions (default: one per core but one).
    /// Example: `--tier-up-threads 1`
    #[arg(long, value_name = "N")]
    tier_up_threads: Option<NonZeroUsize>,

    /// When function bodies are compiled. `background` (default): while the module arrives,
    /// and the program starts as soon as the last byte is validated; a function the background
    /// has not reached yet is compiled at its first call. `eager`: every function before the
    /// program starts. `on-first-call`: each function at its first call only (huge modules of
    /// which little runs). `compile` always compiles eagerly. Example: `--compile-strategy eager`
    #[arg(long, value_enum, value_name = "WHEN")]
    compile_strategy: Option<CompileChoice>,

    /// The optimizing (LLVM) tier's pass pipeline. `lean` (default): the passes that pay off on
    /// a module its compiler has already optimized (register promotion, redundancy elimination,
    /// loop-invariant code motion, unrolling for this CPU), 2-3x faster to compile than `o3`
    /// with the same run time on the benchmark's C kernels. `o2`/`o3`: LLVM's whole
    /// `default<O2>`/`default<O3>` pipelines, for modules built without optimization.
    /// Example: `--llvm-pipeline o3`
    #[arg(long, value_enum, value_name = "PIPELINE")]
    llvm_pipeline: Option<PipelineChoice>,

    /// The baseline (Cranelift) tier's register allocator (tiers `baseline` and `tiered`;
    /// `optimized` compiles no function with it). `loop-nests` (default): the backtracking
    /// allocator for functions of up to 2 KiB of wasm with a loop inside a loop (compute
    /// kernels, whose baseline code then runs at 1.4-1.9x native instead of 2.5-3.5x), the
    /// single-pass allocator for the rest. `single-pass`: everywhere, the fastest compile.
    /// `backtracking`: everywhere, the fastest baseline code at 1.5-2.4x the compile time of
    /// large modules. Example: `--baseline-regalloc single-pass`
    #[arg(long, value_enum, value_name = "ALLOCATOR")]
    baseline_regalloc: Option<RegallocChoice>,

    /// Leave out the optimizing tier's indirect-access prefetches. By default, in loops where a
    /// load or store's address comes from data read with a constant stride (`out[count[key[i]]]`,
    /// `x[col[j]]`), LLVM code prefetches that address some iterations ahead; the prefetches
    /// never change results. This is for measuring what they bring. Example: `--no-llvm-prefetch`
    #[arg(long)]
    no_llvm_prefetch: bool,

    /// Back linear memories with ordinary 4 KiB pages only. By default their reservations are
    /// advised to the kernel for transparent huge pages, so each 2 MiB of memory a program uses
    /// takes one TLB entry instead of 512 (when the kernel has huge pages free; bounds checks
    /// and traps are the same either way). This is for measuring what they bring, or for hosts
    /// that keep huge pages for other work. Example: `--no-huge-pages`
    #[arg(long)]
    no_huge_pages: bool,

    /// Print the engine's figures at the end on stderr: per tier, functions compiled, code
    /// bytes and compile time (wall and on-CPU); the baseline's functions per register
    /// allocator; tier-up requests, tier-ups, OSR entries taken, and the time from request to
    /// install. Example: `--stats`
    #[arg(long)]
    stats: bool,

    /// Number of threads compiling function bodies (default: chosen by the engine).
    /// Example: `--compile-threads 2`
    #[arg(long, value_name = "N")]
    compile_threads: Option<NonZeroUsize>,

    /// Accept modules with more than one memory (the multi-memory proposal; WebAssembly 2.0
    /// allows one). `spate wast` turns it on by itself for scripts named `*memory-multi*` or
    /// `*multi-memory*`. Example: `--multi-memory`
    #[arg(long)]
    multi_memory: bool,
}

impl EngineArgs {
    fn settings(&self) -> EngineSettings {
        EngineSettings {
            tier: self.tier,
            compile_threads: self.compile_threads,
            multi_memory: self.multi_memory,
            tier_up_threshold: self.tier_up_threshold,
            tier_up_threads: self.tier_up_threads,
            compile_strategy: self.compile_strategy.map(CompileChoice::strategy),
            llvm_pipeline: self.llvm_pipeline.map(PipelineChoice::pipeline),
            baseline_regalloc: self.baseline_regalloc.map(RegallocChoice::regalloc),
            no_llvm_prefetch: self.no_llvm_prefetch,
            no_huge_pages: self.no_huge_pages,
            osr_at_every_loop: false,
        }
    }
}

#[derive(Args)]
struct WastArgs {
    #[command(flatten)]
    engine: EngineArgs,

    /// Print every failure (not only the first 20 of each file), the expected and actual
    /// messages of passing assert_invalid / assert_malformed / assert_unlinkable directives,
    /// and what the script prints through `spectest`. Example: `--verbose`
    #[arg(short, long)]
    verbose: bool,

    /// Tiered mode: after each directive, wait until every tier-up it requested is installed,
    /// so the following directives run the optimized code (a testing aid: with
    /// `--tier-up-threshold 0` every function called by the script is swapped while it runs).
    /// Example: `--await-tier-up`
    #[arg(long)]
    await_tier_up: bool,

    /// Tiered mode: every loop header whose tier-up budget runs out (with
    /// `--tier-up-threshold 0`, the first header of every loop entered with an empty operand
    /// stack) waits for the on-stack-replacement entry of its loop and takes it, so the script
    /// moves between baseline and optimized code at every loop (a slow testing aid).
    /// Example: `--osr-at-every-loop`
    #[arg(long)]
    osr_at_every_loop: bool,

    /// Script files to run; a directory runs every `.wast` file in it, in name order.
    /// Example: `spate wast i32.wast memory.wast`
    #[arg(value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    engine: EngineArgs,

    /// Give the program the host directory HOST, under the name GUEST (default: HOST itself).
    /// Repeatable. Paths outside it stay unreachable: `..`, absolute paths and symbolic links
    /// that lead out all fail. Example: `--dir .` or `--dir ./out::/out`
    #[arg(long = "dir", value_name = "HOST[::GUEST]", value_parser = spate_launcher::run::parse_dir)]
    dirs: Vec<(PathBuf, String)>,

    /// Set an environment variable for the program. Repeatable. Example: `--env LANG=C`
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = spate_launcher::run::parse_env)]
    envs: Vec<(String, String)>,

    /// Pass the host's environment variables to the program as well (--env values win).
    /// Example: `--inherit-env`
    #[arg(long)]
    inherit_env: bool,

    /// Call this export instead of `_start`; ARGS are its arguments (integers or floats), and
    /// its results are printed one per line. Example: `--invoke add -- 2 3`
    #[arg(long, value_name = "NAME")]
    invoke: Option<String>,

    /// The module: a .wasm or .wat file, or an http(s):// URL. Example: `app.wasm`
    #[arg(value_name = "MODULE")]
    module: String,

    /// Arguments for the program (`argv[1]`, ...), after `--` when they start with `-`.
    /// Example: `-- -v input.txt`
    #[arg(
        value_name = "ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    args: Vec<String>,
}

#[derive(Args)]
struct CompileArgs {
    #[command(flatten)]
    engine: EngineArgs,

    /// The module: a binary (.wasm) or WebAssembly text (.wat). Example: `spate compile app.wasm`
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Wast(args) => wast(&args),
        Command::Compile(args) => compile(&args),
        Command::Run(args) => run(args),
    }
}

fn run(args: RunArgs) -> ExitCode {
    use std::io::IsTerminal as _;
    let engine = match build_engine(&args.engine.settings()) {
        Ok(engine) => engine,
        Err(code) => return code,
    };
    let opts = RunOptions {
        dirs: args.dirs,
        env: args.envs,
        inherit_env: args.inherit_env,
        args: args.args,
        invoke: args.invoke,
        progress: std::io::stderr().is_terminal(),
    };
    let source = args.module;
    let (outcome, download) = match catch_unwind(AssertUnwindSafe(|| {
        spate_launcher::run::run_reporting(&engine, &source, &opts)
    })) {
        Ok(ended) => ended,
        Err(_) => {
            eprintln!(
                "internal error: the engine panicked while running {source} (this is a bug in spate)"
            );
            engine.stop_tier_ups(EXIT_GRACE);
            return ExitCode::from(EXIT_INTERNAL);
        }
    };
    let _ = std::io::stdout().flush();
    match &outcome {
        Outcome::Exited(_) => {}
        Outcome::Trapped(msg) | Outcome::Failed(msg) => eprintln!("error: {msg}"),
    }
    if args.engine.stats {
        // A URL's download figures go with the engine's.
        if let Some(download) = download {
            eprintln!("{download}");
        }
        print_stats(&engine.stats());
    }
    // No background compile may still be inside LLVM when the process exits.
    engine.stop_tier_ups(EXIT_GRACE);
    ExitCode::from(outcome.exit_code())
}

fn wast(args: &WastArgs) -> ExitCode {
    let settings = EngineSettings {
        osr_at_every_loop: args.osr_at_every_loop,
        ..args.engine.settings()
    };
    let engine = match build_engine(&settings) {
        Ok(engine) => engine,
        Err(code) => return code,
    };
    let files = match expand_scripts(&args.files) {
        Ok(files) => files,
        Err(e) => return usage_error(&e),
    };
    let mut runner = WastRunner::new(engine.clone());
    runner.verbose(args.verbose);
    runner.await_tier_up(args.await_tier_up);
    // With `--multi-memory` the main engine already accepts every script; otherwise the
    // scripts that test the proposal get an engine of their own.
    if !args.engine.multi_memory {
        let multi = EngineSettings {
            multi_memory: true,
            ..settings
        };
        match build_engine(&multi) {
            Ok(engine) => {
                runner.multi_memory_engine(engine);
            }
            Err(code) => return code,
        }
    }

    let mut totals = Totals::default();
    let mut stdout = std::io::stdout().lock();
    for file in &files {
        let report = runner.run_file(file);
        // Write errors (a closed pipe) are not worth dying over half-way through the scripts.
        let _ = print_report(&mut stdout, &report, args.verbose);
        totals.add(&report);
    }
    let _ = writeln!(stdout, "{totals}");
    let _ = stdout.flush();
    if args.engine.stats {
        print_stats(&runner.stats());
    }
    // No background compile may still be inside LLVM when the process exits.
    runner.stop_tier_ups(EXIT_GRACE);
    if totals.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    }
}

/// Prints a script's failures (the first few unless verbose), its notes when verbose, and a
/// status line.
fn print_report(
    out: &mut impl std::io::Write,
    report: &FileReport,
    verbose: bool,
) -> std::io::Result<()> {
    if verbose {
        for note in &report.notes {
            writeln!(
                out,
                "{}:{}: {}: {}",
                report.file, note.line, note.directive, note.message
            )?;
        }
    }
    let shown = if verbose { usize::MAX } else { FAILURES_SHOWN };
    for failure in report.failures.iter().take(shown) {
        writeln!(out, "{failure}")?;
    }
    if report.failed() > shown {
        writeln!(
            out,
            "{}: ... and {} more failures (--verbose lists them all)",
            report.file,
            report.failed() - shown
        )?;
    }
    if report.is_success() {
        writeln!(out, "ok    {} ({} directives)", report.file, report.total())
    } else {
        writeln!(
            out,
            "FAIL  {} ({} of {} directives failed)",
            report.file,
            report.failed(),
            report.total()
        )
    }
}

/// The script files named on the command line, directories expanded to their `.wast` files.
fn expand_scripts(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| anyhow::anyhow!("cannot list {}: {e}", path.display()))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|ext| ext == "wast"))
                .collect();
            if found.is_empty() {
                anyhow::bail!("{} contains no .wast files", path.display());
            }
            found.sort();
            files.extend(found);
        } else {
            // A missing file is reported as that script's failure, with the others still run.
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn compile(args: &CompileArgs) -> ExitCode {
    // `compile` reports compilation: wait for every function rather than compiling lazily.
    let settings = EngineSettings {
        compile_strategy: Some(spate::CompileStrategy::Eager),
        ..args.engine.settings()
    };
    let engine = match build_engine(&settings) {
        Ok(engine) => engine,
        Err(code) => return code,
    };
    let path: &Path = &args.file;
    match catch_unwind(AssertUnwindSafe(|| compile_file(&engine, path))) {
        Ok(Ok(summary)) => {
            println!("{}: valid (tier {})", path.display(), settings.tier);
            println!("{summary}");
            if args.engine.stats {
                print_stats(&engine.stats());
            }
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("error: {}: {e:#}", path.display());
            ExitCode::from(EXIT_FAILURE)
        }
        Err(_) => {
            eprintln!(
                "internal error: the engine panicked while compiling {} (this is a bug in spate)",
                path.display()
            );
            ExitCode::from(EXIT_INTERNAL)
        }
    }
}

/// Prints engine figures (`--stats`) on stderr, so they never mix with a program's output.
fn print_stats(stats: &spate::Stats) {
    eprintln!("{stats}");
}

/// The engine for `settings`; a failure to set it up is an internal error.
fn build_engine(settings: &EngineSettings) -> Result<spate::Engine, ExitCode> {
    settings.build().map_err(|e| {
        eprintln!("internal error: cannot create the engine: {e:#}");
        ExitCode::from(EXIT_INTERNAL)
    })
}

fn usage_error(e: &anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    ExitCode::from(EXIT_USAGE)
}
