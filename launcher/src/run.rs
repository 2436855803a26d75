//! `spate run`: run a WASI command module (its `_start`, or another export with `--invoke`)
//! from a file, binary or text, or from an `http(s)://` URL.
//!
//! The guest gets the host's stdin, stdout and stderr (output passes straight through), the
//! arguments after the module, the environment variables given with `--env` (the host's only
//! with `--inherit-env`), and the directories given with `--dir`; nothing else of the host.
//!
//! How a run ends, as [`Outcome`]: the guest's exit status (`proc_exit`'s, or 0 when `_start`
//! returns); a trap (the command prints `error: wasm trap: ...` and exits with 134, the status
//! of a process killed by `SIGABRT`, as a native program that traps would); or a failure
//! before or around the run (unreadable file, invalid module, missing import: exit 1).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use spate::{Engine, Linker, Module, Store, Val, ValType};
use spate_wasi::{I32Exit, WasiCtx, WasiCtxBuilder};

/// Exit status of a run that trapped (128 + SIGABRT).
pub const EXIT_TRAP: u8 = 134;

/// What the guest gets, besides its standard streams.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Directories to preopen: (host path, guest name).
    pub dirs: Vec<(PathBuf, String)>,
    /// Environment variables, in order.
    pub env: Vec<(String, String)>,
    /// Pass the host's environment too (before `env`, which wins).
    pub inherit_env: bool,
    /// Arguments after `argv[0]` (for `--invoke`: the function's arguments).
    pub args: Vec<String>,
    /// Call this export instead of `_start`.
    pub invoke: Option<String>,
    /// Show download progress for a URL (when stderr is a terminal).
    pub progress: bool,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The guest finished with this exit status (`proc_exit`'s, or 0 when `_start` returned).
    Exited(i32),
    /// The guest trapped; the message is the engine's (`wasm trap: ...`, with the function and
    /// byte offset).
    Trapped(String),
    /// The module could not be loaded, compiled, linked or called.
    Failed(String),
}

impl Outcome {
    /// The process exit status for this outcome (the low 8 bits of a guest's status).
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Exited(code) => (*code & 0xff) as u8,
            Outcome::Trapped(_) => EXIT_TRAP,
            Outcome::Failed(_) => 1,
        }
    }
}

/// Parses a `--dir` value: `HOST` or `HOST::GUEST` (the guest name defaults to `HOST`).
pub fn parse_dir(spec: &str) -> Result<(PathBuf, String), String> {
    let (host, guest) = match spec.split_once("::") {
        Some((h, g)) => (h, g),
        None => (spec, spec),
    };
    if host.is_empty() || guest.is_empty() {
        return Err(format!("expected HOST or HOST::GUEST, got `{spec}`"));
    }
    Ok((PathBuf::from(host), guest.to_string()))
}

/// Parses a `--env` value: `KEY=VALUE`.
pub fn parse_env(spec: &str) -> Result<(String, String), String> {
    match spec.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got `{spec}`")),
    }
}

/// The guest's `argv[0]` for a module source: the file name (or the URL's last segment).
pub fn program_name(source: &str) -> String {
    let trimmed = source.split(['?', '#']).next().unwrap_or(source);
    Path::new(trimmed)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| source.to_string())
}

/// Loads and compiles the module named by `source`: a file path, or an `http://`/`https://`
/// URL.
pub fn load_module(engine: &Engine, source: &str, progress: bool) -> Result<Module> {
    // ---- URL sources: fetched and compiled as they arrive (see `crate::fetch`). ----
    if crate::fetch::is_url(source) {
        return Ok(crate::fetch::fetch_and_compile(engine, source, progress)?.module);
    }
    // ---- Local files. ----
    load_file(engine, Path::new(source))
}

/// Loads a module file: a binary is streamed through the engine's incremental compiler
/// ([`Module::from_reader`], so compilation overlaps reading); anything not starting with a NUL
/// byte is WebAssembly text.
pub fn load_file(engine: &Engine, path: &Path) -> Result<Module> {
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let read_err = || format!("cannot read {}", path.display());
    let mut head = [0u8; 1];
    let n = crate::compile::read_fully(&mut file, &mut head).with_context(read_err)?;
    if n == 1 && head[0] != 0 {
        let mut text = head.to_vec();
        file.read_to_end(&mut text).with_context(read_err)?;
        let binary = crate::compile::encode_text(&text, Some(path))?;
        return Module::new(engine, &binary).with_context(|| path.display().to_string());
    }
    Module::from_reader(engine, (&head[..n]).chain(file))
        .with_context(|| path.display().to_string())
}

/// The WASI context for a run.
fn wasi_ctx(argv0: &str, opts: &RunOptions) -> Result<WasiCtx> {
    let mut b = WasiCtxBuilder::new();
    b.args(std::iter::once(argv0.to_string()).chain(opts.args.iter().cloned()));
    if opts.inherit_env {
        b.inherit_env();
    }
    for (k, v) in &opts.env {
        b.env(k, v);
    }
    b.inherit_stdio();
    for (host, guest) in &opts.dirs {
        b.preopened_dir(host, guest)?;
    }
    Ok(b.build())
}

/// Loads `source` and runs it: see the [module documentation](self).
pub fn run(engine: &Engine, source: &str, opts: &RunOptions) -> Outcome {
    run_reporting(engine, source, opts).0
}

/// [`run`], also returning the download figures when `source` is a URL (for `--stats`).
pub fn run_reporting(
    engine: &Engine,
    source: &str,
    opts: &RunOptions,
) -> (Outcome, Option<crate::fetch::DownloadStats>) {
    let (module, download) = if crate::fetch::is_url(source) {
        match crate::fetch::fetch_and_compile(engine, source, opts.progress) {
            Ok(fetched) => {
                let stats = fetched.stats();
                (fetched.module, Some(stats))
            }
            Err(e) => return (Outcome::Failed(format!("{e:#}")), None),
        }
    } else {
        match load_file(engine, Path::new(source)) {
            Ok(m) => (m, None),
            Err(e) => return (Outcome::Failed(format!("{e:#}")), None),
        }
    };
    (
        run_module(engine, &module, &program_name(source), opts),
        download,
    )
}

/// Runs a compiled module with `argv0` as its program name.
pub fn run_module(engine: &Engine, module: &Module, argv0: &str, opts: &RunOptions) -> Outcome {
    let wasi = match wasi_ctx(argv0, opts) {
        Ok(w) => w,
        Err(e) => return Outcome::Failed(format!("{e:#}")),
    };
    let mut linker = Linker::new(engine);
    if let Err(e) = spate_wasi::add_to_linker(&mut linker, |ctx| ctx) {
        return Outcome::Failed(format!("cannot define the WASI functions: {e:#}"));
    }
    let mut store = Store::new(engine, wasi);
    let instance = match linker.instantiate(&mut store, module) {
        Ok(i) => i,
        Err(e) => return ended(e, |e| format!("cannot instantiate {argv0}: {e:#}")),
    };
    let name = opts.invoke.as_deref().unwrap_or("_start");
    let Some(func) = instance.get_func(&mut store, name) else {
        let hint = if opts.invoke.is_none() {
            " (it is not a WASI command; use --invoke NAME to call another export)"
        } else {
            ""
        };
        return Outcome::Failed(format!("{argv0} exports no function `{name}`{hint}"));
    };
    // A reactor is initialised before its exports are called.
    if opts.invoke.is_some()
        && let Some(init) = instance.get_func(&mut store, "_initialize")
        && let Err(e) = init.call(&mut store, &[], &mut [])
    {
        return ended(e, |e| format!("{argv0}: _initialize failed: {e:#}"));
    }
    let ty = func.ty(&store);
    let params = if opts.invoke.is_some() {
        match parse_params(ty.params(), &opts.args) {
            Ok(p) => p,
            Err(e) => return Outcome::Failed(format!("--invoke {name}: {e:#}")),
        }
    } else if !ty.params().is_empty() || !ty.results().is_empty() {
        return Outcome::Failed(format!(
            "{argv0}: `_start` has type {ty}, expected [] -> []"
        ));
    } else {
        Vec::new()
    };
    let mut results: Vec<Val> = ty.results().iter().map(|t| Val::default_for(*t)).collect();
    match func.call(&mut store, &params, &mut results) {
        Ok(()) => {
            for r in &results {
                println!("{}", show(r));
            }
            Outcome::Exited(0)
        }
        Err(e) => ended(e, |e| format!("{argv0}: {e:#}")),
    }
}

/// The outcome of an error from the guest: its exit, a trap, or `other`'s message.
fn ended(e: anyhow::Error, other: impl FnOnce(&anyhow::Error) -> String) -> Outcome {
    if let Some(exit) = e.downcast_ref::<I32Exit>() {
        Outcome::Exited(exit.0)
    } else if e.downcast_ref::<spate::Trap>().is_some() {
        // The outermost message is the engine's `wasm trap: CODE (in wasm function F at byte
        // offset X)`.
        Outcome::Trapped(e.to_string())
    } else {
        Outcome::Failed(other(&e))
    }
}

/// `--invoke` arguments from their text, by the function's parameter types.
fn parse_params(types: &[ValType], args: &[String]) -> Result<Vec<Val>> {
    if types.len() != args.len() {
        bail!(
            "the function takes {} arguments, {} given",
            types.len(),
            args.len()
        );
    }
    types
        .iter()
        .zip(args)
        .map(|(t, a)| {
            let bad = || anyhow!("`{a}` is not a valid {t}");
            Ok(match t {
                ValType::I32 => Val::I32(
                    a.parse::<i32>()
                        .or_else(|_| a.parse::<u32>().map(|v| v as i32))
                        .map_err(|_| bad())?,
                ),
                ValType::I64 => Val::I64(
                    a.parse::<i64>()
                        .or_else(|_| a.parse::<u64>().map(|v| v as i64))
                        .map_err(|_| bad())?,
                ),
                ValType::F32 => Val::F32(a.parse::<f32>().map_err(|_| bad())?.to_bits()),
                ValType::F64 => Val::F64(a.parse::<f64>().map_err(|_| bad())?.to_bits()),
                other => bail!("cannot pass a {other} from the command line"),
            })
        })
        .collect()
}

/// A result value as `--invoke` prints it.
fn show(v: &Val) -> String {
    match v {
        Val::I32(x) => x.to_string(),
        Val::I64(x) => x.to_string(),
        Val::F32(x) => f32::from_bits(*x).to_string(),
        Val::F64(x) => f64::from_bits(*x).to_string(),
        Val::V128(x) => format!("{x:#034x}"),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_and_env_specs_parse() {
        assert_eq!(
            parse_dir("data"),
            Ok((PathBuf::from("data"), "data".into()))
        );
        assert_eq!(
            parse_dir("/tmp/x::/sandbox"),
            Ok((PathBuf::from("/tmp/x"), "/sandbox".into()))
        );
        assert!(parse_dir("a::").is_err());
        assert_eq!(parse_env("K=V=W"), Ok(("K".into(), "V=W".into())));
        assert_eq!(parse_env("K="), Ok(("K".into(), String::new())));
        assert!(parse_env("=V").is_err());
        assert!(parse_env("K").is_err());
    }

    #[test]
    fn program_names_come_from_paths_and_urls() {
        assert_eq!(program_name("dir/app.wasm"), "app.wasm");
        assert_eq!(
            program_name("https://example.org/m/app.wasm?x=1"),
            "app.wasm"
        );
    }

    #[test]
    fn exit_codes() {
        assert_eq!(Outcome::Exited(7).exit_code(), 7);
        assert_eq!(Outcome::Exited(256 + 3).exit_code(), 3);
        assert_eq!(Outcome::Trapped(String::new()).exit_code(), 134);
        assert_eq!(Outcome::Failed(String::new()).exit_code(), 1);
    }

    #[test]
    fn invoke_calls_an_export_with_arguments() {
        let engine = Engine::default();
        let wasm = crate::compile::encode_text(
            br#"(module (memory (export "memory") 1)
                 (func (export "add") (param i32 i64) (result i64)
                   (i64.add (i64.extend_i32_s (local.get 0)) (local.get 1))))"#,
            None,
        )
        .unwrap();
        let module = Module::new(&engine, &wasm).unwrap();
        let opts = RunOptions {
            invoke: Some("add".into()),
            args: vec!["-2".into(), "5".into()],
            ..RunOptions::default()
        };
        assert_eq!(run_module(&engine, &module, "m", &opts), Outcome::Exited(0));
        let opts = RunOptions {
            args: vec!["x".into()],
            ..opts
        };
        assert!(
            matches!(run_module(&engine, &module, "m", &opts), Outcome::Failed(m) if m.contains("takes 2 arguments"))
        );
    }
}
