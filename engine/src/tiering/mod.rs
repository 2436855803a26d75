//! The tier manager: hotness, the background compile queue, hot swap and on-stack replacement.
//!
//! Baseline code counts calls and loop iterations per function against a budget (see
//! [`Config::tier_up_threshold`](crate::Config::tier_up_threshold)). When the budget runs out it
//! calls a libcall:
//!
//! * `TierUp` at function entry (and at loop headers entered with values on the operand stack):
//!   the function's heat goes up and, the first time, a `Request` goes onto the engine's
//!   crossbeam channel;
//! * `LoopTierUp` at the header of a loop entered with an empty operand stack: the same, and the
//!   request also asks for an on-stack-replacement (OSR) entry; once it is installed the libcall
//!   returns it and the baseline code continues the function there. Most entries are *region*
//!   entries, the code of one loop nest alone, which hand the function back to the baseline
//!   when the program leaves the nest; the first one is for the nest the program is predicted
//!   to be in by the time it is compiled. The entry taken is preferably one of a loop enclosing
//!   the hot loop (see `osr_entry`): in it the inner loops start from their own initial
//!   values, which the optimizer can reason about, instead of values loaded from the locals
//!   array. The runtime arms such a loop (the function's word in the middle third of
//!   `ModuleInner::budgets` becomes `loop + 1`), and that loop's header takes the entry each
//!   time it comes round while the word names it.
//!
//! Background threads (owned by the engine, started on the first request; each keeps its own
//! optimizing compiler and so its own LLVM context) drain the channel into a shared pending set
//! and always take the hottest request first. The optimized code is placed in its own code
//! memory, owned by the module, and published with one release-store into the function's entry
//! (`ModuleInner::entries`). Direct calls, `call_indirect` (whose `VMFuncRef`s point at the same
//! entry) and calls from the host all load the entry on every call, so they reach the new code
//! on their next call; frames already running baseline code finish in it (or leave it through
//! OSR). Nothing stops the program and the call path takes no lock.
//!
//! The module's old code is never freed while the module lives: a thread may still be running
//! it.

use crate::code::CodeMemory;
use crate::engine::{Engine, EngineInner};
use crate::module::ModuleInner;
use crossbeam_channel::{Receiver, Sender};
use spate_tiers::loops::{self, loop_chain};
use spate_tiers::{CompileError, FunctionCompiler, Tier};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};
use wasmparser::{BinaryReader, FunctionBody};

mod stats;
pub(crate) use stats::{CompileTime, CompileTimer, StatsCounters, TierCounters};
pub use stats::{Stats, TierStats};

/// With the environment variable `SPATE_TIER_TRACE` set, the tier manager writes one line per
/// event (requests, compiles, OSR entries taken) to standard error, stamped with milliseconds
/// since the first event: a diagnostic for tuning tier-up, not a stable format.
macro_rules! trace {
    ($($arg:tt)*) => {
        if let Some(t0) = trace_start() {
            eprintln!("[tier {:8.2} ms] {}", t0.elapsed().as_secs_f64() * 1e3, format_args!($($arg)*));
        }
    };
}

/// When tracing started, if `SPATE_TIER_TRACE` is set.
fn trace_start() -> Option<Instant> {
    static START: OnceLock<Option<Instant>> = OnceLock::new();
    *START.get_or_init(|| std::env::var_os("SPATE_TIER_TRACE").map(|_| Instant::now()))
}

/// Stack size of compile threads: LLVM's passes recurse over large functions.
pub(crate) const COMPILE_THREAD_STACK: usize = 32 << 20;

const BASELINE: u8 = 0;
const QUEUED: u8 = 1;
const COMPILING: u8 = 2;
const OPTIMIZED: u8 = 3;
const FAILED: u8 = 4;

/// The wasm bytes of one function body, kept for recompilation.
pub(crate) struct Body {
    /// Byte offset of the body in the module.
    pub offset: u64,
    /// The body's bytes.
    pub bytes: Arc<[u8]>,
}

/// Why a loop's OSR entry was requested.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OsrWhy {
    /// The loop itself is hot.
    Own,
    /// A loop nested in it is hot.
    ForInner,
}

impl OsrWhy {
    /// Why loop `l`'s entry is wanted while loop `hot` is the hot one.
    fn of(l: u32, hot: u32) -> OsrWhy {
        if l == hot {
            OsrWhy::Own
        } else {
            OsrWhy::ForInner
        }
    }
}

/// What is known about one loop's OSR entry.
#[derive(Clone, Copy)]
enum OsrState {
    Pending(OsrWhy),
    Ready {
        why: OsrWhy,
        entry: *const u8,
        /// Whether the entry may be taken more than once in one call of the function: a region
        /// entry (which returns to the baseline when its loop ends) of a loop nested in another
        /// loop.
        reentrant: bool,
        /// When the entry was installed.
        at: Instant,
        /// Since when the loop has been armed for a hot inner loop, waiting for its header to
        /// come round; cleared when the entry is taken.
        armed_since: Option<Instant>,
        /// How many times the entry was taken at this loop.
        taken: u32,
    },
    Failed,
}

/// How long a hot inner loop waits, once the entry of an enclosing loop is installed and armed,
/// for that loop's header to come round before the entry of the next loop inward is compiled
/// too (in case the enclosing loop iterates rarely). Until then the compile thread stays free.
/// The wait counts from the later of the install and the first arming since the entry was
/// last taken, so a function called again, whose entry was installed long ago, still waits.
const SPECULATE_AFTER: Duration = Duration::from_millis(10);

impl OsrState {
    /// If the entry is installed: counts it taken at its loop and returns it, with its recorded
    /// reason or `why`.
    fn take(&mut self, why: Option<OsrWhy>) -> Option<Taken> {
        let OsrState::Ready {
            entry,
            why: recorded,
            reentrant,
            armed_since,
            taken,
            ..
        } = self
        else {
            return None;
        };
        *armed_since = None;
        *taken = taken.saturating_add(1);
        Some(Taken {
            entry: *entry,
            why: why.unwrap_or(*recorded),
            reentrant: *reentrant,
        })
    }
}

/// How many times a region entry of one phase of a loop over phases must have been taken (the
/// phase loop has come round that often since it was installed) before another phase getting
/// hot asks for the region of the phase loop itself (see [`osr_entry`]). One take is a loop
/// over a few long phases (two solves of a solver, say), where the phase's own regions serve
/// well; more are short phases repeated (rounds of a sort), where one region per phase would
/// leave much of every round in the baseline while they compile one after another. (At one
/// take, CG's second solve compiled its solve loop's region for nothing: its kernel's region
/// was taken again first, and the phase-loop region was only taken by the last short loop.
/// Sort's phase-loop region came no sooner, since the phases' own regions held the compile
/// thread. That was with two solves; with the six CG has run since session 16, its solve loop's
/// region becomes due at the end of the second solve and runs the last three.)
const PHASE_ROUNDS: u32 = 2;

// SAFETY: `Ready` holds a code pointer into immutable executable memory owned by the module.
unsafe impl Send for OsrState {}

/// Per-module tier-up state (present when the engine runs in tiered mode).
pub(crate) struct ModuleTiering {
    bodies: Box<[Body]>,
    state: Box<[AtomicU8]>,
    heat: Box<[AtomicU32]>,
    osr: Mutex<HashMap<(u32, u32), OsrState>>,
    /// Whether an OSR entry of the function is being compiled: one at a time per function, since
    /// a function that runs one loop nest after another would otherwise queue an entry for each
    /// loop it passes while the first compiles, and only one of them is ever taken.
    osr_busy: Box<[AtomicBool]>,
    /// Whether the function's first OSR entry (the predicted nest's region, or the direct entry
    /// serving the loops of [`direct_entry_loops`]) was asked for.
    osr_direct: Box<[AtomicBool]>,
    /// The function's call count (its word in the third part of `ModuleInner::budgets`, which
    /// baseline code with OSR transfers bumps at every call) when it first took an OSR entry;
    /// `u64::MAX` until then. An entry taken once the count has moved on is taken in a later
    /// call, and the function's own optimized code is queued for the calls to come.
    osr_first_calls: Box<[AtomicU64]>,
    /// Each function's loop nest (see [`loop_parents`]), read once when first needed.
    parents: Box<[OnceLock<Vec<Option<u32>>>]>,
    /// Each function's [`direct_entry_loops`], found once when first needed.
    served: Box<[OnceLock<Vec<u32>>]>,
    /// Optimized code, kept alive with the module.
    code: Mutex<Vec<CodeMemory>>,
}

impl ModuleTiering {
    /// Tier-up state for a module whose defined functions have these bodies.
    pub(crate) fn new(bodies: Vec<Body>) -> ModuleTiering {
        let n = bodies.len();
        ModuleTiering {
            bodies: bodies.into_boxed_slice(),
            state: (0..n).map(|_| AtomicU8::new(BASELINE)).collect(),
            heat: (0..n).map(|_| AtomicU32::new(0)).collect(),
            osr: Mutex::new(HashMap::new()),
            osr_busy: (0..n).map(|_| AtomicBool::new(false)).collect(),
            osr_direct: (0..n).map(|_| AtomicBool::new(false)).collect(),
            osr_first_calls: (0..n).map(|_| AtomicU64::new(u64::MAX)).collect(),
            parents: (0..n).map(|_| OnceLock::new()).collect(),
            served: (0..n).map(|_| OnceLock::new()).collect(),
            code: Mutex::new(Vec::new()),
        }
    }

    /// Number of functions whose optimized code is installed.
    pub(crate) fn optimized_functions(&self) -> usize {
        self.state
            .iter()
            .filter(|s| s.load(Ordering::Relaxed) == OPTIMIZED)
            .count()
    }

    /// Whether defined function `def_index` runs optimized code now.
    pub(crate) fn is_optimized(&self, def_index: u32) -> bool {
        self.state[def_index as usize].load(Ordering::Acquire) == OPTIMIZED
    }

    /// Defined function `def`'s loop nest ([`loop_parents`]), read once when first needed.
    fn loop_nest(&self, def: usize) -> &[Option<u32>] {
        self.parents[def].get_or_init(|| loop_parents(&self.bodies[def]))
    }

    /// Defined function `def`'s [`direct_entry_loops`], found once when first needed.
    fn served_loops(&self, def: usize) -> &[u32] {
        self.served[def].get_or_init(|| direct_entry_loops(self.loop_nest(def)))
    }
}

/// What a request asks the optimizing tier for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Job {
    /// The function's own code, installed in its entry.
    Function,
    /// A region entry of loop `region` (see `FunctionCompiler::compile_osr_region`), which
    /// leaves to the baseline when the loop ends, entered at the headers of `loops` (`region`,
    /// or for a loop over phases, `region` and the phases' loops); where the tier declines a
    /// region (exits that carry values), the whole-function entry `fallback`. `checked`, one
    /// of `loops`: the tier may specialise the entry on the values that loop starts from.
    Osr {
        region: u32,
        loops: Vec<u32>,
        checked: Option<u32>,
        fallback: Fallback,
    },
    /// One OSR entry serving several loops, each entered directly; `checked` is the loop the
    /// entry is expected to be taken at ([`next_loop_nest`]), which the tier may specialise
    /// its way into (see `FunctionCompiler::compile_osr_entries`).
    OsrDirect {
        loops: Vec<u32>,
        checked: Option<u32>,
    },
}

impl Job {
    /// The loops an OSR job may settle: its loops and its fallback's (only its own loops are
    /// recorded as under way when it is sent).
    fn asked(&self) -> Vec<u32> {
        let mut asked = match self {
            Job::Function => Vec::new(),
            Job::Osr {
                loops, fallback, ..
            } => {
                let mut asked = loops.clone();
                match fallback {
                    &Fallback::Through(l) => asked.push(l),
                    Fallback::Direct { loops, .. } => asked.extend(loops),
                }
                asked
            }
            Job::OsrDirect { loops, .. } => loops.clone(),
        };
        asked.sort_unstable();
        asked.dedup();
        asked
    }

    /// The region entry of loop `l` alone; where it is declined, the whole-function entry of
    /// `l` reached through the headers of the loops enclosing it (so those stay ordinary loops
    /// in the optimized code).
    fn region(l: u32, checked: bool) -> Job {
        Job::Osr {
            region: l,
            loops: vec![l],
            checked: checked.then_some(l),
            fallback: Fallback::Through(l),
        }
    }
}

/// The whole-function OSR entry compiled where the tier declines a region entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fallback {
    /// The entry of one loop, reached through the headers of the loops enclosing it (see
    /// `FunctionCompiler::compile_osr_entry`).
    Through(u32),
    /// The direct entry of these loops (see [`Job::OsrDirect`]).
    Direct {
        loops: Vec<u32>,
        checked: Option<u32>,
    },
}

/// A request to compile one function or OSR entry with the optimizing tier.
pub(crate) struct Request {
    module: Weak<ModuleInner>,
    def_index: u32,
    job: Job,
    requested: Instant,
    seq: u64,
}

/// The engine's background compile threads and their queue.
pub(crate) struct TierManager {
    tx: Sender<Request>,
    /// Requests taken off the channel but not started.
    pending: Arc<Mutex<Vec<Request>>>,
    /// Requests sent and not yet finished (for [`Engine::wait_for_tier_ups`]).
    outstanding: Arc<AtomicUsize>,
    /// Set by [`TierManager::cancel`]: queued requests are dropped unstarted.
    cancelled: Arc<AtomicBool>,
    seq: AtomicU64,
}

impl TierManager {
    /// Starts `threads` background compile threads for `tier`.
    pub(crate) fn start(
        engine: Weak<EngineInner>,
        tier: Arc<dyn Tier>,
        threads: usize,
    ) -> Option<Self> {
        let (tx, rx) = crossbeam_channel::unbounded::<Request>();
        let pending = Arc::new(Mutex::new(Vec::new()));
        let outstanding = Arc::new(AtomicUsize::new(0));
        let cancelled = Arc::new(AtomicBool::new(false));
        let mut started = 0;
        for i in 0..threads.max(1) {
            let rx: Receiver<Request> = rx.clone();
            let pending = pending.clone();
            let outstanding = outstanding.clone();
            let tier = tier.clone();
            let engine = engine.clone();
            let cancelled = cancelled.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("spate-tier-up-{i}"))
                .stack_size(COMPILE_THREAD_STACK)
                .spawn(move || {
                    // Created at the first request, so the thread is only ever inside LLVM
                    // while a request is counted as outstanding.
                    let mut compiler: Option<Box<dyn FunctionCompiler>> = None;
                    while let Some(req) = next_request(&rx, &pending) {
                        // Counts the request done even if the compile panics past `guarded`.
                        let _done = Done(&outstanding);
                        if !cancelled.load(Ordering::Acquire)
                            && let Some(engine) = engine.upgrade()
                        {
                            let compiler = compiler.get_or_insert_with(|| tier.new_compiler());
                            run(&engine, &mut **compiler, req);
                        } else {
                            abandon(req);
                        }
                    }
                });
            // A thread that cannot be started (a process or memory limit) only costs
            // parallelism; with none, tier-up is off and the program stays on the baseline.
            if spawned.is_ok() {
                started += 1;
            }
        }
        (started > 0).then(|| TierManager {
            tx,
            pending,
            outstanding,
            cancelled,
            seq: AtomicU64::new(0),
        })
    }

    /// Queues `job`; false if no compile thread is left to take it.
    fn send(&self, module: &Arc<ModuleInner>, def_index: u32, job: Job) -> bool {
        trace!("def {def_index}: request {job:?}");
        self.outstanding.fetch_add(1, Ordering::AcqRel);
        let req = Request {
            module: Arc::downgrade(module),
            def_index,
            job,
            requested: Instant::now(),
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
        };
        if self.tx.send(req).is_err() {
            self.outstanding.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Drops every queued request and every later one; a compile already under way finishes.
    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
    }

    /// Whether every request sent so far has been handled.
    pub(crate) fn idle(&self) -> bool {
        self.outstanding.load(Ordering::Acquire) == 0
            && self
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty()
    }
}

/// Marks one request handled when dropped.
struct Done<'a>(&'a AtomicUsize);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The next request to work on: everything waiting on the channel joins the pending set, and the
/// hottest pending request (then the oldest) is taken. Blocks while there is nothing to do;
/// `None` once the engine is gone.
fn next_request(rx: &Receiver<Request>, pending: &Mutex<Vec<Request>>) -> Option<Request> {
    loop {
        {
            let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
            p.extend(rx.try_iter());
            if let Some(i) = hottest(&p) {
                return Some(p.swap_remove(i));
            }
        }
        let req = rx.recv().ok()?;
        pending.lock().unwrap_or_else(|e| e.into_inner()).push(req);
    }
}

/// Index of the request with the most heat (OSR requests first: a loop is running now), oldest
/// among equals. Requests whose module is gone count as hottest, so they are dropped quickly.
fn hottest(p: &[Request]) -> Option<usize> {
    pick(p.iter().map(|r| {
        let heat = match r.module.upgrade() {
            Some(m) => m
                .tiering
                .as_ref()
                .map_or(0, |t| t.heat[r.def_index as usize].load(Ordering::Relaxed)),
            None => u32::MAX,
        };
        Priority {
            osr: r.job != Job::Function,
            heat,
            seq: r.seq,
        }
    }))
}

/// What orders pending requests.
#[derive(Debug, Clone, Copy)]
struct Priority {
    osr: bool,
    heat: u32,
    seq: u64,
}

/// Index of the highest priority: OSR before plain tier-up, then more heat, then older.
fn pick(priorities: impl Iterator<Item = Priority>) -> Option<usize> {
    priorities
        .enumerate()
        .max_by_key(|(_, p)| (p.osr, p.heat, std::cmp::Reverse(p.seq)))
        .map(|(i, _)| i)
}

/// Handles one request on a background thread.
fn run(engine: &Arc<EngineInner>, compiler: &mut dyn FunctionCompiler, req: Request) {
    let Some(module) = req.module.upgrade() else {
        return;
    };
    let Some(tiering) = module.tiering.as_ref() else {
        return;
    };
    let def = req.def_index as usize;
    let func_index = module.info.num_imported_functions + req.def_index;
    let body = &tiering.bodies[def];
    let reader = FunctionBody::new(BinaryReader::new(&body.bytes, body.offset));
    let stats = &engine.stats;

    let (asked, r) = match &req.job {
        Job::Function => {
            compile_function_job(engine, compiler, &module, tiering, &req, &reader);
            return;
        }
        Job::Osr {
            region,
            loops,
            checked,
            fallback,
        } => {
            let started = CompileTimer::start();
            let info = &module.info;
            // The loops whose state the outcome settles: the region's, and where the fallback
            // is compiled, the fallback's too.
            let mut asked = loops.clone();
            let r = match guarded(|| {
                compiler.compile_osr_region(info, func_index, &reader, *region, loops, *checked)
            }) {
                Ok((f, served)) => Ok((f, served, started.stop(), true)),
                Err(e) if e.kind == spate_tiers::CompileErrorKind::Unsupported => {
                    trace!("f{func_index} loop {region}: no region entry ({e})");
                    asked = req.job.asked();
                    match fallback {
                        &Fallback::Through(l) => {
                            guarded(|| compiler.compile_osr_entry(info, func_index, &reader, l))
                                .map(|f| (f, vec![l], started.stop(), false))
                        }
                        Fallback::Direct { loops, checked } => guarded(|| {
                            compiler.compile_osr_entries(info, func_index, &reader, loops, *checked)
                        })
                        .map(|(f, served)| (f, served, started.stop(), false)),
                    }
                }
                Err(e) => Err(e),
            };
            (asked, r)
        }
        Job::OsrDirect { loops, checked } => (loops.clone(), {
            let started = CompileTimer::start();
            guarded(|| {
                compiler.compile_osr_entries(&module.info, func_index, &reader, loops, *checked)
            })
            .map(|(f, served)| (f, served, started.stop(), false))
        }),
    };
    trace!(
        "f{func_index} {:?}: OSR entry {} ({:.1} ms after the request)",
        req.job,
        match &r {
            Ok((_, served, t, region)) => format!(
                "{}for loops {served:?} compiled in {:.1} ms ({:.1} ms on the CPU)",
                if *region { "(region) " } else { "" },
                t.wall.as_secs_f64() * 1e3,
                t.cpu.as_secs_f64() * 1e3
            ),
            Err(e) => format!("failed: {e}"),
        },
        req.requested.elapsed().as_secs_f64() * 1e3
    );
    let installed = r.and_then(|(f, served, elapsed, region)| {
        let nested = |l: u32| {
            tiering
                .loop_nest(def)
                .get(l as usize)
                .is_some_and(Option::is_some)
        };
        let reentrant = region && served.iter().all(|&l| nested(l));
        install(tiering, func_index, f)
            .map(|(ptr, bytes)| (ptr, bytes, served, elapsed, region, reentrant))
    });
    let mut osr = tiering.osr.lock().unwrap_or_else(|e| e.into_inner());
    match installed {
        Ok((ptr, bytes, served, elapsed, region, reentrant)) => {
            stats.optimized.record_osr(bytes, elapsed);
            stats.osr_compiled.fetch_add(1, Ordering::Relaxed);
            stats.record_install_latency(req.requested.elapsed());
            let at = Instant::now();
            for &l in &asked {
                let state = if served.contains(&l) {
                    let why = match osr.get(&(req.def_index, l)) {
                        Some(OsrState::Pending(why)) => *why,
                        _ => OsrWhy::Own,
                    };
                    OsrState::Ready {
                        why,
                        entry: ptr,
                        reentrant,
                        at,
                        armed_since: None,
                        taken: 0,
                    }
                } else {
                    OsrState::Failed
                };
                osr.insert((req.def_index, l), state);
            }
            match &req.job {
                // The loop's header takes the entry at its next iteration, whatever its budget,
                // and (while nothing else is armed) every time it comes round again: a region
                // entry ends with its loop, which may run again later. (An entry serving several
                // loops is armed by the next budget check that finds it: which of its loops to
                // arm depends on where the program is by then.)
                Job::Osr { loops, .. } if served.len() == 1 && (region || loops == &served) => {
                    module.budgets[tiering.bodies.len() + def]
                        .store(served[0].saturating_add(1) as i32, Ordering::Relaxed);
                }
                _ => {}
            }
        }
        Err(e) => {
            // A loop the tier declines (loop parameters, say) is not a failure.
            if e.kind != spate_tiers::CompileErrorKind::Unsupported {
                stats.record_failure(func_index, &e);
            }
            for &l in &asked {
                osr.insert((req.def_index, l), OsrState::Failed);
            }
        }
    }
    drop(osr);
    tiering.osr_busy[def].store(false, Ordering::Release);
}

/// Drops a request unstarted (the manager was stopped): the loops of an OSR request are marked
/// failed, so their headers stop asking, and the function may ask for other entries.
fn abandon(req: Request) {
    let Some(module) = req.module.upgrade() else {
        return;
    };
    let Some(tiering) = module.tiering.as_ref() else {
        return;
    };
    if req.job != Job::Function {
        give_up(tiering, req.def_index, req.job.asked());
    }
}

/// Compiles and installs the function's own optimized code, unless another request already
/// compiled it (or is compiling it).
fn compile_function_job(
    engine: &Arc<EngineInner>,
    compiler: &mut dyn FunctionCompiler,
    module: &Arc<ModuleInner>,
    tiering: &ModuleTiering,
    req: &Request,
    reader: &FunctionBody<'_>,
) {
    let def = req.def_index as usize;
    let func_index = module.info.num_imported_functions + req.def_index;
    let stats = &engine.stats;
    let claimed = [BASELINE, QUEUED].into_iter().any(|from| {
        tiering.state[def]
            .compare_exchange(from, COMPILING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    });
    if !claimed {
        return;
    }
    let started = CompileTimer::start();
    let r = guarded(|| compiler.compile_function(&module.info, func_index, reader, None));
    let elapsed = started.stop();
    trace!(
        "f{func_index}: function compiled in {:.1} ms ({:.1} ms on the CPU, {:.1} ms after the \
         request){}",
        elapsed.wall.as_secs_f64() * 1e3,
        elapsed.cpu.as_secs_f64() * 1e3,
        req.requested.elapsed().as_secs_f64() * 1e3,
        if r.is_err() { ", failed" } else { "" }
    );
    match r.and_then(|f| install(tiering, func_index, f)) {
        Ok((ptr, bytes)) => {
            module.entries[def].store(ptr as *mut u8, Ordering::Release);
            tiering.state[def].store(OPTIMIZED, Ordering::Release);
            stats.optimized.record(bytes, elapsed);
            stats.tier_ups.fetch_add(1, Ordering::Relaxed);
            stats.record_install_latency(req.requested.elapsed());
        }
        Err(e) => {
            tiering.state[def].store(FAILED, Ordering::Release);
            stats.record_failure(func_index, &e);
        }
    }
}

/// Runs a compiler call, turning a panic into an error so a compiler bug costs one function its
/// tier-up, not the program.
fn guarded<T>(f: impl FnOnce() -> Result<T, CompileError>) -> Result<T, CompileError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(CompileError::codegen(
            "internal compiler error in the optimizing tier",
        ))
    })
}

/// Places optimized code in new code memory owned by the module; returns its entry and size.
fn install(
    tiering: &ModuleTiering,
    func_index: u32,
    f: spate_tiers::CompiledFunction,
) -> Result<(*const u8, usize), CompileError> {
    let bytes = f.code.len();
    let code = CodeMemory::new(vec![(func_index, f)])
        .map_err(|e| CompileError::codegen(format!("cannot allocate code memory: {e}")))?;
    let ptr = code.function_ptr(0);
    tiering
        .code
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(code);
    Ok((ptr, bytes))
}

/// The `TierUp` libcall's work: one more unit of heat for the function, and a request the first
/// time.
pub(crate) fn request(engine: &Engine, module: &Arc<ModuleInner>, def_index: u32) {
    let Some(tiering) = module.tiering.as_ref() else {
        return;
    };
    tiering.heat[def_index as usize].fetch_add(1, Ordering::Relaxed);
    if tiering.state[def_index as usize]
        .compare_exchange(BASELINE, QUEUED, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok()
        && let Some(m) = engine.tier_manager()
    {
        // A request no thread takes leaves the function queued, that is on the baseline.
        let _ = m.send(module, def_index, Job::Function);
    }
}

/// The `LoopTierUp` libcall's work at the header of loop `loop_index` of function `def_index`,
/// whose outermost OSR-eligible enclosing loop is `outer_loop` (or `loop_index` itself):
/// the installed OSR entry to continue in, or null after making sure one is on its way.
/// `exhausted`: the budget ran out (otherwise the call comes from the function's OSR-armed
/// word, which names this loop).
///
/// The first time a function's budget runs out in a loop, the loop nest the program is
/// predicted to be in once an entry is compiled is chosen among the loops of
/// [`direct_entry_loops`] (every outermost loop of the function, and the loops directly inside
/// an outermost loop that holds several: a loop over phases, rounds or solves, whose header
/// comes round rarely) by [`next_loop_nest`], so the first compile is rarely wasted on a nest
/// that has finished (such as the set-up loops before a kernel). Its region entry is requested
/// ([`Job::Osr`]: the nest alone, handing back to the baseline when it ends; where the tier
/// declines it, the direct entry below); when the predicted loop holds others of the set, one
/// *direct* entry of the whole function serving all of them is requested instead.
///
/// At each later call the loop itself, or else the innermost enclosing loop, with an installed
/// entry is chosen: the loop's own entry is taken at once; an enclosing loop is armed (the
/// function's word in the middle third of `ModuleInner::budgets` becomes `loop + 1`) and its
/// header takes the entry the next time round. If that has not happened [`SPECULATE_AFTER`]
/// after the loop was armed (and the entry installed), the entry of the next loop inward is
/// compiled (its region entry, or where the tier declines one, an entry of the whole function
/// reached through the headers of the loops enclosing it; see [`Job::Osr`]), in case
/// the enclosing loop iterates rarely; once installed, it is the innermost and is chosen
/// instead. Loops on the way without any entry (none installed or under way) get one the same
/// way, outermost first (but a nest inside a loop over phases before the phase loop). When the
/// hot loop is a phase of a loop over phases one of whose phases' regions has been taken
/// [`PHASE_ROUNDS`] times, the region of the phase loop itself is requested instead (see
/// [`phase_loop_region`]; also when such a region is taken, in [`take_osr_entry`]): the phases
/// keep getting hot one after another, and one region per phase would compile them one by one
/// while each round runs partly in the baseline.
pub(crate) fn osr_entry(
    engine: &Engine,
    module: &Arc<ModuleInner>,
    def_index: u32,
    loop_index: u32,
    outer_loop: u32,
    exhausted: bool,
) -> *const u8 {
    let Some(tiering) = module.tiering.as_ref() else {
        return std::ptr::null();
    };
    let def = def_index as usize;
    let armed = &module.budgets[tiering.bodies.len() + def];
    let mut osr = tiering.osr.lock().unwrap_or_else(|e| e.into_inner());
    if !exhausted {
        // Armed for this loop: its entry is installed.
        if let Some(state) = osr.get_mut(&(def_index, loop_index))
            && let Some(taken) = state.take(None)
        {
            return take_osr_entry(engine, module, tiering, osr, def_index, taken, loop_index);
        }
        let _ = armed.compare_exchange(
            loop_index.saturating_add(1) as i32,
            0,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        return std::ptr::null();
    }
    tiering.heat[def].fetch_add(1, Ordering::Relaxed);
    if engine.0.config.osr_at_every_loop {
        return osr_entry_now(engine, module, tiering, osr, def_index, loop_index);
    }
    let parents = tiering.loop_nest(def);
    let chain = loop_chain(parents, outer_loop, loop_index);
    let request = |osr: std::sync::MutexGuard<'_, _>, job: Job, loops: &[u32]| {
        let pending: Vec<(u32, OsrWhy)> = loops
            .iter()
            .map(|&l| (l, OsrWhy::of(l, loop_index)))
            .collect();
        request_osr(engine, module, tiering, osr, def_index, job, &pending)
    };

    // The innermost loop of the chain with an installed entry.
    for (i, &l) in chain.iter().enumerate().rev() {
        let Some(state) = osr.get_mut(&(def_index, l)) else {
            continue;
        };
        if l == loop_index {
            // The hot loop takes its own entry (whatever it was once armed for).
            let Some(taken) = state.take(Some(OsrWhy::Own)) else {
                continue;
            };
            return take_osr_entry(engine, module, tiering, osr, def_index, taken, l);
        }
        let OsrState::Ready {
            why,
            at,
            armed_since,
            ..
        } = state
        else {
            continue;
        };
        // An enclosing loop's header takes it next time round.
        armed.store(l.saturating_add(1) as i32, Ordering::Relaxed);
        *why = OsrWhy::ForInner;
        let waiting_since = (*armed_since.get_or_insert_with(Instant::now)).max(*at);
        let next = chain[i + 1];
        if waiting_since.elapsed() >= SPECULATE_AFTER && !osr.contains_key(&(def_index, next)) {
            request(osr, Job::region(next, false), &[next]);
        }
        return std::ptr::null();
    }
    if chain
        .iter()
        .any(|&l| matches!(osr.get(&(def_index, l)), Some(OsrState::Pending(_))))
    {
        return std::ptr::null();
    }
    let served = tiering.served_loops(def);
    // Nothing installed or under way on the chain: the function's first entry if it has not
    // been asked for and covers a loop of the chain, else a single entry, outermost first.
    if !tiering.osr_direct[def].load(Ordering::Relaxed) && chain.iter().any(|l| served.contains(l))
    {
        let checked = next_loop_nest(served, parents, loop_index);
        let direct = Fallback::Direct {
            loops: served.to_vec(),
            checked,
        };
        let requested = match checked.filter(|&l| !holds_served(served, parents, l)) {
            // The loop nest the program is in or reaches next: its region alone.
            Some(nest) => {
                let job = Job::Osr {
                    region: nest,
                    loops: vec![nest],
                    checked: Some(nest),
                    fallback: direct,
                };
                request(osr, job, &[nest])
            }
            None => {
                let Fallback::Direct { loops, checked } = direct else {
                    unreachable!("built above")
                };
                let pending = loops.clone();
                request(osr, Job::OsrDirect { loops, checked }, &pending)
            }
        };
        if requested {
            tiering.osr_direct[def].store(true, Ordering::Relaxed);
        }
        return std::ptr::null();
    }
    // A loop over phases whose phases keep getting hot one after another: its region.
    if let Some(&outer) = chain.first()
        && let Some((job, loops)) =
            phase_loop_region(&osr, def_index, parents, served, (outer, loop_index), false)
    {
        request(osr, job, &loops);
        return std::ptr::null();
    }
    // Outermost first, but not a loop over phases when a loop nest inside it can have its own
    // region: the nest is what runs now, the phase loop is most of the function.
    let without: Vec<u32> = chain
        .iter()
        .copied()
        .filter(|&l| !osr.contains_key(&(def_index, l)))
        .collect();
    let nest = without
        .iter()
        .copied()
        .find(|&l| !holds_served(served, parents, l));
    if let Some(l) = nest.or(without.first().copied()) {
        request(osr, Job::region(l, false), &[l]);
    }
    std::ptr::null()
}

/// The region of loop over phases `outer` (see [`osr_entry`]) if it is due: `outer` is a
/// served loop holding other served loops (its phases), has no entry of its own, and one of
/// its phases' regions has been taken [`PHASE_ROUNDS`] times. Entered at `outer`'s header and
/// at the phases without an installed region (`hot`, the loop asking, picks the checked one).
/// `all_in_regions`: only if every phase has an installed region (asked at the take of a
/// phase's region: while some phase has none, that phase getting hot asks). Returns the job
/// and the loops it serves.
fn phase_loop_region(
    osr: &HashMap<(u32, u32), OsrState>,
    def_index: u32,
    parents: &[Option<u32>],
    served: &[u32],
    (outer, hot): (u32, u32),
    all_in_regions: bool,
) -> Option<(Job, Vec<u32>)> {
    if !holds_served(served, parents, outer) || osr.contains_key(&(def_index, outer)) {
        return None;
    }
    let phases = served
        .iter()
        .copied()
        .filter(|&l| parents[l as usize] == Some(outer));
    let ready = |l: u32| {
        osr.get(&(def_index, l))
            .is_some_and(|s| matches!(s, OsrState::Ready { .. }))
    };
    // Takes of the phases' own regions (a whole-function entry taken at a phase runs to the
    // end of the call, so it says nothing about rounds). They add up over calls of the
    // function, which come round like rounds do.
    let rounds = phases
        .clone()
        .filter_map(|l| match osr.get(&(def_index, l)) {
            Some(OsrState::Ready {
                taken,
                reentrant: true,
                ..
            }) => Some(*taken),
            _ => None,
        })
        .max()?;
    if rounds < PHASE_ROUNDS {
        return None;
    }
    // A phase with an installed region keeps it: that region may have a checked copy of its
    // loop the phase loop's region has not, and the program reaches it through the phase
    // loop's region anyway once that is taken elsewhere.
    let mut loops = vec![outer];
    loops.extend(phases.filter(|&l| !ready(l)));
    if all_in_regions && loops.len() > 1 {
        return None;
    }
    let checked = next_loop_nest(&loops, parents, hot);
    let job = Job::Osr {
        region: outer,
        loops: loops.clone(),
        checked,
        fallback: Fallback::Direct {
            loops: loops.clone(),
            checked,
        },
    };
    Some((job, loops))
}

/// How long [`osr_entry_now`] waits for an entry before the loop goes on in the baseline.
const OSR_NOW_PATIENCE: Duration = Duration::from_secs(30);

/// [`osr_entry`] under [`Config::osr_at_every_loop`](crate::Config::osr_at_every_loop): the
/// entry of loop `loop_index` itself, compiled now on the background thread if it is not there
/// yet (the caller waits); null if the tier cannot compile one (or gave up waiting).
fn osr_entry_now<'t>(
    engine: &Engine,
    module: &Arc<ModuleInner>,
    tiering: &'t ModuleTiering,
    mut osr: std::sync::MutexGuard<'t, HashMap<(u32, u32), OsrState>>,
    def_index: u32,
    loop_index: u32,
) -> *const u8 {
    if engine.tier_manager().is_none() {
        return std::ptr::null();
    }
    let started = Instant::now();
    loop {
        let state = osr.get_mut(&(def_index, loop_index));
        match state {
            Some(state @ OsrState::Ready { .. }) => {
                let taken = state.take(Some(OsrWhy::Own)).expect("installed");
                return take_osr_entry(engine, module, tiering, osr, def_index, taken, loop_index);
            }
            Some(OsrState::Failed) => return std::ptr::null(),
            Some(OsrState::Pending(_)) if started.elapsed() > OSR_NOW_PATIENCE => {
                // The compile is stuck (a request the stopped manager dropped is marked failed
                // by `abandon`): the loop goes on in the baseline, and so does every later
                // pass through its header.
                osr.insert((def_index, loop_index), OsrState::Failed);
                return std::ptr::null();
            }
            Some(OsrState::Pending(_)) => drop(osr),
            None if started.elapsed() > OSR_NOW_PATIENCE => {
                // Another entry of the function never finished.
                osr.insert((def_index, loop_index), OsrState::Failed);
                return std::ptr::null();
            }
            None => {
                let pending = [(loop_index, OsrWhy::Own)];
                // Busy with another entry of the function: wait for it, then ask.
                let job = Job::region(loop_index, true);
                request_osr(engine, module, tiering, osr, def_index, job, &pending);
            }
        }
        std::thread::sleep(Duration::from_micros(100));
        osr = tiering.osr.lock().unwrap_or_else(|e| e.into_inner());
    }
}

/// Whether served loop `l` holds other served loops (`parents` from [`loop_parents`]).
fn holds_served(served: &[u32], parents: &[Option<u32>], l: u32) -> bool {
    served
        .iter()
        .any(|&s| s != l && loops::loop_path(parents, s).contains(&l))
}

/// The loop a direct entry is expected to be taken at, among the loops it serves (ascending;
/// `parents` from [`loop_parents`]): the first after loop `hot`, the loop whose budget ran out,
/// that holds no other served loop, that is the loop nest the program reaches next; or, when
/// none follows, the served loop enclosing `hot`. By the time the entry is installed the
/// program has usually left the loop nest it was in when it asked (a set-up nest, say) and is
/// in the next one, which it then enters from the values in its locals, not from the constants
/// its own code starts it from; a function that is one long loop nest is entered at its
/// outermost loop the same way. The tier may specialise that way in.
fn next_loop_nest(served: &[u32], parents: &[Option<u32>], hot: u32) -> Option<u32> {
    // A served loop with served loops inside it (a loop over phases) is entered through those:
    // the next nest is the first served loop after `hot` that holds none.
    let next = served
        .iter()
        .copied()
        .find(|&l| l > hot && !holds_served(served, parents, l));
    next.or_else(|| {
        loops::loop_path(parents, hot)
            .into_iter()
            .rev()
            .find(|l| served.contains(l))
    })
}

/// The loops the first, direct OSR entry of a function serves (see [`osr_entry`]): its
/// outermost loops, and the loops directly inside an outermost loop that holds two or more.
/// A loop nest with one loop per level is entered at its outermost loop only, so the loops
/// inside keep one way in and their counters start from values the optimizer can see.
fn direct_entry_loops(parents: &[Option<u32>]) -> Vec<u32> {
    let mut children = vec![0u32; parents.len()];
    for p in parents.iter().flatten() {
        if let Some(c) = children.get_mut(*p as usize) {
            *c += 1;
        }
    }
    (0..parents.len() as u32)
        .filter(|&l| match parents[l as usize] {
            None => true,
            Some(p) => parents[p as usize].is_none() && children[p as usize] >= 2,
        })
        .collect()
}

/// An installed OSR entry about to be taken.
struct Taken {
    entry: *const u8,
    why: OsrWhy,
    /// Whether it is a region entry of a loop nested in another loop (which one call may take
    /// many times).
    reentrant: bool,
}

/// Counts an OSR entry taken at loop `loop_index` and returns it (`osr` is the state's lock,
/// released here). Once the function has been called again since it first took an entry (its
/// call count moved; one call may take a nested loop's region many times, so counting takes
/// would not tell), its own optimized code is queued too ([`request`] queues it once). The
/// region of a phase of a loop over phases may make the phase loop's region due
/// ([`phase_loop_region`]) when every phase runs in a region of its own: then no phase gets hot
/// in the baseline to ask for it, and it is requested here.
fn take_osr_entry(
    engine: &Engine,
    module: &Arc<ModuleInner>,
    tiering: &ModuleTiering,
    osr: std::sync::MutexGuard<'_, HashMap<(u32, u32), OsrState>>,
    def_index: u32,
    taken: Taken,
    loop_index: u32,
) -> *const u8 {
    let Taken {
        entry,
        why,
        reentrant,
    } = taken;
    trace!(
        "def {def_index} loop {loop_index}: OSR entry taken ({})",
        if why == OsrWhy::Own {
            "its own"
        } else {
            "for an inner loop"
        }
    );
    let def = def_index as usize;
    let phase_loop = match reentrant {
        true => {
            let (parents, served) = (tiering.loop_nest(def), tiering.served_loops(def));
            parents
                .get(loop_index as usize)
                .copied()
                .flatten()
                .and_then(|outer| {
                    let at = (outer, loop_index);
                    phase_loop_region(&osr, def_index, parents, served, at, true)
                })
        }
        false => None,
    };
    match phase_loop {
        Some((job, loops)) => {
            let pending: Vec<(u32, OsrWhy)> =
                loops.iter().map(|&l| (l, OsrWhy::ForInner)).collect();
            request_osr(engine, module, tiering, osr, def_index, job, &pending);
        }
        None => drop(osr),
    }
    let stats = &engine.0.stats;
    stats.osr_entries.fetch_add(1, Ordering::Relaxed);
    if why == OsrWhy::ForInner {
        stats.osr_outer_entries.fetch_add(1, Ordering::Relaxed);
    }
    let calls_word = &module.budgets[2 * tiering.bodies.len() + def];
    let calls = u64::from(calls_word.load(Ordering::Relaxed) as u32);
    let again = match tiering.osr_first_calls[def].compare_exchange(
        u64::MAX,
        calls,
        Ordering::Relaxed,
        Ordering::Relaxed,
    ) {
        Ok(_) => false,
        Err(first) => first != calls,
    };
    if again {
        request(engine, module, def_index);
    }
    entry
}

/// The body's loop parents (see [`spate_tiers::loops`]); empty if the body cannot be read.
fn loop_parents(body: &Body) -> Vec<Option<u32>> {
    loops::loop_parents(&FunctionBody::new(BinaryReader::new(
        &body.bytes,
        body.offset,
    )))
    .unwrap_or_default()
}

/// Requests `job`, an OSR entry of function `def_index` for the loops of `pending` (recorded as
/// under way), unless another entry of the function is being compiled; returns whether it was
/// requested.
fn request_osr(
    engine: &Engine,
    module: &Arc<ModuleInner>,
    tiering: &ModuleTiering,
    mut osr: std::sync::MutexGuard<'_, HashMap<(u32, u32), OsrState>>,
    def_index: u32,
    job: Job,
    pending: &[(u32, OsrWhy)],
) -> bool {
    if tiering.osr_busy[def_index as usize].swap(true, Ordering::AcqRel) {
        // Another entry of this function is being compiled; the loop asks again at its next
        // check once that one is done.
        return false;
    }
    for &(l, why) in pending {
        osr.insert((def_index, l), OsrState::Pending(why));
    }
    drop(osr);
    let sent = engine
        .tier_manager()
        .is_some_and(|m| m.send(module, def_index, job));
    if !sent {
        // No compile thread will take it (none could be started, or they are gone with the
        // engine): the loops stay in the baseline.
        give_up(tiering, def_index, pending.iter().map(|&(l, _)| l));
    }
    sent
}

/// Marks those of `loops` whose entry is under way as failed, for a request of function
/// `def_index` no compile thread will take, and lets the function ask for other entries.
fn give_up(tiering: &ModuleTiering, def_index: u32, loops: impl IntoIterator<Item = u32>) {
    let mut osr = tiering.osr.lock().unwrap_or_else(|e| e.into_inner());
    for l in loops {
        if let Some(state @ OsrState::Pending(_)) = osr.get_mut(&(def_index, l)) {
            *state = OsrState::Failed;
        }
    }
    drop(osr);
    tiering.osr_busy[def_index as usize].store(false, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(osr: bool, heat: u32, seq: u64) -> Priority {
        Priority { osr, heat, seq }
    }

    #[test]
    fn direct_entry_loops_are_the_outermost_and_those_under_a_branching_one() {
        // 0 { 1 { 2 } 3 }  4 { 5 }  6
        let parents = [None, Some(0), Some(1), Some(0), None, Some(4), None];
        // Outermost loops, and the loops directly inside loop 0 (it holds two); not loop 5,
        // the only loop inside 4, nor loop 2, two levels down.
        assert_eq!(direct_entry_loops(&parents), vec![0, 1, 3, 4, 6]);
    }

    #[test]
    fn the_checked_loop_is_the_next_served_loop_after_the_hot_one() {
        // Matmul: initialisation nest 0-1, multiply nest 2-4, sum nest 5-6.
        let parents = [None, Some(0), None, Some(2), Some(3), None, Some(5)];
        let next = |hot| next_loop_nest(&[0, 2, 5], &parents, hot);
        // Hot in the initialisation: the multiply nest is next.
        assert_eq!(next(1), Some(2));
        // Hot in the multiply nest itself, or in its outermost loop: the sum nest is next.
        assert_eq!(next(4), Some(5));
        assert_eq!(next(2), Some(5));
        // Hot in the last nest: its own outermost loop.
        assert_eq!(next(6), Some(5));
        // A function that is one loop nest: its outermost loop.
        assert_eq!(next_loop_nest(&[0], &[None, Some(0), Some(1)], 2), Some(0));
        // Nothing served encloses or follows.
        assert_eq!(next_loop_nest(&[0], &[None, None], 1), None);
        // CG-like: a set-up loop 0, then a loop 1 over phases 2 and 3 (served with it): from
        // the set-up, the first phase, not the loop over them.
        let phases = [None, None, Some(1), Some(1)];
        assert_eq!(next_loop_nest(&[0, 1, 2, 3], &phases, 0), Some(2));
    }

    #[test]
    fn the_hottest_request_goes_first() {
        assert_eq!(pick(std::iter::empty()), None);
        // More heat wins; among equals the oldest.
        assert_eq!(
            pick([p(false, 3, 0), p(false, 9, 1), p(false, 9, 2)].into_iter()),
            Some(1)
        );
        // A running loop waiting for its OSR entry beats any function-entry request.
        assert_eq!(pick([p(false, 100, 0), p(true, 1, 5)].into_iter()), Some(1));
        assert_eq!(pick([p(true, 1, 0), p(true, 2, 5)].into_iter()), Some(1));
    }
}
