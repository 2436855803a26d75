//! Instantiation: building an instance's `VMContext`, resolving imports, and running the
//! module's initialisation (globals, element and data segments, start function).

use crate::externals::{Extern, Global, Memory, Table};
use crate::func::{Func, invoke_raw, trap_error};
use crate::module::{ConstExpr, ConstOp, EntityIndex, Module, SegmentMode};
use crate::store::{GlobalData, StoreOpaque};
use crate::types::ExternType;
use crate::vm::memory::LinearMemory;
use crate::vm::table::TableData;
use crate::{LinkError, Trap};
use anyhow::{Result, bail};
use spate_tiers::abi::ValRaw;
use spate_tiers::vmctx::{VMContext, VMFuncRef, VMGlobal, VMMemory, VMTable};
use std::sync::Arc;

/// The runtime state of one instance. Boxed and owned by its store; never moves.
pub(crate) struct InstanceData {
    pub module: Module,
    pub vmctx: Box<VMContext>,
    /// Function references of defined functions (imports point elsewhere); kept alive for
    /// `func_refs`, which points into it.
    pub _own_func_refs: Box<[VMFuncRef]>,
    /// Every function index's reference: what `vmctx.func_refs` points to.
    pub func_refs: Box<[*const VMFuncRef]>,
    pub globals: Box<[*mut VMGlobal]>,
    pub global_ids: Vec<usize>,
    /// What `vmctx.tables` points to.
    pub _tables: Box<[*mut VMTable]>,
    /// What `vmctx.memories` points to.
    pub _memories: Box<[*mut VMMemory]>,
    pub table_ids: Vec<usize>,
    pub memory_ids: Vec<usize>,
    /// Passive element segments, as raw reference values; emptied by `elem.drop`.
    pub elements: Vec<Arc<[usize]>>,
    /// Passive data segments; emptied by `data.drop`.
    pub data: Vec<Arc<[u8]>>,
}

impl InstanceData {
    /// The `Extern` an export of this instance refers to.
    pub fn export(&self, store_id: u64, idx: EntityIndex) -> Extern {
        match idx {
            EntityIndex::Func(i) => Extern::Func(Func {
                store: store_id,
                ptr: self.func_refs[i as usize] as usize,
            }),
            EntityIndex::Table(i) => Extern::Table(Table {
                store: store_id,
                index: self.table_ids[i as usize],
            }),
            EntityIndex::Memory(i) => Extern::Memory(Memory {
                store: store_id,
                index: self.memory_ids[i as usize],
            }),
            EntityIndex::Global(i) => Extern::Global(Global {
                store: store_id,
                index: self.global_ids[i as usize],
            }),
        }
    }
}

/// Evaluates a constant expression to a raw value.
fn eval(
    expr: &ConstExpr,
    globals: &[*mut VMGlobal],
    func_refs: &[*const VMFuncRef],
) -> Result<ValRaw> {
    let mut stack: Vec<ValRaw> = Vec::with_capacity(2);
    for op in expr {
        let v = match *op {
            ConstOp::I32(v) => ValRaw::i32(v),
            ConstOp::I64(v) => ValRaw::i64(v),
            ConstOp::F32(v) => ValRaw::f32(v),
            ConstOp::F64(v) => ValRaw::f64(v),
            ConstOp::V128(v) => ValRaw::u128(v),
            ConstOp::RefNull => ValRaw::reference(0),
            ConstOp::RefFunc(f) => ValRaw::reference(func_refs[f as usize] as usize),
            // SAFETY: global pointers of an instance being built point into store-owned boxes.
            ConstOp::GlobalGet(g) => ValRaw(unsafe { (*globals[g as usize]).bytes }),
            ConstOp::I32Add
            | ConstOp::I32Sub
            | ConstOp::I32Mul
            | ConstOp::I64Add
            | ConstOp::I64Sub
            | ConstOp::I64Mul => {
                let (Some(b), Some(a)) = (stack.pop(), stack.pop()) else {
                    bail!("malformed constant expression")
                };
                match op {
                    ConstOp::I32Add => ValRaw::i32(a.get_i32().wrapping_add(b.get_i32())),
                    ConstOp::I32Sub => ValRaw::i32(a.get_i32().wrapping_sub(b.get_i32())),
                    ConstOp::I32Mul => ValRaw::i32(a.get_i32().wrapping_mul(b.get_i32())),
                    ConstOp::I64Add => ValRaw::i64(a.get_i64().wrapping_add(b.get_i64())),
                    ConstOp::I64Sub => ValRaw::i64(a.get_i64().wrapping_sub(b.get_i64())),
                    _ => ValRaw::i64(a.get_i64().wrapping_mul(b.get_i64())),
                }
            }
        };
        stack.push(v);
    }
    match (stack.pop(), stack.is_empty()) {
        (Some(v), true) => Ok(v),
        _ => bail!("malformed constant expression"),
    }
}

/// Whether an import of type `actual` satisfies `expected` (import subtyping of WebAssembly 2.0).
fn matches(expected: &ExternType, actual: &ExternType) -> bool {
    fn limits(emin: u64, emax: Option<u64>, amin: u64, amax: Option<u64>) -> bool {
        amin >= emin
            && match (emax, amax) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(e), Some(a)) => a <= e,
            }
    }
    match (expected, actual) {
        (ExternType::Func(e), ExternType::Func(a)) => e == a,
        (ExternType::Global(e), ExternType::Global(a)) => e == a,
        (ExternType::Table(e), ExternType::Table(a)) => {
            e.element() == a.element()
                && limits(
                    e.minimum() as u64,
                    e.maximum().map(u64::from),
                    a.minimum() as u64,
                    a.maximum().map(u64::from),
                )
        }
        (ExternType::Memory(e), ExternType::Memory(a)) => {
            limits(e.minimum(), e.maximum(), a.minimum(), a.maximum())
        }
        _ => false,
    }
}

/// Instantiates `module` in `store` with `imports` (one per module import, in order).
///
/// Returns the instance's index in the store. A link error leaves the store unchanged; a trap
/// during initialisation leaves the instance (and what it wrote to imported tables and memories)
/// in place, as WebAssembly 2.0 specifies, and returns the trap.
pub(crate) fn instantiate(
    store: &mut StoreOpaque,
    module: &Module,
    imports: &[Extern],
) -> Result<usize> {
    let m = &module.0;
    if !crate::Engine::same(&m.engine, &store.engine) {
        bail!("module and store belong to different engines");
    }
    if imports.len() != m.imports.len() {
        return Err(LinkError(format!(
            "expected {} imports, got {}",
            m.imports.len(),
            imports.len()
        ))
        .into());
    }
    for (imp, ext) in m.imports.iter().zip(imports) {
        let expected = module.entity_type(imp.index);
        let actual = ext.ty_opaque(store);
        if !matches(&expected, &actual) {
            return Err(LinkError(format!(
                "incompatible import type for `{}::{}`: expected {expected}, found {actual}",
                imp.module, imp.name
            ))
            .into());
        }
    }

    let info = &m.info;
    let nfuncs = info.functions.len();
    let mut func_refs: Vec<*const VMFuncRef> = Vec::with_capacity(nfuncs);
    let mut global_ids = Vec::new();
    let mut table_ids = Vec::new();
    let mut memory_ids = Vec::new();
    for ext in imports {
        match ext {
            Extern::Func(f) => func_refs.push(f.ptr as *const VMFuncRef),
            Extern::Global(g) => global_ids.push(g.index),
            Extern::Table(t) => table_ids.push(t.index),
            Extern::Memory(mem) => memory_ids.push(mem.index),
        }
    }

    let mut vmctx = Box::new(VMContext {
        limits: &*store.limits,
        libcalls: store.libcalls.as_ptr(),
        type_ids: m.type_ids.as_ptr(),
        budgets: m.budgets.as_ptr() as *mut i32,
        entries: m.entries.as_ptr(),
        store: store.host_vmctx.store,
        ..VMContext::null()
    });
    let vmctx_ptr = &mut *vmctx as *mut VMContext as *mut u8;
    let own_func_refs: Box<[VMFuncRef]> = (0..info.num_defined_functions() as usize)
        .map(|i| VMFuncRef {
            entry: &m.entries[i],
            vmctx: vmctx_ptr,
            type_id: m.type_ids[info.functions[info.num_imported_functions as usize + i] as usize],
        })
        .collect();
    func_refs.extend(own_func_refs.iter().map(|f| f as *const VMFuncRef));
    let func_refs = func_refs.into_boxed_slice();

    // Globals, in order: each initialiser may read imported globals (and, with extended
    // constant expressions, earlier globals).
    let mut globals: Vec<*mut VMGlobal> = global_ids
        .iter()
        .map(|&i| &mut store.globals[i].cell as *mut VMGlobal)
        .collect();
    for gi in info.num_imported_globals as usize..info.globals.len() {
        let v = eval(&m.global_inits[gi], &globals, &func_refs)?;
        store.globals.push(Box::new(GlobalData {
            ty: m.global_types[gi],
            cell: VMGlobal { bytes: v.0 },
        }));
        let idx = store.globals.len() - 1;
        global_ids.push(idx);
        globals.push(&mut store.globals[idx].cell);
    }
    for ty in &m.table_types[table_ids.len()..] {
        store.tables.push(Box::new(TableData::new(*ty, 0)?));
        table_ids.push(store.tables.len() - 1);
    }
    for ty in &m.memory_types[memory_ids.len()..] {
        store.memories.push(Box::new(LinearMemory::new(
            ty.minimum(),
            ty.maximum(),
            store.engine.config().memory_huge_pages,
        )?));
        memory_ids.push(store.memories.len() - 1);
    }
    let tables: Box<[*mut VMTable]> = table_ids
        .iter()
        .map(|&i| &mut *store.tables[i].vm as *mut VMTable)
        .collect();
    let globals = globals.into_boxed_slice();
    vmctx.func_refs = func_refs.as_ptr();
    vmctx.globals = globals.as_ptr();
    vmctx.tables = tables.as_ptr();
    let memories: Box<[*mut VMMemory]> = memory_ids
        .iter()
        .map(|&i| &mut *store.memories[i].vm as *mut VMMemory)
        .collect();
    vmctx.memory = memories.first().copied().unwrap_or(std::ptr::null_mut());
    vmctx.memories = memories.as_ptr();

    // Passive segments are kept; active and declared ones are dropped once applied.
    let mut elements = Vec::with_capacity(m.elements.len());
    let mut element_values = Vec::with_capacity(m.elements.len());
    for seg in &m.elements {
        let values: Arc<[usize]> = seg
            .items
            .iter()
            .map(|e| eval(e, &globals, &func_refs).map(|v| v.get_reference()))
            .collect::<Result<_>>()?;
        elements.push(match seg.mode {
            SegmentMode::Passive => values.clone(),
            _ => Arc::from([]),
        });
        element_values.push(values);
    }
    let data = m
        .data
        .iter()
        .map(|d| match d.mode {
            SegmentMode::Passive => d.bytes.clone(),
            _ => Arc::from([]),
        })
        .collect();

    let mut inst = Box::new(InstanceData {
        module: module.clone(),
        vmctx,
        _own_func_refs: own_func_refs,
        func_refs,
        globals,
        global_ids,
        _tables: tables,
        _memories: memories,
        table_ids,
        memory_ids,
        elements,
        data,
    });
    inst.vmctx.instance = &mut *inst as *mut InstanceData as *mut u8;
    store.instances.push(inst);
    let index = store.instances.len() - 1;

    // Element segments, then data segments, then the start function.
    let inst = &store.instances[index];
    let (table_ids, memory_ids) = (inst.table_ids.clone(), inst.memory_ids.clone());
    let globals_ptrs: Vec<*mut VMGlobal> = inst.globals.to_vec();
    for (seg, values) in m.elements.iter().zip(&element_values) {
        if let SegmentMode::Active { index: t, offset } = &seg.mode {
            let offset = eval(offset, &globals_ptrs, &[])?.get_i32() as u32 as usize;
            let table = &mut store.tables[table_ids[*t as usize]];
            let end = offset
                .checked_add(values.len())
                .filter(|&e| e <= table.len() as usize);
            let Some(end) = end else {
                return Err(trap_error(Trap::TableOutOfBounds, None));
            };
            table.elements_mut()[offset..end].copy_from_slice(values);
        }
    }
    for seg in &m.data {
        if let SegmentMode::Active { index: mi, offset } = &seg.mode {
            let offset = eval(offset, &globals_ptrs, &[])?.get_i32() as u32 as usize;
            let mem = &mut store.memories[memory_ids[*mi as usize]];
            let end = offset
                .checked_add(seg.bytes.len())
                .filter(|&e| e <= mem.data().len());
            let Some(end) = end else {
                return Err(trap_error(Trap::MemoryOutOfBounds, None));
            };
            mem.data_mut()[offset..end].copy_from_slice(&seg.bytes);
        }
    }
    if let Some(start) = m.start {
        let f = store.instances[index].func_refs[start as usize];
        let mut values: [ValRaw; 0] = [];
        invoke_raw(store, f, &mut values)?;
    }
    Ok(index)
}
