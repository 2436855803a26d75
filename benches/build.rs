//! Builds the native side of the steady-state benchmark (`src/bin/tiers/`): the C kernels in
//! `kernels/` compiled with clang-19 into a static library linked into the benchmark binaries,
//! so native code and wasm run in the same process and the same run.
//!
//! Flags: `-O3 -ffp-contract=off`, nothing else that changes code generation. No `-march`: the
//! native code targets baseline x86-64 (SSE2, 128-bit vectors), as the wasm modules target
//! wasm32 with 128-bit SIMD; `-ffp-contract=off` keeps floating point exactly as written (no
//! fused multiply-add; baseline x86-64 has none anyway), so native and wasm compute the same
//! bits. cc's own defaults (`-fPIC`, `-ffunction-sections`, `-m64`, ...) and any `CFLAGS` in the
//! environment apply too; the full command line reaches the benchmark through
//! `SPATE_KERNELS_NATIVE_CC`, which it prints.
//!
//! It also checks that the checked-in modules `kernels/*.wasm` are what `kernels/build.sh`
//! makes from the current sources, and warns when they are not.

use std::path::{Path, PathBuf};
use std::process::Command;

const KERNELS: [&str; 5] = ["mandel", "mandel_simd", "matmul", "cg", "sort"];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let dir = manifest.join("kernels");
    let clang = std::env::var("SPATE_KERNELS_CLANG").unwrap_or_else(|_| "clang-19".to_string());
    println!("cargo:rerun-if-env-changed=SPATE_KERNELS_CLANG");
    println!("cargo:rerun-if-changed=kernels");

    match Command::new(&clang).arg("--version").output() {
        Ok(out) if out.status.success() => {}
        _ => panic!(
            "\n\nspate-benches: `{clang}` not found or not working. The steady-state benchmark \
             compiles its native kernels (benches/kernels/*.c) with clang-19; install it with \
             scripts/setup.sh (apt-get install clang-19), or point SPATE_KERNELS_CLANG at a \
             clang 19 binary.\n\n"
        ),
    }

    let mut build = cc::Build::new();
    build
        .compiler(&clang)
        .opt_level(3)
        .debug(false)
        .std("c11")
        .flag("-ffp-contract=off")
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .include(&dir);
    for k in KERNELS {
        build.file(dir.join(format!("{k}.c")));
    }
    let tool = build.get_compiler();
    let command: Vec<String> = std::iter::once(tool.path().display().to_string())
        .chain(tool.args().iter().map(|a| a.to_string_lossy().into_owned()))
        .collect();
    println!(
        "cargo:rustc-env=SPATE_KERNELS_NATIVE_CC={}",
        command.join(" ")
    );
    build.compile("spate_kernels");

    check_modules(&dir, &clang);
}

/// Rebuilds the wasm modules into OUT_DIR and warns if they differ from the checked-in ones.
fn check_modules(dir: &Path, clang: &str) {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("kernels-wasm");
    let status = Command::new("bash")
        .arg(dir.join("build.sh"))
        .arg("--out-dir")
        .arg(&out)
        .env("SPATE_KERNELS_CLANG", clang)
        .stdout(std::process::Stdio::null())
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        println!(
            "cargo:warning=could not rebuild benches/kernels/*.wasm to check them \
             (benches/kernels/build.sh failed); using the checked-in modules as they are"
        );
        return;
    }
    for name in KERNELS.iter().copied().chain(["kernels"]) {
        let file = format!("{name}.wasm");
        let fresh = std::fs::read(out.join(&file)).ok();
        let checked_in = std::fs::read(dir.join(&file)).ok();
        if fresh.is_none() || fresh != checked_in {
            println!(
                "cargo:warning=benches/kernels/{file} is not what benches/kernels/build.sh builds \
                 from the current sources; run benches/kernels/build.sh"
            );
        }
    }
}
