//! Baseline compile throughput: how fast Spate turns a module's bytes into machine code.
//!
//! For each module given on the command line, and for each compile-thread count, this compiles
//! the module `--runs` times after `--warmup` untimed compiles, through two paths:
//!
//! * `whole`: `Module::new` with all bytes at once;
//! * `stream`: a `ModuleStream` fed in chunks of `--chunk` bytes (64 KiB by default), as a module
//!   arriving over the network would be.
//!
//! It reports the median and fastest wall time, MB/s of wasm (module bytes / median time, with
//! MB = 10^6 bytes) and defined functions per second. One engine is made per thread count (and
//! per baseline register allocator compared with `--regalloc`) and reused for all of its runs, so
//! the worker pool is warm; each compiled module is dropped outside the timed region.
//!
//! Build and run with `cargo run --release -p spate-benches --bin compile_throughput -- FILE...`,
//! or through `scripts/bench-compile.sh`, which also times V8's Liftoff on the same bytes.

use anyhow::{Context, Result, bail};
use spate_benches::{Stats, mb_per_s};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: compile_throughput [OPTIONS] FILE.wasm...

Compiles each module with Spate's baseline tier and reports median wall time, MB/s of wasm and
functions/s, single-threaded and with the compile worker pool, whole and streamed.

options:
  --runs N          timed compiles per configuration (default 5)
  --warmup N        untimed compiles before them (default 1)
  --threads LIST    comma-separated compile thread counts (default 1,2)
  --chunk BYTES     chunk size of the streaming variant (default 65536)
  --regalloc LIST   comma-separated baseline register allocators to compare: single-pass,
                    loop-nests, backtracking (default: the engine's, loop-nests); their runs
                    alternate, so a change in the machine's speed hits them alike
  --no-stream       skip the streaming variant
  --tsv             print tab-separated rows instead of a table:
                    file, engine, config, threads, bytes, functions, median_s, min_s, code_bytes
  -h, --help        this text";

struct Options {
    files: Vec<PathBuf>,
    runs: usize,
    warmup: usize,
    threads: Vec<usize>,
    chunk: usize,
    stream: bool,
    tsv: bool,
    /// The allocators to compare; empty: the engine's default only.
    regalloc: Vec<spate::BaselineRegalloc>,
}

fn parse_args() -> Result<Options> {
    let mut opts = Options {
        files: Vec::new(),
        runs: 5,
        warmup: 1,
        threads: vec![1, 2],
        chunk: 64 * 1024,
        stream: true,
        tsv: false,
        regalloc: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--runs" => opts.runs = value("--runs")?.parse().context("--runs")?,
            "--warmup" => opts.warmup = value("--warmup")?.parse().context("--warmup")?,
            "--chunk" => opts.chunk = value("--chunk")?.parse().context("--chunk")?,
            "--threads" => {
                opts.threads = value("--threads")?
                    .split(',')
                    .map(|t| {
                        t.trim()
                            .parse::<usize>()
                            .with_context(|| format!("--threads: `{t}`"))
                    })
                    .collect::<Result<_>>()?;
            }
            "--regalloc" => {
                opts.regalloc = value("--regalloc")?
                    .split(',')
                    .map(|n| {
                        n.trim()
                            .parse()
                            .map_err(|e: String| anyhow::anyhow!("--regalloc: {e}"))
                    })
                    .collect::<Result<_>>()?;
            }
            "--no-stream" => opts.stream = false,
            "--tsv" => opts.tsv = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            s if s.starts_with('-') => bail!("unknown option `{s}`\n\n{USAGE}"),
            _ => opts.files.push(PathBuf::from(arg)),
        }
    }
    if opts.files.is_empty() {
        bail!("no module given\n\n{USAGE}");
    }
    if opts.runs == 0 || opts.chunk == 0 || opts.threads.is_empty() || opts.threads.contains(&0) {
        bail!("--runs, --chunk and every --threads entry must be at least 1");
    }
    Ok(opts)
}

/// One compile; returns its wall time and the module, which the caller drops untimed.
fn compile_once(
    engine: &spate::Engine,
    bytes: &[u8],
    chunk: Option<usize>,
) -> Result<(Duration, spate::Module)> {
    let start = Instant::now();
    let module = match chunk {
        None => spate::Module::new(engine, bytes)?,
        Some(size) => {
            let mut stream = spate::ModuleStream::new(engine);
            for piece in bytes.chunks(size) {
                stream.feed(piece)?;
            }
            stream.finish()?
        }
    };
    Ok((start.elapsed(), module))
}

struct Row {
    config: String,
    threads: usize,
    stats: Stats,
    functions: usize,
    code_bytes: usize,
}

fn bench_file(opts: &Options, path: &PathBuf) -> Result<(usize, Vec<Row>)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut rows = Vec::new();
    // One engine per allocator (the default's alone without --regalloc), labelled.
    let allocators: Vec<Option<spate::BaselineRegalloc>> = if opts.regalloc.is_empty() {
        vec![None]
    } else {
        opts.regalloc.iter().copied().map(Some).collect()
    };
    for &threads in &opts.threads {
        let engines = allocators
            .iter()
            .map(|&regalloc| {
                let mut config = spate::Config::new();
                // Measures compilation itself: `Module::new` returns when every function is
                // compiled.
                config
                    .compile_threads(threads)
                    .compile_strategy(spate::CompileStrategy::Eager);
                if let Some(r) = regalloc {
                    config.baseline_regalloc(r);
                }
                spate::Engine::new(&config)
            })
            .collect::<Result<Vec<_>>>()?;
        let variants: &[(&str, Option<usize>)] = if opts.stream {
            &[("whole", None), ("stream", Some(opts.chunk))]
        } else {
            &[("whole", None)]
        };
        for &(name, chunk) in variants {
            let mut times = vec![Vec::with_capacity(opts.runs); engines.len()];
            let mut shapes = vec![(0, 0); engines.len()];
            for run in 0..opts.warmup + opts.runs {
                for (i, engine) in engines.iter().enumerate() {
                    let (time, module) = compile_once(engine, &bytes, chunk)
                        .with_context(|| format!("compiling {}", path.display()))?;
                    shapes[i] = (module.num_defined_functions(), module.code_size());
                    drop(module);
                    if run >= opts.warmup {
                        times[i].push(time);
                    }
                }
            }
            for (i, &regalloc) in allocators.iter().enumerate() {
                let mut label = match chunk {
                    None => name.to_string(),
                    Some(c) if c % 1024 == 0 => format!("{name} {} KiB chunks", c / 1024),
                    Some(c) => format!("{name} {c} B chunks"),
                };
                if let Some(r) = regalloc {
                    label = format!("{label}, {}", r.name());
                }
                rows.push(Row {
                    config: label,
                    threads,
                    stats: Stats::new(&times[i]),
                    functions: shapes[i].0,
                    code_bytes: shapes[i].1,
                });
            }
        }
    }
    Ok((bytes.len(), rows))
}

fn main() -> Result<()> {
    let opts = parse_args()?;
    if cfg!(debug_assertions) {
        eprintln!(
            "compile_throughput: warning: debug build; run with --release for meaningful figures"
        );
    }
    for path in &opts.files {
        let (size, rows) = bench_file(&opts, path)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if opts.tsv {
            for r in &rows {
                println!(
                    "{name}\tspate\t{}\t{}\t{size}\t{}\t{:.6}\t{:.6}\t{}",
                    r.config,
                    r.threads,
                    r.functions,
                    r.stats.median.as_secs_f64(),
                    r.stats.min.as_secs_f64(),
                    r.code_bytes
                );
            }
            continue;
        }
        let functions = rows.first().map_or(0, |r| r.functions);
        println!(
            "{} ({:.2} MB, {functions} functions), median of {} runs after {} warm-up:",
            path.display(),
            size as f64 / 1e6,
            opts.runs,
            opts.warmup
        );
        let width = rows
            .iter()
            .map(|r| r.config.len())
            .max()
            .unwrap_or(0)
            .max(22);
        println!(
            "  {:<width$} {:>7} {:>11} {:>11} {:>9} {:>12} {:>12}",
            "config", "threads", "median ms", "min ms", "MB/s", "functions/s", "code bytes"
        );
        for r in &rows {
            let median = r.stats.median.as_secs_f64();
            println!(
                "  {:<width$} {:>7} {:>11.1} {:>11.1} {:>9.2} {:>12.0} {:>12}",
                r.config,
                r.threads,
                median * 1e3,
                r.stats.min.as_secs_f64() * 1e3,
                mb_per_s(size, r.stats.median),
                r.functions as f64 / median,
                r.code_bytes
            );
        }
    }
    Ok(())
}
