//! The indirect-access prefetch pass: which loops get prefetches, and that the look-ahead loads
//! it adds never change a result or fault, even when they would reach past the end of the
//! memory or follow garbage indices. (That a trap inside such a loop leaves memory as the
//! baseline tier does is checked end to end in `engine/tests/tiering.rs`.)

#[path = "../../cranelift/tests/harness/mod.rs"]
mod harness;

use harness::{Instance, wat};
use spate_tier_llvm::{LlvmCompiler, LlvmOptions, LlvmTier};
use spate_tiers::abi::ValRaw;

fn compiler(prefetch_indirect: bool) -> LlvmCompiler {
    LlvmTier::new(LlvmOptions {
        prefetch_indirect,
        ..LlvmOptions::default()
    })
    .expect("host supported")
    .compiler()
    .expect("compiler")
}

/// Compiles `src` with or without the pass; returns the instance and the prefetches added.
fn instance(src: &str, prefetch_indirect: bool) -> (Instance, u64) {
    let mut compiler = compiler(prefetch_indirect);
    let module = harness::compile_with(&mut compiler, &wat(src)).expect("module compiles");
    (
        Instance::new(module, Vec::new()),
        compiler.prefetches_added(),
    )
}

/// A WAT data string holding `words` as little-endian 32-bit words.
fn data(words: &[u32]) -> String {
    words
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .map(|b| format!("\\{b:02x}"))
        .collect()
}

/// `n` keys in `0..range` from a xorshift sequence.
fn keys(n: usize, range: u32) -> Vec<u32> {
    let mut state = 0x2545_f491u32;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state % range
        })
        .collect()
}

/// The scatter step of a counting sort: `out[count[k]++] = k` for each key `k`, as a wasm
/// function `scatter(keys, count, out, n)` over one page of memory, with `extra` data segments.
fn scatter_module(extra: &str) -> String {
    format!(
        r#"(module
          (memory 1 1)
          {extra}
          (func (export "scatter") (param $keys i32) (param $count i32) (param $out i32)
                (param $n i32)
            (local $i i32) (local $k i32) (local $c i32)
            (loop $l
              (local.set $k (i32.load (i32.add (local.get $keys)
                                               (i32.shl (local.get $i) (i32.const 2)))))
              (local.set $c (i32.load (i32.add (local.get $count)
                                               (i32.shl (local.get $k) (i32.const 2)))))
              (i32.store (i32.add (local.get $count) (i32.shl (local.get $k) (i32.const 2)))
                         (i32.add (local.get $c) (i32.const 1)))
              (i32.store (i32.add (local.get $out) (i32.shl (local.get $c) (i32.const 2)))
                         (local.get $k))
              (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1)))
                                  (local.get $n))))))"#
    )
}

/// What `scatter` leaves in `count` and `out`, computed directly.
fn scatter_expect(keys: &[u32], range: usize) -> (Vec<u32>, Vec<u32>) {
    let mut count = vec![0u32; range];
    let mut out = vec![0u32; keys.len()];
    for &k in keys {
        let c = count[k as usize];
        count[k as usize] = c + 1;
        out[c as usize] = k;
    }
    (count, out)
}

fn words(mem: &[u8], at: usize, n: usize) -> Vec<u32> {
    mem[at..at + 4 * n]
        .chunks_exact(4)
        .map(|w| u32::from_le_bytes(w.try_into().unwrap()))
        .collect()
}

/// Runs `scatter` over `n` keys at `keys_at`, with `count` at 0 and `out` after it, with and
/// without the pass, and checks both against the direct computation.
fn check_scatter(n: usize, keys_at: usize, extra: &str, keys: &[u32]) {
    const RANGE: usize = 256;
    let (count_at, out_at) = (0, 4 * RANGE);
    let (count, out) = scatter_expect(&keys[..n], RANGE);
    for prefetch in [true, false] {
        let (mut inst, added) = instance(&scatter_module(extra), prefetch);
        if prefetch {
            assert!(added >= 1, "the scatter loop gets prefetches, got {added}");
        } else {
            assert_eq!(added, 0, "no prefetches with the pass off");
        }
        inst.call(
            "scatter",
            &[
                ValRaw::i32(keys_at as i32),
                ValRaw::i32(count_at as i32),
                ValRaw::i32(out_at as i32),
                ValRaw::i32(n as i32),
            ],
        );
        let mem = inst.memory();
        assert_eq!(
            words(mem, count_at, RANGE),
            count,
            "count, prefetch {prefetch}"
        );
        assert_eq!(words(mem, out_at, n), out, "out, prefetch {prefetch}");
    }
}

#[test]
fn a_scatter_loop_gets_prefetches_and_computes_the_same() {
    let n = 1024;
    let keys = keys(n, 256);
    let keys_at = 8192;
    check_scatter(
        n,
        keys_at,
        &format!(r#"(data (i32.const {keys_at}) "{}")"#, data(&keys)),
        &keys,
    );
}

#[test]
fn look_ahead_loads_past_the_loop_follow_garbage_indices_without_faulting() {
    // After the keys the loop reads come words that, used as keys, address about 4 GiB past
    // `count`: the look-ahead reads them (the loop never does) and must clamp what it loads.
    let n = 1024;
    let keys = keys(n, 256);
    let keys_at = 8192;
    let garbage = vec![0x3fff_0000u32; 256];
    check_scatter(
        n,
        keys_at,
        &format!(
            r#"(data (i32.const {keys_at}) "{}") (data (i32.const {}) "{}")"#,
            data(&keys),
            keys_at + 4 * n,
            data(&garbage)
        ),
        &keys,
    );
}

#[test]
fn look_ahead_loads_at_the_end_of_memory_stay_inside_it() {
    // The keys end exactly at the end of the memory: the last iterations look ahead past it.
    let n = 1024;
    let keys = keys(n, 256);
    let keys_at = 65536 - 4 * n;
    check_scatter(
        n,
        keys_at,
        &format!(r#"(data (i32.const {keys_at}) "{}")"#, data(&keys)),
        &keys,
    );
}

#[test]
fn look_ahead_loads_of_every_width_at_the_end_of_memory_stay_inside_it() {
    // Keys of 1, 2 and 8 bytes ending exactly at the end of the memory index a table of 256
    // words at 0: the look-ahead loads, of the keys' own width, reach past the end.
    let n = 2048usize;
    let keys = keys(n, 256);
    let table: Vec<u32> = (0..256).map(|v| v * 3 + 1).collect();
    let expect = keys
        .iter()
        .fold(0u32, |s, &k| s.wrapping_add(table[k as usize]));
    for (width, key) in [
        (
            1,
            "(i32.load8_u (i32.add (local.get $keys) (local.get $i)))",
        ),
        (
            2,
            "(i32.load16_u (i32.add (local.get $keys) (i32.shl (local.get $i) (i32.const 1))))",
        ),
        (
            8,
            "(i32.wrap_i64 (i64.load (i32.add (local.get $keys) \
               (i32.shl (local.get $i) (i32.const 3)))))",
        ),
    ] {
        let keys_at = 65536 - width * n;
        let bytes: String = keys
            .iter()
            .flat_map(|&k| u64::from(k).to_le_bytes().into_iter().take(width))
            .map(|b| format!("\\{b:02x}"))
            .collect();
        let src = format!(
            r#"(module (memory 1 1)
                 (data (i32.const 0) "{table}")
                 (data (i32.const {keys_at}) "{bytes}")
                 (func (export "f") (param $keys i32) (param $n i32) (result i32)
                   (local $i i32) (local $s i32)
                   (loop $l
                     (local.set $s (i32.add (local.get $s)
                       (i32.load (i32.shl {key} (i32.const 2)))))
                     (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1)))
                                         (local.get $n))))
                   (local.get $s)))"#,
            table = data(&table),
        );
        let (mut inst, added) = instance(&src, true);
        assert!(added >= 1, "{width}-byte keys: the gather gets prefetches");
        let got =
            inst.call("f", &[ValRaw::i32(keys_at as i32), ValRaw::i32(n as i32)])[0].get_i32();
        assert_eq!(got as u32, expect, "{width}-byte keys");
    }
}

/// A loop summing `mem[(p[i] op n) * 4]` over `i < n`: a gather through `op`.
fn gather(op: &str) -> String {
    format!(
        r#"(func (export "f") (param $p i32) (param $n i32) (result i32)
             (local $i i32) (local $s i32)
             (loop $l
               (local.set $s (i32.add (local.get $s) (i32.load (i32.shl
                 ({op} (i32.load (i32.add (local.get $p) (i32.shl (local.get $i) (i32.const 2))))
                       (local.get $n))
                 (i32.const 2)))))
               (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1)))
                                   (local.get $n))))
             (local.get $s))"#
    )
}

#[test]
fn loops_without_a_strided_index_load_get_no_prefetch() {
    let division = gather("i32.div_u");
    let cases = [
        (
            "strided accesses only",
            r#"(func (export "f") (param $p i32) (param $n i32) (result i32)
                 (local $i i32) (local $s i32)
                 (loop $l
                   (local.set $s (i32.add (local.get $s) (i32.load (i32.add (local.get $p)
                                   (i32.shl (local.get $i) (i32.const 2))))))
                   (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1)))
                                       (local.get $n))))
                 (local.get $s))"#,
        ),
        (
            "pointer chasing (the index is no induction variable)",
            r#"(func (export "f") (param $p i32) (param $n i32) (result i32)
                 (local $s i32)
                 (loop $l
                   (local.set $p (i32.load (local.get $p)))
                   (local.set $s (i32.add (local.get $s) (i32.load offset=4 (local.get $p))))
                   (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
                 (local.get $s))"#,
        ),
        (
            "a division on the way from the index to the address",
            division.as_str(),
        ),
    ];
    for (what, func) in cases {
        let (_, added) = instance(&format!("(module (memory 1) {func})"), true);
        assert_eq!(added, 0, "{what}");
    }
    // The third case with the division replaced by a shift gets prefetches, so the division
    // is what declines it.
    let (_, added) = instance(
        &format!("(module (memory 1) {})", gather("i32.shr_u")),
        true,
    );
    // (LLVM may unroll the loop, giving each copy its own prefetch.)
    assert!(added >= 1, "a gather through a shift gets prefetches");
}
