//! Arguments, environment, randomness, scheduling, process exit, and the socket functions
//! (which have nothing to work on: no socket is ever preopened).

use crate::ctx::{Kind, WasiCtx};
use crate::errno::{Errno, WasiResult};
use crate::mem::GuestMemory;

/// Writes a list of strings as C does: `ptrs` gets one pointer per string into `buf`, where
/// the strings are stored NUL-terminated one after another.
fn write_strings(mem: &mut GuestMemory, list: &[String], ptrs: u32, buf: u32) -> WasiResult<()> {
    let mut at = buf;
    for (i, s) in list.iter().enumerate() {
        let slot = ptrs.checked_add(4 * i as u32).ok_or(Errno::Fault)?;
        mem.write_u32(slot, at)?;
        mem.write_bytes(at, s.as_bytes())?;
        let end = at.checked_add(s.len() as u32).ok_or(Errno::Fault)?;
        mem.write_u8(end, 0)?;
        at = end.saturating_add(1);
    }
    Ok(())
}

fn write_sizes(mem: &mut GuestMemory, list: &[String], count: u32, size: u32) -> WasiResult<()> {
    let bytes: usize = list.iter().map(|s| s.len() + 1).sum();
    mem.write_u32(count, list.len() as u32)?;
    mem.write_u32(size, u32::try_from(bytes).map_err(|_| Errno::Overflow)?)
}

pub(crate) fn args_get(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory,
    argv: u32,
    buf: u32,
) -> WasiResult<()> {
    write_strings(mem, &ctx.args, argv, buf)
}

pub(crate) fn args_sizes_get(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory,
    argc: u32,
    size: u32,
) -> WasiResult<()> {
    write_sizes(mem, &ctx.args, argc, size)
}

pub(crate) fn environ_get(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory,
    environ: u32,
    buf: u32,
) -> WasiResult<()> {
    write_strings(mem, &ctx.env, environ, buf)
}

pub(crate) fn environ_sizes_get(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory,
    count: u32,
    size: u32,
) -> WasiResult<()> {
    write_sizes(mem, &ctx.env, count, size)
}

pub(crate) fn random_get(
    _ctx: &mut WasiCtx,
    mem: &mut GuestMemory,
    buf: u32,
    len: u32,
) -> WasiResult<()> {
    let mut out = mem.slice_mut(buf, len)?;
    while !out.is_empty() {
        // SAFETY: `out` is a valid, writable byte range of `out.len()` bytes.
        let r = unsafe { libc::getrandom(out.as_mut_ptr().cast(), out.len(), 0) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e.into());
        }
        out = &mut out[r as usize..];
    }
    Ok(())
}

pub(crate) fn sched_yield(_ctx: &mut WasiCtx, _mem: &mut GuestMemory) -> WasiResult<()> {
    std::thread::yield_now();
    Ok(())
}

/// `proc_raise`: signals are not supported (`notsup`), as in other WASI runtimes; the
/// C library's `raise` and `abort` do not call it.
pub(crate) fn proc_raise(_ctx: &mut WasiCtx, _mem: &mut GuestMemory, _sig: u32) -> WasiResult<()> {
    Err(Errno::Notsup)
}

/// The error for a socket call on `fd`: `badf` if there is no such descriptor, `notsock`
/// otherwise (no socket can be open: none is preopened and none can be created).
fn not_a_socket(ctx: &WasiCtx, fd: u32) -> Errno {
    match ctx.fds.get(&fd).map(|e| &e.kind) {
        None => Errno::Badf,
        Some(Kind::Reader { .. } | Kind::Writer { .. } | Kind::File(_) | Kind::Dir(_)) => {
            Errno::Notsock
        }
    }
}

pub(crate) fn sock_accept(
    ctx: &mut WasiCtx,
    _mem: &mut GuestMemory,
    fd: u32,
    _flags: u32,
    _fd_out: u32,
) -> WasiResult<()> {
    Err(not_a_socket(ctx, fd))
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn sock_recv(
    ctx: &mut WasiCtx,
    _mem: &mut GuestMemory,
    fd: u32,
    _iovs: u32,
    _iovs_len: u32,
    _flags: u32,
    _nread: u32,
    _flags_out: u32,
) -> WasiResult<()> {
    Err(not_a_socket(ctx, fd))
}

pub(crate) fn sock_send(
    ctx: &mut WasiCtx,
    _mem: &mut GuestMemory,
    fd: u32,
    _iovs: u32,
    _iovs_len: u32,
    _flags: u32,
    _nwritten: u32,
) -> WasiResult<()> {
    Err(not_a_socket(ctx, fd))
}

pub(crate) fn sock_shutdown(
    ctx: &mut WasiCtx,
    _mem: &mut GuestMemory,
    fd: u32,
    _how: u32,
) -> WasiResult<()> {
    Err(not_a_socket(ctx, fd))
}
