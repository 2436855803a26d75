//! The `VMContext` layout: the one place that defines where compiled code finds an instance's
//! memory, tables, globals, functions, tier-up budgets and libcalls.
//!
//! Every instance owns one [`VMContext`]. Its header has a fixed layout (the `#[repr(C)]` struct
//! below); variable-length data hangs off it through pointers to arrays, so offsets never depend
//! on the module. Compiled code only uses the `*_OFFSET` constants of this module, and the tests at
//! the bottom check those constants against the structs.
//!
//! ```text
//! VMContext
//!   memory ─────────► VMMemory { base, length }          (memory 0, or null without memories)
//!   memories ───────► [*mut VMMemory; memories]          (every memory, by index)
//!   limits ─────────► VMRuntimeLimits { stack_limit }     (one per store, shared by its instances)
//!   libcalls ───────► [fn; Libcall::COUNT]                 (see crate::libcall)
//!   func_refs ──────► [*const VMFuncRef; functions]        (imports first, then defined)
//!   globals ────────► [*mut VMGlobal; globals]
//!   tables ─────────► [*mut VMTable; tables]
//!   type_ids ───────► [u32; module types]                  (engine-wide canonical signature ids)
//!   budgets ────────► [i32; 3 × defined functions]         (tier-up counters, OSR-armed words, call counts; module-wide)
//!   entries ────────► [AtomicPtr<u8>; defined functions]   (current code of each function)
//! ```

use std::sync::atomic::AtomicPtr;

/// The per-instance context passed to every wasm function as its first argument.
#[repr(C)]
#[derive(Debug)]
pub struct VMContext {
    /// Always [`VMCONTEXT_MAGIC`]; lets the runtime check a pointer it is handed.
    pub magic: u64,
    /// The instance's memory 0, or null.
    pub memory: *mut VMMemory,
    /// Limits shared by every instance in the store (stack limit).
    pub limits: *const VMRuntimeLimits,
    /// The libcall table, indexed by [`crate::libcall::Libcall`].
    pub libcalls: *const usize,
    /// Function references for every function index.
    pub func_refs: *const *const VMFuncRef,
    /// Pointers to every global's storage, by global index.
    pub globals: *const *mut VMGlobal,
    /// Pointers to every table, by table index.
    pub tables: *const *mut VMTable,
    /// Canonical signature id of each of the module's types, by type index.
    pub type_ids: *const u32,
    /// Tier-up budget counters, OSR-armed words and call counts, module-wide: `3 * n` words for
    /// `n` defined functions. `budgets[def]` (`0 <= def < n`) is function `def`'s tier-up
    /// budget; `budgets[n + def]` is its "OSR armed" word: 0, or `loop + 1` once the runtime has
    /// installed an OSR entry for loop `loop` of the function. Baseline code then calls
    /// [`LoopTierUp`](crate::libcall::Libcall::LoopTierUp) at that loop's header without waiting
    /// for the budget to run out. `budgets[2 * n + def]` counts the function's calls (wrapping)
    /// in baseline code that has OSR transfers, so the runtime can tell, when an OSR entry is
    /// taken, whether the function has been called again since its first one (a loop's region
    /// may be taken many times within one call).
    pub budgets: *mut i32,
    /// The entry table: current code pointer of each defined function.
    pub entries: *const AtomicPtr<u8>,
    /// Opaque pointer to the runtime's store data (never dereferenced by compiled code).
    pub store: *mut u8,
    /// Opaque pointer to the runtime's instance data (never dereferenced by compiled code).
    pub instance: *mut u8,
    /// Every memory, by memory index (memory 0 is also reachable directly through `memory`).
    pub memories: *const *mut VMMemory,
}

impl VMContext {
    /// A context with the magic set and every pointer null, for its owner to fill in.
    pub fn null() -> VMContext {
        VMContext {
            magic: VMCONTEXT_MAGIC,
            memory: std::ptr::null_mut(),
            limits: std::ptr::null(),
            libcalls: std::ptr::null(),
            func_refs: std::ptr::null(),
            globals: std::ptr::null(),
            tables: std::ptr::null(),
            type_ids: std::ptr::null(),
            budgets: std::ptr::null_mut(),
            entries: std::ptr::null(),
            store: std::ptr::null_mut(),
            instance: std::ptr::null_mut(),
            memories: std::ptr::null(),
        }
    }
}

/// Value of [`VMContext::magic`].
pub const VMCONTEXT_MAGIC: u64 = u64::from_le_bytes(*b"spatevmc");

/// Offset of [`VMContext::memory`].
pub const VMCTX_MEMORY: i32 = 8;
/// Offset of [`VMContext::limits`].
pub const VMCTX_LIMITS: i32 = 16;
/// Offset of [`VMContext::libcalls`].
pub const VMCTX_LIBCALLS: i32 = 24;
/// Offset of [`VMContext::func_refs`].
pub const VMCTX_FUNC_REFS: i32 = 32;
/// Offset of [`VMContext::globals`].
pub const VMCTX_GLOBALS: i32 = 40;
/// Offset of [`VMContext::tables`].
pub const VMCTX_TABLES: i32 = 48;
/// Offset of [`VMContext::type_ids`].
pub const VMCTX_TYPE_IDS: i32 = 56;
/// Offset of [`VMContext::budgets`].
pub const VMCTX_BUDGETS: i32 = 64;
/// Offset of [`VMContext::entries`].
pub const VMCTX_ENTRIES: i32 = 72;
/// Offset of [`VMContext::memories`].
pub const VMCTX_MEMORIES: i32 = 96;

/// A linear memory as compiled code sees it.
///
/// 32-bit memories live in a reservation of [`MEMORY_RESERVATION`] bytes that never moves, so
/// `base` is constant for the life of the memory and compiled code may load it once per call.
/// `length` changes on `memory.grow` and is read by `memory.size` and bulk-memory libcalls.
#[repr(C)]
#[derive(Debug)]
pub struct VMMemory {
    /// Start of the memory.
    pub base: *mut u8,
    /// Current length in bytes.
    pub length: usize,
}

/// Offset of [`VMMemory::base`].
pub const VMMEMORY_BASE: i32 = 0;
/// Offset of [`VMMemory::length`].
pub const VMMEMORY_LENGTH: i32 = 8;

/// Bytes reserved for each 32-bit linear memory: 4 GiB addressable plus a 4 GiB guard (any
/// `i32` address plus `u32` offset lands inside), plus one more 64 KiB page so that a 16-byte
/// access at the highest such address still faults inside the reservation.
pub const MEMORY_RESERVATION: usize = (8 << 30) + 0x1_0000;

/// Per-store limits checked by compiled code.
#[repr(C)]
#[derive(Debug)]
pub struct VMRuntimeLimits {
    /// Lowest stack address wasm code may use; a function prologue that would go below it traps
    /// with [`crate::TrapCode::StackOverflow`].
    pub stack_limit: usize,
}

/// Offset of [`VMRuntimeLimits::stack_limit`].
pub const VMLIMITS_STACK_LIMIT: i32 = 0;

/// A function reference: what `ref.func`, tables of `funcref` and imports hold.
///
/// Calling through it means: load `entry`, load the code pointer it points to (Acquire on weak
/// memory models; a plain load on x86-64), and call it with `vmctx` as the callee context.
#[repr(C)]
#[derive(Debug)]
pub struct VMFuncRef {
    /// The function's entry: an atomic code pointer that tier-up replaces.
    pub entry: *const AtomicPtr<u8>,
    /// The callee context: the defining instance's `VMContext`, or a host function's
    /// [`crate::abi::VMHostFuncContext`].
    pub vmctx: *mut u8,
    /// Canonical signature id, compared by `call_indirect`.
    pub type_id: u32,
}

/// Offset of [`VMFuncRef::entry`].
pub const VMFUNCREF_ENTRY: i32 = 0;
/// Offset of [`VMFuncRef::vmctx`].
pub const VMFUNCREF_VMCTX: i32 = 8;
/// Offset of [`VMFuncRef::type_id`].
pub const VMFUNCREF_TYPE_ID: i32 = 16;

/// A table as compiled code sees it. Elements are pointer-sized: a `funcref` is a
/// `*const VMFuncRef` (null for `ref.null func`), an `externref` is an opaque non-zero handle
/// (zero for `ref.null extern`).
#[repr(C)]
#[derive(Debug)]
pub struct VMTable {
    /// Start of the element array.
    pub base: *mut usize,
    /// Current number of elements.
    pub length: u32,
}

/// Offset of [`VMTable::base`].
pub const VMTABLE_BASE: i32 = 0;
/// Offset of [`VMTable::length`].
pub const VMTABLE_LENGTH: i32 = 8;

/// Storage of one global: 16 bytes, enough for a `v128`; smaller values sit in the low bytes
/// (little-endian), references as pointer-sized values.
#[repr(C, align(16))]
#[derive(Debug, Clone, Copy, Default)]
pub struct VMGlobal {
    /// The raw bytes of the value.
    pub bytes: [u8; 16],
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn vmcontext_offsets_match_struct() {
        assert_eq!(offset_of!(VMContext, memory) as i32, VMCTX_MEMORY);
        assert_eq!(offset_of!(VMContext, limits) as i32, VMCTX_LIMITS);
        assert_eq!(offset_of!(VMContext, libcalls) as i32, VMCTX_LIBCALLS);
        assert_eq!(offset_of!(VMContext, func_refs) as i32, VMCTX_FUNC_REFS);
        assert_eq!(offset_of!(VMContext, globals) as i32, VMCTX_GLOBALS);
        assert_eq!(offset_of!(VMContext, tables) as i32, VMCTX_TABLES);
        assert_eq!(offset_of!(VMContext, type_ids) as i32, VMCTX_TYPE_IDS);
        assert_eq!(offset_of!(VMContext, budgets) as i32, VMCTX_BUDGETS);
        assert_eq!(offset_of!(VMContext, entries) as i32, VMCTX_ENTRIES);
        assert_eq!(offset_of!(VMContext, memories) as i32, VMCTX_MEMORIES);
    }

    #[test]
    fn pointee_offsets_match_structs() {
        assert_eq!(offset_of!(VMMemory, base) as i32, VMMEMORY_BASE);
        assert_eq!(offset_of!(VMMemory, length) as i32, VMMEMORY_LENGTH);
        assert_eq!(
            offset_of!(VMRuntimeLimits, stack_limit) as i32,
            VMLIMITS_STACK_LIMIT
        );
        assert_eq!(offset_of!(VMFuncRef, entry) as i32, VMFUNCREF_ENTRY);
        assert_eq!(offset_of!(VMFuncRef, vmctx) as i32, VMFUNCREF_VMCTX);
        assert_eq!(offset_of!(VMFuncRef, type_id) as i32, VMFUNCREF_TYPE_ID);
        assert_eq!(offset_of!(VMTable, base) as i32, VMTABLE_BASE);
        assert_eq!(offset_of!(VMTable, length) as i32, VMTABLE_LENGTH);
        assert_eq!(size_of::<VMGlobal>(), 16);
        assert_eq!(
            size_of::<AtomicPtr<u8>>(),
            8,
            "entry table slots are pointer-sized"
        );
    }

    #[test]
    fn reservation_covers_every_static_address() {
        // The largest effective address a 32-bit memory access can form, plus a v128 access.
        let max = u32::MAX as usize + u32::MAX as usize + 16;
        assert!(max < MEMORY_RESERVATION);
    }
}
