//! Spate's baseline tier: WebAssembly function bodies to machine code through Cranelift.
//!
//! The tier translates each function body in a single pass over its operators (validating it at
//! the same time when the caller hands over a validator) into Cranelift IR, and compiles that IR
//! with fast settings. The generated code follows the contract of [`spate_tiers`]: the calling
//! convention of [`spate_tiers::abi`], the `VMContext` layout of [`spate_tiers::vmctx`], trap
//! tables of [`spate_tiers::trap`] and the libcalls of [`spate_tiers::libcall`]. It contains no
//! relocations: everything outside the function is reached through the `VMContext`.
//!
//! ```no_run
//! use spate_tier_cranelift::{CraneliftOptions, CraneliftTier};
//! use spate_tiers::Tier;
//!
//! let tier = CraneliftTier::new(CraneliftOptions::default()).expect("host ISA is supported");
//! let mut compiler = tier.new_compiler();
//! # let _ = &mut compiler;
//! ```

mod trampolines;
mod translate;

use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::{self, AbiParam, ArgumentPurpose, types};
use cranelift_codegen::isa::{CallConv, OwnedTargetIsa, TargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::{CodegenError, Context};
use cranelift_frontend::FunctionBuilderContext;
use spate_tiers::{
    CompileError, CompiledFunction, FunctionCompiler, ModuleInfo, RegisterAllocator, Tier,
    TrapCode, TrapSite,
};
use wasmparser::{FuncType, FuncValidator, FunctionBody, ValType, ValidatorResources};

/// How hard Cranelift optimises the generated code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptLevel {
    /// No optimisation passes: the fastest compilation (Cranelift's `opt_level = "none"`).
    None,
    /// Cranelift's mid-end optimisations (`opt_level = "speed"`): slower compilation, faster code.
    Speed,
}

/// The register allocator Cranelift uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegallocAlgorithm {
    /// regalloc2's single-pass allocator: fast allocation, more spills.
    SinglePass,
    /// regalloc2's backtracking allocator: slower allocation, better code.
    Backtracking,
    /// The backtracking allocator for functions with a loop nest (a loop inside a loop) whose
    /// body is at most `max_body_bytes` long, the single-pass allocator for all others. The
    /// default, with [`LOOP_NEST_MAX_BODY`].
    ///
    /// Loop nests are where compute kernels spend their time, and where the single-pass
    /// allocator costs most: it keeps no value in a register from one block to the next, so
    /// every loop-carried local makes a round trip through the stack frame on every iteration.
    /// With the backtracking allocator the benchmarks' C compute kernels run at 1.4-1.9x native
    /// instead of 2.5-3.5x, but it compiles whole large modules 1.5-2.4x slower. Bounded to
    /// small loop-nest functions, it costs those modules 7-21% more compile time.
    LoopNests {
        /// The largest body (in bytes of wasm, locals included) that gets the backtracking
        /// allocator.
        max_body_bytes: u32,
    },
}

impl Default for RegallocAlgorithm {
    /// [`RegallocAlgorithm::LoopNests`] up to [`LOOP_NEST_MAX_BODY`].
    fn default() -> Self {
        RegallocAlgorithm::LoopNests {
            max_body_bytes: LOOP_NEST_MAX_BODY,
        }
    }
}

/// The largest function body, in bytes, that [`RegallocAlgorithm::LoopNests`] gives the
/// backtracking allocator by default: 2 KiB, which holds a typical C kernel with its loops
/// inlined (the benchmarks' conjugate-gradient solver is 1.4 KiB) and leaves out the long
/// functions of large programs (functions over 2 KiB hold about 70% of the loop-nest code of
/// `sqlite.wasm`).
pub const LOOP_NEST_MAX_BODY: u32 = 2048;

impl RegallocAlgorithm {
    /// The name `spate --baseline-regalloc` takes and the benchmarks print: `single-pass`,
    /// `loop-nests` (whatever its limit) or `backtracking`.
    pub fn name(self) -> &'static str {
        match self {
            RegallocAlgorithm::SinglePass => "single-pass",
            RegallocAlgorithm::LoopNests { .. } => "loop-nests",
            RegallocAlgorithm::Backtracking => "backtracking",
        }
    }
}

impl std::str::FromStr for RegallocAlgorithm {
    type Err = String;

    /// Parses a [`name`](Self::name); `loop-nests` has the default limit.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "single-pass" => Ok(RegallocAlgorithm::SinglePass),
            "loop-nests" => Ok(RegallocAlgorithm::default()),
            "backtracking" => Ok(RegallocAlgorithm::Backtracking),
            _ => Err(format!(
                "unknown register allocator `{s}` (expected single-pass, loop-nests or \
                 backtracking)"
            )),
        }
    }
}

/// Settings of the Cranelift tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CraneliftOptions {
    /// Run Cranelift's IR verifier on every function before compiling it (catches translator
    /// bugs at compile time rather than as wrong code). On by default in debug builds.
    pub verify: bool,
    /// Optimisation level.
    pub opt_level: OptLevel,
    /// Register allocation algorithm.
    pub regalloc: RegallocAlgorithm,
    /// Emit on-stack-replacement transfers at eligible loop headers (the `LoopTierUp` libcall
    /// and the locals spill). Without it every loop header only counts its budget against
    /// `TierUp`; engines with no optimizing tier turn it off so frames carry no spill slot.
    pub osr: bool,
}

impl Default for CraneliftOptions {
    fn default() -> Self {
        CraneliftOptions {
            verify: cfg!(debug_assertions),
            opt_level: OptLevel::None,
            regalloc: RegallocAlgorithm::default(),
            osr: true,
        }
    }
}

/// The Cranelift baseline tier: a factory of per-thread [`CraneliftCompiler`]s.
///
/// The target ISA is configured once, for the host CPU (its features detected at run time), and
/// shared by every compiler; with [`RegallocAlgorithm::LoopNests`] there are two, identical but
/// for the register allocator.
pub struct CraneliftTier {
    isa: OwnedTargetIsa,
    /// With [`RegallocAlgorithm::LoopNests`]: the ISA with the backtracking allocator, and the
    /// largest body that gets it.
    loop_isa: Option<(OwnedTargetIsa, u32)>,
    options: CraneliftOptions,
}

impl std::fmt::Debug for CraneliftTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CraneliftTier")
            .field("isa", &self.isa.name())
            .field("options", &self.options)
            .finish()
    }
}

impl CraneliftTier {
    /// A tier with the given options, generating code for the host CPU.
    ///
    /// Fails with a [`CompileErrorKind::Codegen`](spate_tiers::CompileErrorKind::Codegen) error
    /// when the host is not a supported target.
    pub fn new(options: CraneliftOptions) -> Result<Self, CompileError> {
        let (isa, loop_isa) = match options.regalloc {
            RegallocAlgorithm::SinglePass => (host_isa(&options, "single_pass")?, None),
            RegallocAlgorithm::Backtracking => (host_isa(&options, "backtracking")?, None),
            RegallocAlgorithm::LoopNests { max_body_bytes } => (
                host_isa(&options, "single_pass")?,
                Some((host_isa(&options, "backtracking")?, max_body_bytes)),
            ),
        };
        Ok(CraneliftTier {
            isa,
            loop_isa,
            options,
        })
    }

    /// The options this tier was created with.
    pub fn options(&self) -> &CraneliftOptions {
        &self.options
    }

    /// A compiler for use on the calling thread, with its concrete type.
    pub fn compiler(&self) -> CraneliftCompiler {
        CraneliftCompiler {
            isa: self.isa.clone(),
            loop_isa: self.loop_isa.clone(),
            ctx: Context::new(),
            builder_ctx: FunctionBuilderContext::new(),
            state: translate::TranslatorState::new(self.options.osr),
        }
    }
}

/// The host's ISA under `options`, with the register allocator `regalloc` (Cranelift's
/// `regalloc_algorithm` setting).
fn host_isa(options: &CraneliftOptions, regalloc: &str) -> Result<OwnedTargetIsa, CompileError> {
    let mut flags = settings::builder();
    let mut set = |name: &str, value: &str| {
        flags
            .set(name, value)
            .map_err(|e| CompileError::codegen(format!("cranelift setting {name}={value}: {e}")))
    };
    set(
        "opt_level",
        match options.opt_level {
            OptLevel::None => "none",
            OptLevel::Speed => "speed",
        },
    )?;
    set("regalloc_algorithm", regalloc)?;
    set(
        "enable_verifier",
        if options.verify { "true" } else { "false" },
    )?;
    // Stack overflow is detected by the `stack_limit` check in every prologue.
    set("enable_probestack", "false")?;
    // The runtime unwinds wasm frames itself (frame pointers, trap tables); it needs no DWARF
    // unwind tables, which would only cost compile time.
    set("unwind_info", "false")?;
    set("preserve_frame_pointers", "true")?;
    // There are no heap_addr/table_addr instructions to harden: memory accesses are guarded by
    // the reservation, table accesses by explicit checks.
    set("enable_heap_access_spectre_mitigation", "false")?;
    set("enable_table_access_spectre_mitigation", "false")?;
    let isa_builder = cranelift_native::builder()
        .map_err(|e| CompileError::codegen(format!("unsupported host for Cranelift: {e}")))?;
    let isa = isa_builder
        .finish(settings::Flags::new(flags))
        .map_err(|e| CompileError::codegen(format!("cannot configure Cranelift ISA: {e}")))?;
    if isa.pointer_type() != types::I64 {
        return Err(CompileError::codegen(
            "the Spate ABI requires a 64-bit target",
        ));
    }
    Ok(isa)
}

impl Tier for CraneliftTier {
    fn name(&self) -> &'static str {
        "cranelift"
    }

    fn new_compiler(&self) -> Box<dyn FunctionCompiler> {
        Box::new(self.compiler())
    }
}

/// Compiles functions and trampolines on one thread, reusing Cranelift's contexts (and the
/// translator's buffers) from one function to the next.
pub struct CraneliftCompiler {
    isa: OwnedTargetIsa,
    /// See [`CraneliftTier::loop_isa`].
    loop_isa: Option<(OwnedTargetIsa, u32)>,
    ctx: Context,
    builder_ctx: FunctionBuilderContext,
    state: translate::TranslatorState,
}

impl std::fmt::Debug for CraneliftCompiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CraneliftCompiler")
            .field("isa", &self.isa.name())
            .finish_non_exhaustive()
    }
}

impl CraneliftCompiler {
    /// The ISA to compile a function with: the one with the backtracking allocator for a
    /// function with a loop nest and a body of at most its limit, else the main one.
    fn isa_for(&self, translated: translate::Translated, body_bytes: u64) -> OwnedTargetIsa {
        match &self.loop_isa {
            Some((isa, max)) if translated.loop_nest && body_bytes <= u64::from(*max) => {
                isa.clone()
            }
            _ => self.isa.clone(),
        }
    }

    /// Compiles the function now in `self.ctx.func` with `isa` and collects its code and tables.
    fn finish(&mut self, isa: &dyn TargetIsa) -> Result<CompiledFunction, CompileError> {
        let result = self.ctx.compile(isa, &mut ControlPlane::default());
        let compiled = match result {
            Ok(compiled) => compiled,
            Err(e) => {
                let message = match e.inner {
                    CodegenError::Verifier(errors) => format!(
                        "Cranelift verifier rejected the translated function:\n{}",
                        cranelift_codegen::print_errors::pretty_verifier_error(
                            e.func, None, errors
                        )
                    ),
                    other => format!("Cranelift failed to compile the function: {other}"),
                };
                self.ctx.clear();
                return Err(CompileError::codegen(message));
            }
        };
        let buffer = &compiled.buffer;
        if let Some(reloc) = buffer.relocs().first() {
            let message = format!(
                "generated code needs a relocation ({:?} at offset {}); the tier only emits \
                 position-independent code",
                reloc.kind, reloc.offset
            );
            self.ctx.clear();
            return Err(CompileError::codegen(message));
        }
        let mut traps = Vec::with_capacity(buffer.traps().len());
        for t in buffer.traps() {
            let Some(trap) = spate_trap_code(t.code) else {
                let message = format!("unexpected Cranelift trap code {}", t.code);
                self.ctx.clear();
                return Err(CompileError::codegen(message));
            };
            traps.push(TrapSite {
                code_offset: t.offset,
                trap,
            });
        }
        traps.sort_by_key(|t| t.code_offset);
        let srclocs = buffer
            .get_srclocs_sorted()
            .iter()
            .filter(|s| !s.loc.is_default() && s.start < s.end)
            .map(|s| (s.start, s.loc.bits()))
            .collect();
        let code = buffer.data().to_vec();
        self.ctx.clear();
        let register_allocator = match isa.flags().regalloc_algorithm() {
            settings::RegallocAlgorithm::SinglePass => RegisterAllocator::SinglePass,
            settings::RegallocAlgorithm::Backtracking => RegisterAllocator::Backtracking,
        };
        Ok(CompiledFunction {
            code,
            traps,
            srclocs,
            fault_trap: None,
            register_allocator,
        })
    }
}

impl FunctionCompiler for CraneliftCompiler {
    fn compile_function(
        &mut self,
        module: &ModuleInfo,
        func_index: u32,
        body: &FunctionBody<'_>,
        validator: Option<&mut FuncValidator<ValidatorResources>>,
    ) -> Result<CompiledFunction, CompileError> {
        self.ctx.clear();
        // A panic (a translator bug, or a body given without a validator that is not valid
        // after all) can leave Cranelift's contexts half-built; start the next function from
        // fresh ones rather than from that state.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let translated = translate::translate_function(
                &mut self.ctx.func,
                &mut self.builder_ctx,
                &mut self.state,
                &*self.isa,
                module,
                func_index,
                body,
                validator,
            );
            let translated = match translated {
                Ok(translated) => translated,
                Err(e) => {
                    self.ctx.clear();
                    return Err(e);
                }
            };
            let range = body.range();
            let isa = self.isa_for(translated, range.end - range.start);
            self.finish(&*isa)
        }));
        r.unwrap_or_else(|panic| {
            self.ctx = Context::new();
            self.builder_ctx = FunctionBuilderContext::new();
            self.state = translate::TranslatorState::new(self.state.osr());
            std::panic::resume_unwind(panic)
        })
    }

    fn host_to_wasm_trampoline(&mut self, ty: &FuncType) -> Result<CompiledFunction, CompileError> {
        self.ctx.clear();
        trampolines::host_to_wasm(&mut self.ctx.func, &mut self.builder_ctx, &*self.isa, ty)?;
        let isa = self.isa.clone();
        self.finish(&*isa)
    }

    fn wasm_to_host_trampoline(&mut self, ty: &FuncType) -> Result<CompiledFunction, CompileError> {
        self.ctx.clear();
        trampolines::wasm_to_host(&mut self.ctx.func, &mut self.builder_ctx, &*self.isa, ty)?;
        let isa = self.isa.clone();
        self.finish(&*isa)
    }
}

/// The Cranelift type of a wasm value type: numbers as themselves, `v128` as `I8X16` (the
/// canonical vector type), references as pointer-sized integers.
pub(crate) fn value_type(ty: ValType) -> Option<ir::Type> {
    Some(match ty {
        ValType::I32 => types::I32,
        ValType::I64 => types::I64,
        ValType::F32 => types::F32,
        ValType::F64 => types::F64,
        ValType::V128 => types::I8X16,
        ValType::Ref(r)
            if r == wasmparser::RefType::FUNCREF || r == wasmparser::RefType::EXTERNREF =>
        {
            types::I64
        }
        ValType::Ref(_) => return None,
    })
}

/// Like [`value_type`], as a compile error for types outside WebAssembly 2.0.
pub(crate) fn value_type_or_err(ty: ValType, offset: usize) -> Result<ir::Type, CompileError> {
    value_type(ty).ok_or_else(|| {
        CompileError::unsupported(
            format!("value type {ty} is not supported by the baseline tier"),
            offset,
        )
    })
}

/// The Cranelift signature of a wasm function of type `ty` under the Spate ABI:
/// `(callee_vmctx, caller_vmctx, params.. [, ret_area]) -> [result]`.
pub(crate) fn wasm_signature(
    ty: &FuncType,
    call_conv: CallConv,
    offset: usize,
) -> Result<ir::Signature, CompileError> {
    let mut sig = ir::Signature::new(call_conv);
    sig.params
        .push(AbiParam::special(types::I64, ArgumentPurpose::VMContext));
    sig.params.push(AbiParam::new(types::I64));
    for &p in ty.params() {
        sig.params
            .push(AbiParam::new(value_type_or_err(p, offset)?));
    }
    match ty.results() {
        [] => {}
        [r] => sig
            .returns
            .push(AbiParam::new(value_type_or_err(*r, offset)?)),
        results => {
            for &r in results {
                value_type_or_err(r, offset)?;
            }
            sig.params.push(AbiParam::new(types::I64));
        }
    }
    Ok(sig)
}

/// The Cranelift trap code the generated code uses for a Spate trap.
pub(crate) fn cranelift_trap_code(code: TrapCode) -> ir::TrapCode {
    ir::TrapCode::unwrap_user(code as u8)
}

/// The Spate trap a Cranelift trap code stands for: user codes are Spate codes, and Cranelift's
/// own codes map to their Spate meaning.
pub(crate) fn spate_trap_code(code: ir::TrapCode) -> Option<TrapCode> {
    Some(match code {
        ir::TrapCode::STACK_OVERFLOW => TrapCode::StackOverflow,
        ir::TrapCode::HEAP_OUT_OF_BOUNDS => TrapCode::MemoryOutOfBounds,
        ir::TrapCode::INTEGER_OVERFLOW => TrapCode::IntegerOverflow,
        ir::TrapCode::INTEGER_DIVISION_BY_ZERO => TrapCode::IntegerDivisionByZero,
        ir::TrapCode::BAD_CONVERSION_TO_INTEGER => TrapCode::BadConversionToInteger,
        other => return TrapCode::from_u8(other.as_raw().get()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trap_codes_round_trip() {
        for code in TrapCode::ALL {
            assert_eq!(spate_trap_code(cranelift_trap_code(code)), Some(code));
        }
        assert_eq!(
            spate_trap_code(ir::TrapCode::HEAP_OUT_OF_BOUNDS),
            Some(TrapCode::MemoryOutOfBounds)
        );
        assert_eq!(
            spate_trap_code(ir::TrapCode::BAD_CONVERSION_TO_INTEGER),
            Some(TrapCode::BadConversionToInteger)
        );
        assert_eq!(
            spate_trap_code(ir::TrapCode::INTEGER_OVERFLOW),
            Some(TrapCode::IntegerOverflow)
        );
        assert_eq!(spate_trap_code(ir::TrapCode::unwrap_user(200)), None);
    }

    #[test]
    fn allocators_parse_by_name_and_loop_nests_is_the_default() {
        for r in [
            RegallocAlgorithm::SinglePass,
            RegallocAlgorithm::default(),
            RegallocAlgorithm::Backtracking,
        ] {
            assert_eq!(r.name().parse::<RegallocAlgorithm>(), Ok(r));
        }
        assert_eq!(
            CraneliftOptions::default().regalloc,
            RegallocAlgorithm::LoopNests {
                max_body_bytes: LOOP_NEST_MAX_BODY
            }
        );
        let err = "linear-scan".parse::<RegallocAlgorithm>().unwrap_err();
        assert!(err.contains("`linear-scan`") && err.contains("single-pass, loop-nests or"));
    }

    /// Calls `f` with the declarations and the body of the only function of the module `wat`.
    fn with_only_function<R>(wat: &str, f: impl FnOnce(&ModuleInfo, &FunctionBody<'_>) -> R) -> R {
        let bytes = wast::parser::parse::<wast::Wat>(&wast::parser::ParseBuffer::new(wat).unwrap())
            .unwrap()
            .encode()
            .unwrap();
        let mut info = ModuleInfo::default();
        let mut body = None;
        for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
            match payload.unwrap() {
                wasmparser::Payload::TypeSection(r) => {
                    for ty in r.into_iter_err_on_gc_types() {
                        info.types.push(ty.unwrap());
                    }
                }
                wasmparser::Payload::FunctionSection(r) => {
                    info.functions.extend(r.into_iter().map(Result::unwrap));
                }
                wasmparser::Payload::CodeSectionEntry(b) => body = Some(b),
                _ => {}
            }
        }
        f(&info, &body.expect("one function"))
    }

    /// Translates the only function of the module `wat` and returns what the translation found.
    fn translate_only_function(wat: &str) -> translate::Translated {
        with_only_function(wat, |info, body| {
            let mut compiler = CraneliftTier::new(CraneliftOptions::default())
                .unwrap()
                .compiler();
            let isa = compiler.isa.clone();
            translate::translate_function(
                &mut compiler.ctx.func,
                &mut compiler.builder_ctx,
                &mut compiler.state,
                &*isa,
                info,
                0,
                body,
                None,
            )
            .unwrap()
        })
    }

    #[test]
    fn the_translation_finds_loop_nests() {
        let nest = |body: &str| {
            translate_only_function(&format!("(module (func (param i32) {body}))")).loop_nest
        };
        assert!(!nest("(nop)"));
        assert!(!nest("(loop (br_if 0 (local.get 0)))"));
        assert!(!nest(
            "(loop (br_if 0 (local.get 0))) (loop (br_if 0 (local.get 0)))"
        ));
        assert!(nest(
            "(loop (loop (br_if 0 (local.get 0))) (br_if 0 (local.get 0)))"
        ));
        assert!(nest(
            "(loop (block (if (local.get 0) (then (loop (br_if 0 (local.get 0)))))) (br_if 0 \
             (local.get 0)))"
        ));
        // A loop only in unreachable code is not translated.
        assert!(!nest("(loop (unreachable) (loop (br 0)))"));
    }

    #[test]
    fn loop_nests_up_to_the_limit_get_the_backtracking_allocator() {
        let allocator = |regalloc, loop_nest, bytes| {
            let compiler = CraneliftTier::new(CraneliftOptions {
                regalloc,
                ..CraneliftOptions::default()
            })
            .unwrap()
            .compiler();
            let isa = compiler.isa_for(translate::Translated { loop_nest }, bytes);
            isa.flags().regalloc_algorithm().to_string()
        };
        let nests = RegallocAlgorithm::LoopNests {
            max_body_bytes: 100,
        };
        assert_eq!(allocator(nests, true, 100), "backtracking");
        assert_eq!(allocator(nests, true, 101), "single_pass");
        assert_eq!(allocator(nests, false, 10), "single_pass");
        for (loop_nest, bytes) in [(true, 10), (false, 10), (true, 1 << 20)] {
            let single = allocator(RegallocAlgorithm::SinglePass, loop_nest, bytes);
            assert_eq!(single, "single_pass");
            let all = allocator(RegallocAlgorithm::Backtracking, loop_nest, bytes);
            assert_eq!(all, "backtracking");
        }
        let default = RegallocAlgorithm::default();
        let limit = u64::from(LOOP_NEST_MAX_BODY);
        assert_eq!(allocator(default, true, limit), "backtracking");
        assert_eq!(allocator(default, true, limit + 1), "single_pass");
    }

    #[test]
    fn a_loop_nest_is_compiled_with_the_allocator_chosen_for_it() {
        // Two nested counted loops carrying an accumulator: the allocators' code differs.
        let wat = "(module (func (param i32) (result i32) (local i32 i32 i32)
            (loop $i
              (local.set 2 (i32.const 0))
              (loop $j
                (local.set 3 (i32.add (local.get 3) (i32.mul (local.get 1) (local.get 2))))
                (br_if $j (i32.lt_u (local.tee 2 (i32.add (local.get 2) (i32.const 1)))
                  (local.get 0))))
              (br_if $i (i32.lt_u (local.tee 1 (i32.add (local.get 1) (i32.const 1)))
                (local.get 0))))
            (local.get 3)))";
        let code = |regalloc| {
            with_only_function(wat, |info, body| {
                CraneliftTier::new(CraneliftOptions {
                    regalloc,
                    ..CraneliftOptions::default()
                })
                .unwrap()
                .compiler()
                .compile_function(info, 0, body, None)
                .unwrap()
                .code
            })
        };
        let single = code(RegallocAlgorithm::SinglePass);
        let backtracking = code(RegallocAlgorithm::Backtracking);
        assert_ne!(single, backtracking);
        let within = RegallocAlgorithm::LoopNests {
            max_body_bytes: 4096,
        };
        assert_eq!(code(within), backtracking);
        let beyond = RegallocAlgorithm::LoopNests { max_body_bytes: 8 };
        assert_eq!(code(beyond), single);
    }

    #[test]
    fn tier_is_named_cranelift() {
        let tier = CraneliftTier::new(CraneliftOptions::default()).unwrap();
        assert_eq!(tier.name(), "cranelift");
    }
}
