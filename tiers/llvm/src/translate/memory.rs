//! Linear memory (loads, stores, `memory.size`/`grow`/`fill`/`copy`/`init`, `data.drop`) and
//! globals.
//!
//! 32-bit memories live in a guard reservation, so accesses carry no bounds check: the address
//! is `base + zext(index) + offset` computed in 64 bits, and an access beyond the memory's length
//! faults in the guard region (the function's `fault_trap` turns that into an out-of-bounds
//! trap). Every access has alignment 1: wasm alignment hints promise nothing. Bulk operations go
//! through libcalls, which check bounds.

use inkwell::types::BasicTypeEnum;
use inkwell::values::BasicValueEnum;
use spate_tiers::CompileError;
use spate_tiers::libcall::Libcall;
use spate_tiers::vmctx::{VMCTX_GLOBALS, VMMEMORY_LENGTH};
use wasmparser::{MemArg, Operator};

use super::{FuncTranslator, Hoisted, set_alignment};

/// How a load extends what it reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ext {
    None,
    Signed,
    Unsigned,
}

impl<'ctx> FuncTranslator<'ctx> {
    /// Translates `op` if it is a (non-SIMD) memory operator; returns whether it was one.
    pub(super) fn translate_memory_op(
        &mut self,
        op: &Operator<'_>,
        offset: usize,
    ) -> Result<bool, CompileError> {
        use Operator as O;
        let i32t: BasicTypeEnum<'ctx> = self.ctx.i32_type().into();
        let i64t: BasicTypeEnum<'ctx> = self.ctx.i64_type().into();
        let f32t: BasicTypeEnum<'ctx> = self.ctx.f32_type().into();
        let f64t: BasicTypeEnum<'ctx> = self.ctx.f64_type().into();
        let i8t: BasicTypeEnum<'ctx> = self.ctx.i8_type().into();
        let i16t: BasicTypeEnum<'ctx> = self.ctx.i16_type().into();
        match *op {
            O::I32Load { memarg } => self.load_op(&memarg, i32t, i32t, Ext::None)?,
            O::I64Load { memarg } => self.load_op(&memarg, i64t, i64t, Ext::None)?,
            O::F32Load { memarg } => self.load_op(&memarg, f32t, f32t, Ext::None)?,
            O::F64Load { memarg } => self.load_op(&memarg, f64t, f64t, Ext::None)?,
            O::I32Load8S { memarg } => self.load_op(&memarg, i8t, i32t, Ext::Signed)?,
            O::I32Load8U { memarg } => self.load_op(&memarg, i8t, i32t, Ext::Unsigned)?,
            O::I32Load16S { memarg } => self.load_op(&memarg, i16t, i32t, Ext::Signed)?,
            O::I32Load16U { memarg } => self.load_op(&memarg, i16t, i32t, Ext::Unsigned)?,
            O::I64Load8S { memarg } => self.load_op(&memarg, i8t, i64t, Ext::Signed)?,
            O::I64Load8U { memarg } => self.load_op(&memarg, i8t, i64t, Ext::Unsigned)?,
            O::I64Load16S { memarg } => self.load_op(&memarg, i16t, i64t, Ext::Signed)?,
            O::I64Load16U { memarg } => self.load_op(&memarg, i16t, i64t, Ext::Unsigned)?,
            O::I64Load32S { memarg } => self.load_op(&memarg, i32t, i64t, Ext::Signed)?,
            O::I64Load32U { memarg } => self.load_op(&memarg, i32t, i64t, Ext::Unsigned)?,
            O::I32Store { memarg }
            | O::I64Store { memarg }
            | O::F32Store { memarg }
            | O::F64Store { memarg } => self.store_op(&memarg, None)?,
            O::I32Store8 { memarg } | O::I64Store8 { memarg } => {
                self.store_op(&memarg, Some(i8t))?
            }
            O::I32Store16 { memarg } | O::I64Store16 { memarg } => {
                self.store_op(&memarg, Some(i16t))?
            }
            O::I64Store32 { memarg } => self.store_op(&memarg, Some(i32t))?,
            O::MemorySize { mem } => {
                let def = self.memory_def(mem);
                let len_ptr = self.gep_const(def, VMMEMORY_LENGTH as u64);
                // Loaded at each use: `memory.grow` (here or in a callee) changes it.
                let length = self.load(self.ctx.i64_type(), len_ptr).into_int_value();
                let pages = self
                    .builder
                    .build_right_shift(length, self.ctx.i64_type().const_int(16, false), false, "")
                    .unwrap();
                let pages = self
                    .builder
                    .build_int_truncate(pages, self.ctx.i32_type(), "")
                    .unwrap();
                self.push(pages.into());
            }
            O::MemoryGrow { mem } => {
                let delta = self.pop();
                let mem = self.u32_arg(mem);
                let old = self
                    .libcall(Libcall::MemoryGrow, &[mem, delta])
                    .expect("memory.grow returns");
                self.push(old);
            }
            O::MemoryFill { mem } => {
                let (dst, value, len) = self.pop3();
                let mem = self.u32_arg(mem);
                self.libcall(Libcall::MemoryFill, &[mem, dst, value, len]);
            }
            O::MemoryCopy { dst_mem, src_mem } => {
                let (dst, src, len) = self.pop3();
                let (dst_mem, src_mem) = (self.u32_arg(dst_mem), self.u32_arg(src_mem));
                self.libcall(Libcall::MemoryCopy, &[dst_mem, src_mem, dst, src, len]);
            }
            O::MemoryInit { data_index, mem } => {
                let (dst, src, len) = self.pop3();
                let segment = self.u32_arg(data_index);
                let mem = self.u32_arg(mem);
                self.libcall(Libcall::MemoryInit, &[mem, segment, dst, src, len]);
            }
            O::DataDrop { data_index } => {
                let segment = self.u32_arg(data_index);
                self.libcall(Libcall::DataDrop, &[segment]);
            }
            _ => return Ok(false),
        }
        let _ = offset;
        Ok(true)
    }

    /// A load of `mem_ty` extended to `ty`.
    fn load_op(
        &mut self,
        memarg: &MemArg,
        mem_ty: BasicTypeEnum<'ctx>,
        ty: BasicTypeEnum<'ctx>,
        ext: Ext,
    ) -> Result<(), CompileError> {
        let index = self.pop().into_int_value();
        let addr = self.memory_addr(memarg, index)?;
        let v = self.load(mem_ty, addr);
        set_alignment(v, 1);
        let v: BasicValueEnum<'ctx> = match ext {
            Ext::None => v,
            Ext::Signed => self
                .builder
                .build_int_s_extend(v.into_int_value(), ty.into_int_type(), "")
                .unwrap()
                .into(),
            Ext::Unsigned => self
                .builder
                .build_int_z_extend(v.into_int_value(), ty.into_int_type(), "")
                .unwrap()
                .into(),
        };
        self.push(v);
        Ok(())
    }

    /// A store of the value on top of the stack, truncated to `narrow` if given.
    fn store_op(
        &mut self,
        memarg: &MemArg,
        narrow: Option<BasicTypeEnum<'ctx>>,
    ) -> Result<(), CompileError> {
        let value = self.pop();
        let index = self.pop().into_int_value();
        let addr = self.memory_addr(memarg, index)?;
        let value: BasicValueEnum<'ctx> = match narrow {
            None => value,
            Some(t) => self
                .builder
                .build_int_truncate(value.into_int_value(), t.into_int_type(), "")
                .unwrap()
                .into(),
        };
        let store = self.builder.build_store(addr, value).unwrap();
        store.set_alignment(1).expect("stores have an alignment");
        Ok(())
    }

    /// The address of the storage of global `index` (a 16-byte `VMGlobal` cell), loaded once.
    fn global_cell(&mut self, index: u32) -> inkwell::values::PointerValue<'ctx> {
        self.vmctx_array_ptr(Hoisted::GlobalCell(index), VMCTX_GLOBALS, index)
    }

    pub(super) fn translate_global_get(
        &mut self,
        index: u32,
        offset: usize,
    ) -> Result<(), CompileError> {
        let g = *self
            .info
            .globals
            .get(index as usize)
            .ok_or_else(|| CompileError::invalid(format!("unknown global {index}"), offset))?;
        let ty = self.llvm_type(g.content_type, offset)?;
        let cell = self.global_cell(index);
        let v = self.load(ty, cell);
        set_alignment(v, 16);
        self.push(v);
        Ok(())
    }

    pub(super) fn translate_global_set(
        &mut self,
        index: u32,
        offset: usize,
    ) -> Result<(), CompileError> {
        if self.info.globals.get(index as usize).is_none() {
            return Err(CompileError::invalid(
                format!("unknown global {index}"),
                offset,
            ));
        }
        let v = self.pop();
        let cell = self.global_cell(index);
        let store = self.builder.build_store(cell, v).unwrap();
        store.set_alignment(16).expect("stores have an alignment");
        Ok(())
    }
}
