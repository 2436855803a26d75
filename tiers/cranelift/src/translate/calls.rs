//! Calls (direct, through imports, `call_indirect`), libcalls, tables and function references.
//!
//! Every call loads the callee's current code pointer from its entry (an `AtomicPtr` that
//! tier-up replaces) right before calling: the entry table slot for functions defined by the
//! module, `VMFuncRef.entry` for imports and table elements.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    self, AbiParam, InstBuilder, SigRef, StackSlotData, StackSlotKind, Value, types,
};
use cranelift_codegen::isa::CallConv;
use spate_tiers::abi::RET_AREA_SLOT;
use spate_tiers::libcall::{Libcall, LibcallArg};
use spate_tiers::vmctx::{
    VMCTX_ENTRIES, VMCTX_FUNC_REFS, VMCTX_LIBCALLS, VMCTX_TABLES, VMCTX_TYPE_IDS, VMFUNCREF_ENTRY,
    VMFUNCREF_TYPE_ID, VMFUNCREF_VMCTX, VMTABLE_BASE, VMTABLE_LENGTH,
};
use spate_tiers::{CompileError, TrapCode};

use super::{FuncTranslator, trusted, trusted_readonly};
use crate::{cranelift_trap_code, value_type_or_err, wasm_signature};

const I32: ir::Type = types::I32;
const I64: ir::Type = types::I64;

/// The Cranelift type of a libcall argument kind.
fn libcall_type(a: LibcallArg) -> ir::Type {
    match a {
        LibcallArg::I32 => I32,
        LibcallArg::Ptr => I64,
    }
}

impl FuncTranslator<'_> {
    /// Calls `libcall` with `(vmctx, args..)` through the `VMContext`'s libcall table and
    /// returns its result, if it has one.
    pub(crate) fn libcall(&mut self, libcall: Libcall, args: &[Value]) -> Option<Value> {
        let sig = self.libcall_sig(libcall);
        let table = self.vmctx_load(VMCTX_LIBCALLS, trusted_readonly());
        let func = self
            .builder
            .ins()
            .load(I64, trusted_readonly(), table, libcall.table_offset());
        self.call_args.clear();
        self.call_args.push(self.vmctx);
        self.call_args.extend_from_slice(args);
        // A libcall that preserves registers returns no value in a register (Cranelift's
        // `PreserveAll` has no return values): its trampoline stores the result in a stack slot
        // whose address is the last argument.
        let out = match libcall.signature().1 {
            Some(ty) if libcall.preserves_registers() => {
                let slot = *self.libcall_out.get_or_insert_with(|| {
                    self.builder.create_sized_stack_slot(ir::StackSlotData::new(
                        ir::StackSlotKind::ExplicitSlot,
                        8,
                        3,
                    ))
                });
                // Zeroed first: a table entry that is not a `result` trampoline then yields
                // null (no OSR entry), never stale stack contents.
                let zero = self.builder.ins().iconst(I64, 0);
                self.builder.ins().stack_store(I64, zero, slot, 0);
                let addr = self.builder.ins().stack_addr(I64, slot, 0);
                self.call_args.push(addr);
                Some((slot, libcall_type(ty)))
            }
            _ => None,
        };
        let call = self.builder.ins().call_indirect(sig, func, &self.call_args);
        match out {
            Some((slot, ty)) => Some(self.builder.ins().stack_load(I64, ty, slot, 0)),
            None => self.builder.inst_results(call).first().copied(),
        }
    }

    fn libcall_sig(&mut self, libcall: Libcall) -> SigRef {
        if let Some(sig) = self.libcall_signatures[libcall as usize] {
            return sig;
        }
        let (params, result) = libcall.signature();
        let conv = if libcall.preserves_registers() {
            CallConv::PreserveAll
        } else {
            self.call_conv
        };
        let mut sig = ir::Signature::new(conv);
        sig.params.push(AbiParam::new(I64));
        sig.params
            .extend(params.iter().map(|&a| AbiParam::new(libcall_type(a))));
        if libcall.preserves_registers() {
            // The result, if any, comes back through memory (see `libcall`).
            if result.is_some() {
                sig.params.push(AbiParam::new(I64));
            }
        } else {
            sig.returns
                .extend(result.map(|a| AbiParam::new(libcall_type(a))));
        }
        let sig = self.builder.import_signature(sig);
        self.libcall_signatures[libcall as usize] = Some(sig);
        sig
    }

    /// The imported signature of wasm function type `type_index`.
    fn wasm_sig(&mut self, type_index: u32, offset: usize) -> Result<SigRef, CompileError> {
        if let Some(&sig) = self.signatures.get(&type_index) {
            return Ok(sig);
        }
        let ty =
            self.module.types.get(type_index as usize).ok_or_else(|| {
                CompileError::invalid(format!("unknown type {type_index}"), offset)
            })?;
        let sig = wasm_signature(ty, self.call_conv, offset)?;
        let sig = self.builder.import_signature(sig);
        self.signatures.insert(type_index, sig);
        Ok(sig)
    }

    pub(super) fn translate_call(
        &mut self,
        function_index: u32,
        offset: usize,
    ) -> Result<(), CompileError> {
        let Some(&type_index) = self.module.functions.get(function_index as usize) else {
            return Err(CompileError::invalid(
                format!("unknown function {function_index}"),
                offset,
            ));
        };
        let sig = self.wasm_sig(type_index, offset)?;
        let (code, callee_vmctx) = match self.module.defined_func_index(function_index) {
            Some(def_index) => {
                // Same instance: the code pointer comes from the entry table (not read-only:
                // tier-up replaces it), the callee context is our own.
                let entries = self.vmctx_load(VMCTX_ENTRIES, trusted_readonly());
                let code = self.load_at(I64, trusted(), entries, u64::from(def_index) * 8);
                (code, self.vmctx)
            }
            None => {
                let func_ref = self.load_func_ref(function_index);
                self.func_ref_code_and_vmctx(func_ref)
            }
        };
        self.emit_wasm_call(sig, type_index, code, callee_vmctx);
        Ok(())
    }

    pub(super) fn translate_call_indirect(
        &mut self,
        type_index: u32,
        table_index: u32,
        offset: usize,
    ) -> Result<(), CompileError> {
        if table_index as usize >= self.module.tables.len() {
            return Err(CompileError::invalid(
                format!("unknown table {table_index}"),
                offset,
            ));
        }
        let sig = self.wasm_sig(type_index, offset)?;
        let index = self.pop1();
        let table = self.table_ptr(table_index);
        let length = self
            .builder
            .ins()
            .load(I32, trusted(), table, VMTABLE_LENGTH);
        let oob = self
            .builder
            .ins()
            .icmp(IntCC::UnsignedGreaterThanOrEqual, index, length);
        self.builder
            .ins()
            .trapnz(oob, cranelift_trap_code(TrapCode::IndirectCallOutOfBounds));
        let base = self.builder.ins().load(I64, trusted(), table, VMTABLE_BASE);
        let index = self.builder.ins().uextend(I64, index);
        let byte_offset = self.builder.ins().ishl_imm_u(index, 3);
        let elem = self.builder.ins().iadd(base, byte_offset);
        let func_ref = self.builder.ins().load(I64, trusted(), elem, 0);
        self.builder
            .ins()
            .trapz(func_ref, cranelift_trap_code(TrapCode::IndirectCallToNull));
        let actual = self
            .builder
            .ins()
            .load(I32, trusted_readonly(), func_ref, VMFUNCREF_TYPE_ID);
        let type_ids = self.vmctx_load(VMCTX_TYPE_IDS, trusted_readonly());
        let expected = self.load_at(I32, trusted_readonly(), type_ids, u64::from(type_index) * 4);
        let mismatch = self.builder.ins().icmp(IntCC::NotEqual, actual, expected);
        self.builder
            .ins()
            .trapnz(mismatch, cranelift_trap_code(TrapCode::BadSignature));
        let (code, callee_vmctx) = self.func_ref_code_and_vmctx(func_ref);
        self.emit_wasm_call(sig, type_index, code, callee_vmctx);
        Ok(())
    }

    /// Loads `vmctx.func_refs[function_index]`, a `*const VMFuncRef`.
    fn load_func_ref(&mut self, function_index: u32) -> Value {
        let func_refs = self.vmctx_load(VMCTX_FUNC_REFS, trusted_readonly());
        self.load_at(
            I64,
            trusted_readonly(),
            func_refs,
            u64::from(function_index) * 8,
        )
    }

    /// The current code pointer and the callee context of a (non-null) `VMFuncRef`.
    fn func_ref_code_and_vmctx(&mut self, func_ref: Value) -> (Value, Value) {
        let entry = self
            .builder
            .ins()
            .load(I64, trusted_readonly(), func_ref, VMFUNCREF_ENTRY);
        let code = self.builder.ins().load(I64, trusted(), entry, 0);
        let vmctx = self
            .builder
            .ins()
            .load(I64, trusted_readonly(), func_ref, VMFUNCREF_VMCTX);
        (code, vmctx)
    }

    /// Calls `code` with the wasm convention, taking the arguments from the operand stack and
    /// pushing the results.
    fn emit_wasm_call(&mut self, sig: SigRef, type_index: u32, code: Value, callee_vmctx: Value) {
        let module = self.module;
        let ty = &module.types[type_index as usize];
        let (num_params, results) = (ty.params().len(), ty.results());
        let start = self.stack.len() - num_params;
        self.call_args.clear();
        self.call_args.push(callee_vmctx);
        self.call_args.push(self.vmctx);
        self.call_args.extend_from_slice(&self.stack[start..]);
        self.stack.truncate(start);
        let ret_area = if results.len() > 1 {
            let size = results.len() as u32 * RET_AREA_SLOT;
            let slot = match self.call_ret_area {
                Some(slot) => {
                    let data = &mut self.builder.func.sized_stack_slots[slot];
                    data.size = data.size.max(size);
                    slot
                }
                None => {
                    let slot = self.builder.create_sized_stack_slot(StackSlotData::new(
                        StackSlotKind::ExplicitSlot,
                        size,
                        4,
                    ));
                    self.call_ret_area = Some(slot);
                    slot
                }
            };
            let addr = self.builder.ins().stack_addr(I64, slot, 0);
            self.call_args.push(addr);
            Some(slot)
        } else {
            None
        };
        let call = self.builder.ins().call_indirect(sig, code, &self.call_args);
        match ret_area {
            None => {
                if let Some(&v) = self.builder.inst_results(call).first() {
                    self.push(v);
                }
            }
            Some(slot) => {
                let addr = self.builder.ins().stack_addr(I64, slot, 0);
                for (i, &r) in results.iter().enumerate() {
                    // Types were checked when the signature was built.
                    let r = value_type_or_err(r, 0).expect("checked result type");
                    let v = self.builder.ins().load(
                        r,
                        trusted(),
                        addr,
                        (i as u32 * RET_AREA_SLOT) as i32,
                    );
                    self.push(v);
                }
            }
        }
    }

    /// Loads `vmctx.tables[table]`, a `*mut VMTable` (fixed for the life of the instance).
    fn table_ptr(&mut self, table: u32) -> Value {
        let tables = self.vmctx_load(VMCTX_TABLES, trusted_readonly());
        self.load_at(I64, trusted_readonly(), tables, u64::from(table) * 8)
    }

    pub(super) fn iconst_u32(&mut self, v: u32) -> Value {
        self.builder.ins().iconst(I32, i64::from(v))
    }

    pub(super) fn translate_ref_func(
        &mut self,
        function_index: u32,
        offset: usize,
    ) -> Result<(), CompileError> {
        if function_index as usize >= self.module.functions.len() {
            return Err(CompileError::invalid(
                format!("unknown function {function_index}"),
                offset,
            ));
        }
        let v = self.load_func_ref(function_index);
        self.push(v);
        Ok(())
    }

    pub(super) fn translate_table_get(&mut self, table: u32) {
        let index = self.pop1();
        let table = self.iconst_u32(table);
        let v = self
            .libcall(Libcall::TableGet, &[table, index])
            .expect("table.get returns");
        self.push(v);
    }

    pub(super) fn translate_table_set(&mut self, table: u32) {
        let (index, value) = self.pop2();
        let table = self.iconst_u32(table);
        self.libcall(Libcall::TableSet, &[table, index, value]);
    }

    pub(super) fn translate_table_size(&mut self, table: u32) {
        let table = self.table_ptr(table);
        let v = self
            .builder
            .ins()
            .load(I32, trusted(), table, VMTABLE_LENGTH);
        self.push(v);
    }

    pub(super) fn translate_table_grow(&mut self, table: u32) {
        let (init, delta) = self.pop2();
        let table = self.iconst_u32(table);
        let v = self
            .libcall(Libcall::TableGrow, &[table, init, delta])
            .expect("table.grow returns");
        self.push(v);
    }

    pub(super) fn translate_table_fill(&mut self, table: u32) {
        let (dst, value, len) = self.pop3();
        let table = self.iconst_u32(table);
        self.libcall(Libcall::TableFill, &[table, dst, value, len]);
    }

    pub(super) fn translate_table_copy(&mut self, dst_table: u32, src_table: u32) {
        let (dst, src, len) = self.pop3();
        let dst_table = self.iconst_u32(dst_table);
        let src_table = self.iconst_u32(src_table);
        self.libcall(Libcall::TableCopy, &[dst_table, src_table, dst, src, len]);
    }

    pub(super) fn translate_table_init(&mut self, segment: u32, table: u32) {
        let (dst, src, len) = self.pop3();
        let table = self.iconst_u32(table);
        let segment = self.iconst_u32(segment);
        self.libcall(Libcall::TableInit, &[table, segment, dst, src, len]);
    }

    pub(super) fn translate_elem_drop(&mut self, segment: u32) {
        let segment = self.iconst_u32(segment);
        self.libcall(Libcall::ElemDrop, &[segment]);
    }
}
