//! Prefetching of indirect memory accesses, a pass the tier runs between the optimization
//! pipeline and code generation.
//!
//! Hardware prefetchers follow strided streams, not accesses whose address comes from data:
//! `out[count[keys[i]]]` in a counting sort, `x[col[j]]` in a sparse matrix product. For each
//! such load or store in an innermost loop, where the address depends (through integer
//! arithmetic and at most three loads) on a load that walks linear memory with a
//! constant stride, the pass recomputes the address some iterations ahead and prefetches it,
//! the indirect prefetching of Ainsworth and Jones ("Software prefetching for indirect memory
//! accesses", CGO 2017) adapted to WebAssembly's sandbox:
//!
//! * the look-ahead copies of the loads are clamped into the memory's current length (read
//!   just before the access, after the loads it depends on, and memories only grow), so they
//!   can neither fault nor read outside the linear memory, whatever the data;
//! * the prefetch address is clamped the same way (prefetches never fault, but the clamp keeps
//!   even a hint inside the sandbox);
//! * the loop's own instructions are untouched, so its results, traps included, are those of
//!   the code without the pass.
//!
//! The distance is 128 bytes of the strided stream (two cache lines) in iterations, between 4
//! and 64. On the project's machine the counting sort's scatter loop runs about three times as
//! fast with it (see docs/BENCHMARKS.md, "Session 10"); a loop whose indirect targets already
//! sit in cache pays a few instructions per access (the sort's histogram: about 9%).
//!
//! The pass is C++ (`cpp/prefetch.cpp`, built by `build.rs`): it needs LLVM's scalar evolution,
//! which the C API does not expose. It finds a memory by the metadata kind [`MEMORY_BASE_KIND`]
//! that the translator puts on the load of each memory's base address.

use inkwell::module::Module;
use spate_tiers::vmctx::{VMMEMORY_BASE, VMMEMORY_LENGTH};

/// The metadata kind that marks the load of a linear memory's base address from its
/// `VMMemory` record (the pass reads the length next to it).
pub(crate) const MEMORY_BASE_KIND: &str = "spate.memory.base";

unsafe extern "C" {
    /// Adds the prefetches to every function defined in `module`; returns how many it added.
    /// `kind` names the metadata kind of memory-base loads (NUL-terminated); `length_delta` is
    /// the distance in bytes from a `VMMemory`'s base field to its length field.
    fn spate_llvm_prefetch_indirect(
        module: inkwell::llvm_sys::prelude::LLVMModuleRef,
        kind: *const std::ffi::c_char,
        length_delta: u64,
    ) -> u32;
}

/// Runs the pass over `module`; returns the number of prefetches added.
///
/// The pass trusts the translator's marking: every load carrying [`MEMORY_BASE_KIND`] reads the
/// `base` field of a live `VMMemory` record, whose `length` field it then reads too.
pub(crate) fn insert(module: &Module<'_>) -> u32 {
    let delta = (VMMEMORY_LENGTH - VMMEMORY_BASE) as u64;
    let kind = std::ffi::CString::new(MEMORY_BASE_KIND).expect("no NUL in the kind");
    // SAFETY: `module` is a live module owned by this thread (its context lives here), with
    // the target's data layout already set (`finish` sets it before the pipeline); nothing
    // else touches it during the call. The pass reads and adds IR only within it (declaring
    // `llvm.prefetch` in it). `build.rs` compiles the C++ against LLVM 19's headers, the
    // version whose library inkwell links. `kind` outlives the call.
    unsafe { spate_llvm_prefetch_indirect(module.as_mut_ptr(), kind.as_ptr(), delta) }
}
