//! Tests of the functions on their own, with a byte vector as guest memory: the sandbox,
//! rights, guest pointer checks, directory listing, polling.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::ctx::{WasiCtx, WasiCtxBuilder};
use crate::errno::Errno;
use crate::mem::GuestMemory;
use crate::types::{LOOKUP_SYMLINK_FOLLOW, SUBSCRIPTION_CLOCK_ABSTIME, eventtype, oflags, rights};
use crate::{fd, path, poll, proc};

/// A scratch directory, removed at the end of the test.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("spate-wasi-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Where the tests put their strings and results in guest memory.
const PATH: u32 = 1024;
const PATH2: u32 = 2048;
const OUT: u32 = 4096;
const BUF: u32 = 8192;

/// A context with `root/box` preopened as `.` (descriptor 3); `root/secret.txt` is outside.
fn sandbox(name: &str) -> (Scratch, WasiCtx) {
    let s = Scratch::new(name);
    std::fs::create_dir(s.0.join("box")).unwrap();
    std::fs::write(s.0.join("secret.txt"), "secret").unwrap();
    let ctx = WasiCtxBuilder::new()
        .preopened_dir(s.0.join("box"), ".")
        .unwrap()
        .build();
    (s, ctx)
}

fn put(mem: &mut GuestMemory, at: u32, s: &str) -> (u32, u32) {
    mem.write_bytes(at, s.as_bytes()).unwrap();
    (at, s.len() as u32)
}

/// `path_open` of `p` under descriptor 3; returns the new descriptor.
fn open(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory,
    p: &str,
    lookup: u32,
    oflags: u16,
    base: u64,
) -> Result<u32, Errno> {
    let (ptr, len) = put(mem, PATH, p);
    let args = [
        3,
        u64::from(lookup),
        u64::from(ptr),
        u64::from(len),
        u64::from(oflags),
        base,
        rights::DIRECTORY_INHERITING,
        0,
        u64::from(OUT),
    ];
    path::path_open(ctx, mem, args)?;
    Ok(mem.read_u32(OUT).unwrap())
}

fn stat(ctx: &mut WasiCtx, mem: &mut GuestMemory, p: &str, lookup: u32) -> Result<(), Errno> {
    let (ptr, len) = put(mem, PATH, p);
    path::path_filestat_get(ctx, mem, 3, lookup, ptr, len, OUT)
}

#[test]
fn paths_cannot_leave_the_preopened_directory() {
    let (s, mut ctx) = sandbox("escape");
    let mut bytes = vec![0u8; 65536];
    let mut mem = GuestMemory::new(&mut bytes);
    let follow = LOOKUP_SYMLINK_FOLLOW;
    let read = rights::FD_READ;

    // A `..` chain, and a `..` hidden after a real component.
    for p in [
        "../secret.txt",
        "../../../../../../etc/passwd",
        "./../secret.txt",
    ] {
        assert_eq!(
            open(&mut ctx, &mut mem, p, follow, 0, read),
            Err(Errno::Notcapable),
            "{p}"
        );
    }
    std::fs::create_dir(s.0.join("box/sub")).unwrap();
    assert_eq!(
        open(&mut ctx, &mut mem, "sub/../../secret.txt", follow, 0, read),
        Err(Errno::Notcapable)
    );
    // Absolute paths.
    for p in ["/etc/passwd", "/"] {
        assert_eq!(
            open(&mut ctx, &mut mem, p, follow, 0, read),
            Err(Errno::Notcapable),
            "{p}"
        );
        assert_eq!(
            stat(&mut ctx, &mut mem, p, follow),
            Err(Errno::Notcapable),
            "{p}"
        );
    }
    // Symbolic links made on the host that point outside: absolute, and relative.
    std::os::unix::fs::symlink(&s.0, s.0.join("box/out")).unwrap();
    std::os::unix::fs::symlink(s.0.join("secret.txt"), s.0.join("box/out_file")).unwrap();
    std::os::unix::fs::symlink("../secret.txt", s.0.join("box/rel_file")).unwrap();
    for p in [
        "out/secret.txt",
        "out_file",
        "rel_file",
        "out/box/../secret.txt",
    ] {
        assert_eq!(
            open(&mut ctx, &mut mem, p, follow, 0, read),
            Err(Errno::Notcapable),
            "{p}"
        );
        assert_eq!(
            stat(&mut ctx, &mut mem, p, follow),
            Err(Errno::Notcapable),
            "{p}"
        );
    }
    // Not following the final link: it is a link, and opening it is a loop.
    assert_eq!(
        open(&mut ctx, &mut mem, "out_file", 0, 0, read),
        Err(Errno::Loop)
    );
    assert_eq!(stat(&mut ctx, &mut mem, "out_file", 0), Ok(()));
    assert_eq!(
        mem.read_u8(OUT + 16),
        Ok(crate::types::filetype::SYMBOLIC_LINK)
    );
    // Its contents can be read, as data.
    let (p, l) = put(&mut mem, PATH, "out_file");
    path::path_readlink(&mut ctx, &mut mem, 3, p, l, BUF, 256, OUT).unwrap();
    let n = mem.read_u32(OUT).unwrap();
    let target = s.0.join("secret.txt");
    assert_eq!(
        mem.slice(BUF, n).unwrap(),
        target.to_str().unwrap().as_bytes()
    );

    // A symlink to an absolute target cannot be made; one with `..` can, but not followed.
    let (t, tl) = put(&mut mem, PATH2, "/tmp");
    let (p, l) = put(&mut mem, PATH, "abs");
    assert_eq!(
        path::path_symlink(&mut ctx, &mut mem, t, tl, 3, p, l),
        Err(Errno::Notcapable)
    );
    let (t, tl) = put(&mut mem, PATH2, "../secret.txt");
    let (p, l) = put(&mut mem, PATH, "guest_rel");
    path::path_symlink(&mut ctx, &mut mem, t, tl, 3, p, l).unwrap();
    assert_eq!(
        open(&mut ctx, &mut mem, "guest_rel", follow, 0, read),
        Err(Errno::Notcapable)
    );

    // Creating, removing and renaming outside fail the same way, and change nothing.
    let (p, l) = put(&mut mem, PATH, "../made");
    assert_eq!(
        path::path_create_directory(&mut ctx, &mut mem, 3, p, l),
        Err(Errno::Notcapable)
    );
    let (p, l) = put(&mut mem, PATH, "../secret.txt");
    assert_eq!(
        path::path_unlink_file(&mut ctx, &mut mem, 3, p, l),
        Err(Errno::Notcapable)
    );
    let (q, ql) = put(&mut mem, PATH2, "stolen.txt");
    assert_eq!(
        path::path_rename(&mut ctx, &mut mem, 3, p, l, 3, q, ql),
        Err(Errno::Notcapable)
    );
    assert_eq!(
        open(
            &mut ctx,
            &mut mem,
            "out/new.txt",
            follow,
            oflags::CREAT,
            rights::FD_WRITE
        ),
        Err(Errno::Notcapable)
    );
    assert!(s.0.join("secret.txt").exists());
    assert!(!s.0.join("made").exists());
    assert!(!s.0.join("new.txt").exists());
    assert!(!s.0.join("box/stolen.txt").exists());

    // Inside is fine.
    let fd = open(
        &mut ctx,
        &mut mem,
        "sub/../inside.txt",
        follow,
        oflags::CREAT,
        rights::FD_WRITE,
    )
    .unwrap();
    assert!(fd > 3);
    assert!(s.0.join("box/inside.txt").exists());
}

#[test]
fn rights_limit_what_a_descriptor_can_do() {
    let (s, mut ctx) = sandbox("rights");
    std::fs::write(s.0.join("box/f.txt"), "data").unwrap();
    let mut bytes = vec![0u8; 65536];
    let mut mem = GuestMemory::new(&mut bytes);
    let ro = open(
        &mut ctx,
        &mut mem,
        "f.txt",
        0,
        0,
        rights::FD_READ | rights::FD_SEEK,
    )
    .unwrap();

    // One iovec (at 0): 4 bytes at BUF.
    mem.write_u32(0, BUF).unwrap();
    mem.write_u32(4, 4).unwrap();
    mem.write_bytes(BUF, b"xxxx").unwrap();
    assert_eq!(
        fd::fd_write(&mut ctx, &mut mem, ro, 0, 1, OUT),
        Err(Errno::Badf)
    );
    assert_eq!(
        fd::fd_pwrite(&mut ctx, &mut mem, ro, 0, 1, 0, OUT),
        Err(Errno::Badf)
    );
    assert_eq!(
        fd::fd_filestat_set_size(&mut ctx, &mut mem, ro, 0),
        Err(Errno::Notcapable)
    );
    fd::fd_read(&mut ctx, &mut mem, ro, 0, 1, OUT).unwrap();
    assert_eq!(mem.slice(BUF, 4).unwrap(), b"data");
    assert_eq!(std::fs::read(s.0.join("box/f.txt")).unwrap(), b"data");

    // Rights can be dropped, never regained.
    let base = rights::FD_READ | rights::FD_WRITE;
    assert_eq!(
        fd::fd_fdstat_set_rights(&mut ctx, &mut mem, ro, base, 0),
        Err(Errno::Notcapable)
    );
    fd::fd_fdstat_set_rights(&mut ctx, &mut mem, ro, rights::FD_SEEK, 0).unwrap();
    assert_eq!(
        fd::fd_read(&mut ctx, &mut mem, ro, 0, 1, OUT),
        Err(Errno::Badf)
    );
    fd::fd_fdstat_get(&mut ctx, &mut mem, ro, OUT).unwrap();
    assert_eq!(mem.read_u64(OUT + 8), Ok(rights::FD_SEEK));

    // A directory without the right to create files cannot create them.
    fd::fd_fdstat_set_rights(&mut ctx, &mut mem, 3, rights::PATH_OPEN, rights::FD_READ).unwrap();
    assert_eq!(
        open(
            &mut ctx,
            &mut mem,
            "g.txt",
            0,
            oflags::CREAT,
            rights::FD_WRITE
        ),
        Err(Errno::Notcapable)
    );
    // What it hands down is limited by its inheriting rights.
    let fd = open(
        &mut ctx,
        &mut mem,
        "f.txt",
        0,
        0,
        rights::FD_READ | rights::FD_WRITE,
    )
    .unwrap();
    assert_eq!(
        fd::fd_write(&mut ctx, &mut mem, fd, 0, 1, OUT),
        Err(Errno::Badf)
    );

    // Standard streams do not seek; a missing descriptor is `badf`.
    assert_eq!(
        fd::fd_seek(&mut ctx, &mut mem, 1, 0, 0, OUT),
        Err(Errno::Spipe)
    );
    assert_eq!(fd::fd_tell(&mut ctx, &mut mem, 0, OUT), Err(Errno::Spipe));
    assert_eq!(fd::fd_close(&mut ctx, &mut mem, 99), Err(Errno::Badf));
    assert_eq!(
        proc::sock_accept(&mut ctx, &mut mem, 1, 0, OUT),
        Err(Errno::Notsock)
    );
    assert_eq!(
        proc::sock_shutdown(&mut ctx, &mut mem, 99, 0),
        Err(Errno::Badf)
    );
}

#[test]
fn guest_pointers_out_of_bounds_fault() {
    let (_s, mut ctx) = sandbox("fault");
    let mut bytes = vec![0u8; 4096];
    let mut mem = GuestMemory::new(&mut bytes);
    ctx.args = vec!["prog".into(), "arg".into()];
    assert_eq!(
        proc::args_sizes_get(&mut ctx, &mut mem, 4094, 0),
        Err(Errno::Fault)
    );
    assert_eq!(
        proc::args_get(&mut ctx, &mut mem, 0, 4090),
        Err(Errno::Fault)
    );
    assert_eq!(
        proc::args_get(&mut ctx, &mut mem, u32::MAX - 2, 0),
        Err(Errno::Fault)
    );
    // An iovec list running off the end, and one whose buffer does.
    assert_eq!(
        fd::fd_write(&mut ctx, &mut mem, 1, 4090, 1, 0),
        Err(Errno::Fault)
    );
    mem.write_u32(0, 4000).unwrap();
    mem.write_u32(4, 200).unwrap();
    assert_eq!(
        fd::fd_write(&mut ctx, &mut mem, 1, 0, 1, 16),
        Err(Errno::Fault)
    );
    assert_eq!(
        fd::fd_read(&mut ctx, &mut mem, 0, 0, 1, 16),
        Err(Errno::Fault)
    );
    assert_eq!(
        fd::fd_read(&mut ctx, &mut mem, 0, 0, u32::MAX, 16),
        Err(Errno::Inval)
    );
    // A path that runs off the end; a result pointer that does.
    assert_eq!(
        path::path_create_directory(&mut ctx, &mut mem, 3, 4000, 200),
        Err(Errno::Fault)
    );
    assert_eq!(
        poll::clock_time_get(&mut ctx, &mut mem, 1, 0, 4092),
        Err(Errno::Fault)
    );
    assert_eq!(
        proc::random_get(&mut ctx, &mut mem, 4000, 97),
        Err(Errno::Fault)
    );
    assert_eq!(
        fd::fd_prestat_get(&mut ctx, &mut mem, 3, 4090),
        Err(Errno::Fault)
    );
    // Unaligned pointers are fine.
    poll::clock_time_get(&mut ctx, &mut mem, 0, 0, 13).unwrap();
    assert!(mem.read_u64(13).unwrap() > 1_577_836_800_000_000_000);
    proc::args_sizes_get(&mut ctx, &mut mem, 101, 203).unwrap();
    assert_eq!((mem.read_u32(101), mem.read_u32(203)), (Ok(2), Ok(9)));
    proc::args_get(&mut ctx, &mut mem, 301, 403).unwrap();
    assert_eq!(mem.read_u32(305), Ok(408));
    assert_eq!(mem.slice(403, 9).unwrap(), b"prog\0arg\0");
}

#[test]
fn readdir_pages_through_a_small_buffer() {
    let (s, mut ctx) = sandbox("readdir");
    let names = ["a", "bb", "ccc", "a-much-longer-file-name.txt", "dir"];
    for n in &names[..4] {
        std::fs::write(s.0.join("box").join(n), n).unwrap();
    }
    std::fs::create_dir(s.0.join("box/dir")).unwrap();
    let mut bytes = vec![0u8; 65536];
    let mut mem = GuestMemory::new(&mut bytes);
    for buf_len in [56u32, 64, 1000] {
        let mut seen = Vec::new();
        let mut cookie = 0u64;
        loop {
            fd::fd_readdir(&mut ctx, &mut mem, 3, BUF, buf_len, cookie, OUT).unwrap();
            let used = mem.read_u32(OUT).unwrap();
            let mut at = 0;
            while at + 24 <= used {
                let next = mem.read_u64(BUF + at).unwrap();
                let len = mem.read_u32(BUF + at + 16).unwrap();
                if at + 24 + len > used {
                    break; // cut short: read it again from `cookie`
                }
                let ty = mem.read_u8(BUF + at + 20).unwrap();
                let name = mem.slice(BUF + at + 24, len).unwrap().to_vec();
                seen.push((String::from_utf8(name).unwrap(), ty));
                cookie = next;
                at += 24 + len;
            }
            if used < buf_len {
                break;
            }
        }
        let mut want: Vec<&str> = vec![".", ".."];
        let mut sorted = names.to_vec();
        sorted.sort();
        want.extend(sorted);
        let got: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(got, want, "buffer of {buf_len} bytes");
        let dir = seen.iter().find(|(n, _)| n == "dir").unwrap();
        assert_eq!(dir.1, crate::types::filetype::DIRECTORY);
    }
    // Past the end: nothing.
    fd::fd_readdir(&mut ctx, &mut mem, 3, BUF, 100, 1000, OUT).unwrap();
    assert_eq!(mem.read_u32(OUT), Ok(0));
    assert_eq!(
        fd::fd_readdir(&mut ctx, &mut mem, 1, BUF, 100, 0, OUT),
        Err(Errno::Notcapable)
    );
}

/// A `Write` into a shared buffer.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn streams_pass_data_straight_through() {
    let out = Shared::default();
    let mut ctx = WasiCtxBuilder::new()
        .stdin(&b"input line\n"[..])
        .stdout(out.clone())
        .build();
    let mut bytes = vec![0u8; 4096];
    let mut mem = GuestMemory::new(&mut bytes);
    // Two iovecs: "hello, " and "world\n".
    mem.write_bytes(100, b"hello, world\n").unwrap();
    for (i, (ptr, len)) in [(100u32, 7u32), (107, 6)].into_iter().enumerate() {
        mem.write_u32(i as u32 * 8, ptr).unwrap();
        mem.write_u32(i as u32 * 8 + 4, len).unwrap();
    }
    fd::fd_write(&mut ctx, &mut mem, 1, 0, 2, 200).unwrap();
    assert_eq!(mem.read_u32(200), Ok(13));
    assert_eq!(out.0.lock().unwrap().as_slice(), b"hello, world\n");
    // stdin: scattered over the two iovecs.
    fd::fd_read(&mut ctx, &mut mem, 0, 0, 2, 200).unwrap();
    assert_eq!(mem.read_u32(200), Ok(11));
    assert_eq!(mem.slice(100, 13).unwrap(), b"input line\nd\n");
    fd::fd_read(&mut ctx, &mut mem, 0, 0, 2, 200).unwrap();
    assert_eq!(mem.read_u32(200), Ok(0));
    // stderr was not given: it discards.
    fd::fd_write(&mut ctx, &mut mem, 2, 0, 2, 200).unwrap();
    assert_eq!(
        fd::fd_write(&mut ctx, &mut mem, 0, 0, 2, 200),
        Err(Errno::Badf)
    );
}

/// Writes a clock subscription at `at`.
fn clock_sub(mem: &mut GuestMemory, at: u32, userdata: u64, id: u32, timeout: u64, flags: u16) {
    mem.write_bytes(at, &[0u8; 48]).unwrap();
    mem.write_u64(at, userdata).unwrap();
    mem.write_u8(at + 8, eventtype::CLOCK).unwrap();
    mem.write_u32(at + 16, id).unwrap();
    mem.write_u64(at + 24, timeout).unwrap();
    mem.write_bytes(at + 40, &flags.to_le_bytes()).unwrap();
}

#[test]
fn poll_oneoff_waits_for_clocks_and_reports_ready_descriptors() {
    let mut ctx = WasiCtxBuilder::new().build();
    let mut bytes = vec![0u8; 8192];
    let mut mem = GuestMemory::new(&mut bytes);
    let ms = 1_000_000u64;

    // Relative: the earlier of two clocks fires.
    clock_sub(&mut mem, 0, 11, 1, 30 * ms, 0);
    clock_sub(&mut mem, 48, 22, 1, 5_000 * ms, 0);
    let t = Instant::now();
    poll::poll_oneoff(&mut ctx, &mut mem, 0, 1024, 2, 2048).unwrap();
    let waited = t.elapsed();
    assert!(waited >= Duration::from_millis(30) && waited < Duration::from_millis(4_000));
    assert_eq!(mem.read_u32(2048), Ok(1));
    assert_eq!(mem.read_u64(1024), Ok(11));
    assert_eq!(mem.read_u16(1024 + 8), Ok(0));
    assert_eq!(mem.read_u8(1024 + 10), Ok(eventtype::CLOCK));

    // Absolute, on the monotonic clock.
    let now = poll::now(1).unwrap();
    clock_sub(
        &mut mem,
        0,
        33,
        1,
        now + 20 * ms,
        SUBSCRIPTION_CLOCK_ABSTIME,
    );
    poll::poll_oneoff(&mut ctx, &mut mem, 0, 1024, 1, 2048).unwrap();
    assert!(poll::now(1).unwrap() >= now + 20 * ms);
    assert_eq!(mem.read_u64(1024), Ok(33));
    // An absolute time in the past fires at once.
    clock_sub(&mut mem, 0, 34, 1, now, SUBSCRIPTION_CLOCK_ABSTIME);
    let t = Instant::now();
    poll::poll_oneoff(&mut ctx, &mut mem, 0, 1024, 1, 2048).unwrap();
    assert!(t.elapsed() < Duration::from_millis(2_000));
    assert_eq!(mem.read_u64(1024), Ok(34));

    // A writable stream is ready at once, before a long clock; a bad descriptor is an event
    // with an error.
    clock_sub(&mut mem, 0, 44, 1, 60_000 * ms, 0);
    mem.write_bytes(48, &[0u8; 48]).unwrap();
    mem.write_u64(48, 55).unwrap();
    mem.write_u8(48 + 8, eventtype::FD_WRITE).unwrap();
    mem.write_u32(48 + 16, 1).unwrap();
    mem.write_bytes(96, &[0u8; 48]).unwrap();
    mem.write_u64(96, 66).unwrap();
    mem.write_u8(96 + 8, eventtype::FD_READ).unwrap();
    mem.write_u32(96 + 16, 42).unwrap();
    let t = Instant::now();
    poll::poll_oneoff(&mut ctx, &mut mem, 0, 1024, 3, 2048).unwrap();
    assert!(t.elapsed() < Duration::from_millis(10_000));
    assert_eq!(mem.read_u32(2048), Ok(2));
    assert_eq!(mem.read_u64(1024), Ok(55));
    assert_eq!(mem.read_u8(1024 + 10), Ok(eventtype::FD_WRITE));
    assert_eq!(mem.read_u64(1024 + 32), Ok(66));
    assert_eq!(mem.read_u16(1024 + 32 + 8), Ok(Errno::Badf as u16));

    assert_eq!(
        poll::poll_oneoff(&mut ctx, &mut mem, 0, 1024, 0, 2048),
        Err(Errno::Inval)
    );
    clock_sub(&mut mem, 0, 1, 9, 0, 0);
    poll::poll_oneoff(&mut ctx, &mut mem, 0, 1024, 1, 2048).unwrap();
    assert_eq!(mem.read_u16(1024 + 8), Ok(Errno::Inval as u16));
}

#[test]
fn files_read_write_seek_and_renumber() {
    let (s, mut ctx) = sandbox("files");
    let mut bytes = vec![0u8; 65536];
    let mut mem = GuestMemory::new(&mut bytes);
    let rw = rights::FILE;
    let fd = open(
        &mut ctx,
        &mut mem,
        "f.bin",
        0,
        oflags::CREAT | oflags::EXCL,
        rw,
    )
    .unwrap();
    assert_eq!(
        open(
            &mut ctx,
            &mut mem,
            "f.bin",
            0,
            oflags::CREAT | oflags::EXCL,
            rw
        ),
        Err(Errno::Exist)
    );
    mem.write_u32(0, 100).unwrap();
    mem.write_u32(4, 10).unwrap();
    mem.write_bytes(100, b"0123456789").unwrap();
    fd::fd_write(&mut ctx, &mut mem, fd, 0, 1, 200).unwrap();
    fd::fd_tell(&mut ctx, &mut mem, fd, 200).unwrap();
    assert_eq!(mem.read_u64(200), Ok(10));
    fd::fd_seek(&mut ctx, &mut mem, fd, (-4i64) as u64, 2, 200).unwrap();
    assert_eq!(mem.read_u64(200), Ok(6));
    assert_eq!(
        fd::fd_seek(&mut ctx, &mut mem, fd, 0, 7, 200),
        Err(Errno::Inval)
    );
    assert_eq!(
        fd::fd_seek(&mut ctx, &mut mem, fd, (-100i64) as u64, 1, 200),
        Err(Errno::Inval)
    );
    mem.write_u32(4, 3).unwrap();
    fd::fd_read(&mut ctx, &mut mem, fd, 0, 1, 200).unwrap();
    assert_eq!(mem.slice(100, 3).unwrap(), b"678");
    fd::fd_pread(&mut ctx, &mut mem, fd, 0, 1, 1, 200).unwrap();
    assert_eq!(mem.slice(100, 3).unwrap(), b"123");
    fd::fd_allocate(&mut ctx, &mut mem, fd, 0, 64).unwrap();
    fd::fd_filestat_get(&mut ctx, &mut mem, fd, 300).unwrap();
    assert_eq!(mem.read_u64(300 + 32), Ok(64));
    assert_eq!(
        mem.read_u8(300 + 16),
        Ok(crate::types::filetype::REGULAR_FILE)
    );
    fd::fd_filestat_set_times(&mut ctx, &mut mem, fd, 0, 5_000_000_000, 4).unwrap();
    fd::fd_filestat_get(&mut ctx, &mut mem, fd, 300).unwrap();
    assert_eq!(mem.read_u64(300 + 48), Ok(5_000_000_000));
    assert_eq!(
        fd::fd_filestat_set_times(&mut ctx, &mut mem, fd, 0, 0, 4 | 8),
        Err(Errno::Inval)
    );
    fd::fd_sync(&mut ctx, &mut mem, fd).unwrap();
    fd::fd_advise(&mut ctx, &mut mem, fd, 0, 0, 1).unwrap();
    assert_eq!(
        fd::fd_advise(&mut ctx, &mut mem, fd, 0, 0, 9),
        Err(Errno::Inval)
    );

    // Renumbering moves the descriptor and closes the target.
    let fd2 = open(
        &mut ctx,
        &mut mem,
        ".",
        0,
        oflags::DIRECTORY,
        rights::FD_READDIR,
    )
    .unwrap();
    fd::fd_renumber(&mut ctx, &mut mem, fd, fd2).unwrap();
    assert_eq!(fd::fd_close(&mut ctx, &mut mem, fd), Err(Errno::Badf));
    fd::fd_filestat_get(&mut ctx, &mut mem, fd2, 300).unwrap();
    assert_eq!(
        mem.read_u8(300 + 16),
        Ok(crate::types::filetype::REGULAR_FILE)
    );
    assert_eq!(
        fd::fd_renumber(&mut ctx, &mut mem, fd2, 77),
        Err(Errno::Badf)
    );
    fd::fd_close(&mut ctx, &mut mem, fd2).unwrap();

    // Times through a path, links, and the preopen's name.
    let (p, l) = put(&mut mem, PATH, "f.bin");
    path::path_filestat_set_times(&mut ctx, &mut mem, 3, 1, p, l, 7_000_000_000, 0, 1).unwrap();
    let (q, ql) = put(&mut mem, PATH2, "hard.bin");
    path::path_link(&mut ctx, &mut mem, 3, 0, p, l, 3, q, ql).unwrap();
    stat(&mut ctx, &mut mem, "hard.bin", 0).unwrap();
    assert_eq!(mem.read_u64(OUT + 24), Ok(2));
    assert_eq!(mem.read_u64(OUT + 40), Ok(7_000_000_000));
    assert_eq!(std::fs::read(s.0.join("box/hard.bin")).unwrap().len(), 64);
    fd::fd_prestat_get(&mut ctx, &mut mem, 3, 300).unwrap();
    assert_eq!((mem.read_u8(300), mem.read_u32(304)), (Ok(0), Ok(1)));
    assert_eq!(
        fd::fd_prestat_dir_name(&mut ctx, &mut mem, 3, 400, 0),
        Err(Errno::Nametoolong)
    );
    fd::fd_prestat_dir_name(&mut ctx, &mut mem, 3, 400, 1).unwrap();
    assert_eq!(mem.read_u8(400), Ok(b'.'));
    assert_eq!(
        fd::fd_prestat_get(&mut ctx, &mut mem, 4, 300),
        Err(Errno::Badf)
    );
    assert_eq!(
        fd::fd_prestat_get(&mut ctx, &mut mem, 1, 300),
        Err(Errno::Badf)
    );
}

#[test]
fn overlapping_iovecs_are_gathered_whole_below_the_cap() {
    // 1,024 iovecs that all point at the same 64 KiB: the lengths add up to 64 MiB, the host
    // gathers them (capped at MAX_IO) and reports what it wrote, within 32 bits.
    let mut bytes = vec![0u8; 128 * 1024];
    let mut mem = GuestMemory::new(&mut bytes);
    let iovs = 64 * 1024;
    for i in 0..crate::mem::MAX_IOVECS {
        mem.write_u32(iovs + 8 * i, 0).unwrap();
        mem.write_u32(iovs + 8 * i + 4, 64 * 1024 - 1).unwrap();
    }
    let list = mem.iovecs(iovs, crate::mem::MAX_IOVECS).unwrap();
    let data = mem.gather(&list).unwrap();
    assert_eq!(data.len(), 1024 * (64 * 1024 - 1));
    assert!(data.len() <= crate::mem::MAX_IO);
}
