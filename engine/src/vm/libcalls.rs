//! The runtime functions compiled code calls through the libcall table (see
//! [`spate_tiers::libcall`] for each one's contract).
//!
//! Each `extern "C"` entry point computes its result in a safe helper returning
//! `Result<_, Trap>` and only then, with nothing left to drop, raises the trap.

use super::instance::InstanceData;
use super::traphandlers::{UnwindReason, raise};
use crate::store::StoreOpaque;
use spate_tiers::TrapCode as Trap;
use spate_tiers::libcall::Libcall;
use spate_tiers::vmctx::VMContext;
use std::sync::atomic::Ordering;

/// A fresh libcall table, indexed by [`Libcall`].
pub(crate) fn table() -> Box<[usize]> {
    let mut t = vec![0usize; Libcall::COUNT];
    t[Libcall::MemoryGrow as usize] = memory_grow as *const () as usize;
    t[Libcall::MemoryFill as usize] = memory_fill as *const () as usize;
    t[Libcall::MemoryCopy as usize] = memory_copy as *const () as usize;
    t[Libcall::MemoryInit as usize] = memory_init as *const () as usize;
    t[Libcall::DataDrop as usize] = data_drop as *const () as usize;
    t[Libcall::TableGet as usize] = table_get as *const () as usize;
    t[Libcall::TableSet as usize] = table_set as *const () as usize;
    t[Libcall::TableGrow as usize] = table_grow as *const () as usize;
    t[Libcall::TableFill as usize] = table_fill as *const () as usize;
    t[Libcall::TableCopy as usize] = table_copy as *const () as usize;
    t[Libcall::TableInit as usize] = table_init as *const () as usize;
    t[Libcall::ElemDrop as usize] = elem_drop as *const () as usize;
    // Called with every register preserved (see `Libcall::preserves_registers`).
    t[Libcall::TierUp as usize] = spate_tier_up_preserving as *const () as usize;
    t[Libcall::RaiseTrap as usize] = raise_trap as *const () as usize;
    t[Libcall::LoopTierUp as usize] = spate_loop_tier_up_preserving as *const () as usize;
    debug_assert!(
        t.iter().all(|&p| p != 0),
        "every libcall has an implementation"
    );
    t.into_boxed_slice()
}

/// The instance and store behind a `VMContext` passed by compiled code.
///
/// # Safety
/// `vmctx` must be the context of a live instance, passed by compiled code running on this
/// thread (so nothing else borrows the store).
unsafe fn parts<'a>(vmctx: *mut VMContext) -> (&'a mut InstanceData, &'a mut StoreOpaque) {
    // SAFETY: per the contract, `instance` and `store` point to the live instance and its store
    // (a `StoreInner<T>` whose first field is the `StoreOpaque`).
    unsafe {
        (
            &mut *((*vmctx).instance as *mut InstanceData),
            &mut *((*vmctx).store as *mut StoreOpaque),
        )
    }
}

fn check_range(
    start: u32,
    len: u32,
    size: usize,
    code: Trap,
) -> Result<std::ops::Range<usize>, Trap> {
    let (start, len) = (start as usize, len as usize);
    match start.checked_add(len) {
        Some(end) if end <= size => Ok(start..end),
        _ => Err(code),
    }
}

/// `memory.copy` / `table.copy`: copies `len` items from `src` of object `objs[src_obj]` to
/// `dst` of `objs[dst_obj]` (the same object or two distinct ones), after bounds-checking both
/// ranges against the objects' current contents as given by `items`.
fn copy_between<O, T: Copy>(
    objs: &mut [Box<O>],
    (dst_obj, dst): (usize, u32),
    (src_obj, src): (usize, u32),
    len: u32,
    trap: Trap,
    items: impl Fn(&mut O) -> &mut [T],
) -> Result<(), Trap> {
    let s = check_range(src, len, items(&mut objs[src_obj]).len(), trap)?;
    let d = check_range(dst, len, items(&mut objs[dst_obj]).len(), trap)?;
    if dst_obj == src_obj {
        items(&mut objs[dst_obj]).copy_within(s, d.start);
    } else {
        let (lo, hi) = objs.split_at_mut(dst_obj.max(src_obj));
        let (dst_o, src_o) = if dst_obj < src_obj {
            (&mut lo[dst_obj], &mut hi[0])
        } else {
            (&mut hi[0], &mut lo[src_obj])
        };
        items(dst_o)[d].copy_from_slice(&items(src_o)[s]);
    }
    Ok(())
}

/// Raises `r`'s trap, if any.
///
/// # Safety
/// Must be called from a libcall entry point, with nothing left to drop in its frame.
unsafe fn finish<T>(r: Result<T, Trap>) -> T {
    match r {
        Ok(v) => v,
        // SAFETY: called from compiled code inside `catch_traps` (the libcall contract).
        Err(code) => unsafe { raise(UnwindReason::Trap(code, None)) },
    }
}

unsafe extern "C" fn memory_grow(vmctx: *mut VMContext, memory: u32, delta: u32) -> u32 {
    // SAFETY: called by compiled code with its own context.
    let (inst, store) = unsafe { parts(vmctx) };
    let mem = &mut store.memories[inst.memory_ids[memory as usize]];
    mem.grow(delta as u64).map_or(u32::MAX, |old| old as u32)
}

unsafe extern "C" fn memory_fill(vmctx: *mut VMContext, memory: u32, dst: u32, val: u32, len: u32) {
    let r = (|| {
        // SAFETY: called by compiled code with its own context.
        let (inst, store) = unsafe { parts(vmctx) };
        let mem = store.memories[inst.memory_ids[memory as usize]].data_mut();
        let range = check_range(dst, len, mem.len(), Trap::MemoryOutOfBounds)?;
        mem[range].fill(val as u8);
        Ok(())
    })();
    // SAFETY: libcall entry point; nothing to drop.
    unsafe { finish(r) }
}

unsafe extern "C" fn memory_copy(
    vmctx: *mut VMContext,
    dst_memory: u32,
    src_memory: u32,
    dst: u32,
    src: u32,
    len: u32,
) {
    let r = (|| {
        // SAFETY: called by compiled code with its own context.
        let (inst, store) = unsafe { parts(vmctx) };
        let (di, si) = (
            inst.memory_ids[dst_memory as usize],
            inst.memory_ids[src_memory as usize],
        );
        copy_between(
            &mut store.memories,
            (di, dst),
            (si, src),
            len,
            Trap::MemoryOutOfBounds,
            |m| m.data_mut(),
        )?;
        Ok(())
    })();
    // SAFETY: libcall entry point; nothing to drop.
    unsafe { finish(r) }
}

unsafe extern "C" fn memory_init(
    vmctx: *mut VMContext,
    memory: u32,
    seg: u32,
    dst: u32,
    src: u32,
    len: u32,
) {
    let r = (|| {
        // SAFETY: called by compiled code with its own context.
        let (inst, store) = unsafe { parts(vmctx) };
        let data = &inst.data[seg as usize];
        let mem = store.memories[inst.memory_ids[memory as usize]].data_mut();
        let s = check_range(src, len, data.len(), Trap::MemoryOutOfBounds)?;
        let d = check_range(dst, len, mem.len(), Trap::MemoryOutOfBounds)?;
        mem[d].copy_from_slice(&data[s]);
        Ok(())
    })();
    // SAFETY: libcall entry point; nothing to drop.
    unsafe { finish(r) }
}

unsafe extern "C" fn data_drop(vmctx: *mut VMContext, seg: u32) {
    // SAFETY: called by compiled code with its own context.
    let (inst, _) = unsafe { parts(vmctx) };
    inst.data[seg as usize] = std::sync::Arc::from([]);
}

unsafe extern "C" fn table_get(vmctx: *mut VMContext, table: u32, index: u32) -> usize {
    // SAFETY: called by compiled code with its own context.
    let (inst, store) = unsafe { parts(vmctx) };
    let t = &store.tables[inst.table_ids[table as usize]];
    let r = t
        .elements()
        .get(index as usize)
        .copied()
        .ok_or(Trap::TableOutOfBounds);
    // SAFETY: libcall entry point; nothing to drop.
    unsafe { finish(r) }
}

unsafe extern "C" fn table_set(vmctx: *mut VMContext, table: u32, index: u32, value: usize) {
    let r = (|| {
        // SAFETY: called by compiled code with its own context.
        let (inst, store) = unsafe { parts(vmctx) };
        let t = &mut store.tables[inst.table_ids[table as usize]];
        let slot = t
            .elements_mut()
            .get_mut(index as usize)
            .ok_or(Trap::TableOutOfBounds)?;
        *slot = value;
        Ok(())
    })();
    // SAFETY: libcall entry point; nothing to drop.
    unsafe { finish(r) }
}

unsafe extern "C" fn table_grow(vmctx: *mut VMContext, table: u32, init: usize, delta: u32) -> u32 {
    // SAFETY: called by compiled code with its own context.
    let (inst, store) = unsafe { parts(vmctx) };
    let t = &mut store.tables[inst.table_ids[table as usize]];
    t.grow(delta, init).unwrap_or(u32::MAX)
}

unsafe extern "C" fn table_fill(
    vmctx: *mut VMContext,
    table: u32,
    dst: u32,
    value: usize,
    len: u32,
) {
    let r = (|| {
        // SAFETY: called by compiled code with its own context.
        let (inst, store) = unsafe { parts(vmctx) };
        let t = &mut store.tables[inst.table_ids[table as usize]];
        let range = check_range(dst, len, t.len() as usize, Trap::TableOutOfBounds)?;
        t.elements_mut()[range].fill(value);
        Ok(())
    })();
    // SAFETY: libcall entry point; nothing to drop.
    unsafe { finish(r) }
}

unsafe extern "C" fn table_copy(
    vmctx: *mut VMContext,
    dst_table: u32,
    src_table: u32,
    dst: u32,
    src: u32,
    len: u32,
) {
    let r = (|| {
        // SAFETY: called by compiled code with its own context.
        let (inst, store) = unsafe { parts(vmctx) };
        let (di, si) = (
            inst.table_ids[dst_table as usize],
            inst.table_ids[src_table as usize],
        );
        copy_between(
            &mut store.tables,
            (di, dst),
            (si, src),
            len,
            Trap::TableOutOfBounds,
            |t| t.elements_mut(),
        )?;
        Ok(())
    })();
    // SAFETY: libcall entry point; nothing to drop.
    unsafe { finish(r) }
}

unsafe extern "C" fn table_init(
    vmctx: *mut VMContext,
    table: u32,
    seg: u32,
    dst: u32,
    src: u32,
    len: u32,
) {
    let r = (|| {
        // SAFETY: called by compiled code with its own context.
        let (inst, store) = unsafe { parts(vmctx) };
        let elems = &inst.elements[seg as usize];
        let t = &mut store.tables[inst.table_ids[table as usize]];
        let s = check_range(src, len, elems.len(), Trap::TableOutOfBounds)?;
        let d = check_range(dst, len, t.len() as usize, Trap::TableOutOfBounds)?;
        t.elements_mut()[d].copy_from_slice(&elems[s]);
        Ok(())
    })();
    // SAFETY: libcall entry point; nothing to drop.
    unsafe { finish(r) }
}

unsafe extern "C" fn elem_drop(vmctx: *mut VMContext, seg: u32) {
    // SAFETY: called by compiled code with its own context.
    let (inst, _) = unsafe { parts(vmctx) };
    inst.elements[seg as usize] = std::sync::Arc::from([]);
}

/// Common part of the tier-up libcalls: the budget goes back to the threshold and the request
/// is counted. Returns the engine and the module of the calling code.
///
/// # Safety
/// As for [`parts`].
unsafe fn budget_ran_out<'a>(
    vmctx: *mut VMContext,
    def_index: u32,
) -> (
    &'a crate::Engine,
    &'a std::sync::Arc<crate::module::ModuleInner>,
) {
    // SAFETY: per this function's contract.
    let (inst, store) = unsafe { parts(vmctx) };
    let engine = &store.engine;
    let module = &inst.module.0;
    reset_budget(engine, module, def_index);
    (engine, module)
}

/// The budget of function `def_index` goes back to the threshold and the request is counted.
fn reset_budget(engine: &crate::Engine, module: &crate::module::ModuleInner, def_index: u32) {
    module.budgets[def_index as usize].store(engine.0.config.tier_up_budget(), Ordering::Relaxed);
    engine
        .0
        .stats
        .tier_up_requests
        .fetch_add(1, Ordering::Relaxed);
}

spate_tiers::preserve_all_trampoline!(no_result, spate_tier_up_preserving, tier_up);
spate_tiers::preserve_all_trampoline!(result, spate_loop_tier_up_preserving, loop_tier_up);

unsafe extern "C" fn tier_up(vmctx: *mut VMContext, def_index: u32) {
    // SAFETY: called by compiled code with its own context.
    let (engine, module) = unsafe { budget_ran_out(vmctx, def_index) };
    crate::tiering::request(engine, module, def_index);
}

unsafe extern "C" fn loop_tier_up(
    vmctx: *mut VMContext,
    def_index: u32,
    loop_index: u32,
    outer_loop: u32,
) -> usize {
    // SAFETY: called by compiled code with its own context.
    let (inst, store) = unsafe { parts(vmctx) };
    let engine = &store.engine;
    let module = &inst.module.0;
    // An outermost loop's header also calls while the function is armed for OSR; only a budget
    // that ran out counts as a tier-up request.
    let exhausted = module.budgets[def_index as usize].load(Ordering::Relaxed) < 0;
    if exhausted {
        reset_budget(engine, module, def_index);
    }
    crate::tiering::osr_entry(engine, module, def_index, loop_index, outer_loop, exhausted) as usize
}

unsafe extern "C" fn raise_trap(_vmctx: *mut VMContext, code: u32) {
    let code = u8::try_from(code)
        .ok()
        .and_then(Trap::from_u8)
        .unwrap_or(Trap::UnreachableCodeReached);
    // SAFETY: libcall entry point called from compiled code; nothing to drop.
    unsafe { raise(UnwindReason::Trap(code, None)) }
}
