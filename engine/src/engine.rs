//! [`Config`] and [`Engine`]: compilation settings, the compile worker pool, the signature
//! registry and the trampoline cache shared by every module and store of an engine.

use crate::code::CodeMemory;
use crate::tiering::{Stats, StatsCounters, TierManager};
use crate::types::FuncType;
use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Sender};
pub use spate_tier_cranelift::RegallocAlgorithm as BaselineRegalloc;
use spate_tier_cranelift::{CraneliftOptions, CraneliftTier};
pub use spate_tier_llvm::Pipeline as LlvmPipeline;
use spate_tier_llvm::{LlvmOptions, LlvmTier};
use spate_tiers::Tier;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Which compiler tiers run a module's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TierMode {
    /// Cranelift only: fastest compile, no optimizing tier.
    Baseline,
    /// Everything through the optimizing (LLVM) tier before the module is ready: slow to compile,
    /// fastest from the first instruction. For long batch jobs.
    Optimized,
    /// Start on the baseline tier at once; hot functions are recompiled by the optimizing tier on
    /// background threads and swapped in, and hot loops reach it through on-stack replacement.
    #[default]
    Tiered,
}

impl TierMode {
    /// The mode's name as the launcher spells it.
    pub fn name(self) -> &'static str {
        match self {
            TierMode::Baseline => "baseline",
            TierMode::Optimized => "optimized",
            TierMode::Tiered => "tiered",
        }
    }
}

impl std::fmt::Display for TierMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for TierMode {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<TierMode> {
        match s {
            "baseline" => Ok(TierMode::Baseline),
            "optimized" => Ok(TierMode::Optimized),
            "tiered" => Ok(TierMode::Tiered),
            _ => anyhow::bail!("unknown tier `{s}` (expected `baseline`, `optimized` or `tiered`)"),
        }
    }
}

/// When the first tier compiles a streamed module's functions, and so when
/// [`ModuleStream::finish`](crate::ModuleStream::finish) (and [`Module::new`](crate::Module::new))
/// returns.
///
/// With the lazy strategies a module is ready as soon as its last byte is validated (bodies are
/// validated as they arrive, so an invalid module is still rejected by `finish`); a function
/// without code at that point gets a small thunk in its entry, and its first call compiles it
/// (on the calling thread when it has 4 MiB of stack left, else on the engine's urgent compile
/// thread while the caller waits), then installs the code like tier-up does. A
/// compiler failure in such a function (an internal error, never a validation error) then
/// surfaces as an error of that call rather than of the module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompileStrategy {
    /// `finish` waits until every function is compiled.
    Eager,
    /// Bodies are compiled by the pool as they arrive; `finish` does not wait for the pool, and a
    /// first call of a function the pool has not reached compiles it at once. Needs a pool (more
    /// than one compile thread); with one thread, or in [`TierMode::Optimized`], this is
    /// [`Eager`](CompileStrategy::Eager).
    #[default]
    Background,
    /// Nothing is compiled before it is first called: the least work for huge modules of which
    /// little runs. Not in [`TierMode::Optimized`] (which compiles everything first).
    OnFirstCall,
}

/// Engine settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) tier: TierMode,
    pub(crate) compile_threads: usize,
    pub(crate) max_wasm_stack: usize,
    pub(crate) tier_up_threshold: u32,
    pub(crate) tier_up_threads: usize,
    pub(crate) verify: bool,
    pub(crate) multi_memory: bool,
    pub(crate) lazy: CompileStrategy,
    pub(crate) llvm_pipeline: LlvmPipeline,
    pub(crate) baseline_regalloc: BaselineRegalloc,
    pub(crate) llvm_prefetch: bool,
    pub(crate) memory_huge_pages: bool,
    pub(crate) osr_at_every_loop: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            tier: TierMode::Tiered,
            compile_threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            // Leave one core to the program.
            tier_up_threads: std::thread::available_parallelism()
                .map(|n| n.get().saturating_sub(1).max(1))
                .unwrap_or(1),
            max_wasm_stack: 512 * 1024,
            tier_up_threshold: 10_000,
            verify: cfg!(debug_assertions),
            multi_memory: false,
            lazy: CompileStrategy::Background,
            llvm_pipeline: LlvmPipeline::default(),
            baseline_regalloc: BaselineRegalloc::default(),
            llvm_prefetch: true,
            memory_huge_pages: true,
            osr_at_every_loop: false,
        }
    }
}

impl Config {
    /// The default configuration: tiered, one compile thread per core while a module streams
    /// in, one tier-up thread per core but one, tier-up after 10,000 calls and loop iterations.
    pub fn new() -> Config {
        Config::default()
    }

    /// Selects the tier mode (default: [`TierMode::Tiered`]).
    pub fn tier(&mut self, tier: TierMode) -> &mut Self {
        self.tier = tier;
        self
    }

    /// The selected tier mode.
    pub fn tier_mode(&self) -> TierMode {
        self.tier
    }

    /// Number of threads compiling function bodies while a module streams in. `1` compiles on
    /// the thread that feeds the bytes; `n > 1` uses a pool of `n` workers.
    pub fn compile_threads(&mut self, n: usize) -> &mut Self {
        self.compile_threads = n.max(1);
        self
    }

    /// When a streamed module's functions are compiled by the first tier (default:
    /// [`CompileStrategy::Background`]). See [`CompileStrategy`].
    pub fn compile_strategy(&mut self, strategy: CompileStrategy) -> &mut Self {
        self.lazy = strategy;
        self
    }

    /// The compile strategy streamed modules use with this configuration: the selected one,
    /// except [`CompileStrategy::Eager`] in [`TierMode::Optimized`] and for
    /// [`CompileStrategy::Background`] with one compile thread.
    pub fn compile_strategy_in_use(&self) -> CompileStrategy {
        match self.lazy {
            _ if self.tier == TierMode::Optimized => CompileStrategy::Eager,
            CompileStrategy::Background if self.compile_threads <= 1 => CompileStrategy::Eager,
            s => s,
        }
    }

    /// Bytes of native stack wasm code may use before a call traps with
    /// [`Trap::StackOverflow`](crate::Trap::StackOverflow). The calling thread must have this
    /// much stack left (plus room for host functions) when it calls into wasm.
    pub fn max_wasm_stack(&mut self, bytes: usize) -> &mut Self {
        self.max_wasm_stack = bytes;
        self
    }

    /// Calls plus loop iterations after which a function asks to be tiered up (tiered mode).
    /// `0` asks at every function's first call and every loop's first iteration.
    pub fn tier_up_threshold(&mut self, n: u32) -> &mut Self {
        self.tier_up_threshold = n;
        self
    }

    /// A testing aid for on-stack replacement (tiered mode; off by default): every loop header
    /// whose budget runs out (with threshold 0, every eligible loop's first header) waits for
    /// the OSR entry of its own loop, a region entry where the optimizing tier can compile one,
    /// and takes it, so the program goes back and forth between the tiers at every loop. Slow:
    /// for tests that want every loop's way into optimized code and back exercised, such as
    /// the specification scripts.
    pub fn osr_at_every_loop(&mut self, on: bool) -> &mut Self {
        self.osr_at_every_loop = on;
        self
    }

    /// Number of background threads compiling hot functions with the optimizing tier (tiered
    /// mode; default: one per core but one, at least one).
    pub fn tier_up_threads(&mut self, n: usize) -> &mut Self {
        self.tier_up_threads = n.max(1);
        self
    }

    /// Accepts modules with more than one memory (the multi-memory proposal; off by default,
    /// since WebAssembly 2.0 allows one memory).
    pub fn wasm_multi_memory(&mut self, on: bool) -> &mut Self {
        self.multi_memory = on;
        self
    }

    /// The WebAssembly features modules may use under this configuration.
    pub(crate) fn features(&self) -> wasmparser::WasmFeatures {
        let mut f = wasmparser::WasmFeatures::WASM2;
        if self.multi_memory {
            f |= wasmparser::WasmFeatures::MULTI_MEMORY;
        }
        f
    }

    /// The tier-up budget a function starts with and gets back after each request: the
    /// threshold, clamped to what the `i32` counters in compiled code can hold.
    pub(crate) fn tier_up_budget(&self) -> i32 {
        i32::try_from(self.tier_up_threshold).unwrap_or(i32::MAX)
    }

    /// The baseline (Cranelift) tier's register allocator (default:
    /// [`BaselineRegalloc::LoopNests`], the backtracking allocator for functions of up to 2 KiB
    /// with a loop nest and the single-pass allocator for the rest).
    /// [`BaselineRegalloc::SinglePass`] compiles fastest; [`BaselineRegalloc::Backtracking`]
    /// gives every function the faster code, at 1.5-2.4x the compile time on large modules.
    /// Only the baseline and tiered modes compile function bodies with the baseline tier.
    pub fn baseline_regalloc(&mut self, regalloc: BaselineRegalloc) -> &mut Self {
        self.baseline_regalloc = regalloc;
        self
    }

    /// The LLVM pass pipeline of the optimizing tier (optimized and tiered modes; default:
    /// [`LlvmPipeline::Lean`], made for modules a compiler has already optimized;
    /// [`LlvmPipeline::O3`] for modules built without optimization).
    pub fn llvm_pipeline(&mut self, pipeline: LlvmPipeline) -> &mut Self {
        self.llvm_pipeline = pipeline;
        self
    }

    /// Whether the optimizing tier prefetches indirect memory accesses in loops, such as
    /// `out[count[key[i]]]` (default: on). The prefetches never change results; turning them
    /// off is for measuring what they bring.
    pub fn llvm_prefetch(&mut self, on: bool) -> &mut Self {
        self.llvm_prefetch = on;
        self
    }

    /// The baseline tier's register allocator (see
    /// [`baseline_regalloc`](Self::baseline_regalloc)).
    pub fn baseline_regalloc_algorithm(&self) -> BaselineRegalloc {
        self.baseline_regalloc
    }

    /// Whether the optimizing tier prefetches indirect memory accesses (see
    /// [`llvm_prefetch`](Self::llvm_prefetch)).
    pub fn llvm_prefetch_enabled(&self) -> bool {
        self.llvm_prefetch
    }

    /// Whether linear memories are advised to the kernel for transparent huge pages (default:
    /// on). Their reservations start on a 2 MiB boundary, and with the advice the kernel backs
    /// each 2 MiB of accessible memory with one huge page when it has one free, which saves
    /// TLB misses in programs that sweep large arrays. Bounds, guard pages and `memory.grow`
    /// behave the same either way; a kernel without transparent huge pages ignores the advice.
    /// The cost: the kernel may fill a sparsely used 2 MiB stretch into a whole huge page
    /// (`khugepaged`), so memory use can exceed what the guest touched, and with the usual
    /// `defrag` setting a page fault may wait for the kernel to compact memory. Turned off, the
    /// memories are advised `MADV_NOHUGEPAGE` and get 4 KiB pages even where the system gives
    /// huge pages to all memory: for measuring what they bring, or for hosts that keep huge
    /// pages for other work.
    pub fn memory_huge_pages(&mut self, on: bool) -> &mut Self {
        self.memory_huge_pages = on;
        self
    }

    /// Whether linear memories are advised for huge pages (see
    /// [`memory_huge_pages`](Self::memory_huge_pages)).
    pub fn memory_huge_pages_enabled(&self) -> bool {
        self.memory_huge_pages
    }

    /// Runs the Cranelift IR verifier on every function (slower; on by default in debug builds).
    pub fn cranelift_verifier(&mut self, on: bool) -> &mut Self {
        self.verify = on;
        self
    }
}

/// A job for the compile pool: run it on a worker thread with that thread's compiler.
pub(crate) type CompileJob = Box<dyn FnOnce(&mut dyn spate_tiers::FunctionCompiler) + Send>;

/// Host-to-wasm and wasm-to-host trampolines for one signature.
pub(crate) struct Trampolines {
    _code: CodeMemory,
    /// Calls a wasm function of this type from the host.
    pub host_to_wasm: spate_tiers::abi::HostToWasmTrampoline,
    /// The code of a host function of this type, callable with the wasm convention.
    pub wasm_to_host: *const u8,
}

// SAFETY: code pointers into immutable executable memory owned by `_code`.
unsafe impl Send for Trampolines {}
// SAFETY: as above.
unsafe impl Sync for Trampolines {}

pub(crate) struct EngineInner {
    /// Unique among the engines of the process.
    pub id: u64,
    pub config: Config,
    pub baseline: Arc<dyn Tier>,
    /// The optimizing tier (absent in baseline mode).
    pub optimizing: Option<Arc<dyn Tier>>,
    pool: OnceLock<Sender<CompileJob>>,
    /// The thread compiling functions a first call is waiting for (`None` inside if it could
    /// not be started).
    urgent: OnceLock<Option<Sender<CompileJob>>>,
    /// The tier manager once started (`None` inside if no thread could be started).
    pub tier_manager: OnceLock<Option<TierManager>>,
    types: Mutex<TypeRegistry>,
    trampolines: Mutex<HashMap<u32, Arc<Trampolines>>>,
    pub stats: StatsCounters,
}

impl EngineInner {
    /// The tier that compiles modules as they stream in.
    pub(crate) fn first_tier(&self) -> &Arc<dyn Tier> {
        match (self.config.tier, &self.optimizing) {
            (TierMode::Optimized, Some(t)) => t,
            _ => &self.baseline,
        }
    }

    /// Counters of the tier that compiles modules as they stream in.
    pub(crate) fn first_tier_stats(&self) -> &crate::tiering::TierCounters {
        match self.config.tier {
            TierMode::Optimized => &self.stats.optimized,
            _ => &self.stats.baseline,
        }
    }
}

#[derive(Default)]
struct TypeRegistry {
    ids: HashMap<FuncType, u32>,
    types: Vec<FuncType>,
}

/// A compilation environment shared by modules and stores. Cheap to clone.
#[derive(Clone)]
pub struct Engine(pub(crate) Arc<EngineInner>);

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.0.config)
            .finish()
    }
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new(&Config::default()).expect("the default configuration is valid")
    }
}

impl Engine {
    /// An engine with the given settings.
    pub fn new(config: &Config) -> Result<Engine> {
        let options = CraneliftOptions {
            verify: config.verify,
            // OSR transfers only where there is an optimizing tier to transfer to.
            osr: config.tier == TierMode::Tiered,
            regalloc: config.baseline_regalloc,
            ..CraneliftOptions::default()
        };
        let baseline: Arc<dyn Tier> = Arc::new(
            CraneliftTier::new(options)
                .map_err(|e| anyhow::anyhow!("cannot set up the baseline tier: {e}"))?,
        );
        let optimizing: Option<Arc<dyn Tier>> = match config.tier {
            TierMode::Baseline => None,
            TierMode::Optimized | TierMode::Tiered => Some(Arc::new(
                LlvmTier::new(LlvmOptions {
                    pipeline: config.llvm_pipeline,
                    prefetch_indirect: config.llvm_prefetch,
                })
                .map_err(|e| anyhow::anyhow!("cannot set up the optimizing tier: {e}"))?,
            )),
        };
        static NEXT_ENGINE_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Ok(Engine(Arc::new(EngineInner {
            id: NEXT_ENGINE_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            config: config.clone(),
            baseline,
            optimizing,
            pool: OnceLock::new(),
            urgent: OnceLock::new(),
            tier_manager: OnceLock::new(),
            types: Mutex::new(TypeRegistry::default()),
            trampolines: Mutex::new(HashMap::new()),
            stats: StatsCounters::default(),
        })))
    }

    /// The engine's settings.
    pub fn config(&self) -> &Config {
        &self.0.config
    }

    /// A snapshot of the engine's compilation and tier-up figures: per tier, functions
    /// compiled, code bytes and compile time; tier-ups, OSR entries taken, and the time from
    /// tier-up request to install.
    pub fn stats(&self) -> Stats {
        self.0.stats.snapshot()
    }

    /// Waits until every tier-up requested so far has been compiled and installed (or has
    /// failed), or until `timeout` passes; returns whether the queue is empty. The program
    /// never needs this (tier-up happens behind its back); tests and benchmarks use it to
    /// observe the optimized code deterministically.
    pub fn wait_for_tier_ups(&self, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match self.0.tier_manager.get().and_then(Option::as_ref) {
                None => return true,
                Some(m) if m.idle() => return true,
                Some(_) => {}
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    }

    /// Stops tier-up: queued requests are dropped and no new ones are compiled; waits up to
    /// `timeout` for a compile already under way to finish and returns whether it did. Call it
    /// before the process exits (the `spate` command does), so no background thread is inside
    /// LLVM while the process's static destructors run. Code already installed keeps running.
    pub fn stop_tier_ups(&self, timeout: std::time::Duration) -> bool {
        match self.0.tier_manager.get().and_then(Option::as_ref) {
            Some(m) => {
                m.cancel();
                self.wait_for_tier_ups(timeout)
            }
            None => true,
        }
    }

    /// The tier manager, started on the first tier-up request (tiered mode only).
    pub(crate) fn tier_manager(&self) -> Option<&TierManager> {
        if self.0.config.tier != TierMode::Tiered {
            return None;
        }
        let tier = self.0.optimizing.as_ref()?;
        self.0
            .tier_manager
            .get_or_init(|| {
                TierManager::start(
                    Arc::downgrade(&self.0),
                    tier.clone(),
                    self.0.config.tier_up_threads,
                )
            })
            .as_ref()
    }

    /// Whether two handles are the same engine.
    pub fn same(a: &Engine, b: &Engine) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }

    /// The canonical id of a signature (equal types get equal ids).
    pub(crate) fn type_id(&self, ty: &FuncType) -> u32 {
        let mut reg = self.0.types.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&id) = reg.ids.get(ty) {
            return id;
        }
        let id = reg.types.len() as u32;
        reg.types.push(ty.clone());
        reg.ids.insert(ty.clone(), id);
        id
    }

    /// The signature with canonical id `id`.
    pub(crate) fn func_type(&self, id: u32) -> FuncType {
        self.0.types.lock().unwrap_or_else(|e| e.into_inner()).types[id as usize].clone()
    }

    /// The trampolines for signature `id`, compiled on first use.
    pub(crate) fn trampolines(&self, id: u32) -> Result<Arc<Trampolines>> {
        if let Some(t) = self
            .0
            .trampolines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
        {
            return Ok(t.clone());
        }
        let ty = self.func_type(id).to_wasmparser();
        let mut compiler = self.0.baseline.new_compiler();
        let h2w = compiler
            .host_to_wasm_trampoline(&ty)
            .context("compiling a host-to-wasm trampoline")?;
        let w2h = compiler
            .wasm_to_host_trampoline(&ty)
            .context("compiling a wasm-to-host trampoline")?;
        let code = CodeMemory::new(vec![(u32::MAX, h2w), (u32::MAX, w2h)])
            .context("allocating code memory")?;
        // SAFETY: function 0 of `code` was compiled as a host-to-wasm trampoline with exactly the
        // `HostToWasmTrampoline` signature; `code` lives as long as the returned `Trampolines`.
        let host_to_wasm = unsafe {
            std::mem::transmute::<*const u8, spate_tiers::abi::HostToWasmTrampoline>(
                code.function_ptr(0),
            )
        };
        let wasm_to_host = code.function_ptr(1);
        let t = Arc::new(Trampolines {
            _code: code,
            host_to_wasm,
            wasm_to_host,
        });
        self.0
            .trampolines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id)
            .or_insert(t.clone());
        Ok(t)
    }

    /// Sends a job to the compile pool, starting the pool's threads on first use. Pool threads
    /// run at a lower scheduling priority than the program and the urgent compile thread, so
    /// background compilation of a streamed module does not slow down code that already runs.
    pub(crate) fn submit(&self, job: CompileJob) {
        let tx = self.0.pool.get_or_init(|| {
            let (tx, rx) = crossbeam_channel::unbounded::<CompileJob>();
            for i in 0..self.0.config.compile_threads {
                spawn_compile_thread(self, format!("spate-compile-{i}"), rx.clone(), true)
                    .expect("spawning a compile thread");
            }
            tx
        });
        // The pool's threads only stop when the sender is dropped, which happens with the engine.
        let _ = tx.send(job);
    }

    /// Runs `f` with a first-tier compiler of this engine kept by the calling thread (made on
    /// first use; a thread keeps one, for the engine it compiled for last).
    pub(crate) fn with_thread_compiler<R>(
        &self,
        f: impl FnOnce(&mut dyn spate_tiers::FunctionCompiler) -> R,
    ) -> R {
        type Cached = Option<(u64, Box<dyn spate_tiers::FunctionCompiler>)>;
        thread_local! {
            static COMPILER: std::cell::RefCell<Cached> = const { std::cell::RefCell::new(None) };
        }
        // Taken out while it runs, so a (never expected) nested use makes its own.
        let cached = COMPILER.with(|c| c.borrow_mut().take());
        let mut compiler = match cached {
            Some((id, c)) if id == self.0.id => c,
            _ => self.0.first_tier().new_compiler(),
        };
        let r = f(&mut *compiler);
        COMPILER.with(|c| *c.borrow_mut() = Some((self.0.id, compiler)));
        r
    }

    /// Runs `job` on the urgent compile thread (started on first use) and waits for it; runs
    /// it on the calling thread if that thread cannot be started.
    pub(crate) fn compile_urgent(&self, job: CompileJob) {
        let tx = self.0.urgent.get_or_init(|| {
            let (tx, rx) = crossbeam_channel::unbounded::<CompileJob>();
            spawn_compile_thread(self, "spate-compile-urgent".into(), rx, false).map(|_| tx)
        });
        let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(1);
        let job: CompileJob = Box::new(move |compiler| {
            job(compiler);
            let _ = done_tx.send(());
        });
        match tx {
            Some(tx) => {
                if let Err(crossbeam_channel::SendError(job)) = tx.send(job) {
                    job(&mut *self.0.first_tier().new_compiler());
                }
            }
            None => job(&mut *self.0.first_tier().new_compiler()),
        }
        let _ = done_rx.recv();
    }
}

/// Starts a thread that runs compile jobs from `rx` with its own first-tier compiler until the
/// channel closes; `background` lowers its scheduling priority.
fn spawn_compile_thread(
    engine: &Engine,
    name: String,
    rx: Receiver<CompileJob>,
    background: bool,
) -> Option<()> {
    let tier = engine.0.first_tier().clone();
    std::thread::Builder::new()
        .name(name)
        .stack_size(crate::tiering::COMPILE_THREAD_STACK)
        .spawn(move || {
            if background {
                lower_thread_priority();
            }
            let mut compiler = tier.new_compiler();
            while let Ok(job) = rx.recv() {
                job(&mut *compiler);
            }
        })
        .ok()
        .map(|_| ())
}

/// Makes the calling thread yield to normal-priority threads (nice +5); best effort.
fn lower_thread_priority() {
    // SAFETY: gettid has no preconditions; setpriority on our own thread id only changes this
    // thread's nice value (Linux applies PRIO_PROCESS to a single thread when given a tid).
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 5);
    }
}
