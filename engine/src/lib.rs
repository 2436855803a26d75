//! Spate: a streaming, tiered WebAssembly engine.
//!
//! Modules are parsed, validated and compiled while their bytes arrive ([`ModuleStream`]);
//! the baseline tier (Cranelift) produces code at once. Linear memory lives in a guarded
//! reservation, so out-of-bounds accesses fault and become [`Trap`]s; no guest can crash the
//! host. The API follows the conventions of wasmtime's: an [`Engine`] compiles [`Module`]s, a
//! [`Store`] owns instances and host data, a [`Linker`] resolves imports.
//!
//! ```
//! use spate::{Engine, Linker, Module, Store};
//!
//! # fn main() -> anyhow::Result<()> {
//! // (module
//! //   (import "host" "double" (func $double (param i32) (result i32)))
//! //   (func (export "add_doubled") (param i32 i32) (result i32)
//! //     (i32.add (call $double (local.get 0)) (local.get 1))))
//! let wasm = [
//!     0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x0c, 0x02, 0x60, 0x01, 0x7f, 0x01,
//!     0x7f, 0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7f, 0x02, 0x0f, 0x01, 0x04, 0x68, 0x6f, 0x73, 0x74,
//!     0x06, 0x64, 0x6f, 0x75, 0x62, 0x6c, 0x65, 0x00, 0x00, 0x03, 0x02, 0x01, 0x01, 0x07, 0x0f,
//!     0x01, 0x0b, 0x61, 0x64, 0x64, 0x5f, 0x64, 0x6f, 0x75, 0x62, 0x6c, 0x65, 0x64, 0x00, 0x01,
//!     0x0a, 0x0b, 0x01, 0x09, 0x00, 0x20, 0x00, 0x10, 0x00, 0x20, 0x01, 0x6a, 0x0b,
//! ];
//! let engine = Engine::default();
//! let module = Module::new(&engine, wasm)?;
//! let mut store = Store::new(&engine, ());
//! let mut linker = Linker::new(&engine);
//! linker.func_wrap("host", "double", |x: i32| x * 2)?;
//! let instance = linker.instantiate(&mut store, &module)?;
//! let add = instance.get_typed_func::<(i32, i32), i32>(&store, "add_doubled")?;
//! assert_eq!(add.call(&mut store, (20, 2))?, 42);
//! # Ok(())
//! # }
//! ```

pub mod code;
mod engine;
mod externals;
mod func;
mod instance;
mod linker;
mod module;
mod store;
pub mod stream;
pub mod tiering;
mod types;
mod values;
pub mod vm;

pub use anyhow::{Error, Result};
pub use engine::{BaselineRegalloc, CompileStrategy, Config, Engine, LlvmPipeline, TierMode};
pub use externals::{Extern, Global, Memory, Table};
pub use func::{Caller, Func, IntoFunc, TypedFunc, WasmParams, WasmResults, WasmRet, WasmTy};
pub use instance::Instance;
pub use linker::Linker;
pub use module::Module;
pub use spate_tiers::TrapCode as Trap;
pub use store::{AsContext, AsContextMut, Store, StoreContext, StoreContextMut};
pub use stream::{ModuleError, ModuleStream};
pub use tiering::{Stats, TierStats};
pub use types::{
    ExportType, ExternType, FuncType, GlobalType, ImportType, MemoryType, Mutability, TableType,
    ValType,
};
pub use values::{ExternRef, Val};

/// An import could not be satisfied: missing, or of the wrong type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkError(pub String);

impl std::fmt::Display for LinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LinkError {}
