//! Compile throughput of the tier's settings (run with `--ignored --nocapture`).

mod harness;

use spate_tier_cranelift::{CraneliftOptions, CraneliftTier, OptLevel, RegallocAlgorithm};

/// A module of `n` functions mixing loops, memory traffic, calls and arithmetic.
fn big_module(n: usize) -> Vec<u8> {
    let mut src = String::from("(module (memory 1) (global $g (mut i32) (i32.const 0))\n");
    for i in 0..n {
        src.push_str(&format!(
            r#"(func $f{i} (param i32 i64) (result i32) (local i32 f64)
              (local.set 2 (i32.const {i}))
              (block $out (loop $l
                (br_if $out (i32.ge_u (local.get 2) (local.get 0)))
                (i32.store offset=16 (i32.and (local.get 2) (i32.const 0xfff))
                  (i32.add (i32.load (i32.const 8)) (i32.wrap_i64 (local.get 1))))
                (local.set 3 (f64.add (local.get 3) (f64.convert_i32_s (local.get 2))))
                (if (i32.rem_u (local.get 2) (i32.const 7)) (then (global.set $g (local.get 2))))
                (local.set 2 (i32.add (local.get 2) (i32.const 1)))
                (br $l)))
              (block (block (br_table 0 1 0 (local.get 0))) (global.set $g (i32.const 5)))
              (i32.add (i32.trunc_sat_f64_s (local.get 3)) (global.get $g)))
            "#
        ));
        if i > 0 {
            src.push_str(&format!(
                "(func (param i32) (result i32) (call $f{} (local.get 0) (i64.const 3)))\n",
                i - 1
            ));
        }
    }
    src.push(')');
    harness::wat(&src)
}

#[test]
#[ignore = "measurement, not a check"]
fn compile_speed() {
    let bytes = big_module(400);
    for (opt, regalloc) in [
        (OptLevel::None, RegallocAlgorithm::SinglePass),
        (OptLevel::None, RegallocAlgorithm::Backtracking),
        (OptLevel::None, RegallocAlgorithm::default()),
        (OptLevel::Speed, RegallocAlgorithm::SinglePass),
        (OptLevel::Speed, RegallocAlgorithm::Backtracking),
    ] {
        let tier = CraneliftTier::new(CraneliftOptions {
            verify: false,
            opt_level: opt,
            regalloc,
            ..CraneliftOptions::default()
        })
        .unwrap();
        let mut compiler = tier.compiler();
        harness::compile_with(&mut compiler, &bytes).unwrap(); // warm up
        let start = std::time::Instant::now();
        let rounds = 3;
        let mut code = 0;
        for _ in 0..rounds {
            code = harness::compile_with(&mut compiler, &bytes)
                .unwrap()
                .functions
                .iter()
                .map(|f| f.code.len())
                .sum::<usize>();
        }
        let secs = start.elapsed().as_secs_f64() / rounds as f64;
        println!(
            "{opt:?}/{regalloc:?}: {:.1} ms for {} KiB of wasm ({:.2} MiB/s), {} KiB of code",
            secs * 1e3,
            bytes.len() / 1024,
            bytes.len() as f64 / secs / (1 << 20) as f64,
            code / 1024
        );
    }
}
