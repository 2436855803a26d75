//! The process-wide registry of code memory, consulted by the signal handler to decide whether a
//! faulting pc is a wasm trap site.

use super::memory::{FunctionMeta, lookup_in};
use crate::vm::traphandlers::TrapPc;
use spate_tiers::TrapCode;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

struct Region {
    len: usize,
    functions: Arc<Vec<FunctionMeta>>,
}

static REGIONS: RwLock<BTreeMap<usize, Region>> = RwLock::new(BTreeMap::new());

/// Registers a code mapping at `base`.
pub(crate) fn register(base: usize, len: usize, functions: Arc<Vec<FunctionMeta>>) {
    REGIONS
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(base, Region { len, functions });
}

/// Removes the code mapping at `base`.
pub(crate) fn unregister(base: usize) {
    REGIONS
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&base);
}

/// The trap at `pc`, if `pc` is a trap site in registered code. `memory_fault` says the signal
/// was a memory fault (SIGSEGV/SIGBUS): only those count as a function's `fault_trap`.
///
/// Called from the signal handler. The registry is only written while no wasm runs on the
/// writing thread, so a handler never waits on its own thread.
pub(crate) fn lookup_trap(pc: usize, memory_fault: bool) -> Option<(TrapCode, TrapPc)> {
    let regions = REGIONS.read().unwrap_or_else(|e| e.into_inner());
    let (&base, region) = regions.range(..=pc).next_back()?;
    if pc >= base + region.len {
        return None;
    }
    let (code, func_index, wasm_offset) = lookup_in(&region.functions, pc - base, memory_fault)?;
    Some((
        code,
        TrapPc {
            func_index,
            wasm_offset,
        },
    ))
}
