//! Importable and exportable objects: [`Extern`], [`Memory`], [`Table`], [`Global`].

use crate::func::Func;
use crate::store::{AsContext, AsContextMut, GlobalData, StoreContext, StoreOpaque};
use crate::types::{ExternType, GlobalType, MemoryType, Mutability, TableType, ValType};
use crate::values::Val;
use crate::vm::memory::LinearMemory;
use crate::vm::table::TableData;
use anyhow::{Result, bail};
use spate_tiers::abi::ValRaw;
use spate_tiers::vmctx::VMGlobal;

/// Anything an instance can import or export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extern {
    /// A function.
    Func(Func),
    /// A global.
    Global(Global),
    /// A table.
    Table(Table),
    /// A memory.
    Memory(Memory),
}

impl Extern {
    /// The function, if this is one.
    pub fn into_func(self) -> Option<Func> {
        if let Extern::Func(f) = self {
            Some(f)
        } else {
            None
        }
    }
    /// The global, if this is one.
    pub fn into_global(self) -> Option<Global> {
        if let Extern::Global(g) = self {
            Some(g)
        } else {
            None
        }
    }
    /// The table, if this is one.
    pub fn into_table(self) -> Option<Table> {
        if let Extern::Table(t) = self {
            Some(t)
        } else {
            None
        }
    }
    /// The memory, if this is one.
    pub fn into_memory(self) -> Option<Memory> {
        if let Extern::Memory(m) = self {
            Some(m)
        } else {
            None
        }
    }

    /// The object's type.
    pub fn ty(&self, store: impl AsContext) -> ExternType {
        self.ty_opaque(&store.as_context().0.opaque)
    }

    pub(crate) fn store_id(&self) -> u64 {
        match self {
            Extern::Func(f) => f.store,
            Extern::Global(g) => g.store,
            Extern::Table(t) => t.store,
            Extern::Memory(m) => m.store,
        }
    }

    pub(crate) fn ty_opaque(&self, store: &StoreOpaque) -> ExternType {
        store.check(self.store_id(), "import");
        match self {
            Extern::Func(f) => {
                // SAFETY: the handle belongs to this store (checked above), which owns the funcref.
                let id = unsafe { (*(f.ptr as *const spate_tiers::vmctx::VMFuncRef)).type_id };
                ExternType::Func(store.engine.func_type(id))
            }
            Extern::Global(g) => ExternType::Global(store.globals[g.index].ty),
            Extern::Table(t) => {
                let d = &store.tables[t.index];
                ExternType::Table(TableType::new(d.ty.element(), d.len(), d.ty.maximum()))
            }
            Extern::Memory(m) => {
                let d = &store.memories[m.index];
                ExternType::Memory(MemoryType::new(
                    d.pages() as u32,
                    d.declared_maximum().map(|m| m as u32),
                ))
            }
        }
    }
}

impl From<Func> for Extern {
    fn from(f: Func) -> Extern {
        Extern::Func(f)
    }
}
impl From<Global> for Extern {
    fn from(g: Global) -> Extern {
        Extern::Global(g)
    }
}
impl From<Table> for Extern {
    fn from(t: Table) -> Extern {
        Extern::Table(t)
    }
}
impl From<Memory> for Extern {
    fn from(m: Memory) -> Extern {
        Extern::Memory(m)
    }
}

/// A linear memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    pub(crate) store: u64,
    pub(crate) index: usize,
}

impl Memory {
    /// A new memory of type `ty` in `store`.
    pub fn new(mut store: impl AsContextMut, ty: MemoryType) -> Result<Memory> {
        let ctx = store.as_context_mut();
        let store = &mut ctx.0.opaque;
        store.memories.push(Box::new(LinearMemory::new(
            ty.minimum(),
            ty.maximum(),
            store.engine.config().memory_huge_pages,
        )?));
        Ok(Memory {
            store: store.id,
            index: store.memories.len() - 1,
        })
    }

    fn get<'a>(&self, store: &'a StoreOpaque) -> &'a LinearMemory {
        store.check(self.store, "memory");
        &store.memories[self.index]
    }

    /// Current size in 64 KiB pages.
    pub fn size(&self, store: impl AsContext) -> u64 {
        self.get(&store.as_context().0.opaque).pages()
    }

    /// Current size in bytes.
    pub fn data_size(&self, store: impl AsContext) -> usize {
        self.get(&store.as_context().0.opaque).data().len()
    }

    /// The memory's bytes.
    pub fn data<'a, T: 'a>(&self, store: impl Into<StoreContext<'a, T>>) -> &'a [u8] {
        let ctx: StoreContext<'a, T> = store.into();
        let opaque: &'a StoreOpaque = &ctx.0.opaque;
        self.get(opaque).data()
    }

    /// The memory's bytes, mutably.
    pub fn data_mut<'a, T: 'a>(
        &self,
        store: impl Into<crate::StoreContextMut<'a, T>>,
    ) -> &'a mut [u8] {
        let ctx: crate::StoreContextMut<'a, T> = store.into();
        let opaque: &'a mut StoreOpaque = &mut ctx.0.opaque;
        opaque.check(self.store, "memory");
        opaque.memories[self.index].data_mut()
    }

    /// The memory's bytes and the store's host data, both mutably (a host function that moves
    /// data between guest memory and its own state, as WASI does, needs the two at once).
    pub fn data_and_store_mut<'a, T: 'a>(
        &self,
        store: impl Into<crate::StoreContextMut<'a, T>>,
    ) -> (&'a mut [u8], &'a mut T) {
        let ctx: crate::StoreContextMut<'a, T> = store.into();
        let inner = ctx.0;
        inner.opaque.check(self.store, "memory");
        (
            inner.opaque.memories[self.index].data_mut(),
            &mut inner.data,
        )
    }

    /// Copies bytes out of the memory; fails if the range is out of bounds.
    pub fn read(&self, store: impl AsContext, offset: usize, buf: &mut [u8]) -> Result<()> {
        let ctx = store.as_context();
        let data = self.get(&ctx.0.opaque).data();
        let Some(src) = offset
            .checked_add(buf.len())
            .and_then(|end| data.get(offset..end))
        else {
            bail!("out of bounds memory access");
        };
        buf.copy_from_slice(src);
        Ok(())
    }

    /// Copies bytes into the memory; fails if the range is out of bounds.
    pub fn write(&self, mut store: impl AsContextMut, offset: usize, buf: &[u8]) -> Result<()> {
        let ctx = store.as_context_mut();
        let opaque = &mut ctx.0.opaque;
        opaque.check(self.store, "memory");
        let data = opaque.memories[self.index].data_mut();
        let Some(dst) = offset
            .checked_add(buf.len())
            .and_then(|end| data.get_mut(offset..end))
        else {
            bail!("out of bounds memory access");
        };
        dst.copy_from_slice(buf);
        Ok(())
    }

    /// Grows by `delta` pages; returns the previous size in pages.
    pub fn grow(&self, mut store: impl AsContextMut, delta: u64) -> Result<u64> {
        let ctx = store.as_context_mut();
        let opaque = &mut ctx.0.opaque;
        opaque.check(self.store, "memory");
        match opaque.memories[self.index].grow(delta) {
            Some(old) => Ok(old),
            None => bail!("failed to grow memory by {delta} pages"),
        }
    }
}

/// A table of references.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    pub(crate) store: u64,
    pub(crate) index: usize,
}

impl Table {
    /// A new table of type `ty` with every element set to `init`.
    pub fn new(mut store: impl AsContextMut, ty: TableType, init: Val) -> Result<Table> {
        let ctx = store.as_context_mut();
        let store = &mut ctx.0.opaque;
        if !ty.element().is_ref() {
            bail!("table elements must be references, not {}", ty.element());
        }
        init.check_type(ty.element(), "table initial value")?;
        let raw = init.to_raw(store).get_reference();
        store.tables.push(Box::new(TableData::new(ty, raw)?));
        Ok(Table {
            store: store.id,
            index: store.tables.len() - 1,
        })
    }

    /// Current number of elements.
    pub fn size(&self, store: impl AsContext) -> u32 {
        let ctx = store.as_context();
        ctx.0.opaque.check(self.store, "table");
        ctx.0.opaque.tables[self.index].len()
    }

    /// The table's type (with its current size as minimum).
    pub fn ty(&self, store: impl AsContext) -> TableType {
        let ctx = store.as_context();
        match Extern::Table(*self).ty_opaque(&ctx.0.opaque) {
            ExternType::Table(t) => t,
            _ => unreachable!("a table's type is a table type"),
        }
    }

    /// Element `index`, or `None` if out of bounds.
    pub fn get(&self, mut store: impl AsContextMut, index: u32) -> Option<Val> {
        let ctx = store.as_context_mut();
        let opaque = &mut ctx.0.opaque;
        opaque.check(self.store, "table");
        let t = &opaque.tables[self.index];
        let raw = *t.elements().get(index as usize)?;
        let ty = t.ty.element();
        Some(Val::from_raw(ValRaw::reference(raw), ty, opaque))
    }

    /// Sets element `index`.
    pub fn set(&self, mut store: impl AsContextMut, index: u32, val: Val) -> Result<()> {
        let ctx = store.as_context_mut();
        let opaque = &mut ctx.0.opaque;
        opaque.check(self.store, "table");
        val.check_type(opaque.tables[self.index].ty.element(), "table element")?;
        let raw = val.to_raw(opaque).get_reference();
        match opaque.tables[self.index]
            .elements_mut()
            .get_mut(index as usize)
        {
            Some(slot) => {
                *slot = raw;
                Ok(())
            }
            None => bail!("table index {index} out of bounds"),
        }
    }

    /// Grows by `delta` elements set to `init`; returns the previous size.
    pub fn grow(&self, mut store: impl AsContextMut, delta: u32, init: Val) -> Result<u32> {
        let ctx = store.as_context_mut();
        let opaque = &mut ctx.0.opaque;
        opaque.check(self.store, "table");
        init.check_type(opaque.tables[self.index].ty.element(), "table element")?;
        let raw = init.to_raw(opaque).get_reference();
        match opaque.tables[self.index].grow(delta, raw) {
            Some(old) => Ok(old),
            None => bail!("failed to grow table by {delta} elements"),
        }
    }
}

/// A global variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Global {
    pub(crate) store: u64,
    pub(crate) index: usize,
}

impl Global {
    /// A new global of type `ty` holding `val`.
    pub fn new(mut store: impl AsContextMut, ty: GlobalType, val: Val) -> Result<Global> {
        let ctx = store.as_context_mut();
        let store = &mut ctx.0.opaque;
        val.check_type(ty.content(), "global value")?;
        let raw = val.to_raw(store);
        store.globals.push(Box::new(GlobalData {
            ty,
            cell: VMGlobal { bytes: raw.0 },
        }));
        Ok(Global {
            store: store.id,
            index: store.globals.len() - 1,
        })
    }

    /// The global's type.
    pub fn ty(&self, store: impl AsContext) -> GlobalType {
        let ctx = store.as_context();
        ctx.0.opaque.check(self.store, "global");
        ctx.0.opaque.globals[self.index].ty
    }

    /// The current value.
    pub fn get(&self, mut store: impl AsContextMut) -> Val {
        let ctx = store.as_context_mut();
        let opaque = &mut ctx.0.opaque;
        opaque.check(self.store, "global");
        let g = &opaque.globals[self.index];
        let ty: ValType = g.ty.content();
        Val::from_raw(ValRaw(g.cell.bytes), ty, opaque)
    }

    /// Sets the value of a mutable global.
    pub fn set(&self, mut store: impl AsContextMut, val: Val) -> Result<()> {
        let ctx = store.as_context_mut();
        let opaque = &mut ctx.0.opaque;
        opaque.check(self.store, "global");
        let ty = opaque.globals[self.index].ty;
        if ty.mutability() == Mutability::Const {
            bail!("cannot set an immutable global");
        }
        val.check_type(ty.content(), "global value")?;
        let raw = val.to_raw(opaque);
        opaque.globals[self.index].cell.bytes = raw.0;
        Ok(())
    }
}
