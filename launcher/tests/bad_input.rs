//! Bad input never crashes `spate compile`: a real C program compiled to wasm
//! (`tests/programs/kernels.wasm`) cut at every 997th byte, and with random bytes overwritten,
//! gives either a compiled module (a cut on a section boundary, or a flip that keeps the module
//! valid) or one `error:` message and exit status 1 — never a panic, an abort or a signal.

use std::path::{Path, PathBuf};
use std::process::Command;

const MODULE: &[u8] = include_bytes!("../../tests/programs/kernels.wasm");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("spate-bad-input-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `spate compile` on `bytes`; returns whether it compiled. Fails the test on anything but
/// a clean success or a clean error.
fn compile(dir: &Path, what: &str, bytes: &[u8]) -> bool {
    let path = dir.join("m.wasm");
    std::fs::write(&path, bytes).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_spate"))
        .args(["compile", path.to_str().unwrap()])
        .output()
        .expect("run spate");
    let err = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => true,
        Some(1) => {
            assert!(
                err.starts_with("error: "),
                "{what}: unexpected stderr: {err}"
            );
            assert_eq!(
                err.trim_end().lines().count(),
                1,
                "{what}: one line expected: {err}"
            );
            assert!(!err.contains("panicked"), "{what}: {err}");
            false
        }
        other => panic!("{what}: spate compile ended with {other:?} (signal or panic): {err}"),
    }
}

/// Offsets at which a section ends (a prefix ending there is a well-formed module).
fn section_ends(bytes: &[u8]) -> Vec<usize> {
    let mut ends = vec![8];
    let mut pos = 8;
    while pos < bytes.len() {
        let mut p = pos + 1;
        let (mut size, mut shift) = (0usize, 0);
        loop {
            let b = bytes[p];
            p += 1;
            size |= ((b & 0x7f) as usize) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        pos = p + size;
        ends.push(pos);
    }
    ends
}

#[test]
fn the_whole_program_compiles() {
    let dir = scratch("whole");
    assert!(compile(&dir, "the whole module", MODULE));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cuts_at_every_997th_byte_are_clean_errors() {
    let dir = scratch("cuts");
    let ends = section_ends(MODULE);
    let mut cuts = 0;
    for cut in (997..MODULE.len()).step_by(997) {
        let compiled = compile(&dir, &format!("cut at {cut}"), &MODULE[..cut]);
        assert_eq!(
            compiled,
            ends.contains(&cut),
            "cut at {cut}: compiled = {compiled}"
        );
        cuts += 1;
    }
    assert!(cuts >= 100, "the module is large enough for {cuts} cuts");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn random_byte_flips_never_crash() {
    let dir = scratch("flips");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut ok, mut errors) = (0, 0);
    for round in 0..120 {
        let mut bytes = MODULE.to_vec();
        let flips = 1 + next() % 8;
        for _ in 0..flips {
            let at = 8 + (next() as usize) % (bytes.len() - 8);
            bytes[at] = next() as u8;
        }
        if compile(&dir, &format!("round {round}"), &bytes) {
            ok += 1;
        } else {
            errors += 1;
        }
    }
    assert!(
        errors > 0,
        "some corrupted modules must be rejected ({ok} compiled)"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
