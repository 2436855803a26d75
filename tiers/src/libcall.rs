//! Runtime functions that compiled code calls through the libcall table
//! ([`VMContext::libcalls`](crate::vmctx::VMContext::libcalls)).
//!
//! Compiled code never embeds a host address: it loads entry `Libcall as usize` of the table and
//! calls it with the C convention, except the tier-up libcalls, which it calls with every register
//! preserved through a trampoline ([`Libcall::preserves_registers`]). Every libcall takes the
//! calling instance's `VMContext` first.
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

    /// Whether compiled code calls this libcall with Cranelift's `PreserveAll` convention: the
    /// callee preserves every register, and a result comes back through memory (the caller
    /// passes the address of an 8-byte slot after the other arguments). Its table entry must
    /// then be a [`preserve_all_trampoline!`](crate::preserve_all_trampoline) around the
    /// `extern "C"` implementation.
    ///
    /// The tier-up libcalls sit in cold blocks inside loops. With the C convention every
    /// vector register is caller-saved, so a vector value live across the loop had to be
    /// spilled around the call, and the register allocator put that spill and its reload on
    /// the loop's hot path: each iteration then waited for the previous one's store to be
    /// forwarded to its load (the baseline's matmul and CG ran at 3.2-3.4x native on an AMD
    /// EPYC; docs/BENCHMARKS.md, "Session 16").
    pub fn preserves_registers(self) -> bool {
        matches!(self, Libcall::TierUp | Libcall::LoopTierUp)
    }

    /// Byte offset of this libcall's entry in the table.
    pub fn table_offset(self) -> i32 {
        self as i32 * std::mem::size_of::<usize>() as i32
    }
}

/// Defines `$name`, an entry point that calls the `extern "C"` function `$target` and preserves
/// every general-purpose register and the 128-bit vector registers `xmm0`-`xmm15`, as
/// Cranelift's `PreserveAll` convention expects of a callee (see
/// [`Libcall::preserves_registers`]). Arguments pass through in the C convention's registers
/// untouched. `PreserveAll` calls return no values, so with `result` the trampoline stores
/// `$target`'s pointer-sized result at the address passed in `r8`, the fifth integer argument
/// (`$target` takes exactly four: the `VMContext` and three more, which a test checks for every
/// such libcall); with `no_result` it stores nothing. The frame is a normal `rbp` frame, so
/// frame-pointer walks see through it (it has no DWARF unwind information).
///
/// x86-64 Linux only (the System V convention, ELF symbol directives), as is the engine.
///
/// Use: `preserve_all_trampoline!(result, my_tramp, my_impl);` or with `no_result`; then
/// `my_tramp as *const () as usize` is the table entry.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[macro_export]
macro_rules! preserve_all_trampoline {
    (result, $name:ident, $target:path) => {
        // r8 was saved 48 bytes below the frame pointer (the sixth push); r11 is restored next.
        $crate::preserve_all_trampoline!(@emit $name, $target, "mov r11, [rbp - 48]", "mov [r11], rax");
    };
    (no_result, $name:ident, $target:path) => {
        $crate::preserve_all_trampoline!(@emit $name, $target, "", "");
    };
    (@emit $name:ident, $target:path, $load_out:literal, $store:literal) => {
        ::core::arch::global_asm!(
            concat!(".pushsection .text.", stringify!($name), ",\"ax\",@progbits"),
            ".p2align 4",
            concat!(".globl ", stringify!($name)),
            concat!(".hidden ", stringify!($name)),
            concat!(".type ", stringify!($name), ",@function"),
            concat!(stringify!($name), ":"),
            "push rbp",
            "mov rbp, rsp",
            "push rax",
            "push rcx",
            "push rdx",
            "push rsi",
            "push rdi",
            "push r8",
            "push r9",
            "push r10",
            "push r11",
            // 9 pushes after rbp leave rsp 8 bytes off 16-byte alignment: 256 bytes of vector
            // registers and 8 of padding realign it for the call.
            "sub rsp, 264",
            "movdqu [rsp + 0], xmm0",
            "movdqu [rsp + 16], xmm1",
            "movdqu [rsp + 32], xmm2",
            "movdqu [rsp + 48], xmm3",
            "movdqu [rsp + 64], xmm4",
            "movdqu [rsp + 80], xmm5",
            "movdqu [rsp + 96], xmm6",
            "movdqu [rsp + 112], xmm7",
            "movdqu [rsp + 128], xmm8",
            "movdqu [rsp + 144], xmm9",
            "movdqu [rsp + 160], xmm10",
            "movdqu [rsp + 176], xmm11",
            "movdqu [rsp + 192], xmm12",
            "movdqu [rsp + 208], xmm13",
            "movdqu [rsp + 224], xmm14",
            "movdqu [rsp + 240], xmm15",
            "call {target}",
            $load_out,
            $store,
            "movdqu xmm0, [rsp + 0]",
            "movdqu xmm1, [rsp + 16]",
            "movdqu xmm2, [rsp + 32]",
            "movdqu xmm3, [rsp + 48]",
            "movdqu xmm4, [rsp + 64]",
            "movdqu xmm5, [rsp + 80]",
            "movdqu xmm6, [rsp + 96]",
            "movdqu xmm7, [rsp + 112]",
            "movdqu xmm8, [rsp + 128]",
            "movdqu xmm9, [rsp + 144]",
            "movdqu xmm10, [rsp + 160]",
            "movdqu xmm11, [rsp + 176]",
            "movdqu xmm12, [rsp + 192]",
            "movdqu xmm13, [rsp + 208]",
            "movdqu xmm14, [rsp + 224]",
            "movdqu xmm15, [rsp + 240]",
            "add rsp, 264",
            "pop r11",
            "pop r10",
            "pop r9",
            "pop r8",
            "pop rdi",
            "pop rsi",
            "pop rdx",
            "pop rcx",
            "pop rax",
            "pop rbp",
            "ret",
            concat!(".size ", stringify!($name), ", . - ", stringify!($name)),
            ".popsection",
            target = sym $target,
        );
        unsafe extern "C" {
            fn $name();
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_preserving_libcalls_take_their_result_slot_in_r8() {
        // The trampoline stores a result through the fifth integer argument: the `VMContext`,
        // the libcall's own integer arguments, then the slot's address.
        use Libcall::*;
        let all = [
            MemoryGrow, MemoryFill, MemoryCopy, MemoryInit, DataDrop, TableGet, TableSet,
            TableGrow, TableFill, TableCopy, TableInit, ElemDrop, TierUp, RaiseTrap, LoopTierUp,
        ];
        assert_eq!(all.len(), Libcall::COUNT);
        let mut with_result = 0;
        for l in all {
            let (params, result) = l.signature();
            if l.preserves_registers() && result.is_some() {
                assert_eq!(params.len(), 3, "{l:?}");
                assert!(params.iter().all(|&p| p == LibcallArg::I32), "{l:?}");
                with_result += 1;
            }
        }
        assert_eq!(with_result, 1, "LoopTierUp");
    }

    #[test]
    fn count_covers_every_libcall() {
        assert_eq!(Libcall::LoopTierUp as usize + 1, Libcall::COUNT);
        assert_eq!(Libcall::TableGet.table_offset(), 40);
    }
}
