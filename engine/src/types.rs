//! Types of values, functions, globals, tables and memories, as the embedding API shows them.

use wasmparser as wp;

/// The type of a WebAssembly value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValType {
    /// 32-bit integer.
    I32,
    /// 64-bit integer.
    I64,
    /// 32-bit float.
    F32,
    /// 64-bit float.
    F64,
    /// 128-bit vector.
    V128,
    /// Nullable reference to a function.
    FuncRef,
    /// Nullable reference to a host value.
    ExternRef,
}

impl ValType {
    /// Converts from wasmparser's type; only the types of WebAssembly 2.0 are supported.
    pub(crate) fn from_wasmparser(t: wp::ValType) -> anyhow::Result<ValType> {
        Ok(match t {
            wp::ValType::I32 => ValType::I32,
            wp::ValType::I64 => ValType::I64,
            wp::ValType::F32 => ValType::F32,
            wp::ValType::F64 => ValType::F64,
            wp::ValType::V128 => ValType::V128,
            wp::ValType::Ref(r) if r == wp::RefType::FUNCREF => ValType::FuncRef,
            wp::ValType::Ref(r) if r == wp::RefType::EXTERNREF => ValType::ExternRef,
            wp::ValType::Ref(r) => anyhow::bail!("unsupported reference type {r}"),
        })
    }

    /// Converts to wasmparser's type.
    pub(crate) fn to_wasmparser(self) -> wp::ValType {
        match self {
            ValType::I32 => wp::ValType::I32,
            ValType::I64 => wp::ValType::I64,
            ValType::F32 => wp::ValType::F32,
            ValType::F64 => wp::ValType::F64,
            ValType::V128 => wp::ValType::V128,
            ValType::FuncRef => wp::ValType::Ref(wp::RefType::FUNCREF),
            ValType::ExternRef => wp::ValType::Ref(wp::RefType::EXTERNREF),
        }
    }

    /// Whether this is a reference type.
    pub fn is_ref(self) -> bool {
        matches!(self, ValType::FuncRef | ValType::ExternRef)
    }
}

impl std::fmt::Display for ValType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ValType::I32 => "i32",
            ValType::I64 => "i64",
            ValType::F32 => "f32",
            ValType::F64 => "f64",
            ValType::V128 => "v128",
            ValType::FuncRef => "funcref",
            ValType::ExternRef => "externref",
        })
    }
}

/// The type of a function: its parameters and results.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FuncType {
    params: Box<[ValType]>,
    results: Box<[ValType]>,
}

impl FuncType {
    /// A function type with the given parameters and results.
    pub fn new(
        params: impl IntoIterator<Item = ValType>,
        results: impl IntoIterator<Item = ValType>,
    ) -> FuncType {
        FuncType {
            params: params.into_iter().collect(),
            results: results.into_iter().collect(),
        }
    }

    /// The parameter types.
    pub fn params(&self) -> &[ValType] {
        &self.params
    }

    /// The result types.
    pub fn results(&self) -> &[ValType] {
        &self.results
    }

    pub(crate) fn from_wasmparser(t: &wp::FuncType) -> anyhow::Result<FuncType> {
        Ok(FuncType {
            params: t
                .params()
                .iter()
                .map(|&p| ValType::from_wasmparser(p))
                .collect::<Result<_, _>>()?,
            results: t
                .results()
                .iter()
                .map(|&p| ValType::from_wasmparser(p))
                .collect::<Result<_, _>>()?,
        })
    }

    pub(crate) fn to_wasmparser(&self) -> wp::FuncType {
        wp::FuncType::new(
            self.params.iter().map(|p| p.to_wasmparser()),
            self.results.iter().map(|p| p.to_wasmparser()),
        )
    }
}

impl std::fmt::Display for FuncType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: &[ValType]| {
            v.iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        write!(
            f,
            "(func (param {}) (result {}))",
            list(&self.params),
            list(&self.results)
        )
    }
}

/// Whether a global can be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mutability {
    /// Immutable.
    Const,
    /// Mutable.
    Var,
}

/// The type of a global.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GlobalType {
    content: ValType,
    mutability: Mutability,
}

impl GlobalType {
    /// A global type.
    pub fn new(content: ValType, mutability: Mutability) -> GlobalType {
        GlobalType {
            content,
            mutability,
        }
    }
    /// The value type.
    pub fn content(&self) -> ValType {
        self.content
    }
    /// Whether the global is mutable.
    pub fn mutability(&self) -> Mutability {
        self.mutability
    }
    pub(crate) fn from_wasmparser(t: &wp::GlobalType) -> anyhow::Result<GlobalType> {
        if t.shared {
            anyhow::bail!("shared globals are not supported");
        }
        Ok(GlobalType {
            content: ValType::from_wasmparser(t.content_type)?,
            mutability: if t.mutable {
                Mutability::Var
            } else {
                Mutability::Const
            },
        })
    }
}

/// The type of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TableType {
    element: ValType,
    min: u32,
    max: Option<u32>,
}

impl TableType {
    /// A table type; `element` must be a reference type.
    pub fn new(element: ValType, min: u32, max: Option<u32>) -> TableType {
        TableType { element, min, max }
    }
    /// The element type.
    pub fn element(&self) -> ValType {
        self.element
    }
    /// Minimum number of elements.
    pub fn minimum(&self) -> u32 {
        self.min
    }
    /// Maximum number of elements.
    pub fn maximum(&self) -> Option<u32> {
        self.max
    }
    pub(crate) fn from_wasmparser(t: &wp::TableType) -> anyhow::Result<TableType> {
        if t.table64 || t.shared {
            anyhow::bail!("64-bit and shared tables are not supported");
        }
        Ok(TableType {
            element: ValType::from_wasmparser(wp::ValType::Ref(t.element_type))?,
            min: t.initial as u32,
            max: t.maximum.map(|m| m as u32),
        })
    }
}

/// The type of a linear memory, in 64 KiB pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MemoryType {
    min: u64,
    max: Option<u64>,
}

impl MemoryType {
    /// A 32-bit memory type.
    pub fn new(min: u32, max: Option<u32>) -> MemoryType {
        MemoryType {
            min: min as u64,
            max: max.map(|m| m as u64),
        }
    }
    /// Minimum pages.
    pub fn minimum(&self) -> u64 {
        self.min
    }
    /// Maximum pages.
    pub fn maximum(&self) -> Option<u64> {
        self.max
    }
    pub(crate) fn from_wasmparser(t: &wp::MemoryType) -> anyhow::Result<MemoryType> {
        if t.memory64 || t.shared || t.page_size_log2.is_some() {
            anyhow::bail!("64-bit, shared and custom-page-size memories are not supported yet");
        }
        Ok(MemoryType {
            min: t.initial,
            max: t.maximum,
        })
    }
}

impl std::fmt::Display for GlobalType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.mutability {
            Mutability::Const => write!(f, "(global {})", self.content),
            Mutability::Var => write!(f, "(global (mut {}))", self.content),
        }
    }
}

fn limits(f: &mut std::fmt::Formatter<'_>, min: u64, max: Option<u64>) -> std::fmt::Result {
    match max {
        Some(max) => write!(f, "{min} {max}"),
        None => write!(f, "{min}"),
    }
}

impl std::fmt::Display for TableType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("(table ")?;
        limits(f, self.min as u64, self.max.map(u64::from))?;
        write!(f, " {})", self.element)
    }
}

impl std::fmt::Display for MemoryType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("(memory ")?;
        limits(f, self.min, self.max)?;
        f.write_str(")")
    }
}

impl std::fmt::Display for ExternType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExternType::Func(t) => t.fmt(f),
            ExternType::Global(t) => t.fmt(f),
            ExternType::Table(t) => t.fmt(f),
            ExternType::Memory(t) => t.fmt(f),
        }
    }
}

/// The type of an import or export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExternType {
    /// A function.
    Func(FuncType),
    /// A global.
    Global(GlobalType),
    /// A table.
    Table(TableType),
    /// A memory.
    Memory(MemoryType),
}

impl ExternType {
    /// A short description of the kind ("function", "global", ...).
    pub fn kind(&self) -> &'static str {
        match self {
            ExternType::Func(_) => "function",
            ExternType::Global(_) => "global",
            ExternType::Table(_) => "table",
            ExternType::Memory(_) => "memory",
        }
    }
}

/// An import of a module.
#[derive(Debug, Clone)]
pub struct ImportType<'a> {
    pub(crate) module: &'a str,
    pub(crate) name: &'a str,
    pub(crate) ty: ExternType,
}

impl<'a> ImportType<'a> {
    /// The module name.
    pub fn module(&self) -> &'a str {
        self.module
    }
    /// The field name.
    pub fn name(&self) -> &'a str {
        self.name
    }
    /// The expected type.
    pub fn ty(&self) -> ExternType {
        self.ty.clone()
    }
}

/// An export of a module.
#[derive(Debug, Clone)]
pub struct ExportType<'a> {
    pub(crate) name: &'a str,
    pub(crate) ty: ExternType,
}

impl<'a> ExportType<'a> {
    /// The export name.
    pub fn name(&self) -> &'a str {
        self.name
    }
    /// The exported item's type.
    pub fn ty(&self) -> ExternType {
        self.ty.clone()
    }
}
