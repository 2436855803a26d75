//! A minimal runtime for executing code compiled by the Cranelift tier in tests: it parses and
//! validates a module, compiles every function, and builds a real `VMContext` (memory in a guard
//! reservation, globals, tables, budgets, entry table, libcall table of test functions).

#![allow(dead_code)]
// Boxes give runtime structures the stable addresses compiled code holds pointers to.
#![allow(clippy::vec_box)]

use std::collections::HashMap;
use std::sync::atomic::AtomicPtr;

use spate_tier_cranelift::{CraneliftCompiler, CraneliftOptions, CraneliftTier};
use spate_tiers::abi::{HostToWasmTrampoline, VMHostFuncContext, ValRaw};
use spate_tiers::libcall::Libcall;
use spate_tiers::vmctx::{
    MEMORY_RESERVATION, VMContext, VMFuncRef, VMGlobal, VMMemory, VMRuntimeLimits, VMTable,
};
use spate_tiers::{CompileError, CompiledFunction, FunctionCompiler, ModuleInfo};
use wasmparser::{
    CompositeInnerType, ConstExpr, DataKind, ElementItems, ElementKind, FuncValidatorAllocations,
    Operator, Parser, Payload, TypeRef, ValidPayload, Validator, WasmFeatures,
};

/// Parses WebAssembly text.
pub fn wat(src: &str) -> Vec<u8> {
    let buf = wast::parser::ParseBuffer::new(src).expect("lex wat");
    let mut module = wast::parser::parse::<wast::Wat>(&buf).expect("parse wat");
    module.encode().expect("encode wat")
}

/// The tier used by the tests: verifier on.
pub fn compiler() -> CraneliftCompiler {
    CraneliftTier::new(CraneliftOptions {
        verify: true,
        ..CraneliftOptions::default()
    })
    .expect("host supported")
    .compiler()
}

/// A value of a constant expression.
fn eval_const(expr: &ConstExpr<'_>, func_refs: &[*const VMFuncRef]) -> ValRaw {
    let mut reader = expr.get_operators_reader();
    match reader.read().expect("const expr") {
        Operator::I32Const { value } => ValRaw::i32(value),
        Operator::I64Const { value } => ValRaw::i64(value),
        Operator::F32Const { value } => ValRaw::f32(value.bits()),
        Operator::F64Const { value } => ValRaw::f64(value.bits()),
        Operator::RefNull { .. } => ValRaw::reference(0),
        Operator::RefFunc { function_index } => ValRaw::reference(
            func_refs
                .get(function_index as usize)
                .map_or(0, |p| *p as usize),
        ),
        op => panic!("unsupported constant expression {op:?}"),
    }
}

/// A compiled module.
pub struct Module {
    pub bytes: Vec<u8>,
    pub info: ModuleInfo,
    pub functions: Vec<CompiledFunction>,
    pub exports: HashMap<String, u32>,
}

/// Validates and compiles `bytes` with all WebAssembly 2.0 features.
pub fn compile(bytes: &[u8]) -> Result<Module, CompileError> {
    compile_with(&mut compiler(), bytes)
}

/// Validates and compiles `bytes` with any tier's compiler (trampolines still come from the
/// Cranelift tier when the module is instantiated).
pub fn compile_with(
    compiler: &mut dyn FunctionCompiler,
    bytes: &[u8],
) -> Result<Module, CompileError> {
    let mut validator = Validator::new_with_features(WasmFeatures::WASM2);
    let mut info = ModuleInfo::default();
    let mut functions = Vec::new();
    let mut exports = HashMap::new();
    let mut allocs = FuncValidatorAllocations::default();
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload?;
        let valid = validator.payload(&payload)?;
        match &payload {
            Payload::TypeSection(r) => {
                for group in r.clone() {
                    for sub in group?.into_types() {
                        match sub.composite_type.inner {
                            CompositeInnerType::Func(f) => info.types.push(f),
                            _ => panic!("non-function type"),
                        }
                    }
                }
            }
            Payload::ImportSection(r) => {
                for import in r.clone().into_imports() {
                    match import?.ty {
                        TypeRef::Func(t) => {
                            info.functions.push(t);
                            info.num_imported_functions += 1;
                        }
                        TypeRef::Table(t) => info.tables.push(t),
                        TypeRef::Memory(m) => info.memories.push(m),
                        TypeRef::Global(g) => {
                            info.globals.push(g);
                            info.num_imported_globals += 1;
                        }
                        _ => panic!("unsupported import"),
                    }
                }
            }
            Payload::FunctionSection(r) => {
                for t in r.clone() {
                    info.functions.push(t?);
                }
            }
            Payload::TableSection(r) => {
                for t in r.clone() {
                    info.tables.push(t?.ty);
                }
            }
            Payload::MemorySection(r) => {
                for m in r.clone() {
                    info.memories.push(m?);
                }
            }
            Payload::GlobalSection(r) => {
                for g in r.clone() {
                    info.globals.push(g?.ty);
                }
            }
            Payload::ExportSection(r) => {
                for e in r.clone() {
                    let e = e?;
                    if e.kind == wasmparser::ExternalKind::Func {
                        exports.insert(e.name.to_string(), e.index);
                    }
                }
            }
            Payload::ElementSection(r) => info.num_elem_segments = r.count(),
            Payload::DataCountSection { count, .. } => info.num_data_segments = *count,
            _ => {}
        }
        if let ValidPayload::Func(to_validate, body) = valid {
            let mut v = to_validate.into_validator(std::mem::take(&mut allocs));
            let index = v.index();
            let f = compiler.compile_function(&info, index, &body, Some(&mut v))?;
            allocs = v.into_allocations();
            functions.push(f);
        }
    }
    Ok(Module {
        bytes: bytes.to_vec(),
        info,
        functions,
        exports,
    })
}

/// Executable copy of some machine code.
pub struct Code {
    ptr: *mut u8,
    len: usize,
}

impl Code {
    pub fn new(bytes: &[u8]) -> Code {
        let len = bytes.len().max(1).next_multiple_of(4096);
        // SAFETY: a fresh anonymous mapping; checked for failure below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED);
        let ptr = ptr.cast::<u8>();
        // SAFETY: the mapping is `len >= bytes.len()` bytes, writable, and disjoint from `bytes`.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr, bytes.len()) };
        // SAFETY: `ptr..ptr+len` is our mapping.
        let r = unsafe { libc::mprotect(ptr.cast(), len, libc::PROT_READ | libc::PROT_EXEC) };
        assert_eq!(r, 0);
        Code { ptr, len }
    }

    pub fn ptr(&self) -> *const u8 {
        self.ptr
    }
}

impl Drop for Code {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// A host function: reads its parameters from and writes its results to the slice.
pub type HostFn = Box<dyn Fn(&mut [ValRaw])>;

/// Mutable runtime state, reachable from libcalls through `VMContext::store`.
pub struct State {
    pub tier_ups: Vec<u32>,
    /// `LoopTierUp` calls: function, loop, outer loop.
    pub loop_tier_ups: Vec<(u32, u32, u32)>,
    /// An on-stack-replacement entry `LoopTierUp` returns at the header of the given loop
    /// (any function), for tests that combine baseline code with another tier's entries; the
    /// code must stay mapped while the instance runs.
    pub osr_entry: Option<(u32, *const u8)>,
    /// How many times `LoopTierUp` returned `osr_entry`.
    pub osr_taken: u32,
    /// Budget a function gets back when its tier-up libcall runs.
    pub budget_reset: i32,
    pub budgets: Vec<i32>,
    memory: *mut u8,
    max_pages: u64,
    pub vmmemory: Box<VMMemory>,
    /// What `VMContext::memories` points to: the one memory this test runtime supports.
    memories: Box<[*mut VMMemory; 1]>,
    tables: Vec<Box<VMTable>>,
    table_storage: Vec<Vec<usize>>,
    passive_elems: Vec<Vec<usize>>,
    passive_data: Vec<Vec<u8>>,
}

/// An instance of a [`Module`].
pub struct Instance {
    pub module: Module,
    pub vmctx: Box<VMContext>,
    pub state: Box<State>,
    code: Vec<Code>,
    entries: Vec<AtomicPtr<u8>>,
    limits: Box<VMRuntimeLimits>,
    libcalls: Box<[usize; Libcall::COUNT]>,
    func_refs: Vec<*const VMFuncRef>,
    func_ref_storage: Vec<Box<VMFuncRef>>,
    host_entries: Vec<Box<AtomicPtr<u8>>>,
    host_ctxs: Vec<Box<VMHostFuncContext>>,
    host_fns: Vec<Box<HostFn>>,
    globals: Vec<Box<VMGlobal>>,
    global_ptrs: Vec<*mut VMGlobal>,
    table_ptrs: Vec<*mut VMTable>,
    type_ids: Vec<u32>,
    trampolines: HashMap<u32, Code>,
    compiler: CraneliftCompiler,
}

const PAGE: usize = 0x1_0000;

impl Instance {
    /// Instantiates `module` with host functions for its function imports, in order.
    pub fn new(module: Module, imports: Vec<HostFn>) -> Instance {
        Self::with_budget(module, imports, 1_000_000)
    }

    pub fn with_budget(module: Module, imports: Vec<HostFn>, budget: i32) -> Instance {
        let mut compiler = compiler();
        let info = &module.info;
        let num_defined = info.num_defined_functions() as usize;
        let code: Vec<Code> = module
            .functions
            .iter()
            .map(|f| Code::new(&f.code))
            .collect();
        let entries: Vec<AtomicPtr<u8>> = code
            .iter()
            .map(|c| AtomicPtr::new(c.ptr() as *mut u8))
            .collect();
        assert_eq!(entries.len(), num_defined);

        // Canonical type ids: the first structurally equal type.
        let type_ids: Vec<u32> = info
            .types
            .iter()
            .map(|t| info.types.iter().position(|u| u == t).unwrap() as u32)
            .collect();

        // Memory: a guard reservation with the initial pages accessible.
        let (memory, vmmemory, max_pages) = match info.memories.first() {
            Some(m) => {
                // SAFETY: a fresh reservation without access rights.
                let base = unsafe {
                    libc::mmap(
                        std::ptr::null_mut(),
                        MEMORY_RESERVATION,
                        libc::PROT_NONE,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                        -1,
                        0,
                    )
                };
                assert_ne!(base, libc::MAP_FAILED);
                let len = m.initial as usize * PAGE;
                if len > 0 {
                    // SAFETY: inside our reservation.
                    let r =
                        unsafe { libc::mprotect(base, len, libc::PROT_READ | libc::PROT_WRITE) };
                    assert_eq!(r, 0);
                }
                let base = base.cast::<u8>();
                (
                    base,
                    Box::new(VMMemory { base, length: len }),
                    m.maximum.unwrap_or(65536),
                )
            }
            None => (
                std::ptr::null_mut(),
                Box::new(VMMemory {
                    base: std::ptr::null_mut(),
                    length: 0,
                }),
                0,
            ),
        };

        let mut state = Box::new(State {
            tier_ups: Vec::new(),
            loop_tier_ups: Vec::new(),
            osr_entry: None,
            osr_taken: 0,
            budget_reset: budget,
            // Budgets, the OSR-armed words, the call counts
            // (`spate_tiers::vmctx::VMContext::budgets`).
            budgets: (0..3 * num_defined)
                .map(|i| if i < num_defined { budget } else { 0 })
                .collect(),
            memory,
            max_pages,
            vmmemory,
            tables: Vec::new(),
            table_storage: Vec::new(),
            passive_elems: Vec::new(),
            passive_data: Vec::new(),
            memories: Box::new([std::ptr::null_mut()]),
        });

        let mut vmctx = Box::new(VMContext::null());
        let vmctx_ptr: *mut VMContext = &mut *vmctx;

        // Function references: imports through wasm-to-host trampolines, then defined ones.
        let mut func_ref_storage = Vec::new();
        let mut host_entries = Vec::new();
        let mut host_ctxs = Vec::new();
        let mut host_fns = Vec::new();
        let mut trampoline_code = Vec::new();
        assert_eq!(
            imports.len(),
            info.num_imported_functions as usize,
            "imports"
        );
        for (i, f) in imports.into_iter().enumerate() {
            let type_index = info.functions[i];
            let t = compiler
                .wasm_to_host_trampoline(&info.types[type_index as usize])
                .unwrap();
            let t = Code::new(&t.code);
            let boxed: Box<HostFn> = Box::new(f);
            let mut ctx = Box::new(VMHostFuncContext {
                func: host_shim,
                data: (&*boxed as *const HostFn).cast_mut().cast(),
            });
            let entry = Box::new(AtomicPtr::new(t.ptr() as *mut u8));
            func_ref_storage.push(Box::new(VMFuncRef {
                entry: &*entry,
                vmctx: (&mut *ctx as *mut VMHostFuncContext).cast(),
                type_id: type_ids[type_index as usize],
            }));
            trampoline_code.push(t);
            host_entries.push(entry);
            host_ctxs.push(ctx);
            host_fns.push(boxed);
        }
        for (d, entry) in entries.iter().enumerate() {
            let type_index = info.functions[info.num_imported_functions as usize + d];
            func_ref_storage.push(Box::new(VMFuncRef {
                entry,
                vmctx: vmctx_ptr.cast(),
                type_id: type_ids[type_index as usize],
            }));
        }
        let func_refs: Vec<*const VMFuncRef> = func_ref_storage
            .iter()
            .map(|f| &**f as *const VMFuncRef)
            .collect();

        // Globals, tables, segments.
        let mut globals = Vec::new();
        let mut tables = Vec::new();
        let mut table_storage: Vec<Vec<usize>> = Vec::new();
        for t in &info.tables {
            table_storage.push(vec![0; t.initial as usize]);
        }
        for payload in Parser::new(0).parse_all(&module.bytes) {
            match payload.unwrap() {
                Payload::GlobalSection(r) => {
                    for g in r {
                        let v = eval_const(&g.unwrap().init_expr, &func_refs);
                        globals.push(Box::new(VMGlobal { bytes: v.0 }));
                    }
                }
                Payload::ElementSection(r) => {
                    for e in r {
                        let e = e.unwrap();
                        let items: Vec<usize> = match e.items {
                            ElementItems::Functions(fs) => fs
                                .into_iter()
                                .map(|f| func_refs[f.unwrap() as usize] as usize)
                                .collect(),
                            ElementItems::Expressions(_, es) => es
                                .into_iter()
                                .map(|x| eval_const(&x.unwrap(), &func_refs).get_reference())
                                .collect(),
                        };
                        match e.kind {
                            ElementKind::Active {
                                table_index,
                                offset_expr,
                            } => {
                                let t = table_index.unwrap_or(0) as usize;
                                let off = eval_const(&offset_expr, &func_refs).get_i32() as usize;
                                table_storage[t][off..off + items.len()].copy_from_slice(&items);
                                state.passive_elems.push(Vec::new());
                            }
                            _ => state.passive_elems.push(items),
                        }
                    }
                }
                Payload::DataSection(r) => {
                    for d in r {
                        let d = d.unwrap();
                        match d.kind {
                            DataKind::Active { offset_expr, .. } => {
                                let off = eval_const(&offset_expr, &func_refs).get_i32() as usize;
                                assert!(off + d.data.len() <= state.vmmemory.length);
                                // SAFETY: checked against the accessible length above.
                                unsafe {
                                    std::ptr::copy_nonoverlapping(
                                        d.data.as_ptr(),
                                        memory.add(off),
                                        d.data.len(),
                                    )
                                };
                                state.passive_data.push(Vec::new());
                            }
                            DataKind::Passive => state.passive_data.push(d.data.to_vec()),
                        }
                    }
                }
                _ => {}
            }
        }
        for storage in &mut table_storage {
            tables.push(Box::new(VMTable {
                base: storage.as_mut_ptr(),
                length: storage.len() as u32,
            }));
        }
        let table_ptrs: Vec<*mut VMTable> = tables
            .iter_mut()
            .map(|t| &mut **t as *mut VMTable)
            .collect();
        state.tables = tables;
        state.table_storage = table_storage;
        let global_ptrs: Vec<*mut VMGlobal> = globals
            .iter_mut()
            .map(|g| &mut **g as *mut VMGlobal)
            .collect();

        let limits = Box::new(VMRuntimeLimits { stack_limit: 0 });
        let libcalls = Box::new(libcall_table());
        vmctx.memory = &mut *state.vmmemory;
        state.memories[0] = &mut *state.vmmemory;
        vmctx.memories = state.memories.as_ptr();
        vmctx.limits = &*limits;
        vmctx.libcalls = libcalls.as_ptr();
        vmctx.func_refs = func_refs.as_ptr();
        vmctx.globals = global_ptrs.as_ptr();
        vmctx.tables = table_ptrs.as_ptr();
        vmctx.type_ids = type_ids.as_ptr();
        vmctx.budgets = state.budgets.as_mut_ptr();
        vmctx.entries = entries.as_ptr();
        vmctx.store = (&mut *state as *mut State).cast();

        let mut code = code;
        code.extend(trampoline_code);
        Instance {
            module,
            vmctx,
            state,
            code,
            entries,
            limits,
            libcalls,
            func_refs,
            func_ref_storage,
            host_entries,
            host_ctxs,
            host_fns,
            globals,
            global_ptrs,
            table_ptrs,
            type_ids,
            trampolines: HashMap::new(),
            compiler,
        }
    }

    /// Calls the exported function `name`.
    pub fn call(&mut self, name: &str, args: &[ValRaw]) -> Vec<ValRaw> {
        let index = *self
            .module
            .exports
            .get(name)
            .unwrap_or_else(|| panic!("no export {name}"));
        let info = &self.module.info;
        let type_index = info.functions[index as usize];
        let ty = info.types[type_index as usize].clone();
        assert_eq!(args.len(), ty.params().len(), "argument count of {name}");
        let compiler = &mut self.compiler;
        let trampoline = self
            .trampolines
            .entry(type_index)
            .or_insert_with(|| Code::new(&compiler.host_to_wasm_trampoline(&ty).unwrap().code));
        // SAFETY: the trampoline was compiled for the HostToWasmTrampoline signature.
        let trampoline: HostToWasmTrampoline = unsafe { std::mem::transmute(trampoline.ptr()) };
        // SAFETY: `func_refs` entries point to live VMFuncRefs and their entries.
        let (code, callee) = unsafe {
            let f = &*self.func_refs[index as usize];
            (
                (*f.entry).load(std::sync::atomic::Ordering::Acquire),
                f.vmctx,
            )
        };
        let mut values = vec![ValRaw::default(); args.len().max(ty.results().len()).max(1)];
        values[..args.len()].copy_from_slice(args);
        let vmctx: *mut VMContext = &mut *self.vmctx;
        // SAFETY: the VMContext and everything it points to live as long as `self`; the values
        // array is large enough for the parameters and the results.
        unsafe { trampoline(callee, vmctx.cast(), code, values.as_mut_ptr()) };
        values.truncate(ty.results().len());
        values
    }

    /// Reads bytes of linear memory.
    pub fn memory(&self) -> &[u8] {
        if self.state.vmmemory.length == 0 {
            return &[];
        }
        // SAFETY: `length` bytes from `base` are accessible.
        unsafe { std::slice::from_raw_parts(self.state.vmmemory.base, self.state.vmmemory.length) }
    }

    /// Reads a global's raw value.
    pub fn global(&self, index: usize) -> ValRaw {
        ValRaw(self.globals[index].bytes)
    }

    pub fn set_stack_limit(&mut self, limit: usize) {
        self.limits.stack_limit = limit;
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if !self.state.memory.is_null() {
            // SAFETY: unmapping the reservation we made.
            unsafe { libc::munmap(self.state.memory.cast(), MEMORY_RESERVATION) };
        }
    }
}

unsafe extern "C" fn host_shim(
    ctx: *mut VMHostFuncContext,
    _caller: *mut u8,
    values: *mut ValRaw,
    len: usize,
) {
    // SAFETY: `data` is the `HostFn` boxed by `Instance::new`; `values` has `len` slots.
    unsafe {
        let f = &*((*ctx).data as *const HostFn);
        f(std::slice::from_raw_parts_mut(values, len));
    }
}

/// The state behind a `VMContext`.
///
/// # Safety
/// `vmctx` must be a VMContext built by [`Instance`].
unsafe fn state<'a>(vmctx: *mut u8) -> &'a mut State {
    // SAFETY: per the function contract.
    unsafe { &mut *((*vmctx.cast::<VMContext>()).store.cast::<State>()) }
}

unsafe extern "C" fn lc_memory_grow(vmctx: *mut u8, mem: u32, delta: u32) -> u32 {
    assert_eq!(mem, 0, "the test runtime has one memory");
    // SAFETY: called by compiled code with its VMContext.
    let s = unsafe { state(vmctx) };
    let old = (s.vmmemory.length / PAGE) as u64;
    let new = old + u64::from(delta);
    if new > s.max_pages {
        return u32::MAX;
    }
    if delta > 0 {
        // SAFETY: the new range lies within the reservation (at most 4 GiB).
        let r = unsafe {
            libc::mprotect(
                s.memory.cast(),
                new as usize * PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        assert_eq!(r, 0);
    }
    s.vmmemory.length = new as usize * PAGE;
    old as u32
}

fn mem_slice(s: &mut State, at: u32, len: u32) -> &mut [u8] {
    let (at, len) = (at as usize, len as usize);
    assert!(
        at + len <= s.vmmemory.length,
        "out of bounds bulk memory access (test runtime)"
    );
    // SAFETY: checked against the accessible length.
    unsafe { std::slice::from_raw_parts_mut(s.memory.add(at), len) }
}

unsafe extern "C" fn lc_memory_fill(vmctx: *mut u8, mem: u32, dst: u32, val: u32, len: u32) {
    assert_eq!(mem, 0, "the test runtime has one memory");
    // SAFETY: called by compiled code with its VMContext.
    let s = unsafe { state(vmctx) };
    mem_slice(s, dst, len).fill(val as u8);
}

unsafe extern "C" fn lc_memory_copy(
    vmctx: *mut u8,
    dst_mem: u32,
    src_mem: u32,
    dst: u32,
    src: u32,
    len: u32,
) {
    assert_eq!(
        (dst_mem, src_mem),
        (0, 0),
        "the test runtime has one memory"
    );
    // SAFETY: called by compiled code with its VMContext.
    let s = unsafe { state(vmctx) };
    let data = mem_slice(s, src, len).to_vec();
    mem_slice(s, dst, len).copy_from_slice(&data);
}

unsafe extern "C" fn lc_memory_init(
    vmctx: *mut u8,
    mem: u32,
    seg: u32,
    dst: u32,
    src: u32,
    len: u32,
) {
    assert_eq!(mem, 0, "the test runtime has one memory");
    // SAFETY: called by compiled code with its VMContext.
    let s = unsafe { state(vmctx) };
    let data = s.passive_data[seg as usize][src as usize..(src + len) as usize].to_vec();
    mem_slice(s, dst, len).copy_from_slice(&data);
}

unsafe extern "C" fn lc_data_drop(vmctx: *mut u8, seg: u32) {
    // SAFETY: called by compiled code with its VMContext.
    unsafe { state(vmctx) }.passive_data[seg as usize].clear();
}

unsafe extern "C" fn lc_table_get(vmctx: *mut u8, table: u32, index: u32) -> usize {
    // SAFETY: called by compiled code with its VMContext.
    unsafe { state(vmctx) }.table_storage[table as usize][index as usize]
}

unsafe extern "C" fn lc_table_set(vmctx: *mut u8, table: u32, index: u32, value: usize) {
    // SAFETY: called by compiled code with its VMContext.
    unsafe { state(vmctx) }.table_storage[table as usize][index as usize] = value;
}

fn sync_table(s: &mut State, table: usize) {
    let storage = &mut s.table_storage[table];
    s.tables[table].base = storage.as_mut_ptr();
    s.tables[table].length = storage.len() as u32;
}

unsafe extern "C" fn lc_table_grow(vmctx: *mut u8, table: u32, init: usize, delta: u32) -> u32 {
    // SAFETY: called by compiled code with its VMContext.
    let s = unsafe { state(vmctx) };
    let old = s.table_storage[table as usize].len();
    s.table_storage[table as usize].resize(old + delta as usize, init);
    sync_table(s, table as usize);
    old as u32
}

unsafe extern "C" fn lc_table_fill(vmctx: *mut u8, table: u32, dst: u32, value: usize, len: u32) {
    // SAFETY: called by compiled code with its VMContext.
    let s = unsafe { state(vmctx) };
    s.table_storage[table as usize][dst as usize..(dst + len) as usize].fill(value);
}

unsafe extern "C" fn lc_table_copy(vmctx: *mut u8, dt: u32, st: u32, dst: u32, src: u32, len: u32) {
    // SAFETY: called by compiled code with its VMContext.
    let s = unsafe { state(vmctx) };
    let items = s.table_storage[st as usize][src as usize..(src + len) as usize].to_vec();
    s.table_storage[dt as usize][dst as usize..(dst + len) as usize].copy_from_slice(&items);
}

unsafe extern "C" fn lc_table_init(
    vmctx: *mut u8,
    table: u32,
    seg: u32,
    dst: u32,
    src: u32,
    len: u32,
) {
    // SAFETY: called by compiled code with its VMContext.
    let s = unsafe { state(vmctx) };
    let items = s.passive_elems[seg as usize][src as usize..(src + len) as usize].to_vec();
    s.table_storage[table as usize][dst as usize..(dst + len) as usize].copy_from_slice(&items);
}

unsafe extern "C" fn lc_elem_drop(vmctx: *mut u8, seg: u32) {
    // SAFETY: called by compiled code with its VMContext.
    unsafe { state(vmctx) }.passive_elems[seg as usize].clear();
}

spate_tiers::preserve_all_trampoline!(no_result, harness_tier_up_preserving, lc_tier_up);
spate_tiers::preserve_all_trampoline!(result, harness_loop_tier_up_preserving, lc_loop_tier_up);

/// Overwrites every register the C convention lets a callee clobber, so that a test sees any
/// value compiled code wrongly keeps there across a register-preserving libcall (the tier-up
/// libcalls' trampolines must restore them all).
fn clobber_caller_saved() {
    // SAFETY: writes only registers declared as clobbered outputs, touches no memory.
    unsafe {
        std::arch::asm!(
            "mov rax, -1", "mov rcx, -1", "mov rdx, -1", "mov rsi, -1", "mov rdi, -1",
            "mov r8, -1", "mov r9, -1", "mov r10, -1", "mov r11, -1",
            "pcmpeqd xmm0, xmm0", "pcmpeqd xmm1, xmm1", "pcmpeqd xmm2, xmm2",
            "pcmpeqd xmm3, xmm3", "pcmpeqd xmm4, xmm4", "pcmpeqd xmm5, xmm5",
            "pcmpeqd xmm6, xmm6", "pcmpeqd xmm7, xmm7", "pcmpeqd xmm8, xmm8",
            "pcmpeqd xmm9, xmm9", "pcmpeqd xmm10, xmm10", "pcmpeqd xmm11, xmm11",
            "pcmpeqd xmm12, xmm12", "pcmpeqd xmm13, xmm13", "pcmpeqd xmm14, xmm14",
            "pcmpeqd xmm15, xmm15",
            out("rax") _, out("rcx") _, out("rdx") _, out("rsi") _, out("rdi") _,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
            out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
            out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
            out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
            out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
            options(nomem, nostack),
        );
    }
}

unsafe extern "C" fn lc_tier_up(vmctx: *mut u8, func: u32) {
    clobber_caller_saved();
    // SAFETY: called by compiled code with its VMContext.
    let s = unsafe { state(vmctx) };
    s.tier_ups.push(func);
    s.budgets[func as usize] = s.budget_reset;
}

unsafe extern "C" fn lc_raise_trap(_vmctx: *mut u8, code: u32) {
    panic!("trap {code} raised through the libcall (not used by the Cranelift tier)");
}

unsafe extern "C" fn lc_loop_tier_up(
    vmctx: *mut u8,
    func: u32,
    loop_index: u32,
    outer_loop: u32,
) -> *const u8 {
    clobber_caller_saved();
    // SAFETY: called by compiled code with its VMContext.
    let s = unsafe { state(vmctx) };
    s.tier_ups.push(func);
    s.loop_tier_ups.push((func, loop_index, outer_loop));
    s.budgets[func as usize] = s.budget_reset;
    match s.osr_entry {
        Some((at, entry)) if at == loop_index => {
            s.osr_taken += 1;
            entry
        }
        // No on-stack-replacement entry: the loop goes on in the baseline code.
        _ => std::ptr::null(),
    }
}

fn libcall_table() -> [usize; Libcall::COUNT] {
    let mut t = [0usize; Libcall::COUNT];
    t[Libcall::MemoryGrow as usize] = lc_memory_grow as *const () as usize;
    t[Libcall::MemoryFill as usize] = lc_memory_fill as *const () as usize;
    t[Libcall::MemoryCopy as usize] = lc_memory_copy as *const () as usize;
    t[Libcall::MemoryInit as usize] = lc_memory_init as *const () as usize;
    t[Libcall::DataDrop as usize] = lc_data_drop as *const () as usize;
    t[Libcall::TableGet as usize] = lc_table_get as *const () as usize;
    t[Libcall::TableSet as usize] = lc_table_set as *const () as usize;
    t[Libcall::TableGrow as usize] = lc_table_grow as *const () as usize;
    t[Libcall::TableFill as usize] = lc_table_fill as *const () as usize;
    t[Libcall::TableCopy as usize] = lc_table_copy as *const () as usize;
    t[Libcall::TableInit as usize] = lc_table_init as *const () as usize;
    t[Libcall::ElemDrop as usize] = lc_elem_drop as *const () as usize;
    // Called with every register preserved (see `Libcall::preserves_registers`).
    t[Libcall::TierUp as usize] = harness_tier_up_preserving as *const () as usize;
    t[Libcall::RaiseTrap as usize] = lc_raise_trap as *const () as usize;
    t[Libcall::LoopTierUp as usize] = harness_loop_tier_up_preserving as *const () as usize;
    t
}

/// Calls export `name` with `i32` arguments and returns its first result as `i32`.
pub fn call_i32(inst: &mut Instance, name: &str, args: &[i32]) -> i32 {
    let args: Vec<ValRaw> = args.iter().map(|&a| ValRaw::i32(a)).collect();
    inst.call(name, &args)[0].get_i32()
}

/// Calls export `name` with `i64` arguments and returns its first result as `i64`.
pub fn call_i64(inst: &mut Instance, name: &str, args: &[i64]) -> i64 {
    let args: Vec<ValRaw> = args.iter().map(|&a| ValRaw::i64(a)).collect();
    inst.call(name, &args)[0].get_i64()
}

/// Calls export `name` with `f64` arguments and returns its first result as `f64`.
pub fn call_f64(inst: &mut Instance, name: &str, args: &[f64]) -> f64 {
    let args: Vec<ValRaw> = args.iter().map(|&a| ValRaw::f64(a.to_bits())).collect();
    f64::from_bits(inst.call(name, &args)[0].get_f64())
}

/// Calls export `name` with `f32` arguments and returns its first result as `f32`.
pub fn call_f32(inst: &mut Instance, name: &str, args: &[f32]) -> f32 {
    let args: Vec<ValRaw> = args.iter().map(|&a| ValRaw::f32(a.to_bits())).collect();
    f32::from_bits(inst.call(name, &args)[0].get_f32())
}

/// Integer operators, including every edge the spec defines (division traps aside), on code
/// compiled by the tier behind `instance`.
pub fn check_integer_arithmetic(instance: impl Fn(&str) -> Instance) {
    let mut i = instance(
        r#"(module
          (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
          (func (export "sub") (param i32 i32) (result i32) (i32.sub (local.get 0) (local.get 1)))
          (func (export "mul") (param i32 i32) (result i32) (i32.mul (local.get 0) (local.get 1)))
          (func (export "div_s") (param i32 i32) (result i32) (i32.div_s (local.get 0) (local.get 1)))
          (func (export "div_u") (param i32 i32) (result i32) (i32.div_u (local.get 0) (local.get 1)))
          (func (export "rem_s") (param i32 i32) (result i32) (i32.rem_s (local.get 0) (local.get 1)))
          (func (export "rem_u") (param i32 i32) (result i32) (i32.rem_u (local.get 0) (local.get 1)))
          (func (export "rem_s_m1") (param i32) (result i32) (i32.rem_s (local.get 0) (i32.const -1)))
          (func (export "div_s_3") (param i32) (result i32) (i32.div_s (local.get 0) (i32.const -3)))
          (func (export "shl") (param i32 i32) (result i32) (i32.shl (local.get 0) (local.get 1)))
          (func (export "shr_s") (param i32 i32) (result i32) (i32.shr_s (local.get 0) (local.get 1)))
          (func (export "shr_u") (param i32 i32) (result i32) (i32.shr_u (local.get 0) (local.get 1)))
          (func (export "rotl") (param i32 i32) (result i32) (i32.rotl (local.get 0) (local.get 1)))
          (func (export "rotr") (param i32 i32) (result i32) (i32.rotr (local.get 0) (local.get 1)))
          (func (export "clz") (param i32) (result i32) (i32.clz (local.get 0)))
          (func (export "ctz") (param i32) (result i32) (i32.ctz (local.get 0)))
          (func (export "popcnt") (param i32) (result i32) (i32.popcnt (local.get 0)))
          (func (export "eqz") (param i32) (result i32) (i32.eqz (local.get 0)))
          (func (export "lt_s") (param i32 i32) (result i32) (i32.lt_s (local.get 0) (local.get 1)))
          (func (export "lt_u") (param i32 i32) (result i32) (i32.lt_u (local.get 0) (local.get 1)))
          (func (export "ext8") (param i32) (result i32) (i32.extend8_s (local.get 0)))
          (func (export "ext16") (param i32) (result i32) (i32.extend16_s (local.get 0)))
          (func (export "i64_mul") (param i64 i64) (result i64) (i64.mul (local.get 0) (local.get 1)))
          (func (export "i64_div_s") (param i64 i64) (result i64) (i64.div_s (local.get 0) (local.get 1)))
          (func (export "i64_rem_s") (param i64 i64) (result i64) (i64.rem_s (local.get 0) (local.get 1)))
          (func (export "i64_rotr") (param i64 i64) (result i64) (i64.rotr (local.get 0) (local.get 1)))
          (func (export "i64_shl") (param i64 i64) (result i64) (i64.shl (local.get 0) (local.get 1)))
          (func (export "i64_ext32") (param i64) (result i64) (i64.extend32_s (local.get 0)))
          (func (export "i64_clz") (param i64) (result i64) (i64.clz (local.get 0)))
          (func (export "i64_ctz") (param i64) (result i64) (i64.ctz (local.get 0)))
          (func (export "wrap") (param i64) (result i32) (i32.wrap_i64 (local.get 0)))
          (func (export "extend_u") (param i32) (result i64) (i64.extend_i32_u (local.get 0)))
          (func (export "extend_s") (param i32) (result i64) (i64.extend_i32_s (local.get 0)))
          (func (export "i64_ge_u") (param i64 i64) (result i32) (i64.ge_u (local.get 0) (local.get 1)))
        )"#,
    );
    assert_eq!(call_i32(&mut i, "add", &[i32::MAX, 1]), i32::MIN);
    assert_eq!(call_i32(&mut i, "sub", &[3, 5]), -2);
    assert_eq!(call_i32(&mut i, "mul", &[-7, 6]), -42);
    assert_eq!(call_i32(&mut i, "div_s", &[-7, 2]), -3);
    assert_eq!(call_i32(&mut i, "div_u", &[-7, 2]), 0x7fff_fffc);
    assert_eq!(call_i32(&mut i, "rem_s", &[-7, 2]), -1);
    assert_eq!(call_i32(&mut i, "rem_s", &[i32::MIN, -1]), 0);
    assert_eq!(call_i32(&mut i, "rem_s_m1", &[i32::MIN]), 0);
    assert_eq!(call_i32(&mut i, "rem_u", &[-7, 2]), 1);
    assert_eq!(call_i32(&mut i, "div_s_3", &[10]), -3);
    assert_eq!(call_i32(&mut i, "shl", &[1, 33]), 2);
    assert_eq!(call_i32(&mut i, "shr_s", &[-8, 1]), -4);
    assert_eq!(call_i32(&mut i, "shr_s", &[-8, 65]), -4);
    assert_eq!(call_i32(&mut i, "shr_u", &[-8, 1]), 0x7fff_fffc);
    assert_eq!(call_i32(&mut i, "rotl", &[0x8000_0001u32 as i32, 1]), 3);
    assert_eq!(call_i32(&mut i, "rotl", &[0x8000_0001u32 as i32, 33]), 3);
    assert_eq!(call_i32(&mut i, "rotr", &[3, 1]), 0x8000_0001u32 as i32);
    assert_eq!(call_i32(&mut i, "clz", &[1]), 31);
    assert_eq!(call_i32(&mut i, "clz", &[0]), 32);
    assert_eq!(call_i32(&mut i, "ctz", &[8]), 3);
    assert_eq!(call_i32(&mut i, "ctz", &[0]), 32);
    assert_eq!(call_i32(&mut i, "popcnt", &[-1]), 32);
    assert_eq!(call_i32(&mut i, "eqz", &[0]), 1);
    assert_eq!(call_i32(&mut i, "eqz", &[5]), 0);
    assert_eq!(call_i32(&mut i, "lt_s", &[-1, 0]), 1);
    assert_eq!(call_i32(&mut i, "lt_u", &[-1, 0]), 0);
    assert_eq!(call_i32(&mut i, "ext8", &[0x80]), -128);
    assert_eq!(call_i32(&mut i, "ext16", &[0x7fff]), 0x7fff);
    assert_eq!(call_i64(&mut i, "i64_mul", &[1 << 40, 3]), 3 << 40);
    assert_eq!(call_i64(&mut i, "i64_div_s", &[-100, 7]), -14);
    assert_eq!(call_i64(&mut i, "i64_rem_s", &[i64::MIN, -1]), 0);
    assert_eq!(call_i64(&mut i, "i64_rotr", &[1, 1]), i64::MIN);
    assert_eq!(call_i64(&mut i, "i64_shl", &[1, 65]), 2);
    assert_eq!(call_i64(&mut i, "i64_ext32", &[0xffff_ffff]), -1);
    assert_eq!(call_i64(&mut i, "i64_clz", &[1]), 63);
    assert_eq!(call_i64(&mut i, "i64_ctz", &[0]), 64);
    assert_eq!(
        i.call("wrap", &[ValRaw::i64(0x1_0000_0005)])[0].get_i32(),
        5
    );
    assert_eq!(
        i.call("extend_u", &[ValRaw::i32(-1)])[0].get_i64(),
        0xffff_ffff
    );
    assert_eq!(i.call("extend_s", &[ValRaw::i32(-1)])[0].get_i64(), -1);
    assert_eq!(
        i.call("i64_ge_u", &[ValRaw::i64(-1), ValRaw::i64(1)])[0].get_i32(),
        1
    );
    // Results are canonical ValRaws: zero above the value.
    assert_eq!(
        i.call("add", &[ValRaw::i32(-1), ValRaw::i32(0)])[0],
        ValRaw::i32(-1)
    );
}
