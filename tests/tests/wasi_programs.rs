//! The C programs in `programs/wasi/` (built by `programs/wasi/build.sh` with clang and
//! wasi-libc), run through the embedding API with `spate-wasi`: output captured and compared
//! with the `.expected` files, exit statuses, traps, the sandbox. Plus a few hand-written
//! modules for what C programs do not reach: bad guest pointers and a module without memory.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use spate::{Config, Engine, Linker, Module, Store, TierMode};
use spate_wasi::{I32Exit, WasiCtx, WasiCtxBuilder};

fn programs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("programs/wasi")
}

fn expected(name: &str) -> String {
    let path = programs().join(format!("{name}.expected"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A scratch directory, removed at the end of the test.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("spate-wasi-programs-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `Write` into a buffer the test keeps a handle to.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What a run produced.
struct Ran {
    stdout: String,
    stderr: String,
    /// The exit status, or the error that ended the run otherwise (a trap).
    status: Result<i32, anyhow::Error>,
}

struct Program<'a> {
    name: &'a str,
    args: Vec<&'a str>,
    env: Vec<(&'a str, &'a str)>,
    dir: Option<&'a Path>,
    stdin: &'static [u8],
    tier: TierMode,
}

impl<'a> Program<'a> {
    fn new(name: &'a str) -> Self {
        Program {
            name,
            args: Vec::new(),
            env: Vec::new(),
            dir: None,
            stdin: b"",
            tier: TierMode::Tiered,
        }
    }

    fn run(&self) -> Ran {
        let mut config = Config::new();
        config.tier(self.tier);
        if self.tier == TierMode::Tiered {
            config.tier_up_threshold(0);
        }
        let engine = Engine::new(&config).unwrap();
        let wasm = std::fs::read(programs().join(format!("{}.wasm", self.name))).unwrap();
        let module = Module::new(&engine, &wasm).unwrap();
        let (stdout, stderr) = (Captured::default(), Captured::default());
        let mut builder = WasiCtxBuilder::new();
        builder
            .args(
                std::iter::once(format!("{}.wasm", self.name))
                    .chain(self.args.iter().map(|a| a.to_string())),
            )
            .stdin(self.stdin)
            .stdout(stdout.clone())
            .stderr(stderr.clone());
        for (k, v) in &self.env {
            builder.env(k, v);
        }
        if let Some(dir) = self.dir {
            builder.preopened_dir(dir, ".").unwrap();
        }
        let status = run_start(&engine, &module, builder.build());
        engine.stop_tier_ups(std::time::Duration::from_secs(30));
        Ran {
            stdout: stdout.text(),
            stderr: stderr.text(),
            status,
        }
    }
}

/// Instantiates `module` with WASI and calls `_start`: the exit status, or the error.
fn run_start(engine: &Engine, module: &Module, wasi: WasiCtx) -> Result<i32, anyhow::Error> {
    let mut linker = Linker::new(engine);
    spate_wasi::add_to_linker(&mut linker, |ctx| ctx)?;
    let mut store = Store::new(engine, wasi);
    let instance = linker.instantiate(&mut store, module)?;
    let start = instance.get_typed_func::<(), ()>(&store, "_start")?;
    match start.call(&mut store, ()) {
        Ok(()) => Ok(0),
        Err(e) => match e.downcast_ref::<I32Exit>() {
            Some(exit) => Ok(exit.0),
            None => Err(e),
        },
    }
}

fn status(ran: &Ran) -> i32 {
    match &ran.status {
        Ok(code) => *code,
        Err(e) => panic!("the program failed: {e:#}\nstdout:\n{}", ran.stdout),
    }
}

#[test]
fn hello_prints_on_stdout_and_stderr() {
    let ran = Program::new("hello").run();
    assert_eq!(status(&ran), 0);
    assert_eq!(ran.stdout, expected("hello"));
    assert_eq!(ran.stderr, "a line on stderr\n");
}

#[test]
fn exit_status_comes_back_as_i32_exit() {
    let ran = Program::new("exit7").run();
    assert_eq!(status(&ran), 7);
    assert_eq!(ran.stdout, expected("exit7"));
}

#[test]
fn a_trap_ends_the_run_with_its_location() {
    for (args, code, what) in [
        (vec![], spate::Trap::UnreachableCodeReached, "unreachable"),
        (
            vec!["divide"],
            spate::Trap::IntegerDivisionByZero,
            "integer divide by zero",
        ),
    ] {
        let mut program = Program::new("trap");
        program.args = args;
        let ran = program.run();
        let err = ran.status.expect_err("the program should trap");
        assert_eq!(err.downcast_ref::<spate::Trap>(), Some(&code), "{err:#}");
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("wasm trap: {what} (in wasm function ")),
            "{msg}"
        );
        assert_eq!(ran.stdout, "about to trap\n");
    }
}

#[test]
fn stdin_reaches_the_program() {
    let mut program = Program::new("upper");
    program.stdin = b"hello\nworld";
    let ran = program.run();
    assert_eq!(status(&ran), 0);
    assert_eq!(ran.stdout, "HELLO\nWORLD");
    assert_eq!(ran.stderr, "11 bytes\n");
}

#[test]
fn arguments_and_environment_reach_the_program() {
    let mut program = Program::new("args");
    program.args = vec!["one", "two words", "--three"];
    program.env = vec![("GREETING", "hello"), ("LANG", "C")];
    let ran = program.run();
    assert_eq!(status(&ran), 0);
    assert_eq!(ran.stdout, expected("args"));
}

#[test]
fn computation_gives_the_known_answer_on_every_tier() {
    for tier in [TierMode::Baseline, TierMode::Optimized, TierMode::Tiered] {
        let mut program = Program::new("compute");
        program.tier = tier;
        let ran = program.run();
        assert_eq!(status(&ran), 0, "{tier:?}");
        assert_eq!(ran.stdout, expected("compute"), "{tier:?}");
    }
}

#[test]
fn clocks_and_sleeps_behave() {
    let ran = Program::new("clocks").run();
    assert_eq!(status(&ran), 0);
    assert_eq!(ran.stdout, expected("clocks"));
}

#[test]
fn file_io_in_a_preopened_directory() {
    let scratch = Scratch::new("files");
    let mut program = Program::new("files");
    program.dir = Some(&scratch.0);
    let ran = program.run();
    assert_eq!(status(&ran), 0, "{}", ran.stdout);
    assert_eq!(ran.stdout, expected("files"));
    // It cleans up after itself.
    assert_eq!(std::fs::read_dir(&scratch.0).unwrap().count(), 0);
}

#[test]
fn the_sandbox_holds() {
    let scratch = Scratch::new("sandbox");
    let boxed = scratch.0.join("box");
    let outside = scratch.0.join("outside");
    std::fs::create_dir(&boxed).unwrap();
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("passwd"), "not for the guest").unwrap();
    std::os::unix::fs::symlink(&outside, boxed.join("escape")).unwrap();
    std::os::unix::fs::symlink(outside.join("passwd"), boxed.join("escape_file")).unwrap();
    let mut program = Program::new("sandbox");
    program.dir = Some(&boxed);
    let ran = program.run();
    assert_eq!(status(&ran), 0);
    assert_eq!(ran.stdout, expected("sandbox"));
    assert!(!ran.stdout.contains("OPENED"));
    assert!(!scratch.0.join("outside_dir").exists());
    assert!(
        boxed.join("abs_link").symlink_metadata().is_err(),
        "no link was made"
    );
}

/// Runs a text module's `_start` with WASI and captured stdout.
fn run_wat(wat: &str) -> (Result<i32, anyhow::Error>, String) {
    let engine = Engine::default();
    let wasm = spate_launcher::compile::encode_text(wat.as_bytes(), None).unwrap();
    let module = Module::new(&engine, &wasm).unwrap();
    let out = Captured::default();
    let wasi = WasiCtxBuilder::new().stdout(out.clone()).build();
    (run_start(&engine, &module, wasi), out.text())
}

#[test]
fn bad_guest_pointers_are_errors_not_crashes() {
    // fd_write with an iovec list past the end of memory, then one whose buffer runs past
    // it, then an unaligned but valid one; each errno is the exit status's next byte.
    let (status, out) = run_wat(
        r#"(module
          (import "wasi_snapshot_preview1" "fd_write"
            (func $fd_write (param i32 i32 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
          (memory (export "memory") 1)
          (data (i32.const 101) "hi\n")
          (func (export "_start")
            (local $a i32) (local $b i32) (local $c i32)
            (local.set $a (call $fd_write (i32.const 1) (i32.const 65532) (i32.const 1) (i32.const 0)))
            (i32.store (i32.const 203) (i32.const 65530))
            (i32.store (i32.const 207) (i32.const 100))
            (local.set $b (call $fd_write (i32.const 1) (i32.const 203) (i32.const 1) (i32.const 0)))
            (i32.store (i32.const 203) (i32.const 101))
            (i32.store (i32.const 207) (i32.const 3))
            (local.set $c (call $fd_write (i32.const 1) (i32.const 203) (i32.const 1) (i32.const 301)))
            (call $exit (i32.or (i32.or (local.get $a) (i32.shl (local.get $b) (i32.const 8)))
                                (i32.shl (i32.add (local.get $c) (i32.load (i32.const 301))) (i32.const 16))))))"#,
    );
    let fault = 21;
    assert_eq!(status.unwrap(), fault | fault << 8 | 3 << 16);
    assert_eq!(out, "hi\n");
}

#[test]
fn a_module_without_memory_gets_an_error() {
    let (status, _) = run_wat(
        r#"(module
          (import "wasi_snapshot_preview1" "sched_yield" (func $y (result i32)))
          (func (export "_start") (drop (call $y))))"#,
    );
    let err = status.unwrap_err();
    assert!(format!("{err:#}").contains("exports no memory"), "{err:#}");
}

#[test]
fn every_wasi_function_is_defined() {
    let engine = Engine::default();
    let mut linker: Linker<WasiCtx> = Linker::new(&engine);
    spate_wasi::add_to_linker(&mut linker, |ctx| ctx).unwrap();
    let mut store = Store::new(&engine, WasiCtxBuilder::new().build());
    for name in spate_wasi::FUNCTIONS {
        assert!(
            linker.get(&mut store, spate_wasi::MODULE, name).is_some(),
            "{name} is missing"
        );
    }
}
