//! `spate compile`: validate and compile one module and describe the result.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use spate::{Engine, Module};

/// What compiling a module produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileSummary {
    /// Size of the input in bytes (of the text for a `.wat` input).
    pub input_bytes: u64,
    /// Whether the input was WebAssembly text rather than a binary.
    pub text: bool,
    /// Size of the binary the text was encoded to, for a text input.
    pub binary_bytes: u64,
    /// Number of functions the module defines (and so compiles).
    pub functions: usize,
    /// Number of functions including imported ones.
    pub all_functions: usize,
    /// Size of the machine code in bytes.
    pub code_size: usize,
    /// Compile time as the engine measured it.
    pub compile_time: Duration,
    /// Wall-clock time from opening the input to having the module, reading included.
    pub wall_time: Duration,
}

impl fmt::Display for CompileSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.text {
            writeln!(
                f,
                "size:          {} bytes of text, {} bytes of binary",
                self.input_bytes, self.binary_bytes
            )?;
        } else {
            writeln!(f, "size:          {} bytes", self.input_bytes)?;
        }
        writeln!(
            f,
            "functions:     {} defined, {} imported",
            self.functions,
            self.all_functions - self.functions
        )?;
        writeln!(f, "machine code:  {} bytes", self.code_size)?;
        write!(
            f,
            "compile time:  {} (wall clock, reading included: {})",
            fmt_duration(self.compile_time),
            fmt_duration(self.wall_time)
        )
    }
}

fn fmt_duration(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// Validates and compiles the module in the file at `path`.
///
/// A binary (anything starting with a NUL byte, as `\0asm` does) is streamed from the file into
/// the engine; anything else is taken as WebAssembly text, encoded, then compiled. Errors say
/// what is wrong with the input: unreadable, malformed, invalid.
pub fn compile_file(engine: &Engine, path: &Path) -> Result<CompileSummary> {
    let start = Instant::now();
    let file = File::open(path).context("cannot open the file")?;
    let mut reader = CountingReader {
        inner: BufReader::new(file),
        count: 0,
    };
    let mut head = [0u8; 1];
    let n = read_fully(&mut reader, &mut head).context("cannot read the file")?;
    if n == 1 && head[0] != 0 {
        let mut text = head.to_vec();
        reader
            .read_to_end(&mut text)
            .context("cannot read the file")?;
        return compile_text(engine, &text, Some(path), start);
    }
    let module = Module::from_reader(engine, (&head[..n]).chain(&mut reader))?;
    Ok(summary(&module, reader.count, false, 0, start))
}

/// Validates and compiles a module given as bytes: a binary, or WebAssembly text (see
/// [`compile_file`]).
pub fn compile_bytes(engine: &Engine, bytes: &[u8]) -> Result<CompileSummary> {
    let start = Instant::now();
    match bytes.first() {
        Some(&b) if b != 0 => compile_text(engine, bytes, None, start),
        _ => {
            let module = Module::new(engine, bytes)?;
            Ok(summary(&module, bytes.len() as u64, false, 0, start))
        }
    }
}

fn compile_text(
    engine: &Engine,
    text: &[u8],
    path: Option<&Path>,
    start: Instant,
) -> Result<CompileSummary> {
    let binary = encode_text(text, path)?;
    let module = Module::new(engine, &binary)?;
    Ok(summary(
        &module,
        text.len() as u64,
        true,
        binary.len() as u64,
        start,
    ))
}

/// Encodes WebAssembly text (a module) to a binary; `path`, when given, names the file in
/// error messages.
pub fn encode_text(text: &[u8], path: Option<&Path>) -> Result<Vec<u8>> {
    let text = std::str::from_utf8(text)
        .context("the input is neither a WebAssembly binary (it does not start with `\\0asm`) nor UTF-8 text")?;
    let fail = |mut e: wast::Error| {
        e.set_text(text);
        if let Some(path) = path {
            e.set_path(path);
        }
        anyhow::anyhow!("the WebAssembly text does not parse: {e}")
    };
    let buf = wast::parser::ParseBuffer::new(text).map_err(fail)?;
    let mut wat = wast::parser::parse::<wast::Wat<'_>>(&buf).map_err(fail)?;
    wat.encode().map_err(fail)
}

fn summary(
    module: &Module,
    input_bytes: u64,
    text: bool,
    binary_bytes: u64,
    start: Instant,
) -> CompileSummary {
    CompileSummary {
        input_bytes,
        text,
        binary_bytes,
        functions: module.num_defined_functions(),
        all_functions: module.num_functions(),
        code_size: module.code_size(),
        compile_time: module.compile_time(),
        wall_time: start.elapsed(),
    }
}

/// Reads until `buf` is full or the input ends; returns how many bytes were read.
pub(crate) fn read_fully(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A reader that counts the bytes passing through it.
struct CountingReader<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_encodes_and_text_errors_name_the_file_and_line() {
        let bin = encode_text(
            b"(module (func (export \"f\") (result i32) i32.const 1))",
            None,
        )
        .unwrap();
        assert_eq!(&bin[..4], b"\0asm");
        let err = encode_text(
            b"(module\n  (func (result i32) i32.konst 1))",
            Some(Path::new("dir/m.wat")),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("does not parse"), "{err}");
        assert!(err.contains("dir/m.wat:2:"), "{err}");
        let err = encode_text(&[0xff, 0xfe], None).unwrap_err().to_string();
        assert!(err.contains("neither a WebAssembly binary"), "{err}");
    }

    const MODULE: &str = r#"(module
  (import "env" "f" (func $f (param i32)))
  (memory 1 2)
  (table 2 funcref)
  (global $g (mut i64) (i64.const 7))
  (data (i32.const 8) "hello")
  (elem (i32.const 0) $fib)
  (func $fib (export "fib") (param i32) (result i32)
    (if (result i32) (i32.lt_u (local.get 0) (i32.const 2))
      (then (local.get 0))
      (else (i32.add (call $fib (i32.sub (local.get 0) (i32.const 1)))
                     (call $fib (i32.sub (local.get 0) (i32.const 2)))))))
  (func (export "sum") (param i32 i32) (result i64)
    (local i64)
    (block (loop
      (br_if 1 (i32.eqz (local.get 0)))
      (local.set 2 (i64.add (local.get 2) (i64.load32_u (local.get 1))))
      (local.set 0 (i32.sub (local.get 0) (i32.const 1)))
      (br 0)))
    (global.set $g (local.get 2))
    (local.get 2)))"#;

    #[test]
    fn summaries_count_functions_and_bytes() {
        // Eager, as `spate compile` runs it: the summary counts code that exists.
        let mut config = spate::Config::new();
        config.compile_strategy(spate::CompileStrategy::Eager);
        let engine = Engine::new(&config).unwrap();
        let summary = compile_bytes(&engine, MODULE.as_bytes()).unwrap();
        assert!(summary.text);
        assert_eq!((summary.functions, summary.all_functions), (2, 3));
        assert_eq!(summary.input_bytes, MODULE.len() as u64);
        let binary = encode_text(MODULE.as_bytes(), None).unwrap();
        assert_eq!(summary.binary_bytes, binary.len() as u64);
        let summary = compile_bytes(&engine, &binary).unwrap();
        assert!(!summary.text);
        assert_eq!(summary.input_bytes, binary.len() as u64);
        assert!(summary.code_size > 0);
        let shown = summary.to_string();
        assert!(
            shown.contains("functions:     2 defined, 1 imported"),
            "{shown}"
        );
    }

    /// Bad input gives an error, never a panic: every truncation of a module, and modules with
    /// bytes overwritten (deterministically, so a failure reproduces).
    #[test]
    fn truncated_and_corrupted_modules_are_errors() {
        let engine = Engine::default();
        let binary = encode_text(MODULE.as_bytes(), None).unwrap();
        let boundaries = section_ends(&binary);
        for len in 0..binary.len() {
            let result = compile_bytes(&engine, &binary[..len]);
            // A prefix that stops inside a section is malformed. (One that stops between
            // sections may be a valid module, or not: a function section without its code.)
            if !boundaries.contains(&len) {
                assert!(result.is_err(), "prefix of {len} bytes: {result:?}");
            }
        }
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..300 {
            let mut corrupted = binary.clone();
            for _ in 0..1 + next() % 3 {
                let at = 8 + (next() as usize) % (corrupted.len() - 8);
                corrupted[at] = next() as u8;
            }
            // Either outcome is fine; what matters is that there is one.
            let _ = compile_bytes(&engine, &corrupted);
        }
    }

    /// The offsets at which the module's header and each of its sections end.
    fn section_ends(binary: &[u8]) -> Vec<usize> {
        let mut ends = vec![8];
        let mut pos = 8;
        while pos < binary.len() {
            pos += 1; // section id
            let (mut size, mut shift) = (0usize, 0);
            loop {
                let byte = binary[pos];
                pos += 1;
                size |= usize::from(byte & 0x7f) << shift;
                shift += 7;
                if byte & 0x80 == 0 {
                    break;
                }
            }
            pos += size;
            ends.push(pos);
        }
        ends
    }

    #[test]
    fn counting_reader_counts() {
        let mut r = CountingReader {
            inner: &b"hello world"[..],
            count: 0,
        };
        let mut buf = [0u8; 4];
        assert_eq!(read_fully(&mut r, &mut buf).unwrap(), 4);
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        assert_eq!(r.count, 11);
        assert_eq!(rest, b"o world");
    }
}
