//! The calling convention shared by every tier, trampolines and host functions.
//!
//! All functions use the platform C convention (System V on x86-64). A wasm function of type
//! `[p0 .. pn] -> [r0 .. rm]` is called as
//!
//! ```text
//! fn(callee_vmctx: *mut u8, caller_vmctx: *mut u8, p0, .., pn [, ret_area: *mut ValRaw]) [-> r0]
//! ```
//!
//! * wasm `i32`/`i64`/`f32`/`f64` are passed as themselves, `v128` as a 128-bit vector,
//!   `funcref`/`externref` as pointer-sized integers (0 is null);
//! * with zero or one result the result is returned in registers;
//! * with more than one result the caller passes a return area as the last argument, the callee
//!   writes result `i` at byte offset `16 * i` ([`RET_AREA_SLOT`]) and returns nothing.
//!
//! The callee context of a defined function is its instance's
//! [`VMContext`](crate::vmctx::VMContext); for a host function it is a [`VMHostFuncContext`].
//!
//! # On-stack-replacement entries
//!
//! An OSR entry of a function for loop `L` (see
//! [`Libcall::LoopTierUp`](crate::libcall::Libcall::LoopTierUp)) is called as
//!
//! ```text
//! fn(callee_vmctx: *mut u8, caller_vmctx: *mut u8, locals: *mut ValRaw, loop_index: u32 [, ret_area: *mut ValRaw]) [-> r0]
//! ```
//!
//! `locals` holds every local of the function (parameters first, then declared locals) in
//! consecutive [`ValRaw`] slots, as they are at the header of `L` before its body runs, then one
//! more slot, the status (below), and
//! `loop_index` is `L` (one entry may serve several loops, see
//! [`FunctionCompiler::compile_osr_entries`](crate::FunctionCompiler::compile_osr_entries)). The
//! entry continues the function from that loop header and returns the function's results with
//! the same convention as the function itself (a region entry may instead hand the function
//! back, below). Only loops entered with an empty operand stack
//! (no values on it in any enclosing block, and no loop parameters) have OSR entries.
//!
//! After the locals comes one more slot, the *status*: the caller writes [`OSR_RETURNED`] into
//! its low 32 bits before the call. An entry that runs the function to its end leaves it so.
//! A *region* entry (see
//! [`FunctionCompiler::compile_osr_region`](crate::FunctionCompiler::compile_osr_region)) holds
//! the code of one loop only; when the program leaves that loop it writes every local back into
//! the array, writes an exit code into the status slot ([`osr_exit_label`],
//! [`osr_exit_end`]) and returns (its results are then meaningless). The caller reloads the
//! locals and continues at the exit's target in its own code. Exit codes name frames of the
//! control stack at the loop header by their position from the bottom: 0 is the function
//! body, then each enclosing `block`, `loop` and `if` in nesting order, up to the loop itself.
//! Exits never carry values: a region whose exits would is not compiled.
//!
//! A region entry is taken at the header of its own loop, or, when its loop is not inside any
//! other loop, at the header of any loop inside it that it serves (the `loop_index` argument
//! picks which). Its exit codes still name frames at its own loop's header, which are the
//! bottom of the control stack at any header inside it: a caller at an inner header treats
//! the codes that leave the outermost OSR-eligible loop around it (one entered with an empty
//! operand stack; the codes are the labels of the frames below that loop, and its end) as
//! leaving that loop, reloading every local written anywhere in it.

/// Size of one slot of a multi-value return area and of a [`ValRaw`].
pub const RET_AREA_SLOT: u32 = 16;

/// The status an OSR transfer writes after the locals before it calls the entry (see the
/// [module documentation](self#on-stack-replacement-entries)); an entry that returns from the
/// function leaves it.
pub const OSR_RETURNED: u32 = u32::MAX;

/// The exit code of a region entry that leaves its loop by a branch to the label of frame
/// `frame` (counted from the function body, 0): the header of a `loop`, the end of a `block`
/// or `if`.
pub const fn osr_exit_label(frame: u32) -> u32 {
    2 * frame
}

/// The exit code of a region entry that leaves its loop by falling through the `end` of frame
/// `frame` (its own loop; counted from the function body, 0).
pub const fn osr_exit_end(frame: u32) -> u32 {
    2 * frame + 1
}

/// One untyped wasm value in memory: 16 bytes, little-endian, the value in the low bytes.
#[repr(C, align(16))]
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct ValRaw(pub [u8; 16]);

impl std::fmt::Debug for ValRaw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ValRaw({:#034x})", u128::from_le_bytes(self.0))
    }
}

impl ValRaw {
    /// An `i32` value.
    pub fn i32(v: i32) -> Self {
        Self::u128(v as u32 as u128)
    }
    /// An `i64` value.
    pub fn i64(v: i64) -> Self {
        Self::u128(v as u64 as u128)
    }
    /// An `f32` value from its bits.
    pub fn f32(bits: u32) -> Self {
        Self::u128(bits as u128)
    }
    /// An `f64` value from its bits.
    pub fn f64(bits: u64) -> Self {
        Self::u128(bits as u128)
    }
    /// A `v128` value.
    pub fn u128(v: u128) -> Self {
        ValRaw(v.to_le_bytes())
    }
    /// A reference (pointer-sized; 0 is null).
    pub fn reference(v: usize) -> Self {
        Self::u128(v as u128)
    }
    /// The low 32 bits as `i32`.
    pub fn get_i32(&self) -> i32 {
        self.get_u128() as u32 as i32
    }
    /// The low 64 bits as `i64`.
    pub fn get_i64(&self) -> i64 {
        self.get_u128() as u64 as i64
    }
    /// The low 32 bits as `f32` bits.
    pub fn get_f32(&self) -> u32 {
        self.get_u128() as u32
    }
    /// The low 64 bits as `f64` bits.
    pub fn get_f64(&self) -> u64 {
        self.get_u128() as u64
    }
    /// All 128 bits.
    pub fn get_u128(&self) -> u128 {
        u128::from_le_bytes(self.0)
    }
    /// The low pointer-sized bits as a reference.
    pub fn get_reference(&self) -> usize {
        self.get_u128() as usize
    }
}

/// The trampoline through which the host calls a wasm function of a given signature:
/// reads the parameters from `values[0..params]`, calls `code` with the wasm convention
/// (`callee_vmctx`, `caller_vmctx`, params) and writes the results to `values[0..results]`.
/// `values` must have room for `max(params, results)` slots.
pub type HostToWasmTrampoline = unsafe extern "C" fn(
    callee_vmctx: *mut u8,
    caller_vmctx: *mut u8,
    code: *const u8,
    values: *mut ValRaw,
);

/// The host side of a host function, called by a wasm-to-host trampoline with the parameters in
/// `values[0..params]`; it writes results to `values[0..results]`. `len` is the array length,
/// `max(params, results)`. Errors are raised by unwinding to the host entry (the runtime's job);
/// the function returns normally only on success.
pub type HostFunc = unsafe extern "C" fn(
    host_ctx: *mut VMHostFuncContext,
    caller_vmctx: *mut u8,
    values: *mut ValRaw,
    len: usize,
);

/// The callee context of a host function. The wasm-to-host trampoline reads `func` at offset
/// [`VMHOSTFUNC_FUNC`]; the rest belongs to the runtime.
#[repr(C)]
#[derive(Debug)]
pub struct VMHostFuncContext {
    /// The host function to call.
    pub func: HostFunc,
    /// Runtime-owned data (the closure and its type).
    pub data: *mut u8,
}

/// Offset of [`VMHostFuncContext::func`].
pub const VMHOSTFUNC_FUNC: i32 = 0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_func_offset_matches_struct() {
        assert_eq!(
            std::mem::offset_of!(VMHostFuncContext, func) as i32,
            VMHOSTFUNC_FUNC
        );
        assert_eq!(std::mem::size_of::<ValRaw>() as u32, RET_AREA_SLOT);
    }

    #[test]
    fn valraw_round_trips() {
        assert_eq!(ValRaw::i32(-5).get_i32(), -5);
        assert_eq!(ValRaw::i64(i64::MIN).get_i64(), i64::MIN);
        assert_eq!(ValRaw::f32(0x7fc0_0001).get_f32(), 0x7fc0_0001);
        assert_eq!(
            ValRaw::f64(0x7ff8_0000_0000_0001).get_f64(),
            0x7ff8_0000_0000_0001
        );
        assert_eq!(ValRaw::u128(u128::MAX - 7).get_u128(), u128::MAX - 7);
        // An i32 stored as a slot has zero upper bits.
        assert_eq!(ValRaw::i32(-1).get_u128(), 0xffff_ffff);
    }
}
