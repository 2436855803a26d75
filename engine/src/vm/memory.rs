//! Linear memory in a guarded reservation.
//!
//! A 32-bit memory reserves [`MEMORY_RESERVATION`] bytes of address space with no access rights
//! and makes the first `pages * 64 KiB` readable and writable; `memory.grow` extends the
//! accessible part in place. The base never moves, and any access compiled code can form from an
//! `i32` address and a `u32` offset lands inside the reservation, so accesses past the current
//! length fault in the guard region and become traps without explicit bounds checks.
//!
//! The reservation starts on a 2 MiB boundary and, unless turned off
//! ([`Config::memory_huge_pages`](crate::Config::memory_huge_pages)), is advised to the kernel
//! for transparent huge pages (`MADV_HUGEPAGE`): the accessible part is then backed by 2 MiB
//! pages where the kernel has them, so a program sweeping tens of megabytes needs a few dozen
//! TLB entries instead of thousands of 4 KiB ones. The advice changes nothing else: the guard
//! region stays inaccessible, `memory.grow` still commits in place, and a kernel without
//! transparent huge pages ignores it.

use spate_tiers::vmctx::{MEMORY_RESERVATION, VMMemory};

/// Size of a wasm page.
pub const WASM_PAGE: usize = 0x1_0000;
/// Largest page count of a 32-bit memory.
pub const MAX_PAGES: u64 = 0x1_0000;
/// Size of a transparent huge page on x86-64 Linux; reservations start on a multiple of it.
pub const HUGE_PAGE: usize = 2 << 20;

/// One linear memory and its reservation.
#[derive(Debug)]
pub struct LinearMemory {
    /// What compiled code reads (base and current length).
    pub vm: Box<VMMemory>,
    /// Maximum pages allowed by the memory's type (or the 32-bit limit).
    max_pages: u64,
    /// The maximum declared by the memory's type, if any.
    declared_max: Option<u64>,
    /// Whether the kernel accepted the advice to back the memory with huge pages.
    huge_pages: bool,
}

// SAFETY: the memory is owned by one store; raw pointers are addresses of its own mapping.
unsafe impl Send for LinearMemory {}

impl LinearMemory {
    /// Reserves address space and commits `min_pages` pages; with `huge_pages`, advises the
    /// kernel to back the memory with transparent huge pages (see the module documentation).
    pub fn new(
        min_pages: u64,
        declared_max: Option<u64>,
        huge_pages: bool,
    ) -> anyhow::Result<LinearMemory> {
        let max_pages = declared_max;
        let max_pages = max_pages.unwrap_or(MAX_PAGES).min(MAX_PAGES);
        if min_pages > max_pages {
            anyhow::bail!("memory minimum of {min_pages} pages exceeds its maximum of {max_pages}");
        }
        let base = reserve_aligned()?;
        // Without huge pages, the opposite advice keeps 4 KiB pages even where the system backs
        // all anonymous memory with huge pages (transparent huge pages set to `always`).
        let advice = if huge_pages {
            libc::MADV_HUGEPAGE
        } else {
            libc::MADV_NOHUGEPAGE
        };
        // SAFETY: advice on our own reservation; it never changes what the memory holds or
        // who may access it, and failure (a kernel without transparent huge pages) is harmless.
        let advised = unsafe { libc::madvise(base.cast(), MEMORY_RESERVATION, advice) } == 0;
        let huge_pages = huge_pages && advised;
        let mut mem = LinearMemory {
            vm: Box::new(VMMemory { base, length: 0 }),
            max_pages,
            declared_max,
            huge_pages,
        };
        if mem.grow(min_pages).is_none() {
            anyhow::bail!("cannot commit {min_pages} pages of linear memory");
        }
        Ok(mem)
    }

    /// Whether the memory is advised for transparent huge pages (the kernel accepted the
    /// advice; it still backs each 2 MiB stretch with a huge page only if it has one free).
    pub fn huge_pages(&self) -> bool {
        self.huge_pages
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

/// Reserves [`MEMORY_RESERVATION`] bytes of inaccessible address space starting on a
/// [`HUGE_PAGE`] boundary: one huge page more is reserved, and the slack before and after the
/// aligned part is given back.
fn reserve_aligned() -> anyhow::Result<*mut u8> {
    let size = MEMORY_RESERVATION + HUGE_PAGE;
    // SAFETY: an anonymous, inaccessible, unreserved mapping; checked below.
    let raw = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        anyhow::bail!(
            "cannot reserve address space for a linear memory: {}",
            std::io::Error::last_os_error()
        );
    }
    let (base, head, tail) = aligned_split(raw as usize, size);
    // SAFETY: both ranges are page-aligned parts of the mapping just made that lie outside
    // [base, base + MEMORY_RESERVATION), which is kept. Should an unmap fail (the process at
    // its limit of mappings), the slack stays reserved and inaccessible: address space lost,
    // nothing else.
    unsafe {
        if head > 0 {
            let rc = libc::munmap(raw, head);
            debug_assert_eq!(rc, 0, "unmapping the slack before a reservation");
        }
        if tail > 0 {
            let rc = libc::munmap((base + MEMORY_RESERVATION) as *mut libc::c_void, tail);
            debug_assert_eq!(rc, 0, "unmapping the slack after a reservation");
        }
    }
    Ok(base as *mut u8)
}

/// The system's transparent-huge-page mode, as `/sys/kernel/mm/transparent_hugepage/enabled`
/// marks it: `always` (all anonymous memory may get huge pages), `madvise` (only advised
/// memory, such as linear memories with [`Config::memory_huge_pages`](crate::Config::memory_huge_pages))
/// or `never`; `None` when the kernel has no such setting.
pub fn transparent_huge_page_mode() -> Option<String> {
    let s = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").ok()?;
    let start = s.find('[')? + 1;
    let end = start + s[start..].find(']')?;
    Some(s[start..end].to_string())
}

/// For a mapping of `size` bytes at `raw` (page-aligned, `size >= MEMORY_RESERVATION +
/// HUGE_PAGE`): the first [`HUGE_PAGE`] boundary in it, where the reservation starts, and the
/// bytes before and after the reservation to give back.
fn aligned_split(raw: usize, size: usize) -> (usize, usize, usize) {
    let base = raw.next_multiple_of(HUGE_PAGE);
    let head = base - raw;
    (base, head, size - head - MEMORY_RESERVATION)
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
        let mut m = LinearMemory::new(1, Some(3), false).unwrap();
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
        assert!(LinearMemory::new(2, Some(1), true).is_err());
    }

    /// The block of `/proc/self/smaps` describing the mapping that holds `addr`: its header
    /// line (`lo-hi perms offset dev inode [path]`) and then its `Field: value` lines.
    fn smaps_of(addr: usize) -> Option<Vec<String>> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let mut block: Option<Vec<String>> = None;
        for line in smaps.lines() {
            let first = line.split_whitespace().next().unwrap_or("");
            if let Some((lo, hi)) = first.split_once('-')
                && let (Ok(lo), Ok(hi)) =
                    (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
            {
                if block.is_some() {
                    break;
                }
                if (lo..hi).contains(&addr) {
                    block = Some(vec![line.to_string()]);
                }
            } else if let Some(b) = &mut block {
                b.push(line.to_string());
            }
        }
        block
    }

    /// The permissions (`rw-p`, `---p`, ...) of the mapping that holds `addr`.
    fn permissions_at(addr: usize) -> Option<String> {
        let block = smaps_of(addr)?;
        block[0].split_whitespace().nth(1).map(str::to_string)
    }

    /// The `THPeligible` field of the mapping that holds `addr`.
    fn thp_eligible(addr: usize) -> Option<bool> {
        smaps_of(addr)?
            .iter()
            .find_map(|l| l.strip_prefix("THPeligible:").map(|v| v.trim() == "1"))
    }

    #[test]
    fn the_reservation_is_the_first_huge_page_boundary_of_the_mapping() {
        let size = MEMORY_RESERVATION + HUGE_PAGE;
        for raw in [HUGE_PAGE * 7, HUGE_PAGE * 7 + 4096, HUGE_PAGE * 8 - 4096] {
            let (base, head, tail) = aligned_split(raw, size);
            assert_eq!(base % HUGE_PAGE, 0);
            assert!(base >= raw && base - raw < HUGE_PAGE, "{raw:#x}: {base:#x}");
            assert_eq!(
                base,
                raw + head,
                "the head ends where the reservation starts"
            );
            assert_eq!(
                base + MEMORY_RESERVATION + tail,
                raw + size,
                "the tail ends where the mapping ends"
            );
        }
        assert_eq!(
            aligned_split(HUGE_PAGE * 7, size),
            (HUGE_PAGE * 7, 0, HUGE_PAGE)
        );
        assert_eq!(
            aligned_split(HUGE_PAGE * 8 - 4096, size),
            (HUGE_PAGE * 8, 4096, HUGE_PAGE - 4096)
        );
        for huge in [false, true] {
            let mems: Vec<_> = (0..4)
                .map(|_| LinearMemory::new(1, None, huge).unwrap())
                .collect();
            for m in &mems {
                assert_eq!(m.vm.base as usize % HUGE_PAGE, 0, "huge pages: {huge}");
            }
        }
    }

    #[test]
    fn the_guard_region_stays_inaccessible_under_the_advice() {
        let mut m = LinearMemory::new(1, None, true).unwrap();
        m.grow((HUGE_PAGE / WASM_PAGE) as u64).unwrap();
        let base = m.vm.base as usize;
        let len = m.vm.length;
        assert_eq!(permissions_at(base).as_deref(), Some("rw-p"));
        assert_eq!(permissions_at(base + len - 1).as_deref(), Some("rw-p"));
        for past in [len, len + HUGE_PAGE, MEMORY_RESERVATION - 1] {
            assert_eq!(
                permissions_at(base + past).as_deref(),
                Some("---p"),
                "{past:#x} bytes past the base"
            );
        }
    }

    #[test]
    fn huge_page_advice_makes_the_accessible_part_eligible() {
        let pages = (2 * HUGE_PAGE / WASM_PAGE) as u64;
        let mut on = LinearMemory::new(pages, None, true).unwrap();
        let mut off = LinearMemory::new(pages, None, false).unwrap();
        for m in [&mut on, &mut off] {
            m.data_mut().iter_mut().step_by(4096).for_each(|b| *b = 1);
            assert_eq!(
                m.data().iter().step_by(4096).filter(|&&b| b == 1).count(),
                1024
            );
        }
        match transparent_huge_page_mode().as_deref() {
            Some("madvise") => {
                assert!(on.huge_pages(), "the kernel accepts the advice");
                assert_eq!(thp_eligible(on.vm.base as usize), Some(true));
                assert_eq!(thp_eligible(off.vm.base as usize), Some(false));
            }
            Some("always") => {
                assert!(on.huge_pages());
                assert_eq!(thp_eligible(on.vm.base as usize), Some(true));
                // MADV_NOHUGEPAGE opts out even here.
                assert_eq!(thp_eligible(off.vm.base as usize), Some(false));
            }
            // `never`, or no transparent huge pages at all: nothing to observe beyond the
            // memory working, checked above.
            mode => eprintln!("transparent huge pages: {mode:?}; eligibility not checked"),
        }
        assert!(!off.huge_pages());
    }

    #[test]
    fn growing_an_advised_memory_keeps_its_base_and_contents() {
        let mut m = LinearMemory::new(1, None, true).unwrap();
        let base = m.vm.base;
        m.data_mut()[0] = 42;
        let pages = (3 * HUGE_PAGE / WASM_PAGE) as u64;
        assert_eq!(m.grow(pages), Some(1));
        assert_eq!(m.vm.base, base);
        assert_eq!(m.data()[0], 42);
        let last = m.data().len() - 1;
        m.data_mut()[last] = 7;
        assert_eq!(m.data()[last], 7);
    }
}
