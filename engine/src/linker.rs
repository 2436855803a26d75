//! [`Linker`]: resolves a module's imports by name.

use crate::externals::Extern;
use crate::func::{Caller, Func, HostClosure, IntoFunc};
use crate::instance::Instance;
use crate::module::Module;
use crate::store::{AsContext, AsContextMut};
use crate::types::FuncType;
use crate::values::Val;
use crate::{Engine, LinkError};
use anyhow::Result;
use std::collections::HashMap;
use std::sync::Arc;

enum Definition<T> {
    /// An object already in a store.
    Extern(Extern),
    /// A host function not tied to any store; created in a store when first needed there.
    Host(FuncType, HostClosure<T>),
}

impl<T> Clone for Definition<T> {
    fn clone(&self) -> Self {
        match self {
            Definition::Extern(e) => Definition::Extern(*e),
            Definition::Host(t, c) => Definition::Host(t.clone(), c.clone()),
        }
    }
}

/// Named definitions (`module::name`) used to satisfy imports.
pub struct Linker<T> {
    engine: Engine,
    defs: HashMap<(String, String), Definition<T>>,
    shadowing: bool,
}

impl<T> std::fmt::Debug for Linker<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Linker")
            .field("definitions", &self.defs.len())
            .finish()
    }
}

impl<T: 'static> Linker<T> {
    /// An empty linker.
    pub fn new(engine: &Engine) -> Linker<T> {
        Linker {
            engine: engine.clone(),
            defs: HashMap::new(),
            shadowing: false,
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether a later definition may replace an earlier one of the same name (default: no).
    pub fn allow_shadowing(&mut self, yes: bool) -> &mut Self {
        self.shadowing = yes;
        self
    }

    fn insert(&mut self, module: &str, name: &str, def: Definition<T>) -> Result<&mut Self> {
        let key = (module.to_string(), name.to_string());
        if !self.shadowing && self.defs.contains_key(&key) {
            return Err(LinkError(format!("`{module}::{name}` is already defined")).into());
        }
        self.defs.insert(key, def);
        Ok(self)
    }

    /// Defines a host function from a closure over wasm types (see [`Func::wrap`]).
    pub fn func_wrap<Params, Results>(
        &mut self,
        module: &str,
        name: &str,
        f: impl IntoFunc<T, Params, Results>,
    ) -> Result<&mut Self> {
        let (ty, closure) = f.into_func();
        self.insert(module, name, Definition::Host(ty, closure))
    }

    /// Defines a host function of type `ty` over dynamically typed values.
    pub fn func_new(
        &mut self,
        module: &str,
        name: &str,
        ty: FuncType,
        f: impl Fn(Caller<'_, T>, &[Val], &mut [Val]) -> Result<()> + Send + Sync + 'static,
    ) -> Result<&mut Self> {
        self.insert(module, name, Definition::Host(ty, Arc::new(f)))
    }

    /// Defines `module::name` as an object of a store.
    pub fn define(
        &mut self,
        store: impl AsContext<Data = T>,
        module: &str,
        name: &str,
        item: impl Into<Extern>,
    ) -> Result<&mut Self> {
        let item = item.into();
        store
            .as_context()
            .0
            .opaque
            .check(item.store_id(), "definition");
        self.insert(module, name, Definition::Extern(item))
    }

    /// Defines every export of `instance` under `module_name`.
    pub fn instance(
        &mut self,
        store: impl AsContextMut<Data = T>,
        module_name: &str,
        instance: Instance,
    ) -> Result<&mut Self> {
        for (name, ext) in instance.exports(&store) {
            self.insert(module_name, &name, Definition::Extern(ext))?;
        }
        Ok(self)
    }

    /// The object defined as `module::name`, created in `store` if it is a host function.
    pub fn get(
        &self,
        store: impl AsContextMut<Data = T>,
        module: &str,
        name: &str,
    ) -> Option<Extern> {
        self.resolve(store, module, name).ok().flatten()
    }

    /// Like [`Linker::get`], but reports a failure to create a host function (its trampoline
    /// could not be compiled) instead of treating it as undefined.
    fn resolve(
        &self,
        mut store: impl AsContextMut<Data = T>,
        module: &str,
        name: &str,
    ) -> Result<Option<Extern>> {
        let Some(def) = self.defs.get(&(module.to_string(), name.to_string())) else {
            return Ok(None);
        };
        Ok(Some(match def {
            Definition::Extern(e) => *e,
            Definition::Host(ty, closure) => {
                let ctx = store.as_context_mut();
                Extern::Func(Func::from_closure(
                    &mut ctx.0.opaque,
                    ty.clone(),
                    closure.clone(),
                )?)
            }
        }))
    }

    /// Instantiates `module`, resolving each import by its module and field name.
    pub fn instantiate(
        &self,
        mut store: impl AsContextMut<Data = T>,
        module: &Module,
    ) -> Result<Instance> {
        let mut imports = Vec::new();
        for imp in module.imports() {
            match self.resolve(&mut store, imp.module(), imp.name())? {
                Some(e) => imports.push(e),
                None => {
                    return Err(LinkError(format!(
                        "unknown import: `{}::{}` has not been defined",
                        imp.module(),
                        imp.name()
                    ))
                    .into());
                }
            }
        }
        Instance::new(store, module, &imports)
    }
}
