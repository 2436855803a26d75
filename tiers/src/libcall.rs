//! Runtime functions that compiled code calls through the libcall table
//! ([`VMContext::libcalls`](crate::vmctx::VMContext::libcalls)).
//!
//! Compiled code never embeds a host address: it loads entry `Libcall as usize` of the table and
//! calls it with the C convention. Every libcall takes the calling instance's `VMContext` first.
//! Libcalls that can trap do not return when they do: the runtime unwinds to the host entry.
//!
//! Integer arguments documented as `u32` are wasm `i32` values passed as 32-bit integers;
//! references are pointer-sized.

/// The libcalls, in table order.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Libcall {
    /// `fn(vmctx, memory: u32, delta_pages: u32) -> u32`: `memory.grow`; returns the old size in
    /// pages or `u32::MAX` (-1) on failure.
    MemoryGrow = 0,
    /// `fn(vmctx, memory: u32, dst: u32, val: u32, len: u32)`: `memory.fill`; traps out of bounds.
    MemoryFill,
    /// `fn(vmctx, dst_memory: u32, src_memory: u32, dst: u32, src: u32, len: u32)`:
    /// `memory.copy`; traps out of bounds.
    MemoryCopy,
    /// `fn(vmctx, memory: u32, segment: u32, dst: u32, src: u32, len: u32)`: `memory.init`.
    MemoryInit,
    /// `fn(vmctx, segment: u32)`: `data.drop`.
    DataDrop,
    /// `fn(vmctx, table: u32, index: u32) -> usize`: `table.get`; traps out of bounds.
    TableGet,
    /// `fn(vmctx, table: u32, index: u32, value: usize)`: `table.set`; traps out of bounds.
    TableSet,
    /// `fn(vmctx, table: u32, init: usize, delta: u32) -> u32`: `table.grow`; old size or -1.
    TableGrow,
    /// `fn(vmctx, table: u32, dst: u32, value: usize, len: u32)`: `table.fill`.
    TableFill,
    /// `fn(vmctx, dst_table: u32, src_table: u32, dst: u32, src: u32, len: u32)`: `table.copy`.
    TableCopy,
    /// `fn(vmctx, table: u32, segment: u32, dst: u32, src: u32, len: u32)`: `table.init`.
    TableInit,
    /// `fn(vmctx, segment: u32)`: `elem.drop`.
    ElemDrop,
    /// `fn(vmctx, defined_func_index: u32)`: the function's tier-up budget ran out (at entry or
    /// at a loop header). The runtime resets the budget and may queue the function for the
    /// optimizing tier.
    TierUp,
    /// `fn(vmctx, trap_code: u32) -> !`: raise a trap (for tiers that prefer a call to a trap
    /// instruction).
    RaiseTrap,
    /// `fn(vmctx, defined_func_index: u32, loop_index: u32, outer_loop: u32) -> *const u8`: the
    /// budget ran out (or the function's OSR-armed word names this loop, see
    /// [`VMContext::budgets`](crate::vmctx::VMContext::budgets)) at the header of loop
    /// `loop_index` (the zero-based count of `loop` operators before it in the function body)
    /// whose operand stack is empty. `outer_loop` is the outermost loop enclosing `loop_index`
    /// whose operand stack is empty at its header too, or `loop_index` itself when there is none.
    /// The runtime resets the budget, queues the function for the optimizing tier with an
    /// on-stack-replacement entry (preferably for `outer_loop` or a loop between it and
    /// `loop_index`, where the inner loops start afresh; once an entry is installed the runtime
    /// arms its loop so that loop's header asks for it), and returns an entry for `loop_index`
    /// once one is installed (null until then). The caller then calls the entry with the
    /// [OSR convention](crate::abi#on-stack-replacement-entries) and returns its results as its
    /// own.
    LoopTierUp,
}

/// The kind of a libcall argument or result (after the leading `vmctx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LibcallArg {
    /// A wasm `i32` passed as a 32-bit integer.
    I32,
    /// A pointer-sized integer: a reference, or a code pointer.
    Ptr,
}

impl Libcall {
    /// Number of entries in the libcall table.
    pub const COUNT: usize = 15;

    /// The signature after the leading `vmctx`: parameter kinds and the result kind, as the
    /// documentation of each libcall gives them. Every tier builds its call signatures from
    /// this one table.
    pub fn signature(self) -> (&'static [LibcallArg], Option<LibcallArg>) {
        use LibcallArg::{I32, Ptr};
        match self {
            Libcall::MemoryGrow => (&[I32, I32], Some(I32)),
            Libcall::MemoryFill => (&[I32, I32, I32, I32], None),
            Libcall::MemoryCopy | Libcall::MemoryInit => (&[I32, I32, I32, I32, I32], None),
            Libcall::DataDrop | Libcall::ElemDrop | Libcall::TierUp | Libcall::RaiseTrap => {
                (&[I32], None)
            }
            Libcall::TableGet => (&[I32, I32], Some(Ptr)),
            Libcall::TableSet => (&[I32, I32, Ptr], None),
            Libcall::TableGrow => (&[I32, Ptr, I32], Some(I32)),
            Libcall::TableFill => (&[I32, I32, Ptr, I32], None),
            Libcall::TableCopy | Libcall::TableInit => (&[I32, I32, I32, I32, I32], None),
            Libcall::LoopTierUp => (&[I32, I32, I32], Some(Ptr)),
        }
    }

    /// Byte offset of this libcall's entry in the table.
    pub fn table_offset(self) -> i32 {
        self as i32 * std::mem::size_of::<usize>() as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_covers_every_libcall() {
        assert_eq!(Libcall::LoopTierUp as usize + 1, Libcall::COUNT);
        assert_eq!(Libcall::TableGet.table_offset(), 40);
    }
}
