//! The runtime: instances and their `VMContext`, linear memory, tables, libcalls, and traps.

pub mod instance;
pub mod libcalls;
pub mod memory;
pub mod table;
pub mod traphandlers;
