//! The WebAssembly script (`.wast`) runner.
//!
//! A script is a sequence of directives: modules to compile and instantiate, names to register
//! them under, calls to make, and assertions about what those produce. [`WastRunner`] runs a
//! script in a fresh [`Store`] and counts every directive once, as passed or failed, in a
//! [`FileReport`]. The runner never stops at a failure: a module that fails where the script
//! expects success is one failure, and every later directive that uses it fails too, saying so.
//!
//! What each directive must do to pass:
//!
//! | directive | passes when |
//! | --- | --- |
//! | `module`, `module definition`, `module instance` | it compiles (and instantiates) |
//! | `register` | the module is available and its exports are registered under the name |
//! | `invoke` | the call returns (any results) |
//! | `assert_return` | the call or `get` returns exactly the expected values; floats compare bit for bit, `nan:canonical` / `nan:arithmetic` match the NaN classes, `v128` compares lane by lane in the expected shape |
//! | `assert_trap` | the call, or the instantiation of the module, traps with a message containing the expected text |
//! | `assert_exhaustion` | the call traps with a message containing the expected text (`call stack exhausted`) |
//! | `assert_invalid`, `assert_malformed` | the module text fails to parse or encode, or the engine refuses to compile the binary |
//! | `assert_unlinkable` | the module compiles and its instantiation fails |
//!
//! Only the kind of error is checked for the last two rows: the engine's messages come from its
//! validator and are worded differently from the reference interpreter's. With
//! [`WastRunner::verbose`] the report carries both messages as [`Note`]s.

mod report;
pub mod spectest;
mod values;

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use spate::{Engine, Instance, Linker, Module, Store, Trap, Val};
use wast::lexer::Lexer;
use wast::parser::{self, ParseBuffer};
use wast::{QuoteWat, Wast, WastDirective, WastExecute, WastInvoke, WastRet, Wat};

pub use report::{Failure, FileReport, Note, Totals};

/// How long `--await-tier-up` waits for the tier-up queue after a directive.
const TIER_UP_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs WebAssembly scripts against an [`Engine`].
#[derive(Clone)]
pub struct WastRunner {
    engine: Engine,
    multi_memory_engine: Option<Engine>,
    verbose: bool,
    await_tier_up: bool,
}

/// Whether a script is a multi-memory test by its file name (`*memory-multi*` or
/// `*multi-memory*`, as in the SIMD suite's `simd_memory-multi.wast`). WebAssembly 2.0 itself
/// requires modules with two memories to be rejected (`memory.wast` checks that), so the
/// proposal is enabled only for the scripts that test it.
pub fn is_multi_memory_script(name: &str) -> bool {
    let file = name.rsplit('/').next().unwrap_or(name);
    file.contains("memory-multi") || file.contains("multi-memory")
}

impl WastRunner {
    /// A runner that compiles every module with `engine`.
    pub fn new(engine: Engine) -> Self {
        WastRunner {
            engine,
            multi_memory_engine: None,
            verbose: false,
            await_tier_up: false,
        }
    }

    /// After each directive, wait until every tier-up it requested is installed (tiered mode),
    /// so the directives that follow run optimized code. With a tier-up threshold of 0 this
    /// swaps every function the script calls while the script runs.
    pub fn await_tier_up(&mut self, yes: bool) -> &mut Self {
        self.await_tier_up = yes;
        self
    }

    /// Stops background tier-up in the runner's engines (see [`spate::Engine::stop_tier_ups`]),
    /// waiting up to `timeout` for compiles under way; call it before the process exits.
    pub fn stop_tier_ups(&self, timeout: std::time::Duration) -> bool {
        let main = self.engine.stop_tier_ups(timeout);
        let multi = self
            .multi_memory_engine
            .as_ref()
            .is_none_or(|e| e.stop_tier_ups(timeout));
        main && multi
    }

    /// The figures of the runner's engines (summed when there are two).
    pub fn stats(&self) -> spate::Stats {
        let mut s = self.engine.stats();
        if let Some(m) = &self.multi_memory_engine {
            s.merge(&m.stats());
        }
        s
    }

    /// The engine (configured with the multi-memory proposal) for scripts that
    /// [test multi-memory](is_multi_memory_script).
    pub fn multi_memory_engine(&mut self, engine: Engine) -> &mut Self {
        self.multi_memory_engine = Some(engine);
        self
    }

    /// In verbose mode the report carries [`Note`]s (expected vs actual messages of the
    /// negative assertions) and the `spectest.print*` functions print their arguments.
    pub fn verbose(&mut self, yes: bool) -> &mut Self {
        self.verbose = yes;
        self
    }

    /// Reads and runs the script at `path`. A file that cannot be read, or is not UTF-8, is
    /// reported as one failure.
    pub fn run_file(&self, path: &Path) -> FileReport {
        let name = path.display().to_string();
        match std::fs::read(path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(source) => self.run_source(&name, &source),
                Err(e) => {
                    let mut report = FileReport::new(name);
                    report.fail((1, 1), "script", format!("the file is not UTF-8: {e}"));
                    report
                }
            },
            Err(e) => {
                let mut report = FileReport::new(name);
                report.fail((1, 1), "script", format!("cannot read the file: {e}"));
                report
            }
        }
    }

    /// Runs the script `source`; `name` names it in failures.
    pub fn run_source(&self, name: &str, source: &str) -> FileReport {
        let mut report = FileReport::new(name);
        let position = |span: wast::token::Span| {
            let (line, column) = span.linecol_in(source);
            (line + 1, column + 1)
        };

        // The specification's `names.wast` uses bidirectional-override characters in names on
        // purpose; the lexer refuses them unless told otherwise.
        let mut lexer = Lexer::new(source);
        lexer.allow_confusing_unicode(true);
        let buf = match ParseBuffer::new_with_lexer(lexer) {
            Ok(buf) => buf,
            Err(e) => {
                report.fail(
                    position(e.span()),
                    "script",
                    format!("cannot parse: {}", e.message()),
                );
                return report;
            }
        };
        let wast = match parser::parse::<Wast<'_>>(&buf) {
            Ok(wast) => wast,
            Err(e) => {
                report.fail(
                    position(e.span()),
                    "script",
                    format!("cannot parse: {}", e.message()),
                );
                return report;
            }
        };

        let engine = match &self.multi_memory_engine {
            Some(e) if is_multi_memory_script(name) => e,
            _ => &self.engine,
        };
        let mut script = match Script::new(engine, self.verbose) {
            Ok(script) => script,
            Err(e) => {
                report.fail(
                    (1, 1),
                    "script",
                    format!("cannot set up the `spectest` module: {e:#}"),
                );
                return report;
            }
        };

        let mut panicked = None;
        for directive in wast.directives {
            let at = position(directive.span());
            let kind = directive_name(&directive);
            if let Some(line) = panicked {
                report.fail(
                    at,
                    kind,
                    format!("not run: the engine panicked at line {line}"),
                );
                continue;
            }
            let mut outcome = catch_unwind(AssertUnwindSafe(|| script.run(directive, at.0)));
            if self.await_tier_up && !engine.wait_for_tier_ups(TIER_UP_WAIT) {
                outcome = Ok(Err(format!(
                    "tier-up did not finish within {TIER_UP_WAIT:?}"
                )));
            }
            match outcome {
                Ok(Ok(note)) => {
                    report.passed += 1;
                    if let (true, Some(message)) = (self.verbose, note) {
                        report.notes.push(Note {
                            line: at.0,
                            directive: kind,
                            message,
                        });
                    }
                }
                Ok(Err(message)) => report.fail(at, kind, message),
                Err(payload) => {
                    let what = panic_message(payload.as_ref());
                    report.fail(at, kind, format!("the engine panicked: {what}"));
                    // The store may be in any state now; nothing later in the script is run.
                    panicked = Some(at.0);
                }
            }
        }
        report
    }
}

/// The keyword that starts a directive, for messages.
fn directive_name(directive: &WastDirective<'_>) -> &'static str {
    match directive {
        WastDirective::Module(_) => "module",
        WastDirective::ModuleDefinition(_) => "module definition",
        WastDirective::ModuleInstance { .. } => "module instance",
        WastDirective::AssertMalformed { .. } => "assert_malformed",
        WastDirective::AssertInvalid { .. } => "assert_invalid",
        WastDirective::AssertInvalidCustom { .. } => "assert_invalid_custom",
        WastDirective::AssertMalformedCustom { .. } => "assert_malformed_custom",
        WastDirective::Register { .. } => "register",
        WastDirective::Invoke(_) => "invoke",
        WastDirective::AssertTrap {
            exec: WastExecute::Wat(_),
            ..
        } => "assert_trap (uninstantiable)",
        WastDirective::AssertTrap { .. } => "assert_trap",
        WastDirective::AssertReturn { .. } => "assert_return",
        WastDirective::AssertExhaustion { .. } => "assert_exhaustion",
        WastDirective::AssertUnlinkable { .. } => "assert_unlinkable",
        WastDirective::AssertException { .. } => "assert_exception",
        WastDirective::AssertSuspension { .. } => "assert_suspension",
        WastDirective::Thread(_) => "thread",
        WastDirective::Wait { .. } => "wait",
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

/// An instance a later directive may refer to, or why there is none.
#[derive(Clone)]
enum Slot {
    Ready(Instance),
    Broken(String),
}

/// Why an invocation, `get` or instantiation did not produce values.
enum ExecError {
    /// The directive could not be carried out at all (a missing module or export, an argument
    /// the runner cannot express); always a failure.
    Setup(String),
    /// The engine reported an error or a trap while running.
    Run(spate::Error),
}

/// The state of one script run.
struct Script<'e> {
    engine: &'e Engine,
    store: Store<()>,
    linker: Linker<()>,
    /// The most recent module instance: what directives without a module name use.
    current: Option<Slot>,
    /// Instances by their `$name`.
    named: HashMap<String, Slot>,
    /// `module definition`s by their `$name`, and the most recent one.
    definitions: HashMap<String, Result<Module, String>>,
    last_definition: Option<Result<Module, String>>,
}

/// A directive's outcome: `Ok` with an optional verbose remark, or `Err` with the failure.
type Outcome = Result<Option<String>, String>;

impl<'e> Script<'e> {
    fn new(engine: &'e Engine, echo: bool) -> spate::Result<Self> {
        let mut store = Store::new(engine, ());
        let mut linker = Linker::new(engine);
        linker.allow_shadowing(true);
        spectest::define(&mut linker, &mut store, echo)?;
        Ok(Script {
            engine,
            store,
            linker,
            current: None,
            named: HashMap::new(),
            definitions: HashMap::new(),
            last_definition: None,
        })
    }

    fn run(&mut self, directive: WastDirective<'_>, line: usize) -> Outcome {
        match directive {
            WastDirective::Module(mut module) => {
                let name = module.name().map(|id| id.name().to_string());
                let result = self
                    .compile_quote(&mut module)
                    .and_then(|m| self.instantiate(&m));
                let slot = match &result {
                    Ok(instance) => Slot::Ready(*instance),
                    Err(_) => Slot::Broken(format!("the module at line {line} failed")),
                };
                if let Some(name) = name {
                    self.named.insert(name, slot.clone());
                }
                self.current = Some(slot);
                result.map(|_| None)
            }
            WastDirective::ModuleDefinition(mut module) => {
                let result = self.compile_quote(&mut module);
                if let Some(id) = module.name() {
                    self.definitions
                        .insert(id.name().to_string(), result.clone());
                }
                self.last_definition = Some(result.clone());
                result.map(|_| None)
            }
            WastDirective::ModuleInstance {
                instance, module, ..
            } => {
                let definition = match module {
                    Some(id) => self.definitions.get(id.name()).cloned(),
                    None => self.last_definition.clone(),
                };
                let result = match definition {
                    Some(Ok(module)) => self.instantiate(&module),
                    Some(Err(_)) => Err("the module definition failed to compile".to_string()),
                    None => Err("no such module definition".to_string()),
                };
                let slot = match &result {
                    Ok(instance) => Slot::Ready(*instance),
                    Err(_) => Slot::Broken(format!("the module instance at line {line} failed")),
                };
                if let Some(id) = instance {
                    self.named.insert(id.name().to_string(), slot.clone());
                }
                self.current = Some(slot);
                result.map(|_| None)
            }
            WastDirective::Register { name, module, .. } => {
                let instance = self
                    .instance(module.map(|id| id.name()))
                    .map_err(setup_message)?;
                self.linker
                    .instance(&mut self.store, name, instance)
                    .map_err(|e| format!("cannot register the instance as `{name}`: {e:#}"))?;
                Ok(None)
            }
            WastDirective::Invoke(invoke) => match self.invoke(&invoke) {
                Ok(_) => Ok(None),
                Err(ExecError::Setup(message)) => Err(message),
                Err(ExecError::Run(e)) => Err(format!("the call failed: {}", describe_error(&e))),
            },
            WastDirective::AssertReturn {
                mut exec, results, ..
            } => {
                let values = match self.exec(&mut exec) {
                    Ok(values) => values,
                    Err(ExecError::Setup(message)) => return Err(message),
                    Err(ExecError::Run(e)) => {
                        return Err(format!(
                            "expected {}, got {}",
                            describe_expected_list(&results),
                            describe_error(&e)
                        ));
                    }
                };
                check_results(&results, &values).map(|()| None)
            }
            WastDirective::AssertTrap {
                mut exec, message, ..
            } => match self.exec(&mut exec) {
                Ok(values) => Err(format!(
                    "expected trap `{message}`, got {}",
                    if matches!(exec, WastExecute::Wat(_)) {
                        "a successful instantiation".to_string()
                    } else {
                        values::describe_vals(&values)
                    }
                )),
                Err(ExecError::Setup(m)) => Err(m),
                Err(ExecError::Run(e)) => check_trap(&e, message),
            },
            WastDirective::AssertExhaustion { call, message, .. } => match self.invoke(&call) {
                Ok(values) => Err(format!(
                    "expected trap `{message}`, got {}",
                    values::describe_vals(&values)
                )),
                Err(ExecError::Setup(m)) => Err(m),
                Err(ExecError::Run(e)) => check_trap(&e, message),
            },
            WastDirective::AssertInvalid {
                mut module,
                message,
                ..
            } => self.expect_compile_error(&mut module, message, "invalid"),
            WastDirective::AssertMalformed {
                mut module,
                message,
                ..
            } => self.expect_compile_error(&mut module, message, "malformed"),
            WastDirective::AssertUnlinkable {
                mut module,
                message,
                ..
            } => self.expect_link_error(&mut module, message),
            WastDirective::AssertInvalidCustom { .. }
            | WastDirective::AssertMalformedCustom { .. }
            | WastDirective::AssertException { .. }
            | WastDirective::AssertSuspension { .. }
            | WastDirective::Thread(_)
            | WastDirective::Wait { .. } => Err("this directive is not supported".to_string()),
        }
    }

    /// Encodes a module of the script (text, quoted text or binary) and compiles it.
    fn compile_quote(&self, module: &mut QuoteWat<'_>) -> Result<Module, String> {
        if is_component(module) {
            return Err("components are not supported".to_string());
        }
        let bytes = module
            .encode()
            .map_err(|e| format!("the module text does not parse: {}", e.message()))?;
        self.compile(&bytes)
    }

    fn compile(&self, bytes: &[u8]) -> Result<Module, String> {
        Module::new(self.engine, bytes).map_err(|e| format!("the module failed to compile: {e:#}"))
    }

    fn instantiate(&mut self, module: &Module) -> Result<Instance, String> {
        self.linker
            .instantiate(&mut self.store, module)
            .map_err(|e| format!("the module failed to instantiate: {}", describe_error(&e)))
    }

    /// The instance named `$name`, or the current one.
    fn instance(&self, name: Option<&str>) -> Result<Instance, ExecError> {
        let slot = match name {
            Some(name) => self
                .named
                .get(name)
                .ok_or_else(|| ExecError::Setup(format!("there is no module named `${name}`")))?,
            None => self.current.as_ref().ok_or_else(|| {
                ExecError::Setup("no module has been instantiated yet".to_string())
            })?,
        };
        match slot {
            Slot::Ready(instance) => Ok(*instance),
            Slot::Broken(why) => Err(ExecError::Setup(format!("not run: {why}"))),
        }
    }

    fn invoke(&mut self, invoke: &WastInvoke<'_>) -> Result<Vec<Val>, ExecError> {
        let instance = self.instance(invoke.module.map(|id| id.name()))?;
        let func = instance
            .get_func(&mut self.store, invoke.name)
            .ok_or_else(|| {
                ExecError::Setup(format!("there is no exported function `{}`", invoke.name))
            })?;
        let args = invoke
            .args
            .iter()
            .map(values::arg_to_val)
            .collect::<Result<Vec<_>, _>>()
            .map_err(ExecError::Setup)?;
        let ty = func.ty(&mut self.store);
        let mut results = vec![Val::I32(0); ty.results().len()];
        func.call(&mut self.store, &args, &mut results)
            .map_err(ExecError::Run)?;
        Ok(results)
    }

    /// Carries out the action of an `assert_return` / `assert_trap`: a call, a global read, or
    /// the instantiation of a module (which produces no values).
    fn exec(&mut self, exec: &mut WastExecute<'_>) -> Result<Vec<Val>, ExecError> {
        match exec {
            WastExecute::Invoke(invoke) => self.invoke(invoke),
            WastExecute::Get { module, global, .. } => {
                let instance = self.instance(module.map(|id| id.name()))?;
                let global = instance
                    .get_global(&mut self.store, global)
                    .ok_or_else(|| {
                        ExecError::Setup(format!("there is no exported global `{global}`"))
                    })?;
                Ok(vec![global.get(&mut self.store)])
            }
            WastExecute::Wat(wat) => {
                if matches!(wat, Wat::Component(_)) {
                    return Err(ExecError::Setup("components are not supported".to_string()));
                }
                let bytes = wat.encode().map_err(|e| {
                    ExecError::Setup(format!("the module text does not parse: {}", e.message()))
                })?;
                let module = self.compile(&bytes).map_err(ExecError::Setup)?;
                self.linker
                    .instantiate(&mut self.store, &module)
                    .map_err(ExecError::Run)?;
                Ok(Vec::new())
            }
        }
    }

    /// `assert_invalid` / `assert_malformed`: the text must fail to encode, or the engine must
    /// refuse the binary.
    fn expect_compile_error(
        &self,
        module: &mut QuoteWat<'_>,
        expected: &str,
        kind: &str,
    ) -> Outcome {
        if is_component(module) {
            return Err("components are not supported".to_string());
        }
        let bytes = match module.encode() {
            Ok(bytes) => bytes,
            Err(e) => {
                return Ok(Some(format!(
                    "expected `{expected}`; the text format rejected it: {}",
                    e.message()
                )));
            }
        };
        match Module::new(self.engine, &bytes) {
            Ok(_) => Err(format!(
                "expected a {kind} module (`{expected}`), but it compiled"
            )),
            Err(e) => Ok(Some(format!("expected `{expected}`; got `{e:#}`"))),
        }
    }

    /// `assert_unlinkable`: the module must compile and its instantiation fail.
    fn expect_link_error(&mut self, module: &mut Wat<'_>, expected: &str) -> Outcome {
        if matches!(module, Wat::Component(_)) {
            return Err("components are not supported".to_string());
        }
        let bytes = module
            .encode()
            .map_err(|e| format!("the module text does not parse: {}", e.message()))?;
        let module = self.compile(&bytes)?;
        match self.linker.instantiate(&mut self.store, &module) {
            Ok(_) => Err(format!(
                "expected a link error (`{expected}`), but the module instantiated"
            )),
            Err(e) => Ok(Some(format!(
                "expected `{expected}`; got `{}`",
                describe_error(&e)
            ))),
        }
    }
}

fn is_component(module: &QuoteWat<'_>) -> bool {
    matches!(
        module,
        QuoteWat::QuoteComponent(..) | QuoteWat::Wat(Wat::Component(_))
    )
}

fn setup_message(e: ExecError) -> String {
    match e {
        ExecError::Setup(message) => message,
        ExecError::Run(e) => describe_error(&e),
    }
}

/// `trap "<message>"` for a trap, `error: <chain>` for anything else.
fn describe_error(e: &spate::Error) -> String {
    match e.downcast_ref::<Trap>() {
        Some(trap) => format!("trap `{}`", trap.message()),
        None => format!("error: {e:#}"),
    }
}

/// Passes when `e` is a trap whose message contains `expected`, or is the start of it: the
/// reference interpreter appends details to some messages (`uninitialized element 7`) that the
/// engine's fixed trap messages leave out.
fn check_trap(e: &spate::Error, expected: &str) -> Outcome {
    match e.downcast_ref::<Trap>() {
        Some(trap) if trap_message_matches(trap.message(), expected) => Ok(None),
        Some(trap) => Err(format!(
            "expected trap `{expected}`, got trap `{}`",
            trap.message()
        )),
        None => Err(format!("expected trap `{expected}`, got error: {e:#}")),
    }
}

fn trap_message_matches(actual: &str, expected: &str) -> bool {
    actual.contains(expected) || expected.starts_with(actual)
}

fn check_results(expected: &[WastRet<'_>], actual: &[Val]) -> Result<(), String> {
    if expected.len() != actual.len() {
        return Err(format!(
            "expected {} result(s) {}, got {} {}",
            expected.len(),
            describe_expected_list(expected),
            actual.len(),
            values::describe_vals(actual)
        ));
    }
    for (i, (e, a)) in expected.iter().zip(actual).enumerate() {
        values::check_result(e, a).map_err(|m| {
            if expected.len() == 1 {
                m
            } else {
                format!("result {i}: {m}")
            }
        })?;
    }
    Ok(())
}

fn describe_expected_list(expected: &[WastRet<'_>]) -> String {
    let items: Vec<String> = expected
        .iter()
        .map(|e| match e {
            WastRet::Core(e) => values::describe_expected(e),
            _ => "(component value)".to_string(),
        })
        .collect();
    format!("[{}]", items.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(source: &str) -> FileReport {
        let mut runner = WastRunner::new(Engine::default());
        runner.verbose(true);
        runner.run_source("t.wast", source)
    }

    fn failed_lines(report: &FileReport) -> Vec<usize> {
        report.failures.iter().map(|f| f.line).collect()
    }

    #[test]
    fn every_directive_counts_once() {
        let report = run(r#"
(module (func (export "add") (param i32 i32) (result i32)
  local.get 0 local.get 1 i32.add))
(assert_return (invoke "add" (i32.const 1) (i32.const 2)) (i32.const 3))
(assert_return (invoke "add" (i32.const 1) (i32.const 2)) (i32.const 4))
(invoke "add" (i32.const 0) (i32.const 0))
(assert_malformed (module quote "(func") "unexpected end")
(assert_invalid (module (func (result i32))) "type mismatch")
(assert_malformed (module binary "\00asm\02\00\00\00") "unknown binary version")
"#);
        assert_eq!(report.passed, 6, "{:#?}", report.failures);
        assert_eq!(failed_lines(&report), [5]);
        let failure = &report.failures[0];
        assert_eq!(failure.directive, "assert_return");
        assert_eq!(failure.message, "expected i32:4, got i32:3");
        assert_eq!(
            failure.to_string(),
            "t.wast:5:2: assert_return: expected i32:4, got i32:3"
        );
        // Verbose notes carry the expected message of each negative assertion that passed.
        let notes: Vec<usize> = report.notes.iter().map(|n| n.line).collect();
        assert_eq!(notes, [7, 8, 9]);
        assert!(report.notes[1].message.contains("type mismatch"));
    }

    #[test]
    fn a_failed_module_fails_the_directives_that_use_it() {
        let report = run(r#"
(module (func (export "f") (result i32) i64.const 0))
(assert_return (invoke "f") (i32.const 0))
(invoke "f")
(module $ok (func (export "g") (result i32) i32.const 7))
(assert_return (invoke "g") (i32.const 7))
(assert_return (invoke $ok "g") (i32.const 7))
(assert_return (invoke $missing "g") (i32.const 7))
(assert_return (invoke "nope") (i32.const 7))
"#);
        assert_eq!(report.passed, 3, "{:#?}", report.failures);
        assert_eq!(failed_lines(&report), [2, 3, 4, 8, 9]);
        assert!(report.failures[0].message.contains("failed to compile"));
        assert!(
            report.failures[1]
                .message
                .contains("the module at line 2 failed")
        );
        assert!(
            report.failures[3]
                .message
                .contains("no module named `$missing`")
        );
        assert!(
            report.failures[4]
                .message
                .contains("no exported function `nope`")
        );
    }

    #[test]
    fn traps_registration_globals_and_linking() {
        let report = run(r#"
(module $m
  (func (export "div") (param i32) (result i32) i32.const 1 local.get 0 i32.div_s)
  (global (export "g") i32 (i32.const 5)))
(register "m" $m)
(module
  (import "m" "div" (func $div (param i32) (result i32)))
  (func (export "d") (param i32) (result i32) local.get 0 call $div)
  (func $r (export "r") call $r))
(assert_trap (invoke "d" (i32.const 0)) "integer divide by zero")
(assert_trap (invoke "d" (i32.const 0)) "unreachable")
(assert_trap (invoke "d" (i32.const 1)) "integer divide by zero")
(assert_return (invoke "d" (i32.const 1)) (i32.const 1))
(assert_return (get $m "g") (i32.const 5))
(assert_exhaustion (invoke "r") "call stack exhausted")
(assert_unlinkable (module (import "m" "nope" (func))) "unknown import")
(assert_unlinkable (module (func)) "unknown import")
(assert_trap (module (func $s unreachable) (start $s)) "unreachable")
"#);
        assert_eq!(report.passed, 9, "{:#?}", report.failures);
        assert_eq!(failed_lines(&report), [11, 12, 17]);
        assert_eq!(
            report.failures[0].message,
            "expected trap `unreachable`, got trap `integer divide by zero`"
        );
        assert_eq!(
            report.failures[1].message,
            "expected trap `integer divide by zero`, got [i32:1]"
        );
        assert!(
            report.failures[2]
                .message
                .contains("but the module instantiated")
        );
    }

    #[test]
    fn spectest_module() {
        let report = run(r#"
(module
  (import "spectest" "print_i32" (func $p (param i32)))
  (import "spectest" "print_f64_f64" (func (param f64 f64)))
  (import "spectest" "global_i32" (global $g i32))
  (import "spectest" "global_f64" (global $h f64))
  (import "spectest" "table" (table 10 20 funcref))
  (import "spectest" "memory" (memory 1 2))
  (func (export "g") (result i32) global.get $g call $p global.get $g)
  (func (export "h") (result f64) global.get $h)
  (func (export "size") (result i32) memory.size)
  (func (export "grow") (result i32) (memory.grow (i32.const 2))))
(assert_return (invoke "g") (i32.const 666))
(assert_return (invoke "h") (f64.const 666.6))
(assert_return (invoke "size") (i32.const 1))
(assert_return (invoke "grow") (i32.const -1))
(assert_unlinkable (module (import "spectest" "memory" (memory 3))) "incompatible import type")
"#);
        assert_eq!(report.passed, 6, "{:#?}", report.failures);
        assert!(report.is_success());
    }

    #[test]
    fn floats_references_and_vectors() {
        let report = run(r#"
(module
  (func (export "nan") (result f32) (f32.div (f32.const 0) (f32.const 0)))
  (func (export "id64") (param f64) (result f64) local.get 0)
  (func (export "ext") (param externref) (result externref) local.get 0)
  (func (export "null") (result funcref) ref.null func)
  (func (export "v") (result v128) v128.const i32x4 1 2 3 4))
(assert_return (invoke "nan") (f32.const nan:canonical))
(assert_return (invoke "nan") (f32.const nan:arithmetic))
(assert_return (invoke "id64" (f64.const 1)) (f64.const 1) (f64.const 1))
(assert_return (invoke "id64" (f64.const -0)) (f64.const -0))
(assert_return (invoke "id64" (f64.const -0)) (f64.const 0))
(assert_return (invoke "ext" (ref.extern 7)) (ref.extern 7))
(assert_return (invoke "ext" (ref.extern 7)) (ref.extern 8))
(assert_return (invoke "ext" (ref.null extern)) (ref.null extern))
(assert_return (invoke "null") (ref.null func))
(assert_return (invoke "v") (v128.const i16x8 1 0 2 0 3 0 4 0))
(assert_return (invoke "v") (v128.const i32x4 1 2 3 5))
"#);
        assert_eq!(report.passed, 8, "{:#?}", report.failures);
        assert_eq!(failed_lines(&report), [10, 12, 14, 18]);
        assert!(report.failures[0].message.contains("expected 2 result(s)"));
        assert!(
            report.failures[2]
                .message
                .contains("expected ref.extern 8, got ref.extern 7")
        );
        assert_eq!(
            report.failures[3].message,
            "expected i32x4:[1 2 3 5], got i32x4:[1 2 3 4]"
        );
    }

    #[test]
    fn module_definitions_and_instances() {
        let report = run(r#"
(module definition $D (global (export "g") (mut i32) (i32.const 1))
  (func (export "inc") (global.set 0 (i32.add (global.get 0) (i32.const 1)))))
(module instance $a $D)
(module instance $b $D)
(invoke $a "inc")
(assert_return (get $a "g") (i32.const 2))
(assert_return (get $b "g") (i32.const 1))
"#);
        assert_eq!(report.passed, 6, "{:#?}", report.failures);
    }

    #[test]
    fn trap_messages_match_by_substring_or_prefix() {
        assert!(trap_message_matches(
            "integer divide by zero",
            "integer divide by zero"
        ));
        assert!(trap_message_matches(
            "integer divide by zero",
            "divide by zero"
        ));
        assert!(trap_message_matches(
            "uninitialized element",
            "uninitialized element 7"
        ));
        assert!(!trap_message_matches(
            "uninitialized element",
            "undefined element"
        ));
        assert!(!trap_message_matches("unreachable", "integer overflow"));
        assert!(!trap_message_matches(
            "out of bounds table access",
            "out of bounds memory access"
        ));
    }

    #[test]
    fn scripts_that_do_not_parse_are_one_failure() {
        let report = run("(module (func)\n(assert_return (invoke \"f\")");
        assert_eq!((report.passed, report.failed()), (0, 1));
        assert_eq!(report.failures[0].directive, "script");
        let report = run("(assert_return (invoke \"f\") (i32.konst 1))");
        assert_eq!((report.passed, report.failed()), (0, 1));
        let report = WastRunner::new(Engine::default()).run_file(Path::new("/no/such/file.wast"));
        assert_eq!((report.passed, report.failed()), (0, 1));
        assert!(report.failures[0].message.contains("cannot read"));
    }

    #[test]
    fn unsupported_directives_fail_without_stopping_the_script() {
        let report = run(r#"
(module (func (export "f")))
(assert_exception (invoke "f"))
(invoke "f")
"#);
        assert_eq!(report.passed, 2);
        assert_eq!(failed_lines(&report), [3]);
        assert!(report.failures[0].message.contains("not supported"));
    }
}
