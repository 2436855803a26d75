//! Spate's optimizing tier: WebAssembly function bodies to machine code through LLVM 19.
//!
//! Each function body is translated (validating it at the same time when the caller hands over
//! a validator) into LLVM IR in a module of its own, optimized with a [`Pipeline`] (by default
//! the lean one made for code a WebAssembly producer has already optimized; LLVM's full
//! `default<O3>` or `O2` on request), compiled for the host CPU as position-independent code,
//! and turned into one self-contained blob: the function at offset 0 followed by its read-only
//! data, with every relocation applied (see the module `object`). The code follows the
//! contract of [`spate_tiers`] exactly like the Cranelift baseline tier, with two differences:
//!
//! * it does not list its trap sites: every trap other than an out-of-bounds linear-memory
//!   access is an explicit check that calls the `RaiseTrap` libcall, and any fault inside the
//!   code is an access in a memory's guard region, so
//!   [`CompiledFunction::fault_trap`] is [`TrapCode::MemoryOutOfBounds`];
//! * it emits no tier-up budget checks (optimized code never tiers up).
//!
//! With the environment variable `SPATE_LLVM_DUMP` set to a directory, every compile writes
//! `f<index>[-osr<loops>|-region<loop>].ll` (the translated IR), `.opt.ll` (after the pipeline and the
//! indirect-prefetch pass, module `prefetch`) and `.s` (the machine code) there, e.g. to time a pipeline with `opt-19 -passes='default<O3>'
//! -time-passes` (see [`Pipeline::passes`]) or to compare hot loops with native code.
//!
//! It also compiles on-stack-replacement entries, for one loop reached through its enclosing
//! loops ([`FunctionCompiler::compile_osr_entry`]), for several loops entered directly
//! ([`FunctionCompiler::compile_osr_entries`]), or for one loop alone that returns to the
//! baseline when the program leaves it, entered at its header or at loops inside it
//! ([`FunctionCompiler::compile_osr_region`]). It does not compile trampolines: the engine always
//! builds them with the baseline tier, so [`FunctionCompiler::host_to_wasm_trampoline`] and
//! [`FunctionCompiler::wasm_to_host_trampoline`] return an
//! [`Unsupported`](spate_tiers::CompileErrorKind::Unsupported) error.
//!
//! ```no_run
//! use spate_tier_llvm::{LlvmOptions, LlvmTier};
//! use spate_tiers::Tier;
//!
//! let tier = LlvmTier::new(LlvmOptions::default()).expect("host supported by LLVM");
//! let mut compiler = tier.new_compiler();
//! # let _ = &mut compiler;
//! ```

mod object;
mod prefetch;
mod translate;

use std::sync::Once;

use inkwell::OptimizationLevel;
use inkwell::context::Context;
use inkwell::module::Module;
use inkwell::passes::PassBuilderOptions;
use inkwell::targets::{
    CodeModel, FileType, InitializationConfig, RelocMode, Target, TargetMachine, TargetTriple,
};
use spate_tiers::{CompileError, CompiledFunction, FunctionCompiler, ModuleInfo, Tier, TrapCode};
use wasmparser::{FuncType, FuncValidator, FunctionBody, ValidatorResources};

use translate::{EntryKind, FUNCTION_SYMBOL};

/// The LLVM pass pipeline the tier runs on every translated function.
///
/// A WebAssembly module is nearly always the output of an optimizing compiler (clang, rustc and
/// the like at `-O2`/`-O3`): its functions are already inlined, unrolled and vectorized, and
/// running LLVM's whole `default<O3>` pipeline over them again mostly repeats that work. What the
/// translation itself leaves to do is promoting locals to registers, folding the engine's
/// address arithmetic, hoisting loads of the memory base and globals out of loops, and adapting
/// loop unrolling to the host CPU, which [`Pipeline::Lean`] does in a third to a half of the time
/// (`benches/`: the same run time on the C kernels, 2-3x less LLVM time). Modules built without
/// optimization want [`Pipeline::O3`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pipeline {
    /// SROA, early CSE, CFG and instruction simplification, LICM, GVN and loop unrolling, then
    /// a clean-up; code generation at LLVM's aggressive level. The default.
    #[default]
    Lean,
    /// LLVM's `default<O2>` pipeline; code generation at LLVM's default level.
    O2,
    /// LLVM's `default<O3>` pipeline; code generation at LLVM's aggressive level.
    O3,
}

impl Pipeline {
    /// The pipeline in LLVM's textual pass-pipeline syntax (what `opt -passes=` takes).
    pub fn passes(self) -> &'static str {
        match self {
            // InstCombine without its fix-point check: that check is a debugging aid that
            // aborts the process when a second round would still change something.
            Pipeline::Lean => {
                "function(sroa<modify-cfg>,early-cse<memssa>,simplifycfg,\
                 instcombine<no-verify-fixpoint>,loop-mssa(licm<allowspeculation>),gvn,\
                 loop-unroll<O3>,instcombine<no-verify-fixpoint>,simplifycfg)"
            }
            Pipeline::O2 => "default<O2>",
            Pipeline::O3 => "default<O3>",
        }
    }

    /// The name `spate --llvm-pipeline` takes and the benchmarks print: `lean`, `o2` or `o3`.
    pub fn name(self) -> &'static str {
        match self {
            Pipeline::Lean => "lean",
            Pipeline::O2 => "o2",
            Pipeline::O3 => "o3",
        }
    }

    fn codegen_level(self) -> OptimizationLevel {
        match self {
            Pipeline::O2 => OptimizationLevel::Default,
            Pipeline::Lean | Pipeline::O3 => OptimizationLevel::Aggressive,
        }
    }
}

impl std::str::FromStr for Pipeline {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "lean" => Ok(Pipeline::Lean),
            "o2" => Ok(Pipeline::O2),
            "o3" => Ok(Pipeline::O3),
            _ => Err(format!(
                "unknown LLVM pipeline `{s}` (expected lean, o2 or o3)"
            )),
        }
    }
}

/// Settings of the LLVM tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LlvmOptions {
    /// The pass pipeline (default: [`Pipeline::Lean`]).
    pub pipeline: Pipeline,
    /// Whether to prefetch indirect memory accesses in loops, such as `out[count[key[i]]]`
    /// (default: on). See the `prefetch` pass; it never changes results.
    pub prefetch_indirect: bool,
}

impl Default for LlvmOptions {
    fn default() -> Self {
        LlvmOptions {
            pipeline: Pipeline::default(),
            prefetch_indirect: true,
        }
    }
}

/// How many functions a compiler translates in one LLVM context before starting a fresh one
/// (a context keeps every type and constant ever created in it).
const FUNCTIONS_PER_CONTEXT: u32 = 500;

/// The LLVM optimizing tier: a factory of per-thread [`LlvmCompiler`]s.
///
/// The target (the host CPU and its features, PIC, small code model) is chosen once; every
/// compiler creates its own LLVM context and target machine on its own thread.
#[derive(Debug, Clone)]
pub struct LlvmTier {
    options: LlvmOptions,
    triple: String,
    cpu: String,
    features: String,
}

static INIT: Once = Once::new();

impl LlvmTier {
    /// A tier with the given options, generating code for the host CPU.
    ///
    /// Fails with a [`Codegen`](spate_tiers::CompileErrorKind::Codegen) error when LLVM cannot
    /// generate code for the host.
    pub fn new(options: LlvmOptions) -> Result<Self, CompileError> {
        INIT.call_once(|| Target::initialize_x86(&InitializationConfig::default()));
        let triple = TargetMachine::get_default_triple();
        let triple_str = triple.as_str().to_string_lossy().into_owned();
        if !triple_str.starts_with("x86_64") {
            return Err(CompileError::codegen(format!(
                "the LLVM tier generates x86-64 code; the host is {triple_str}"
            )));
        }
        let tier = LlvmTier {
            options,
            triple: triple_str,
            cpu: TargetMachine::get_host_cpu_name().to_string(),
            features: TargetMachine::get_host_cpu_features().to_string(),
        };
        // Fail now rather than in every compiler.
        tier.target_machine()?;
        Ok(tier)
    }

    /// The options this tier was created with.
    pub fn options(&self) -> &LlvmOptions {
        &self.options
    }

    fn target_machine(&self) -> Result<TargetMachine, CompileError> {
        let triple = TargetTriple::create(&self.triple);
        let target = Target::from_triple(&triple).map_err(|e| {
            CompileError::codegen(format!("LLVM has no target {}: {e}", self.triple))
        })?;
        target
            .create_target_machine(
                &triple,
                &self.cpu,
                &self.features,
                self.options.pipeline.codegen_level(),
                RelocMode::PIC,
                CodeModel::Small,
            )
            .ok_or_else(|| {
                CompileError::codegen(format!(
                    "LLVM cannot create a target machine for {} ({})",
                    self.triple, self.cpu
                ))
            })
    }

    /// A compiler for use on the calling thread, with its concrete type.
    pub fn compiler(&self) -> Result<LlvmCompiler, CompileError> {
        Ok(LlvmCompiler {
            context: Context::create(),
            machine: self.target_machine()?,
            pipeline: self.options.pipeline,
            prefetch_indirect: self.options.prefetch_indirect,
            compiled_in_context: 0,
            prefetches: std::cell::Cell::new(0),
        })
    }
}

impl Tier for LlvmTier {
    fn name(&self) -> &'static str {
        "llvm"
    }

    fn new_compiler(&self) -> Box<dyn FunctionCompiler> {
        // `new` created a target machine with the same settings, so this cannot fail.
        Box::new(
            self.compiler()
                .expect("target machine creation succeeded in LlvmTier::new"),
        )
    }
}

/// Compiles functions on one thread, with its own LLVM context and target machine.
pub struct LlvmCompiler {
    context: Context,
    machine: TargetMachine,
    pipeline: Pipeline,
    prefetch_indirect: bool,
    compiled_in_context: u32,
    /// Prefetches the indirect-prefetch pass added, over every compile.
    prefetches: std::cell::Cell<u64>,
}

impl std::fmt::Debug for LlvmCompiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlvmCompiler")
            .field("pipeline", &self.pipeline)
            .finish_non_exhaustive()
    }
}

impl LlvmCompiler {
    fn compile(
        &mut self,
        module: &ModuleInfo,
        func_index: u32,
        body: &FunctionBody<'_>,
        validator: Option<&mut FuncValidator<ValidatorResources>>,
        kind: EntryKind<'_>,
    ) -> Result<(CompiledFunction, Vec<u32>), CompileError> {
        self.compiled_in_context += 1;
        if self.compiled_in_context > FUNCTIONS_PER_CONTEXT {
            self.context = Context::create();
            self.compiled_in_context = 1;
        }
        let (llvm_module, entered) = translate::translate_function(
            &self.context,
            module,
            func_index,
            body,
            validator,
            kind,
        )?;
        let list = |loops: &[u32]| {
            loops
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join("_")
        };
        let name = match kind {
            EntryKind::Function => format!("f{func_index}"),
            EntryKind::Osr { loop_index } => format!("f{func_index}-osr{loop_index}"),
            EntryKind::OsrDirect { loops, .. } => format!("f{func_index}-osr{}", list(loops)),
            EntryKind::OsrRegion { region, loops, .. } if loops == [region] => {
                format!("f{func_index}-region{region}")
            }
            EntryKind::OsrRegion { region, loops, .. } => {
                format!("f{func_index}-region{region}-at{}", list(loops))
            }
        };
        let code = self.finish(&llvm_module, &name)?;
        let function = CompiledFunction {
            code,
            traps: Vec::new(),
            srclocs: Vec::new(),
            fault_trap: Some(TrapCode::MemoryOutOfBounds),
            ..CompiledFunction::default()
        };
        Ok((function, entered))
    }

    /// How many indirect-access prefetches this compiler has added, over all its compiles.
    pub fn prefetches_added(&self) -> u64 {
        self.prefetches.get()
    }

    /// Verifies (in debug builds), optimizes and compiles `module`, and links the result.
    fn finish(&self, module: &Module<'_>, name: &str) -> Result<Vec<u8>, CompileError> {
        module.set_triple(&self.machine.get_triple());
        module.set_data_layout(&self.machine.get_target_data().get_data_layout());
        if cfg!(debug_assertions) {
            verify(module, "the translated function")?;
        }
        let dump = std::env::var_os("SPATE_LLVM_DUMP").map(std::path::PathBuf::from);
        if let Some(dir) = &dump {
            // Best effort: a debugging aid, never a compile failure.
            let _ = std::fs::create_dir_all(dir);
            let _ = module.print_to_file(dir.join(format!("{name}.ll")));
        }
        module
            .run_passes(
                self.pipeline.passes(),
                &self.machine,
                PassBuilderOptions::create(),
            )
            .map_err(|e| CompileError::codegen(format!("LLVM optimization failed: {e}")))?;
        if self.prefetch_indirect {
            let added = u64::from(prefetch::insert(module));
            self.prefetches.set(self.prefetches.get() + added);
            if cfg!(debug_assertions) && added > 0 {
                verify(module, "the function after the prefetch pass")?;
            }
        }
        if let Some(dir) = &dump {
            let _ = module.print_to_file(dir.join(format!("{name}.opt.ll")));
            let _ = self.machine.write_to_file(
                module,
                FileType::Assembly,
                &dir.join(format!("{name}.s")),
            );
        }
        let buffer = self
            .machine
            .write_to_memory_buffer(module, FileType::Object)
            .map_err(|e| CompileError::codegen(format!("LLVM code generation failed: {e}")))?;
        object::link(buffer.as_slice(), FUNCTION_SYMBOL)
    }
}

/// Runs LLVM's verifier over `module` (`what` names the stage in the error).
fn verify(module: &Module<'_>, what: &str) -> Result<(), CompileError> {
    module.verify().map_err(|e| {
        CompileError::codegen(format!(
            "LLVM rejected {what}: {}\n{}",
            e.to_string(),
            module.print_to_string().to_string()
        ))
    })
}

impl FunctionCompiler for LlvmCompiler {
    fn compile_function(
        &mut self,
        module: &ModuleInfo,
        func_index: u32,
        body: &FunctionBody<'_>,
        validator: Option<&mut FuncValidator<ValidatorResources>>,
    ) -> Result<CompiledFunction, CompileError> {
        self.compile(module, func_index, body, validator, EntryKind::Function)
            .map(|(f, _)| f)
    }

    fn compile_osr_entry(
        &mut self,
        module: &ModuleInfo,
        func_index: u32,
        body: &FunctionBody<'_>,
        loop_index: u32,
    ) -> Result<CompiledFunction, CompileError> {
        self.compile(
            module,
            func_index,
            body,
            None,
            EntryKind::Osr { loop_index },
        )
        .map(|(f, _)| f)
    }

    fn compile_osr_entries(
        &mut self,
        module: &ModuleInfo,
        func_index: u32,
        body: &FunctionBody<'_>,
        loops: &[u32],
        checked: Option<u32>,
    ) -> Result<(CompiledFunction, Vec<u32>), CompileError> {
        self.compile(
            module,
            func_index,
            body,
            None,
            EntryKind::OsrDirect { loops, checked },
        )
    }

    fn compile_osr_region(
        &mut self,
        module: &ModuleInfo,
        func_index: u32,
        body: &FunctionBody<'_>,
        region: u32,
        loops: &[u32],
        checked: Option<u32>,
    ) -> Result<(CompiledFunction, Vec<u32>), CompileError> {
        self.compile(
            module,
            func_index,
            body,
            None,
            EntryKind::OsrRegion {
                region,
                loops,
                checked,
            },
        )
    }

    fn host_to_wasm_trampoline(&mut self, ty: &FuncType) -> Result<CompiledFunction, CompileError> {
        Err(CompileError::unsupported(
            format!(
                "the LLVM tier compiles no trampolines (for {ty}); the engine builds them with \
                 the baseline tier"
            ),
            0,
        ))
    }

    fn wasm_to_host_trampoline(&mut self, ty: &FuncType) -> Result<CompiledFunction, CompileError> {
        Err(CompileError::unsupported(
            format!(
                "the LLVM tier compiles no trampolines (for {ty}); the engine builds them with \
                 the baseline tier"
            ),
            0,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tier_is_named_llvm() {
        let tier = LlvmTier::new(LlvmOptions::default()).unwrap();
        assert_eq!(tier.name(), "llvm");
    }

    #[test]
    fn pipelines_parse_by_name_and_lean_is_the_default() {
        assert_eq!(LlvmOptions::default().pipeline, Pipeline::Lean);
        for p in [Pipeline::Lean, Pipeline::O2, Pipeline::O3] {
            assert_eq!(p.name().parse::<Pipeline>(), Ok(p));
        }
        assert_eq!("O3".parse::<Pipeline>(), Ok(Pipeline::O3));
        let err = "o1".parse::<Pipeline>().unwrap_err();
        assert!(
            err.contains("`o1`") && err.contains("lean, o2 or o3"),
            "{err}"
        );
    }
}
