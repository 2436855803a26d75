//! WASI preview 1 (`wasi_snapshot_preview1`) for the Spate engine.
//!
//! Build a [`WasiCtx`] with [`WasiCtxBuilder`] (arguments, environment, standard streams,
//! preopened directories), keep it in the store's data, and define the 46 functions of
//! `wasi_snapshot_preview1` with [`add_to_linker`]. A guest that calls `proc_exit` ends the
//! running call (of `_start`, usually) with an [`I32Exit`] error.
//!
//! ```no_run
//! use spate::{Engine, Linker, Module, Store};
//! use spate_wasi::{I32Exit, WasiCtxBuilder};
//!
//! # fn main() -> anyhow::Result<()> {
//! let engine = Engine::default();
//! let module = Module::new(&engine, std::fs::read("app.wasm")?)?;
//! let mut linker = Linker::new(&engine);
//! spate_wasi::add_to_linker(&mut linker, |ctx| ctx)?;
//! let wasi = WasiCtxBuilder::new()
//!     .args(["app.wasm", "input.txt"])
//!     .inherit_stdio()
//!     .preopened_dir("data", ".")?
//!     .build();
//! let mut store = Store::new(&engine, wasi);
//! let instance = linker.instantiate(&mut store, &module)?;
//! let start = instance.get_typed_func::<(), ()>(&store, "_start")?;
//! let code = match start.call(&mut store, ()) {
//!     Ok(()) => 0,
//!     Err(e) => match e.downcast_ref::<I32Exit>() {
//!         Some(exit) => exit.0,
//!         None => return Err(e),
//!     },
//! };
//! std::process::exit(code);
//! # }
//! ```
//!
//! What is implemented, and the limits: see `docs/ARCHITECTURE.md` (WASI). In short, files
//! and directories are real, reached only through preopened directories; stdio passes
//! straight through; clocks, `poll_oneoff` (clocks, and file, stream and inherited-stdin
//! readiness), `random_get` and `sched_yield` are real; `proc_raise` is `notsup`; the socket
//! functions answer `notsock`/`badf` since no socket can be open.

use std::fmt;

use spate::{AsContextMut as _, Caller, Extern, FuncType, Val, ValType};

mod ctx;
mod errno;
mod fd;
mod mem;
mod path;
mod poll;
mod proc;
pub mod types;

#[cfg(test)]
mod tests;

pub use ctx::{WasiCtx, WasiCtxBuilder};
pub use errno::Errno;

/// The import module name of WASI preview 1.
pub const MODULE: &str = "wasi_snapshot_preview1";

/// The error `proc_exit` raises: it comes back from the call of `_start` (or whichever export
/// was running); downcast with `e.downcast_ref::<I32Exit>()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct I32Exit(pub i32);

impl fmt::Display for I32Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exited with status {}", self.0)
    }
}

impl std::error::Error for I32Exit {}

/// The calling instance's memory and the WASI context, borrowed together.
fn guest<'a, T>(
    caller: &'a mut Caller<'_, T>,
    get: impl Fn(&mut T) -> &mut WasiCtx,
) -> anyhow::Result<(mem::GuestMemory<'a>, &'a mut WasiCtx)> {
    let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
        anyhow::bail!("a WASI function was called by a module that exports no memory `memory`");
    };
    let (bytes, data) = memory.data_and_store_mut(caller.as_context_mut());
    Ok((mem::GuestMemory::new(bytes), get(data)))
}

fn code(r: errno::WasiResult<()>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => e as i32,
    }
}

/// Defines `wasi_snapshot_preview1::$name` as a host function over the typed parameters,
/// calling `$imp(ctx, mem, params...)` and returning its errno.
macro_rules! define {
    ($linker:ident, $get:ident, $imp:path, $name:literal ($($arg:ident: $ty:ty),*)) => {
        $linker.func_wrap(
            MODULE,
            $name,
            move |mut caller: Caller<'_, T>, $($arg: $ty),*| -> anyhow::Result<i32> {
                let (mut mem, ctx) = guest(&mut caller, $get)?;
                Ok(code($imp(ctx, &mut mem, $($arg),*)))
            },
        )?;
    };
}

/// Defines every function of `wasi_snapshot_preview1` in `linker`. `get` finds the
/// [`WasiCtx`] in the store's data.
pub fn add_to_linker<T: 'static>(
    linker: &mut spate::Linker<T>,
    get: impl Fn(&mut T) -> &mut WasiCtx + Send + Sync + Copy + 'static,
) -> anyhow::Result<()> {
    define!(linker, get, proc::args_get, "args_get"(a: u32, b: u32));
    define!(linker, get, proc::args_sizes_get, "args_sizes_get"(a: u32, b: u32));
    define!(linker, get, proc::environ_get, "environ_get"(a: u32, b: u32));
    define!(linker, get, proc::environ_sizes_get, "environ_sizes_get"(a: u32, b: u32));
    define!(linker, get, poll::clock_res_get, "clock_res_get"(id: u32, res: u32));
    define!(linker, get, poll::clock_time_get, "clock_time_get"(id: u32, precision: u64, time: u32));
    define!(linker, get, fd::fd_advise, "fd_advise"(fd: u32, offset: u64, len: u64, advice: u32));
    define!(linker, get, fd::fd_allocate, "fd_allocate"(fd: u32, offset: u64, len: u64));
    define!(linker, get, fd::fd_close, "fd_close"(fd: u32));
    define!(linker, get, fd::fd_datasync, "fd_datasync"(fd: u32));
    define!(linker, get, fd::fd_fdstat_get, "fd_fdstat_get"(fd: u32, buf: u32));
    define!(linker, get, fd::fd_fdstat_set_flags, "fd_fdstat_set_flags"(fd: u32, flags: u32));
    define!(linker, get, fd::fd_fdstat_set_rights, "fd_fdstat_set_rights"(fd: u32, base: u64, inheriting: u64));
    define!(linker, get, fd::fd_filestat_get, "fd_filestat_get"(fd: u32, buf: u32));
    define!(linker, get, fd::fd_filestat_set_size, "fd_filestat_set_size"(fd: u32, size: u64));
    define!(linker, get, fd::fd_filestat_set_times, "fd_filestat_set_times"(fd: u32, atim: u64, mtim: u64, flags: u32));
    define!(linker, get, fd::fd_pread, "fd_pread"(fd: u32, iovs: u32, iovs_len: u32, offset: u64, nread: u32));
    define!(linker, get, fd::fd_prestat_get, "fd_prestat_get"(fd: u32, buf: u32));
    define!(linker, get, fd::fd_prestat_dir_name, "fd_prestat_dir_name"(fd: u32, path: u32, path_len: u32));
    define!(linker, get, fd::fd_pwrite, "fd_pwrite"(fd: u32, iovs: u32, iovs_len: u32, offset: u64, nwritten: u32));
    define!(linker, get, fd::fd_read, "fd_read"(fd: u32, iovs: u32, iovs_len: u32, nread: u32));
    define!(linker, get, fd::fd_readdir, "fd_readdir"(fd: u32, buf: u32, buf_len: u32, cookie: u64, bufused: u32));
    define!(linker, get, fd::fd_renumber, "fd_renumber"(fd: u32, to: u32));
    define!(linker, get, fd::fd_seek, "fd_seek"(fd: u32, offset: u64, whence: u32, newoffset: u32));
    define!(linker, get, fd::fd_sync, "fd_sync"(fd: u32));
    define!(linker, get, fd::fd_tell, "fd_tell"(fd: u32, offset: u32));
    define!(linker, get, fd::fd_write, "fd_write"(fd: u32, iovs: u32, iovs_len: u32, nwritten: u32));
    define!(linker, get, path::path_create_directory, "path_create_directory"(fd: u32, path: u32, path_len: u32));
    define!(linker, get, path::path_filestat_get, "path_filestat_get"(fd: u32, flags: u32, path: u32, path_len: u32, buf: u32));
    define!(linker, get, path::path_filestat_set_times, "path_filestat_set_times"(fd: u32, flags: u32, path: u32, path_len: u32, atim: u64, mtim: u64, fst: u32));
    define!(linker, get, path::path_link, "path_link"(old_fd: u32, old_flags: u32, old_path: u32, old_len: u32, new_fd: u32, new_path: u32, new_len: u32));
    define!(linker, get, path::path_readlink, "path_readlink"(fd: u32, path: u32, path_len: u32, buf: u32, buf_len: u32, bufused: u32));
    define!(linker, get, path::path_remove_directory, "path_remove_directory"(fd: u32, path: u32, path_len: u32));
    define!(linker, get, path::path_rename, "path_rename"(fd: u32, old_path: u32, old_len: u32, new_fd: u32, new_path: u32, new_len: u32));
    define!(linker, get, path::path_symlink, "path_symlink"(old_path: u32, old_len: u32, fd: u32, new_path: u32, new_len: u32));
    define!(linker, get, path::path_unlink_file, "path_unlink_file"(fd: u32, path: u32, path_len: u32));
    define!(linker, get, poll::poll_oneoff, "poll_oneoff"(input: u32, output: u32, nsubscriptions: u32, nevents: u32));
    define!(linker, get, proc::proc_raise, "proc_raise"(sig: u32));
    define!(linker, get, proc::sched_yield, "sched_yield"());
    define!(linker, get, proc::random_get, "random_get"(buf: u32, len: u32));
    define!(linker, get, proc::sock_accept, "sock_accept"(fd: u32, flags: u32, fd_out: u32));
    define!(linker, get, proc::sock_recv, "sock_recv"(fd: u32, iovs: u32, iovs_len: u32, flags: u32, nread: u32, flags_out: u32));
    define!(linker, get, proc::sock_send, "sock_send"(fd: u32, iovs: u32, iovs_len: u32, flags: u32, nwritten: u32));
    define!(linker, get, proc::sock_shutdown, "sock_shutdown"(fd: u32, how: u32));

    // `path_open` has nine parameters, one more than typed host closures take.
    use ValType::{I32, I64};
    let ty = FuncType::new(vec![I32, I32, I32, I32, I32, I64, I64, I32, I32], vec![I32]);
    linker.func_new(
        MODULE,
        "path_open",
        ty,
        move |mut caller: Caller<'_, T>, params: &[Val], results: &mut [Val]| {
            let mut args = [0u64; 9];
            for (slot, v) in args.iter_mut().zip(params) {
                *slot = match *v {
                    Val::I32(x) => u64::from(x as u32),
                    Val::I64(x) => x as u64,
                    _ => anyhow::bail!("path_open: unexpected argument {v:?}"),
                };
            }
            let (mut mem, ctx) = guest(&mut caller, get)?;
            results[0] = Val::I32(code(path::path_open(ctx, &mut mem, args)));
            Ok(())
        },
    )?;

    // `proc_exit` does not return: its error unwinds the guest to the host's call.
    linker.func_wrap(MODULE, "proc_exit", |status: i32| -> anyhow::Result<()> {
        Err(anyhow::Error::new(I32Exit(status)))
    })?;
    Ok(())
}

/// The names of the functions [`add_to_linker`] defines, in the order of the WASI
/// specification's listing (alphabetical).
pub const FUNCTIONS: [&str; 46] = [
    "args_get",
    "args_sizes_get",
    "clock_res_get",
    "clock_time_get",
    "environ_get",
    "environ_sizes_get",
    "fd_advise",
    "fd_allocate",
    "fd_close",
    "fd_datasync",
    "fd_fdstat_get",
    "fd_fdstat_set_flags",
    "fd_fdstat_set_rights",
    "fd_filestat_get",
    "fd_filestat_set_size",
    "fd_filestat_set_times",
    "fd_pread",
    "fd_prestat_dir_name",
    "fd_prestat_get",
    "fd_pwrite",
    "fd_read",
    "fd_readdir",
    "fd_renumber",
    "fd_seek",
    "fd_sync",
    "fd_tell",
    "fd_write",
    "path_create_directory",
    "path_filestat_get",
    "path_filestat_set_times",
    "path_link",
    "path_open",
    "path_readlink",
    "path_remove_directory",
    "path_rename",
    "path_symlink",
    "path_unlink_file",
    "poll_oneoff",
    "proc_exit",
    "proc_raise",
    "random_get",
    "sched_yield",
    "sock_accept",
    "sock_recv",
    "sock_send",
    "sock_shutdown",
];
