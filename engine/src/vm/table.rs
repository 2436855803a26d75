//! Tables: growable arrays of pointer-sized references.

use crate::types::TableType;
use spate_tiers::vmctx::VMTable;

/// Upper bound on any table's length, so a guest cannot make the host allocate without limit.
pub const MAX_TABLE_ELEMENTS: u32 = 10_000_000;

/// A table's storage and the view compiled code reads.
#[derive(Debug)]
pub struct TableData {
    /// What compiled code reads (base and length), kept in sync with `elements`.
    pub vm: Box<VMTable>,
    elements: Vec<usize>,
    /// The table's type (its minimum is the size it was created with).
    pub ty: TableType,
}

// SAFETY: owned by one store; the raw pointer points into `elements`.
unsafe impl Send for TableData {}

impl TableData {
    /// A table of `ty.minimum()` elements, each `init`.
    pub fn new(ty: TableType, init: usize) -> anyhow::Result<TableData> {
        if ty.minimum() > MAX_TABLE_ELEMENTS {
            anyhow::bail!(
                "table minimum of {} elements exceeds the limit of {MAX_TABLE_ELEMENTS}",
                ty.minimum()
            );
        }
        let mut t = TableData {
            vm: Box::new(VMTable {
                base: std::ptr::null_mut(),
                length: 0,
            }),
            elements: vec![init; ty.minimum() as usize],
            ty,
        };
        t.sync();
        Ok(t)
    }

    fn sync(&mut self) {
        self.vm.base = self.elements.as_mut_ptr();
        self.vm.length = self.elements.len() as u32;
    }

    /// The elements.
    pub fn elements(&self) -> &[usize] {
        &self.elements
    }

    /// The elements, mutably.
    pub fn elements_mut(&mut self) -> &mut [usize] {
        &mut self.elements
    }

    /// Current length.
    pub fn len(&self) -> u32 {
        self.elements.len() as u32
    }

    /// Whether the table has no elements.
    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }

    /// Grows by `delta` elements set to `init`; returns the old length, or `None` past the
    /// maximum.
    pub fn grow(&mut self, delta: u32, init: usize) -> Option<u32> {
        let old = self.len();
        let new = old.checked_add(delta)?;
        if new > self.ty.maximum().unwrap_or(u32::MAX) || new > MAX_TABLE_ELEMENTS {
            return None;
        }
        self.elements.resize(new as usize, init);
        self.sync();
        Some(old)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ValType;

    #[test]
    fn grow_respects_maximum_and_keeps_view_in_sync() {
        let mut t = TableData::new(TableType::new(ValType::FuncRef, 2, Some(4)), 0).unwrap();
        assert_eq!(t.grow(2, 7), Some(2));
        assert_eq!(t.vm.length, 4);
        assert_eq!(t.vm.base, t.elements.as_mut_ptr());
        assert_eq!(t.elements(), &[0, 0, 7, 7]);
        assert_eq!(t.grow(1, 0), None);
    }
}
