//! Linear memory in a guarded reservation.
//!
//! A 32-bit memory reserves [`MEMORY_RESERVATION`] bytes of address space with no access rights
//! and makes the first `pages * 64 KiB` readable and writable; `memory.grow` extends the
//! accessible part in place. The base never moves, and any access compiled code can form from an
//! `i32` address and a `u32` offset lands inside the reservation, so accesses past the current
//! length fault in the guard region and become traps without explicit bounds checks.

use spate_tiers::vmctx::{MEMORY_RESERVATION, VMMemory};

/// Size of a wasm page.
pub const WASM_PAGE: usize = 0x1_0000;
/// Largest page count of a 32-bit memory.
pub const MAX_PAGES: u64 = 0x1_0000;

/// One linear memory and its reservation.
#[derive(Debug)]
pub struct LinearMemory {
    /// What compiled code reads (base and current length).
    pub vm: Box<VMMemory>,
    /// Maximum pages allowed by the memory's type (or the 32-bit limit).
    max_pages: u64,
    /// The maximum declared by the memory's type, if any.
    declared_max: Option<u64>,
}

// SAFETY: the memory is owned by one store; raw pointers are addresses of its own mapping.
unsafe impl Send for LinearMemory {}

impl LinearMemory {
    /// Reserves address space and commits `min_pages` pages.
    pub fn new(min_pages: u64, declared_max: Option<u64>) -> anyhow::Result<LinearMemory> {
        let max_pages = declared_max;
        let max_pages = max_pages.unwrap_or(MAX_PAGES).min(MAX_PAGES);
        if min_pages > max_pages {
            anyhow::bail!("memory minimum of {min_pages} pages exceeds its maximum of {max_pages}");
        }
        // SAFETY: an anonymous, inaccessible, unreserved mapping; checked below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                MEMORY_RESERVATION,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            anyhow::bail!(
                "cannot reserve address space for a linear memory: {}",
                std::io::Error::last_os_error()
            );
        }
        let mut mem = LinearMemory {
            vm: Box::new(VMMemory {
                base: base as *mut u8,
                length: 0,
            }),
            max_pages,
            declared_max,
        };
        if mem.grow(min_pages).is_none() {
            anyhow::bail!("cannot commit {min_pages} pages of linear memory");
        }
        Ok(mem)
    }

    /// Current size in pages.
    pub fn pages(&self) -> u64 {
        (self.vm.length / WASM_PAGE) as u64
    }

    /// Maximum size in pages.
    pub fn max_pages(&self) -> u64 {
        self.max_pages
    }

    /// The maximum declared by the memory's type, if any.
    pub fn declared_maximum(&self) -> Option<u64> {
        self.declared_max
    }

    /// Grows by `delta` pages; returns the previous size in pages, or `None` if the memory cannot
    /// grow that far.
    pub fn grow(&mut self, delta: u64) -> Option<u64> {
        let old = self.pages();
        let new = old.checked_add(delta)?;
        if new > self.max_pages {
            return None;
        }
        if delta == 0 {
            return Some(old);
        }
        let old_len = self.vm.length;
        let new_len = new as usize * WASM_PAGE;
        // SAFETY: [old_len, new_len) lies inside our reservation (new_len <= 4 GiB).
        let rc = unsafe {
            libc::mprotect(
                self.vm.base.add(old_len) as *mut libc::c_void,
                new_len - old_len,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        if rc != 0 {
            return None;
        }
        self.vm.length = new_len;
        Some(old)
    }

    /// The accessible bytes.
    pub fn data(&self) -> &[u8] {
        // SAFETY: [base, base + length) is mapped read-write and owned by this memory.
        unsafe { std::slice::from_raw_parts(self.vm.base, self.vm.length) }
    }

    /// The accessible bytes, mutably.
    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `data`, and `&mut self` gives exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.vm.base, self.vm.length) }
    }
}

impl Drop for LinearMemory {
    fn drop(&mut self) {
        // SAFETY: unmapping our own reservation.
        unsafe { libc::munmap(self.vm.base as *mut libc::c_void, MEMORY_RESERVATION) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grow_commits_pages_in_place() {
        let mut m = LinearMemory::new(1, Some(3)).unwrap();
        let base = m.vm.base;
        m.data_mut()[WASM_PAGE - 1] = 7;
        assert_eq!(m.grow(1), Some(1));
        assert_eq!(m.vm.base, base, "the base never moves");
        m.data_mut()[2 * WASM_PAGE - 1] = 9;
        assert_eq!(m.data()[WASM_PAGE - 1], 7);
        assert_eq!(m.grow(2), None, "past the maximum");
        assert_eq!(m.grow(0), Some(2));
        assert_eq!(m.pages(), 2);
    }

    #[test]
    fn minimum_above_maximum_is_an_error() {
        assert!(LinearMemory::new(2, Some(1)).is_err());
    }
}
