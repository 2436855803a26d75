//! Clocks and `poll_oneoff`.

use std::os::fd::RawFd;
use std::time::Duration;

use crate::ctx::{Kind, WasiCtx};
use crate::errno::{Errno, WasiResult};
use crate::mem::GuestMemory;
use crate::types::{SUBSCRIPTION_CLOCK_ABSTIME, clockid, eventtype, rights, size};

/// The host clock for a WASI clock id.
fn host_clock(id: u32) -> WasiResult<libc::clockid_t> {
    Ok(match id {
        clockid::REALTIME => libc::CLOCK_REALTIME,
        clockid::MONOTONIC => libc::CLOCK_MONOTONIC,
        clockid::PROCESS_CPUTIME_ID => libc::CLOCK_PROCESS_CPUTIME_ID,
        clockid::THREAD_CPUTIME_ID => libc::CLOCK_THREAD_CPUTIME_ID,
        _ => return Err(Errno::Inval),
    })
}

fn timespec_nanos(ts: &libc::timespec) -> u64 {
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// The current time of a WASI clock, in nanoseconds.
pub(crate) fn now(id: u32) -> WasiResult<u64> {
    let clock = host_clock(id)?;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(timespec_nanos(&ts))
}

pub(crate) fn clock_res_get(
    _ctx: &mut WasiCtx,
    mem: &mut GuestMemory,
    id: u32,
    res: u32,
) -> WasiResult<()> {
    let clock = host_clock(id)?;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    if unsafe { libc::clock_getres(clock, &mut ts) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    mem.write_u64(res, timespec_nanos(&ts).max(1))
}

pub(crate) fn clock_time_get(
    _ctx: &mut WasiCtx,
    mem: &mut GuestMemory,
    id: u32,
    _precision: u64,
    time: u32,
) -> WasiResult<()> {
    let t = now(id)?;
    mem.write_u64(time, t)
}

/// One subscription of `poll_oneoff`, decoded.
enum Sub {
    /// A clock: nanoseconds left until it fires.
    Clock { remaining: u64 },
    /// A descriptor that is ready now: the byte count to report.
    Ready { nbytes: u64 },
    /// A host descriptor (inherited stdin) whose readiness the host must wait for.
    HostFd { fd: RawFd, events: i16 },
    /// A subscription that failed: reported at once with this error.
    Failed(Errno),
}

/// An event to write back.
struct Event {
    userdata: u64,
    error: Errno,
    kind: u8,
    nbytes: u64,
}

fn decode(ctx: &mut WasiCtx, mem: &GuestMemory, at: u32) -> WasiResult<(u64, u8, Sub)> {
    let userdata = mem.read_u64(at)?;
    let tag = mem.read_u8(at + 8)?;
    let sub = match tag {
        eventtype::CLOCK => {
            let id = mem.read_u32(at + 16)?;
            let timeout = mem.read_u64(at + 24)?;
            let flags = mem.read_u16(at + 40)?;
            match now(id) {
                Ok(t) if flags & SUBSCRIPTION_CLOCK_ABSTIME != 0 => Sub::Clock {
                    remaining: timeout.saturating_sub(t),
                },
                Ok(_) => Sub::Clock { remaining: timeout },
                Err(e) => Sub::Failed(e),
            }
        }
        eventtype::FD_READ | eventtype::FD_WRITE => {
            let fd = mem.read_u32(at + 16)?;
            let read = tag == eventtype::FD_READ;
            match ctx.fds.get(&fd) {
                None => Sub::Failed(Errno::Badf),
                Some(e) if e.base & rights::POLL_FD_READWRITE == 0 => {
                    Sub::Failed(Errno::Notcapable)
                }
                Some(e) => match (&e.kind, read) {
                    (Kind::File(f), true) => {
                        use std::io::Seek;
                        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                        let pos = (&*f).stream_position().unwrap_or(len);
                        Sub::Ready {
                            nbytes: len.saturating_sub(pos),
                        }
                    }
                    (Kind::Reader { host: Some(h), .. }, true) => Sub::HostFd {
                        fd: *h,
                        events: libc::POLLIN,
                    },
                    (Kind::Writer { host: Some(h), .. }, false) => Sub::HostFd {
                        fd: *h,
                        events: libc::POLLOUT,
                    },
                    (Kind::Dir(_), _) => Sub::Failed(Errno::Isdir),
                    (Kind::Reader { .. }, false) | (Kind::Writer { .. }, true) => {
                        Sub::Failed(Errno::Badf)
                    }
                    // Files and in-memory streams never block.
                    _ => Sub::Ready { nbytes: 0 },
                },
            }
        }
        _ => return Err(Errno::Inval),
    };
    Ok((userdata, tag, sub))
}

/// Polls host descriptors for up to `timeout` (`None`: forever); returns the ready ones'
/// indices in `fds`.
fn host_poll(fds: &[(RawFd, i16)], timeout: Option<Duration>) -> WasiResult<Vec<usize>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&(fd, events)| libc::pollfd {
            fd,
            events,
            revents: 0,
        })
        .collect();
    let ms = match timeout {
        None => -1,
        Some(d) => d.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32,
    };
    loop {
        // SAFETY: `pfds` is a valid array of `pfds.len()` pollfd records.
        let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
        if r >= 0 {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e.into());
        }
    }
    Ok(pfds
        .iter()
        .enumerate()
        .filter(|(_, p)| p.revents != 0)
        .map(|(i, _)| i)
        .collect())
}

pub(crate) fn poll_oneoff(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory,
    input: u32,
    output: u32,
    nsubscriptions: u32,
    nevents: u32,
) -> WasiResult<()> {
    if nsubscriptions == 0 {
        return Err(Errno::Inval);
    }
    let in_bytes = nsubscriptions
        .checked_mul(size::SUBSCRIPTION)
        .ok_or(Errno::Fault)?;
    let out_bytes = nsubscriptions
        .checked_mul(size::EVENT)
        .ok_or(Errno::Fault)?;
    mem.slice(input, in_bytes)?;
    mem.slice(output, out_bytes)?;
    mem.slice(nevents, 4)?;

    let mut subs = Vec::with_capacity(nsubscriptions as usize);
    for i in 0..nsubscriptions {
        subs.push(decode(ctx, mem, input + i * size::SUBSCRIPTION)?);
    }

    let mut events = Vec::new();
    let event = |(userdata, kind, _): &(u64, u8, Sub), error: Errno, nbytes: u64| Event {
        userdata: *userdata,
        error,
        kind: *kind,
        nbytes,
    };
    for s in &subs {
        match s.2 {
            Sub::Ready { nbytes } => events.push(event(s, Errno::Success, nbytes)),
            Sub::Failed(e) => events.push(event(s, e, 0)),
            _ => {}
        }
    }
    let host: Vec<(usize, (RawFd, i16))> = subs
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s.2 {
            Sub::HostFd { fd, events } => Some((i, (fd, events))),
            _ => None,
        })
        .collect();
    let first_clock = subs
        .iter()
        .filter_map(|s| match s.2 {
            Sub::Clock { remaining } => Some(remaining),
            _ => None,
        })
        .min();

    // Wait only if nothing is ready yet.
    let wait = if events.is_empty() {
        first_clock.map(Duration::from_nanos)
    } else {
        Some(Duration::ZERO)
    };
    let host_fds: Vec<(RawFd, i16)> = host.iter().map(|(_, f)| *f).collect();
    let start = std::time::Instant::now();
    if !host_fds.is_empty() {
        for i in host_poll(&host_fds, wait)? {
            events.push(event(&subs[host[i].0], Errno::Success, 0));
        }
    } else if let Some(d) = wait {
        std::thread::sleep(d);
    }
    // Every clock due by now fires (the earliest one at least, when nothing else was ready:
    // both `poll` and `sleep` wait at least as long as asked).
    let elapsed = start.elapsed().as_nanos() as u64;
    for s in &subs {
        if let Sub::Clock { remaining } = s.2
            && remaining <= elapsed
        {
            events.push(event(s, Errno::Success, 0));
        }
    }

    for (i, ev) in events.iter().enumerate() {
        let mut rec = [0u8; size::EVENT as usize];
        rec[0..8].copy_from_slice(&ev.userdata.to_le_bytes());
        rec[8..10].copy_from_slice(&(ev.error as u16).to_le_bytes());
        rec[10] = ev.kind;
        rec[16..24].copy_from_slice(&ev.nbytes.to_le_bytes());
        mem.write_bytes(output + i as u32 * size::EVENT, &rec)?;
    }
    mem.write_u32(nevents, events.len() as u32)
}
