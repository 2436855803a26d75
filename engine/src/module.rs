//! [`Module`]: a validated, compiled WebAssembly module, ready to be instantiated any number of
//! times in any store of its engine.

use crate::code::CodeMemory;
use crate::engine::Engine;
use crate::stream::ModuleStream;
use crate::types::{
    ExportType, ExternType, FuncType, GlobalType, ImportType, MemoryType, TableType,
};
use anyhow::Result;
use spate_tiers::ModuleInfo;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicPtr};
use std::time::Duration;

/// A constant expression (global initialisers, segment offsets and element items).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ConstOp {
    I32(i32),
    I64(i64),
    F32(u32),
    F64(u64),
    V128(u128),
    RefNull,
    RefFunc(u32),
    GlobalGet(u32),
    I32Add,
    I32Sub,
    I32Mul,
    I64Add,
    I64Sub,
    I64Mul,
}

/// A constant expression: a short stack program.
pub(crate) type ConstExpr = Vec<ConstOp>;

/// The kind of an import or export, with its index in that kind's index space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntityIndex {
    Func(u32),
    Table(u32),
    Memory(u32),
    Global(u32),
}

#[derive(Debug, Clone)]
pub(crate) struct Import {
    pub module: String,
    pub name: String,
    pub index: EntityIndex,
}

#[derive(Debug, Clone)]
pub(crate) enum SegmentMode {
    Active { index: u32, offset: ConstExpr },
    Passive,
    Declared,
}

#[derive(Debug, Clone)]
pub(crate) struct ElementSegment {
    pub mode: SegmentMode,
    pub items: Vec<ConstExpr>,
}

#[derive(Debug, Clone)]
pub(crate) struct DataSegment {
    pub mode: SegmentMode,
    pub bytes: Arc<[u8]>,
}

/// Everything the runtime knows about a module.
pub(crate) struct ModuleInner {
    pub engine: Engine,
    pub info: Arc<ModuleInfo>,
    /// Embedding-API types of the module's types, and their canonical ids.
    pub func_types: Vec<FuncType>,
    pub type_ids: Box<[u32]>,
    pub imports: Vec<Import>,
    pub exports: Vec<(String, EntityIndex)>,
    pub start: Option<u32>,
    pub global_types: Vec<GlobalType>,
    pub global_inits: Vec<ConstExpr>,
    pub table_types: Vec<TableType>,
    pub memory_types: Vec<MemoryType>,
    pub elements: Vec<ElementSegment>,
    pub data: Vec<DataSegment>,
    pub code: CodeMemory,
    /// The entry table: current code of each defined function.
    pub entries: Box<[AtomicPtr<u8>]>,
    /// Tier-up budgets, one per defined function, then as many OSR-armed words and as many call
    /// counts (see `spate_tiers::vmctx::VMContext::budgets`).
    pub budgets: Box<[AtomicI32]>,
    /// Tier-up state and the bodies to recompile (tiered mode only).
    pub tiering: Option<crate::tiering::ModuleTiering>,
    /// Lazy compilation state when the module was ready before all its code was.
    pub lazy: Option<Arc<crate::code::lazy::LazyCode>>,
    pub compile_time: Duration,
    pub size: usize,
}

/// A compiled WebAssembly module. Cheap to clone.
#[derive(Clone)]
pub struct Module(pub(crate) Arc<ModuleInner>);

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("functions", &self.num_functions())
            .field("size", &self.0.size)
            .finish()
    }
}

impl Module {
    /// Validates and compiles a module from its binary.
    ///
    /// The bytes go through the streaming front end as one chunk, so this is the same path as a
    /// module arriving over the network. Errors name the byte offset of the problem.
    pub fn new(engine: &Engine, bytes: impl AsRef<[u8]>) -> Result<Module> {
        let mut stream = ModuleStream::new(engine);
        stream.feed(bytes.as_ref())?;
        stream.finish()
    }

    /// Validates and compiles a module read from `reader`, compiling function bodies while the
    /// rest is still being read.
    pub fn from_reader(engine: &Engine, mut reader: impl std::io::Read) -> Result<Module> {
        let mut stream = ModuleStream::new(engine);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(anyhow::Error::new(e).context("reading the module")),
            };
            stream.feed(&buf[..n])?;
        }
        stream.finish()
    }

    /// The engine this module was compiled by.
    pub fn engine(&self) -> &Engine {
        &self.0.engine
    }

    /// The module's imports, in order.
    pub fn imports(&self) -> impl Iterator<Item = ImportType<'_>> {
        self.0.imports.iter().map(|i| ImportType {
            module: &i.module,
            name: &i.name,
            ty: self.entity_type(i.index),
        })
    }

    /// The module's exports, in order.
    pub fn exports(&self) -> impl Iterator<Item = ExportType<'_>> {
        self.0.exports.iter().map(|(name, idx)| ExportType {
            name,
            ty: self.entity_type(*idx),
        })
    }

    /// Number of functions, imported and defined.
    pub fn num_functions(&self) -> usize {
        self.0.info.functions.len()
    }

    /// Number of functions defined (and so compiled) by the module.
    pub fn num_defined_functions(&self) -> usize {
        self.0.info.num_defined_functions() as usize
    }

    /// Bytes of machine code placed when the module became ready (not counting code installed
    /// later by tier-up or, with lazy compilation, functions compiled after `finish`: with
    /// [`CompileStrategy::Eager`](crate::CompileStrategy::Eager) this is all of the module's
    /// baseline code).
    pub fn code_size(&self) -> usize {
        self.0.code.code_bytes()
    }

    /// Number of the module's functions that run optimized code installed by tier-up so far.
    pub fn tiered_up_functions(&self) -> usize {
        self.0
            .tiering
            .as_ref()
            .map_or(0, |t| t.optimized_functions())
    }

    /// Whether function `func_index` (in the function index space, imports first) runs code
    /// installed by tier-up. Always false outside tiered mode and for imports.
    pub fn is_tiered_up(&self, func_index: u32) -> bool {
        let (Some(t), Some(def)) = (
            self.0.tiering.as_ref(),
            self.0.info.defined_func_index(func_index),
        ) else {
            return false;
        };
        def < self.0.info.num_defined_functions() && t.is_optimized(def)
    }

    /// Size of the module's binary in bytes.
    pub fn size(&self) -> usize {
        self.0.size
    }

    /// Wall time from the first byte fed to the compiled module being ready.
    pub fn compile_time(&self) -> Duration {
        self.0.compile_time
    }

    pub(crate) fn entity_type(&self, idx: EntityIndex) -> ExternType {
        let m = &self.0;
        match idx {
            EntityIndex::Func(i) => {
                ExternType::Func(m.func_types[m.info.functions[i as usize] as usize].clone())
            }
            EntityIndex::Table(i) => ExternType::Table(m.table_types[i as usize]),
            EntityIndex::Memory(i) => ExternType::Memory(m.memory_types[i as usize]),
            EntityIndex::Global(i) => ExternType::Global(m.global_types[i as usize]),
        }
    }
}
