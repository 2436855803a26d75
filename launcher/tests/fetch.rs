//! Fetching modules over HTTP: `spate_launcher::fetch` and `spate run URL` against a tiny
//! HTTP/1.1 server in the test process, serving good modules and every kind of bad answer.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use spate::Engine;
use spate_launcher::compile::encode_text;
use spate_launcher::fetch::{FetchOptions, fetch_and_compile, fetch_and_compile_with};

/// A module a runner can start: `_start` does nothing.
const START: &str =
    r#"(module (func (export "_start")) (func (export "answer") (result i32) i32.const 42))"#;

fn start_module() -> Vec<u8> {
    encode_text(START.as_bytes(), None).unwrap()
}

/// A module whose first function body does not validate (`i32.add` on an empty stack), with a
/// second, large body after it: the bytes up to the bad body, then the rest.
fn invalid_module() -> (Vec<u8>, Vec<u8>) {
    let good_body = "(local.set 0 (i32.add (local.get 0) (i32.const 1)))\n".repeat(20_000);
    let text = format!(
        "(module (func $bad (result i32) i32.add) (func $big (param i32) {good_body}) (func (export \"_start\")))"
    );
    let bytes = encode_text(text.as_bytes(), None).unwrap();
    // Cut well past the first body (the module's sections before the code section are small).
    let cut = 200.min(bytes.len());
    (bytes[..cut].to_vec(), bytes[cut..].to_vec())
}

/// The first 100 bytes of a module that declares 1000: a header, then a custom section that
/// runs to byte 1000.
fn truncated_prefix() -> Vec<u8> {
    let mut m = b"\0asm\x01\0\0\0".to_vec();
    // Custom section: id 0, size 989 (LEB128: 0xdd 0x07), name "pad", then padding.
    m.extend_from_slice(&[0, 0xdd, 0x07, 3, b'p', b'a', b'd']);
    m.resize(1000, b'.');
    m.truncate(100);
    m
}

/// Starts the test server; returns its base URL (`http://127.0.0.1:PORT`).
fn server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            thread::spawn(move || {
                let _ = serve(conn);
            });
        }
    });
    base
}

fn serve(mut conn: TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    let head = |status: &str, headers: &[(&str, String)]| {
        let mut h = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
        for (k, v) in headers {
            h.push_str(&format!("{k}: {v}\r\n"));
        }
        h.push_str("\r\n");
        h.into_bytes()
    };
    let full = |status: &str, ctype: &str, body: &[u8]| {
        let mut out = head(
            status,
            &[
                ("Content-Type", ctype.to_string()),
                ("Content-Length", body.len().to_string()),
            ],
        );
        out.extend_from_slice(body);
        out
    };
    match path.as_str() {
        "/ok.wasm" => conn.write_all(&full("200 OK", "application/wasm", &start_module()))?,
        "/chunked.wasm" => {
            conn.write_all(&head(
                "200 OK",
                &[
                    ("Content-Type", "application/wasm".into()),
                    ("Transfer-Encoding", "chunked".into()),
                ],
            ))?;
            for piece in start_module().chunks(7) {
                conn.write_all(format!("{:x}\r\n", piece.len()).as_bytes())?;
                conn.write_all(piece)?;
                conn.write_all(b"\r\n")?;
                conn.flush()?;
            }
            conn.write_all(b"0\r\n\r\n")?;
        }
        "/missing.wasm" => {
            conn.write_all(&full("404 Not Found", "text/plain", b"no such module\n"))?
        }
        "/broken.wasm" => {
            conn.write_all(&full("500 Internal Server Error", "text/plain", b"oops\n"))?
        }
        "/truncated.wasm" => {
            let mut out = head(
                "200 OK",
                &[
                    ("Content-Type", "application/wasm".into()),
                    ("Content-Length", "1000".into()),
                ],
            );
            out.extend_from_slice(&truncated_prefix());
            conn.write_all(&out)?;
            conn.flush()?;
            conn.shutdown(Shutdown::Both)?;
        }
        "/loop" => conn.write_all(&head("302 Found", &[("Location", "/loop".into())]))?,
        "/a" => conn.write_all(&head("302 Found", &[("Location", "/b".into())]))?,
        "/b" => conn.write_all(&head("302 Found", &[("Location", "/a".into())]))?,
        "/moved.wasm" => conn.write_all(&head(
            "301 Moved Permanently",
            &[
                ("Location", "/ok.wasm".into()),
                ("Content-Length", "0".into()),
            ],
        ))?,
        "/page" => conn.write_all(&full(
            "200 OK",
            "text/html; charset=utf-8",
            b"<!DOCTYPE html>\n<html><body>Not here</body></html>\n",
        ))?,
        "/garbage.wasm" => {
            let mut body = b"\0asm\x01\0\0\0".to_vec();
            body.extend_from_slice(&[0xee, 0x05, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06]);
            conn.write_all(&full("200 OK", "application/wasm", &body))?
        }
        "/invalid-then-stall.wasm" => {
            // The bad function body first, then a long pause before the rest: the client must
            // fail on the bad body without waiting for the rest.
            let (first, rest) = invalid_module();
            let mut out = head(
                "200 OK",
                &[
                    ("Content-Type", "application/wasm".into()),
                    ("Content-Length", (first.len() + rest.len()).to_string()),
                ],
            );
            out.extend_from_slice(&first);
            conn.write_all(&out)?;
            conn.flush()?;
            thread::sleep(Duration::from_secs(20));
            conn.write_all(&rest)?;
        }
        "/stall.wasm" => {
            let module = start_module();
            let mut out = head(
                "200 OK",
                &[
                    ("Content-Type", "application/wasm".into()),
                    ("Content-Length", module.len().to_string()),
                ],
            );
            out.extend_from_slice(&module[..8]);
            conn.write_all(&out)?;
            conn.flush()?;
            thread::sleep(Duration::from_secs(20));
        }
        _ => conn.write_all(&full("404 Not Found", "text/plain", b"?\n"))?,
    }
    conn.flush()
}

/// A URL on 127.0.0.1 where nothing listens.
fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/x.wasm")
}

fn fetch_error(url: &str) -> String {
    let engine = Engine::default();
    match fetch_and_compile(&engine, url, false) {
        Ok(_) => panic!("fetching {url} succeeded"),
        Err(e) => format!("{e:#}"),
    }
}

fn assert_one_line(message: &str) {
    assert!(
        !message.trim_end().contains('\n'),
        "more than one line: {message}"
    );
}

#[test]
fn a_module_is_fetched_and_compiled() {
    let base = server();
    let engine = Engine::default();
    for path in ["/ok.wasm", "/chunked.wasm"] {
        let url = format!("{base}{path}");
        let fetched = fetch_and_compile(&engine, &url, false).unwrap();
        assert_eq!(fetched.bytes, start_module().len() as u64);
        assert_eq!(fetched.url, url);
        assert_eq!(fetched.module.num_defined_functions(), 2);
        assert!(fetched.download > Duration::ZERO);
        // The module is usable.
        let mut store = spate::Store::new(&engine, ());
        let instance = spate::Linker::new(&engine)
            .instantiate(&mut store, &fetched.module)
            .unwrap();
        let answer = instance
            .get_typed_func::<(), i32>(&store, "answer")
            .unwrap();
        assert_eq!(answer.call(&mut store, ()).unwrap(), 42);
    }
}

#[test]
fn a_redirect_to_a_module_is_followed() {
    let base = server();
    let fetched =
        fetch_and_compile(&Engine::default(), &format!("{base}/moved.wasm"), false).unwrap();
    assert_eq!(fetched.url, format!("{base}/ok.wasm"));
    assert_eq!(fetched.bytes, start_module().len() as u64);
}

#[test]
fn http_errors_name_the_status_and_url() {
    let base = server();
    let e = fetch_error(&format!("{base}/missing.wasm"));
    assert_eq!(e, format!("HTTP 404 Not Found from {base}/missing.wasm"));
    let e = fetch_error(&format!("{base}/broken.wasm"));
    assert_eq!(
        e,
        format!("HTTP 500 Internal Server Error from {base}/broken.wasm")
    );
}

#[test]
fn a_closed_port_cannot_be_connected() {
    let url = closed_port_url();
    let e = fetch_error(&url);
    let host = url
        .trim_start_matches("http://")
        .trim_end_matches("/x.wasm");
    assert_eq!(e, format!("cannot connect to {host}: connection refused"));
}

#[test]
fn https_to_a_plain_http_server_is_a_tls_error() {
    // A server that answers the TLS client hello in plain HTTP.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    thread::spawn(move || {
        if let Ok((mut conn, _)) = listener.accept() {
            let mut hello = [0u8; 5];
            let _ = std::io::Read::read_exact(&mut conn, &mut hello);
            let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
            thread::sleep(Duration::from_millis(500));
        }
    });
    let e = fetch_error(&format!("https://{host}/ok.wasm"));
    assert!(
        e.starts_with(&format!("cannot connect to {host}: TLS error")),
        "{e}"
    );
    assert_one_line(&e);
}

#[test]
fn an_unknown_host_cannot_be_connected() {
    // `.invalid` never resolves (RFC 2606); with no DNS at all the lookup fails too.
    let e = fetch_error("http://no-such-host.invalid/x.wasm");
    assert!(
        e.starts_with("cannot connect to no-such-host.invalid"),
        "{e}"
    );
    assert_one_line(&e);
}

#[test]
fn a_truncated_download_says_how_much_arrived() {
    let base = server();
    let e = fetch_error(&format!("{base}/truncated.wasm"));
    assert!(
        e.starts_with("download truncated: got 100 of 1000 bytes"),
        "{e}"
    );
    assert_one_line(&e);
}

#[test]
fn redirect_loops_are_reported() {
    let base = server();
    let e = fetch_error(&format!("{base}/loop"));
    assert_eq!(e, format!("redirect loop: {base}/loop -> {base}/loop"));
    let e = fetch_error(&format!("{base}/a"));
    assert_eq!(
        e,
        format!("redirect loop: {base}/a -> {base}/b -> {base}/a")
    );
}

#[test]
fn html_is_not_a_module() {
    let base = server();
    let e = fetch_error(&format!("{base}/page"));
    assert_eq!(
        e,
        format!(
            "{base}/page: not a WebAssembly module (received text/html starting with '<!DOCTYPE html>')"
        )
    );
}

#[test]
fn an_invalid_module_reports_the_engine_error_with_its_offset() {
    let base = server();
    let e = fetch_error(&format!("{base}/garbage.wasm"));
    assert!(e.starts_with(&format!("{base}/garbage.wasm: ")), "{e}");
    assert!(e.contains("(at byte offset 8)"), "{e}");
    assert_one_line(&e);
}

#[test]
fn an_invalid_function_body_stops_the_download_at_once() {
    let base = server();
    let started = Instant::now();
    let e = fetch_error(&format!("{base}/invalid-then-stall.wasm"));
    // The server waits 20 s before sending the rest of the module.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}: {e}",
        started.elapsed()
    );
    assert!(e.contains("at byte offset"), "{e}");
    assert!(e.contains("type mismatch"), "{e}");
}

#[test]
fn a_stalled_download_times_out() {
    let base = server();
    let options = FetchOptions {
        read_idle_timeout: Duration::from_millis(500),
        ..FetchOptions::default()
    };
    let started = Instant::now();
    let e = fetch_and_compile_with(&Engine::default(), &format!("{base}/stall.wasm"), &options)
        .err()
        .map(|e| format!("{e:#}"))
        .expect("a stalled download fails");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let host = base.trim_start_matches("http://");
    assert_eq!(
        e,
        format!("timed out: no data from {host} for 0.5 s (the read-idle timeout)")
    );
}

// ---- the `spate run URL` command ----

fn spate_run(url: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spate"))
        .args(["run", url])
        .output()
        .expect("run spate")
}

#[test]
fn spate_run_fetches_and_runs_a_module() {
    let base = server();
    for path in ["/ok.wasm", "/moved.wasm"] {
        let out = spate_run(&format!("{base}{path}"));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn spate_run_stats_include_the_download_figures() {
    let base = server();
    let url = format!("{base}/ok.wasm");
    let out = Command::new(env!("CARGO_BIN_EXE_spate"))
        .args(["run", "--stats", &url])
        .output()
        .expect("run spate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("download: "))
        .unwrap_or_else(|| panic!("no download line: {stderr}"));
    let expected = format!("download: {} bytes from {url} in ", start_module().len());
    assert!(line.starts_with(&expected), "{line}");
    assert!(line.contains("; compile after the last byte: "), "{line}");
}

#[test]
fn spate_run_reports_bad_downloads_in_one_line() {
    let base = server();
    let cases = [
        (format!("{base}/missing.wasm"), "HTTP 404 Not Found"),
        (
            format!("{base}/broken.wasm"),
            "HTTP 500 Internal Server Error",
        ),
        (
            format!("{base}/truncated.wasm"),
            "download truncated: got 100 of 1000 bytes",
        ),
        (format!("{base}/loop"), "redirect loop"),
        (
            format!("{base}/page"),
            "not a WebAssembly module (received text/html",
        ),
        (format!("{base}/garbage.wasm"), "at byte offset 8"),
        (closed_port_url(), "connection refused"),
    ];
    for (url, expected) in cases {
        let out = spate_run(&url);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && out.status.code().is_some(),
            "{url}: {:?}",
            out.status
        );
        assert!(stderr.contains(expected), "{url}: {stderr}");
        assert!(!stderr.contains("panicked"), "{url}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{url}: {stderr}");
        assert!(
            out.stdout.is_empty(),
            "{url}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
