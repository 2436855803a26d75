//! WebAssembly function bodies to Cranelift IR, in one pass over the operators.
//!
//! The translator keeps the wasm operand stack as a stack of SSA values, wasm locals as
//! Cranelift [`Variable`]s, and a control stack mapping wasm blocks, loops and ifs to Cranelift
//! blocks whose parameters carry the wasm block parameters and results. Code after an
//! unconditional transfer (`unreachable`, `br`, `br_table`, `return`) is skipped up to the `end`
//! or `else` that makes code reachable again.
//!
//! The work is split by operator family:
//! * [`control`]: blocks, branches, returns, `unreachable`, tier-up budget checks;
//! * [`numeric`]: integer and floating-point arithmetic, comparisons and conversions;
//! * [`memory`]: loads and stores, `memory.*` and `data.drop`;
//! * [`calls`]: direct and indirect calls, libcalls, tables and references;
//! * `simd`: 128-bit SIMD operators (written separately, against the interface of
//!   [`FuncTranslator`] documented here).

mod calls;
mod control;
mod memory;
mod numeric;
mod simd;

use std::collections::HashMap;

use cranelift_codegen::ir::immediates::Offset32;
use cranelift_codegen::ir::{
    self, AbiParam, ArgumentPurpose, BlockArg, ConstantData, Endianness, Function, GlobalValueData,
    InstBuilder, MemFlagsData, SigRef, SourceLoc, StackSlot, UserFuncName, Value, types,
};
use cranelift_codegen::isa::{CallConv, TargetIsa};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use spate_tiers::libcall::Libcall;
use spate_tiers::vmctx::{
    VMCTX_GLOBALS, VMCTX_LIMITS, VMCTX_MEMORIES, VMCTX_MEMORY, VMLIMITS_STACK_LIMIT, VMMEMORY_BASE,
};
use spate_tiers::{CompileError, ModuleInfo};
use wasmparser::{
    BlockType, FuncType, FuncValidator, FunctionBody, MemArg, Operator, OperatorsReader,
    OperatorsReaderAllocations, ValType, ValidatorResources,
};

use crate::{value_type_or_err, wasm_signature};
use control::ControlFrame;

/// Most locals a function may declare (the limit wasmparser's validator enforces too).
const MAX_LOCALS: u32 = 50_000;

/// Buffers reused from one function to the next, so translating a function allocates little.
#[derive(Default)]
pub(crate) struct TranslatorState {
    /// Whether to emit OSR transfers (`CraneliftOptions::osr`).
    osr: bool,
    stack: Vec<Value>,
    control: Vec<ControlFrame>,
    locals: Vec<Variable>,
    signatures: HashMap<u32, SigRef>,
    reader_allocs: OperatorsReaderAllocations,
}

impl TranslatorState {
    /// Whether OSR transfers are on.
    pub(crate) fn osr(&self) -> bool {
        self.osr
    }

    /// Fresh buffers; `osr` turns on-stack-replacement transfers on.
    pub(crate) fn new(osr: bool) -> Self {
        TranslatorState {
            osr,
            ..TranslatorState::default()
        }
    }
}

/// The state of the translation of one function body.
///
/// `builder` and `stack` are the translator's working state: `stack` is the wasm operand stack
/// (v128 values are always `I8X16`); the methods below are the interface the operator families
/// (including the SIMD translation) use.
pub(crate) struct FuncTranslator<'a> {
    /// The Cranelift function builder, positioned where the next operator's code goes.
    pub(crate) builder: FunctionBuilder<'a>,
    /// The wasm operand stack.
    pub(crate) stack: Vec<Value>,
    module: &'a ModuleInfo,
    call_conv: CallConv,
    /// Index of this function among the module's defined functions.
    def_index: u32,
    /// The function's own `VMContext` (its first parameter).
    vmctx: Value,
    /// The multi-value return area parameter, when the function has more than one result.
    ret_area: Option<Value>,
    /// Number of results of the function.
    num_results: usize,
    /// Base address of memory 0, loaded once in the entry block (it never moves).
    memory_base: Option<Value>,
    /// Wasm locals (parameters first).
    locals: Vec<Variable>,
    /// The Cranelift type of each local (for reloading locals after an OSR exit).
    local_types: Vec<ir::Type>,
    control: Vec<ControlFrame>,
    /// Whether the code being translated is reachable.
    reachable: bool,
    /// Depth of blocks opened in unreachable code, whose `end`s must be skipped.
    unreachable_depth: u32,
    /// Imported signatures of wasm function types, by type index.
    signatures: HashMap<u32, SigRef>,
    /// Imported libcall signatures.
    libcall_signatures: [Option<SigRef>; Libcall::COUNT],
    /// The stack slot used as return area of multi-value calls (sized for the largest).
    call_ret_area: Option<StackSlot>,
    /// Scratch buffer for branch arguments.
    block_args: Vec<BlockArg>,
    /// Scratch buffer for call arguments.
    call_args: Vec<Value>,
    /// `loop` operators translated so far (the index of the next loop, for OSR).
    loop_count: u32,
    /// The signature of this function's OSR entries, once imported.
    osr_sig: Option<SigRef>,
    /// Whether this function gets OSR transfers (the option, and few enough locals).
    osr: bool,
    /// The stack slot the locals are spilled to for an OSR transfer, shared by all its loops.
    osr_slot: Option<StackSlot>,
    /// The stack slot a register-preserving libcall stores its result in (see
    /// `calls::FuncTranslator::libcall`).
    libcall_out: Option<StackSlot>,
    /// For each local, the value of `loop_count` when it was last written (0: never), so that
    /// at a loop's end the locals written inside it are those written at or after its index
    /// plus one (see `control::OsrExit`).
    last_write: Vec<u32>,
    /// Whether a loop header with an OSR transfer was emitted (the function then counts its
    /// calls, see [`FuncTranslator::count_calls`]).
    has_osr_loop: bool,
    /// Whether a reachable loop was translated inside another loop.
    loop_nest: bool,
}

/// What the translation of a body found out about it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Translated {
    /// Whether the body has a reachable loop inside another loop.
    pub(crate) loop_nest: bool,
}

/// Translates `body`, the body of function `func_index` of `module`, into `func`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn translate_function(
    func: &mut Function,
    builder_ctx: &mut FunctionBuilderContext,
    state: &mut TranslatorState,
    isa: &dyn TargetIsa,
    module: &ModuleInfo,
    func_index: u32,
    body: &FunctionBody<'_>,
    validator: Option<&mut FuncValidator<ValidatorResources>>,
) -> Result<Translated, CompileError> {
    let body_offset = body.range().start as usize;
    check_module_support(module, body_offset)?;
    let def_index = module
        .defined_func_index(func_index)
        .filter(|&i| i < module.num_defined_functions())
        .ok_or_else(|| {
            CompileError::codegen(format!("function {func_index} is not a defined function"))
        })?;
    let ty = module.func_type(func_index);
    let call_conv = isa.default_call_conv();
    func.signature = wasm_signature(ty, call_conv, body_offset)?;
    func.name = UserFuncName::user(0, func_index);

    let builder = FunctionBuilder::new(func, builder_ctx);
    let mut t = FuncTranslator {
        builder,
        stack: std::mem::take(&mut state.stack),
        module,
        call_conv,
        def_index,
        // Set to the first parameter as soon as the entry block exists.
        vmctx: Value::from_u32(0),
        ret_area: None,
        num_results: ty.results().len(),
        memory_base: None,
        locals: std::mem::take(&mut state.locals),
        local_types: Vec::new(),
        control: std::mem::take(&mut state.control),
        reachable: true,
        unreachable_depth: 0,
        signatures: std::mem::take(&mut state.signatures),
        libcall_signatures: [None; Libcall::COUNT],
        call_ret_area: None,
        block_args: Vec::new(),
        call_args: Vec::new(),
        loop_count: 0,
        osr_sig: None,
        osr: state.osr,
        osr_slot: None,
        libcall_out: None,
        last_write: Vec::new(),
        has_osr_loop: false,
        loop_nest: false,
    };
    t.stack.clear();
    t.locals.clear();
    t.control.clear();
    t.signatures.clear();
    let allocs = std::mem::take(&mut state.reader_allocs);
    let result = t.translate_body(ty, body, validator, body_offset, allocs);
    state.stack = std::mem::take(&mut t.stack);
    state.locals = std::mem::take(&mut t.locals);
    state.control = std::mem::take(&mut t.control);
    state.signatures = std::mem::take(&mut t.signatures);
    match result {
        Ok(allocs) => {
            state.reader_allocs = allocs;
            t.builder.finalize(isa.frontend_config());
            Ok(Translated {
                loop_nest: t.loop_nest,
            })
        }
        Err(e) => {
            // The builder was abandoned half-way: start the next function from a fresh context.
            drop(t);
            *builder_ctx = FunctionBuilderContext::new();
            Err(e)
        }
    }
}

/// Rejects modules whose memories or tables the baseline tier cannot address.
fn check_module_support(module: &ModuleInfo, offset: usize) -> Result<(), CompileError> {
    if module
        .memories
        .iter()
        .any(|m| m.memory64 || m.shared || m.page_size_log2.is_some_and(|p| p != 16))
    {
        return Err(CompileError::unsupported(
            "only unshared 32-bit memories with 64 KiB pages are supported",
            offset,
        ));
    }
    if module.tables.iter().any(|t| t.table64 || t.shared) {
        return Err(CompileError::unsupported(
            "64-bit and shared tables are not supported",
            offset,
        ));
    }
    Ok(())
}

/// The parameter and result types of a block.
#[derive(Clone, Copy)]
pub(crate) enum BlockSig<'m> {
    Empty,
    Single(ValType),
    Func(&'m FuncType),
}

impl BlockSig<'_> {
    pub(crate) fn params(&self) -> &[ValType] {
        match self {
            BlockSig::Func(f) => f.params(),
            _ => &[],
        }
    }

    pub(crate) fn results(&self) -> &[ValType] {
        match self {
            BlockSig::Empty => &[],
            BlockSig::Single(t) => std::slice::from_ref(t),
            BlockSig::Func(f) => f.results(),
        }
    }
}

/// Memory flags of accesses to runtime data structures that cannot fault and are aligned.
pub(crate) fn trusted() -> MemFlagsData {
    MemFlagsData::trusted().with_endianness(Endianness::Little)
}

/// Like [`trusted`], for data that does not change while the function runs.
pub(crate) fn trusted_readonly() -> MemFlagsData {
    trusted().with_readonly()
}

impl<'a> FuncTranslator<'a> {
    /// The signature of an OSR entry of this function (`spate_tiers::abi`): contexts, the
    /// locals array, the loop's index, the return area if any, and the function's single result
    /// if it has one.
    pub(crate) fn osr_signature(&mut self) -> SigRef {
        if let Some(sig) = self.osr_sig {
            return sig;
        }
        let mut sig = ir::Signature::new(self.call_conv);
        sig.params
            .push(AbiParam::special(types::I64, ArgumentPurpose::VMContext));
        sig.params.push(AbiParam::new(types::I64));
        sig.params.push(AbiParam::new(types::I64));
        sig.params.push(AbiParam::new(types::I32));
        if self.ret_area.is_some() {
            sig.params.push(AbiParam::new(types::I64));
        }
        // The function's own signature already has the right result: reuse it.
        let own = self.builder.func.signature.returns.clone();
        sig.returns = own;
        let sig = self.builder.import_signature(sig);
        self.osr_sig = Some(sig);
        sig
    }

    /// Pops the value on top of the stack.
    pub(crate) fn pop1(&mut self) -> Value {
        self.stack
            .pop()
            .expect("wasm operand stack underflow (the body was not validated)")
    }

    /// Pops two values `(a, b)`; `b` was on top.
    pub(crate) fn pop2(&mut self) -> (Value, Value) {
        let b = self.pop1();
        let a = self.pop1();
        (a, b)
    }

    /// Pops three values `(a, b, c)`; `c` was on top.
    pub(crate) fn pop3(&mut self) -> (Value, Value, Value) {
        let c = self.pop1();
        let (a, b) = self.pop2();
        (a, b, c)
    }

    /// Pushes a value.
    pub(crate) fn push(&mut self, v: Value) {
        self.stack.push(v);
    }

    /// Pops the `i32` index of a memory access and returns its native address: memory base plus
    /// zero-extended index plus `memarg.offset`, all in 64 bits (so it never wraps). No bounds
    /// check: the memory's guard reservation makes any out-of-bounds access fault, and accesses
    /// with [`Self::heap_flags`] are trap sites.
    #[allow(
        dead_code,
        reason = "interface for operator families (SIMD) that need a plain address"
    )]
    pub(crate) fn heap_addr(&mut self, memarg: &MemArg) -> Value {
        let (addr, offset) = self.heap_addr_and_offset(memarg);
        if offset == 0 {
            addr
        } else {
            self.builder.ins().iadd_imm_s(addr, i64::from(offset))
        }
    }

    /// Like [`Self::heap_addr`], but returns an offset that fits a load/store immediate
    /// separately, so it can be folded into the access's addressing mode.
    pub(crate) fn heap_addr_and_offset(&mut self, memarg: &MemArg) -> (Value, i32) {
        let index = self.pop1();
        let mem = match memarg.target {
            wasmparser::MemArgTarget::Memory(mem) => mem,
            wasmparser::MemArgTarget::Array(_) => {
                panic!(
                    "a GC array access reached linear-memory addressing (rejected by validation)"
                )
            }
        };
        let base = self.memory_base_of(mem);
        let index = self.builder.ins().uextend(types::I64, index);
        let addr = self.builder.ins().iadd(base, index);
        match i32::try_from(memarg.offset) {
            Ok(offset) => (addr, offset),
            Err(_) => {
                // Offsets up to u32::MAX: a 64-bit add (no 32-bit wrap-around).
                let offset = memarg.offset as i64;
                (self.builder.ins().iadd_imm_s(addr, offset), 0)
            }
        }
    }

    /// Base address of memory `mem`: memory 0's was loaded once in the entry block; other
    /// memories (multi-memory) are reached through `vmctx.memories` at each access.
    fn memory_base_of(&mut self, mem: u32) -> Value {
        if mem == 0 {
            return self
                .memory_base
                .expect("memory access in a module without memory (the body was not validated)");
        }
        let memory = self.memory_def(mem);
        self.builder
            .ins()
            .load(types::I64, trusted_readonly(), memory, VMMEMORY_BASE)
    }

    /// The `VMMemory` of memory `mem`.
    pub(crate) fn memory_def(&mut self, mem: u32) -> Value {
        if mem == 0 {
            return self.vmctx_load(VMCTX_MEMORY, trusted_readonly());
        }
        let memories = self.vmctx_load(VMCTX_MEMORIES, trusted_readonly());
        self.builder.ins().load(
            types::I64,
            trusted_readonly(),
            memories,
            i32::try_from(mem).expect("memory index fits") * 8,
        )
    }

    /// Flags of a linear-memory access: little-endian, trapping with `HEAP_OUT_OF_BOUNDS` (the
    /// faulting instruction is recorded as a trap site).
    ///
    /// In this Cranelift version loads and stores take [`MemFlagsData`] (`ir::MemFlags` is an
    /// index into the function's flag set).
    pub(crate) fn heap_flags(&self) -> MemFlagsData {
        MemFlagsData::new()
            .with_endianness(Endianness::Little)
            .with_trap_code(Some(ir::TrapCode::HEAP_OUT_OF_BOUNDS))
    }

    /// Whether the code being translated is reachable. Operators in unreachable code are
    /// skipped, so translation functions only ever see reachable code.
    pub(crate) fn is_reachable(&self) -> bool {
        self.reachable
    }

    /// The Cranelift type of a value.
    pub(crate) fn value_type(&self, v: Value) -> ir::Type {
        self.builder.func.dfg.value_type(v)
    }

    /// Loads `ty` from `base + offset` (any 64-bit offset).
    pub(crate) fn load_at(
        &mut self,
        ty: ir::Type,
        flags: MemFlagsData,
        base: Value,
        offset: u64,
    ) -> Value {
        match i32::try_from(offset) {
            Ok(off) => self.builder.ins().load(ty, flags, base, off),
            Err(_) => {
                let addr = self.builder.ins().iadd_imm_s(base, offset as i64);
                self.builder.ins().load(ty, flags, addr, 0)
            }
        }
    }

    /// Loads a pointer-sized field of the `VMContext`.
    pub(crate) fn vmctx_load(&mut self, offset: i32, flags: MemFlagsData) -> Value {
        let vmctx = self.vmctx;
        self.builder.ins().load(types::I64, flags, vmctx, offset)
    }

    /// The type signature of a block type.
    fn block_sig(&self, bt: BlockType, offset: usize) -> Result<BlockSig<'a>, CompileError> {
        Ok(match bt {
            BlockType::Empty => BlockSig::Empty,
            BlockType::Type(t) => BlockSig::Single(t),
            BlockType::FuncType(i) => BlockSig::Func(
                self.module
                    .types
                    .get(i as usize)
                    .ok_or_else(|| CompileError::invalid(format!("unknown type {i}"), offset))?,
            ),
        })
    }

    /// A new block with parameters of the given wasm types.
    fn block_with_params(
        &mut self,
        tys: &[ValType],
        offset: usize,
    ) -> Result<ir::Block, CompileError> {
        let block = self.builder.create_block();
        for &ty in tys {
            let ty = value_type_or_err(ty, offset)?;
            self.builder.append_block_param(block, ty);
        }
        Ok(block)
    }

    /// A zero of type `ty` (the default value of a local).
    fn zero(&mut self, ty: ir::Type) -> Value {
        match ty {
            types::F32 => self.builder.ins().f32const(0.0),
            types::F64 => self.builder.ins().f64const(0.0),
            ty if ty.is_vector() => {
                let c = self
                    .builder
                    .func
                    .dfg
                    .constants
                    .insert(ConstantData::from(&[0u8; 16][..]));
                self.builder.ins().vconst(ty, c)
            }
            ty => self.builder.ins().iconst(ty, 0),
        }
    }

    /// Translates the whole body; returns the operator reader's allocations for reuse.
    fn translate_body(
        &mut self,
        ty: &FuncType,
        body: &FunctionBody<'_>,
        mut validator: Option<&mut FuncValidator<ValidatorResources>>,
        body_offset: usize,
        allocs: OperatorsReaderAllocations,
    ) -> Result<OperatorsReaderAllocations, CompileError> {
        self.builder.set_srcloc(SourceLoc::new(body_offset as u32));
        let entry = self.builder.create_block();
        self.builder.append_block_params_for_function_params(entry);
        self.builder.switch_to_block(entry);
        self.builder.seal_block(entry);
        let params = self.builder.block_params(entry);
        self.vmctx = params[0];
        if ty.results().len() > 1 {
            self.ret_area = params.last().copied();
        }
        self.declare_stack_limit();

        // Parameters, then declared locals (zero-initialised).
        for (i, &p) in ty.params().iter().enumerate() {
            let cl_ty = value_type_or_err(p, body_offset)?;
            let var = self.builder.declare_var(cl_ty);
            let v = self.builder.block_params(entry)[2 + i];
            self.builder.def_var(var, v);
            self.locals.push(var);
            self.local_types.push(cl_ty);
        }
        let mut locals_reader = body.get_locals_reader()?;
        let mut declared: u32 = 0;
        for _ in 0..locals_reader.get_count() {
            let offset = locals_reader.original_position();
            let (count, local_ty) = locals_reader.read()?;
            if let Some(v) = validator.as_deref_mut() {
                v.define_locals(offset, count, local_ty)?;
            }
            declared = declared.saturating_add(count);
            if declared > MAX_LOCALS {
                return Err(CompileError::invalid("too many locals", offset as usize));
            }
            let cl_ty = value_type_or_err(local_ty, offset as usize)?;
            if count == 0 {
                continue;
            }
            let zero = self.zero(cl_ty);
            for _ in 0..count {
                let var = self.builder.declare_var(cl_ty);
                self.builder.def_var(var, zero);
                self.locals.push(var);
                self.local_types.push(cl_ty);
            }
        }

        if self.osr {
            self.last_write = vec![0; self.locals.len()];
        }

        // Runtime state the whole function uses.
        if !self.module.memories.is_empty() {
            let memory = self.vmctx_load(VMCTX_MEMORY, trusted_readonly());
            let base =
                self.builder
                    .ins()
                    .load(types::I64, trusted_readonly(), memory, VMMEMORY_BASE);
            self.memory_base = Some(base);
        }

        // The function-level frame: branches to it return.
        let exit = self.block_with_params(ty.results(), body_offset)?;
        self.control
            .push(ControlFrame::function(exit, ty.results().len()));
        let call_count_site = self.emit_budget_check();

        let mut op_reader = locals_reader.get_binary_reader();
        if let Some(v) = validator.as_deref() {
            op_reader.set_features(*v.features());
        }
        let mut reader = OperatorsReader::new_with_allocs(op_reader, allocs);
        while !reader.eof() {
            let offset = reader.original_position() as usize;
            let op = reader.read()?;
            if let Some(v) = validator.as_deref_mut() {
                v.op(offset as u64, &op)?;
            }
            if self.reachable {
                self.builder.set_srcloc(SourceLoc::new(offset as u32));
                self.translate_operator(&op, offset)?;
            } else {
                self.translate_unreachable_operator(&op, offset)?;
            }
        }
        reader.finish()?;
        if !self.control.is_empty() {
            return Err(CompileError::invalid(
                "control frames remain at end of function body",
                reader.original_position() as usize,
            ));
        }
        self.count_calls(call_count_site);
        Ok(reader.into_allocations())
    }

    /// Makes the prologue trap with `STACK_OVERFLOW` when the frame would go below
    /// `vmctx.limits.stack_limit`.
    fn declare_stack_limit(&mut self) {
        let vmctx = self.builder.create_global_value(GlobalValueData::VMContext);
        let flags = self
            .builder
            .func
            .dfg
            .mem_flags
            .insert_unchecked(trusted_readonly());
        let limits = self.builder.create_global_value(GlobalValueData::Load {
            base: vmctx,
            offset: Offset32::new(VMCTX_LIMITS),
            global_type: types::I64,
            flags,
        });
        let limit = self.builder.create_global_value(GlobalValueData::Load {
            base: limits,
            offset: Offset32::new(VMLIMITS_STACK_LIMIT),
            global_type: types::I64,
            flags,
        });
        self.builder.func.stack_limit = Some(limit);
    }

    /// Operators in unreachable code: only the nesting structure matters.
    fn translate_unreachable_operator(
        &mut self,
        op: &Operator<'_>,
        offset: usize,
    ) -> Result<(), CompileError> {
        match op {
            Operator::Block { .. } | Operator::If { .. } => {
                self.unreachable_depth += 1;
            }
            Operator::Loop { .. } => {
                self.unreachable_depth += 1;
                // Loops are numbered by their position in the body (the OSR contract), dead or
                // not, so both tiers agree on every loop's index.
                self.loop_count += 1;
            }
            Operator::Else if self.unreachable_depth == 0 => self.translate_else(offset)?,
            Operator::End => {
                if self.unreachable_depth == 0 {
                    self.translate_end(offset)?;
                } else {
                    self.unreachable_depth -= 1;
                }
            }
            Operator::TryTable { .. }
            | Operator::Try { .. }
            | Operator::Catch { .. }
            | Operator::CatchAll
            | Operator::Delegate { .. } => {
                return Err(CompileError::unsupported(
                    format!("operator {op:?} is not supported by the baseline tier"),
                    offset,
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// Translates one operator in reachable code.
    fn translate_operator(&mut self, op: &Operator<'_>, offset: usize) -> Result<(), CompileError> {
        use Operator as O;
        debug_assert!(self.is_reachable());
        match *op {
            // Control.
            O::Unreachable => self.translate_unreachable(),
            O::Nop => {}
            O::Block { blockty } => self.translate_block(blockty, offset)?,
            O::Loop { blockty } => self.translate_loop(blockty, offset)?,
            O::If { blockty } => self.translate_if(blockty, offset)?,
            O::Else => self.translate_else(offset)?,
            O::End => self.translate_end(offset)?,
            O::Br { relative_depth } => self.translate_br(relative_depth),
            O::BrIf { relative_depth } => self.translate_br_if(relative_depth),
            O::BrTable { ref targets } => self.translate_br_table(targets, offset)?,
            O::Return => self.translate_return(),
            O::Call { function_index } => self.translate_call(function_index, offset)?,
            O::CallIndirect {
                type_index,
                table_index,
            } => self.translate_call_indirect(type_index, table_index, offset)?,

            // Parametric.
            O::Drop => {
                self.pop1();
            }
            O::Select | O::TypedSelect { .. } => {
                let (a, b, c) = self.pop3();
                let v = self.builder.ins().select(c, a, b);
                self.push(v);
            }

            // Variables.
            O::LocalGet { local_index } => {
                let var = self.local(local_index, offset)?;
                let v = self.builder.use_var(var);
                self.push(v);
            }
            O::LocalSet { local_index } => {
                let var = self.local(local_index, offset)?;
                let v = self.pop1();
                self.builder.def_var(var, v);
                self.note_local_write(local_index);
            }
            O::LocalTee { local_index } => {
                let var = self.local(local_index, offset)?;
                let v = *self.stack.last().expect("wasm operand stack underflow");
                self.builder.def_var(var, v);
                self.note_local_write(local_index);
            }
            O::GlobalGet { global_index } => self.translate_global_get(global_index, offset)?,
            O::GlobalSet { global_index } => self.translate_global_set(global_index, offset)?,

            // Memory.
            O::I32Load { memarg } => self.translate_load(&memarg, memory::Access::I32, offset)?,
            O::I64Load { memarg } => self.translate_load(&memarg, memory::Access::I64, offset)?,
            O::F32Load { memarg } => self.translate_load(&memarg, memory::Access::F32, offset)?,
            O::F64Load { memarg } => self.translate_load(&memarg, memory::Access::F64, offset)?,
            O::I32Load8S { memarg } => {
                self.translate_load(&memarg, memory::Access::I32S8, offset)?
            }
            O::I32Load8U { memarg } => {
                self.translate_load(&memarg, memory::Access::I32U8, offset)?
            }
            O::I32Load16S { memarg } => {
                self.translate_load(&memarg, memory::Access::I32S16, offset)?
            }
            O::I32Load16U { memarg } => {
                self.translate_load(&memarg, memory::Access::I32U16, offset)?
            }
            O::I64Load8S { memarg } => {
                self.translate_load(&memarg, memory::Access::I64S8, offset)?
            }
            O::I64Load8U { memarg } => {
                self.translate_load(&memarg, memory::Access::I64U8, offset)?
            }
            O::I64Load16S { memarg } => {
                self.translate_load(&memarg, memory::Access::I64S16, offset)?
            }
            O::I64Load16U { memarg } => {
                self.translate_load(&memarg, memory::Access::I64U16, offset)?
            }
            O::I64Load32S { memarg } => {
                self.translate_load(&memarg, memory::Access::I64S32, offset)?
            }
            O::I64Load32U { memarg } => {
                self.translate_load(&memarg, memory::Access::I64U32, offset)?
            }
            O::I32Store { memarg }
            | O::I64Store { memarg }
            | O::F32Store { memarg }
            | O::F64Store { memarg } => {
                self.translate_store(&memarg, memory::Width::Full, offset)?
            }
            O::I32Store8 { memarg } | O::I64Store8 { memarg } => {
                self.translate_store(&memarg, memory::Width::W8, offset)?
            }
            O::I32Store16 { memarg } | O::I64Store16 { memarg } => {
                self.translate_store(&memarg, memory::Width::W16, offset)?
            }
            O::I64Store32 { memarg } => {
                self.translate_store(&memarg, memory::Width::W32, offset)?
            }
            O::MemorySize { mem } => self.translate_memory_size(mem, offset)?,
            O::MemoryGrow { mem } => self.translate_memory_grow(mem, offset)?,
            O::MemoryFill { mem } => self.translate_memory_fill(mem, offset)?,
            O::MemoryCopy { dst_mem, src_mem } => {
                self.translate_memory_copy(dst_mem, src_mem, offset)?
            }
            O::MemoryInit { data_index, mem } => {
                self.translate_memory_init(data_index, mem, offset)?
            }
            O::DataDrop { data_index } => self.translate_data_drop(data_index),

            // References and tables.
            O::RefNull { .. } => {
                let v = self.builder.ins().iconst(types::I64, 0);
                self.push(v);
            }
            O::RefIsNull => {
                let r = self.pop1();
                let is_null = self
                    .builder
                    .ins()
                    .icmp_imm_s(ir::condcodes::IntCC::Equal, r, 0);
                let v = self.builder.ins().uextend(types::I32, is_null);
                self.push(v);
            }
            O::RefFunc { function_index } => self.translate_ref_func(function_index, offset)?,
            O::TableGet { table } => self.translate_table_get(table),
            O::TableSet { table } => self.translate_table_set(table),
            O::TableSize { table } => self.translate_table_size(table),
            O::TableGrow { table } => self.translate_table_grow(table),
            O::TableFill { table } => self.translate_table_fill(table),
            O::TableCopy {
                dst_table,
                src_table,
            } => self.translate_table_copy(dst_table, src_table),
            O::TableInit { elem_index, table } => self.translate_table_init(elem_index, table),
            O::ElemDrop { elem_index } => self.translate_elem_drop(elem_index),

            // Numbers, SIMD, and everything the tier does not support.
            _ => self.translate_numeric(op, offset)?,
        }
        Ok(())
    }

    /// The variable of local `index`.
    fn local(&self, index: u32, offset: usize) -> Result<Variable, CompileError> {
        self.locals
            .get(index as usize)
            .copied()
            .ok_or_else(|| CompileError::invalid(format!("unknown local {index}"), offset))
    }

    /// The address of the storage of global `index` (a 16-byte `VMGlobal` cell).
    fn global_cell(&mut self, index: u32) -> Value {
        let globals = self.vmctx_load(VMCTX_GLOBALS, trusted_readonly());
        self.load_at(
            types::I64,
            trusted_readonly(),
            globals,
            u64::from(index) * 8,
        )
    }

    fn translate_global_get(&mut self, index: u32, offset: usize) -> Result<(), CompileError> {
        let g = *self
            .module
            .globals
            .get(index as usize)
            .ok_or_else(|| CompileError::invalid(format!("unknown global {index}"), offset))?;
        let ty = value_type_or_err(g.content_type, offset)?;
        let cell = self.global_cell(index);
        let flags = if g.mutable {
            trusted()
        } else {
            trusted_readonly()
        };
        let v = self.builder.ins().load(ty, flags, cell, 0);
        self.push(v);
        Ok(())
    }

    fn translate_global_set(&mut self, index: u32, offset: usize) -> Result<(), CompileError> {
        if self.module.globals.get(index as usize).is_none() {
            return Err(CompileError::invalid(
                format!("unknown global {index}"),
                offset,
            ));
        }
        let v = self.pop1();
        let cell = self.global_cell(index);
        self.builder.ins().store(trusted(), v, cell, 0);
        Ok(())
    }

    /// Fills `self.block_args` with the top `n` stack values.
    fn stack_block_args(&mut self, n: usize) {
        let start = self.stack.len() - n;
        self.block_args.clear();
        self.block_args
            .extend(self.stack[start..].iter().map(|&v| BlockArg::Value(v)));
    }
}

macro_rules! define_is_simd {
    ($( @$proposal:ident $op:ident $({ $($arg:ident: $argty:ty),* })? => $visit:ident ($($ann:tt)*) )*) => {
        /// Whether `op` belongs to the SIMD (or relaxed SIMD) proposal.
        pub(crate) fn is_simd(op: &Operator<'_>) -> bool {
            matches!(op, $( Operator::$op { .. } )|*)
        }
    };
}
wasmparser::for_each_visit_simd_operator!(define_is_simd);
