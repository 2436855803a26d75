//! The `path_*` functions. Every path is resolved by `cap-std` relative to a directory
//! descriptor, so it cannot name anything outside the preopened directory it came from:
//! absolute paths, `..` above the directory and symbolic links that lead out all fail (with
//! `notcapable`; see [`Errno::from`](crate::errno::Errno)).

use std::os::unix::ffi::OsStrExt;

use cap_fs_ext::{
    DirExt, FollowSymlinks, OpenOptionsFollowExt, OpenOptionsMaybeDirExt, OpenOptionsSyncExt,
    SystemTimeSpec,
};
use cap_std::fs::{Dir, OpenOptions};

use crate::ctx::{DirEntry, Entry, Kind, WasiCtx};
use crate::errno::{Errno, WasiResult};
use crate::fd::cap_filestat;
use crate::mem::GuestMemory;
use crate::types::{LOOKUP_SYMLINK_FOLLOW, fdflags, fstflags, oflags, rights};

/// The directory `fd` (with the rights in `needed`) and the guest path at `path`.
fn dir_and_path<'a>(
    ctx: &'a WasiCtx,
    mem: &GuestMemory,
    fd: u32,
    needed: u64,
    path: u32,
    path_len: u32,
) -> WasiResult<(&'a Dir, String)> {
    let path = mem.read_str(path, path_len)?;
    let dir = ctx.dir(fd, needed)?;
    Ok((&dir.dir, path))
}

fn follows(lookupflags: u32) -> WasiResult<bool> {
    if lookupflags & !LOOKUP_SYMLINK_FOLLOW != 0 {
        return Err(Errno::Inval);
    }
    Ok(lookupflags & LOOKUP_SYMLINK_FOLLOW != 0)
}

pub(crate) fn path_create_directory(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory,
    fd: u32,
    path: u32,
    path_len: u32,
) -> WasiResult<()> {
    let (dir, path) = dir_and_path(ctx, mem, fd, rights::PATH_CREATE_DIRECTORY, path, path_len)?;
    Ok(dir.create_dir(path)?)
}

pub(crate) fn path_filestat_get(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory,
    fd: u32,
    flags: u32,
    path: u32,
    path_len: u32,
    buf: u32,
) -> WasiResult<()> {
    let follow = follows(flags)?;
    let (dir, path) = dir_and_path(ctx, mem, fd, rights::PATH_FILESTAT_GET, path, path_len)?;
    let meta = if follow {
        dir.metadata(path)?
    } else {
        dir.symlink_metadata(path)?
    };
    cap_filestat(&meta).write(mem, buf)
}

/// A WASI time for `cap-fs-ext`'s `set_times`.
fn time_spec(t: u64, flags: u16, set: u16, now: u16) -> Option<SystemTimeSpec> {
    if flags & now != 0 {
        Some(SystemTimeSpec::SymbolicNow)
    } else if flags & set != 0 {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(t);
        Some(SystemTimeSpec::Absolute(
            cap_std::time::SystemTime::from_std(at),
        ))
    } else {
        None
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn path_filestat_set_times(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory,
    fd: u32,
    flags: u32,
    path: u32,
    path_len: u32,
    atim: u64,
    mtim: u64,
    fst: u32,
) -> WasiResult<()> {
    let follow = follows(flags)?;
    // Validates the flags the same way `fd_filestat_set_times` does.
    crate::fd::timespecs(atim, mtim, fst)?;
    let fst = fst as u16;
    let (dir, path) = dir_and_path(
        ctx,
        mem,
        fd,
        rights::PATH_FILESTAT_SET_TIMES,
        path,
        path_len,
    )?;
    let a = time_spec(atim, fst, fstflags::ATIM, fstflags::ATIM_NOW);
    let m = time_spec(mtim, fst, fstflags::MTIM, fstflags::MTIM_NOW);
    if follow {
        dir.set_times(path, a, m)?;
    } else {
        dir.set_symlink_times(path, a, m)?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn path_link(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory,
    old_fd: u32,
    old_flags: u32,
    old_path: u32,
    old_len: u32,
    new_fd: u32,
    new_path: u32,
    new_len: u32,
) -> WasiResult<()> {
    // Linking the target of a symbolic link is not offered (as in other runtimes).
    if follows(old_flags)? {
        return Err(Errno::Inval);
    }
    let (old_dir, old) = dir_and_path(
        ctx,
        mem,
        old_fd,
        rights::PATH_LINK_SOURCE,
        old_path,
        old_len,
    )?;
    let (new_dir, new) = dir_and_path(
        ctx,
        mem,
        new_fd,
        rights::PATH_LINK_TARGET,
        new_path,
        new_len,
    )?;
    Ok(old_dir.hard_link(old, new_dir, new)?)
}

/// `path_open`. Its nine parameters are taken as an array (the linker's typed closures stop
/// at eight).
pub(crate) fn path_open(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory,
    args: [u64; 9],
) -> WasiResult<()> {
    let [
        fd,
        dirflags,
        path,
        path_len,
        oflags,
        base,
        inheriting,
        fdflags,
        fd_out,
    ] = args;
    let (fd, path, path_len, fd_out) = (fd as u32, path as u32, path_len as u32, fd_out as u32);
    let follow = follows(dirflags as u32)?;
    let oflags = u16::try_from(oflags).map_err(|_| Errno::Inval)?;
    let fdflags = u16::try_from(fdflags).map_err(|_| Errno::Inval)?;
    mem.slice(fd_out, 4)?;

    let mut needed = rights::PATH_OPEN;
    if oflags & oflags::CREAT != 0 {
        needed |= rights::PATH_CREATE_FILE;
    }
    if oflags & oflags::TRUNC != 0 {
        needed |= rights::PATH_FILESTAT_SET_SIZE;
    }
    let dir_inheriting = ctx.entry(fd, needed)?.inheriting;
    let (dir, path) = dir_and_path(ctx, mem, fd, needed, path, path_len)?;
    // The new descriptor gets what it asks for, within what the directory hands down.
    let base = base & dir_inheriting;
    let inheriting = inheriting & dir_inheriting;
    let follow_opt = if follow {
        FollowSymlinks::Yes
    } else {
        FollowSymlinks::No
    };

    let kind = if oflags & oflags::DIRECTORY != 0 {
        if oflags & (oflags::CREAT | oflags::TRUNC | oflags::EXCL) != 0 {
            return Err(Errno::Inval);
        }
        let d = if follow {
            dir.open_dir(&path)?
        } else {
            dir.open_dir_nofollow(&path)?
        };
        new_dir(d)
    } else {
        let read = base & (rights::FD_READ | rights::FD_READDIR) != 0;
        let mut write = base
            & (rights::FD_WRITE
                | rights::FD_ALLOCATE
                | rights::FD_FILESTAT_SET_SIZE
                | rights::FD_DATASYNC)
            != 0;
        // Creating or truncating needs a writable open on the host, whatever the rights
        // (the descriptor still cannot write without `fd_write`).
        if oflags & (oflags::CREAT | oflags::TRUNC) != 0 || fdflags & fdflags::APPEND != 0 {
            write = true;
        }
        let mut opts = OpenOptions::new();
        opts.read(read || !write)
            .write(write)
            .append(fdflags & fdflags::APPEND != 0)
            .truncate(oflags & oflags::TRUNC != 0)
            .create(oflags & oflags::CREAT != 0)
            .create_new(oflags & oflags::CREAT != 0 && oflags & oflags::EXCL != 0)
            .maybe_dir(!write)
            .follow(follow_opt)
            .dsync(fdflags & fdflags::DSYNC != 0)
            .sync(fdflags & fdflags::SYNC != 0)
            .rsync(fdflags & fdflags::RSYNC != 0)
            .nonblock(fdflags & fdflags::NONBLOCK != 0);
        let file = dir.open_with(&path, &opts)?.into_std();
        if file.metadata()?.is_dir() {
            new_dir(Dir::from_std_file(file))
        } else {
            Kind::File(file)
        }
    };
    let mask = match kind {
        Kind::Dir(_) => rights::DIRECTORY,
        _ => rights::FILE,
    };
    let new_fd = ctx.insert(Entry {
        kind,
        base: base & mask,
        inheriting,
        flags: fdflags,
    })?;
    mem.write_u32(fd_out, new_fd)
}

fn new_dir(dir: Dir) -> Kind {
    Kind::Dir(DirEntry {
        dir,
        preopen: None,
        listing: None,
    })
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn path_readlink(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory,
    fd: u32,
    path: u32,
    path_len: u32,
    buf: u32,
    buf_len: u32,
    bufused: u32,
) -> WasiResult<()> {
    mem.slice(buf, buf_len)?;
    mem.slice(bufused, 4)?;
    let (dir, path) = dir_and_path(ctx, mem, fd, rights::PATH_READLINK, path, path_len)?;
    // The contents are only data: an absolute target is reported, not followed.
    let target = dir.read_link_contents(path)?;
    let bytes = target.as_os_str().as_bytes();
    let n = bytes.len().min(buf_len as usize);
    mem.write_bytes(buf, &bytes[..n])?;
    mem.write_u32(bufused, n as u32)
}

pub(crate) fn path_remove_directory(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory,
    fd: u32,
    path: u32,
    path_len: u32,
) -> WasiResult<()> {
    let (dir, path) = dir_and_path(ctx, mem, fd, rights::PATH_REMOVE_DIRECTORY, path, path_len)?;
    Ok(dir.remove_dir(path)?)
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn path_rename(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory,
    fd: u32,
    old_path: u32,
    old_len: u32,
    new_fd: u32,
    new_path: u32,
    new_len: u32,
) -> WasiResult<()> {
    let (old_dir, old) = dir_and_path(ctx, mem, fd, rights::PATH_RENAME_SOURCE, old_path, old_len)?;
    let (new_dir, new) = dir_and_path(
        ctx,
        mem,
        new_fd,
        rights::PATH_RENAME_TARGET,
        new_path,
        new_len,
    )?;
    Ok(old_dir.rename(old, new_dir, new)?)
}

pub(crate) fn path_symlink(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory,
    old_path: u32,
    old_len: u32,
    fd: u32,
    new_path: u32,
    new_len: u32,
) -> WasiResult<()> {
    let target = mem.read_str(old_path, old_len)?;
    let (dir, link) = dir_and_path(ctx, mem, fd, rights::PATH_SYMLINK, new_path, new_len)?;
    // cap-std refuses an absolute target (`notcapable`).
    Ok(dir.symlink(target, link)?)
}

pub(crate) fn path_unlink_file(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory,
    fd: u32,
    path: u32,
    path_len: u32,
) -> WasiResult<()> {
    let (dir, path) = dir_and_path(ctx, mem, fd, rights::PATH_UNLINK_FILE, path, path_len)?;
    Ok(dir.remove_file(path)?)
}
