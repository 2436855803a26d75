//! Compiles `cpp/prefetch.cpp`, the tier's one pass written against LLVM's C++ API (it needs
//! scalar evolution, which the C API does not offer), with the flags of the LLVM 19 that
//! inkwell links: the first of `$LLVM_SYS_191_PREFIX/bin/llvm-config` (the variable llvm-sys
//! reads), `llvm-config-19` and `llvm-config` on the `PATH` that reports version 19. The
//! compiler is `$CXX` if set, else `clang++-19` if present, else the `cc` crate's default.

use std::path::PathBuf;
use std::process::Command;

fn llvm_config(arg: &str) -> String {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(prefix) = std::env::var_os("LLVM_SYS_191_PREFIX") {
        candidates.push(PathBuf::from(prefix).join("bin").join("llvm-config"));
    }
    candidates.push("llvm-config-19".into());
    candidates.push("llvm-config".into());
    for tool in &candidates {
        // Only an LLVM 19: the C++ must see the headers of the library inkwell links.
        let version = Command::new(tool).arg("--version").output();
        if !matches!(&version, Ok(v) if v.status.success() && v.stdout.starts_with(b"19.")) {
            continue;
        }
        if let Ok(out) = Command::new(tool).arg(arg).output()
            && out.status.success()
        {
            return String::from_utf8_lossy(&out.stdout).trim().to_string();
        }
    }
    panic!(
        "spate-tier-llvm: no llvm-config of LLVM 19 (tried {candidates:?}); install \
         llvm-19-dev (scripts/setup.sh does) or set LLVM_SYS_191_PREFIX"
    );
}

fn main() {
    println!("cargo:rerun-if-changed=cpp/prefetch.cpp");
    println!("cargo:rerun-if-env-changed=LLVM_SYS_191_PREFIX");
    println!("cargo:rerun-if-env-changed=CXX");
    let mut build = cc::Build::new();
    build.cpp(true).file("cpp/prefetch.cpp").warnings(true);
    // LLVM 19's own clang++ (installed with clang-19, which brings the C++ library headers)
    // unless CXX says otherwise: a fresh machine need not have g++.
    if std::env::var_os("CXX").is_none()
        && Command::new("clang++-19")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    {
        build.compiler("clang++-19");
    }
    for flag in llvm_config("--cxxflags").split_whitespace() {
        // The include directory goes in as an -isystem so LLVM's own headers raise no warnings.
        if let Some(dir) = flag.strip_prefix("-I") {
            build.flag("-isystem").flag(dir);
        } else {
            build.flag(flag);
        }
    }
    build.compile("spate_llvm_prefetch");
}
