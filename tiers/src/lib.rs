//! The contract every Spate compiler tier compiles against.
//!
//! A tier turns one validated WebAssembly function body into machine code that the runtime can
//! call, swap and unwind without knowing which tier produced it. This crate holds everything both
//! sides must agree on, and nothing that generates code:
//!
//! * [`vmctx`]: the one definition of the `VMContext` layout and of the structures it points to,
//!   with the offsets compiled code uses;
//! * [`abi`]: the calling convention of wasm functions, trampolines and host functions;
//! * [`trap`]: trap codes and the per-function trap and source-location tables;
//! * [`libcall`]: the runtime functions compiled code reaches through the libcall table;
//! * [`loops`]: the loop numbering that names a loop between baseline code, the runtime and
//!   the optimizing tier (on-stack replacement);
//! * [`module`]: the module-level facts a tier needs (types, functions, tables, memories, globals);
//! * [`Tier`] / [`FunctionCompiler`]: the interface a tier implements.

pub mod abi;
pub mod libcall;
pub mod loops;
pub mod module;
pub mod trap;
pub mod vmctx;

pub use module::ModuleInfo;
pub use trap::{CompiledFunction, RegisterAllocator, TrapCode, TrapSite};

use wasmparser::{FuncType, FuncValidator, FunctionBody, ValidatorResources};

/// A compile error produced by a tier.
///
/// `offset` is the byte offset in the module where the problem was found, when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    /// Human-readable description of the problem.
    pub message: String,
    /// Byte offset in the module's binary, if known.
    pub offset: Option<usize>,
    /// Whether the error is a validation failure of the input (as opposed to a limitation of the
    /// tier, such as an operator it does not implement yet).
    pub kind: CompileErrorKind,
}

/// What kind of failure a [`CompileError`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompileErrorKind {
    /// The function body is not valid WebAssembly.
    Invalid,
    /// The tier does not support something in an otherwise valid body.
    Unsupported,
    /// The code generator failed (a bug or an implementation limit).
    Codegen,
}

impl CompileError {
    /// A validation failure at `offset`.
    pub fn invalid(message: impl Into<String>, offset: usize) -> Self {
        CompileError {
            message: message.into(),
            offset: Some(offset),
            kind: CompileErrorKind::Invalid,
        }
    }

    /// An unsupported feature at `offset`.
    pub fn unsupported(message: impl Into<String>, offset: usize) -> Self {
        CompileError {
            message: message.into(),
            offset: Some(offset),
            kind: CompileErrorKind::Unsupported,
        }
    }

    /// A code generator failure.
    pub fn codegen(message: impl Into<String>) -> Self {
        CompileError {
            message: message.into(),
            offset: None,
            kind: CompileErrorKind::Codegen,
        }
    }
}

impl From<wasmparser::BinaryReaderError> for CompileError {
    fn from(e: wasmparser::BinaryReaderError) -> Self {
        CompileError::invalid(e.message().to_string(), e.offset() as usize)
    }
}

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.offset {
            Some(off) => write!(f, "{} (at offset 0x{off:x})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for CompileError {}

/// A compiler tier: a factory of per-thread [`FunctionCompiler`]s.
///
/// A tier object is shared by every compile thread; each thread asks it for its own
/// `FunctionCompiler` once and reuses it for every function it compiles, so compilers may keep
/// per-thread state (contexts, arenas) without locking.
pub trait Tier: Send + Sync {
    /// Short name of the tier, such as `"cranelift"`.
    fn name(&self) -> &'static str;

    /// A new compiler for use on the calling thread.
    fn new_compiler(&self) -> Box<dyn FunctionCompiler>;
}

/// Compiles functions and trampolines on one thread.
pub trait FunctionCompiler {
    /// Compiles the body of the function with index `func_index` (in the module's function index
    /// space, imports included).
    ///
    /// When `validator` is given, the compiler feeds it every operator (and the locals) as it
    /// translates, so validation and translation are one pass; the first validation error is
    /// returned as a [`CompileErrorKind::Invalid`] error. Without it the body must already be
    /// known to be valid.
    fn compile_function(
        &mut self,
        module: &ModuleInfo,
        func_index: u32,
        body: &FunctionBody<'_>,
        validator: Option<&mut FuncValidator<ValidatorResources>>,
    ) -> Result<CompiledFunction, CompileError>;

    /// Compiles an on-stack-replacement entry of function `func_index` that starts at the header
    /// of loop `loop_index` (the zero-based count of `loop` operators before it in the body), with
    /// the signature described in [`abi`](crate::abi#on-stack-replacement-entries). The body is
    /// already validated. Tiers without OSR support return an
    /// [`Unsupported`](CompileErrorKind::Unsupported) error.
    fn compile_osr_entry(
        &mut self,
        module: &ModuleInfo,
        func_index: u32,
        body: &FunctionBody<'_>,
        loop_index: u32,
    ) -> Result<CompiledFunction, CompileError> {
        let _ = (module, func_index, body);
        Err(CompileError::unsupported(
            format!("this tier does not compile on-stack-replacement entries (loop {loop_index})"),
            body.range().start as usize,
        ))
    }

    /// Compiles one on-stack-replacement entry of function `func_index` that can start at the
    /// header of any of `loops` (ascending loop indices): the `loop_index` argument of the
    /// [entry](crate::abi#on-stack-replacement-entries) picks the loop. The loops are entered
    /// directly, so a loop enclosing another entered loop gets a second way in; the runtime passes
    /// loops where that costs little (see the engine's tier manager). Loops that cannot be entered
    /// (their operand stack is not empty, or they are unreachable) are left out; returns the entry
    /// and the loops it serves, never empty. `checked`, one of `loops`, is the loop the program is
    /// expected to be entered at (the runtime's guess: the first loop nest after the one running
    /// when it asked, or the nest itself when none follows): a tier may spend more compile time on
    /// that loop's way in, such as a copy of the loop specialised on checked facts about the values
    /// it starts from. Tiers without OSR support return an
    /// [`Unsupported`](CompileErrorKind::Unsupported) error.
    fn compile_osr_entries(
        &mut self,
        module: &ModuleInfo,
        func_index: u32,
        body: &FunctionBody<'_>,
        loops: &[u32],
        checked: Option<u32>,
    ) -> Result<(CompiledFunction, Vec<u32>), CompileError> {
        let _ = (module, func_index, loops, checked);
        Err(CompileError::unsupported(
            "this tier does not compile on-stack-replacement entries",
            body.range().start as usize,
        ))
    }

    /// Compiles a *region* entry of function `func_index`: the code of loop `region` alone
    /// (the loops inside it included), with the signature of any
    /// [OSR entry](crate::abi#on-stack-replacement-entries). It is entered directly at the
    /// header of any of `loops` (ascending loop indices, `region` itself or loops inside it;
    /// loops inside it only when `region` is inside no other loop, see the ABI), picked by the
    /// entry's `loop_index` argument. When the program leaves the region's loop (past its
    /// `end`, or by a branch to an enclosing label) the entry writes the locals back and
    /// returns an exit code in the status slot, and the baseline code continues from there; a
    /// `return` inside the loop returns from the function as usual. So its compile time
    /// depends on the loop, not on the function around it. `checked`, one of `loops`, has the
    /// meaning it has for [`compile_osr_entries`](Self::compile_osr_entries). Returns the entry
    /// and the loops it serves (those of `loops` that can be entered, never empty). A region
    /// whose exits would carry values (a branch out to a label that takes operands, or a loop
    /// with results), or that has parameters, is [`Unsupported`](CompileErrorKind::Unsupported),
    /// as are tiers without OSR support.
    fn compile_osr_region(
        &mut self,
        module: &ModuleInfo,
        func_index: u32,
        body: &FunctionBody<'_>,
        region: u32,
        loops: &[u32],
        checked: Option<u32>,
    ) -> Result<(CompiledFunction, Vec<u32>), CompileError> {
        let _ = (module, func_index, loops, checked);
        Err(CompileError::unsupported(
            format!("this tier does not compile on-stack-replacement regions (loop {region})"),
            body.range().start as usize,
        ))
    }

    /// A trampoline with the [`abi::HostToWasmTrampoline`] signature for wasm functions of type
    /// `ty`: it reads the parameters from a [`abi::ValRaw`] array, calls the function and writes
    /// the results back to the same array.
    fn host_to_wasm_trampoline(&mut self, ty: &FuncType) -> Result<CompiledFunction, CompileError>;

    /// A function with the wasm calling convention for type `ty` whose body spills its
    /// parameters to a [`abi::ValRaw`] array on its stack, calls the [`abi::HostFunc`] stored at
    /// offset 0 of its callee context, and returns the results the host wrote into the array.
    fn wasm_to_host_trampoline(&mut self, ty: &FuncType) -> Result<CompiledFunction, CompileError>;
}
