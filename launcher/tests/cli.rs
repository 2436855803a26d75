//! The `spate` command as a user runs it: output format, exit statuses, help.

use std::path::PathBuf;
use std::process::{Command, Output};

fn spate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spate"))
        .args(args)
        .output()
        .expect("run spate")
}

/// A scratch directory for this test process.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("spate-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const GOOD: &str = r#"
(module (func (export "one") (result i32) i32.const 1))
(assert_return (invoke "one") (i32.const 1))
"#;

const BAD: &str = r#"
(module (func (export "one") (result i32) i32.const 1))
(assert_return (invoke "one") (i32.const 2))
(assert_trap (invoke "one") "unreachable")
"#;

#[test]
fn wast_ends_with_the_totals_line_and_fails_on_failures() {
    let dir = scratch("wast");
    let good = dir.join("good.wast");
    let bad = dir.join("bad.wast");
    std::fs::write(&good, GOOD).unwrap();
    std::fs::write(&bad, BAD).unwrap();

    let out = spate(&["wast", good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().last(), Some("2 passed, 0 failed"));

    let out = spate(&["wast", good.to_str().unwrap(), bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert_eq!(text.lines().last(), Some("3 passed, 2 failed"), "{text}");
    assert!(
        text.contains("bad.wast:3:2: assert_return: expected i32:2, got i32:1"),
        "{text}"
    );
    assert!(
        text.contains("bad.wast:4:2: assert_trap: expected trap `unreachable`"),
        "{text}"
    );

    // A directory runs the scripts inside it.
    let out = spate(&["wast", dir.to_str().unwrap()]);
    assert_eq!(stdout(&out).lines().last(), Some("3 passed, 2 failed"));

    // A missing script is a failure of its own; the others still run.
    let missing = dir.join("missing.wast");
    let out = spate(&["wast", missing.to_str().unwrap(), good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out).lines().last(), Some("2 passed, 1 failed"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn compile_reports_bad_modules_without_crashing() {
    let dir = scratch("compile");
    let cases: [(&str, &[u8]); 6] = [
        ("empty.wasm", b""),
        ("truncated.wasm", b"\0asm\x01\0\0\0\x01\x05\x01\x60"),
        ("version.wasm", b"\0asm\x02\0\0\0"),
        ("magic.wasm", b"\0ASM\x01\0\0\0"),
        // A function returning an i64 where its type says i32.
        ("invalid.wasm", b"\0asm\x01\0\0\0\x01\x05\x01\x60\0\x01\x7f\x03\x02\x01\0\x0a\x06\x01\x04\0\x42\x01\x0b"),
        ("text.wat", b"(module (func (result i32) i32.konst 1))"),
    ];
    for (name, bytes) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = spate(&["compile", path.to_str().unwrap()]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(err.starts_with("error: "), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
    }

    let path = dir.join("ok.wasm");
    std::fs::write(
        &path,
        b"\0asm\x01\0\0\0\x01\x05\x01\x60\0\x01\x7f\x03\x02\x01\0\x0a\x06\x01\x04\0\x41\x01\x0b",
    )
    .unwrap();
    let out = spate(&["compile", "--tier", "baseline", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("size:          27 bytes"), "{text}");
    assert!(
        text.contains("functions:     1 defined, 0 imported"),
        "{text}"
    );
    assert!(text.contains("compile time:"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs `spate compile ARGS --stats PATH`, checks that it succeeds and that the `--stats` line
/// of the tier `compiled_by` (on stderr) counts one function; returns the output.
fn compiles_one_function(path: &std::path::Path, args: &[&str], compiled_by: &str) -> Output {
    let path = path.to_str().unwrap();
    let out = spate(&[&["compile"], args, &["--stats", path]].concat());
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    let err = stderr(&out);
    let line = err
        .lines()
        .find(|l| l.starts_with(compiled_by))
        .unwrap_or_else(|| panic!("{args:?}: no {compiled_by} line in\n{err}"));
    assert_eq!(
        line.split_whitespace().nth(1),
        Some("1"),
        "{args:?}: {line}"
    );
    out
}

/// Checks that `spate compile FLAG VALUE PATH` is a usage error naming `choices`.
fn rejects_value(path: &std::path::Path, flag: &str, value: &str, choices: &str) {
    let out = spate(&["compile", flag, value, path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!("possible values: {choices}")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn every_tier_compiles_and_reports_its_figures() {
    let dir = scratch("tiers");
    let path = dir.join("answer.wasm");
    // (func (result i32) i32.const 1)
    std::fs::write(
        &path,
        b"\0asm\x01\0\0\0\x01\x05\x01\x60\0\x01\x7f\x03\x02\x01\0\x0a\x06\x01\x04\0\x41\x01\x0b",
    )
    .unwrap();
    for (tier, compiled_by) in [
        ("baseline", "baseline"),
        ("optimized", "optimized"),
        ("tiered", "baseline"),
    ] {
        // `--stats` goes to stderr: one line per tier, the compiling tier with one function.
        let out = compiles_one_function(&path, &["--tier", tier], compiled_by);
        assert!(stdout(&out).contains(&format!("valid (tier {tier})")));
        let err = stderr(&out);
        assert!(err.contains("tier-up requests 0"), "{tier}: {err}");
    }
    rejects_value(&path, "--tier", "fastest", "baseline, optimized, tiered");
    // Every LLVM pipeline compiles it; an unknown one is a usage error naming the choices.
    for pipeline in ["lean", "o2", "o3"] {
        let args = ["--tier", "optimized", "--llvm-pipeline", pipeline];
        compiles_one_function(&path, &args, "optimized");
    }
    rejects_value(&path, "--llvm-pipeline", "o1", "lean, o2, o3");
    // Every baseline register allocator compiles it, and `--stats` says which one did (the
    // function has no loop, so `loop-nests` gives it the single-pass allocator); an unknown
    // one is a usage error.
    for (regalloc, counts) in [
        ("single-pass", "single-pass 1 functions, backtracking 0"),
        ("loop-nests", "single-pass 1 functions, backtracking 0"),
        ("backtracking", "single-pass 0 functions, backtracking 1"),
    ] {
        let args = ["--tier", "baseline", "--baseline-regalloc", regalloc];
        let out = compiles_one_function(&path, &args, "baseline");
        let line = format!("baseline register allocators: {counts}");
        assert!(stderr(&out).contains(&line), "{regalloc}: {}", stderr(&out));
    }
    rejects_value(
        &path,
        "--baseline-regalloc",
        "linear-scan",
        "single-pass, loop-nests, backtracking",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn help_explains_every_flag_with_an_example() {
    for command in ["wast", "compile"] {
        let out = spate(&[command, "--help"]);
        assert_eq!(out.status.code(), Some(0));
        let text = stdout(&out);
        for flag in [
            "--tier",
            "--compile-threads",
            "--tier-up-threshold",
            "--tier-up-threads",
            "--llvm-pipeline",
            "--baseline-regalloc",
            "--stats",
        ] {
            assert!(text.contains(flag), "{command}: {text}");
        }
        // Every flag's own paragraph (help aside) carries an example.
        let flags = text.matches("\n      --").count() + text.matches("\n  -v, --").count();
        let examples = text.matches("Example:").count();
        assert!(
            examples >= flags - 1,
            "{command}: {flags} flags, {examples} examples\n{text}"
        );
    }
    let out = spate(&["wast", "--help"]);
    assert!(stdout(&out).contains("--verbose"));
    let out = spate(&["--help"]);
    assert!(stdout(&out).contains("Examples:"));
}
