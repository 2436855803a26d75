//! Trampolines between the host's untyped calling convention and the wasm convention.
//!
//! * host-to-wasm ([`spate_tiers::abi::HostToWasmTrampoline`]): `(callee_vmctx, caller_vmctx,
//!   code, values)`: loads the parameters from the `ValRaw` array, calls `code`, and writes the
//!   results back to the array;
//! * wasm-to-host: a function with the wasm convention of its type whose callee context is a
//!   [`spate_tiers::abi::VMHostFuncContext`]: it spills its parameters to a `ValRaw` array on its
//!   stack, calls the context's [`spate_tiers::abi::HostFunc`] and returns what the host wrote.
//!
//! Values written to a `ValRaw` array are canonical: the value in the low bytes, the rest zero.

use cranelift_codegen::ir::{
    self, AbiParam, Function, InstBuilder, MemFlagsData, StackSlotData, StackSlotKind,
    UserFuncName, Value, types,
};
use cranelift_codegen::isa::TargetIsa;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use spate_tiers::CompileError;
use spate_tiers::abi::{RET_AREA_SLOT, VMHOSTFUNC_FUNC};
use wasmparser::FuncType;

use crate::translate::trusted;
use crate::{value_type_or_err, wasm_signature};

/// Flags for accesses to the `ValRaw` array: aligned (16 bytes), never faulting.
fn slot_flags() -> MemFlagsData {
    trusted()
}

/// Stores `v` into the 16-byte `ValRaw` slot at `addr + offset`, zeroing the unused bytes.
fn store_canonical(b: &mut FunctionBuilder<'_>, v: Value, addr: Value, offset: i32) {
    let ty = b.func.dfg.value_type(v);
    if ty.bits() == 128 {
        b.ins().store(slot_flags(), v, addr, offset);
        return;
    }
    let low = match ty {
        types::I64 => v,
        types::I32 => b.ins().uextend(types::I64, v),
        types::F32 => {
            let bits = b.ins().bitcast(types::I32, MemFlagsData::new(), v);
            b.ins().uextend(types::I64, bits)
        }
        types::F64 => b.ins().bitcast(types::I64, MemFlagsData::new(), v),
        other => unreachable!("wasm values have no Cranelift type {other}"),
    };
    let zero = b.ins().iconst(types::I64, 0);
    b.ins().store(slot_flags(), low, addr, offset);
    b.ins().store(slot_flags(), zero, addr, offset + 8);
}

fn slot_offset(i: usize) -> i32 {
    (i as u32 * RET_AREA_SLOT) as i32
}

/// Builds the host-to-wasm trampoline for type `ty` into `func`.
pub(crate) fn host_to_wasm(
    func: &mut Function,
    builder_ctx: &mut FunctionBuilderContext,
    isa: &dyn TargetIsa,
    ty: &FuncType,
) -> Result<(), CompileError> {
    let call_conv = isa.default_call_conv();
    let wasm_sig = wasm_signature(ty, call_conv, 0)?;
    let param_types = ty
        .params()
        .iter()
        .map(|&t| value_type_or_err(t, 0))
        .collect::<Result<Vec<_>, _>>()?;
    let result_types = ty
        .results()
        .iter()
        .map(|&t| value_type_or_err(t, 0))
        .collect::<Result<Vec<_>, _>>()?;

    let mut sig = ir::Signature::new(call_conv);
    sig.params.extend([AbiParam::new(types::I64); 4]);
    func.signature = sig;
    func.name = UserFuncName::user(1, 0);
    let mut b = FunctionBuilder::new(func, builder_ctx);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    b.seal_block(entry);
    let &[callee_vmctx, caller_vmctx, code, values] = b.block_params(entry) else {
        unreachable!("four parameters")
    };

    let mut args = Vec::with_capacity(param_types.len() + 3);
    args.push(callee_vmctx);
    args.push(caller_vmctx);
    for (i, &t) in param_types.iter().enumerate() {
        args.push(b.ins().load(t, slot_flags(), values, slot_offset(i)));
    }
    let ret_area = if result_types.len() > 1 {
        let size = result_types.len() as u32 * RET_AREA_SLOT;
        let slot =
            b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, size, 4));
        args.push(b.ins().stack_addr(types::I64, slot, 0));
        Some(slot)
    } else {
        None
    };
    let sig_ref = b.import_signature(wasm_sig);
    let call = b.ins().call_indirect(sig_ref, code, &args);
    let results: Vec<Value> = match ret_area {
        None => b.inst_results(call).to_vec(),
        Some(slot) => {
            let addr = b.ins().stack_addr(types::I64, slot, 0);
            result_types
                .iter()
                .enumerate()
                .map(|(i, &t)| b.ins().load(t, slot_flags(), addr, slot_offset(i)))
                .collect()
        }
    };
    for (i, &v) in results.iter().enumerate() {
        store_canonical(&mut b, v, values, slot_offset(i));
    }
    b.ins().return_(&[]);
    b.finalize(isa.frontend_config());
    Ok(())
}

/// Builds the wasm-to-host trampoline for type `ty` into `func`.
pub(crate) fn wasm_to_host(
    func: &mut Function,
    builder_ctx: &mut FunctionBuilderContext,
    isa: &dyn TargetIsa,
    ty: &FuncType,
) -> Result<(), CompileError> {
    let call_conv = isa.default_call_conv();
    func.signature = wasm_signature(ty, call_conv, 0)?;
    func.name = UserFuncName::user(2, 0);
    let num_params = ty.params().len();
    let result_types = ty
        .results()
        .iter()
        .map(|&t| value_type_or_err(t, 0))
        .collect::<Result<Vec<_>, _>>()?;
    let len = num_params.max(result_types.len());

    let mut b = FunctionBuilder::new(func, builder_ctx);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    b.seal_block(entry);
    let params = b.block_params(entry).to_vec();
    let (host_ctx, caller_vmctx) = (params[0], params[1]);
    let wasm_params = &params[2..2 + num_params];
    let ret_area = if result_types.len() > 1 {
        params.last().copied()
    } else {
        None
    };

    // At least one slot, so the array pointer is always valid.
    let size = len.max(1) as u32 * RET_AREA_SLOT;
    let slot = b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, size, 4));
    let values = b.ins().stack_addr(types::I64, slot, 0);
    for (i, &p) in wasm_params.iter().enumerate() {
        store_canonical(&mut b, p, values, slot_offset(i));
    }

    let mut host_sig = ir::Signature::new(call_conv);
    host_sig.params.extend([AbiParam::new(types::I64); 4]);
    let host_sig = b.import_signature(host_sig);
    let host_func = b.ins().load(
        types::I64,
        trusted().with_readonly(),
        host_ctx,
        VMHOSTFUNC_FUNC,
    );
    let len = b.ins().iconst(types::I64, len as i64);
    b.ins()
        .call_indirect(host_sig, host_func, &[host_ctx, caller_vmctx, values, len]);

    // The call may have clobbered the address register: recompute it (a cheap `lea`).
    let values = b.ins().stack_addr(types::I64, slot, 0);
    let results: Vec<Value> = result_types
        .iter()
        .enumerate()
        .map(|(i, &t)| b.ins().load(t, slot_flags(), values, slot_offset(i)))
        .collect();
    match ret_area {
        Some(ret_area) => {
            for (i, &v) in results.iter().enumerate() {
                b.ins().store(trusted(), v, ret_area, slot_offset(i));
            }
            b.ins().return_(&[]);
        }
        None => {
            b.ins().return_(&results);
        }
    }
    b.finalize(isa.frontend_config());
    Ok(())
}
