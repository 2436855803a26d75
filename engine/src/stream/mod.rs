//! The streaming front end: the only path from bytes to a [`Module`].
//!
//! [`ModuleStream`] takes a module's bytes in chunks of any size. An incremental
//! `wasmparser::Parser` consumes each chunk as far as it can; declarations are validated and
//! recorded as their sections complete, and each function body, as soon as its last byte has
//! arrived, is handed (with its validator) to a compile worker, so compilation overlaps the
//! transfer. [`ModuleStream::finish`] waits for the outstanding bodies and places the code.
//!
//! The outcome does not depend on how the bytes were split: parsing is deterministic, function
//! bodies are compiled independently, and when anything fails the error reported is the one at
//! the lowest byte offset.

mod sections;

use crate::code::CodeMemory;
use crate::code::lazy::{self, LazyCode};
use crate::engine::{CompileStrategy, Engine, TierMode};
use crate::module::{Module, ModuleInner};
use crate::tiering::{Body, CompileTime, CompileTimer, ModuleTiering};
use anyhow::Result;
use crossbeam_channel::{Receiver, Sender};
use sections::Declarations;
use spate_tiers::{CompileError, CompiledFunction, FunctionCompiler, ModuleInfo};
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicPtr};
use std::time::Instant;
use wasmparser::{BinaryReader, Chunk, FunctionBody, Parser, ValidPayload, Validator};

/// A module that could not be compiled: malformed, invalid, or beyond what the engine supports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleError {
    /// What is wrong.
    pub message: String,
    /// Byte offset in the module where the problem was found, if known.
    pub offset: Option<usize>,
}

impl std::fmt::Display for ModuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.offset {
            Some(o) => write!(f, "{} (at byte offset {o})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ModuleError {}

impl ModuleError {
    fn at(message: impl Into<String>, offset: usize) -> ModuleError {
        ModuleError {
            message: message.into(),
            offset: Some(offset),
        }
    }
}

impl From<wasmparser::BinaryReaderError> for ModuleError {
    fn from(e: wasmparser::BinaryReaderError) -> Self {
        ModuleError::at(e.message(), e.offset() as usize)
    }
}

impl From<CompileError> for ModuleError {
    fn from(e: CompileError) -> Self {
        ModuleError {
            message: e.message,
            offset: e.offset,
        }
    }
}

type CompileResult = (u32, Result<CompiledFunction, CompileError>, CompileTime);

/// Compilation of function bodies, started when the code section begins.
struct Compilation {
    info: Arc<ModuleInfo>,
    tx: Sender<CompileResult>,
    rx: Receiver<CompileResult>,
    submitted: u32,
    /// Compiles on the feeding thread when the engine has one compile thread.
    inline: Option<Box<dyn FunctionCompiler>>,
    results: Vec<Option<CompiledFunction>>,
    errors: Vec<ModuleError>,
    /// Bodies kept for the optimizing tier (tiered mode only).
    bodies: Option<Vec<Body>>,
    /// Lazy compilation: bodies are validated here and compiled by the pool or at first call.
    lazy: Option<Arc<LazyCode>>,
    /// Reused by the validation of bodies on the feeding thread (lazy compilation).
    allocs: wasmparser::FuncValidatorAllocations,
}

impl Compilation {
    fn compile(
        &mut self,
        engine: &Engine,
        body: &FunctionBody<'_>,
        to_validate: wasmparser::FuncToValidate<wasmparser::ValidatorResources>,
    ) -> Result<(), ModuleError> {
        let def_index = self.submitted;
        self.submitted += 1;
        let func_index = self.info.num_imported_functions + def_index;
        if let Some(lazy) = &self.lazy {
            // Validated now, so the module is known valid when its last byte is in.
            let mut validator = to_validate.into_validator(std::mem::take(&mut self.allocs));
            let valid = validator.validate(body);
            self.allocs = validator.into_allocations();
            // Everything before this body is validated, so its error is the module's first:
            // report it now, while the rest may still be downloading.
            valid?;
            let bytes: Arc<[u8]> = body.as_bytes().into();
            let offset = body.range().start;
            if let Some(bodies) = self.bodies.as_mut() {
                bodies.push(Body {
                    offset,
                    bytes: bytes.clone(),
                });
            }
            lazy.submit(engine, def_index, Body { offset, bytes });
            return Ok(());
        }
        // At most one copy of the body's bytes, shared by a pool compile job and (tiered mode)
        // the optimizing tier's later recompilation; none when compiling inline untiered.
        let bytes: Option<Arc<[u8]>> =
            (self.bodies.is_some() || self.inline.is_none()).then(|| body.as_bytes().into());
        if let (Some(bodies), Some(bytes)) = (self.bodies.as_mut(), &bytes) {
            bodies.push(Body {
                offset: body.range().start,
                bytes: bytes.clone(),
            });
        }
        if let Some(compiler) = self.inline.as_mut() {
            let mut validator = to_validate.into_validator(Default::default());
            let started = CompileTimer::start();
            let r = compile_guarded(
                &mut **compiler,
                &self.info,
                func_index,
                body,
                Some(&mut validator),
            );
            self.store(engine, def_index, r, started.stop());
            return Ok(());
        }
        let range = body.range();
        let bytes = bytes.expect("copied for the pool");
        let info = self.info.clone();
        let tx = self.tx.clone();
        engine.submit(Box::new(move |compiler| {
            let body = FunctionBody::new(BinaryReader::new(&bytes, range.start));
            let mut validator = to_validate.into_validator(Default::default());
            let started = CompileTimer::start();
            let r = compile_guarded(compiler, &info, func_index, &body, Some(&mut validator));
            let _ = tx.send((def_index, r, started.stop()));
        }));
        Ok(())
    }

    fn store(
        &mut self,
        engine: &Engine,
        def_index: u32,
        r: Result<CompiledFunction, CompileError>,
        time: CompileTime,
    ) {
        match r {
            Ok(f) => {
                engine.0.first_tier_stats().record_function(&f, time);
                self.results[def_index as usize] = Some(f);
            }
            Err(e) => self.errors.push(e.into()),
        }
    }

    /// Waits for every submitted body (nothing to wait for with lazy compilation: the bodies
    /// are validated, and compile errors are collected by the lazy state).
    fn wait(&mut self, engine: &Engine) {
        if self.lazy.is_some() {
            return;
        }
        let outstanding = self.submitted as usize
            - self.results.iter().filter(|r| r.is_some()).count()
            - self.errors.len();
        for _ in 0..outstanding {
            match self.rx.recv() {
                Ok((i, r, t)) => self.store(engine, i, r, t),
                Err(_) => break,
            }
        }
    }
}

/// Runs the compiler (validating the body in the same pass when given a validator), turning a
/// panic inside it into an error instead of taking the host down.
pub(crate) fn compile_guarded(
    compiler: &mut dyn FunctionCompiler,
    info: &ModuleInfo,
    func_index: u32,
    body: &FunctionBody<'_>,
    validator: Option<&mut wasmparser::FuncValidator<wasmparser::ValidatorResources>>,
) -> Result<CompiledFunction, CompileError> {
    let offset = body.range().start as usize;
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        compiler.compile_function(info, func_index, body, validator)
    }))
    .unwrap_or_else(|_| {
        Err(CompileError {
            message: format!("internal compiler error while compiling function {func_index}"),
            offset: Some(offset),
            kind: spate_tiers::CompileErrorKind::Codegen,
        })
    })
}

/// Builds a [`Module`] from bytes pushed in chunks.
///
/// ```
/// # fn main() -> anyhow::Result<()> {
/// let engine = spate::Engine::default();
/// let bytes = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]; // an empty module
/// let mut stream = spate::ModuleStream::new(&engine);
/// for chunk in bytes.chunks(3) {
///     stream.feed(chunk)?;
/// }
/// let module = stream.finish()?;
/// assert_eq!(module.num_functions(), 0);
/// # Ok(())
/// # }
/// ```
pub struct ModuleStream {
    engine: Engine,
    started: Instant,
    parser: Parser,
    validator: Validator,
    buf: Vec<u8>,
    pos: usize,
    total: usize,
    decls: Declarations,
    compilation: Option<Compilation>,
    ended: bool,
    failed: Option<ModuleError>,
}

impl ModuleStream {
    /// Starts a module.
    pub fn new(engine: &Engine) -> ModuleStream {
        // The parser and the validator must agree on the feature set: the parser's decoding
        // depends on it (for example, 32-bit memory limits are read as strict 32-bit LEB128s
        // only when memory64 is off).
        let features = engine.0.config.features();
        let mut parser = Parser::new(0);
        parser.set_features(features);
        ModuleStream {
            engine: engine.clone(),
            started: Instant::now(),
            parser,
            validator: Validator::new_with_features(features),
            buf: Vec::new(),
            pos: 0,
            total: 0,
            decls: Declarations::default(),
            compilation: None,
            ended: false,
            failed: None,
        }
    }

    /// Bytes fed so far.
    pub fn bytes_received(&self) -> usize {
        self.total
    }

    /// Function bodies handed to the compiler so far.
    pub fn functions_submitted(&self) -> u32 {
        self.compilation.as_ref().map_or(0, |c| c.submitted)
    }

    /// Feeds the next chunk. Everything that is complete is validated and compiled (or queued
    /// for compilation) before this returns. After an error the stream is dead: every further
    /// call returns the same error.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<()> {
        if let Some(e) = &self.failed {
            return Err(e.clone().into());
        }
        self.total += chunk.len();
        self.buf.extend_from_slice(chunk);
        self.pump(false).map_err(|e| self.fail(e).into())
    }

    /// Declares the end of the bytes and returns the compiled module.
    pub fn finish(mut self) -> Result<Module> {
        if let Some(e) = self.failed.take() {
            return Err(e.into());
        }
        if let Err(e) = self.pump(true) {
            return Err(self.fail(e).into());
        }
        if !self.ended {
            return Err(ModuleError::at("unexpected end of module", self.total).into());
        }
        let mut comp = match self.compilation.take() {
            Some(c) => c,
            None => Self::start_compilation(&self.engine, &self.decls.info),
        };
        comp.wait(&self.engine);
        if let Some(e) = lowest(std::mem::take(&mut comp.errors)) {
            return Err(e.into());
        }
        let n = comp.info.num_imported_functions;
        let threshold = self.engine.0.config.tier_up_budget();
        let parts = Parts {
            engine: self.engine.clone(),
            info: comp.info.clone(),
            decls: self.decls,
            tiering: comp.bodies.take().map(ModuleTiering::new),
            started: self.started,
            size: self.total,
            threshold,
        };
        if let Some(lazy) = comp.lazy.take() {
            let module = lazy.finish(|held| {
                let count = held.len();
                let (mut ready, mut ready_defs, mut thunk_defs) =
                    (Vec::new(), Vec::new(), Vec::new());
                for (def, f) in held.into_iter().enumerate() {
                    match f {
                        Some(f) => {
                            ready_defs.push(def as u32);
                            ready.push((n + def as u32, f));
                        }
                        None => thunk_defs.push(def as u32),
                    }
                }
                let code = CodeMemory::new(ready)
                    .map_err(|e| anyhow::anyhow!("cannot allocate code memory: {e}"))?;
                let (thunk_code, thunk_ptrs) = if thunk_defs.is_empty() {
                    (None, Vec::new())
                } else {
                    let (m, p) = lazy::thunks(&lazy, &thunk_defs)
                        .map_err(|e| anyhow::anyhow!("cannot allocate code memory: {e}"))?;
                    (Some(m), p)
                };
                let entries = lazy::entries(&code, &ready_defs, &thunk_ptrs, &thunk_defs, count);
                Ok((
                    parts.assemble(code, entries, Some(lazy.clone())),
                    thunk_code,
                ))
            })?;
            return Ok(Module(module));
        }
        let functions: Vec<(u32, CompiledFunction)> = comp
            .results
            .into_iter()
            .enumerate()
            .map(|(i, f)| (n + i as u32, f.expect("every body compiled")))
            .collect();
        let code = CodeMemory::new(functions)
            .map_err(|e| anyhow::anyhow!("cannot allocate code memory: {e}"))?;
        let entries: Box<[AtomicPtr<u8>]> = (0..code.functions().len())
            .map(|i| AtomicPtr::new(code.function_ptr(i) as *mut u8))
            .collect();
        Ok(Module(parts.assemble(code, entries, None)))
    }

    /// Records a failure; waits for outstanding compilation so the lowest-offset error wins.
    fn fail(&mut self, e: ModuleError) -> ModuleError {
        let mut errors = vec![e];
        if let Some(comp) = self.compilation.as_mut() {
            comp.wait(&self.engine);
            errors.append(&mut comp.errors);
        }
        let e = lowest(errors).expect("at least one error");
        self.failed = Some(e.clone());
        e
    }

    fn start_compilation(engine: &Engine, info: &ModuleInfo) -> Compilation {
        let info = Arc::new(info.clone());
        let (tx, rx) = crossbeam_channel::unbounded();
        let inline =
            (engine.0.config.compile_threads <= 1).then(|| engine.0.first_tier().new_compiler());
        let results = (0..info.num_defined_functions()).map(|_| None).collect();
        let bodies = (engine.0.config.tier == TierMode::Tiered)
            .then(|| Vec::with_capacity(info.num_defined_functions() as usize));
        let lazy = match engine.0.config.compile_strategy_in_use() {
            CompileStrategy::Eager => None,
            CompileStrategy::Background => Some(LazyCode::new(info.clone(), true)),
            CompileStrategy::OnFirstCall => Some(LazyCode::new(info.clone(), false)),
        };
        let inline = inline.filter(|_| lazy.is_none());
        Compilation {
            info,
            tx,
            rx,
            submitted: 0,
            inline,
            results,
            errors: Vec::new(),
            bodies,
            lazy,
            allocs: Default::default(),
        }
    }

    /// Parses as much of the buffered input as possible.
    fn pump(&mut self, eof: bool) -> Result<(), ModuleError> {
        loop {
            if self.ended {
                if self.pos < self.buf.len() {
                    return Err(ModuleError::at(
                        "unexpected data after the end of the module",
                        self.total - (self.buf.len() - self.pos),
                    ));
                }
                return Ok(());
            }
            let data = &self.buf[self.pos..];
            let (consumed, payload) = match self.parser.parse(data, eof)? {
                Chunk::NeedMoreData(_) => {
                    if eof {
                        return Err(ModuleError::at("unexpected end of module", self.total));
                    }
                    break;
                }
                Chunk::Parsed { consumed, payload } => (consumed, payload),
            };
            match self.validator.payload(&payload)? {
                ValidPayload::Ok => {}
                ValidPayload::Parser(_) => {
                    return Err(ModuleError::at(
                        "nested modules and components are not supported",
                        self.pos,
                    ));
                }
                ValidPayload::Func(to_validate, body) => {
                    // Bodies only follow the code section's header, which started compilation.
                    let comp = self
                        .compilation
                        .as_mut()
                        .expect("a function body arrives after CodeSectionStart");
                    comp.compile(&self.engine, &body, to_validate)?;
                }
                ValidPayload::End(_) => self.ended = true,
            }
            match payload {
                wasmparser::Payload::CodeSectionStart { .. } => {
                    self.compilation =
                        Some(Self::start_compilation(&self.engine, &self.decls.info));
                }
                wasmparser::Payload::CodeSectionEntry(_) | wasmparser::Payload::End(_) => {}
                other => {
                    if self.compilation.is_some() && sections::affects_info(&other) {
                        // Declarations after the code section (invalid anyway; the validator
                        // reports it first).
                        return Err(ModuleError::at(
                            "declaration after the code section",
                            self.pos,
                        ));
                    }
                    self.decls.record(other)?;
                }
            }
            self.pos += consumed;
        }
        // Drop consumed bytes once they dominate the buffer, so memory stays bounded by the
        // largest unfinished section or body rather than by the module.
        if self.pos > 64 * 1024 && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        Ok(())
    }
}

/// Everything but the code that goes into a [`ModuleInner`].
struct Parts {
    engine: Engine,
    info: Arc<ModuleInfo>,
    decls: Declarations,
    tiering: Option<ModuleTiering>,
    started: Instant,
    size: usize,
    threshold: i32,
}

impl Parts {
    fn assemble(
        self,
        code: CodeMemory,
        entries: Box<[AtomicPtr<u8>]>,
        lazy: Option<Arc<LazyCode>>,
    ) -> Arc<ModuleInner> {
        // Budgets, the OSR-armed flags, the call counts (`spate_tiers::vmctx::VMContext::budgets`).
        let budgets: Box<[AtomicI32]> = (0..3 * entries.len())
            .map(|i| AtomicI32::new(if i < entries.len() { self.threshold } else { 0 }))
            .collect();
        let d = self.decls;
        let type_ids = d
            .func_types
            .iter()
            .map(|t| self.engine.type_id(t))
            .collect();
        Arc::new(ModuleInner {
            engine: self.engine,
            info: self.info,
            func_types: d.func_types,
            type_ids,
            imports: d.imports,
            exports: d.exports,
            start: d.start,
            global_types: d.global_types,
            global_inits: d.global_inits,
            table_types: d.table_types,
            memory_types: d.memory_types,
            elements: d.elements,
            data: d.data,
            code,
            entries,
            budgets,
            tiering: self.tiering,
            lazy,
            compile_time: self.started.elapsed(),
            size: self.size,
        })
    }
}

fn lowest(errors: Vec<ModuleError>) -> Option<ModuleError> {
    errors
        .into_iter()
        .min_by_key(|e| e.offset.unwrap_or(usize::MAX))
}
