//! Lazy compilation: a streamed module is ready when its last byte is validated, not when its
//! last function is compiled.
//!
//! While bytes stream in, every function body is validated on the feeding thread and queued for
//! the baseline tier on the compile pool. When [`ModuleStream::finish`](crate::ModuleStream)
//! runs, the functions whose code is ready go into the module's code memory; every other
//! function's entry points at a small per-function *thunk*. Calling a thunk enters
//! [`spate_lazy_stub`], a signature-independent assembly stub that saves the argument registers,
//! asks [`LazyCode::ensure`] for the function's code (compiled now, on the calling thread when it
//! has stack to spare and otherwise on the engine's urgent compile thread, unless the pool
//! already has it under way or done), restores the registers and
//! jumps to that code, so the callee sees exactly the call its caller made. Code that arrives
//! later (from the pool or from a first call) is installed with one release store into the
//! function's entry, the same way tier-up installs optimized code, so later calls never see the
//! thunk again.
//!
//! Each function is compiled once: a per-function state word is claimed with a
//! compare-and-swap by whoever compiles it (a pool job or a first call), and a first call that
//! finds the function claimed waits for it.

use super::memory::CodeMemory;
use crate::engine::Engine;
use crate::module::ModuleInner;
use crate::stream::{ModuleError, compile_guarded};
use crate::tiering::{Body, CompileTime, CompileTimer};
use crate::vm::traphandlers::{UnwindReason, raise};
use spate_tiers::{CompileError, CompiledFunction, FunctionCompiler, ModuleInfo};
use std::sync::atomic::{AtomicPtr, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::Instant;
use wasmparser::{BinaryReader, FunctionBody};

/// The body has not arrived yet.
const EMPTY: u8 = 0;
/// The body is validated and waiting for a compiler.
const QUEUED: u8 = 1;
/// A pool job or a first call is compiling it.
const CLAIMED: u8 = 2;
/// Its code exists (held for `finish`, or installed in the entry).
const READY: u8 = 3;
/// The compiler failed on it.
const FAILED: u8 = 4;

/// Bytes of one thunk: `mov r10d, def; mov r11, lazy; jmp [rip+0]; .quad stub`.
const THUNK_LEN: usize = 30;

/// Lazy compilation state of one streamed module, shared by the stream, the pool's jobs, the
/// module and its thunks.
pub(crate) struct LazyCode {
    info: Arc<ModuleInfo>,
    /// Whether the compile pool compiles bodies as they arrive (else only first calls do).
    background: bool,
    states: Box<[AtomicU8]>,
    bodies: Box<[OnceLock<Body>]>,
    shared: Mutex<Shared>,
    changed: Condvar,
}

/// What changes under the lock.
#[derive(Default)]
struct Shared {
    /// Code finished before the module existed, by defined-function index.
    held: Vec<Option<CompiledFunction>>,
    /// Compile errors, with the failing function's defined index.
    errors: Vec<(u32, ModuleError)>,
    /// The module to install late code into, once `finish` has built it.
    module: Option<Weak<ModuleInner>>,
    /// Code memory of functions installed after `finish` (and of the thunks).
    late: Vec<CodeMemory>,
}

impl LazyCode {
    /// State for a module with `info`'s defined functions.
    pub(crate) fn new(info: Arc<ModuleInfo>, background: bool) -> Arc<LazyCode> {
        let n = info.num_defined_functions() as usize;
        Arc::new(LazyCode {
            info,
            background,
            states: (0..n).map(|_| AtomicU8::new(EMPTY)).collect(),
            bodies: (0..n).map(|_| OnceLock::new()).collect(),
            shared: Mutex::new(Shared {
                held: (0..n).map(|_| None).collect(),
                ..Shared::default()
            }),
            changed: Condvar::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the validated body of `def` and (background strategy) queues it on the compile
    /// pool.
    pub(crate) fn submit(self: &Arc<Self>, engine: &Engine, def: u32, body: Body) {
        let _ = self.bodies[def as usize].set(body);
        self.states[def as usize].store(QUEUED, Ordering::Release);
        if !self.background {
            return;
        }
        let lazy = self.clone();
        let engine2 = engine.clone();
        engine.submit(Box::new(move |compiler| {
            if lazy.claim(def) {
                let (r, t) = lazy.compile(compiler, def);
                lazy.complete(&engine2, def, r, t);
            }
        }));
    }

    /// Claims `def` for compilation; false if someone else has it.
    fn claim(&self, def: u32) -> bool {
        self.states[def as usize]
            .compare_exchange(QUEUED, CLAIMED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Compiles the (already validated) body of `def`.
    fn compile(
        &self,
        compiler: &mut dyn FunctionCompiler,
        def: u32,
    ) -> (Result<CompiledFunction, CompileError>, CompileTime) {
        let body = self.bodies[def as usize]
            .get()
            .expect("a queued function has its body");
        let func_index = self.info.num_imported_functions + def;
        let reader = FunctionBody::new(BinaryReader::new(&body.bytes, body.offset));
        let started = CompileTimer::start();
        let r = compile_guarded(compiler, &self.info, func_index, &reader, None);
        (r, started.stop())
    }

    /// Stores or installs the outcome of compiling `def`, and wakes first calls waiting for it.
    fn complete(
        &self,
        engine: &Engine,
        def: u32,
        r: Result<CompiledFunction, CompileError>,
        time: CompileTime,
    ) {
        let mut shared = self.lock();
        let state = match r {
            Ok(f) => {
                engine.0.first_tier_stats().record_function(&f, time);
                match shared.module.as_ref().map(Weak::upgrade) {
                    // Before `finish`: held for the module's code memory.
                    None => {
                        shared.held[def as usize] = Some(f);
                        READY
                    }
                    Some(Some(module)) => {
                        let func_index = self.info.num_imported_functions + def;
                        match CodeMemory::new(vec![(func_index, f)]) {
                            Ok(code) => {
                                module.entries[def as usize]
                                    .store(code.function_ptr(0) as *mut u8, Ordering::Release);
                                shared.late.push(code);
                                READY
                            }
                            Err(e) => {
                                let e = ModuleError {
                                    message: format!("cannot allocate code memory: {e}"),
                                    offset: None,
                                };
                                shared.errors.push((def, e));
                                FAILED
                            }
                        }
                    }
                    // The module is gone: nobody can call the function any more.
                    Some(None) => READY,
                }
            }
            Err(e) => {
                shared.errors.push((def, e.into()));
                FAILED
            }
        };
        self.states[def as usize].store(state, Ordering::Release);
        drop(shared);
        self.changed.notify_all();
    }

    /// Called by `finish` once every body has arrived: the code ready now (by defined index,
    /// `None` where a thunk must stand in), or the lowest-offset compile error seen so far.
    /// `build` turns it into the module, which later code is installed into.
    pub(crate) fn finish(
        self: &Arc<Self>,
        build: impl FnOnce(
            Vec<Option<CompiledFunction>>,
        ) -> anyhow::Result<(Arc<ModuleInner>, Option<CodeMemory>)>,
    ) -> anyhow::Result<Arc<ModuleInner>> {
        let mut shared = self.lock();
        // Compile errors the pool met so far are not the module's: whether the pool reached a
        // function before `finish` is timing, so such a function gets a thunk like any other
        // without code, and its calls report the error (validation errors, which are the
        // module's, never get here: `feed` returns them).
        let held = std::mem::take(&mut shared.held);
        // The module is built under the lock, so no job can finish between taking the held
        // code and recording where late code goes.
        let (module, thunks) = build(held)?;
        shared.module = Some(Arc::downgrade(&module));
        shared.late.extend(thunks);
        Ok(module)
    }

    /// Code for the entry of `def`, for a first call through its thunk: compiles it (on the
    /// calling thread if it has [`INLINE_COMPILE_STACK`] left, else on the engine's urgent
    /// compile thread) unless it is compiled or being compiled already, then waits for it.
    fn ensure(&self, def: u32) -> Result<*const u8, String> {
        let started = Instant::now();
        let module = self
            .lock()
            .module
            .as_ref()
            .and_then(Weak::upgrade)
            .ok_or("the module is gone")?;
        let mut waited = false;
        loop {
            match self.states[def as usize].load(Ordering::Acquire) {
                READY => {
                    if waited {
                        let ns = started.elapsed().as_nanos() as u64;
                        let stats = &module.engine.0.stats;
                        stats.first_call_wait_ns.fetch_add(ns, Ordering::Relaxed);
                    }
                    return Ok(module.entries[def as usize].load(Ordering::Acquire) as *const u8);
                }
                FAILED => {
                    let shared = self.lock();
                    let why = shared
                        .errors
                        .iter()
                        .find(|(d, _)| *d == def)
                        .map(|(_, e)| e.to_string())
                        .unwrap_or_default();
                    return Err(format!(
                        "function {} could not be compiled: {why}",
                        self.info.num_imported_functions + def
                    ));
                }
                QUEUED if self.claim(def) => {
                    waited = true;
                    let engine = module.engine.clone();
                    let stats = &engine.0.stats;
                    stats.first_call_compiles.fetch_add(1, Ordering::Relaxed);
                    if stack_room() >= INLINE_COMPILE_STACK {
                        // On the calling thread: it holds a core already, while waking another
                        // thread can cost a scheduler time slice.
                        let (r, t) = engine.with_thread_compiler(|c| self.compile(c, def));
                        self.complete(&engine, def, r, t);
                    } else {
                        // The caller is deep in wasm (or its stack is small): on the urgent
                        // compile thread, which has a large stack.
                        let lazy = module.lazy.clone().expect("a module with thunks is lazy");
                        let job_engine = engine.clone();
                        engine.compile_urgent(Box::new(move |compiler| {
                            let (r, t) = lazy.compile(compiler, def);
                            lazy.complete(&job_engine, def, r, t);
                        }));
                    }
                }
                _ => {
                    // Claimed by a pool job (or another first call): wait for it.
                    waited = true;
                    let shared = self.lock();
                    let _unused = self
                        .changed
                        .wait_while(shared, |_| {
                            self.states[def as usize].load(Ordering::Acquire) == CLAIMED
                        })
                        .unwrap_or_else(|e| e.into_inner());
                }
            }
        }
    }
}

/// Stack a first call needs left on its thread to compile on that thread.
const INLINE_COMPILE_STACK: usize = 4 << 20;

/// Bytes of stack left below the caller on the current thread; 0 if unknown, or if the
/// caller is not on the thread's own stack (a stack the embedder switched to, whose size this
/// cannot know).
fn stack_room() -> usize {
    thread_local! {
        /// This thread's stack as `(low, high)`, once asked (`(0, 0)` if unknown).
        static STACK: std::cell::Cell<Option<(usize, usize)>> = const { std::cell::Cell::new(None) };
    }
    let (low, high) = STACK.with(|c| {
        if c.get().is_none() {
            c.set(Some(thread_stack().unwrap_or((0, 0))));
        }
        c.get().unwrap_or((0, 0))
    });
    let marker = 0u8;
    let sp = std::ptr::addr_of!(marker) as usize;
    if sp <= low || sp > high {
        return 0;
    }
    sp - low
}

/// The current thread's stack as `(lowest usable address, highest address)`, from pthread.
fn thread_stack() -> Option<(usize, usize)> {
    // SAFETY: `attr` is initialised by pthread_getattr_np before it is read and destroyed after;
    // the out-pointers point at locals.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return None;
        }
        let mut addr: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let r = libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
        libc::pthread_attr_destroy(&mut attr);
        // 64 KiB of margin above the guard page glibc puts at the low end.
        (r == 0).then(|| (addr as usize + 64 * 1024, addr as usize + size))
    }
}

/// Thunks for the functions in `defs`: each loads its defined index and `lazy` into r10/r11
/// and jumps to [`spate_lazy_stub`]. Returns the code memory and each thunk's address.
pub(crate) fn thunks(
    lazy: &Arc<LazyCode>,
    defs: &[u32],
) -> std::io::Result<(CodeMemory, Vec<*const u8>)> {
    let stub = spate_lazy_stub as *const () as u64;
    let lazy_addr = Arc::as_ptr(lazy) as u64;
    let functions = defs
        .iter()
        .map(|&def| {
            let mut code = Vec::with_capacity(THUNK_LEN);
            code.extend_from_slice(&[0x41, 0xBA]); // mov r10d, imm32
            code.extend_from_slice(&def.to_le_bytes());
            code.extend_from_slice(&[0x49, 0xBB]); // mov r11, imm64
            code.extend_from_slice(&lazy_addr.to_le_bytes());
            code.extend_from_slice(&[0xFF, 0x25, 0, 0, 0, 0]); // jmp qword ptr [rip+0]
            code.extend_from_slice(&stub.to_le_bytes());
            debug_assert_eq!(code.len(), THUNK_LEN);
            let func_index = lazy.info.num_imported_functions + def;
            (
                func_index,
                CompiledFunction {
                    code,
                    ..CompiledFunction::default()
                },
            )
        })
        .collect();
    let memory = CodeMemory::new(functions)?;
    let ptrs = (0..defs.len()).map(|i| memory.function_ptr(i)).collect();
    Ok((memory, ptrs))
}

/// Entry table for `n` defined functions from the code ready at `finish` and the thunks.
pub(crate) fn entries(
    ready: &CodeMemory,
    ready_defs: &[u32],
    thunk_ptrs: &[*const u8],
    thunk_defs: &[u32],
    n: usize,
) -> Box<[AtomicPtr<u8>]> {
    let mut ptrs = vec![std::ptr::null_mut(); n];
    for (i, &def) in ready_defs.iter().enumerate() {
        ptrs[def as usize] = ready.function_ptr(i) as *mut u8;
    }
    for (&ptr, &def) in thunk_ptrs.iter().zip(thunk_defs) {
        ptrs[def as usize] = ptr as *mut u8;
    }
    ptrs.into_iter().map(AtomicPtr::new).collect()
}

/// Called by [`spate_lazy_stub`] with the thunk's `LazyCode` and defined index: the code to
/// jump to. A failure (a function the compiler rejects) raises a trap-like error in the caller.
///
/// # Safety
/// `lazy` is the address a thunk was made with; the thunk's module (which owns the
/// `LazyCode`) is alive because its code is running.
unsafe extern "C" fn spate_lazy_compile(lazy: *const LazyCode, def: u32) -> *const u8 {
    let r = std::panic::catch_unwind(|| {
        // SAFETY: per this function's contract.
        let lazy = unsafe { &*lazy };
        lazy.ensure(def)
    });
    let reason = match r {
        Ok(Ok(code)) => return code,
        Ok(Err(message)) => UnwindReason::HostError(anyhow::anyhow!(message)),
        Err(panic) => UnwindReason::Panic(panic),
    };
    // SAFETY: called from wasm code through the stub; nothing on this frame needs dropping
    // (the reason moves into the unwinder).
    unsafe { raise(reason) }
}

// The signature-independent stub behind every thunk. On entry the stack and argument registers
// are exactly as the caller set them up for the real function (System V: rdi, rsi, rdx, rcx,
// r8, r9, xmm0-xmm7; stack arguments above the return address), r10d holds the defined index and
// r11 the `LazyCode`. It saves the argument registers, calls `spate_lazy_compile`, restores them
// and jumps (not calls) to the code, which then returns straight to the original caller.
// Stack: entry rsp = 8 mod 16; push rbp makes it 0; 176 bytes keep it 16-aligned for the call.
std::arch::global_asm!(
    ".pushsection .text.spate_lazy_stub,\"ax\",@progbits",
    ".p2align 4",
    ".globl spate_lazy_stub",
    ".hidden spate_lazy_stub",
    ".type spate_lazy_stub,@function",
    "spate_lazy_stub:",
    "push rbp",
    "mov rbp, rsp",
    "sub rsp, 176",
    "mov [rsp], rdi",
    "mov [rsp + 8], rsi",
    "mov [rsp + 16], rdx",
    "mov [rsp + 24], rcx",
    "mov [rsp + 32], r8",
    "mov [rsp + 40], r9",
    "movdqu [rsp + 48], xmm0",
    "movdqu [rsp + 64], xmm1",
    "movdqu [rsp + 80], xmm2",
    "movdqu [rsp + 96], xmm3",
    "movdqu [rsp + 112], xmm4",
    "movdqu [rsp + 128], xmm5",
    "movdqu [rsp + 144], xmm6",
    "movdqu [rsp + 160], xmm7",
    "mov rdi, r11",
    "mov esi, r10d",
    "call {compile}",
    "mov r11, rax",
    "mov rdi, [rsp]",
    "mov rsi, [rsp + 8]",
    "mov rdx, [rsp + 16]",
    "mov rcx, [rsp + 24]",
    "mov r8, [rsp + 32]",
    "mov r9, [rsp + 40]",
    "movdqu xmm0, [rsp + 48]",
    "movdqu xmm1, [rsp + 64]",
    "movdqu xmm2, [rsp + 80]",
    "movdqu xmm3, [rsp + 96]",
    "movdqu xmm4, [rsp + 112]",
    "movdqu xmm5, [rsp + 128]",
    "movdqu xmm6, [rsp + 144]",
    "movdqu xmm7, [rsp + 160]",
    "mov rsp, rbp",
    "pop rbp",
    "jmp r11",
    ".size spate_lazy_stub, . - spate_lazy_stub",
    ".popsection",
    compile = sym spate_lazy_compile,
);

unsafe extern "C" {
    /// The stub defined by the `global_asm!` above; never called from Rust.
    fn spate_lazy_stub();
}
