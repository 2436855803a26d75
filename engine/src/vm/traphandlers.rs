//! Entering wasm from the host and getting back out when it traps.
//!
//! Every host-to-wasm call goes through [`catch_traps`], which records a jump target (a
//! `sigjmp_buf` in the C helper) in a thread-local. A trap ends up at that target:
//!
//! * a fault in compiled code (out-of-bounds access in a memory's guard region, a trap
//!   instruction, a stack-limit check) raises a signal; `handle_signal` maps the faulting pc
//!   through the code registry to a trap code and jumps;
//! * a libcall that detects a trap, or a host function that fails or panics, calls
//!   [`raise`], which jumps the same way.
//!
//! Jumping skips only wasm frames, trampolines, and Rust frames written so that nothing with a
//! destructor is alive at the jump (the `extern "C"` libcall and host-function shims).

use crate::code::registry;
use spate_tiers::TrapCode;
use std::cell::Cell;
use std::ffi::c_void;
use std::sync::{Once, OnceLock};

unsafe extern "C" {
    fn spate_catch(
        body: extern "C" fn(*mut c_void),
        payload: *mut c_void,
        jmp_slot: *mut *mut c_void,
    ) -> i32;
    fn spate_unwind(jmp_buf: *mut c_void) -> !;
}

/// Where a trap happened in compiled code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrapPc {
    /// Function index in its module's function index space.
    pub func_index: u32,
    /// Byte offset of the trapping operator in the module, if known.
    pub wasm_offset: Option<u32>,
}

/// Why a call into wasm did not return normally.
pub enum UnwindReason {
    /// A wasm trap, with its location when it came from compiled code.
    Trap(TrapCode, Option<TrapPc>),
    /// A host function returned an error.
    HostError(anyhow::Error),
    /// A host function panicked; the panic resumes in the host once wasm frames are gone.
    Panic(Box<dyn std::any::Any + Send>),
}

impl std::fmt::Debug for UnwindReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnwindReason::Trap(code, pc) => write!(f, "Trap({code:?}, {pc:?})"),
            UnwindReason::HostError(e) => write!(f, "HostError({e})"),
            UnwindReason::Panic(_) => f.write_str("Panic"),
        }
    }
}

thread_local! {
    /// Jump target of the innermost active `catch_traps`, or null outside wasm.
    static JMP_BUF: Cell<*mut c_void> = const { Cell::new(std::ptr::null_mut()) };
    /// The reason for the jump in progress.
    static REASON: Cell<Option<UnwindReason>> = const { Cell::new(None) };
    /// How many `catch_traps` are active on this thread.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Number of nested host-to-wasm entries active on this thread.
pub fn entry_depth() -> usize {
    DEPTH.with(|d| d.get())
}

/// Runs `f` (which calls into compiled wasm code) and returns how it ended.
///
/// Installs the signal handlers on first use.
pub fn catch_traps<F: FnOnce()>(f: F) -> Result<(), UnwindReason> {
    init_signal_handlers();

    extern "C" fn call_body<F: FnOnce()>(payload: *mut c_void) {
        // SAFETY: `payload` is the `Option<F>` on `catch_traps`' frame, alive for this call.
        let slot = unsafe { &mut *(payload as *mut Option<F>) };
        if let Some(f) = slot.take() {
            f();
        }
    }

    let mut slot = Some(f);
    DEPTH.with(|d| d.set(d.get() + 1));
    let slot_ptr = JMP_BUF.with(|j| j.as_ptr());
    // SAFETY: `call_body::<F>` receives a pointer to `slot`, which outlives the call; the C
    // helper restores the previous jump target on both exits, and `slot_ptr` is this thread's
    // thread-local cell, valid for the thread's lifetime.
    let completed = unsafe {
        spate_catch(
            call_body::<F>,
            &mut slot as *mut Option<F> as *mut c_void,
            slot_ptr,
        )
    };
    DEPTH.with(|d| d.set(d.get() - 1));
    if completed == 1 {
        return Ok(());
    }
    // `slot` may still hold nothing (the closure was taken) — it was running when the jump came.
    // The closure's captures that were moved into the call are leaked rather than dropped twice.
    std::mem::forget(slot);
    Err(REASON
        .with(|r| r.take())
        .unwrap_or(UnwindReason::Trap(TrapCode::UnreachableCodeReached, None)))
}

/// Leaves the innermost wasm activation with `reason`.
///
/// # Safety
/// Must be called on a thread inside [`catch_traps`], from a frame whose callers up to the
/// `catch_traps` entry are wasm frames, trampolines, or Rust frames holding nothing with a
/// destructor.
pub unsafe fn raise(reason: UnwindReason) -> ! {
    REASON.with(|r| r.set(Some(reason)));
    let buf = JMP_BUF.with(|j| j.get());
    assert!(
        !buf.is_null(),
        "spate: trap raised outside of wasm execution"
    );
    // SAFETY: `buf` is the jump target of the innermost active `catch_traps` (non-null checked);
    // the caller guarantees the frames being skipped need no cleanup.
    unsafe { spate_unwind(buf) }
}

static INIT: Once = Once::new();
const SIGNALS: [libc::c_int; 4] = [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE];
/// The dispositions our handlers replaced, by position in `SIGNALS`.
static PREVIOUS: OnceLock<[libc::sigaction; 4]> = OnceLock::new();

/// Installs the handlers for the signals compiled code raises (once per process).
pub fn init_signal_handlers() {
    INIT.call_once(|| {
        // Record the previous dispositions before installing ours, so a handler that runs
        // always finds them.
        let previous = SIGNALS.map(|sig| {
            // SAFETY: querying a disposition into a zeroed struct.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                libc::sigaction(sig, std::ptr::null(), &mut old);
                old
            }
        });
        let _ = PREVIOUS.set(previous);
        for &sig in &SIGNALS {
            // SAFETY: a plain sigaction call with a zeroed, then filled, struct.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = handle_signal as *const () as usize;
                action.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER | libc::SA_ONSTACK;
                libc::sigemptyset(&mut action.sa_mask);
                if libc::sigaction(sig, &action, std::ptr::null_mut()) != 0 {
                    panic!(
                        "spate: cannot install handler for signal {sig}: {}",
                        std::io::Error::last_os_error()
                    );
                }
            }
        }
    });
}

/// The process-wide handler for SIGSEGV, SIGBUS, SIGILL and SIGFPE.
///
/// A signal whose pc lies at a trap site of compiled wasm code, on a thread executing wasm,
/// becomes a wasm trap. Anything else is passed to the handler that was installed before ours
/// (or to the default action), so genuine host crashes still crash.
extern "C" fn handle_signal(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    // SAFETY: the kernel passes a valid ucontext_t for SA_SIGINFO handlers.
    let pc = unsafe {
        (*(ctx as *const libc::ucontext_t)).uc_mcontext.gregs[libc::REG_RIP as usize] as usize
    };
    let in_wasm = JMP_BUF.with(|j| !j.get().is_null());
    let memory_fault = sig == libc::SIGSEGV || sig == libc::SIGBUS;
    if in_wasm && let Some((code, loc)) = registry::lookup_trap(pc, memory_fault) {
        // SAFETY: we are on a thread inside `catch_traps`, interrupted in compiled wasm code
        // (the pc is a registered trap site), whose frames up to the entry need no cleanup.
        unsafe { raise(UnwindReason::Trap(code, Some(loc))) }
    }
    // SAFETY: not ours: delegate to the previous disposition.
    unsafe { forward_signal(sig, info, ctx) }
}

/// Hands a signal we do not own to whatever handled it before us.
///
/// # Safety
/// Must only be called from the signal handler with its arguments.
unsafe fn forward_signal(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    let Some(i) = SIGNALS.iter().position(|&s| s == sig) else {
        return;
    };
    let Some(prev) = PREVIOUS.get().map(|p| &p[i]) else {
        return;
    };
    if prev.sa_flags & libc::SA_SIGINFO != 0 && prev.sa_sigaction > libc::SIG_IGN {
        // SAFETY: the previous handler is an SA_SIGINFO handler with this signature.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut c_void) =
            unsafe { std::mem::transmute(prev.sa_sigaction) };
        f(sig, info, ctx);
    } else if prev.sa_sigaction > libc::SIG_IGN {
        // SAFETY: the previous handler is a plain handler.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(prev.sa_sigaction) };
        f(sig);
    } else {
        // Default action: reset to it and return; the faulting instruction re-executes and the
        // kernel applies the default (terminate with a core dump), as without us.
        // SAFETY: restoring SIG_DFL for this signal.
        unsafe {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &dfl, std::ptr::null_mut());
        }
    }
}
