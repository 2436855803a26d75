//! Trap codes and the tables a tier returns with each function's code.

/// Why wasm execution stopped abnormally.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrapCode {
    /// The guest's call stack exceeded its limit.
    StackOverflow = 1,
    /// A memory access outside the memory's current length.
    MemoryOutOfBounds = 2,
    /// A table access outside the table's current length.
    TableOutOfBounds = 3,
    /// `call_indirect` with an index past the end of the table.
    IndirectCallOutOfBounds = 4,
    /// `call_indirect` (or a call through a reference) to a null element.
    IndirectCallToNull = 5,
    /// `call_indirect` whose callee does not have the expected type.
    BadSignature = 6,
    /// Signed integer overflow in division (`i32.div_s` of `INT_MIN` by `-1`).
    IntegerOverflow = 7,
    /// Integer division or remainder by zero.
    IntegerDivisionByZero = 8,
    /// Float-to-integer conversion of NaN or of a value out of the integer's range.
    BadConversionToInteger = 9,
    /// The `unreachable` instruction was executed.
    UnreachableCodeReached = 10,
    /// A null reference was used where a non-null one is required.
    NullReference = 11,
}

impl TrapCode {
    /// Every trap code.
    pub const ALL: [TrapCode; 11] = [
        TrapCode::StackOverflow,
        TrapCode::MemoryOutOfBounds,
        TrapCode::TableOutOfBounds,
        TrapCode::IndirectCallOutOfBounds,
        TrapCode::IndirectCallToNull,
        TrapCode::BadSignature,
        TrapCode::IntegerOverflow,
        TrapCode::IntegerDivisionByZero,
        TrapCode::BadConversionToInteger,
        TrapCode::UnreachableCodeReached,
        TrapCode::NullReference,
    ];

    /// The code with the given byte value, if any.
    pub fn from_u8(v: u8) -> Option<TrapCode> {
        Self::ALL.iter().copied().find(|c| *c as u8 == v)
    }

    /// The message the WebAssembly specification's test suite uses for this trap.
    pub fn message(self) -> &'static str {
        match self {
            TrapCode::StackOverflow => "call stack exhausted",
            TrapCode::MemoryOutOfBounds => "out of bounds memory access",
            TrapCode::TableOutOfBounds => "out of bounds table access",
            TrapCode::IndirectCallOutOfBounds => "undefined element",
            TrapCode::IndirectCallToNull => "uninitialized element",
            TrapCode::BadSignature => "indirect call type mismatch",
            TrapCode::IntegerOverflow => "integer overflow",
            TrapCode::IntegerDivisionByZero => "integer divide by zero",
            TrapCode::BadConversionToInteger => "invalid conversion to integer",
            TrapCode::UnreachableCodeReached => "unreachable",
            TrapCode::NullReference => "null reference",
        }
    }
}

impl std::fmt::Display for TrapCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for TrapCode {}

/// A machine instruction that traps: executing (or faulting in) the instruction at
/// `code_offset` means `trap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrapSite {
    /// Offset of the instruction from the start of the function's code.
    pub code_offset: u32,
    /// What the trap means.
    pub trap: TrapCode,
}

/// The register allocator that produced a piece of code, where the tier reports it (for
/// statistics: the baseline tier chooses per function, see its `RegallocAlgorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RegisterAllocator {
    /// The tier does not say: the LLVM tier, whose allocator is not a setting, and code the
    /// runtime builds itself.
    #[default]
    Unreported,
    /// Cranelift's single-pass allocator (fast; keeps no value in a register across blocks).
    SinglePass,
    /// Cranelift's backtracking allocator (slower to run; keeps loop values in registers).
    Backtracking,
}

/// Machine code for one function or trampoline, as a tier returns it.
///
/// The code is position independent: it contains no absolute addresses and needs no
/// relocation; everything outside the function is reached through the `VMContext`. The runtime
/// places it at a 64-byte-aligned address, so constant pools inside it may assume alignments up
/// to 64 bytes relative to its start.
#[derive(Debug, Clone, Default)]
pub struct CompiledFunction {
    /// The machine code.
    pub code: Vec<u8>,
    /// Trapping instructions, sorted by `code_offset`.
    pub traps: Vec<TrapSite>,
    /// `(code_offset, wasm_offset)` pairs sorted by `code_offset`: the code from each
    /// `code_offset` up to the next entry came from the operator at byte `wasm_offset` of the
    /// module.
    pub srclocs: Vec<(u32, u32)>,
    /// What a fault (`SIGSEGV`/`SIGBUS`) anywhere in this code means when the faulting
    /// instruction is not in `traps`. Tiers that cannot list every memory access (the LLVM tier)
    /// set [`TrapCode::MemoryOutOfBounds`]: their only faulting instructions are linear-memory
    /// accesses that hit the guard region. `None` means unlisted faults are not wasm traps.
    pub fault_trap: Option<TrapCode>,
    /// The register allocator that produced the code, where the tier reports it.
    pub register_allocator: RegisterAllocator,
}

impl CompiledFunction {
    /// The trap at exactly `code_offset`, if that instruction is a trap site.
    pub fn trap_at(&self, code_offset: u32) -> Option<TrapCode> {
        self.traps
            .binary_search_by_key(&code_offset, |t| t.code_offset)
            .ok()
            .map(|i| self.traps[i].trap)
    }

    /// The wasm byte offset of the operator whose code covers `code_offset`.
    pub fn wasm_offset_at(&self, code_offset: u32) -> Option<u32> {
        let i = self.srclocs.partition_point(|(c, _)| *c <= code_offset);
        i.checked_sub(1).map(|i| self.srclocs[i].1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trap_codes_round_trip() {
        for c in TrapCode::ALL {
            assert_eq!(TrapCode::from_u8(c as u8), Some(c));
        }
        assert_eq!(TrapCode::from_u8(0), None);
        assert_eq!(TrapCode::from_u8(200), None);
    }

    #[test]
    fn lookups() {
        let f = CompiledFunction {
            code: vec![0; 64],
            traps: vec![
                TrapSite {
                    code_offset: 4,
                    trap: TrapCode::MemoryOutOfBounds,
                },
                TrapSite {
                    code_offset: 20,
                    trap: TrapCode::UnreachableCodeReached,
                },
            ],
            srclocs: vec![(0, 100), (10, 105), (30, 110)],
            ..CompiledFunction::default()
        };
        assert_eq!(f.trap_at(4), Some(TrapCode::MemoryOutOfBounds));
        assert_eq!(f.trap_at(5), None);
        assert_eq!(f.trap_at(20), Some(TrapCode::UnreachableCodeReached));
        assert_eq!(f.wasm_offset_at(0), Some(100));
        assert_eq!(f.wasm_offset_at(12), Some(105));
        assert_eq!(f.wasm_offset_at(63), Some(110));
    }
}
