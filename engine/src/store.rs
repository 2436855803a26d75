//! [`Store`]: the owner of every runtime object (instances, memories, tables, globals, host
//! functions, external references) and of the host's data `T`.
//!
//! Objects are never freed before their store: handles ([`Func`](crate::Func),
//! [`Memory`](crate::Memory), ...) are plain indices or addresses tagged with the store's id,
//! checked on every use, and compiled code holds raw pointers into boxes the store keeps alive.

use crate::engine::Engine;
use crate::func::HostFuncData;
use crate::types::GlobalType;
use crate::values::ExternRef;
use crate::vm::instance::InstanceData;
use crate::vm::libcalls;
use crate::vm::memory::LinearMemory;
use crate::vm::table::TableData;
use spate_tiers::vmctx::{VMContext, VMGlobal, VMRuntimeLimits};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(1);

/// A global's type and storage.
#[derive(Debug)]
pub(crate) struct GlobalData {
    pub ty: GlobalType,
    pub cell: VMGlobal,
}

/// The part of a store that does not depend on the host data type.
///
/// Objects are boxed inside the vectors on purpose: compiled code and other objects hold raw
/// pointers to them, so they must not move when a vector grows.
#[allow(clippy::vec_box)]
pub(crate) struct StoreOpaque {
    pub id: u64,
    pub engine: Engine,
    pub limits: Box<VMRuntimeLimits>,
    /// The caller context passed when the host calls wasm: its `store` field points back here.
    pub host_vmctx: Box<VMContext>,
    pub libcalls: Box<[usize]>,
    pub instances: Vec<Box<InstanceData>>,
    pub memories: Vec<Box<LinearMemory>>,
    pub tables: Vec<Box<TableData>>,
    pub globals: Vec<Box<GlobalData>>,
    pub host_funcs: Vec<Box<HostFuncData>>,
    pub externrefs: Vec<ExternRef>,
    externref_handles: HashMap<usize, usize>,
}

// SAFETY: the raw pointers in a store point into boxes the store owns; a store is used by one
// thread at a time (`&mut` access), and moving it between threads moves all of it.
unsafe impl Send for StoreOpaque {}

impl StoreOpaque {
    /// Panics with a clear message if a handle from another store is used here.
    pub fn check(&self, store_id: u64, what: &str) {
        assert_eq!(
            store_id, self.id,
            "a {what} from one store was used with another store"
        );
    }

    /// The handle (non-zero) that represents `r` inside wasm.
    pub fn externref_handle(&mut self, r: &ExternRef) -> usize {
        let key = r.addr();
        if let Some(&h) = self.externref_handles.get(&key) {
            return h;
        }
        self.externrefs.push(r.clone());
        let h = self.externrefs.len();
        self.externref_handles.insert(key, h);
        h
    }

    /// The external reference behind a non-zero handle.
    pub fn externref(&self, handle: usize) -> Option<ExternRef> {
        handle
            .checked_sub(1)
            .and_then(|i| self.externrefs.get(i))
            .cloned()
    }
}

/// A store and its host data, laid out so a pointer to it is also a pointer to its
/// [`StoreOpaque`] (compiled code and libcalls only know the opaque part).
#[repr(C)]
pub(crate) struct StoreInner<T> {
    pub opaque: StoreOpaque,
    pub data: T,
}

/// The owner of all runtime state, plus host data of type `T` that host functions can reach
/// through [`Caller`](crate::Caller).
pub struct Store<T> {
    pub(crate) inner: Box<StoreInner<T>>,
}

impl<T> std::fmt::Debug for Store<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("id", &self.inner.opaque.id)
            .finish()
    }
}

impl<T> Store<T> {
    /// A new, empty store.
    pub fn new(engine: &Engine, data: T) -> Store<T> {
        let mut host_vmctx = Box::new(VMContext::null());
        let limits = Box::new(VMRuntimeLimits { stack_limit: 0 });
        host_vmctx.limits = &*limits;
        let mut inner = Box::new(StoreInner {
            opaque: StoreOpaque {
                id: NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed),
                engine: engine.clone(),
                limits,
                host_vmctx,
                libcalls: libcalls::table(),
                instances: Vec::new(),
                memories: Vec::new(),
                tables: Vec::new(),
                globals: Vec::new(),
                host_funcs: Vec::new(),
                externrefs: Vec::new(),
                externref_handles: HashMap::new(),
            },
            data,
        });
        let self_ptr = &mut *inner as *mut StoreInner<T> as *mut u8;
        inner.opaque.host_vmctx.store = self_ptr;
        Store { inner }
    }

    /// The engine this store belongs to.
    pub fn engine(&self) -> &Engine {
        &self.inner.opaque.engine
    }

    /// The host data.
    pub fn data(&self) -> &T {
        &self.inner.data
    }

    /// The host data, mutably.
    pub fn data_mut(&mut self) -> &mut T {
        &mut self.inner.data
    }

    /// Consumes the store and returns its host data.
    pub fn into_data(self) -> T {
        let inner = *self.inner;
        inner.data
    }
}

/// A shared borrow of a store, as API methods that only read take it.
pub struct StoreContext<'a, T>(pub(crate) &'a StoreInner<T>);

/// An exclusive borrow of a store, as API methods that run code or change state take it.
pub struct StoreContextMut<'a, T>(pub(crate) &'a mut StoreInner<T>);

impl<T> StoreContext<'_, T> {
    /// The host data.
    pub fn data(&self) -> &T {
        &self.0.data
    }
}

impl<T> StoreContextMut<'_, T> {
    /// The host data.
    pub fn data(&self) -> &T {
        &self.0.data
    }
    /// The host data, mutably.
    pub fn data_mut(&mut self) -> &mut T {
        &mut self.0.data
    }
}

/// Things that give shared access to a store: [`Store`], [`Caller`](crate::Caller), contexts and
/// references to them.
pub trait AsContext {
    /// The host data type of the store.
    type Data;
    /// Borrows the store.
    fn as_context(&self) -> StoreContext<'_, Self::Data>;
}

/// Things that give exclusive access to a store.
pub trait AsContextMut: AsContext {
    /// Borrows the store exclusively.
    fn as_context_mut(&mut self) -> StoreContextMut<'_, Self::Data>;
}

impl<T> AsContext for Store<T> {
    type Data = T;
    fn as_context(&self) -> StoreContext<'_, T> {
        StoreContext(&self.inner)
    }
}

impl<T> AsContextMut for Store<T> {
    fn as_context_mut(&mut self) -> StoreContextMut<'_, T> {
        StoreContextMut(&mut self.inner)
    }
}

impl<T> AsContext for StoreContext<'_, T> {
    type Data = T;
    fn as_context(&self) -> StoreContext<'_, T> {
        StoreContext(self.0)
    }
}

impl<T> AsContext for StoreContextMut<'_, T> {
    type Data = T;
    fn as_context(&self) -> StoreContext<'_, T> {
        StoreContext(self.0)
    }
}

impl<T> AsContextMut for StoreContextMut<'_, T> {
    fn as_context_mut(&mut self) -> StoreContextMut<'_, T> {
        StoreContextMut(self.0)
    }
}

impl<C: AsContext + ?Sized> AsContext for &C {
    type Data = C::Data;
    fn as_context(&self) -> StoreContext<'_, C::Data> {
        (**self).as_context()
    }
}

impl<C: AsContext + ?Sized> AsContext for &mut C {
    type Data = C::Data;
    fn as_context(&self) -> StoreContext<'_, C::Data> {
        (**self).as_context()
    }
}

impl<C: AsContextMut + ?Sized> AsContextMut for &mut C {
    fn as_context_mut(&mut self) -> StoreContextMut<'_, C::Data> {
        (**self).as_context_mut()
    }
}

impl<'a, T> From<&'a Store<T>> for StoreContext<'a, T> {
    fn from(s: &'a Store<T>) -> Self {
        StoreContext(&s.inner)
    }
}

impl<'a, T> From<&'a mut Store<T>> for StoreContext<'a, T> {
    fn from(s: &'a mut Store<T>) -> Self {
        StoreContext(&s.inner)
    }
}

impl<'a, T> From<&'a mut Store<T>> for StoreContextMut<'a, T> {
    fn from(s: &'a mut Store<T>) -> Self {
        StoreContextMut(&mut s.inner)
    }
}
