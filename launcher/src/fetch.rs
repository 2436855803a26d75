//! Fetching a module over HTTP(S), behind `spate run URL`: the body is fed to a
//! [`ModuleStream`] chunk by chunk as it arrives, so validation and compilation overlap the
//! download and only the last function bodies are left to compile after the last byte.
//!
//! Every failure is one line that says what went wrong and where:
//!
//! | problem | message |
//! | --- | --- |
//! | DNS failure, connection refused, unreachable host, connect timeout | `cannot connect to HOST: ...` |
//! | 4xx / 5xx status | `HTTP 404 Not Found from URL` |
//! | connection closed before `Content-Length` bytes | `download truncated: got N of M bytes from URL` |
//! | redirect loop, or more than [`MAX_REDIRECTS`] redirects | `redirect loop: A -> B -> A` / `too many redirects ...` |
//! | the body does not start with `\0asm` | `URL: not a WebAssembly module (received text/html starting with '<!DOCTYPE html>')` |
//! | no data for [`READ_IDLE_TIMEOUT`] | `timed out: no data from HOST for 30 s ...` |
//! | the module is malformed or invalid | `URL: ` and the engine's error with its byte offset; the download stops at once |
//!
//! Timeouts: resolving the host name and connecting (TLS handshake included) must finish within
//! [`CONNECT_TIMEOUT`]; after that, every read (the response headers, then each piece of the
//! body) must deliver data within [`READ_IDLE_TIMEOUT`]. There is no limit on the whole
//! transfer, so a large module on a slow but steady link still arrives.

use std::fmt::Write as _;
use std::io::{self, Read};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use spate::{Engine, Module, ModuleStream};
use ureq::http::{StatusCode, Uri, header};
use ureq::{Agent, ResponseExt, Timeout};

/// Time allowed to resolve the host name and to connect, TLS handshake included.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed between pieces of data once connected: for the response headers, then for each
/// read of the body. A server that goes quiet for this long fails the download.
pub const READ_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Redirects followed before giving up.
pub const MAX_REDIRECTS: u32 = 10;
/// Size of each read of the body, and so of the chunks fed to the compiler.
pub const CHUNK_SIZE: usize = 64 * 1024;
/// The progress bar appears only when the download and compile are still going after this long.
pub const PROGRESS_DELAY: Duration = Duration::from_secs(1);

/// A module fetched and compiled by [`fetch_and_compile`].
pub struct Fetched {
    /// The compiled module.
    pub module: Module,
    /// Size of the module (the response body) in bytes.
    pub bytes: u64,
    /// From the start of the request to the arrival of the last byte of the body.
    pub download: Duration,
    /// From the arrival of the last byte to having the compiled module: the compile time the
    /// download did not hide.
    pub compile_after_last_byte: Duration,
    /// The URL the module came from, after redirects.
    pub url: String,
}

impl Fetched {
    /// The download figures, without the module.
    pub fn stats(&self) -> DownloadStats {
        DownloadStats {
            url: self.url.clone(),
            bytes: self.bytes,
            download: self.download,
            compile_after_last_byte: self.compile_after_last_byte,
        }
    }
}

/// The figures of a download, as `spate run --stats` prints them (see [`Fetched`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadStats {
    /// The URL the module came from, after redirects.
    pub url: String,
    /// Size of the module in bytes.
    pub bytes: u64,
    /// From the start of the request to the last byte.
    pub download: Duration,
    /// From the last byte to having the compiled module.
    pub compile_after_last_byte: Duration,
}

impl std::fmt::Display for DownloadStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.download.as_secs_f64();
        write!(
            f,
            "download: {} bytes from {} in {:.1} ms ({:.2} MB/s); compile after the last byte: {:.1} ms",
            self.bytes,
            self.url,
            secs * 1e3,
            if secs > 0.0 {
                self.bytes as f64 / 1e6 / secs
            } else {
                0.0
            },
            self.compile_after_last_byte.as_secs_f64() * 1e3
        )
    }
}

/// How [`fetch_and_compile_with`] downloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchOptions {
    /// Show a progress bar on stderr (after [`PROGRESS_DELAY`]); pass true only when stderr is a
    /// terminal.
    pub progress: bool,
    /// See [`CONNECT_TIMEOUT`].
    pub connect_timeout: Duration,
    /// See [`READ_IDLE_TIMEOUT`].
    pub read_idle_timeout: Duration,
    /// See [`MAX_REDIRECTS`].
    pub max_redirects: u32,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            progress: false,
            connect_timeout: CONNECT_TIMEOUT,
            read_idle_timeout: READ_IDLE_TIMEOUT,
            max_redirects: MAX_REDIRECTS,
        }
    }
}

/// Whether `arg` names a module to fetch (`http://` or `https://`) rather than a file.
pub fn is_url(arg: &str) -> bool {
    let lower = arg.get(..8).unwrap_or(arg).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// Downloads the module at `url` (http or https), compiling it while it arrives, with the
/// default timeouts and redirect limit. `progress` shows a progress bar on stderr when the whole
/// takes over a second; pass true only when stderr is a terminal.
///
/// The errors are single lines, described in the [module documentation](self).
pub fn fetch_and_compile(engine: &Engine, url: &str, progress: bool) -> Result<Fetched> {
    fetch_and_compile_with(
        engine,
        url,
        &FetchOptions {
            progress,
            ..FetchOptions::default()
        },
    )
}

/// [`fetch_and_compile`] with explicit timeouts and redirect limit.
pub fn fetch_and_compile_with(
    engine: &Engine,
    url: &str,
    options: &FetchOptions,
) -> Result<Fetched> {
    let start = Instant::now();
    let uri: Uri = url.parse().map_err(|e| anyhow!("invalid URL {url}: {e}"))?;
    match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") => {}
        _ => {
            return Err(anyhow!(
                "cannot fetch {url}: only http:// and https:// URLs are supported"
            ));
        }
    }
    let host = match uri.authority() {
        Some(a) if !a.host().is_empty() => a.to_string(),
        _ => return Err(anyhow!("invalid URL {url}: no host")),
    };

    let agent: Agent = Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(options.max_redirects)
        .max_redirects_will_error(false)
        .save_redirect_history(true)
        .timeout_resolve(Some(options.connect_timeout))
        .timeout_connect(Some(options.connect_timeout))
        .timeout_send_request(Some(options.read_idle_timeout))
        .timeout_recv_response(Some(options.read_idle_timeout))
        .timeout_per_read(Some(options.read_idle_timeout))
        .timeout_per_write(Some(options.read_idle_timeout))
        .user_agent(format!("spate/{}", env!("CARGO_PKG_VERSION")))
        .accept("application/wasm, application/octet-stream;q=0.9, */*;q=0.8")
        .max_idle_connections(0)
        .build()
        .into();

    let progress = Progress::new(options.progress, &host);
    let response = agent
        .get(url)
        .call()
        .map_err(|e| request_error(e, url, &host, options))?;

    let final_url = response.get_uri().to_string();
    let status = response.status();
    if status.is_redirection() {
        return Err(redirect_error(
            response.get_redirect_history().unwrap_or(&[]),
            url,
            status,
            options.max_redirects,
        ));
    }
    if !status.is_success() {
        return Err(anyhow!("HTTP {} from {final_url}", describe_status(status)));
    }
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(';').next().unwrap_or(s).trim().to_string())
        .filter(|s| !s.is_empty());
    let total = response.body().content_length();
    progress.start_body(total);

    let mut reader = response.into_body().into_reader();
    let mut stream = ModuleStream::new(engine);
    let mut buf = vec![0u8; CHUNK_SIZE];
    let mut head: Vec<u8> = Vec::with_capacity(HEAD_LEN);
    let mut got: u64 = 0;
    let mut last_byte = Instant::now();
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(body_error(e, got, total, &final_url, &host, options)),
        };
        last_byte = Instant::now();
        let chunk = &buf[..n];
        if head.len() < HEAD_LEN {
            let take = (HEAD_LEN - head.len()).min(n);
            head.extend_from_slice(&chunk[..take]);
            let magic = &WASM_MAGIC[..head.len().min(WASM_MAGIC.len())];
            if !head.starts_with(magic) {
                return Err(not_wasm(&final_url, content_type.as_deref(), &head));
            }
        }
        // A malformed or invalid module stops the download here, with the engine's error (it
        // names the byte offset); dropping the reader closes the connection.
        stream
            .feed(chunk)
            .map_err(|e| anyhow!("{final_url}: {e:#}"))?;
        got += n as u64;
        progress.set_position(got);
    }
    if let Some(total) = total
        && got < total
    {
        return Err(truncated(got, total, &final_url));
    }
    if got == 0 {
        return Err(not_wasm(&final_url, content_type.as_deref(), &head));
    }
    progress.compiling();
    let module = stream.finish().map_err(|e| anyhow!("{final_url}: {e:#}"))?;
    let done = Instant::now();
    drop(progress);
    Ok(Fetched {
        module,
        bytes: got,
        download: last_byte - start,
        compile_after_last_byte: done - last_byte,
        url: final_url,
    })
}

const WASM_MAGIC: &[u8; 4] = b"\0asm";
/// How many leading bytes of the body are kept to describe a body that is not a module.
const HEAD_LEN: usize = 16;

/// "404 Not Found".
fn describe_status(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

fn secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// The error for a request that produced no response.
fn request_error(e: ureq::Error, url: &str, host: &str, options: &FetchOptions) -> anyhow::Error {
    use io::ErrorKind as K;
    match e {
        ureq::Error::HostNotFound => {
            anyhow!("cannot connect to {host}: host not found (DNS lookup failed)")
        }
        ureq::Error::Io(e) => match e.kind() {
            K::ConnectionRefused => anyhow!("cannot connect to {host}: connection refused"),
            K::TimedOut => anyhow!(
                "cannot connect to {host}: timed out after {}",
                secs(options.connect_timeout)
            ),
            K::NetworkUnreachable | K::HostUnreachable | K::AddrNotAvailable => {
                anyhow!("cannot connect to {host}: {e}")
            }
            // rustls reports a failed handshake (and any TLS alert) as invalid data.
            K::InvalidData if uri_is_https(url) => {
                anyhow!("cannot connect to {host}: TLS error: {e}")
            }
            K::UnexpectedEof | K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => {
                anyhow!("{host} closed the connection without responding to {url}")
            }
            // The standard library's resolver (getaddrinfo) fails with an uncategorised error.
            _ if e.to_string().contains("lookup address") => {
                let detail = e.to_string();
                let detail = detail.rsplit(": ").next().unwrap_or(&detail).to_string();
                anyhow!("cannot connect to {host}: DNS lookup failed: {detail}")
            }
            _ => anyhow!("request to {url} failed: {e}"),
        },
        ureq::Error::ConnectionFailed => anyhow!("cannot connect to {host}"),
        ureq::Error::Timeout(t) => timeout_error(t, host, options),
        ureq::Error::Tls(msg) => anyhow!("cannot connect to {host}: TLS error: {msg}"),
        ureq::Error::Rustls(e) => anyhow!("cannot connect to {host}: TLS error: {e}"),
        ureq::Error::Pem(e) => anyhow!("cannot connect to {host}: TLS error: {e:?}"),
        ureq::Error::BadUri(msg) => anyhow!("invalid URL {url}: {msg}"),
        ureq::Error::Protocol(e) => anyhow!("{host} sent a malformed HTTP response: {e}"),
        ureq::Error::LargeResponseHeader(..) => {
            anyhow!("{host} sent a malformed HTTP response: the header is too large")
        }
        ureq::Error::TooManyRedirects => anyhow!(
            "too many redirects (more than {}) starting at {url}",
            options.max_redirects
        ),
        e => anyhow!("request to {url} failed: {e}"),
    }
}

fn uri_is_https(url: &str) -> bool {
    url.get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

fn timeout_error(t: Timeout, host: &str, options: &FetchOptions) -> anyhow::Error {
    match t {
        Timeout::Resolve | Timeout::Connect => anyhow!(
            "cannot connect to {host}: timed out after {}",
            secs(options.connect_timeout)
        ),
        _ => anyhow!(
            "timed out: no data from {host} for {} (the read-idle timeout)",
            secs(options.read_idle_timeout)
        ),
    }
}

/// The error for a response that is still a redirect after following `max` of them.
fn redirect_error(history: &[Uri], url: &str, status: StatusCode, max: u32) -> anyhow::Error {
    let chain: Vec<String> = history.iter().map(|u| u.to_string()).collect();
    // The first URL visited twice closes the loop.
    for (j, u) in chain.iter().enumerate() {
        if let Some(i) = chain[..j].iter().position(|v| v == u) {
            return anyhow!("redirect loop: {}", chain[i..=j].join(" -> "));
        }
    }
    if chain.len() as u32 <= max {
        // Not followed although below the limit: a redirect without a (usable) Location.
        let at = chain.last().map_or(url, String::as_str);
        return anyhow!(
            "HTTP {} from {at} without a usable Location",
            describe_status(status)
        );
    }
    anyhow!("too many redirects (more than {max}) starting at {url}")
}

/// The error for a failed read of the body after `got` bytes.
fn body_error(
    e: io::Error,
    got: u64,
    total: Option<u64>,
    url: &str,
    host: &str,
    options: &FetchOptions,
) -> anyhow::Error {
    let e = ureq::Error::from(e);
    if let ureq::Error::Timeout(t) = e {
        return timeout_error(t, host, options);
    }
    match total {
        Some(total) if got < total => truncated(got, total, url),
        None if matches!(&e, ureq::Error::Io(io) if io.kind() == io::ErrorKind::UnexpectedEof) => {
            anyhow!(
                "download truncated: got {got} bytes from {url}, then the connection closed before the end of the body"
            )
        }
        _ => anyhow!("download from {url} failed after {got} bytes: {e}"),
    }
}

fn truncated(got: u64, total: u64, url: &str) -> anyhow::Error {
    anyhow!(
        "download truncated: got {got} of {total} bytes from {url} (the connection closed early)"
    )
}

/// The error for a body that does not start with the wasm magic number.
fn not_wasm(url: &str, content_type: Option<&str>, head: &[u8]) -> anyhow::Error {
    let what = match content_type {
        Some(t) => t.to_string(),
        None => "a body without a Content-Type".to_string(),
    };
    if head.is_empty() {
        return anyhow!("{url}: not a WebAssembly module (received an empty body, {what})");
    }
    anyhow!(
        "{url}: not a WebAssembly module (received {what} starting with {})",
        describe_head(head)
    )
}

/// The first bytes of a body: as text when they are printable, else in hex.
fn describe_head(head: &[u8]) -> String {
    let text: String = head
        .iter()
        .take_while(|&&b| b.is_ascii_graphic() || b == b' ')
        .map(|&b| b as char)
        .collect();
    let text = text.trim_end();
    if text.len() >= 2 {
        return format!("'{text}'");
    }
    let mut hex = String::from("the bytes");
    for b in head.iter().take(8) {
        let _ = write!(hex, " {b:02x}");
    }
    hex
}

/// The progress bar: hidden, then drawn on stderr once [`PROGRESS_DELAY`] has passed, cleared
/// when dropped (so an error line never lands on a half-drawn bar).
struct Progress {
    bar: ProgressBar,
    reveal: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
}

impl Progress {
    fn new(enabled: bool, host: &str) -> Progress {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        if !enabled {
            return Progress { bar, reveal: None };
        }
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(format!("connecting to {host}"));
        let (tx, rx) = mpsc::channel::<()>();
        let shown = bar.clone();
        let thread = std::thread::Builder::new()
            .name("spate-progress".into())
            .spawn(move || {
                // A message or a hang-up means the work finished first.
                if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(PROGRESS_DELAY) {
                    shown.set_draw_target(ProgressDrawTarget::stderr());
                    shown.enable_steady_tick(Duration::from_millis(100));
                }
            })
            .ok();
        Progress {
            bar,
            reveal: thread.map(|t| (tx, t)),
        }
    }

    fn start_body(&self, total: Option<u64>) {
        if self.reveal.is_none() {
            return;
        }
        let template = match total {
            Some(total) => {
                self.bar.set_length(total);
                "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {eta}"
            }
            None => "{spinner} {msg} {binary_bytes} {binary_bytes_per_sec}",
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            self.bar.set_style(style.progress_chars("=> "));
        }
        self.bar.set_message("downloading");
    }

    fn set_position(&self, bytes: u64) {
        if self.reveal.is_some() {
            self.bar.set_position(bytes);
        }
    }

    fn compiling(&self) {
        if self.reveal.is_some() {
            self.bar.set_message("compiling");
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some((tx, thread)) = self.reveal.take() {
            drop(tx);
            let _ = thread.join();
            self.bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_recognised() {
        assert!(is_url("http://example.com/a.wasm"));
        assert!(is_url("HTTPS://example.com/a.wasm"));
        assert!(!is_url("a.wasm"));
        assert!(!is_url("http"));
        assert!(!is_url("ftp://example.com/a.wasm"));
        assert!(!is_url("./http://x"));
    }

    #[test]
    fn heads_are_described_as_text_or_hex() {
        assert_eq!(
            describe_head(b"<!DOCTYPE html>\n<html>"),
            "'<!DOCTYPE html>'"
        );
        assert_eq!(
            describe_head(&[0x1f, 0x8b, 0x08, 0, 1, 2, 3, 4, 5, 6]),
            "the bytes 1f 8b 08 00 01 02 03 04"
        );
        let e = not_wasm("http://h/x", Some("text/html"), b"<!DOCTYPE html>").to_string();
        assert_eq!(
            e,
            "http://h/x: not a WebAssembly module (received text/html starting with '<!DOCTYPE html>')"
        );
        let e = not_wasm("http://h/x", None, b"").to_string();
        assert!(
            e.contains("empty body, a body without a Content-Type"),
            "{e}"
        );
    }

    #[test]
    fn redirect_errors_name_the_loop() {
        let u = |s: &str| s.parse::<Uri>().unwrap();
        let history = [u("http://h/a"), u("http://h/b"), u("http://h/a")];
        let e = redirect_error(&history, "http://h/a", StatusCode::FOUND, 10).to_string();
        assert_eq!(e, "redirect loop: http://h/a -> http://h/b -> http://h/a");
        let history = ["x", "a", "b", "a", "b", "a"].map(|p| u(&format!("http://h/{p}")));
        let e = redirect_error(&history, "http://h/x", StatusCode::FOUND, 5).to_string();
        assert_eq!(e, "redirect loop: http://h/a -> http://h/b -> http://h/a");
        let history: Vec<Uri> = (0..11).map(|i| u(&format!("http://h/{i}"))).collect();
        let e = redirect_error(&history, "http://h/0", StatusCode::FOUND, 10).to_string();
        assert_eq!(
            e,
            "too many redirects (more than 10) starting at http://h/0"
        );
    }

    #[test]
    fn bad_urls_are_errors() {
        let engine = Engine::default();
        let e = fetch_and_compile(&engine, "ftp://example.com/x.wasm", false)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("only http:// and https://"), "{e}");
        let e = fetch_and_compile(&engine, "http://", false)
            .err()
            .unwrap()
            .to_string();
        assert!(e.starts_with("invalid URL"), "{e}");
    }
}
