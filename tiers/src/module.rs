//! The module-level facts a tier needs to compile a function body.

use wasmparser::{FuncType, GlobalType, MemoryType, TableType};

/// Declarations of a module, in index-space order (imports first), as far as compiled code
/// depends on them. Everything here is known before the code section starts, so the streaming
/// front end can hand it to compile workers as soon as the first body arrives.
#[derive(Debug, Clone, Default)]
pub struct ModuleInfo {
    /// Function types, by type index.
    pub types: Vec<FuncType>,
    /// Type index of each function, imports first.
    pub functions: Vec<u32>,
    /// How many of `functions` are imported.
    pub num_imported_functions: u32,
    /// Tables, imports first.
    pub tables: Vec<TableType>,
    /// Memories, imports first.
    pub memories: Vec<MemoryType>,
    /// Globals, imports first.
    pub globals: Vec<GlobalType>,
    /// How many of `globals` are imported.
    pub num_imported_globals: u32,
    /// Number of element segments.
    pub num_elem_segments: u32,
    /// Number of data segments (from the data count section, if present).
    pub num_data_segments: u32,
}

impl ModuleInfo {
    /// The type of function `func_index`.
    pub fn func_type(&self, func_index: u32) -> &FuncType {
        &self.types[self.functions[func_index as usize] as usize]
    }

    /// Index among defined functions, or `None` for an imported function.
    pub fn defined_func_index(&self, func_index: u32) -> Option<u32> {
        func_index.checked_sub(self.num_imported_functions)
    }

    /// Number of functions defined (not imported) by the module.
    pub fn num_defined_functions(&self) -> u32 {
        self.functions.len() as u32 - self.num_imported_functions
    }
}
