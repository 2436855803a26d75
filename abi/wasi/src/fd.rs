//! The `fd_*` functions: reading, writing, seeking, metadata and listing of open descriptors.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::fs::{FileExt, FileTypeExt};

use crate::ctx::{Entry, Kind, WasiCtx};
use crate::errno::{Errno, WasiResult};
use crate::mem::GuestMemory;
use crate::types::{PREOPENTYPE_DIR, fdflags, filetype, fstflags, rights, size, whence};

/// The `filestat` record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Filestat {
    pub dev: u64,
    pub ino: u64,
    pub filetype: u8,
    pub nlink: u64,
    pub size: u64,
    pub atim: u64,
    pub mtim: u64,
    pub ctim: u64,
}

impl Filestat {
    pub fn write(&self, mem: &mut GuestMemory, ptr: u32) -> WasiResult<()> {
        let mut rec = [0u8; size::FILESTAT as usize];
        rec[0..8].copy_from_slice(&self.dev.to_le_bytes());
        rec[8..16].copy_from_slice(&self.ino.to_le_bytes());
        rec[16] = self.filetype;
        rec[24..32].copy_from_slice(&self.nlink.to_le_bytes());
        rec[32..40].copy_from_slice(&self.size.to_le_bytes());
        rec[40..48].copy_from_slice(&self.atim.to_le_bytes());
        rec[48..56].copy_from_slice(&self.mtim.to_le_bytes());
        rec[56..64].copy_from_slice(&self.ctim.to_le_bytes());
        mem.write_bytes(ptr, &rec)
    }
}

/// Nanoseconds since the epoch from a (seconds, nanoseconds) pair; times before 1970 are 0.
fn nanos(secs: i64, nsec: i64) -> u64 {
    u64::try_from(secs)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(nsec).unwrap_or(0))
}

macro_rules! filetype_of {
    ($ft:expr) => {{
        let ft = $ft;
        if ft.is_dir() {
            filetype::DIRECTORY
        } else if ft.is_file() {
            filetype::REGULAR_FILE
        } else if ft.is_symlink() {
            filetype::SYMBOLIC_LINK
        } else if ft.is_char_device() {
            filetype::CHARACTER_DEVICE
        } else if ft.is_block_device() {
            filetype::BLOCK_DEVICE
        } else if ft.is_socket() {
            filetype::SOCKET_STREAM
        } else {
            filetype::UNKNOWN
        }
    }};
}

/// The WASI file type of a `cap-std` file type.
pub(crate) fn cap_filetype(ft: cap_std::fs::FileType) -> u8 {
    use cap_std::fs::FileTypeExt as _;
    filetype_of!(ft)
}

/// The `filestat` of host metadata.
pub(crate) fn std_filestat(m: &std::fs::Metadata) -> Filestat {
    use std::os::unix::fs::MetadataExt;
    Filestat {
        dev: m.dev(),
        ino: m.ino(),
        filetype: filetype_of!(m.file_type()),
        nlink: m.nlink(),
        size: m.size(),
        atim: nanos(m.atime(), m.atime_nsec()),
        mtim: nanos(m.mtime(), m.mtime_nsec()),
        ctim: nanos(m.ctime(), m.ctime_nsec()),
    }
}

/// The `filestat` of `cap-std` metadata.
pub(crate) fn cap_filestat(m: &cap_std::fs::Metadata) -> Filestat {
    use cap_std::fs::MetadataExt;
    Filestat {
        dev: m.dev(),
        ino: m.ino(),
        filetype: cap_filetype(m.file_type()),
        nlink: m.nlink(),
        size: m.size(),
        atim: nanos(m.atime(), m.atime_nsec()),
        mtim: nanos(m.mtime(), m.mtime_nsec()),
        ctim: nanos(m.ctime(), m.ctime_nsec()),
    }
}

/// The `filestat` of a host descriptor (an inherited standard stream).
fn host_fd_filestat(fd: RawFd) -> WasiResult<Filestat> {
    // SAFETY: `stat` is plain data, for which all-zero bytes are a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid, writable `stat`; a bad descriptor only makes fstat fail.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    let filetype = match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => filetype::REGULAR_FILE,
        libc::S_IFDIR => filetype::DIRECTORY,
        libc::S_IFCHR => filetype::CHARACTER_DEVICE,
        libc::S_IFBLK => filetype::BLOCK_DEVICE,
        libc::S_IFSOCK => filetype::SOCKET_STREAM,
        libc::S_IFLNK => filetype::SYMBOLIC_LINK,
        _ => filetype::UNKNOWN,
    };
    Ok(Filestat {
        dev: st.st_dev,
        ino: st.st_ino,
        filetype,
        nlink: st.st_nlink,
        size: u64::try_from(st.st_size).unwrap_or(0),
        atim: nanos(st.st_atime, st.st_atime_nsec),
        mtim: nanos(st.st_mtime, st.st_mtime_nsec),
        ctim: nanos(st.st_ctime, st.st_ctime_nsec),
    })
}

/// The WASI file type of a standard stream: a terminal is a character device; anything else
/// (a pipe, a file the host redirected, a buffer) is reported as `unknown`, which is what
/// makes the guest's C library buffer it fully rather than by line.
fn stream_filetype(host: Option<RawFd>) -> u8 {
    let tty = match host {
        // SAFETY: isatty only inspects the descriptor.
        Some(fd) => (unsafe { libc::isatty(fd) }) == 1,
        None => false,
    };
    if tty {
        filetype::CHARACTER_DEVICE
    } else {
        filetype::UNKNOWN
    }
}

impl Entry {
    /// The WASI file type of the descriptor.
    pub(crate) fn filetype(&self) -> WasiResult<u8> {
        Ok(match &self.kind {
            Kind::Reader { host, .. } | Kind::Writer { host, .. } => stream_filetype(*host),
            Kind::File(f) => filetype_of!(f.metadata()?.file_type()),
            Kind::Dir(_) => filetype::DIRECTORY,
        })
    }

    /// The host descriptor of a file or directory (not of a stream).
    fn raw_fd(&self) -> Option<RawFd> {
        match &self.kind {
            Kind::File(f) => Some(f.as_raw_fd()),
            Kind::Dir(d) => Some(d.dir.as_fd().as_raw_fd()),
            _ => None,
        }
    }
}

/// A duplicate of a directory's descriptor as a `std::fs::File`, for `fsync` and `fstat`.
fn dir_as_file(dir: &cap_std::fs::Dir) -> WasiResult<std::fs::File> {
    Ok(std::fs::File::from(dir.as_fd().try_clone_to_owned()?))
}

pub(crate) fn fd_advise(
    ctx: &mut WasiCtx,
    _mem: &mut GuestMemory,
    fd: u32,
    offset: u64,
    len: u64,
    advice: u32,
) -> WasiResult<()> {
    let e = ctx.entry(fd, rights::FD_ADVISE)?;
    let advice = match advice {
        0 => libc::POSIX_FADV_NORMAL,
        1 => libc::POSIX_FADV_SEQUENTIAL,
        2 => libc::POSIX_FADV_RANDOM,
        3 => libc::POSIX_FADV_WILLNEED,
        4 => libc::POSIX_FADV_DONTNEED,
        5 => libc::POSIX_FADV_NOREUSE,
        _ => return Err(Errno::Inval),
    };
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Err(Errno::Inval);
    };
    match &e.kind {
        Kind::File(f) => {
            // SAFETY: posix_fadvise only reads its integer arguments; the descriptor is open.
            let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), offset, len, advice) };
            if r != 0 {
                return Err(Errno::from_raw_os_error(r));
            }
            Ok(())
        }
        Kind::Dir(_) => Ok(()),
        _ => Err(Errno::Spipe),
    }
}

pub(crate) fn fd_allocate(
    ctx: &mut WasiCtx,
    _mem: &mut GuestMemory,
    fd: u32,
    offset: u64,
    len: u64,
) -> WasiResult<()> {
    let e = ctx.entry(fd, rights::FD_ALLOCATE)?;
    let Kind::File(f) = &e.kind else {
        return Err(Errno::Badf);
    };
    let end = offset.checked_add(len).ok_or(Errno::Fbig)?;
    if end > f.metadata()?.len() {
        f.set_len(end)?;
    }
    Ok(())
}

pub(crate) fn fd_close(ctx: &mut WasiCtx, _mem: &mut GuestMemory, fd: u32) -> WasiResult<()> {
    ctx.fds.remove(&fd).map(drop).ok_or(Errno::Badf)
}

fn sync(ctx: &mut WasiCtx, fd: u32, right: u64, data_only: bool) -> WasiResult<()> {
    let e = ctx.entry_mut(fd, right)?;
    match &mut e.kind {
        Kind::File(f) if data_only => f.sync_data()?,
        Kind::File(f) => f.sync_all()?,
        Kind::Dir(d) => dir_as_file(&d.dir)?.sync_all()?,
        Kind::Writer { stream, .. } => stream.flush()?,
        Kind::Reader { .. } => return Err(Errno::Inval),
    }
    Ok(())
}

pub(crate) fn fd_datasync(ctx: &mut WasiCtx, _mem: &mut GuestMemory, fd: u32) -> WasiResult<()> {
    sync(ctx, fd, rights::FD_DATASYNC, true)
}

pub(crate) fn fd_sync(ctx: &mut WasiCtx, _mem: &mut GuestMemory, fd: u32) -> WasiResult<()> {
    sync(ctx, fd, rights::FD_SYNC, false)
}

pub(crate) fn fd_fdstat_get(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory,
    fd: u32,
    buf: u32,
) -> WasiResult<()> {
    let e = ctx.entry(fd, 0)?;
    let mut rec = [0u8; size::FDSTAT as usize];
    rec[0] = e.filetype()?;
    rec[2..4].copy_from_slice(&e.flags.to_le_bytes());
    rec[8..16].copy_from_slice(&e.base.to_le_bytes());
    rec[16..24].copy_from_slice(&e.inheriting.to_le_bytes());
    mem.write_bytes(buf, &rec)
}

pub(crate) fn fd_fdstat_set_flags(
    ctx: &mut WasiCtx,
    _mem: &mut GuestMemory,
    fd: u32,
    flags: u32,
) -> WasiResult<()> {
    let e = ctx.entry_mut(fd, rights::FD_FDSTAT_SET_FLAGS)?;
    let flags = u16::try_from(flags).map_err(|_| Errno::Inval)?;
    let changeable = fdflags::APPEND | fdflags::NONBLOCK;
    if flags & !(changeable | fdflags::DSYNC | fdflags::RSYNC | fdflags::SYNC) != 0 {
        return Err(Errno::Inval);
    }
    // The synchronisation flags can only be chosen at path_open.
    if (flags ^ e.flags) & !changeable != 0 {
        return Err(Errno::Notsup);
    }
    if flags == e.flags {
        return Ok(());
    }
    let Kind::File(f) = &e.kind else {
        return Err(Errno::Notsup);
    };
    let raw = f.as_raw_fd();
    // SAFETY: F_GETFL on an open descriptor has no memory effects.
    let mut os = unsafe { libc::fcntl(raw, libc::F_GETFL) };
    if os < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    os &= !(libc::O_APPEND | libc::O_NONBLOCK);
    if flags & fdflags::APPEND != 0 {
        os |= libc::O_APPEND;
    }
    if flags & fdflags::NONBLOCK != 0 {
        os |= libc::O_NONBLOCK;
    }
    // SAFETY: F_SETFL with an integer flag word on an open descriptor.
    if unsafe { libc::fcntl(raw, libc::F_SETFL, os) } < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    e.flags = flags;
    Ok(())
}

pub(crate) fn fd_fdstat_set_rights(
    ctx: &mut WasiCtx,
    _mem: &mut GuestMemory,
    fd: u32,
    base: u64,
    inheriting: u64,
) -> WasiResult<()> {
    let e = ctx.entry_mut(fd, 0)?;
    // Rights can be dropped, never gained.
    if base & !e.base != 0 || inheriting & !e.inheriting != 0 {
        return Err(Errno::Notcapable);
    }
    e.base = base;
    e.inheriting = inheriting;
    Ok(())
}

/// The `filestat` of an open descriptor.
fn entry_filestat(e: &Entry) -> WasiResult<Filestat> {
    match &e.kind {
        Kind::File(f) => Ok(std_filestat(&f.metadata()?)),
        Kind::Dir(d) => Ok(cap_filestat(&d.dir.dir_metadata()?)),
        Kind::Reader { host: Some(h), .. } | Kind::Writer { host: Some(h), .. } => {
            let mut st = host_fd_filestat(*h)?;
            st.filetype = stream_filetype(Some(*h));
            Ok(st)
        }
        Kind::Reader { host: None, .. } | Kind::Writer { host: None, .. } => Ok(Filestat {
            filetype: filetype::UNKNOWN,
            nlink: 1,
            ..Filestat::default()
        }),
    }
}

pub(crate) fn fd_filestat_get(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory,
    fd: u32,
    buf: u32,
) -> WasiResult<()> {
    let st = entry_filestat(ctx.entry(fd, rights::FD_FILESTAT_GET)?)?;
    st.write(mem, buf)
}

pub(crate) fn fd_filestat_set_size(
    ctx: &mut WasiCtx,
    _mem: &mut GuestMemory,
    fd: u32,
    size: u64,
) -> WasiResult<()> {
    match &ctx.entry(fd, rights::FD_FILESTAT_SET_SIZE)?.kind {
        Kind::File(f) => Ok(f.set_len(size)?),
        Kind::Dir(_) => Err(Errno::Isdir),
        _ => Err(Errno::Inval),
    }
}

/// The `timespec` pair for `utimensat`/`futimens` from WASI's times and `fstflags`.
pub(crate) fn timespecs(atim: u64, mtim: u64, flags: u32) -> WasiResult<[libc::timespec; 2]> {
    let flags = u16::try_from(flags).map_err(|_| Errno::Inval)?;
    let all = fstflags::ATIM | fstflags::ATIM_NOW | fstflags::MTIM | fstflags::MTIM_NOW;
    if flags & !all != 0
        || (flags & fstflags::ATIM != 0 && flags & fstflags::ATIM_NOW != 0)
        || (flags & fstflags::MTIM != 0 && flags & fstflags::MTIM_NOW != 0)
    {
        return Err(Errno::Inval);
    }
    let spec = |t: u64, set: u16, now: u16| {
        if flags & now != 0 {
            libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_NOW,
            }
        } else if flags & set != 0 {
            libc::timespec {
                tv_sec: (t / 1_000_000_000) as libc::time_t,
                tv_nsec: (t % 1_000_000_000) as libc::c_long,
            }
        } else {
            libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_OMIT,
            }
        }
    };
    Ok([
        spec(atim, fstflags::ATIM, fstflags::ATIM_NOW),
        spec(mtim, fstflags::MTIM, fstflags::MTIM_NOW),
    ])
}

pub(crate) fn fd_filestat_set_times(
    ctx: &mut WasiCtx,
    _mem: &mut GuestMemory,
    fd: u32,
    atim: u64,
    mtim: u64,
    flags: u32,
) -> WasiResult<()> {
    let e = ctx.entry(fd, rights::FD_FILESTAT_SET_TIMES)?;
    let times = timespecs(atim, mtim, flags)?;
    let raw = e.raw_fd().ok_or(Errno::Badf)?;
    // SAFETY: `times` is an array of two valid timespecs; the descriptor is open.
    if unsafe { libc::futimens(raw, times.as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(())
}

/// The rights `fd_read`-like calls need; a descriptor without them is `badf`, as POSIX
/// reports a read from a write-only descriptor.
fn io_entry(ctx: &mut WasiCtx, fd: u32, right: u64) -> WasiResult<&mut Entry> {
    let e = ctx.fds.get_mut(&fd).ok_or(Errno::Badf)?;
    // Reading or writing a directory is `isdir` whatever its rights, as read(2) reports it.
    if matches!(e.kind, Kind::Dir(_)) {
        return Err(Errno::Isdir);
    }
    if e.base & right == 0 {
        return Err(Errno::Badf);
    }
    Ok(e)
}

pub(crate) fn fd_read(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory,
    fd: u32,
    iovs: u32,
    iovs_len: u32,
    nread: u32,
) -> WasiResult<()> {
    let iovs = mem.iovecs(iovs, iovs_len)?;
    mem.slice(nread, 4)?;
    let e = io_entry(ctx, fd, rights::FD_READ)?;
    let total = match &mut e.kind {
        Kind::File(f) => {
            let mut total = 0usize;
            for &(buf, len) in &iovs {
                let len = len.min((crate::mem::MAX_IO - total) as u32);
                let n = f.read(mem.slice_mut(buf, len)?)?;
                total += n;
                if n < len as usize || total >= crate::mem::MAX_IO {
                    break;
                }
            }
            total
        }
        // A stream is read once (a second read could block after a short first one).
        Kind::Reader { stream, .. } => {
            let want: usize = iovs.iter().map(|&(_, len)| len as usize).sum();
            let mut tmp = vec![0u8; want.min(1 << 20)];
            let n = loop {
                match stream.read(&mut tmp) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    r => break r?,
                }
            };
            mem.scatter(&iovs, &tmp[..n])?
        }
        Kind::Dir(_) => return Err(Errno::Isdir),
        Kind::Writer { .. } => return Err(Errno::Badf),
    };
    mem.write_u32(nread, total as u32)
}

/// The file behind `e` for positioned I/O (`fd_pread`/`fd_pwrite`): `spipe` for a stream, as
/// pread(2) on a pipe, whatever its rights; `notcapable` without the seek right.
fn positioned(e: &Entry) -> WasiResult<&std::fs::File> {
    let Kind::File(f) = &e.kind else {
        return Err(Errno::Spipe);
    };
    if e.base & rights::FD_SEEK == 0 {
        return Err(Errno::Notcapable);
    }
    Ok(f)
}

pub(crate) fn fd_pread(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory,
    fd: u32,
    iovs: u32,
    iovs_len: u32,
    offset: u64,
    nread: u32,
) -> WasiResult<()> {
    let iovs = mem.iovecs(iovs, iovs_len)?;
    mem.slice(nread, 4)?;
    let f = positioned(io_entry(ctx, fd, rights::FD_READ)?)?;
    let mut total = 0usize;
    let mut at = offset;
    for &(buf, len) in &iovs {
        let len = len.min((crate::mem::MAX_IO - total) as u32);
        let n = f.read_at(mem.slice_mut(buf, len)?, at)?;
        total += n;
        at += n as u64;
        if n < len as usize || total >= crate::mem::MAX_IO {
            break;
        }
    }
    mem.write_u32(nread, total as u32)
}

pub(crate) fn fd_write(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory,
    fd: u32,
    iovs: u32,
    iovs_len: u32,
    nwritten: u32,
) -> WasiResult<()> {
    let iovs = mem.iovecs(iovs, iovs_len)?;
    mem.slice(nwritten, 4)?;
    let e = io_entry(ctx, fd, rights::FD_WRITE)?;
    let data = mem.gather(&iovs)?;
    match &mut e.kind {
        Kind::File(f) => f.write_all(&data)?,
        // Straight through: the guest's output reaches the terminal (or the buffer) at once.
        Kind::Writer { stream, .. } => {
            stream.write_all(&data)?;
            stream.flush()?;
        }
        Kind::Dir(_) => return Err(Errno::Isdir),
        Kind::Reader { .. } => return Err(Errno::Badf),
    }
    mem.write_u32(nwritten, data.len() as u32)
}

pub(crate) fn fd_pwrite(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory,
    fd: u32,
    iovs: u32,
    iovs_len: u32,
    offset: u64,
    nwritten: u32,
) -> WasiResult<()> {
    let iovs = mem.iovecs(iovs, iovs_len)?;
    mem.slice(nwritten, 4)?;
    let f = positioned(io_entry(ctx, fd, rights::FD_WRITE)?)?;
    let data = mem.gather(&iovs)?;
    f.write_all_at(&data, offset)?;
    mem.write_u32(nwritten, data.len() as u32)
}

pub(crate) fn fd_prestat_get(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory,
    fd: u32,
    buf: u32,
) -> WasiResult<()> {
    // `badf` for anything but a preopened directory: the C library scans descriptors from 3
    // until it sees `badf`.
    let name = match &ctx.fds.get(&fd).ok_or(Errno::Badf)?.kind {
        Kind::Dir(d) => d.preopen.as_ref().ok_or(Errno::Badf)?,
        _ => return Err(Errno::Badf),
    };
    let mut rec = [0u8; size::PRESTAT as usize];
    rec[0] = PREOPENTYPE_DIR;
    rec[4..8].copy_from_slice(&(name.len() as u32).to_le_bytes());
    mem.write_bytes(buf, &rec)
}

pub(crate) fn fd_prestat_dir_name(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory,
    fd: u32,
    path: u32,
    path_len: u32,
) -> WasiResult<()> {
    let name = match &ctx.fds.get(&fd).ok_or(Errno::Badf)?.kind {
        Kind::Dir(d) => d.preopen.as_ref().ok_or(Errno::Badf)?,
        _ => return Err(Errno::Badf),
    };
    if (path_len as usize) < name.len() {
        return Err(Errno::Nametoolong);
    }
    mem.write_bytes(path, name.as_bytes())
}

/// One directory entry as `fd_readdir` reports it.
#[derive(Debug, Clone)]
pub(crate) struct Listed {
    name: Vec<u8>,
    ino: u64,
    filetype: u8,
}

/// The entries of a directory: `.`, `..`, then the rest by name, so a listing is stable
/// between the calls that page through it.
fn list(dir: &cap_std::fs::Dir) -> WasiResult<Vec<Listed>> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::DirEntryExt;
    let ino = {
        use cap_std::fs::MetadataExt;
        dir.dir_metadata()?.ino()
    };
    let mut out = vec![
        Listed {
            name: b".".to_vec(),
            ino,
            filetype: filetype::DIRECTORY,
        },
        Listed {
            name: b"..".to_vec(),
            // The parent may be outside the sandbox: its inode number is not given away.
            ino: 0,
            filetype: filetype::DIRECTORY,
        },
    ];
    let mut rest = Vec::new();
    for entry in dir.entries()? {
        let entry = entry?;
        let filetype = entry
            .file_type()
            .map(cap_filetype)
            .unwrap_or(filetype::UNKNOWN);
        rest.push(Listed {
            name: entry.file_name().as_bytes().to_vec(),
            ino: entry.ino(),
            filetype,
        });
    }
    rest.sort_by(|a, b| a.name.cmp(&b.name));
    out.extend(rest);
    Ok(out)
}

pub(crate) fn fd_readdir(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory,
    fd: u32,
    buf: u32,
    buf_len: u32,
    cookie: u64,
    bufused: u32,
) -> WasiResult<()> {
    mem.slice(buf, buf_len)?;
    mem.slice(bufused, 4)?;
    let e = ctx.entry_mut(fd, rights::FD_READDIR)?;
    let Kind::Dir(d) = &mut e.kind else {
        return Err(Errno::Notdir);
    };
    if cookie == 0 || d.listing.is_none() {
        d.listing = Some(list(&d.dir)?);
    }
    let listing = d.listing.as_ref().expect("listing taken above");
    let mut out = Vec::with_capacity(buf_len as usize);
    let start = usize::try_from(cookie).unwrap_or(usize::MAX);
    for (i, item) in listing.iter().enumerate().skip(start) {
        if out.len() >= buf_len as usize {
            break;
        }
        let mut rec = [0u8; size::DIRENT as usize];
        rec[0..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
        rec[8..16].copy_from_slice(&item.ino.to_le_bytes());
        rec[16..20].copy_from_slice(&(item.name.len() as u32).to_le_bytes());
        rec[20] = item.filetype;
        out.extend_from_slice(&rec);
        out.extend_from_slice(&item.name);
    }
    // A full buffer tells the caller there may be more; the last record may be cut short.
    out.truncate(buf_len as usize);
    mem.write_bytes(buf, &out)?;
    mem.write_u32(bufused, out.len() as u32)
}

pub(crate) fn fd_renumber(
    ctx: &mut WasiCtx,
    _mem: &mut GuestMemory,
    from: u32,
    to: u32,
) -> WasiResult<()> {
    if !ctx.fds.contains_key(&from) || !ctx.fds.contains_key(&to) {
        return Err(Errno::Badf);
    }
    if from != to {
        let e = ctx.fds.remove(&from).expect("checked above");
        ctx.fds.insert(to, e);
    }
    Ok(())
}

pub(crate) fn fd_seek(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory,
    fd: u32,
    offset: u64,
    whence: u32,
    newoffset: u32,
) -> WasiResult<()> {
    let offset = offset as i64;
    // `fd_tell`'s right suffices for a seek that moves nothing.
    let right = if whence == u32::from(whence::CUR) && offset == 0 {
        rights::FD_TELL
    } else {
        rights::FD_SEEK
    };
    mem.slice(newoffset, 8)?;
    let e = ctx.fds.get_mut(&fd).ok_or(Errno::Badf)?;
    if e.base & (right | rights::FD_SEEK) == 0 {
        return Err(match e.kind {
            Kind::Reader { .. } | Kind::Writer { .. } => Errno::Spipe,
            _ => Errno::Notcapable,
        });
    }
    let pos = match whence.try_into() {
        Ok(whence::SET) => SeekFrom::Start(u64::try_from(offset).map_err(|_| Errno::Inval)?),
        Ok(whence::CUR) => SeekFrom::Current(offset),
        Ok(whence::END) => SeekFrom::End(offset),
        _ => return Err(Errno::Inval),
    };
    let new = match &mut e.kind {
        Kind::File(f) => f.seek(pos)?,
        Kind::Dir(_) => return Err(Errno::Badf),
        _ => return Err(Errno::Spipe),
    };
    mem.write_u64(newoffset, new)
}

pub(crate) fn fd_tell(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory,
    fd: u32,
    offset: u32,
) -> WasiResult<()> {
    mem.slice(offset, 8)?;
    let e = ctx.fds.get_mut(&fd).ok_or(Errno::Badf)?;
    if e.base & rights::FD_TELL == 0 {
        return Err(match e.kind {
            Kind::Reader { .. } | Kind::Writer { .. } => Errno::Spipe,
            _ => Errno::Notcapable,
        });
    }
    let pos = match &mut e.kind {
        Kind::File(f) => f.stream_position()?,
        Kind::Dir(_) => return Err(Errno::Badf),
        _ => return Err(Errno::Spipe),
    };
    mem.write_u64(offset, pos)
}
