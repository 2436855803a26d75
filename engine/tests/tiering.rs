//! Tier-up end to end: functions swapped from baseline to optimized code while the host keeps
//! calling them, and a long loop in a function called once reaching optimized code through
//! on-stack replacement.

use spate::{CompileStrategy, Config, Engine, Extern, Func, Module, Store, TierMode, Val};
use std::time::{Duration, Instant};

mod common;
use common::{load, wat};

fn tiered_engine(threshold: u32) -> Engine {
    let mut config = Config::new();
    config.tier(TierMode::Tiered).tier_up_threshold(threshold);
    Engine::new(&config).expect("tiered engine")
}

/// How long a test keeps going while waiting for the background compiler, at most.
const PATIENCE: Duration = Duration::from_secs(120);

/// The reference for `mix` below.
fn mix(x: i32) -> i32 {
    let mut h = x as u32 ^ 0x9e37_79b9;
    for _ in 0..4 {
        h = h.wrapping_mul(0x85eb_ca6b).rotate_left(13) ^ (h >> 7);
    }
    h as i32
}

const MIX: &str = r#"(module
  (type $t (func (param i32) (result i32)))
  (table 1 funcref)
  (elem (i32.const 0) $mix)
  (func $mix (export "mix") (type $t) (local $h i32) (local $n i32)
    (local.set $h (i32.xor (local.get 0) (i32.const 0x9e3779b9)))
    (local.set $n (i32.const 4))
    (block $done
      (loop $l
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $h (i32.xor
          (i32.rotl (i32.mul (local.get $h) (i32.const 0x85ebca6b)) (i32.const 13))
          (i32.shr_u (local.get $h) (i32.const 7))))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $l)))
    (local.get $h))
  (func (export "direct") (param i32) (result i32) (call $mix (local.get 0)))
  (func (export "indirect") (param i32) (result i32)
    (call_indirect (type $t) (local.get 0) (i32.const 0))))"#;

#[test]
fn host_calls_stay_right_while_the_callee_is_swapped() {
    let engine = tiered_engine(50);
    let (module, mut store, inst) = load(&engine, MIX);
    let f = inst.get_typed_func::<i32, i32>(&store, "mix").unwrap();
    let direct = inst.get_typed_func::<i32, i32>(&store, "direct").unwrap();
    let indirect = inst.get_typed_func::<i32, i32>(&store, "indirect").unwrap();
    let mix_index = 0;
    let start = Instant::now();
    let mut calls = 0u64;
    let mut calls_after_swap = 0u64;
    // Keep calling through the swap and for a good while after it.
    while calls_after_swap < 20_000 {
        assert!(
            start.elapsed() < PATIENCE,
            "no tier-up within {PATIENCE:?}: {}",
            engine.stats()
        );
        let x = (calls as i32).wrapping_mul(7919);
        assert_eq!(f.call(&mut store, x).unwrap(), mix(x), "call {calls}");
        assert_eq!(
            direct.call(&mut store, x).unwrap(),
            mix(x),
            "direct {calls}"
        );
        assert_eq!(
            indirect.call(&mut store, x).unwrap(),
            mix(x),
            "indirect {calls}"
        );
        calls += 1;
        if module.is_tiered_up(mix_index) {
            calls_after_swap += 1;
        }
    }
    let stats = engine.stats();
    assert!(stats.tier_ups >= 1, "{stats}");
    assert_eq!(stats.tier_up_failures, 0, "{stats}");
    assert!(stats.optimized.functions >= 1, "{stats}");
    assert!(stats.install_latency_max > Duration::ZERO, "{stats}");
    assert!(
        calls > calls_after_swap,
        "the first calls ran baseline code"
    );
}

/// A tier that compiled something took CPU time doing it, and no more CPU time than wall time
/// (each compile runs on one thread; the slack covers the two clocks' granularity).
fn assert_compile_times(t: &spate::TierStats) {
    assert!(t.compile_cpu_time > Duration::ZERO, "{t:?}");
    assert!(
        t.compile_cpu_time <= t.compile_time + Duration::from_micros(100) * t.functions as u32,
        "{t:?}"
    );
}

/// A function with a loop nest, and one without a loop.
const NEST_AND_FLAT: &str = r#"(module
  (func (export "nest") (param i32) (result i32) (local i32 i32)
    (loop $outer
      (local.set 2 (i32.const 0))
      (loop $inner
        (local.set 1 (i32.add (local.get 1) (local.get 2)))
        (local.set 2 (i32.add (local.get 2) (i32.const 1)))
        (br_if $inner (i32.lt_u (local.get 2) (i32.const 4))))
      (local.set 0 (i32.sub (local.get 0) (i32.const 1)))
      (br_if $outer (i32.gt_s (local.get 0) (i32.const 0))))
    (local.get 1))
  (func (export "flat") (param i32) (result i32) (i32.add (local.get 0) (i32.const 1))))"#;

#[test]
fn the_stats_count_baseline_functions_per_register_allocator() {
    use spate::BaselineRegalloc;
    for (regalloc, single_pass, backtracking) in [
        (BaselineRegalloc::default(), 1, 1),
        (BaselineRegalloc::SinglePass, 2, 0),
        (BaselineRegalloc::Backtracking, 0, 2),
    ] {
        let mut config = Config::new();
        config
            .tier(TierMode::Baseline)
            .compile_strategy(CompileStrategy::Eager)
            .baseline_regalloc(regalloc);
        let engine = Engine::new(&config).unwrap();
        let (_module, mut store, inst) = load(&engine, NEST_AND_FLAT);
        let nest = inst.get_typed_func::<i32, i32>(&store, "nest").unwrap();
        let flat = inst.get_typed_func::<i32, i32>(&store, "flat").unwrap();
        assert_eq!(nest.call(&mut store, 3).unwrap(), 18, "{regalloc:?}");
        assert_eq!(flat.call(&mut store, 1).unwrap(), 2, "{regalloc:?}");
        let stats = engine.stats();
        let b = &stats.baseline;
        assert_eq!(
            (
                b.functions,
                b.single_pass_functions,
                b.backtracking_functions
            ),
            (2, single_pass, backtracking),
            "{regalloc:?}"
        );
        let line = format!(
            "baseline register allocators: single-pass {single_pass} functions, backtracking {backtracking}"
        );
        assert!(stats.to_string().contains(&line), "{regalloc:?}: {stats}");
    }
    // The LLVM tier reports no allocator, and the line is left out.
    let mut config = Config::new();
    config
        .tier(TierMode::Optimized)
        .compile_strategy(CompileStrategy::Eager);
    let engine = Engine::new(&config).unwrap();
    let (_module, mut store, inst) = load(&engine, NEST_AND_FLAT);
    let nest = inst.get_typed_func::<i32, i32>(&store, "nest").unwrap();
    assert_eq!(nest.call(&mut store, 3).unwrap(), 18);
    let stats = engine.stats();
    assert_eq!(stats.optimized.functions, 2);
    assert_eq!(
        (
            stats.optimized.single_pass_functions,
            stats.optimized.backtracking_functions
        ),
        (0, 0)
    );
    assert!(
        !stats.to_string().contains("register allocators"),
        "{stats}"
    );
}

#[test]
fn every_tier_mode_computes_the_same() {
    for mode in [TierMode::Baseline, TierMode::Optimized, TierMode::Tiered] {
        let mut config = Config::new();
        // Eager: the counts below are of the whole module, compiled before it is ready (with
        // the default background strategy a function the calls never reach may still be
        // compiling when they are read).
        config
            .tier(mode)
            .tier_up_threshold(0)
            .compile_strategy(CompileStrategy::Eager);
        let engine = Engine::new(&config).unwrap();
        let (_module, mut store, inst) = load(&engine, MIX);
        let f = inst.get_typed_func::<i32, i32>(&store, "indirect").unwrap();
        for x in [0, 1, -1, 12345, i32::MIN, i32::MAX] {
            assert_eq!(f.call(&mut store, x).unwrap(), mix(x), "{mode} mix({x})");
        }
        let stats = engine.stats();
        match mode {
            TierMode::Baseline => {
                assert_eq!(stats.optimized.functions, 0);
                assert_eq!(stats.baseline.functions, 3);
                assert_compile_times(&stats.baseline);
                assert_eq!(stats.optimized.compile_cpu_time, Duration::ZERO);
            }
            TierMode::Optimized => {
                assert_eq!(stats.baseline.functions, 0);
                assert_eq!(stats.optimized.functions, 3);
                assert!(stats.optimized.code_bytes > 0);
                assert_compile_times(&stats.optimized);
            }
            TierMode::Tiered => {
                assert_eq!(stats.baseline.functions, 3);
                assert!(engine.wait_for_tier_ups(PATIENCE), "{stats}");
                let stats = engine.stats();
                assert!(stats.tier_ups >= 2, "{stats}");
                // The swapped code computes the same.
                for x in [7, -7] {
                    assert_eq!(f.call(&mut store, x).unwrap(), mix(x));
                }
            }
        }
    }
}

/// A function called once whose loop runs until the host says stop: the host keeps it going
/// until the engine reports an OSR entry, so the test does not depend on timing. It returns
/// two results (through the return area) computed from an i64, an f64 and a v128 local, so
/// every kind of local crosses from the baseline frame into the OSR entry.
const LONG_LOOP: &str = r#"(module
  (import "host" "keep_going" (func $keep_going (param i64) (result i32)))
  (func (export "run") (param $seed i64) (result i64 f64)
    (local $i i64) (local $acc i64) (local $f f64) (local $v v128)
    (local.set $acc (local.get $seed))
    (local.set $v (v128.const i32x4 1 2 3 4))
    (loop $l
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (local.set $acc (i64.add (i64.mul (local.get $acc) (i64.const 31)) (local.get $i)))
      (local.set $f (f64.add (local.get $f) (f64.const 0.5)))
      (local.set $v (i32x4.add (local.get $v) (v128.const i32x4 1 1 1 1)))
      (if (i32.wrap_i64 (i64.and (local.get $i) (i64.const 0xffff))) (then (br $l)))
      (br_if $l (call $keep_going (local.get $i))))
    (i64.add (local.get $acc) (i64.extend_i32_u (i32x4.extract_lane 3 (local.get $v))))
    (f64.add (local.get $f) (f64.convert_i64_u (local.get $i)))))"#;

#[test]
fn a_long_loop_in_a_function_called_once_finishes_in_optimized_code() {
    osr_run(LONG_LOOP);
}

#[test]
fn osr_finds_the_right_loop_after_dead_loops() {
    // Two loops in unreachable code come first: both tiers must still number the hot loop 2.
    let src = LONG_LOOP.replace(
        "(local.set $acc (local.get $seed))",
        "(block (br 0) (loop (br 0)) (loop (nop))) (local.set $acc (local.get $seed))",
    );
    assert_ne!(src, LONG_LOOP);
    osr_run(&src);
}

fn osr_run(src: &str) {
    let engine = tiered_engine(1000);
    let module = Module::new(&engine, wat(src)).unwrap();
    let mut store = Store::new(&engine, ());
    let probe = engine.clone();
    let started = Instant::now();
    let keep_going = Func::wrap(&mut store, move |i: i64| -> i32 {
        // Stop a few polls after the loop has moved to the OSR entry (or give up).
        let entered = probe.stats().osr_entries > 0 && i > 0;
        let give_up = started.elapsed() > PATIENCE;
        i32::from(!entered && !give_up)
    });
    let inst = spate::Instance::new(&mut store, &module, &[Extern::Func(keep_going)]).unwrap();
    let run = inst.get_func(&store, "run").unwrap();
    let mut results = [Val::I64(0), Val::F64(0)];
    run.call(&mut store, &[Val::I64(3)], &mut results).unwrap();
    let stats = engine.stats();
    assert_eq!(stats.osr_entries, 1, "{stats}");
    assert_eq!(stats.osr_compiled, 1, "{stats}");
    assert_eq!(stats.optimized.osr_entries, 1, "{stats}");
    assert_eq!(stats.tier_up_failures, 0, "{stats}");

    // Recompute what the loop did for the iteration count it reports.
    let (Val::I64(acc), Val::F64(f)) = (results[0].clone(), results[1].clone()) else {
        panic!("unexpected results {results:?}");
    };
    let f = f64::from_bits(f);
    let iterations = (f / 1.5).round() as i64;
    assert!(iterations > 0 && iterations % 0x10000 == 0, "{iterations}");
    let mut expect: i64 = 3;
    for i in 1..=iterations {
        expect = expect.wrapping_mul(31).wrapping_add(i);
    }
    expect = expect.wrapping_add(4 + iterations);
    assert_eq!(acc, expect);
    assert_eq!(f, 0.5 * iterations as f64 + iterations as f64);
}

/// A two-level loop nest in WAT: `$outer{label}` runs while `again` (an `i32` expression) is
/// non-zero, and each of its iterations runs `$inner{label}` `$n` times, folding
/// `acc = acc * mul + (i * n + j)` (see [`nest_expect`]). It uses the locals `$i`, `$j`, `$acc`
/// and the parameter `$n`, and counts `$i` on from its value at the start.
fn loop_nest(label: &str, mul: i32, again: &str) -> String {
    format!(
        r#"
        (loop $outer{label}
          (local.set $j (i32.const 0))
          (loop $inner{label}
            (local.set $acc
              (i32.add (i32.mul (local.get $acc) (i32.const {mul}))
                (i32.add (i32.mul (local.get $i) (local.get $n)) (local.get $j))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br_if $inner{label} (i32.lt_u (local.get $j) (local.get $n))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $outer{label} {again}))"#
    )
}

/// What [`loop_nest`] with `mul` leaves in `acc` after `rounds` outer iterations from `i = 0`.
fn nest_expect(mut acc: i32, mul: i32, rounds: i32, n: i32) -> i32 {
    for i in 0..rounds {
        for j in 0..n {
            acc = acc
                .wrapping_mul(mul)
                .wrapping_add(i.wrapping_mul(n).wrapping_add(j));
        }
    }
    acc
}

/// A loop nest in a function called once: the inner loop gets hot first, but the transfer
/// happens at the outer loop's header, whose OSR entry runs the inner loop from its own start.
/// The outer loop runs until the host says stop, a few polls after the engine reports the entry.
fn nested_loops() -> String {
    format!(
        r#"(module
  (import "host" "keep_going" (func $keep_going (param i32) (result i32)))
  (func (export "run") (param $n i32) (result i32 i32)
    (local $i i32) (local $j i32) (local $acc i32)
    {}
    (local.get $acc)
    (local.get $i)))"#,
        loop_nest("", 31, "(call $keep_going (local.get $i))")
    )
}

/// Runs `run(n)` of `src` (a module importing `keep_going(i32) -> i32`), the host continuing
/// while `go(polls since the first OSR entry was taken)` says so; returns the results and the
/// engine's stats.
fn nested_run(src: &str, n: i32, go: fn(u32) -> bool) -> (i32, i32, spate::Stats) {
    let engine = tiered_engine(1000);
    let module = Module::new(&engine, wat(src)).unwrap();
    let mut store = Store::new(&engine, ());
    let probe = engine.clone();
    let started = Instant::now();
    let polls_after = std::sync::atomic::AtomicU32::new(0);
    let keep_going = Func::wrap(&mut store, move |_: i32| -> i32 {
        use std::sync::atomic::Ordering::Relaxed;
        if probe.stats().osr_entries > 0 {
            polls_after.fetch_add(1, Relaxed);
        }
        let give_up = started.elapsed() > PATIENCE;
        i32::from(go(polls_after.load(Relaxed)) && !give_up)
    });
    let inst = spate::Instance::new(&mut store, &module, &[Extern::Func(keep_going)]).unwrap();
    let run = inst.get_func(&store, "run").unwrap();
    let mut results = [Val::I32(0), Val::I32(0)];
    run.call(&mut store, &[Val::I32(n)], &mut results).unwrap();
    let (Val::I32(acc), Val::I32(outer)) = (results[0].clone(), results[1].clone()) else {
        panic!("unexpected results {results:?}");
    };
    (acc, outer, engine.stats())
}

/// What [`nested_loops`] computes for `outer` iterations of the outer loop.
fn nested_expect(n: i32, outer: i32) -> i32 {
    nest_expect(0, 31, outer, n)
}

#[test]
fn a_loop_nest_transfers_at_its_outer_loop() {
    let n = 5000;
    let (acc, outer, stats) = nested_run(&nested_loops(), n, |polls| polls < 3);
    // One entry compiled and taken: the outer loop's.
    assert_eq!(stats.osr_entries, 1, "{stats}");
    assert_eq!(stats.osr_outer_entries, 1, "{stats}");
    assert_eq!(stats.osr_compiled, 1, "{stats}");
    assert_eq!(stats.tier_up_failures, 0, "{stats}");
    assert!(outer > 3, "{outer}");
    assert_eq!(acc, nested_expect(n, outer));
}

#[test]
fn an_inner_loop_that_outlasts_the_outer_entry_takes_its_own() {
    // The inner loop polls the host and runs until told to stop, so the outer loop's header
    // never comes round: once the outer entry has waited long enough, the inner loop asks for
    // and takes an entry of its own.
    let nested = nested_loops();
    let src = nested.replace(
        "(br_if $inner (i32.lt_u (local.get $j) (local.get $n)))",
        "(br_if $inner (i32.or (i32.lt_u (local.get $j) (local.get $n))
           (call $keep_going (local.get $j))))",
    );
    assert_ne!(src, nested);
    // Inner loop: keeps going until the entry is taken; outer loop: stops at once.
    let (acc, outer, stats) = nested_run(&src, 5000, |polls| polls < 2);
    assert_eq!(stats.osr_entries, 1, "{stats}");
    assert_eq!(stats.osr_outer_entries, 0, "{stats}");
    assert_eq!(stats.osr_compiled, 2, "{stats}");
    assert_eq!(stats.tier_up_failures, 0, "{stats}");
    assert!(outer >= 1, "{outer}");
    let _ = acc;
}

#[test]
fn a_rarely_iterating_outer_loop_hands_over_to_the_next_loop_inward() {
    // Three levels: the outermost loop runs once (it asks the host with level 2), the middle one
    // until the host says stop (level 1), the inner one `n` times per middle iteration. The
    // outermost loop's entry is compiled first but its header never comes round; the middle
    // loop's entry is then compiled and taken at its next header.
    let src = format!(
        r#"(module
      (import "host" "keep_going" (func $keep_going (param i32) (result i32)))
      (func (export "run") (param $n i32) (result i32 i32)
        (local $i i32) (local $j i32) (local $acc i32) (local $s i32)
        (loop $top
          (local.set $i (i32.const 0))
          {}
          (local.set $s (i32.add (local.get $s) (i32.const 1)))
          (br_if $top (i32.eqz (local.get $s))))
        (local.get $acc)
        (local.get $i)))"#,
        loop_nest("", 31, "(call $keep_going (i32.const 1))")
    );
    let (acc, outer, stats) = nested_run(&src, 5000, |polls| polls < 3);
    assert_eq!(stats.osr_entries, 1, "{stats}");
    assert_eq!(stats.osr_outer_entries, 1, "{stats}");
    assert_eq!(stats.osr_compiled, 2, "{stats}");
    assert_eq!(stats.tier_up_failures, 0, "{stats}");
    assert!(outer > 3, "{outer}");
    assert_eq!(acc, nested_expect(5000, outer));
}

/// A set-up loop, then a loop nest whose outer loop runs until the host says stop, inside a
/// loop over phases that runs once (`PHASES`: the phase loop holds both loops), or with the two
/// loops at the top level (`FLAT`).
fn set_up_then_kernel(phases: bool) -> String {
    let body = format!(
        r#"
          (local.set $k (i32.const 0))
          (loop $setup
            (local.set $acc (i32.add (local.get $acc) (local.get $k)))
            (local.set $k (i32.add (local.get $k) (i32.const 1)))
            (br_if $setup (i32.lt_u (local.get $k) (i32.const 20000))))
          (local.set $i (i32.const 0))
          {}"#,
        loop_nest("", 31, "(call $keep_going (i32.const 1))")
    );
    let body = if phases {
        format!(
            "(loop $phase {body}
          (local.set $s (i32.add (local.get $s) (i32.const 1)))
          (br_if $phase (i32.eqz (local.get $s))))"
        )
    } else {
        body
    };
    format!(
        r#"(module
      (import "host" "keep_going" (func $keep_going (param i32) (result i32)))
      (func (export "run") (param $n i32) (result i32 i32)
        (local $i i32) (local $j i32) (local $acc i32) (local $s i32) (local $k i32)
        {body}
        (local.get $acc)
        (local.get $i)))"#
    )
}

/// What `set_up_then_kernel` computes for `outer` iterations of the outer loop.
fn set_up_then_kernel_expect(n: i32, outer: i32) -> i32 {
    let set_up = (0..20000).fold(0i32, |a, k| a.wrapping_add(k));
    nest_expect(set_up, 31, outer, n)
}

/// Runs `set_up_then_kernel(phases)` until a few polls after the OSR entry; checks that one
/// entry was compiled and taken and that the result is right; returns the stats.
fn set_up_then_kernel_run(phases: bool) -> spate::Stats {
    let (acc, outer, stats) = nested_run(&set_up_then_kernel(phases), 3000, |polls| polls < 3);
    assert_eq!(stats.osr_entries, 1, "{stats}");
    assert_eq!(stats.osr_compiled, 1, "{stats}");
    assert_eq!(stats.tier_up_failures, 0, "{stats}");
    assert!(outer > 3, "{outer}");
    assert_eq!(acc, set_up_then_kernel_expect(3000, outer));
    stats
}

#[test]
fn the_first_entry_is_the_region_of_the_loop_nest_after_the_set_up() {
    // The set-up loop gets hot first and asks for the function's first entry: the region of
    // the loop nest the program reaches next, the kernel, whose outer loop takes it, with no
    // second compile.
    set_up_then_kernel_run(false);
}

#[test]
fn a_loop_over_phases_is_entered_at_the_phase_running() {
    // The phase loop runs once and holds the set-up loop and the kernel: the first entry is the
    // region of the loop nest inside it that the program reaches next, the kernel, so the
    // kernel's outer loop takes it although the phase loop's header never comes round again,
    // and nothing else is compiled.
    let stats = set_up_then_kernel_run(true);
    assert_eq!(stats.osr_outer_entries, 1, "{stats}");
}

/// A tiered instance of `src` (a module importing `keep_going(i32) -> i32` and exporting
/// `run(..) -> (i32, i32)`), for calling `run` more than once: in each call, the host stops the
/// loop that polls it once an OSR entry has been taken during that call.
struct CalledAgain {
    engine: Engine,
    store: Store<()>,
    run: Func,
    /// OSR entries taken before the current call.
    entries_before: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl CalledAgain {
    fn new(src: &str) -> CalledAgain {
        let engine = tiered_engine(1000);
        let module = Module::new(&engine, wat(src)).unwrap();
        let mut store = Store::new(&engine, ());
        let probe = engine.clone();
        let started = Instant::now();
        let entries_before = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let seen = entries_before.clone();
        let keep_going = Func::wrap(&mut store, move |_: i32| -> i32 {
            use std::sync::atomic::Ordering::Relaxed;
            let entered = probe.stats().osr_entries > seen.load(Relaxed);
            i32::from(!entered && started.elapsed() < PATIENCE)
        });
        let inst = spate::Instance::new(&mut store, &module, &[Extern::Func(keep_going)]).unwrap();
        let run = inst.get_func(&store, "run").unwrap();
        CalledAgain {
            engine,
            store,
            run,
            entries_before,
        }
    }

    /// Calls `run(args)` and waits for the tier-ups it asked for; returns its two results and
    /// the engine's stats.
    fn call(&mut self, args: &[Val]) -> (i32, i32, spate::Stats) {
        let taken = self.engine.stats().osr_entries;
        self.entries_before
            .store(taken, std::sync::atomic::Ordering::Relaxed);
        let mut results = [Val::I32(0), Val::I32(0)];
        self.run.call(&mut self.store, args, &mut results).unwrap();
        assert!(self.engine.wait_for_tier_ups(PATIENCE));
        let (Val::I32(acc), Val::I32(outer)) = (results[0].clone(), results[1].clone()) else {
            panic!("unexpected results {results:?}");
        };
        (acc, outer, self.engine.stats())
    }
}

#[test]
fn a_function_entered_through_osr_twice_gets_its_own_code() {
    // Called once, the function's loop reaches optimized code through OSR and the function's
    // own code is not compiled; called again, its loop takes the entry again and the function
    // itself is queued, so a third call starts in optimized code.
    let mut f = CalledAgain::new(&set_up_then_kernel(false));
    let (_, _, stats) = f.call(&[Val::I32(2000)]);
    assert_eq!((stats.osr_entries, stats.tier_ups), (1, 0), "{stats}");
    let (acc, outer, stats) = f.call(&[Val::I32(2000)]);
    assert_eq!((stats.osr_entries, stats.tier_ups), (2, 1), "{stats}");
    assert_eq!(stats.tier_up_failures, 0, "{stats}");
    assert_eq!(acc, set_up_then_kernel_expect(2000, outer));
}

/// Two loop nests one after the other: nest A runs `$outer_a` times, nest B until the host says
/// stop. Returns the accumulator and B's outer count.
fn two_nests() -> String {
    format!(
        r#"(module
  (import "host" "keep_going" (func $keep_going (param i32) (result i32)))
  (func (export "run") (param $outer_a i32) (param $n i32) (result i32 i32)
    (local $i i32) (local $j i32) (local $acc i32)
    {}
    (local.set $i (i32.const 0))
    {}
    (local.get $acc)
    (local.get $i)))"#,
        loop_nest("_a", 31, "(i32.lt_u (local.get $i) (local.get $outer_a))"),
        loop_nest("_b", 37, "(call $keep_going (local.get $i))")
    )
}

/// What [`two_nests`] computes.
fn two_nests_expect(outer_a: i32, n: i32, outer_b: i32) -> i32 {
    nest_expect(nest_expect(0, 31, outer_a, n), 37, outer_b, n)
}

#[test]
fn a_function_called_again_gets_a_region_for_its_other_nest_and_its_own_code() {
    // First call: nest A runs once, nest B gets hot, and the region entry of B's outer loop is
    // compiled and taken. Second call: nest A runs long enough to get hot and gets a region of
    // its own (not the whole function: B's region is still there); B takes its entry again,
    // which, B being a top-level loop, means the function was called again, so its own code is
    // compiled too. Results stay right throughout.
    let mut f = CalledAgain::new(&two_nests());
    let n = 200;
    let (acc, outer, stats) = f.call(&[Val::I32(1), Val::I32(n)]);
    assert_eq!((stats.osr_entries, stats.osr_compiled), (1, 1), "{stats}");
    assert_eq!(stats.tier_ups, 0, "{stats}");
    assert_eq!(acc, two_nests_expect(1, n, outer));

    let outer_a = 2000;
    let (acc, outer, stats) = f.call(&[Val::I32(outer_a), Val::I32(n)]);
    assert_eq!(stats.osr_compiled, 2, "{stats}");
    assert!(stats.osr_entries >= 2, "{stats}");
    assert_eq!(stats.tier_ups, 1, "{stats}");
    assert_eq!(stats.tier_up_failures, 0, "{stats}");
    assert_eq!(acc, two_nests_expect(outer_a, n, outer));
}

/// Rounds of [`rounds_of_a_kernel`] in the test of one call.
const ROUNDS: i32 = 3;

/// A loop over rounds, each of which runs a set-up loop, then a loop nest whose outer loop
/// polls the host with the round's number (the host stops it a few polls after an OSR entry
/// was taken in that round), then a tail loop; the round loop goes on while its counter is
/// below `rounds` (an `i32` expression).
fn rounds_of_a_kernel(rounds: &str) -> String {
    format!(
        r#"(module
  (import "host" "keep_going" (func $keep_going (param i32) (result i32)))
  (func (export "run") (param $n i32) (result i32 i32)
    (local $i i32) (local $j i32) (local $acc i32) (local $r i32) (local $k i32)
    (loop $rounds
      (local.set $k (i32.const 0))
      (loop $setup
        (local.set $acc (i32.xor (local.get $acc) (local.get $k)))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br_if $setup (i32.lt_u (local.get $k) (i32.const 5000))))
      (local.set $i (i32.const 0))
      {}
      (local.set $k (i32.const 0))
      (loop $tail
        (local.set $acc (i32.add (local.get $acc) (i32.const 3)))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br_if $tail (i32.lt_u (local.get $k) (i32.const 5000))))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br_if $rounds (i32.lt_u (local.get $r) {rounds})))
    (local.get $acc)
    (local.get $i)))"#,
        loop_nest("", 31, "(call $keep_going (local.get $r))")
    )
}

#[test]
fn a_region_entry_returns_to_the_baseline_and_is_taken_again_next_round() {
    // The kernel's region entry runs the nest in LLVM code and, when the nest ends, leaves to
    // the baseline, which runs the tail loop, the next round's set-up loop, and takes the
    // entry again at the nest's header. The region of a loop inside another loop can be taken
    // many times in one call, so a few takes do not make the function's own code be compiled.
    // (From the third round the round loop's own region may be asked for too, since the
    // kernel's region has been taken twice by then; it serves the set-up and tail loops, and
    // the kernel keeps its region.)
    let engine = tiered_engine(1000);
    let module = Module::new(
        &engine,
        wat(&rounds_of_a_kernel(&format!("(i32.const {ROUNDS})"))),
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let probe = engine.clone();
    let started = Instant::now();
    // The round polling, the OSR entries taken before it (by the end of the round before: a
    // round's entry is taken before its first poll), polls since one was taken in the round,
    // and the entries seen at the last poll.
    let state = std::sync::Mutex::new((-1i32, 0u64, 0u32, 0u64));
    let outers = std::sync::Arc::new(std::sync::Mutex::new(Vec::<i32>::new()));
    let seen = outers.clone();
    let keep_going = Func::wrap(&mut store, move |round: i32| -> i32 {
        let mut st = state.lock().unwrap();
        let entries = probe.stats().osr_entries;
        if st.0 != round {
            *st = (round, st.3, 0, entries);
            seen.lock().unwrap().push(0);
        }
        st.3 = entries;
        *seen.lock().unwrap().last_mut().unwrap() += 1;
        if entries > st.1 {
            st.2 += 1;
        }
        i32::from(st.2 < 3 && started.elapsed() < PATIENCE)
    });
    let inst = spate::Instance::new(&mut store, &module, &[Extern::Func(keep_going)]).unwrap();
    let run = inst.get_func(&store, "run").unwrap();
    let mut results = [Val::I32(0), Val::I32(0)];
    let n = 2000;
    run.call(&mut store, &[Val::I32(n)], &mut results).unwrap();
    assert!(engine.wait_for_tier_ups(PATIENCE));
    let stats = engine.stats();
    // One entry per round: the kernel's region (the set-up and tail loops may get regions of
    // their own, and be entered through them, in later rounds).
    assert!(stats.osr_entries >= ROUNDS as u64, "{stats}");
    assert_eq!(stats.tier_ups, 0, "{stats}");
    assert_eq!(stats.tier_up_failures, 0, "{stats}");
    // The reference: the rounds with the outer-loop counts the host allowed.
    let polls = outers.lock().unwrap().clone();
    assert_eq!(polls.len(), ROUNDS as usize, "{polls:?}");
    let (mut acc, mut i) = (0i32, 0i32);
    for rounds in polls {
        for k in 0..5000 {
            acc ^= k;
        }
        i = 0;
        for round_i in 0..rounds {
            for j in 0..n {
                acc = acc
                    .wrapping_mul(31)
                    .wrapping_add(round_i.wrapping_mul(n).wrapping_add(j));
            }
        }
        i += rounds;
        acc = acc.wrapping_add(3 * 5000);
    }
    let (Val::I32(got_acc), Val::I32(got_i)) = (results[0].clone(), results[1].clone()) else {
        panic!("unexpected results {results:?}");
    };
    assert_eq!((got_acc, got_i), (acc, i));
}

#[test]
fn a_nested_region_taken_in_a_later_call_gets_the_function_its_own_code() {
    // The kernel's region can be taken many times in one call (its nest sits in the round
    // loop), so taking it again says nothing by itself; the function's call count says whether
    // this is a later call. Call 1 (one round) takes the region, and nothing else is compiled
    // for the function; call 2 takes it again, and the function's own code is compiled for
    // the calls to come.
    let mut f = CalledAgain::new(&rounds_of_a_kernel("(i32.const 1)"));
    let n = 2000;
    // One round: the set-up loop, the nest for `outer` rounds, the tail loop.
    let expect = |outer: i32| {
        let set_up = (0..5000).fold(0i32, |acc, k| acc ^ k);
        nest_expect(set_up, 31, outer, n).wrapping_add(3 * 5000)
    };
    let (acc, outer, stats) = f.call(&[Val::I32(n)]);
    assert!(stats.osr_entries >= 1, "{stats}");
    assert_eq!(stats.tier_ups, 0, "{stats}");
    assert_eq!(acc, expect(outer));
    let entries = stats.osr_entries;
    let (acc, outer, stats) = f.call(&[Val::I32(n)]);
    assert!(stats.osr_entries > entries, "{stats}");
    assert_eq!(stats.tier_ups, 1, "{stats}");
    assert_eq!(stats.tier_up_failures, 0, "{stats}");
    assert_eq!(acc, expect(outer));
}

/// A loop over rounds of three short phases (loops of `$n` iterations), with locals written
/// between the phases and after the last one. The rounds go on while the host says so; then the
/// function leaves the round loop by a branch to the block around it (`$how` = 0) or past the
/// loop's end (`$how` = 1, which also adds 1000 to `$c`), and returns `a + c`, `b` and the
/// rounds run.
const PHASES: &str = r#"(module
  (import "host" "keep_going" (func $keep_going (param i32) (result i32)))
  (func (export "run") (param $n i32) (param $how i32) (result i32 i32 i32)
    (local $i i32) (local $a i32) (local $b i32) (local $c i32) (local $r i32) (local $k i32)
    (block $done
      (loop $rounds
        (local.set $i (i32.const 0))
        (loop $p1
          (local.set $a (i32.add (i32.mul (local.get $a) (i32.const 31)) (local.get $i)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $p1 (i32.lt_u (local.get $i) (local.get $n))))
        (local.set $c (i32.add (local.get $c) (local.get $a)))
        (local.set $i (i32.const 0))
        (loop $p2
          (local.set $b (i32.xor (local.get $b) (i32.add (local.get $a) (local.get $i))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $p2 (i32.lt_u (local.get $i) (local.get $n))))
        (local.set $i (i32.const 0))
        (loop $p3
          (local.set $a (i32.sub (local.get $a) (i32.and (local.get $b) (local.get $i))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $p3 (i32.lt_u (local.get $i) (local.get $n))))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (local.set $c (i32.xor (local.get $c) (i32.mul (local.get $r) (local.get $b))))
        (local.set $k (call $keep_going (local.get $r)))
        (br_if $done (i32.and (i32.eqz (local.get $k)) (i32.eqz (local.get $how))))
        (br_if $rounds (local.get $k)))
      (local.set $c (i32.add (local.get $c) (i32.const 1000))))
    (i32.add (local.get $a) (local.get $c))
    (local.get $b)
    (local.get $r)))"#;

/// What [`PHASES`] returns after `rounds` rounds.
fn phases_expect(n: i32, how: i32, rounds: i32) -> (i32, i32, i32) {
    let (mut a, mut b, mut c) = (0i32, 0i32, 0i32);
    for r in 1..=rounds {
        for i in 0..n {
            a = a.wrapping_mul(31).wrapping_add(i);
        }
        c = c.wrapping_add(a);
        for i in 0..n {
            b ^= a.wrapping_add(i);
        }
        for i in 0..n {
            a = a.wrapping_sub(b & i);
        }
        c ^= r.wrapping_mul(b);
    }
    if how != 0 {
        c = c.wrapping_add(1000);
    }
    (a.wrapping_add(c), b, rounds)
}

/// Rounds with no new OSR entry after which [`PHASES`]'s host stops the rounds.
const QUIET_ROUNDS: u32 = 5;

/// Runs [`PHASES`] with `how` until [`QUIET_ROUNDS`] rounds in a row take no OSR entry (after
/// at least one was taken), checks the results, and returns the stats.
fn phases_run(how: i32) -> spate::Stats {
    let engine = tiered_engine(1000);
    let module = Module::new(&engine, wat(PHASES)).unwrap();
    let mut store = Store::new(&engine, ());
    let probe = engine.clone();
    let started = Instant::now();
    // Entries at the last poll, and polls since they last changed.
    let quiet = std::sync::Arc::new(std::sync::Mutex::new((0u64, 0u32)));
    let seen = quiet.clone();
    let keep_going = Func::wrap(&mut store, move |_round: i32| -> i32 {
        let entries = probe.stats().osr_entries;
        let mut q = seen.lock().unwrap();
        *q = match entries == q.0 {
            true => (entries, q.1 + 1),
            false => (entries, 0),
        };
        i32::from(!(entries > 0 && q.1 >= QUIET_ROUNDS) && started.elapsed() < PATIENCE)
    });
    let inst = spate::Instance::new(&mut store, &module, &[Extern::Func(keep_going)]).unwrap();
    let run = inst.get_func(&store, "run").unwrap();
    let mut results = [Val::I32(0), Val::I32(0), Val::I32(0)];
    let n = 2000;
    run.call(&mut store, &[Val::I32(n), Val::I32(how)], &mut results)
        .unwrap();
    assert!(engine.wait_for_tier_ups(PATIENCE));
    let stats = engine.stats();
    // The rounds stopped because the entries did, not for lack of patience: the function runs
    // in one entry that holds the round loop, not in one region per phase that each round
    // takes again.
    assert!(quiet.lock().unwrap().1 >= QUIET_ROUNDS, "{stats}");
    assert_eq!(stats.tier_up_failures, 0, "{stats}");
    let [Val::I32(x), Val::I32(b), Val::I32(rounds)] = results.clone() else {
        panic!("unexpected results {results:?}");
    };
    assert_eq!((x, b, rounds), phases_expect(n, how, rounds), "{stats}");
    stats
}

#[test]
fn rounds_of_short_phases_get_one_region_of_the_round_loop_left_through_a_branch() {
    // The phases get regions of their own first; once a round has taken them twice, the next
    // phase to get hot asks for the region of the round loop, entered at that phase's header.
    // It runs the remaining rounds, then leaves by a branch to the block around the round loop:
    // the phase's transfer hands that exit to the round loop's continuation, which reloads the
    // locals written anywhere in the round (`$c`, `$r` and `$k` outside any phase).
    phases_run(0);
}

#[test]
fn rounds_of_short_phases_get_one_region_of_the_round_loop_left_past_its_end() {
    // As above, but the round loop ends by falling through its `end`, and the code after it
    // (in the baseline) sees the locals the region wrote.
    phases_run(1);
}

/// An inner loop that leaves in every way a region can: a branch to the enclosing loop's
/// header, a `br_table` to the ends of two blocks (or back to its own header), a branch to the
/// end of an `if` around everything (once `$i` passes `$stop`), and its own end is never
/// reached (it always branches). Nearly all of the budget is spent in the inner loop, so its
/// header is where it runs out, and the inner loop's region is taken and left many times.
const EXITS: &str = r#"(module
  (func (export "walk") (param $n i32) (param $stop i32) (result i32)
    (local $i i32) (local $j i32) (local $acc i32)
    (if (local.get $n) (then
      (loop $outer
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (local.set $j (i32.const 0))
        (block $b0
          (block $b1
            (loop $inner
              (local.set $acc (i32.add (i32.mul (local.get $acc) (i32.const 7)) (local.get $j)))
              (local.set $j (i32.add (local.get $j) (i32.const 1)))
              (br_if 4 (i32.gt_u (local.get $i) (local.get $stop)))
              (br_if $outer (i32.and (i32.eq (local.get $j) (i32.rem_u (local.get $i) (i32.const 97)))
                                     (i32.lt_u (local.get $i) (local.get $n))))
              (br_if $inner (i32.le_u (local.get $j) (i32.const 50)))
              (br_table $b0 $b1 $inner
                (select (i32.const 0) (i32.rem_u (local.get $acc) (i32.const 3))
                        (i32.gt_u (local.get $j) (i32.const 100))))))
          (local.set $acc (i32.xor (local.get $acc) (i32.const 0x1234))))
        (local.set $acc (i32.add (local.get $acc) (local.get $i)))
        (br_if $outer (i32.lt_u (local.get $i) (local.get $n))))
      (local.set $acc (i32.sub (local.get $acc) (i32.const 5)))))
    (i32.add (local.get $acc) (i32.mul (local.get $i) (local.get $j)))))"#;

/// [`EXITS`]'s `walk(400, stop)` in a new instance on `engine`.
fn walk(engine: &Engine, stop: i32) -> i32 {
    let (_module, mut store, inst) = load(engine, EXITS);
    let walk = inst
        .get_typed_func::<(i32, i32), i32>(&store, "walk")
        .unwrap();
    walk.call(&mut store, (400, stop)).unwrap()
}

/// [`walk`] on a baseline-only engine: the reference.
fn walk_in_baseline(stop: i32) -> i32 {
    let mut baseline = Config::new();
    baseline.tier(TierMode::Baseline);
    walk(&Engine::new(&baseline).expect("engine"), stop)
}

/// A tiered engine at threshold 1000 with `osr_at_every_loop`.
fn osr_at_every_loop_engine() -> Engine {
    let mut config = Config::new();
    config
        .tier(TierMode::Tiered)
        .tier_up_threshold(1000)
        .osr_at_every_loop(true);
    Engine::new(&config).expect("engine")
}

#[test]
fn region_exits_to_an_outer_header_block_ends_and_an_if_end_continue_in_the_baseline() {
    for stop in [1000, 300] {
        let want = walk_in_baseline(stop);
        let engine = osr_at_every_loop_engine();
        let got = walk(&engine, stop);
        let stats = engine.stats();
        assert_eq!(got, want, "stop {stop}: {stats}");
        // The inner loop's region was taken (and so left) again and again.
        assert!(stats.osr_entries >= 3, "stop {stop}: {stats}");
        assert_eq!(stats.tier_up_failures, 0, "stop {stop}: {stats}");
    }
}

#[test]
fn osr_at_every_loop_goes_on_in_the_baseline_once_tier_up_is_stopped() {
    // Every exhausted loop header waits for its own loop's entry; after `stop_tier_ups` the
    // requests are dropped unstarted, and each loop must learn that at once (its request marked
    // failed) instead of waiting out the 30-second patience at every header.
    let engine = osr_at_every_loop_engine();
    let (_module, mut store, inst) = load(&engine, MIX);
    // Starts the tier manager (an unstarted one has nothing to stop).
    let f = inst.get_typed_func::<i32, i32>(&store, "mix").unwrap();
    for x in 0..300 {
        assert_eq!(f.call(&mut store, x).unwrap(), mix(x));
    }
    assert!(engine.wait_for_tier_ups(PATIENCE));
    assert!(engine.stop_tier_ups(PATIENCE));
    let before = engine.stats();
    let started = Instant::now();
    let got = walk(&engine, 1000);
    let waited = started.elapsed();
    assert_eq!(got, walk_in_baseline(1000));
    let after = engine.stats();
    assert_eq!(after.osr_entries, before.osr_entries, "{after}");
    assert_eq!(after.osr_compiled, before.osr_compiled, "{after}");
    // Not a speed figure: a loop left waiting would take the full patience (30 s) per header.
    assert!(waited < Duration::from_secs(20), "{waited:?}");
}

#[test]
fn stopping_tier_up_drops_queued_work_and_keeps_installed_code() {
    let engine = tiered_engine(0);
    let (module, mut store, inst) = load(&engine, MIX);
    let f = inst.get_typed_func::<i32, i32>(&store, "mix").unwrap();
    assert_eq!(f.call(&mut store, 5).unwrap(), mix(5));
    assert!(engine.wait_for_tier_ups(PATIENCE));
    assert!(module.is_tiered_up(0), "{}", engine.stats());
    assert!(engine.stop_tier_ups(PATIENCE));
    // Requests after the stop are dropped: `direct` and `indirect` never tier up.
    let direct = inst.get_typed_func::<i32, i32>(&store, "direct").unwrap();
    for x in 0..100 {
        assert_eq!(direct.call(&mut store, x).unwrap(), mix(x));
    }
    assert!(engine.wait_for_tier_ups(PATIENCE));
    assert!(!module.is_tiered_up(1));
    assert_eq!(engine.stats().tier_ups, 1);
    // The installed code keeps running.
    assert_eq!(f.call(&mut store, 6).unwrap(), mix(6));
}

/// A recursive function with many locals and several OSR-eligible loops: the spill slot for OSR
/// transfers is one per function (not one per loop), so deep recursion still fits the default
/// 512 KiB wasm stack in every mode.
#[test]
fn osr_instrumentation_keeps_frames_small() {
    let mut locals = String::new();
    for i in 0..40 {
        locals.push_str(&format!("(local $l{i} i64) "));
    }
    let mut loops = String::new();
    for i in 0..10 {
        loops.push_str(&format!(
            "(local.set $l{i} (local.get 0)) (loop $k{i} (local.set $l{i} (i64.sub (local.get $l{i}) (i64.const 1))) (br_if $k{i} (i64.gt_s (local.get $l{i}) (i64.const 0)))) "
        ));
    }
    let src = format!(
        r#"(module (func $f (export "f") (param i64) (result i64) {locals}
             {loops}
             (if (result i64) (i64.eqz (local.get 0))
               (then (i64.const 0))
               (else (i64.add (i64.add (local.get $l3) (i64.const 1))
                              (call $f (i64.sub (local.get 0) (i64.const 1))))))))"#
    );
    for mode in [TierMode::Baseline, TierMode::Tiered] {
        let mut config = Config::new();
        // A high threshold keeps the recursion on baseline frames.
        config.tier(mode).tier_up_threshold(u32::MAX);
        let engine = Engine::new(&config).unwrap();
        let (_module, mut store, inst) = load(&engine, &src);
        let f = inst.get_typed_func::<i64, i64>(&store, "f").unwrap();
        assert_eq!(f.call(&mut store, 300).unwrap(), 300, "{mode}");
    }
}

/// Side of the matrices of [`MATMUL_NEST`].
const MM_N: i32 = 300;

/// A matmul-shaped function as clang -O3 builds one for wasm32: an initialisation loop, then a
/// multiply nest whose outer loop counts `$i` up to a constant and carries the offset `$p` of
/// C's row (the shape the LLVM tier's direct OSR entry gives a checked copy, see
/// `tiers/llvm/src/translate/osr_facts.rs`), then a checksum loop. A at 0, B and C after it.
fn matmul_nest() -> String {
    let n = MM_N;
    let (b, c) = (n * n * 4, 2 * n * n * 4);
    format!(
        r#"(module
  (memory {pages})
  (func (export "run") (result i32)
    (local $i i32) (local $j i32) (local $k i32) (local $p i32) (local $q i32) (local $a i32)
    (local $x i32) (local $sum i32)
    (loop $init
      (i32.store (i32.shl (local.get $x) (i32.const 2))
        (i32.sub (i32.rem_u (i32.mul (local.get $x) (i32.const 7)) (i32.const 13)) (i32.const 6)))
      (br_if $init (i32.ne (local.tee $x (i32.add (local.get $x) (i32.const 1)))
                           (i32.const {ab}))))
    (local.set $p (i32.const {c}))
    (loop $rows
      (local.set $k (i32.const 0))
      (local.set $q (i32.const {b}))
      (loop $ks
        (local.set $a (i32.load (i32.shl (i32.add (i32.mul (local.get $i) (i32.const {n}))
                                                  (local.get $k)) (i32.const 2))))
        (local.set $j (i32.const 0))
        (loop $cols
          (i32.store (i32.add (local.get $p) (local.get $j))
            (i32.add (i32.load (i32.add (local.get $p) (local.get $j)))
                     (i32.mul (local.get $a) (i32.load (i32.add (local.get $q) (local.get $j))))))
          (br_if $cols (i32.ne (local.tee $j (i32.add (local.get $j) (i32.const 4)))
                               (i32.const {row}))))
        (local.set $q (i32.add (local.get $q) (i32.const {row})))
        (br_if $ks (i32.ne (local.tee $k (i32.add (local.get $k) (i32.const 1)))
                           (i32.const {n}))))
      (local.set $p (i32.add (local.get $p) (i32.const {row})))
      (br_if $rows (i32.ne (local.tee $i (i32.add (local.get $i) (i32.const 1)))
                           (i32.const {n}))))
    (local.set $x (i32.const 0))
    (loop $sum
      (local.set $sum (i32.add (i32.mul (local.get $sum) (i32.const 31))
        (i32.load (i32.add (i32.const {c}) (i32.shl (local.get $x) (i32.const 2))))))
      (br_if $sum (i32.ne (local.tee $x (i32.add (local.get $x) (i32.const 1)))
                          (i32.const {nn}))))
    (local.get $sum)))"#,
        pages = (3 * n * n * 4) / 65536 + 1,
        ab = 2 * n * n,
        row = n * 4,
        nn = n * n,
    )
}

/// What call `m` (from 1) of `run` of [`matmul_nest`] returns: each call writes A and B again
/// and adds A * B into C once more, so C holds `m` times the product.
fn matmul_expect(m: i32) -> i32 {
    let n = MM_N as usize;
    let ab: Vec<i32> = (0..2 * n * n)
        .map(|x| ((x as u32).wrapping_mul(7) % 13) as i32 - 6)
        .collect();
    let (a, b) = ab.split_at(n * n);
    let mut c = vec![0i32; n * n];
    for i in 0..n {
        for k in 0..n {
            let s = a[i * n + k];
            for j in 0..n {
                c[i * n + j] = c[i * n + j].wrapping_add(s.wrapping_mul(b[k * n + j]));
            }
        }
    }
    c.iter().fold(0i32, |sum, &v| {
        sum.wrapping_mul(31).wrapping_add(v.wrapping_mul(m))
    })
}

#[test]
fn a_matmul_shaped_nest_computes_the_same_through_its_osr_entry() {
    let engine = tiered_engine(1000);
    let (_module, mut store, inst) = load(&engine, &matmul_nest());
    let run = inst.get_typed_func::<(), i32>(&store, "run").unwrap();
    // The first call asks for the entry from the initialisation loop and, when the compile is
    // done before the multiply nest is, takes it there, through the checked copy (the usual
    // case); a later call takes the installed entry at once. Every call must be right.
    let started = Instant::now();
    let mut m = 0;
    while m == 0 || (engine.stats().osr_entries == 0 && started.elapsed() < PATIENCE) {
        m += 1;
        assert_eq!(
            run.call(&mut store, ()).unwrap(),
            matmul_expect(m),
            "call {m}"
        );
    }
    let stats = engine.stats();
    assert!(stats.osr_entries >= 1, "{stats}");
    assert_eq!(stats.tier_up_failures, 0, "{stats}");
}

/// A counting sort's scatter loop whose keys (made by `init`) hold one bad key at position 600
/// that addresses past the memory: the loop traps there. The optimized tier's indirect-access
/// prefetches read that key some iterations earlier, in their look-ahead (that this loop shape
/// gets prefetches is checked in `tiers/llvm/tests/prefetch.rs`, whose scatter loop is this one).
const SCATTER_WITH_A_BAD_KEY: &str = r#"(module
  (memory (export "mem") 1 1)
  (func (export "init") (param $keys i32) (param $n i32)
    (local $i i32) (local $s i32)
    (local.set $s (i32.const 0x2545f491))
    (loop $l
      (local.set $s (i32.xor (local.get $s) (i32.shl (local.get $s) (i32.const 13))))
      (local.set $s (i32.xor (local.get $s) (i32.shr_u (local.get $s) (i32.const 17))))
      (local.set $s (i32.xor (local.get $s) (i32.shl (local.get $s) (i32.const 5))))
      (i32.store (i32.add (local.get $keys) (i32.shl (local.get $i) (i32.const 2)))
                 (i32.and (local.get $s) (i32.const 255)))
      (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1)))
                          (local.get $n))))
    (i32.store (i32.add (local.get $keys) (i32.const 2400)) (i32.const 0x3fff0000)))
  (func (export "scatter") (param $keys i32) (param $count i32) (param $out i32) (param $n i32)
    (local $i i32) (local $k i32) (local $c i32)
    (loop $l
      (local.set $k (i32.load (i32.add (local.get $keys) (i32.shl (local.get $i) (i32.const 2)))))
      (local.set $c (i32.load (i32.add (local.get $count) (i32.shl (local.get $k) (i32.const 2)))))
      (i32.store (i32.add (local.get $count) (i32.shl (local.get $k) (i32.const 2)))
                 (i32.add (local.get $c) (i32.const 1)))
      (i32.store (i32.add (local.get $out) (i32.shl (local.get $c) (i32.const 2))) (local.get $k))
      (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1)))
                          (local.get $n))))))"#;

#[test]
fn a_trap_in_a_prefetched_loop_leaves_memory_as_the_baseline_does() {
    let mut memories = Vec::new();
    for mode in [TierMode::Baseline, TierMode::Optimized] {
        let mut config = Config::new();
        config.tier(mode);
        let engine = Engine::new(&config).unwrap();
        let (_module, mut store, inst) = load(&engine, SCATTER_WITH_A_BAD_KEY);
        let (keys, count, out, n) = (8192, 0, 1024, 1024);
        inst.get_typed_func::<(i32, i32), ()>(&store, "init")
            .unwrap()
            .call(&mut store, (keys, n))
            .unwrap();
        let scatter = inst
            .get_typed_func::<(i32, i32, i32, i32), ()>(&store, "scatter")
            .unwrap();
        let err = scatter
            .call(&mut store, (keys, count, out, n))
            .expect_err("the bad key traps");
        assert!(
            format!("{err:#}").contains("out of bounds"),
            "{mode}: {err:#}"
        );
        let mem = inst.get_memory(&store, "mem").unwrap();
        memories.push(mem.data(&store).to_vec());
    }
    // Everything the 600 iterations before the trap stored, and nothing after.
    let count: u32 = memories[0][..1024]
        .chunks_exact(4)
        .map(|w| u32::from_le_bytes(w.try_into().unwrap()))
        .sum();
    assert_eq!(count, 600);
    assert!(
        memories[0] == memories[1],
        "optimized code with prefetches left different memory"
    );
}
