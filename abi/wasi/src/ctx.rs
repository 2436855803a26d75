//! [`WasiCtx`]: a guest's arguments, environment and file descriptor table, and the
//! [`WasiCtxBuilder`] that makes it.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::os::fd::RawFd;
use std::path::Path;

use anyhow::Context as _;
use cap_std::fs::Dir;

use crate::errno::{Errno, WasiResult};
use crate::types::rights;

/// The highest number of file descriptors a guest may hold open at once.
const MAX_FDS: usize = 1 << 16;

/// The state of one WASI guest: its arguments, environment and file descriptor table.
///
/// Made by [`WasiCtxBuilder`]; kept in the store's data and reached by the host functions
/// through the accessor given to [`add_to_linker`](crate::add_to_linker).
pub struct WasiCtx {
    pub(crate) args: Vec<String>,
    pub(crate) env: Vec<String>,
    pub(crate) fds: BTreeMap<u32, Entry>,
}

impl std::fmt::Debug for WasiCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasiCtx")
            .field("args", &self.args)
            .field("env", &self.env.len())
            .field("fds", &self.fds.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// One open file descriptor: what it is, and what it may be used for.
pub(crate) struct Entry {
    pub kind: Kind,
    /// Rights of the descriptor itself.
    pub base: u64,
    /// Rights that descriptors opened through this one (a directory) may have.
    pub inheriting: u64,
    /// `fdflags` the guest asked for (append, nonblock, ...).
    pub flags: u16,
}

/// The object behind a file descriptor.
pub(crate) enum Kind {
    /// A readable stream (stdin); `host` is the host's descriptor for an inherited one.
    Reader {
        stream: Box<dyn Read + Send>,
        host: Option<RawFd>,
    },
    /// A writable stream (stdout, stderr).
    Writer {
        stream: Box<dyn Write + Send>,
        host: Option<RawFd>,
    },
    /// A regular file (or another non-directory opened through a path: a device, a fifo).
    File(std::fs::File),
    /// A directory: all path operations go through its `cap-std` handle.
    Dir(DirEntry),
}

/// An open directory.
pub(crate) struct DirEntry {
    pub dir: Dir,
    /// The guest's name for it, when it is a preopened directory.
    pub preopen: Option<String>,
    /// The listing `fd_readdir` pages through, taken when it starts at cookie 0.
    pub listing: Option<Vec<crate::fd::Listed>>,
}

impl WasiCtx {
    /// The entry of `fd`, which must have every right in `needed` (`notcapable` otherwise).
    pub(crate) fn entry(&self, fd: u32, needed: u64) -> WasiResult<&Entry> {
        let e = self.fds.get(&fd).ok_or(Errno::Badf)?;
        if e.base & needed != needed {
            return Err(Errno::Notcapable);
        }
        Ok(e)
    }

    /// [`WasiCtx::entry`], mutably.
    pub(crate) fn entry_mut(&mut self, fd: u32, needed: u64) -> WasiResult<&mut Entry> {
        let e = self.fds.get_mut(&fd).ok_or(Errno::Badf)?;
        if e.base & needed != needed {
            return Err(Errno::Notcapable);
        }
        Ok(e)
    }

    /// The directory `fd`, which must have the rights in `needed`.
    pub(crate) fn dir(&self, fd: u32, needed: u64) -> WasiResult<&DirEntry> {
        match &self.entry(fd, needed)?.kind {
            Kind::Dir(d) => Ok(d),
            _ => Err(Errno::Notdir),
        }
    }

    /// Puts `entry` at the lowest free descriptor number.
    pub(crate) fn insert(&mut self, entry: Entry) -> WasiResult<u32> {
        if self.fds.len() >= MAX_FDS {
            return Err(Errno::Mfile);
        }
        let mut fd = 0u32;
        for &used in self.fds.keys() {
            if used != fd {
                break;
            }
            fd += 1;
        }
        self.fds.insert(fd, entry);
        Ok(fd)
    }
}

/// The host's stdin, read without a buffer of our own, so what `poll_oneoff` sees on the
/// descriptor is exactly what the guest can read.
struct HostStdin;

impl Read for HostStdin {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is a valid, writable range of `buf.len()` bytes.
        let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

/// Builds a [`WasiCtx`].
///
/// Nothing is shared with the guest unless asked for: no arguments, no environment variables,
/// an empty stdin, stdout and stderr that discard what is written, and no directories.
///
/// ```
/// let mut builder = spate_wasi::WasiCtxBuilder::new();
/// builder
///     .args(["app.wasm", "--verbose"])
///     .env("LANG", "C")
///     .stdout(Vec::new());
/// let ctx = builder.build();
/// # drop(ctx);
/// ```
#[derive(Default)]
pub struct WasiCtxBuilder {
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<(Box<dyn Read + Send>, Option<RawFd>)>,
    stdout: Option<(Box<dyn Write + Send>, Option<RawFd>)>,
    stderr: Option<(Box<dyn Write + Send>, Option<RawFd>)>,
    preopens: Vec<(String, Dir)>,
}

impl std::fmt::Debug for WasiCtxBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasiCtxBuilder")
            .field("args", &self.args)
            .field("env", &self.env.len())
            .field(
                "preopens",
                &self.preopens.iter().map(|(g, _)| g).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl WasiCtxBuilder {
    /// An empty context: no arguments, no environment, standard streams closed.
    pub fn new() -> Self {
        Self::default()
    }

    /// The guest's `argv`, `argv[0]` included (replaces any earlier list).
    pub fn args<S: AsRef<str>>(&mut self, args: impl IntoIterator<Item = S>) -> &mut Self {
        self.args = args.into_iter().map(|s| s.as_ref().to_string()).collect();
        self
    }

    /// Adds one environment variable (a later value for the same key replaces the earlier).
    pub fn env(&mut self, key: &str, value: &str) -> &mut Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Adds the host process's environment variables (those that are valid UTF-8).
    pub fn inherit_env(&mut self) -> &mut Self {
        for (k, v) in std::env::vars_os() {
            if let (Some(k), Some(v)) = (k.to_str(), v.to_str()) {
                self.env(k, v);
            }
        }
        self
    }

    /// Connects the guest's stdin, stdout and stderr to the host process's. Output is not
    /// buffered on the host side: each `fd_write` is written and flushed at once.
    pub fn inherit_stdio(&mut self) -> &mut Self {
        self.stdin = Some((Box::new(HostStdin), Some(0)));
        self.stdout = Some((Box::new(io::stdout()), Some(1)));
        self.stderr = Some((Box::new(io::stderr()), Some(2)));
        self
    }

    /// The guest's stdin.
    pub fn stdin(&mut self, r: impl Read + Send + 'static) -> &mut Self {
        self.stdin = Some((Box::new(r), None));
        self
    }

    /// The guest's stdout: each `fd_write` is one `write_all` then a `flush`.
    pub fn stdout(&mut self, w: impl Write + Send + 'static) -> &mut Self {
        self.stdout = Some((Box::new(w), None));
        self
    }

    /// The guest's stderr: each `fd_write` is one `write_all` then a `flush`.
    pub fn stderr(&mut self, w: impl Write + Send + 'static) -> &mut Self {
        self.stderr = Some((Box::new(w), None));
        self
    }

    /// Gives the guest the host directory `host` under the name `guest` (such as `"."`,
    /// `"/data"`). The guest reaches only what is inside it: paths are resolved by `cap-std`,
    /// which refuses absolute paths, `..` above the directory and symbolic links that lead
    /// out. Preopened directories get descriptors 3, 4, ... in the order they are added.
    pub fn preopened_dir(
        &mut self,
        host: impl AsRef<Path>,
        guest: &str,
    ) -> anyhow::Result<&mut Self> {
        let host = host.as_ref();
        let dir = Dir::open_ambient_dir(host, cap_std::ambient_authority())
            .with_context(|| format!("cannot open directory {}", host.display()))?;
        self.preopens.push((guest.to_string(), dir));
        Ok(self)
    }

    /// The context. The builder is left empty (its streams and directories move into the
    /// context).
    pub fn build(&mut self) -> WasiCtx {
        let mut fds = BTreeMap::new();
        let (stdin, stdin_host) = self
            .stdin
            .take()
            .unwrap_or_else(|| (Box::new(io::empty()), None));
        fds.insert(
            0,
            Entry {
                kind: Kind::Reader {
                    stream: stdin,
                    host: stdin_host,
                },
                base: rights::READ_STREAM,
                inheriting: 0,
                flags: 0,
            },
        );
        for (fd, out) in [(1, self.stdout.take()), (2, self.stderr.take())] {
            let (stream, host) = out.unwrap_or_else(|| (Box::new(io::sink()), None));
            fds.insert(
                fd,
                Entry {
                    kind: Kind::Writer { stream, host },
                    base: rights::WRITE_STREAM,
                    inheriting: 0,
                    flags: 0,
                },
            );
        }
        for (i, (guest, dir)) in self.preopens.drain(..).enumerate() {
            fds.insert(
                3 + i as u32,
                Entry {
                    kind: Kind::Dir(DirEntry {
                        dir,
                        preopen: Some(guest),
                        listing: None,
                    }),
                    base: rights::DIRECTORY,
                    inheriting: rights::DIRECTORY_INHERITING,
                    flags: 0,
                },
            );
        }
        WasiCtx {
            args: std::mem::take(&mut self.args),
            env: self
                .env
                .drain(..)
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
            fds,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}

    #[test]
    fn context_is_send_and_has_standard_streams() {
        assert_send::<WasiCtx>();
        let ctx = WasiCtxBuilder::new().args(["a", "b"]).env("K", "V").build();
        assert_eq!(ctx.args, ["a", "b"]);
        assert_eq!(ctx.env, ["K=V"]);
        assert_eq!(ctx.fds.keys().copied().collect::<Vec<_>>(), [0, 1, 2]);
    }

    #[test]
    fn lowest_free_descriptor_is_reused() {
        let mut ctx = WasiCtxBuilder::new().build();
        ctx.fds.remove(&1);
        let entry = || Entry {
            kind: Kind::Writer {
                stream: Box::new(io::sink()),
                host: None,
            },
            base: 0,
            inheriting: 0,
            flags: 0,
        };
        assert_eq!(ctx.insert(entry()), Ok(1));
        assert_eq!(ctx.insert(entry()), Ok(3));
    }
}
