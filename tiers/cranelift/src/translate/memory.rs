//! Linear memory: loads, stores, `memory.size`/`grow`/`fill`/`copy`/`init` and `data.drop`.
//!
//! 32-bit memories live in a guard reservation, so accesses carry no bounds check: the address
//! is `base + zext(index) + offset` computed in 64 bits, and the access itself is the trap site
//! (`HEAP_OUT_OF_BOUNDS`) if it faults. Bulk operations go through libcalls, which check bounds.

use cranelift_codegen::ir::{InstBuilder, types};
use spate_tiers::CompileError;
use spate_tiers::libcall::Libcall;
use spate_tiers::vmctx::VMMEMORY_LENGTH;
use wasmparser::{MemArg, MemArgTarget};

use super::{FuncTranslator, trusted};

/// What a load reads and how it extends it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Access {
    I32,
    I64,
    F32,
    F64,
    I32S8,
    I32U8,
    I32S16,
    I32U16,
    I64S8,
    I64U8,
    I64S16,
    I64U16,
    I64S32,
    I64U32,
}

/// How many bytes of its operand a store writes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Width {
    /// The whole value.
    Full,
    W8,
    W16,
    W32,
}

fn check_memarg(memarg: &MemArg, offset: usize) -> Result<(), CompileError> {
    match memarg.target {
        MemArgTarget::Memory(_) => Ok(()),
        MemArgTarget::Array(_) => Err(CompileError::unsupported(
            "GC array accesses are not supported",
            offset,
        )),
    }
}

impl FuncTranslator<'_> {
    pub(super) fn translate_load(
        &mut self,
        memarg: &MemArg,
        access: Access,
        offset: usize,
    ) -> Result<(), CompileError> {
        check_memarg(memarg, offset)?;
        let (addr, off) = self.heap_addr_and_offset(memarg);
        let flags = self.heap_flags();
        let ins = self.builder.ins();
        let v = match access {
            Access::I32 => ins.load(types::I32, flags, addr, off),
            Access::I64 => ins.load(types::I64, flags, addr, off),
            Access::F32 => ins.load(types::F32, flags, addr, off),
            Access::F64 => ins.load(types::F64, flags, addr, off),
            Access::I32S8 => ins.sload8(types::I32, flags, addr, off),
            Access::I32U8 => ins.uload8(types::I32, flags, addr, off),
            Access::I32S16 => ins.sload16(types::I32, flags, addr, off),
            Access::I32U16 => ins.uload16(types::I32, flags, addr, off),
            Access::I64S8 => ins.sload8(types::I64, flags, addr, off),
            Access::I64U8 => ins.uload8(types::I64, flags, addr, off),
            Access::I64S16 => ins.sload16(types::I64, flags, addr, off),
            Access::I64U16 => ins.uload16(types::I64, flags, addr, off),
            Access::I64S32 => ins.sload32(flags, addr, off),
            Access::I64U32 => ins.uload32(flags, addr, off),
        };
        self.push(v);
        Ok(())
    }

    pub(super) fn translate_store(
        &mut self,
        memarg: &MemArg,
        width: Width,
        offset: usize,
    ) -> Result<(), CompileError> {
        check_memarg(memarg, offset)?;
        let value = self.pop1();
        let (addr, off) = self.heap_addr_and_offset(memarg);
        let flags = self.heap_flags();
        let ins = self.builder.ins();
        match width {
            Width::Full => ins.store(flags, value, addr, off),
            Width::W8 => ins.istore8(flags, value, addr, off),
            Width::W16 => ins.istore16(flags, value, addr, off),
            Width::W32 => ins.istore32(flags, value, addr, off),
        };
        Ok(())
    }

    pub(super) fn translate_memory_size(
        &mut self,
        mem: u32,
        _offset: usize,
    ) -> Result<(), CompileError> {
        let memory = self.memory_def(mem);
        // Not read-only: `memory.grow` (here or in a callee) changes it.
        let length = self
            .builder
            .ins()
            .load(types::I64, trusted(), memory, VMMEMORY_LENGTH);
        let pages = self.builder.ins().ushr_imm_u(length, 16);
        let pages = self.builder.ins().ireduce(types::I32, pages);
        self.push(pages);
        Ok(())
    }

    pub(super) fn translate_memory_grow(
        &mut self,
        mem: u32,
        _offset: usize,
    ) -> Result<(), CompileError> {
        let delta = self.pop1();
        let mem = self.iconst_u32(mem);
        let old = self
            .libcall(Libcall::MemoryGrow, &[mem, delta])
            .expect("memory.grow returns");
        self.push(old);
        Ok(())
    }

    pub(super) fn translate_memory_fill(
        &mut self,
        mem: u32,
        _offset: usize,
    ) -> Result<(), CompileError> {
        let (dst, value, len) = self.pop3();
        let mem = self.iconst_u32(mem);
        self.libcall(Libcall::MemoryFill, &[mem, dst, value, len]);
        Ok(())
    }

    pub(super) fn translate_memory_copy(
        &mut self,
        dst_mem: u32,
        src_mem: u32,
        _offset: usize,
    ) -> Result<(), CompileError> {
        let (dst, src, len) = self.pop3();
        let (dst_mem, src_mem) = (self.iconst_u32(dst_mem), self.iconst_u32(src_mem));
        self.libcall(Libcall::MemoryCopy, &[dst_mem, src_mem, dst, src, len]);
        Ok(())
    }

    pub(super) fn translate_memory_init(
        &mut self,
        segment: u32,
        mem: u32,
        _offset: usize,
    ) -> Result<(), CompileError> {
        let (dst, src, len) = self.pop3();
        let segment = self.builder.ins().iconst(types::I32, i64::from(segment));
        let mem = self.iconst_u32(mem);
        self.libcall(Libcall::MemoryInit, &[mem, segment, dst, src, len]);
        Ok(())
    }

    pub(super) fn translate_data_drop(&mut self, segment: u32) {
        let segment = self.builder.ins().iconst(types::I32, i64::from(segment));
        self.libcall(Libcall::DataDrop, &[segment]);
    }
}
