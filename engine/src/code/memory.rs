//! Code memory: machine code from a tier, copied into its own mapping and made executable.
//!
//! Pages are writable while the code is copied in and executable (never both) afterwards. The
//! mapping is registered with the [`registry`] so a fault in it can be turned
//! into a wasm trap, and unregistered when dropped.

use super::registry;
use spate_tiers::{CompiledFunction, TrapCode};
use std::sync::Arc;

/// Alignment of each function in code memory.
const FUNCTION_ALIGN: usize = 64;

/// Trap and source-location tables of one function placed in code memory.
#[derive(Debug)]
pub struct FunctionMeta {
    /// Offset of the function's first byte in the mapping.
    pub start: usize,
    /// Length of its code.
    pub len: usize,
    /// Function index in the module (or `u32::MAX` for trampolines).
    pub func_index: u32,
    /// Trap sites and source locations (the code itself is dropped after copying).
    pub tables: CompiledFunction,
}

/// An executable mapping holding one or more functions.
#[derive(Debug)]
pub struct CodeMemory {
    base: *mut u8,
    len: usize,
    functions: Arc<Vec<FunctionMeta>>,
}

// SAFETY: the mapping is immutable (read+execute) once constructed; the raw pointer is only an
// address. Sharing it between threads is how compiled code is shared.
unsafe impl Send for CodeMemory {}
// SAFETY: as above; no interior mutability.
unsafe impl Sync for CodeMemory {}

impl CodeMemory {
    /// Copies `functions` (with their function indices) into a new executable mapping.
    pub fn new(functions: Vec<(u32, CompiledFunction)>) -> std::io::Result<CodeMemory> {
        let mut total = 0usize;
        for (_, f) in &functions {
            total = total.next_multiple_of(FUNCTION_ALIGN) + f.code.len();
        }
        let page = page_size();
        let len = total.max(1).next_multiple_of(page);
        // SAFETY: anonymous private mapping, checked for failure below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let base = base as *mut u8;
        let mut metas = Vec::with_capacity(functions.len());
        let mut offset = 0usize;
        for (func_index, mut f) in functions {
            offset = offset.next_multiple_of(FUNCTION_ALIGN);
            // SAFETY: `offset + code.len() <= total <= len`, inside the fresh writable mapping.
            unsafe {
                std::ptr::copy_nonoverlapping(f.code.as_ptr(), base.add(offset), f.code.len())
            };
            let flen = f.code.len();
            f.code = Vec::new();
            metas.push(FunctionMeta {
                start: offset,
                len: flen,
                func_index,
                tables: f,
            });
            offset += flen;
        }
        // SAFETY: flipping our own mapping from RW to RX once all code is written.
        if unsafe {
            libc::mprotect(
                base as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_EXEC,
            )
        } != 0
        {
            let err = std::io::Error::last_os_error();
            // SAFETY: unmapping the mapping we just created.
            unsafe { libc::munmap(base as *mut libc::c_void, len) };
            return Err(err);
        }
        let functions = Arc::new(metas);
        registry::register(base as usize, len, functions.clone());
        Ok(CodeMemory {
            base,
            len,
            functions,
        })
    }

    /// Address of the `i`-th function placed in this memory.
    pub fn function_ptr(&self, i: usize) -> *const u8 {
        // SAFETY: `start` is inside the mapping.
        unsafe { self.base.add(self.functions[i].start) }
    }

    /// The placed functions.
    pub fn functions(&self) -> &[FunctionMeta] {
        &self.functions
    }

    /// Total bytes of machine code (excluding padding).
    pub fn code_bytes(&self) -> usize {
        self.functions.iter().map(|f| f.len).sum()
    }
}

impl Drop for CodeMemory {
    fn drop(&mut self) {
        registry::unregister(self.base as usize);
        // SAFETY: unmapping our own mapping; no code in it can run any more because every
        // owner of pointers into it (modules, instances, stores) holds this object alive.
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.len) };
    }
}

/// Looks up trap information for an address inside `functions` placed at `base`; a function's
/// `fault_trap` applies only when the signal is a memory fault (`memory_fault`).
pub(crate) fn lookup_in(
    functions: &[FunctionMeta],
    offset: usize,
    memory_fault: bool,
) -> Option<(TrapCode, u32, Option<u32>)> {
    let i = functions
        .partition_point(|f| f.start <= offset)
        .checked_sub(1)?;
    let f = &functions[i];
    if offset >= f.start + f.len {
        return None;
    }
    let rel = (offset - f.start) as u32;
    let fault = f.tables.fault_trap.filter(|_| memory_fault);
    let code = f.tables.trap_at(rel).or(fault)?;
    Some((code, f.func_index, f.tables.wasm_offset_at(rel)))
}

/// The system page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p <= 0 { 4096 } else { p as usize }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spate_tiers::{CompiledFunction, TrapSite};

    fn meta(start: usize, len: usize, tables: CompiledFunction) -> FunctionMeta {
        FunctionMeta {
            start,
            len,
            func_index: 7,
            tables,
        }
    }

    #[test]
    fn fault_traps_cover_memory_faults_only() {
        let listed = CompiledFunction {
            traps: vec![TrapSite {
                code_offset: 4,
                trap: TrapCode::IntegerDivisionByZero,
            }],
            ..CompiledFunction::default()
        };
        let unlisted = CompiledFunction {
            fault_trap: Some(TrapCode::MemoryOutOfBounds),
            ..CompiledFunction::default()
        };
        let functions = [meta(0, 16, listed), meta(64, 32, unlisted)];
        // A listed trap site counts whatever the signal.
        assert_eq!(
            lookup_in(&functions, 4, false).map(|t| t.0),
            Some(TrapCode::IntegerDivisionByZero)
        );
        assert_eq!(lookup_in(&functions, 5, true), None);
        // Anywhere in code with a fault trap: memory faults only.
        assert_eq!(
            lookup_in(&functions, 70, true).map(|t| (t.0, t.1)),
            Some((TrapCode::MemoryOutOfBounds, 7))
        );
        assert_eq!(lookup_in(&functions, 70, false), None);
        // Between and after functions: nothing.
        assert_eq!(lookup_in(&functions, 20, true), None);
        assert_eq!(lookup_in(&functions, 96, true), None);
    }
}
