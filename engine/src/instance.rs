//! [`Instance`]: a module instantiated in a store.

use crate::externals::{Extern, Global, Memory, Table};
use crate::func::{Func, TypedFunc, WasmParams, WasmResults};
use crate::module::Module;
use crate::store::{AsContext, AsContextMut};
use anyhow::{Context, Result};

/// An instantiated module. A handle into its store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instance {
    pub(crate) store: u64,
    pub(crate) index: usize,
}

impl Instance {
    /// Instantiates `module` with `imports`, one per module import in order.
    ///
    /// Fails with a [`LinkError`](crate::LinkError) if an import is missing or has the wrong
    /// type, and with a [`Trap`](crate::Trap) if initialisation or the start function traps.
    pub fn new(
        mut store: impl AsContextMut,
        module: &Module,
        imports: &[Extern],
    ) -> Result<Instance> {
        let ctx = store.as_context_mut();
        let opaque = &mut ctx.0.opaque;
        let index = crate::vm::instance::instantiate(opaque, module, imports)?;
        Ok(Instance {
            store: opaque.id,
            index,
        })
    }

    /// The export called `name`.
    pub fn get_export(&self, store: impl AsContext, name: &str) -> Option<Extern> {
        let ctx = store.as_context();
        let opaque = &ctx.0.opaque;
        opaque.check(self.store, "instance");
        let inst = &opaque.instances[self.index];
        let idx = inst.module.0.exports.iter().find(|(n, _)| n == name)?.1;
        Some(inst.export(opaque.id, idx))
    }

    /// Every export, with its name, in the module's order.
    pub fn exports(&self, store: impl AsContext) -> Vec<(String, Extern)> {
        let ctx = store.as_context();
        let opaque = &ctx.0.opaque;
        opaque.check(self.store, "instance");
        let inst = &opaque.instances[self.index];
        inst.module
            .0
            .exports
            .iter()
            .map(|(n, idx)| (n.clone(), inst.export(opaque.id, *idx)))
            .collect()
    }

    /// The exported function called `name`.
    pub fn get_func(&self, store: impl AsContext, name: &str) -> Option<Func> {
        self.get_export(store, name)?.into_func()
    }

    /// The exported function called `name`, with static types.
    pub fn get_typed_func<P: WasmParams, R: WasmResults>(
        &self,
        store: impl AsContext,
        name: &str,
    ) -> Result<TypedFunc<P, R>> {
        let ctx = store.as_context();
        let f = self
            .get_func(&ctx, name)
            .with_context(|| format!("no exported function `{name}`"))?;
        f.typed::<P, R>(&ctx)
            .with_context(|| format!("exported function `{name}`"))
    }

    /// The exported memory called `name`.
    pub fn get_memory(&self, store: impl AsContext, name: &str) -> Option<Memory> {
        self.get_export(store, name)?.into_memory()
    }

    /// The exported table called `name`.
    pub fn get_table(&self, store: impl AsContext, name: &str) -> Option<Table> {
        self.get_export(store, name)?.into_table()
    }

    /// The exported global called `name`.
    pub fn get_global(&self, store: impl AsContext, name: &str) -> Option<Global> {
        self.get_export(store, name)?.into_global()
    }

    /// The module this instance was made from.
    pub fn module(&self, store: impl AsContext) -> Module {
        let ctx = store.as_context();
        ctx.0.opaque.check(self.store, "instance");
        ctx.0.opaque.instances[self.index].module.clone()
    }
}
