//! Recording a module's declarations (everything but code) as their sections arrive.
//!
//! The validator has already accepted each section by the time it gets here, so this only
//! extracts what the runtime needs; it still reports (rather than assumes away) anything the
//! engine does not support.

use super::ModuleError;
use crate::module::{
    ConstExpr, ConstOp, DataSegment, ElementSegment, EntityIndex, Import, SegmentMode,
};
use crate::types::{FuncType, GlobalType, MemoryType, TableType};
use spate_tiers::ModuleInfo;
use wasmparser::{
    CompositeInnerType, DataKind, ElementItems, ElementKind, ExternalKind, Imports, Operator,
    Payload, TableInit, TypeRef,
};

/// The declarations of a module, filled in section by section.
#[derive(Default)]
pub(super) struct Declarations {
    pub info: ModuleInfo,
    pub func_types: Vec<FuncType>,
    pub imports: Vec<Import>,
    pub exports: Vec<(String, EntityIndex)>,
    pub start: Option<u32>,
    pub global_types: Vec<GlobalType>,
    pub global_inits: Vec<ConstExpr>,
    pub table_types: Vec<TableType>,
    pub memory_types: Vec<MemoryType>,
    pub elements: Vec<ElementSegment>,
    pub data: Vec<DataSegment>,
}

/// Whether a payload declares something compiled code depends on.
pub(super) fn affects_info(p: &Payload<'_>) -> bool {
    matches!(
        p,
        Payload::TypeSection(_)
            | Payload::ImportSection(_)
            | Payload::FunctionSection(_)
            | Payload::TableSection(_)
            | Payload::MemorySection(_)
            | Payload::GlobalSection(_)
            | Payload::ElementSection(_)
            | Payload::DataCountSection { .. }
    )
}

fn unsupported(what: impl std::fmt::Display, offset: usize) -> ModuleError {
    ModuleError::at(format!("unsupported: {what}"), offset)
}

fn wrap<T>(r: anyhow::Result<T>, offset: usize) -> Result<T, ModuleError> {
    r.map_err(|e| unsupported(e, offset))
}

impl Declarations {
    /// Records one validated payload.
    pub fn record(&mut self, payload: Payload<'_>) -> Result<(), ModuleError> {
        match payload {
            Payload::TypeSection(s) => {
                let offset = s.range().start as usize;
                for group in s {
                    let group = group?;
                    for sub in group.into_types() {
                        match &sub.composite_type.inner {
                            CompositeInnerType::Func(f) => {
                                self.func_types
                                    .push(wrap(FuncType::from_wasmparser(f), offset)?);
                                self.info.types.push(f.clone());
                            }
                            other => return Err(unsupported(format!("type {other:?}"), offset)),
                        }
                    }
                }
            }
            Payload::ImportSection(s) => {
                let offset = s.range().start as usize;
                for group in s {
                    match group? {
                        Imports::Single(_, imp) => {
                            self.import(imp.module, imp.name, imp.ty, offset)?
                        }
                        Imports::Compact1 { module, items } => {
                            for item in items {
                                let item = item?;
                                self.import(module, item.name, item.ty, offset)?;
                            }
                        }
                        Imports::Compact2 { module, ty, names } => {
                            for name in names {
                                self.import(module, name?, ty, offset)?;
                            }
                        }
                    }
                }
            }
            Payload::FunctionSection(s) => {
                for ty in s {
                    self.info.functions.push(ty?);
                }
            }
            Payload::TableSection(s) => {
                let offset = s.range().start as usize;
                for t in s {
                    let t = t?;
                    self.table_types
                        .push(wrap(TableType::from_wasmparser(&t.ty), offset)?);
                    self.info.tables.push(t.ty);
                    if let TableInit::Expr(_) = t.init {
                        return Err(unsupported("table initialiser expressions", offset));
                    }
                }
            }
            Payload::MemorySection(s) => {
                let offset = s.range().start as usize;
                for m in s {
                    let m = m?;
                    self.memory_types
                        .push(wrap(MemoryType::from_wasmparser(&m), offset)?);
                    self.info.memories.push(m);
                }
            }
            Payload::GlobalSection(s) => {
                let offset = s.range().start as usize;
                for g in s {
                    let g = g?;
                    self.global_types
                        .push(wrap(GlobalType::from_wasmparser(&g.ty), offset)?);
                    self.info.globals.push(g.ty);
                    self.global_inits.push(const_expr(&g.init_expr)?);
                }
            }
            Payload::ExportSection(s) => {
                for e in s {
                    let e = e?;
                    let idx = match e.kind {
                        ExternalKind::Func | ExternalKind::FuncExact => EntityIndex::Func(e.index),
                        ExternalKind::Table => EntityIndex::Table(e.index),
                        ExternalKind::Memory => EntityIndex::Memory(e.index),
                        ExternalKind::Global => EntityIndex::Global(e.index),
                        ExternalKind::Tag => return Err(unsupported("tag exports", 0)),
                    };
                    self.exports.push((e.name.to_string(), idx));
                }
            }
            Payload::StartSection { func, .. } => self.start = Some(func),
            Payload::ElementSection(s) => {
                for e in s {
                    let e = e?;
                    let mode = match e.kind {
                        ElementKind::Passive => SegmentMode::Passive,
                        ElementKind::Declared => SegmentMode::Declared,
                        ElementKind::Active {
                            table_index,
                            offset_expr,
                        } => SegmentMode::Active {
                            index: table_index.unwrap_or(0),
                            offset: const_expr(&offset_expr)?,
                        },
                    };
                    let mut items = Vec::new();
                    match e.items {
                        ElementItems::Functions(r) => {
                            for f in r {
                                items.push(vec![ConstOp::RefFunc(f?)]);
                            }
                        }
                        ElementItems::Expressions(_, r) => {
                            for x in r {
                                items.push(const_expr(&x?)?);
                            }
                        }
                    }
                    self.elements.push(ElementSegment { mode, items });
                }
                self.info.num_elem_segments = self.elements.len() as u32;
            }
            Payload::DataCountSection { count, .. } => self.info.num_data_segments = count,
            Payload::DataSection(s) => {
                for d in s {
                    let d = d?;
                    let mode = match d.kind {
                        DataKind::Passive => SegmentMode::Passive,
                        DataKind::Active {
                            memory_index,
                            offset_expr,
                        } => SegmentMode::Active {
                            index: memory_index,
                            offset: const_expr(&offset_expr)?,
                        },
                    };
                    self.data.push(DataSegment {
                        mode,
                        bytes: d.data.into(),
                    });
                }
            }
            Payload::Version {
                encoding, range, ..
            } => {
                if encoding != wasmparser::Encoding::Module {
                    return Err(unsupported("components", range.start as usize));
                }
            }
            Payload::CustomSection(_) | Payload::UnknownSection { .. } => {}
            Payload::TagSection(s) => {
                return Err(unsupported("exception tags", s.range().start as usize));
            }
            other => {
                if let Some((_, range)) = other.as_section() {
                    return Err(unsupported("section", range.start as usize));
                }
            }
        }
        Ok(())
    }

    fn import(
        &mut self,
        module: &str,
        name: &str,
        ty: TypeRef,
        offset: usize,
    ) -> Result<(), ModuleError> {
        let index = match ty {
            TypeRef::Func(t) | TypeRef::FuncExact(t) => {
                self.info.functions.push(t);
                self.info.num_imported_functions += 1;
                EntityIndex::Func(self.info.functions.len() as u32 - 1)
            }
            TypeRef::Table(t) => {
                self.table_types
                    .push(wrap(TableType::from_wasmparser(&t), offset)?);
                self.info.tables.push(t);
                EntityIndex::Table(self.info.tables.len() as u32 - 1)
            }
            TypeRef::Memory(m) => {
                self.memory_types
                    .push(wrap(MemoryType::from_wasmparser(&m), offset)?);
                self.info.memories.push(m);
                EntityIndex::Memory(self.info.memories.len() as u32 - 1)
            }
            TypeRef::Global(g) => {
                self.global_types
                    .push(wrap(GlobalType::from_wasmparser(&g), offset)?);
                // Imported globals have no initialiser; keep the vectors aligned by index.
                self.global_inits.push(Vec::new());
                self.info.globals.push(g);
                self.info.num_imported_globals += 1;
                EntityIndex::Global(self.info.globals.len() as u32 - 1)
            }
            TypeRef::Tag(_) => return Err(unsupported("tag imports", offset)),
        };
        self.imports.push(Import {
            module: module.to_string(),
            name: name.to_string(),
            index,
        });
        Ok(())
    }
}

/// Converts a validated constant expression.
fn const_expr(e: &wasmparser::ConstExpr<'_>) -> Result<ConstExpr, ModuleError> {
    let mut reader = e.get_operators_reader();
    let mut ops = Vec::new();
    loop {
        let offset = reader.original_position() as usize;
        let op = reader.read()?;
        ops.push(match op {
            Operator::End => break,
            Operator::I32Const { value } => ConstOp::I32(value),
            Operator::I64Const { value } => ConstOp::I64(value),
            Operator::F32Const { value } => ConstOp::F32(value.bits()),
            Operator::F64Const { value } => ConstOp::F64(value.bits()),
            Operator::V128Const { value } => ConstOp::V128(value.i128() as u128),
            Operator::RefNull { .. } => ConstOp::RefNull,
            Operator::RefFunc { function_index } => ConstOp::RefFunc(function_index),
            Operator::GlobalGet { global_index } => ConstOp::GlobalGet(global_index),
            Operator::I32Add => ConstOp::I32Add,
            Operator::I32Sub => ConstOp::I32Sub,
            Operator::I32Mul => ConstOp::I32Mul,
            Operator::I64Add => ConstOp::I64Add,
            Operator::I64Sub => ConstOp::I64Sub,
            Operator::I64Mul => ConstOp::I64Mul,
            other => {
                return Err(unsupported(
                    format!("constant expression operator {other:?}"),
                    offset,
                ));
            }
        });
    }
    Ok(ops)
}
