//! Lazy compilation: modules that are ready before their code is (`CompileStrategy`).

mod common;

use common::{load, wat};
use spate::{CompileStrategy, Config, Engine, Linker, Module, Store, TierMode, Trap, Val};
use std::time::{Duration, Instant};

fn engine(strategy: CompileStrategy, tier: TierMode) -> Engine {
    let mut config = Config::new();
    config
        .compile_strategy(strategy)
        .tier(tier)
        .compile_threads(2);
    Engine::new(&config).expect("engine")
}

/// Functions of every calling shape: integer and float arguments beyond the registers (so some
/// travel on the stack), v128, several results (through a return area), recursion and a call
/// through a table.
const SHAPES: &str = r#"
(module
  (type $many_i_t (func (param i32 i64 i32 i64 i32 i64 i32 i64) (result i64)))
  (table 1 funcref)
  (elem (i32.const 0) $many_i)
  (func $many_i (export "many_i") (type $many_i_t)
    (i64.add
      (i64.add
        (i64.add (i64.extend_i32_u (local.get 0)) (i64.mul (local.get 1) (i64.const 10)))
        (i64.add (i64.mul (i64.extend_i32_u (local.get 2)) (i64.const 100))
                 (i64.mul (local.get 3) (i64.const 1000))))
      (i64.add
        (i64.add (i64.mul (i64.extend_i32_u (local.get 4)) (i64.const 10000))
                 (i64.mul (local.get 5) (i64.const 100000)))
        (i64.add (i64.mul (i64.extend_i32_u (local.get 6)) (i64.const 1000000))
                 (i64.mul (local.get 7) (i64.const 10000000))))))
  (func $many_f (export "many_f")
    (param f64 f64 f64 f64 f64 f64 f64 f64 f64 f64) (result f64)
    (f64.add
      (f64.add
        (f64.add (f64.add (local.get 0) (f64.mul (local.get 1) (f64.const 2)))
                 (f64.add (f64.mul (local.get 2) (f64.const 3)) (f64.mul (local.get 3) (f64.const 4))))
        (f64.add (f64.add (f64.mul (local.get 4) (f64.const 5)) (f64.mul (local.get 5) (f64.const 6)))
                 (f64.add (f64.mul (local.get 6) (f64.const 7)) (f64.mul (local.get 7) (f64.const 8)))))
      (f64.add (f64.mul (local.get 8) (f64.const 9)) (f64.mul (local.get 9) (f64.const 10)))))
  (func $mixed (export "mixed") (param i32 f32 i64 f64 v128) (result i32 f64 v128)
    (i32.add (local.get 0) (i32.wrap_i64 (local.get 2)))
    (f64.add (f64.promote_f32 (local.get 1)) (local.get 3))
    (i32x4.add (local.get 4) (v128.const i32x4 1 2 3 4)))
  (func $fact (export "fact") (param i64) (result i64)
    (if (result i64) (i64.le_u (local.get 0) (i64.const 1))
      (then (i64.const 1))
      (else (i64.mul (local.get 0) (call $fact (i64.sub (local.get 0) (i64.const 1)))))))
  (func $indirect (export "indirect") (result i64)
    (call_indirect (type $many_i_t)
      (i32.const 1) (i64.const 2) (i32.const 3) (i64.const 4)
      (i32.const 5) (i64.const 6) (i32.const 7) (i64.const 8)
      (i32.const 0)))
  (func $via_wasm (export "via_wasm") (result f64)
    (local $i i32) (local $f f64) (local $v v128)
    (call $many_f (f64.const 1) (f64.const 2) (f64.const 3) (f64.const 4) (f64.const 5)
                  (f64.const 6) (f64.const 7) (f64.const 8) (f64.const 9) (f64.const 10))
    (call $mixed (i32.const 40) (f32.const 1.5) (i64.const 2) (f64.const 0.25)
                 (v128.const i32x4 1 2 3 4))
    (local.set $v) (local.set $f) (local.set $i)
    (f64.add
      (f64.add (f64.add (local.get $f)) (f64.convert_i32_s (local.get $i)))
      (f64.convert_i32_s (i32x4.extract_lane 3 (local.get $v)))))
  (func $never (export "never") (result i32) (i32.const 99))
  (func (export "div") (param i32) (result i32) (i32.div_s (i32.const 1) (local.get 0)))
)
"#;

fn call(store: &mut Store<()>, instance: &spate::Instance, name: &str, args: &[Val]) -> Vec<Val> {
    let f = instance.get_func(&*store, name).expect(name);
    let mut results = vec![Val::I32(0); f.ty(&*store).results().len()];
    f.call(&mut *store, args, &mut results).expect(name);
    results
}

#[test]
fn every_call_shape_goes_through_a_thunk_and_computes_the_same() {
    let expected = {
        let e = engine(CompileStrategy::Eager, TierMode::Baseline);
        let (_m, mut store, instance) = load(&e, SHAPES);
        shape_results(&mut store, &instance)
    };
    let e = engine(CompileStrategy::OnFirstCall, TierMode::Baseline);
    let (module, mut store, instance) = load(&e, SHAPES);
    assert_eq!(
        e.stats().baseline.functions,
        0,
        "nothing compiled before a call"
    );
    let got = shape_results(&mut store, &instance);
    assert_eq!(got, expected);
    // Twice: the second round runs the installed code, not the thunks.
    assert_eq!(shape_results(&mut store, &instance), expected);
    let stats = e.stats();
    // many_i, many_f, mixed, fact, indirect: each compiled once, at its first call;
    // `via_wasm`, `never` and `div` were never called.
    assert_eq!(stats.first_call_compiles, 5, "{stats}");
    assert_eq!(stats.baseline.functions, 5, "{stats}");
    assert_eq!(module.num_defined_functions(), 8);
}

fn shape_results(store: &mut Store<()>, instance: &spate::Instance) -> Vec<String> {
    let mut out = Vec::new();
    let r = call(
        store,
        instance,
        "many_i",
        &[
            Val::I32(1),
            Val::I64(2),
            Val::I32(3),
            Val::I64(4),
            Val::I32(5),
            Val::I64(6),
            Val::I32(7),
            Val::I64(8),
        ],
    );
    out.push(format!("{r:?}"));
    let args: Vec<Val> = (1..=10)
        .map(|i| Val::F64((i as f64 * 0.5).to_bits()))
        .collect();
    out.push(format!("{:?}", call(store, instance, "many_f", &args)));
    let v = 0x0000_0004_0000_0003_0000_0002_0000_0001u128;
    out.push(format!(
        "{:?}",
        call(
            store,
            instance,
            "mixed",
            &[
                Val::I32(40),
                Val::F32(1.5f32.to_bits()),
                Val::I64(2),
                Val::F64(0.25f64.to_bits()),
                Val::V128(v),
            ],
        )
    ));
    out.push(format!(
        "{:?}",
        call(store, instance, "fact", &[Val::I64(20)])
    ));
    out.push(format!("{:?}", call(store, instance, "indirect", &[])));
    out
}

#[test]
fn known_values_through_thunks() {
    let e = engine(CompileStrategy::OnFirstCall, TierMode::Baseline);
    let (_m, mut store, instance) = load(&e, SHAPES);
    let many_i = instance
        .get_typed_func::<(i32, i64, i32, i64, i32, i64, i32, i64), i64>(&store, "many_i")
        .unwrap();
    assert_eq!(
        many_i.call(&mut store, (1, 2, 3, 4, 5, 6, 7, 8)).unwrap(),
        87_654_321
    );
    let fact = instance.get_typed_func::<i64, i64>(&store, "fact").unwrap();
    assert_eq!(
        fact.call(&mut store, 20).unwrap(),
        2_432_902_008_176_640_000
    );
    let indirect = instance
        .get_typed_func::<(), i64>(&store, "indirect")
        .unwrap();
    assert_eq!(indirect.call(&mut store, ()).unwrap(), 87_654_321);
    let r = call(&mut store, &instance, "mixed", &{
        [
            Val::I32(40),
            Val::F32(1.5f32.to_bits()),
            Val::I64(2),
            Val::F64(0.25f64.to_bits()),
            Val::V128(0x0000_0004_0000_0003_0000_0002_0000_0001u128),
        ]
    });
    assert!(matches!(r[0], Val::I32(42)), "{r:?}");
    assert!(
        matches!(r[1], Val::F64(b) if f64::from_bits(b) == 1.75),
        "{r:?}"
    );
    assert!(
        matches!(r[2], Val::V128(v) if v == 0x0000_0008_0000_0006_0000_0004_0000_0002u128),
        "{r:?}"
    );
}

#[test]
fn a_trap_in_a_lazily_compiled_function_is_reported_with_its_function() {
    let e = engine(CompileStrategy::OnFirstCall, TierMode::Baseline);
    let (_m, mut store, instance) = load(&e, SHAPES);
    let div = instance.get_typed_func::<i32, i32>(&store, "div").unwrap();
    let err = div.call(&mut store, 0).unwrap_err();
    assert_eq!(
        err.downcast_ref::<Trap>(),
        Some(&Trap::IntegerDivisionByZero)
    );
    assert!(err.to_string().contains("function 7"), "{err}");
    // The store and the function stay usable.
    assert_eq!(div.call(&mut store, 1).unwrap(), 1);
}

#[test]
fn invalid_bodies_are_rejected_by_finish_with_every_strategy() {
    let src = r#"(module
        (func (result i32) (i32.const 1))
        (func (result i32) (i64.const 1))
        (func (result i32) (i32.const 3)))"#;
    let bytes = wat(src);
    for strategy in [
        CompileStrategy::Eager,
        CompileStrategy::Background,
        CompileStrategy::OnFirstCall,
    ] {
        let e = engine(strategy, TierMode::Tiered);
        let err = Module::new(&e, &bytes).unwrap_err().to_string();
        assert!(err.contains("type mismatch"), "{strategy:?}: {err}");
        assert!(err.contains("at byte offset"), "{strategy:?}: {err}");
        if strategy != CompileStrategy::Eager {
            // Bodies are validated as they arrive: `feed` reports the error at once, before
            // the rest of the module (here: never) comes in.
            let mut stream = spate::ModuleStream::new(&e);
            let cut = bytes.len() - 2;
            let err = stream.feed(&bytes[..cut]).unwrap_err().to_string();
            assert!(err.contains("type mismatch"), "{strategy:?}: {err}");
        }
    }
}

#[test]
fn concurrent_first_calls_compile_once_and_agree() {
    let e = engine(CompileStrategy::OnFirstCall, TierMode::Baseline);
    let module = Module::new(&e, wat(SHAPES)).unwrap();
    let barrier = std::sync::Barrier::new(4);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let mut store = Store::new(&e, ());
                let instance = Linker::new(&e).instantiate(&mut store, &module).unwrap();
                let fact = instance.get_typed_func::<i64, i64>(&store, "fact").unwrap();
                barrier.wait();
                assert_eq!(fact.call(&mut store, 10).unwrap(), 3_628_800);
            });
        }
    });
    assert_eq!(e.stats().first_call_compiles, 1);
    assert_eq!(e.stats().baseline.functions, 1);
}

/// A module of `n` functions, each calling the next; `f0` returns the sum of their indices.
fn chain(n: usize) -> String {
    let mut src = String::from("(module\n");
    for i in 0..n {
        let next = if i + 1 < n {
            format!("(call $f{})", i + 1)
        } else {
            "(i64.const 0)".into()
        };
        // Enough code per function that the pool cannot keep up with the parser.
        let filler = "(drop (i64.mul (local.get 0) (i64.const 3)))".repeat(20);
        src.push_str(&format!(
            "(func $f{i} (export \"f{i}\") (result i64) (local i64) {filler} \
             (i64.add (i64.const {i}) {next}))\n"
        ));
    }
    src.push(')');
    src
}

#[test]
fn background_compilation_finishes_the_rest_after_the_module_is_ready() {
    let n = 1500;
    let e = engine(CompileStrategy::Background, TierMode::Baseline);
    let (_m, mut store, instance) = load(&e, &chain(n));
    let f0 = instance.get_typed_func::<(), i64>(&store, "f0").unwrap();
    let expected = (n * (n - 1) / 2) as i64;
    assert_eq!(f0.call(&mut store, ()).unwrap(), expected);
    // Every function gets compiled exactly once, by the pool or by a first call.
    let deadline = Instant::now() + Duration::from_secs(120);
    while e.stats().baseline.functions < n as u64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let stats = e.stats();
    assert_eq!(stats.baseline.functions, n as u64, "{stats}");
    assert_eq!(f0.call(&mut store, ()).unwrap(), expected);
}

#[test]
fn dropping_a_module_while_its_code_is_still_compiling_is_harmless() {
    let e = engine(CompileStrategy::Background, TierMode::Baseline);
    let bytes = wat(&chain(800));
    for _ in 0..3 {
        drop(Module::new(&e, &bytes).unwrap());
    }
    let (_m, mut store, instance) = load(&e, &chain(10));
    let f0 = instance.get_typed_func::<(), i64>(&store, "f0").unwrap();
    assert_eq!(f0.call(&mut store, ()).unwrap(), 45);
}

#[test]
fn lazily_compiled_functions_tier_up() {
    let mut config = Config::new();
    config
        .compile_strategy(CompileStrategy::OnFirstCall)
        .tier(TierMode::Tiered)
        .tier_up_threshold(0);
    let e = Engine::new(&config).unwrap();
    let (module, mut store, instance) = load(&e, SHAPES);
    let fact = instance.get_typed_func::<i64, i64>(&store, "fact").unwrap();
    assert_eq!(fact.call(&mut store, 15).unwrap(), 1_307_674_368_000);
    assert!(e.wait_for_tier_ups(Duration::from_secs(60)));
    assert!(module.is_tiered_up(3), "{}", e.stats());
    assert_eq!(fact.call(&mut store, 15).unwrap(), 1_307_674_368_000);
    assert_eq!(e.stats().first_call_compiles, 1);
}

#[test]
fn first_calls_on_a_small_stack_compile_on_the_urgent_thread() {
    // A thread with little stack cannot host a compile: its first calls hand the function to
    // the engine's urgent compile thread and wait; the results are the same.
    let expected = {
        let e = engine(CompileStrategy::Eager, TierMode::Baseline);
        let (_m, mut store, instance) = load(&e, SHAPES);
        shape_results(&mut store, &instance)
    };
    let e = engine(CompileStrategy::OnFirstCall, TierMode::Baseline);
    let module = Module::new(&e, wat(SHAPES)).unwrap();
    let got = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn({
            let e = e.clone();
            move || {
                let mut store = Store::new(&e, ());
                let instance = Linker::new(&e).instantiate(&mut store, &module).unwrap();
                shape_results(&mut store, &instance)
            }
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(got, expected);
    assert_eq!(e.stats().first_call_compiles, 5);
}

#[test]
fn wasm_callers_reach_thunks_with_stack_arguments_vectors_and_return_areas() {
    // Every first call here comes from wasm code: `indirect` reaches `many_i` (integer
    // arguments on the stack) through a table, `via_wasm` reaches `many_f` (float arguments on
    // the stack) and `mixed` (a v128 argument, three results through a return area).
    let e = engine(CompileStrategy::OnFirstCall, TierMode::Baseline);
    let (_m, mut store, instance) = load(&e, SHAPES);
    let indirect = instance
        .get_typed_func::<(), i64>(&store, "indirect")
        .unwrap();
    assert_eq!(indirect.call(&mut store, ()).unwrap(), 87_654_321);
    let via = instance
        .get_typed_func::<(), f64>(&store, "via_wasm")
        .unwrap();
    // 1*1 + 2*2 + ... + 10*10 = 385; mixed gives 42, 1.75 and lanes (2, 4, 6, 8).
    assert_eq!(via.call(&mut store, ()).unwrap(), 385.0 + 1.75 + 42.0 + 8.0);
    assert_eq!(e.stats().first_call_compiles, 5);
}
