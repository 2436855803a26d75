//! Executable code: code memory with W^X, and the process-wide registry that maps a pc back to
//! the function, trap code and wasm offset it belongs to.

pub(crate) mod lazy;
pub mod memory;
pub mod registry;

pub use memory::CodeMemory;
