//! `spate run` as a user runs it, on the C programs in `tests/programs/wasi/`: output, exit
//! statuses, traps, errors, and what reaches the guest (arguments, environment, directories).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn spate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spate"))
        .args(args)
        .env("SPATE_TEST_HOST_VAR", "host")
        .output()
        .expect("run spate")
}

fn program(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/programs/wasi")
        .join(format!("{name}.wasm"));
    path.to_str().unwrap().to_string()
}

fn expected(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/programs/wasi")
        .join(format!("{name}.expected"));
    std::fs::read_to_string(path).unwrap()
}

/// A scratch directory, removed at the end of the test.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("spate-run-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn hello_runs_and_prints() {
    let out = spate(&["run", &program("hello")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), expected("hello"));
    assert_eq!(stderr(&out), "a line on stderr\n");
}

#[test]
fn stdin_is_the_hosts() {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_spate"))
        .args(["run", &program("upper")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"piped\ninput\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "PIPED\nINPUT\n");
    assert_eq!(stderr(&out), "12 bytes\n");
}

#[test]
fn the_guest_exit_status_is_the_command_status() {
    let out = spate(&["run", &program("exit7")]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert_eq!(stdout(&out), expected("exit7"));
    assert_eq!(stderr(&out), "");
}

#[test]
fn a_trap_exits_134_with_one_error_line() {
    for (args, what) in [
        (vec![], "unreachable"),
        (vec!["--", "divide"], "integer divide by zero"),
    ] {
        let trap = program("trap");
        let mut argv = vec!["run", "--tier", "baseline", trap.as_str()];
        argv.extend(args);
        let out = spate(&argv);
        assert_eq!(out.status.code(), Some(134), "{}", stderr(&out));
        assert_eq!(stdout(&out), "about to trap\n");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with(&format!("error: wasm trap: {what} (in wasm function ")),
            "{err}"
        );
        assert!(err.contains("at byte offset 0x"), "{err}");
    }
}

#[test]
fn arguments_environment_and_directories_reach_the_guest() {
    let out = spate(&[
        "run",
        "--env",
        "GREETING=hello",
        "--env",
        "LANG=C",
        &program("args"),
        "one",
        "two words",
        "--three",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), expected("args"));
    // The host's environment only on request.
    assert!(!stdout(&out).contains("SPATE_TEST_HOST_VAR"));
    let out = spate(&["run", "--inherit-env", &program("args")]);
    assert!(
        stdout(&out).contains("env: SPATE_TEST_HOST_VAR=host"),
        "{}",
        stdout(&out)
    );

    let scratch = Scratch::new("files");
    let dir = format!("{}::.", scratch.path());
    let out = spate(&["run", "--dir", &dir, &program("files")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), expected("files"));

    // `--dir HOST` alone: the guest knows it by the host's path.
    let out = spate(&[
        "run",
        "--dir",
        scratch.path(),
        &program("files"),
        scratch.path(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), expected("files"));
}

#[test]
fn the_sandbox_holds_through_the_command() {
    let scratch = Scratch::new("sandbox");
    let boxed = scratch.0.join("box");
    let outside = scratch.0.join("outside");
    std::fs::create_dir(&boxed).unwrap();
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("passwd"), "not for the guest").unwrap();
    std::os::unix::fs::symlink(&outside, boxed.join("escape")).unwrap();
    std::os::unix::fs::symlink(outside.join("passwd"), boxed.join("escape_file")).unwrap();
    let dir = format!("{}::.", boxed.to_str().unwrap());
    let out = spate(&["run", "--dir", &dir, &program("sandbox")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), expected("sandbox"));
}

#[test]
fn a_missing_import_is_one_line_and_status_1() {
    let scratch = Scratch::new("import");
    let wat = scratch.0.join("needs.wat");
    std::fs::write(
        &wat,
        r#"(module (import "env" "missing" (func)) (memory (export "memory") 1)
             (func (export "_start")))"#,
    )
    .unwrap();
    let out = spate(&["run", wat.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: cannot instantiate needs.wat: unknown import: `env::missing`"),
        "{err}"
    );
}

#[test]
fn a_missing_file_is_one_line_and_status_1() {
    let out = spate(&["run", "/nonexistent/dir/app.wasm"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: cannot open /nonexistent/dir/app.wasm: No such file"),
        "{err}"
    );
    // A missing preopened directory too.
    let out = spate(&["run", "--dir", "/nonexistent/dir", &program("hello")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("error: cannot open directory /nonexistent/dir"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn invalid_modules_and_missing_start_are_errors() {
    let scratch = Scratch::new("invalid");
    let bad = scratch.0.join("bad.wasm");
    std::fs::write(&bad, b"\0asm\x01\0\0\0\x01\xff").unwrap();
    let out = spate(&["run", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("error: "), "{}", stderr(&out));

    let lib = scratch.0.join("lib.wat");
    std::fs::write(
        &lib,
        r#"(module (func (export "add") (param i32 i32) (result i32)
             (i32.add (local.get 0) (local.get 1))))"#,
    )
    .unwrap();
    let out = spate(&["run", lib.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("exports no function `_start`"),
        "{}",
        stderr(&out)
    );
    let out = spate(&[
        "run",
        "--invoke",
        "add",
        lib.to_str().unwrap(),
        "--",
        "40",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "42\n");
}

#[test]
fn stats_and_tiers_apply_to_run() {
    let out = spate(&[
        "run",
        "--tier",
        "tiered",
        "--tier-up-threshold",
        "0",
        "--stats",
        &program("compute"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), expected("compute"));
    assert!(stderr(&out).contains("baseline"), "{}", stderr(&out));
}

#[test]
fn run_help_explains_the_flags() {
    let out = spate(&["help", "run"]);
    assert_eq!(out.status.code(), Some(0));
    let help = stdout(&out);
    for flag in [
        "--dir",
        "--env",
        "--inherit-env",
        "--invoke",
        "--tier",
        "--stats",
        "134",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}
