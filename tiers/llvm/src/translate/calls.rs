//! Calls (direct, through imports, `call_indirect`), libcalls, tables and function references.
//!
//! Every call loads the callee's current code pointer from its entry (an `AtomicPtr` that
//! tier-up replaces) right before calling: the entry table slot for functions defined by the
//! module, `VMFuncRef.entry` for imports and table elements. The pointers that lead to those
//! entries (the entry table, `VMFuncRef`s, tables, the libcall table) never change while the
//! instance lives and are loaded once, in the prologue.

use inkwell::IntPredicate;
use inkwell::types::{BasicMetadataTypeEnum, BasicTypeEnum, FunctionType};
use inkwell::values::{BasicMetadataValueEnum, BasicValueEnum, IntValue, PointerValue};
use spate_tiers::abi::RET_AREA_SLOT;
use spate_tiers::libcall::{Libcall, LibcallArg};
use spate_tiers::vmctx::{
    VMCTX_ENTRIES, VMCTX_FUNC_REFS, VMCTX_LIBCALLS, VMCTX_TABLES, VMCTX_TYPE_IDS, VMFUNCREF_ENTRY,
    VMFUNCREF_TYPE_ID, VMFUNCREF_VMCTX, VMTABLE_BASE, VMTABLE_LENGTH,
};
use spate_tiers::{CompileError, TrapCode};

use super::{FuncTranslator, Hoisted, wasm_fn_type};

impl<'ctx> FuncTranslator<'ctx> {
    fn arg_type(&self, a: LibcallArg) -> BasicTypeEnum<'ctx> {
        match a {
            LibcallArg::I32 => self.ctx.i32_type().into(),
            // References and pointers are pointer-sized integers, as on the operand stack.
            LibcallArg::Ptr => self.ctx.i64_type().into(),
        }
    }

    /// The LLVM type of a libcall: `(vmctx, args..) -> result`.
    pub(crate) fn libcall_type(&self, libcall: Libcall) -> FunctionType<'ctx> {
        let (params, result) = libcall.signature();
        let mut tys: Vec<BasicMetadataTypeEnum<'ctx>> = vec![self.ptr_type().into()];
        tys.extend(
            params
                .iter()
                .map(|&a| BasicMetadataTypeEnum::from(self.arg_type(a))),
        );
        match result {
            Some(r) => inkwell::types::BasicType::fn_type(&self.arg_type(r), &tys, false),
            None => self.ctx.void_type().fn_type(&tys, false),
        }
    }

    /// The address of `libcall`, loaded once from the libcall table.
    pub(crate) fn libcall_ptr(&mut self, libcall: Libcall) -> PointerValue<'ctx> {
        let key = Hoisted::Libcall(libcall as u32);
        if let Some(&v) = self.hoisted.get(&key) {
            return v.into_pointer_value();
        }
        let table = self.vmctx_ptr(VMCTX_LIBCALLS);
        let ty = self.ptr_type();
        self.hoisted_load(key, table, libcall.table_offset() as u64, ty)
            .into_pointer_value()
    }

    /// Calls `libcall` with `(vmctx, args..)` and returns its result, if it has one.
    pub(crate) fn libcall(
        &mut self,
        libcall: Libcall,
        args: &[BasicValueEnum<'ctx>],
    ) -> Option<BasicValueEnum<'ctx>> {
        let ptr = self.libcall_ptr(libcall);
        let ty = self.libcall_type(libcall);
        let mut call_args: Vec<BasicMetadataValueEnum<'ctx>> = vec![self.vmctx.into()];
        call_args.extend(args.iter().map(|&a| BasicMetadataValueEnum::from(a)));
        self.builder
            .build_indirect_call(ty, ptr, &call_args, "")
            .unwrap()
            .try_as_basic_value()
            .basic()
    }

    fn const_u32(&self, v: u32) -> BasicValueEnum<'ctx> {
        self.ctx.i32_type().const_int(u64::from(v), false).into()
    }

    /// `vmctx.func_refs[function_index]`, a `*const VMFuncRef`, loaded once.
    fn func_ref(&mut self, function_index: u32) -> PointerValue<'ctx> {
        self.vmctx_array_ptr(
            Hoisted::FuncRef(function_index),
            VMCTX_FUNC_REFS,
            function_index,
        )
    }

    /// `vmctx.tables[table]`, a `*mut VMTable`, loaded once.
    fn table_ptr(&mut self, table: u32) -> PointerValue<'ctx> {
        self.vmctx_array_ptr(Hoisted::Table(table), VMCTX_TABLES, table)
    }

    /// Loads a function's current code from its entry (an `AtomicPtr` that tier-up stores to
    /// with release ordering from another thread): an atomic monotonic load, the same `mov` as
    /// a plain load on x86-64, but not a data race in LLVM's memory model, so LLVM may neither
    /// merge nor hoist it across calls.
    fn load_entry(&self, slot: PointerValue<'ctx>) -> PointerValue<'ctx> {
        let v = self.load(self.ptr_type(), slot).into_pointer_value();
        if let Some(inst) = inkwell::values::BasicValue::as_instruction_value(&v) {
            inst.set_alignment(8)
                .and_then(|()| inst.set_atomic_ordering(inkwell::AtomicOrdering::Monotonic))
                .expect("an aligned pointer load can be atomic");
        }
        v
    }

    /// The current code pointer and the callee context of a (non-null) `VMFuncRef`.
    fn func_ref_code_and_vmctx(
        &mut self,
        func_ref: PointerValue<'ctx>,
    ) -> (PointerValue<'ctx>, PointerValue<'ctx>) {
        let ptr = self.ptr_type();
        let entry_ptr = self.gep_const(func_ref, VMFUNCREF_ENTRY as u64);
        let entry = self.load(ptr, entry_ptr).into_pointer_value();
        let code = self.load_entry(entry);
        let vmctx_ptr = self.gep_const(func_ref, VMFUNCREF_VMCTX as u64);
        let vmctx = self.load(ptr, vmctx_ptr).into_pointer_value();
        (code, vmctx)
    }

    pub(super) fn translate_call(
        &mut self,
        function_index: u32,
        offset: usize,
    ) -> Result<(), CompileError> {
        let Some(&type_index) = self.info.functions.get(function_index as usize) else {
            return Err(CompileError::invalid(
                format!("unknown function {function_index}"),
                offset,
            ));
        };
        let (code, callee_vmctx) = match self.info.defined_func_index(function_index) {
            Some(def_index) => {
                // Same instance: the code pointer comes from the entry table (loaded at each
                // call: tier-up replaces it), the callee context is our own.
                let entries = self.vmctx_ptr(VMCTX_ENTRIES);
                let slot = self.gep_const(entries, u64::from(def_index) * 8);
                let code = self.load_entry(slot);
                (code, self.vmctx)
            }
            None => {
                let func_ref = self.func_ref(function_index);
                self.func_ref_code_and_vmctx(func_ref)
            }
        };
        self.emit_wasm_call(type_index, code, callee_vmctx, offset)
    }

    pub(super) fn translate_call_indirect(
        &mut self,
        type_index: u32,
        table_index: u32,
        offset: usize,
    ) -> Result<(), CompileError> {
        if table_index as usize >= self.info.tables.len() {
            return Err(CompileError::invalid(
                format!("unknown table {table_index}"),
                offset,
            ));
        }
        if type_index as usize >= self.info.types.len() {
            return Err(CompileError::invalid(
                format!("unknown type {type_index}"),
                offset,
            ));
        }
        let index = self.pop().into_int_value();
        let table = self.table_ptr(table_index);
        let i32t = self.ctx.i32_type();
        let i64t = self.ctx.i64_type();
        let len_ptr = self.gep_const(table, VMTABLE_LENGTH as u64);
        let length = self.load(i32t, len_ptr).into_int_value();
        let oob = self
            .builder
            .build_int_compare(IntPredicate::UGE, index, length, "")
            .unwrap();
        self.trap_if(oob, TrapCode::IndirectCallOutOfBounds);
        let base_ptr = self.gep_const(table, VMTABLE_BASE as u64);
        let base = self.load(self.ptr_type(), base_ptr).into_pointer_value();
        let index = self.builder.build_int_z_extend(index, i64t, "").unwrap();
        let byte_offset = self
            .builder
            .build_left_shift(index, i64t.const_int(3, false), "")
            .unwrap();
        let elem = self.gep(base, byte_offset);
        let func_ref = self.load(self.ptr_type(), elem).into_pointer_value();
        let is_null = self.builder.build_is_null(func_ref, "").unwrap();
        self.trap_if(is_null, TrapCode::IndirectCallToNull);
        let type_id_ptr = self.gep_const(func_ref, VMFUNCREF_TYPE_ID as u64);
        let actual = self.load(i32t, type_id_ptr).into_int_value();
        let expected = self.type_id(type_index);
        let mismatch = self
            .builder
            .build_int_compare(IntPredicate::NE, actual, expected, "")
            .unwrap();
        self.trap_if(mismatch, TrapCode::BadSignature);
        let (code, callee_vmctx) = self.func_ref_code_and_vmctx(func_ref);
        self.emit_wasm_call(type_index, code, callee_vmctx, offset)
    }

    /// The canonical signature id of type `type_index` (`vmctx.type_ids[type_index]`), loaded
    /// once.
    fn type_id(&mut self, type_index: u32) -> IntValue<'ctx> {
        let key = Hoisted::TypeId(type_index);
        if let Some(&v) = self.hoisted.get(&key) {
            return v.into_int_value();
        }
        let type_ids = self.vmctx_ptr(VMCTX_TYPE_IDS);
        let ty = self.ctx.i32_type().into();
        self.hoisted_load(key, type_ids, u64::from(type_index) * 4, ty)
            .into_int_value()
    }

    /// Calls `code` with the wasm convention, taking the arguments from the operand stack and
    /// pushing the results.
    fn emit_wasm_call(
        &mut self,
        type_index: u32,
        code: PointerValue<'ctx>,
        callee_vmctx: PointerValue<'ctx>,
        offset: usize,
    ) -> Result<(), CompileError> {
        let info = self.info;
        let ty = &info.types[type_index as usize];
        let fn_type = wasm_fn_type(self.ctx, ty, false, offset)?;
        let (num_params, results) = (ty.params().len(), ty.results());
        let start = self.stack.len() - num_params;
        let mut args: Vec<BasicMetadataValueEnum<'ctx>> = Vec::with_capacity(num_params + 3);
        args.push(callee_vmctx.into());
        args.push(self.vmctx.into());
        args.extend(
            self.stack[start..]
                .iter()
                .map(|&v| BasicMetadataValueEnum::from(v)),
        );
        self.stack.truncate(start);
        let ret_area = if results.len() > 1 {
            let size = results.len() as u32 * RET_AREA_SLOT;
            let array = self.ctx.i8_type().array_type(size);
            let slot = self.prologue.build_alloca(array, "").unwrap();
            inkwell::values::BasicValue::as_instruction_value(&slot)
                .expect("alloca is an instruction")
                .set_alignment(16)
                .expect("allocas have an alignment");
            args.push(slot.into());
            Some(slot)
        } else {
            None
        };
        let call = self
            .builder
            .build_indirect_call(fn_type, code, &args, "")
            .unwrap();
        match ret_area {
            None => {
                if let Some(v) = call.try_as_basic_value().basic() {
                    self.push(v);
                }
            }
            Some(slot) => {
                for (i, &r) in results.iter().enumerate() {
                    let rt = self.llvm_type(r, offset)?;
                    let ptr = self.gep_const(slot, i as u64 * u64::from(RET_AREA_SLOT));
                    let v = self.load(rt, ptr);
                    self.push(v);
                }
            }
        }
        Ok(())
    }

    pub(super) fn translate_ref_func(
        &mut self,
        function_index: u32,
        offset: usize,
    ) -> Result<(), CompileError> {
        if function_index as usize >= self.info.functions.len() {
            return Err(CompileError::invalid(
                format!("unknown function {function_index}"),
                offset,
            ));
        }
        let f = self.func_ref(function_index);
        let v = self
            .builder
            .build_ptr_to_int(f, self.ctx.i64_type(), "")
            .unwrap();
        self.push(v.into());
        Ok(())
    }

    pub(super) fn translate_table_get(&mut self, table: u32) {
        let index = self.pop();
        let table = self.const_u32(table);
        let v = self
            .libcall(Libcall::TableGet, &[table, index])
            .expect("table.get returns");
        self.push(v);
    }

    pub(super) fn translate_table_set(&mut self, table: u32) {
        let (index, value) = self.pop2();
        let table = self.const_u32(table);
        self.libcall(Libcall::TableSet, &[table, index, value]);
    }

    pub(super) fn translate_table_size(&mut self, table: u32) {
        let table = self.table_ptr(table);
        let len_ptr = self.gep_const(table, VMTABLE_LENGTH as u64);
        let v = self.load(self.ctx.i32_type(), len_ptr);
        self.push(v);
    }

    pub(super) fn translate_table_grow(&mut self, table: u32) {
        let (init, delta) = self.pop2();
        let table = self.const_u32(table);
        let v = self
            .libcall(Libcall::TableGrow, &[table, init, delta])
            .expect("table.grow returns");
        self.push(v);
    }

    pub(super) fn translate_table_fill(&mut self, table: u32) {
        let (dst, value, len) = self.pop3();
        let table = self.const_u32(table);
        self.libcall(Libcall::TableFill, &[table, dst, value, len]);
    }

    pub(super) fn translate_table_copy(&mut self, dst_table: u32, src_table: u32) {
        let (dst, src, len) = self.pop3();
        let dst_table = self.const_u32(dst_table);
        let src_table = self.const_u32(src_table);
        self.libcall(Libcall::TableCopy, &[dst_table, src_table, dst, src, len]);
    }

    pub(super) fn translate_table_init(&mut self, segment: u32, table: u32) {
        let (dst, src, len) = self.pop3();
        let table = self.const_u32(table);
        let segment = self.const_u32(segment);
        self.libcall(Libcall::TableInit, &[table, segment, dst, src, len]);
    }

    pub(super) fn translate_elem_drop(&mut self, segment: u32) {
        let segment = self.const_u32(segment);
        self.libcall(Libcall::ElemDrop, &[segment]);
    }

    /// A `u32` constant argument.
    pub(crate) fn u32_arg(&self, v: u32) -> BasicValueEnum<'ctx> {
        self.const_u32(v)
    }
}
