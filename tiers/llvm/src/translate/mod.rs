//! WebAssembly function bodies to LLVM IR, in one pass over the operators.
//!
//! # Interface for the operator families (including `simd.rs`)
//!
//! [`FuncTranslator`] is the translation state of one function. Operator families use:
//!
//! * fields `ctx: &'ctx Context`, `builder: Builder<'ctx>` (positioned where the next operator's
//!   code goes), `module: Module<'ctx>`;
//! * `push(v)`, `pop()`, `pop2()`, `pop3()`: the wasm operand stack (`pop2` returns `(a, b)` with
//!   `a` pushed first);
//! * `memory_addr(&memarg, index) -> Result<PointerValue>`: the effective address of an access
//!   (`base + zext(index) + offset`; no bounds check, the guard region faults);
//! * `trap_if(cond, code)`: branches to a cold block raising `code` when `cond` (an `i1`) is
//!   true, and continues in a new block;
//! * `intrinsic(name, &[overloaded types]) -> FunctionValue`: declares or gets an LLVM
//!   intrinsic;
//! * `v128_type() -> VectorType`: `<16 x i8>`, the one representation of a `v128` on the operand
//!   stack, in locals, block parameters, globals and the ABI.
//!
//! The dispatcher calls `translate_simd(op, offset)` (in `simd.rs`) for every SIMD operator (all
//! operators of wasmparser's SIMD visitor: `V128*`, `I8x16*`, `I16x8*`, `I32x4*`, `I64x2*`,
//! `F32x4*`, `F64x2*`, including SIMD loads and stores), only in reachable code.
//!
//! # Translation
//!
//! Locals are allocas in the entry block (promoted to SSA by `mem2reg`); the control stack maps
//! wasm blocks, loops and ifs to LLVM blocks whose phi nodes carry block parameters and results.
//! Code after an unconditional transfer is skipped up to the `end` or `else` that makes code
//! reachable again. Runtime pointers that never change while an instance lives (memory bases,
//! the libcall table, global cells, tables, function references) are loaded once, in the entry
//! block ("prologue"), the first time they are needed.
//!
//! The work is split by operator family:
//! * [`control`]: blocks, branches, returns, `unreachable`, traps, on-stack-replacement entries;
//! * [`region`]: on-stack-replacement entries holding one loop alone;
//! * [`numeric`]: integer and floating-point arithmetic, comparisons and conversions;
//! * [`memory`]: loads and stores, `memory.*`, `data.drop`, globals;
//! * [`calls`]: direct and indirect calls, libcalls, tables and references;
//! * `simd`: 128-bit SIMD operators.

mod calls;
mod control;
mod memory;
mod numeric;
mod osr_facts;
mod region;
mod simd;

use std::collections::HashMap;

use inkwell::AddressSpace;
use inkwell::attributes::{Attribute, AttributeLoc};
use inkwell::basic_block::BasicBlock;
use inkwell::builder::Builder;
use inkwell::context::Context;
use inkwell::intrinsics::Intrinsic;
use inkwell::module::{Linkage, Module};
use inkwell::types::{BasicMetadataTypeEnum, BasicType, BasicTypeEnum, FunctionType, VectorType};
use inkwell::values::{
    BasicValue, BasicValueEnum, FunctionValue, InstructionOpcode, IntValue, PointerValue,
};
use spate_tiers::abi::RET_AREA_SLOT;
use spate_tiers::vmctx::{
    VMCTX_LIMITS, VMCTX_MEMORIES, VMCTX_MEMORY, VMLIMITS_STACK_LIMIT, VMMEMORY_BASE,
};
use spate_tiers::{CompileError, ModuleInfo, TrapCode};
use wasmparser::{
    BlockType, FuncType, FuncValidator, FunctionBody, MemArg, MemArgTarget, Operator,
    OperatorsReader, ValType, ValidatorResources,
};

use control::ControlFrame;

/// Most locals a function may declare (the limit wasmparser's validator enforces too).
const MAX_LOCALS: u32 = 50_000;

/// Name of the one function defined in each generated LLVM module.
pub(crate) const FUNCTION_SYMBOL: &str = "spate_wasm_function";

/// How deep `drop` looks through the instructions computing a dropped value for loads to keep.
const DROP_SCAN_DEPTH: u32 = 4;

/// A wasm local: its alloca and value type.
#[derive(Clone, Copy)]
struct Local<'ctx> {
    ptr: PointerValue<'ctx>,
    ty: BasicTypeEnum<'ctx>,
}

/// Runtime values loaded once in the prologue, by what they are.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Hoisted {
    /// A pointer-sized field of the `VMContext`, by offset.
    VmctxField(i32),
    /// The `VMMemory` of a memory.
    MemoryDef(u32),
    /// The base address of a memory.
    MemoryBase(u32),
    /// The storage cell of a global.
    GlobalCell(u32),
    /// The `VMFuncRef` of a function.
    FuncRef(u32),
    /// The `VMTable` of a table.
    Table(u32),
    /// A libcall's address.
    Libcall(u32),
    /// The canonical signature id of a type.
    TypeId(u32),
}

/// What the translation produces: a normal function, or an on-stack-replacement entry.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryKind<'a> {
    /// The function itself.
    Function,
    /// An OSR entry at the header of loop `loop_index`, reached through the headers of the
    /// loops enclosing it and a copy of the loop (see `control::OsrState`).
    Osr {
        /// Zero-based count of `loop` operators before the loop in the body.
        loop_index: u32,
    },
    /// One OSR entry that branches straight to the header of any of these loops, picked by its
    /// `loop_index` argument (see `control::OsrDirect`).
    OsrDirect {
        /// The loops asked for.
        loops: &'a [u32],
        /// The loop that gets a checked copy if it has range facts (see `osr_facts`).
        checked: Option<u32>,
    },
    /// An OSR entry holding one loop alone, which leaves to the baseline when the program
    /// leaves the loop (see `region`), entered directly at any of several loops inside it.
    OsrRegion {
        /// The loop.
        region: u32,
        /// The loops it is entered at: `region`, or loops inside it.
        loops: &'a [u32],
        /// The loop that gets a checked copy if it has range facts (see `osr_facts`).
        checked: Option<u32>,
    },
}

/// The state of the translation of one function body (see the module documentation for the
/// interface operator families use).
pub(crate) struct FuncTranslator<'ctx> {
    /// The LLVM context everything is created in.
    pub(crate) ctx: &'ctx Context,
    /// The instruction builder, positioned where the next operator's code goes.
    pub(crate) builder: Builder<'ctx>,
    /// The module holding the function.
    pub(crate) module: Module<'ctx>,
    /// The function being built.
    pub(crate) func: FunctionValue<'ctx>,
    /// The wasm operand stack.
    pub(crate) stack: Vec<BasicValueEnum<'ctx>>,
    info: &'ctx ModuleInfo,
    /// A builder positioned at the end of the prologue (the entry block), for allocas and loads
    /// of invariant runtime data.
    prologue: Builder<'ctx>,
    /// The function's own `VMContext` (its first parameter).
    vmctx: PointerValue<'ctx>,
    /// The multi-value return area parameter, when the function has more than one result.
    ret_area: Option<PointerValue<'ctx>>,
    /// LLVM types of the function's results.
    result_types: Vec<BasicTypeEnum<'ctx>>,
    locals: Vec<Local<'ctx>>,
    control: Vec<ControlFrame<'ctx>>,
    /// Whether the code being translated is reachable.
    reachable: bool,
    /// Depth of blocks opened in unreachable code, whose `end`s must be skipped.
    unreachable_depth: u32,
    hoisted: HashMap<Hoisted, BasicValueEnum<'ctx>>,
    /// The shared block raising each trap code, by code.
    trap_blocks: HashMap<u8, BasicBlock<'ctx>>,
    /// On-stack replacement: the loop to enter, how many loops were seen, and the way to it.
    osr: Option<control::OsrState<'ctx>>,
    /// A direct on-stack-replacement entry: the loops asked for and those entered.
    osr_direct: Option<control::OsrDirect<'ctx>>,
    /// For a region entry, its loop (the entry is also a direct entry serving that loop).
    region: Option<u32>,
}

/// Translates `body`, the body of function `func_index` of `module`, into a new LLVM module
/// holding one function named [`FUNCTION_SYMBOL`]. Also returns, for
/// [`EntryKind::OsrDirect`], the loops the entry serves (empty otherwise).
pub(crate) fn translate_function<'ctx>(
    ctx: &'ctx Context,
    info: &'ctx ModuleInfo,
    func_index: u32,
    body: &FunctionBody<'_>,
    validator: Option<&mut FuncValidator<ValidatorResources>>,
    kind: EntryKind<'_>,
) -> Result<(Module<'ctx>, Vec<u32>), CompileError> {
    let body_offset = body.range().start as usize;
    check_module_support(info, body_offset)?;
    info.defined_func_index(func_index)
        .filter(|&i| i < info.num_defined_functions())
        .ok_or_else(|| {
            CompileError::codegen(format!("function {func_index} is not a defined function"))
        })?;
    let ty = info.func_type(func_index);
    let module = ctx.create_module("spate");
    let fn_type = wasm_fn_type(ctx, ty, kind != EntryKind::Function, body_offset)?;
    let func = module.add_function(FUNCTION_SYMBOL, fn_type, Some(Linkage::External));
    set_function_attributes(ctx, func);
    let prologue_block = ctx.append_basic_block(func, "prologue");
    let prologue = ctx.create_builder();
    prologue.position_at_end(prologue_block);
    let builder = ctx.create_builder();
    let vmctx = func
        .get_nth_param(0)
        .expect("vmctx parameter")
        .into_pointer_value();
    let ret_area = (ty.results().len() > 1).then(|| {
        func.get_last_param()
            .expect("return area parameter")
            .into_pointer_value()
    });
    let mut result_types = Vec::with_capacity(ty.results().len());
    for &r in ty.results() {
        result_types.push(basic_type(ctx, r, body_offset)?);
    }
    let mut t = FuncTranslator {
        ctx,
        builder,
        module,
        func,
        stack: Vec::new(),
        info,
        prologue,
        vmctx,
        ret_area,
        result_types,
        locals: Vec::new(),
        control: Vec::new(),
        reachable: true,
        unreachable_depth: 0,
        hoisted: HashMap::new(),
        trap_blocks: HashMap::new(),
        osr: match kind {
            EntryKind::Osr { loop_index } => Some(control::OsrState::new(loop_index)),
            _ => None,
        },
        osr_direct: match kind {
            EntryKind::OsrDirect { loops, checked } => {
                Some(control::OsrDirect::new(loops, checked))
            }
            EntryKind::OsrRegion { loops, checked, .. } => {
                Some(control::OsrDirect::new(loops, checked))
            }
            _ => None,
        },
        region: match kind {
            EntryKind::OsrRegion { region, .. } => Some(region),
            _ => None,
        },
    };
    let entered = t.translate_body(ty, body, validator, body_offset)?;
    Ok((t.module, entered))
}

/// Function attributes of every generated function.
fn set_function_attributes(ctx: &Context, func: FunctionValue<'_>) {
    let string = |k: &str, v: &str| ctx.create_string_attribute(k, v);
    // Frame pointers keep wasm frames walkable by profilers and the runtime.
    func.add_attribute(AttributeLoc::Function, string("frame-pointer", "all"));
    // Never turn loops into calls of `memset`/`memcpy`: the code must be self-contained.
    func.add_attribute(AttributeLoc::Function, string("no-builtins", ""));
    func.add_attribute(AttributeLoc::Function, enum_attribute(ctx, "nounwind"));
    // No sibling calls: every wasm call takes stack, so unbounded recursion exhausts the stack
    // (and traps) instead of looping forever.
    func.add_attribute(AttributeLoc::Function, string("disable-tail-calls", "true"));
}

/// An enum attribute by name.
pub(crate) fn enum_attribute(ctx: &Context, name: &str) -> Attribute {
    ctx.create_enum_attribute(Attribute::get_named_enum_kind_id(name), 0)
}

/// Rejects modules whose memories or tables the tier cannot address (like the baseline tier).
fn check_module_support(info: &ModuleInfo, offset: usize) -> Result<(), CompileError> {
    if info
        .memories
        .iter()
        .any(|m| m.memory64 || m.shared || m.page_size_log2.is_some_and(|p| p != 16))
    {
        return Err(CompileError::unsupported(
            "only unshared 32-bit memories with 64 KiB pages are supported",
            offset,
        ));
    }
    if info.tables.iter().any(|t| t.table64 || t.shared) {
        return Err(CompileError::unsupported(
            "64-bit and shared tables are not supported",
            offset,
        ));
    }
    Ok(())
}

/// The LLVM type of a wasm value type: numbers as themselves, `v128` as `<16 x i8>`, references
/// as pointer-sized integers.
pub(crate) fn basic_type<'ctx>(
    ctx: &'ctx Context,
    ty: ValType,
    offset: usize,
) -> Result<BasicTypeEnum<'ctx>, CompileError> {
    Ok(match ty {
        ValType::I32 => ctx.i32_type().into(),
        ValType::I64 => ctx.i64_type().into(),
        ValType::F32 => ctx.f32_type().into(),
        ValType::F64 => ctx.f64_type().into(),
        ValType::V128 => ctx.i8_type().vec_type(16).into(),
        ValType::Ref(r)
            if r == wasmparser::RefType::FUNCREF || r == wasmparser::RefType::EXTERNREF =>
        {
            ctx.i64_type().into()
        }
        ValType::Ref(_) => {
            return Err(CompileError::unsupported(
                format!("value type {ty} is not supported by the LLVM tier"),
                offset,
            ));
        }
    })
}

/// The LLVM type of a wasm function of type `ty` under the Spate ABI:
/// `(callee_vmctx, caller_vmctx, params.. [, ret_area]) -> [result]`, or for an OSR entry
/// `(callee_vmctx, caller_vmctx, locals, loop_index: i32 [, ret_area]) -> [result]`.
pub(crate) fn wasm_fn_type<'ctx>(
    ctx: &'ctx Context,
    ty: &FuncType,
    osr: bool,
    offset: usize,
) -> Result<FunctionType<'ctx>, CompileError> {
    let ptr = ctx.ptr_type(AddressSpace::default());
    let mut params: Vec<BasicMetadataTypeEnum<'ctx>> = vec![ptr.into(), ptr.into()];
    if osr {
        params.push(ptr.into());
        params.push(ctx.i32_type().into());
    } else {
        for &p in ty.params() {
            params.push(basic_type(ctx, p, offset)?.into());
        }
    }
    Ok(match ty.results() {
        [] => ctx.void_type().fn_type(&params, false),
        [r] => basic_type(ctx, *r, offset)?.fn_type(&params, false),
        results => {
            for &r in results {
                basic_type(ctx, r, offset)?;
            }
            params.push(ptr.into());
            ctx.void_type().fn_type(&params, false)
        }
    })
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

impl<'ctx> FuncTranslator<'ctx> {
    /// Pushes a value on the operand stack.
    pub(crate) fn push(&mut self, v: BasicValueEnum<'ctx>) {
        self.stack.push(v);
    }

    /// Pops the value on top of the operand stack.
    pub(crate) fn pop(&mut self) -> BasicValueEnum<'ctx> {
        self.stack
            .pop()
            .expect("wasm operand stack underflow (the body was not validated)")
    }

    /// Pops two values `(a, b)`; `b` was on top.
    pub(crate) fn pop2(&mut self) -> (BasicValueEnum<'ctx>, BasicValueEnum<'ctx>) {
        let b = self.pop();
        let a = self.pop();
        (a, b)
    }

    /// Pops three values `(a, b, c)`; `c` was on top.
    pub(crate) fn pop3(
        &mut self,
    ) -> (
        BasicValueEnum<'ctx>,
        BasicValueEnum<'ctx>,
        BasicValueEnum<'ctx>,
    ) {
        let c = self.pop();
        let (a, b) = self.pop2();
        (a, b, c)
    }

    /// The `<16 x i8>` type every `v128` value has.
    pub(crate) fn v128_type(&self) -> VectorType<'ctx> {
        self.ctx.i8_type().vec_type(16)
    }

    /// Declares (or finds) the LLVM intrinsic `name` with the given overloaded types.
    ///
    /// Panics when LLVM has no such intrinsic (a translator bug).
    pub(crate) fn intrinsic(
        &self,
        name: &str,
        types: &[BasicTypeEnum<'ctx>],
    ) -> FunctionValue<'ctx> {
        Intrinsic::find(name)
            .unwrap_or_else(|| panic!("LLVM has no intrinsic {name}"))
            .get_declaration(&self.module, types)
            .unwrap_or_else(|| panic!("cannot declare intrinsic {name} for {types:?}"))
    }

    /// The effective address of a linear-memory access at `index` (an `i32`) with `memarg`:
    /// `base + zext(index) + offset` in 64 bits. No bounds check: any such address of a 32-bit
    /// memory lies inside its reservation, and an access beyond the memory's length faults in
    /// the guard region.
    pub(crate) fn memory_addr(
        &mut self,
        memarg: &MemArg,
        index: IntValue<'ctx>,
    ) -> Result<PointerValue<'ctx>, CompileError> {
        let mem = match memarg.target {
            MemArgTarget::Memory(mem) => mem,
            MemArgTarget::Array(_) => {
                return Err(CompileError::codegen(
                    "GC array accesses are not supported by the LLVM tier",
                ));
            }
        };
        let base = self.memory_base(mem);
        let i64t = self.ctx.i64_type();
        let mut addr = if index.get_type().get_bit_width() == 64 {
            index
        } else {
            self.builder.build_int_z_extend(index, i64t, "").unwrap()
        };
        if memarg.offset != 0 {
            let off = i64t.const_int(memarg.offset, false);
            addr = self.builder.build_int_nuw_add(addr, off, "").unwrap();
        }
        Ok(self.gep(base, addr))
    }

    /// `ptr + offset` bytes, built at the builder's position.
    pub(crate) fn gep(
        &self,
        ptr: PointerValue<'ctx>,
        offset: IntValue<'ctx>,
    ) -> PointerValue<'ctx> {
        byte_gep(self.ctx, &self.builder, ptr, offset)
    }

    /// `ptr + offset` bytes for a constant offset, built at the builder's position.
    pub(crate) fn gep_const(&self, ptr: PointerValue<'ctx>, offset: u64) -> PointerValue<'ctx> {
        if offset == 0 {
            return ptr;
        }
        self.gep(ptr, self.ctx.i64_type().const_int(offset, false))
    }

    /// Branches to a cold block raising trap `code` when `cond` (an `i1`) is true, and continues
    /// translating in a new block.
    pub(crate) fn trap_if(&mut self, cond: IntValue<'ctx>, code: TrapCode) {
        let expect = self.intrinsic("llvm.expect", &[self.ctx.bool_type().into()]);
        let cond = self
            .builder
            .build_call(
                expect,
                &[cond.into(), self.ctx.bool_type().const_zero().into()],
                "",
            )
            .unwrap()
            .try_as_basic_value()
            .basic()
            .expect("llvm.expect returns a value")
            .into_int_value();
        let trap = self.trap_block(code);
        let cont = self.ctx.append_basic_block(self.func, "");
        self.builder
            .build_conditional_branch(cond, trap, cont)
            .unwrap();
        self.builder.position_at_end(cont);
    }

    /// Loads a value of type `ty` from `ptr` (a runtime data structure, naturally aligned).
    pub(crate) fn load(
        &self,
        ty: impl BasicType<'ctx>,
        ptr: PointerValue<'ctx>,
    ) -> BasicValueEnum<'ctx> {
        self.builder.build_load(ty, ptr, "").unwrap()
    }

    /// Loads a pointer-sized value at `base + offset`, in the prologue, once per function (for
    /// runtime data that does not change while the instance lives).
    fn hoisted_load(
        &mut self,
        key: Hoisted,
        base: PointerValue<'ctx>,
        offset: u64,
        ty: BasicTypeEnum<'ctx>,
    ) -> BasicValueEnum<'ctx> {
        if let Some(&v) = self.hoisted.get(&key) {
            return v;
        }
        let ptr = self.prologue_gep(base, offset);
        let v = self.prologue.build_load(ty, ptr, "").unwrap();
        self.hoisted.insert(key, v);
        v
    }

    /// The address of slot `i` of an OSR entry's locals array (its third parameter): local
    /// `i`, or the status slot after the last local (`spate_tiers::abi`); built with `b`.
    pub(super) fn osr_slot(&self, b: &Builder<'ctx>, i: usize) -> PointerValue<'ctx> {
        let buf = self
            .func
            .get_nth_param(2)
            .expect("locals parameter")
            .into_pointer_value();
        let offset = i as u64 * u64::from(RET_AREA_SLOT);
        byte_gep(
            self.ctx,
            b,
            buf,
            self.ctx.i64_type().const_int(offset, false),
        )
    }

    /// `ptr + offset` bytes, built at the end of the prologue.
    fn prologue_gep(&self, ptr: PointerValue<'ctx>, offset: u64) -> PointerValue<'ctx> {
        if offset == 0 {
            return ptr;
        }
        let offset = self.ctx.i64_type().const_int(offset, false);
        byte_gep(self.ctx, &self.prologue, ptr, offset)
    }

    fn ptr_type(&self) -> BasicTypeEnum<'ctx> {
        self.ctx.ptr_type(AddressSpace::default()).into()
    }

    /// A pointer field of the `VMContext`, loaded once.
    pub(crate) fn vmctx_ptr(&mut self, offset: i32) -> PointerValue<'ctx> {
        let ty = self.ptr_type();
        self.hoisted_load(Hoisted::VmctxField(offset), self.vmctx, offset as u64, ty)
            .into_pointer_value()
    }

    /// The `i`-th pointer of the array at `VMContext` field `field`, loaded once.
    fn vmctx_array_ptr(&mut self, key: Hoisted, field: i32, i: u32) -> PointerValue<'ctx> {
        if let Some(&v) = self.hoisted.get(&key) {
            return v.into_pointer_value();
        }
        let array = self.vmctx_ptr(field);
        let ty = self.ptr_type();
        self.hoisted_load(key, array, u64::from(i) * 8, ty)
            .into_pointer_value()
    }

    /// The `VMMemory` of memory `mem`: `vmctx.memory` for memory 0, `vmctx.memories[mem]`
    /// otherwise.
    pub(crate) fn memory_def(&mut self, mem: u32) -> PointerValue<'ctx> {
        if mem == 0 {
            return self.vmctx_ptr(VMCTX_MEMORY);
        }
        self.vmctx_array_ptr(Hoisted::MemoryDef(mem), VMCTX_MEMORIES, mem)
    }

    /// The base address of memory `mem`, loaded once in the prologue (reservations never move).
    pub(crate) fn memory_base(&mut self, mem: u32) -> PointerValue<'ctx> {
        let key = Hoisted::MemoryBase(mem);
        if let Some(&v) = self.hoisted.get(&key) {
            return v.into_pointer_value();
        }
        let def = self.memory_def(mem);
        let ty = self.ptr_type();
        let base = self.hoisted_load(key, def, VMMEMORY_BASE as u64, ty);
        // Marked for the indirect-prefetch pass, which finds the memory's length next to it.
        let kind = self.ctx.get_kind_id(crate::prefetch::MEMORY_BASE_KIND);
        base.as_instruction_value()
            .expect("the memory base is a load in the prologue")
            .set_metadata(self.ctx.metadata_node(&[]), kind)
            .expect("metadata applies to loads");
        base.into_pointer_value()
    }

    /// Whether the code being translated is reachable.
    pub(crate) fn is_reachable(&self) -> bool {
        self.reachable
    }

    /// The type signature of a block type.
    fn block_sig(&self, bt: BlockType, offset: usize) -> Result<BlockSig<'ctx>, CompileError> {
        Ok(match bt {
            BlockType::Empty => BlockSig::Empty,
            BlockType::Type(t) => BlockSig::Single(t),
            BlockType::FuncType(i) => BlockSig::Func(
                self.info
                    .types
                    .get(i as usize)
                    .ok_or_else(|| CompileError::invalid(format!("unknown type {i}"), offset))?,
            ),
        })
    }

    /// The LLVM type of a wasm value type.
    pub(crate) fn llvm_type(
        &self,
        ty: ValType,
        offset: usize,
    ) -> Result<BasicTypeEnum<'ctx>, CompileError> {
        basic_type(self.ctx, ty, offset)
    }

    /// The block the builder is in.
    pub(crate) fn current_block(&self) -> BasicBlock<'ctx> {
        self.builder
            .get_insert_block()
            .expect("builder is positioned")
    }

    /// Translates the whole body; returns the loops a direct OSR entry serves (empty otherwise).
    fn translate_body(
        &mut self,
        ty: &FuncType,
        body: &FunctionBody<'_>,
        mut validator: Option<&mut FuncValidator<ValidatorResources>>,
        body_offset: usize,
    ) -> Result<Vec<u32>, CompileError> {
        // Locals: parameters, then declared locals.
        let mut local_types = Vec::new();
        for &p in ty.params() {
            local_types.push(self.llvm_type(p, body_offset)?);
        }
        let num_params = local_types.len();
        let mut locals_reader = body.get_locals_reader()?;
        let mut declared: u32 = 0;
        for _ in 0..locals_reader.get_count() {
            let offset = locals_reader.original_position();
            let (count, local_ty) = locals_reader.read()?;
            if let Some(v) = validator.as_deref_mut() {
                v.define_locals(offset, count, local_ty)?;
            }
            let offset = offset as usize;
            declared = declared.saturating_add(count);
            if declared > MAX_LOCALS {
                return Err(CompileError::invalid("too many locals", offset));
            }
            let lt = self.llvm_type(local_ty, offset)?;
            local_types.extend(std::iter::repeat_n(lt, count as usize));
        }
        for &lt in &local_types {
            let ptr = self.prologue.build_alloca(lt, "").unwrap();
            self.locals.push(Local { ptr, ty: lt });
        }
        let osr_locals = self.osr.is_some() || self.osr_direct.is_some();
        for (i, local) in self.locals.clone().into_iter().enumerate() {
            let value = match osr_locals {
                true => {
                    let ptr = self.osr_slot(&self.prologue, i);
                    let v = self.prologue.build_load(local.ty, ptr, "").unwrap();
                    set_alignment(v, 1);
                    v
                }
                false if i < num_params => self
                    .func
                    .get_nth_param(2 + i as u32)
                    .expect("wasm parameter"),
                false => local.ty.const_zero(),
            };
            self.prologue.build_store(local.ptr, value).unwrap();
        }

        let osr_entry = match self.osr.is_some() {
            true => Some(self.start_osr(body)?),
            false => None,
        };

        // The function-level frame: branches to it return.
        let start = self.ctx.append_basic_block(self.func, "body");
        self.builder.position_at_end(start);
        let frame = self.function_frame();
        self.control.push(frame);

        let mut op_reader = locals_reader.get_binary_reader();
        if let Some(v) = validator.as_deref() {
            op_reader.set_features(*v.features());
        }
        let mut reader = OperatorsReader::new(op_reader);
        if let Some(region) = self.region {
            return self.translate_region(region, reader, body_offset);
        }
        while !reader.eof() {
            self.translate_next(&mut reader, validator.as_deref_mut())?;
        }
        reader.finish()?;
        if !self.control.is_empty() {
            return Err(CompileError::invalid(
                "control frames remain at end of function body",
                reader.original_position() as usize,
            ));
        }

        self.finish_osr()?;
        let (entry, entered) = match self.finish_osr_direct(body_offset)? {
            Some((dispatch, loops)) => (dispatch, loops),
            None => (osr_entry.unwrap_or(start), Vec::new()),
        };
        self.finish_prologue(entry);
        Ok(entered)
    }

    /// Reads and translates the next operator (validating it first when `validator` is given),
    /// with the OSR bookkeeping: loops counted, copies translated.
    fn translate_next(
        &mut self,
        reader: &mut OperatorsReader<'_>,
        validator: Option<&mut FuncValidator<ValidatorResources>>,
    ) -> Result<(), CompileError> {
        let offset = reader.original_position();
        let at_op = (self.osr.is_some() || self.osr_direct.is_some()).then(|| reader.clone());
        let op = reader.read()?;
        if let Some(v) = validator {
            v.op(offset, &op)?;
        }
        let offset = offset as usize;
        let fallthrough = match self.note_loop(&op, offset, at_op.as_ref())? {
            true if self.osr_direct.is_some() => {
                self.translate_direct_copy(at_op.expect("OSR translation"))?
            }
            true => self.translate_osr_copy(at_op.expect("OSR translation"))?,
            false => None,
        };
        if self.reachable {
            self.translate_operator(&op, offset)?;
        } else {
            self.translate_unreachable_operator(&op, offset)?;
        }
        if let Some(fallthrough) = fallthrough {
            self.osr_attach_fallthrough(fallthrough);
        }
        Ok(())
    }

    /// Ends the prologue with the stack-limit check and a branch to `entry`.
    pub(super) fn finish_prologue(&mut self, entry: BasicBlock<'ctx>) {
        // Compare the stack pointer (after this frame's allocation) with the store's limit,
        // like the baseline prologue.
        let save = self.intrinsic("llvm.stacksave", &[self.ptr_type()]);
        let sp = self
            .prologue
            .build_call(save, &[], "")
            .unwrap()
            .try_as_basic_value()
            .basic()
            .expect("stacksave returns a pointer")
            .into_pointer_value();
        let i64t = self.ctx.i64_type();
        let sp = self.prologue.build_ptr_to_int(sp, i64t, "").unwrap();
        let limits = self.vmctx_ptr(VMCTX_LIMITS);
        let limit_ptr = self.prologue_gep(limits, VMLIMITS_STACK_LIMIT as u64);
        // Not hoisted into the cache: the limit is read once, here.
        let limit = self
            .prologue
            .build_load(i64t, limit_ptr, "")
            .unwrap()
            .into_int_value();
        let overflow = self
            .prologue
            .build_int_compare(inkwell::IntPredicate::ULT, sp, limit, "")
            .unwrap();
        let expect = self.intrinsic("llvm.expect", &[self.ctx.bool_type().into()]);
        let overflow = self
            .prologue
            .build_call(
                expect,
                &[overflow.into(), self.ctx.bool_type().const_zero().into()],
                "",
            )
            .unwrap()
            .try_as_basic_value()
            .basic()
            .expect("llvm.expect returns a value")
            .into_int_value();
        let trap = self.trap_block(TrapCode::StackOverflow);
        self.prologue
            .build_conditional_branch(overflow, trap, entry)
            .unwrap();
    }

    /// Operators in unreachable code: only the nesting structure matters.
    fn translate_unreachable_operator(
        &mut self,
        op: &Operator<'_>,
        offset: usize,
    ) -> Result<(), CompileError> {
        match op {
            Operator::Block { .. } | Operator::Loop { .. } | Operator::If { .. } => {
                self.unreachable_depth += 1;
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
                    format!("operator {op:?} is not supported by the LLVM tier"),
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
                let v = self.pop();
                keep_dropped_loads(v, DROP_SCAN_DEPTH);
            }
            O::Select | O::TypedSelect { .. } => {
                let (a, b, c) = self.pop3();
                let zero = self.ctx.i32_type().const_zero();
                let c = self
                    .builder
                    .build_int_compare(inkwell::IntPredicate::NE, c.into_int_value(), zero, "")
                    .unwrap();
                let v = self.builder.build_select(c, a, b, "").unwrap();
                self.push(v);
            }

            // Variables.
            O::LocalGet { local_index } => {
                let l = self.local(local_index, offset)?;
                let v = self.load(l.ty, l.ptr);
                self.push(v);
            }
            O::LocalSet { local_index } => {
                let l = self.local(local_index, offset)?;
                let v = self.pop();
                self.builder.build_store(l.ptr, v).unwrap();
            }
            O::LocalTee { local_index } => {
                let l = self.local(local_index, offset)?;
                let v = *self.stack.last().expect("wasm operand stack underflow");
                self.builder.build_store(l.ptr, v).unwrap();
            }
            O::GlobalGet { global_index } => self.translate_global_get(global_index, offset)?,
            O::GlobalSet { global_index } => self.translate_global_set(global_index, offset)?,

            // References and tables.
            O::RefNull { .. } => {
                let v = self.ctx.i64_type().const_zero();
                self.push(v.into());
            }
            O::RefIsNull => {
                let r = self.pop().into_int_value();
                let z = self.ctx.i64_type().const_zero();
                let c = self
                    .builder
                    .build_int_compare(inkwell::IntPredicate::EQ, r, z, "")
                    .unwrap();
                let v = self
                    .builder
                    .build_int_z_extend(c, self.ctx.i32_type(), "")
                    .unwrap();
                self.push(v.into());
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

            _ if is_simd(op) => self.translate_simd(op, offset)?,
            // Memory, numbers, and everything the tier does not support.
            _ => {
                if !self.translate_memory_op(op, offset)? {
                    self.translate_numeric(op, offset)?;
                }
            }
        }
        Ok(())
    }

    /// Local `index`.
    fn local(&self, index: u32, offset: usize) -> Result<Local<'ctx>, CompileError> {
        self.locals
            .get(index as usize)
            .copied()
            .ok_or_else(|| CompileError::invalid(format!("unknown local {index}"), offset))
    }
}

/// `ptr + offset` bytes, built by `builder`.
fn byte_gep<'ctx>(
    ctx: &'ctx Context,
    builder: &Builder<'ctx>,
    ptr: PointerValue<'ctx>,
    offset: IntValue<'ctx>,
) -> PointerValue<'ctx> {
    // SAFETY: a plain (not `inbounds`) byte-wise GEP is only address arithmetic: it has no
    // undefined behaviour whatever the operands, and inkwell's safety concern (index types that
    // do not fit the pointee type) cannot arise with `i8` and one integer index.
    unsafe {
        builder
            .build_gep(ctx.i8_type(), ptr, &[offset], "")
            .unwrap()
    }
}

/// Sets the alignment of a load or store instruction.
pub(crate) fn set_alignment<'ctx>(v: impl BasicValue<'ctx> + Copy, align: u32) {
    if let Some(inst) = v.as_instruction_value() {
        inst.set_alignment(align)
            .expect("alignment applies to loads and stores");
    }
}

/// Makes the linear-memory loads that computed a dropped value volatile, so that LLVM keeps
/// them (and their out-of-bounds trap) although their value is unused. Looks `depth`
/// instructions deep, through phis (block results) too; loads from allocas (locals, return
/// areas) are left alone.
fn keep_dropped_loads(v: BasicValueEnum<'_>, depth: u32) {
    let Some(inst) = v.as_instruction_value() else {
        return;
    };
    if inst.get_opcode() == InstructionOpcode::Load {
        let from_alloca = inst
            .get_operand(0)
            .and_then(|o| o.value())
            .and_then(|p| p.as_instruction_value())
            .is_some_and(|p| p.get_opcode() == InstructionOpcode::Alloca);
        if !from_alloca {
            inst.set_volatile(true).expect("loads can be volatile");
        }
        return;
    }
    if depth == 0 {
        return;
    }
    for i in 0..inst.get_num_operands() {
        if let Some(op) = inst.get_operand(i).and_then(|o| o.value()) {
            keep_dropped_loads(op, depth - 1);
        }
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
