//! Streaming compilation over the network: how much of the compile time a download hides.
//!
//! The harness serves a module (by default `benches/stream/stream_hello.wasm`, 1.6 MB, whose
//! `main` prints a line first thing) from a server on 127.0.0.1 that paces the body to a fixed
//! bandwidth (1500-byte writes on a clock, `TCP_NODELAY`), and for each bandwidth (50 and
//! 500 Mbit/s by default) measures two ways of running it:
//!
//! * **streamed**: `spate run http://127.0.0.1:PORT/...` is started, requests the module and
//!   compiles it while it arrives. The server records the instant it wrote the last byte; the
//!   harness records the instant the first byte of the program's output reaches it. The
//!   difference, *last byte -> first output*, is the compile time the download did not hide,
//!   plus instantiation and the start of `main`.
//! * **downloaded first**: the harness downloads the whole module through the same paced server
//!   into a file, then starts `spate run FILE`; *run start -> first output* is the time to first
//!   output once the bytes are all there (process start, compile, instantiate, start of `main`).
//!
//! Both also report the time from the request to the first output. Each figure is the median
//! of `--runs` runs (default 5) after `--warmup` untimed ones (default 1). The `spate` binary is
//! taken from next to this executable (`target/release/spate` when this is
//! `target/release/streaming`) unless `--spate` names one.
//!
//! Run through `scripts/bench-streaming.sh`, which builds both in release mode.

use anyhow::{Context, Result, bail};
use spate_benches::{Stats, Table, machine, ms};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: streaming [OPTIONS] [MODULE.wasm]

Serves MODULE (default benches/stream/stream_hello.wasm; its program must print to stdout first
thing) from 127.0.0.1 at fixed bandwidths and times `spate run URL` (streamed) against
downloading it first and then `spate run FILE`.

options:
  --spate PATH        the spate binary (default: `spate` next to this executable)
  --bandwidth LIST    comma-separated bandwidths in Mbit/s (default 50,500)
  --runs N            timed runs per configuration (default 5)
  --warmup N          untimed runs before them (default 1)
  --spate-arg ARG     an option for `spate run` (repeatable), e.g. --spate-arg=--tier=baseline
  --timeout SECS      give up on a run after this long (default 120)
  --markdown          print the table as Markdown
  -h, --help          this text";

/// Size of each paced write: one Ethernet MTU of payload, as a real link would carry it.
const SLICE: usize = 1500;

struct Options {
    module: PathBuf,
    spate: PathBuf,
    bandwidths: Vec<f64>,
    runs: usize,
    warmup: usize,
    spate_args: Vec<String>,
    timeout: Duration,
    markdown: bool,
}

fn parse_args() -> Result<Options> {
    let default_spate = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("spate")))
        .unwrap_or_else(|| PathBuf::from("spate"));
    let mut opts = Options {
        module: Path::new(env!("CARGO_MANIFEST_DIR")).join("stream/stream_hello.wasm"),
        spate: default_spate,
        bandwidths: vec![50.0, 500.0],
        runs: 5,
        warmup: 1,
        spate_args: Vec::new(),
        timeout: Duration::from_secs(120),
        markdown: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        // `--name=value` and `--name value` both work.
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |n: &str| match inline.clone() {
            Some(v) => Ok(v),
            None => args.next().with_context(|| format!("{n} needs a value")),
        };
        match name.as_str() {
            "--spate" => opts.spate = PathBuf::from(value("--spate")?),
            "--bandwidth" => {
                opts.bandwidths = value("--bandwidth")?
                    .split(',')
                    .map(|b| {
                        b.trim()
                            .parse::<f64>()
                            .with_context(|| format!("--bandwidth: `{b}`"))
                    })
                    .collect::<Result<_>>()?;
            }
            "--runs" => opts.runs = value("--runs")?.parse().context("--runs")?,
            "--warmup" => opts.warmup = value("--warmup")?.parse().context("--warmup")?,
            "--spate-arg" => opts.spate_args.push(value("--spate-arg")?),
            "--timeout" => {
                opts.timeout =
                    Duration::from_secs_f64(value("--timeout")?.parse().context("--timeout")?)
            }
            "--markdown" => opts.markdown = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            s if s.starts_with('-') => bail!("unknown option `{s}`\n\n{USAGE}"),
            _ => opts.module = PathBuf::from(arg),
        }
    }
    if opts.runs == 0 {
        bail!("--runs must be at least 1");
    }
    if opts.bandwidths.is_empty() || opts.bandwidths.iter().any(|&b| b.is_nan() || b <= 0.0) {
        bail!("every --bandwidth must be a positive number of Mbit/s");
    }
    Ok(opts)
}

/// What the server saw of one download.
struct Served {
    /// When the request arrived (the response starts at once).
    request: Instant,
    /// When the last byte of the body was written to the socket.
    last_byte: Instant,
}

/// A server on 127.0.0.1 that answers every request with the module, its body paced to
/// `mbit_per_s`, one connection at a time.
struct PacedServer {
    url: String,
    served: Receiver<Served>,
}

impl PacedServer {
    fn start(module: Arc<[u8]>, mbit_per_s: f64) -> Result<PacedServer> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the server")?;
        let url = format!("http://{}/stream.wasm", listener.local_addr()?);
        let (tx, served) = mpsc::channel();
        let bytes_per_s = mbit_per_s * 1e6 / 8.0;
        thread::Builder::new()
            .name("paced-server".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    let Ok(conn) = conn else { continue };
                    match serve(conn, &module, bytes_per_s) {
                        Ok(s) => {
                            if tx.send(s).is_err() {
                                return;
                            }
                        }
                        Err(e) => eprintln!("streaming: server: {e:#}"),
                    }
                }
            })?;
        Ok(PacedServer { url, served })
    }

    /// The record of the next download, waiting at most `timeout`.
    fn next(&self, timeout: Duration) -> Result<Served> {
        self.served
            .recv_timeout(timeout)
            .context("the server saw no complete download")
    }
}

fn serve(mut conn: TcpStream, module: &[u8], bytes_per_s: f64) -> Result<Served> {
    conn.set_nodelay(true)?;
    let mut reader = BufReader::new(conn.try_clone()?);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            bail!("the client closed the connection before sending a request");
        }
        if line == "\r\n" || line == "\n" {
            break;
        }
    }
    let request = Instant::now();
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/wasm\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        module.len()
    );
    conn.write_all(head.as_bytes())?;
    let last_byte = send_paced(&mut conn, module, bytes_per_s)?;
    // Let the client read to the end before the socket goes.
    let _ = conn.shutdown(std::net::Shutdown::Write);
    let _ = reader.read_to_end(&mut Vec::new());
    Ok(Served { request, last_byte })
}

/// Writes `data` in [`SLICE`]-byte pieces, piece `k` no earlier than `k * SLICE / rate` after
/// the start (a token bucket one slice deep); returns when the last byte was written.
fn send_paced(conn: &mut TcpStream, data: &[u8], bytes_per_s: f64) -> Result<Instant> {
    let start = Instant::now();
    let mut sent = 0usize;
    for piece in data.chunks(SLICE) {
        let due = start + Duration::from_secs_f64(sent as f64 / bytes_per_s);
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
        conn.write_all(piece)?;
        sent += piece.len();
    }
    Ok(Instant::now())
}

/// Downloads `url` (from the paced server) with a minimal HTTP/1.1 client; returns the body.
fn download(url: &str) -> Result<Vec<u8>> {
    let rest = url.strip_prefix("http://").context("an http:// URL")?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut conn = TcpStream::connect(host).with_context(|| format!("connecting to {host}"))?;
    conn.set_nodelay(true)?;
    write!(
        conn,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    conn.read_to_end(&mut response)?;
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of the response headers")?;
    Ok(response.split_off(end + 4))
}

/// One run of a child process: when it started and when its first output byte arrived.
struct ChildRun {
    started: Instant,
    first_output: Instant,
}

/// Starts `command` and waits for its first byte on stdout, then for it to exit; fails if it
/// prints nothing, does not start its output with `expect`, or exits unsuccessfully.
fn run_child(mut command: Command, expect: &[u8], timeout: Duration) -> Result<ChildRun> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {command:?}"))?;
    let mut stdout = child.stdout.take().context("child stdout")?;
    let mut stderr = child.stderr.take().context("child stderr")?;
    let (first_tx, first_rx) = mpsc::channel();
    let out_thread = thread::spawn(move || {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        let mut first = true;
        loop {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if first {
                        let _ = first_tx.send(Instant::now());
                        first = false;
                    }
                    out.extend_from_slice(&buf[..n]);
                }
            }
        }
        out
    });
    let err_thread = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let first_output = match first_rx.recv_timeout(timeout) {
        Ok(t) => Some(t),
        Err(RecvTimeoutError::Timeout) => {
            let _ = child.kill();
            None
        }
        Err(RecvTimeoutError::Disconnected) => None,
    };
    let status = child.wait()?;
    let out = out_thread.join().unwrap_or_default();
    let err = err_thread.join().unwrap_or_default();
    let describe = || {
        let err: String = err.lines().take(5).collect::<Vec<_>>().join("\n  ");
        format!("{command:?} ({status}); stderr:\n  {err}")
    };
    let Some(first_output) = first_output else {
        bail!("no output within {timeout:?} from {}", describe());
    };
    if !status.success() {
        bail!("unsuccessful run of {}", describe());
    }
    if !out.starts_with(expect) {
        bail!(
            "unexpected output {:?} from {}",
            String::from_utf8_lossy(&out[..out.len().min(80)]),
            describe()
        );
    }
    Ok(ChildRun {
        started,
        first_output,
    })
}

/// Signed milliseconds from `a` to `b`.
fn ms_between(a: Instant, b: Instant) -> f64 {
    if b >= a { ms(b - a) } else { -ms(a - b) }
}

/// The median of `values` (not empty).
fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The medians for one bandwidth, in milliseconds.
struct Row {
    mbit: f64,
    download: Duration,
    streamed_after_last_byte: f64,
    streamed_total: f64,
    file_run: Duration,
    file_total: Duration,
    file_download: Duration,
}

fn bench_bandwidth(opts: &Options, module: &Arc<[u8]>, mbit: f64, expect: &[u8]) -> Result<Row> {
    let server = PacedServer::start(module.clone(), mbit)?;
    let file = std::env::temp_dir().join(format!("spate-streaming-{}.wasm", std::process::id()));
    let grace = opts.timeout + Duration::from_secs(5);

    let (mut downloads, mut after, mut streamed_total) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..opts.warmup + opts.runs {
        let mut command = Command::new(&opts.spate);
        command.arg("run").args(&opts.spate_args).arg(&server.url);
        let child = run_child(command, expect, opts.timeout)
            .with_context(|| format!("streamed run at {mbit} Mbit/s"))?;
        let served = server.next(grace)?;
        if run >= opts.warmup {
            downloads.push(served.last_byte - served.request);
            after.push(ms_between(served.last_byte, child.first_output));
            streamed_total.push(ms_between(served.request, child.first_output));
        }
        eprintln!(
            "streaming: {mbit} Mbit/s streamed{}: download {:.1} ms, last byte -> first output {:.1} ms",
            if run < opts.warmup { " (warm-up)" } else { "" },
            ms(served.last_byte - served.request),
            ms_between(served.last_byte, child.first_output)
        );
    }

    let (mut file_runs, mut file_totals, mut file_downloads) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..opts.warmup + opts.runs {
        let requested = Instant::now();
        let body = download(&server.url)?;
        let downloaded = Instant::now();
        if body.len() != module.len() {
            bail!("downloaded {} of {} bytes", body.len(), module.len());
        }
        std::fs::write(&file, &body).with_context(|| format!("writing {}", file.display()))?;
        server.next(grace)?;
        let mut command = Command::new(&opts.spate);
        command.arg("run").args(&opts.spate_args).arg(&file);
        let child = run_child(command, expect, opts.timeout)
            .with_context(|| format!("run from a file at {mbit} Mbit/s"))?;
        let run_time = child.first_output - child.started;
        if run >= opts.warmup {
            file_runs.push(run_time);
            file_totals.push(child.first_output - requested);
            file_downloads.push(downloaded - requested);
        }
        eprintln!(
            "streaming: {mbit} Mbit/s downloaded first{}: download {:.1} ms, run start -> first output {:.1} ms",
            if run < opts.warmup { " (warm-up)" } else { "" },
            ms(downloaded - requested),
            ms(run_time)
        );
    }
    let _ = std::fs::remove_file(&file);

    Ok(Row {
        mbit,
        download: Stats::new(&downloads).median,
        streamed_after_last_byte: median(&after),
        streamed_total: median(&streamed_total),
        file_run: Stats::new(&file_runs).median,
        file_total: Stats::new(&file_totals).median,
        file_download: Stats::new(&file_downloads).median,
    })
}

fn main() -> Result<()> {
    let opts = parse_args()?;
    if !opts.spate.is_file() {
        bail!(
            "no spate binary at {} (build it with `cargo build --release -p spate-launcher`, or \
             pass --spate PATH)",
            opts.spate.display()
        );
    }
    let module: Arc<[u8]> = std::fs::read(&opts.module)
        .with_context(|| format!("reading {}", opts.module.display()))?
        .into();
    // The line the benchmark program prints first.
    let expect: &[u8] = b"hello";

    let mut rows = Vec::new();
    for &mbit in &opts.bandwidths {
        rows.push(bench_bandwidth(&opts, &module, mbit, expect)?);
    }

    let name = opts
        .module
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    println!(
        "{name} ({:.2} MB) served from 127.0.0.1; median of {} runs after {} warm-up; {}",
        module.len() as f64 / 1e6,
        opts.runs,
        opts.warmup,
        machine()
    );
    if !opts.spate_args.is_empty() {
        println!("spate run {}", opts.spate_args.join(" "));
    }
    println!();
    let mut table = Table::new(
        &[
            "bandwidth",
            "download ms",
            "streamed: last byte -> first output ms",
            "streamed: request -> first output ms",
            "downloaded first: run start -> first output ms",
            "downloaded first: request -> first output ms",
        ],
        1,
    );
    for r in &rows {
        table.row(vec![
            format!("{} Mbit/s", r.mbit),
            format!("{:.0}", ms(r.download)),
            format!("{:.0}", r.streamed_after_last_byte),
            format!("{:.0}", r.streamed_total),
            format!("{:.0}", ms(r.file_run)),
            format!("{:.0}", ms(r.file_total)),
        ]);
    }
    print!("{}", table.render(opts.markdown));
    // The downloads of the second method use the harness's own client; show them when they
    // differ much from the first (they should not: the server paces both).
    for r in &rows {
        let (a, b) = (ms(r.download), ms(r.file_download));
        if (a - b).abs() > 0.2 * a.max(b) {
            println!(
                "note: at {} Mbit/s the download took {a:.0} ms streamed and {b:.0} ms downloaded first",
                r.mbit
            );
        }
    }
    Ok(())
}
