//! End-to-end tests of the runtime through the embedding API: traps (explicit, guard-region
//! faults, stack exhaustion) come back as `Trap`s and leave the host able to run more wasm;
//! host functions, memory, tables and globals behave as the API documents.

use spate::{Config, Engine, Extern, Func, Linker, Module, Store, Trap, Val};

mod common;
use common::wat;

fn instantiate(engine: &Engine, src: &str) -> (Store<()>, spate::Instance) {
    let (_, store, instance) = common::load(engine, src);
    (store, instance)
}

fn trap_of(e: &anyhow::Error) -> Option<Trap> {
    e.downcast_ref::<Trap>().copied()
}

const ADD: &str = r#"(module (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))"#;

fn add_still_works(engine: &Engine) {
    let (mut store, inst) = instantiate(engine, ADD);
    let add = inst
        .get_typed_func::<(i32, i32), i32>(&store, "add")
        .unwrap();
    assert_eq!(add.call(&mut store, (40, 2)).unwrap(), 42);
}

#[test]
fn unreachable_is_a_trap_with_location() {
    let engine = Engine::default();
    let (mut store, inst) = instantiate(&engine, r#"(module (func (export "f") nop unreachable))"#);
    let f = inst.get_typed_func::<(), ()>(&store, "f").unwrap();
    let err = f.call(&mut store, ()).unwrap_err();
    assert_eq!(trap_of(&err), Some(Trap::UnreachableCodeReached));
    let msg = err.to_string();
    assert!(
        msg.contains("unreachable") && msg.contains("wasm function 0"),
        "message: {msg}"
    );
    add_still_works(&engine);
}

#[test]
fn out_of_bounds_accesses_fault_in_the_guard_region() {
    let engine = Engine::default();
    let (mut store, inst) = instantiate(
        &engine,
        r#"(module (memory 1)
             (func (export "load") (param i32) (result i32) (i32.load (local.get 0)))
             (func (export "load_far") (param i32) (result i64) (i64.load offset=0xffffffff (local.get 0)))
             (func (export "store") (param i32 i32) (i32.store (local.get 0) (local.get 1))))"#,
    );
    let load = inst.get_typed_func::<i32, i32>(&store, "load").unwrap();
    let load_far = inst.get_typed_func::<i32, i64>(&store, "load_far").unwrap();
    let store_fn = inst
        .get_typed_func::<(i32, i32), ()>(&store, "store")
        .unwrap();
    store_fn.call(&mut store, (65532, 7)).unwrap();
    assert_eq!(load.call(&mut store, 65532).unwrap(), 7);
    for addr in [65533, 65536, 1 << 20, -1] {
        let err = load.call(&mut store, addr).unwrap_err();
        assert_eq!(
            trap_of(&err),
            Some(Trap::MemoryOutOfBounds),
            "address {addr}"
        );
    }
    // The largest effective address a 32-bit memory can form still lands in the reservation.
    let err = load_far.call(&mut store, -1).unwrap_err();
    assert_eq!(trap_of(&err), Some(Trap::MemoryOutOfBounds));
    let err = store_fn.call(&mut store, (65536, 1)).unwrap_err();
    assert_eq!(trap_of(&err), Some(Trap::MemoryOutOfBounds));
    // The instance is still usable after its traps.
    assert_eq!(load.call(&mut store, 65532).unwrap(), 7);
    add_still_works(&engine);
}

#[test]
fn infinite_recursion_is_stack_exhaustion() {
    let engine = Engine::default();
    let (mut store, inst) = instantiate(
        &engine,
        r#"(module (func $f (export "f") (param i32) (result i32) (i32.add (call $f (local.get 0)) (i32.const 1))))"#,
    );
    let f = inst.get_typed_func::<i32, i32>(&store, "f").unwrap();
    for _ in 0..3 {
        let err = f.call(&mut store, 0).unwrap_err();
        assert_eq!(trap_of(&err), Some(Trap::StackOverflow));
    }
    add_still_works(&engine);
}

#[test]
fn arithmetic_traps() {
    let engine = Engine::default();
    let (mut store, inst) = instantiate(
        &engine,
        r#"(module
             (func (export "div") (param i32 i32) (result i32) (i32.div_s (local.get 0) (local.get 1)))
             (func (export "rem") (param i32 i32) (result i32) (i32.rem_s (local.get 0) (local.get 1)))
             (func (export "trunc") (param f64) (result i32) (i32.trunc_f64_s (local.get 0))))"#,
    );
    let div = inst
        .get_typed_func::<(i32, i32), i32>(&store, "div")
        .unwrap();
    let rem = inst
        .get_typed_func::<(i32, i32), i32>(&store, "rem")
        .unwrap();
    let trunc = inst.get_typed_func::<f64, i32>(&store, "trunc").unwrap();
    assert_eq!(
        trap_of(&div.call(&mut store, (1, 0)).unwrap_err()),
        Some(Trap::IntegerDivisionByZero)
    );
    assert_eq!(
        trap_of(&div.call(&mut store, (i32::MIN, -1)).unwrap_err()),
        Some(Trap::IntegerOverflow)
    );
    assert_eq!(rem.call(&mut store, (i32::MIN, -1)).unwrap(), 0);
    assert_eq!(
        trap_of(&trunc.call(&mut store, f64::NAN).unwrap_err()),
        Some(Trap::BadConversionToInteger)
    );
    assert_eq!(
        trap_of(&trunc.call(&mut store, 3e9).unwrap_err()),
        Some(Trap::IntegerOverflow)
    );
    assert_eq!(div.call(&mut store, (-7, 2)).unwrap(), -3);
}

#[test]
fn host_functions_errors_and_panics() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        wat(r#"(module
             (import "host" "get" (func $get (result i32)))
             (import "host" "fail" (func $fail))
             (import "host" "boom" (func $boom))
             (func (export "get") (result i32) (call $get))
             (func (export "fail") (call $fail))
             (func (export "boom") (call $boom)))"#),
    )
    .unwrap();
    let mut store = Store::new(&engine, 41i32);
    let mut linker = Linker::new(&engine);
    linker
        .func_wrap("host", "get", |mut caller: spate::Caller<'_, i32>| {
            *caller.data_mut() += 1;
            *caller.data()
        })
        .unwrap();
    linker
        .func_wrap("host", "fail", || -> anyhow::Result<()> {
            anyhow::bail!("host says no")
        })
        .unwrap();
    linker
        .func_wrap("host", "boom", || -> () { panic!("host panicked") })
        .unwrap();
    let inst = linker.instantiate(&mut store, &module).unwrap();
    let get = inst.get_typed_func::<(), i32>(&store, "get").unwrap();
    assert_eq!(get.call(&mut store, ()).unwrap(), 42);
    assert_eq!(*store.data(), 42);
    let fail = inst.get_typed_func::<(), ()>(&store, "fail").unwrap();
    let err = fail.call(&mut store, ()).unwrap_err();
    assert_eq!(err.to_string(), "host says no");
    assert!(trap_of(&err).is_none());
    let boom = inst.get_typed_func::<(), ()>(&store, "boom").unwrap();
    let panicked =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| boom.call(&mut store, ())));
    assert!(panicked.is_err(), "the host panic resumes in the host");
    assert_eq!(get.call(&mut store, ()).unwrap(), 43);
}

#[test]
fn memory_globals_and_tables_from_the_host() {
    let engine = Engine::default();
    let (mut store, inst) = instantiate(
        &engine,
        r#"(module
             (memory (export "mem") 1 3)
             (global $g (export "g") (mut i64) (i64.const 5))
             (table (export "t") 2 funcref)
             (func $seven (result i32) (i32.const 7))
             (elem (i32.const 1) $seven)
             (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
             (func (export "bump") (global.set $g (i64.add (global.get $g) (i64.const 1))))
             (func (export "call") (param i32) (result i32) (call_indirect (result i32) (local.get 0)))
             (data (i32.const 16) "spate"))"#,
    );
    let mem = inst.get_memory(&store, "mem").unwrap();
    assert_eq!(&mem.data(&store)[16..21], b"spate");
    let grow = inst.get_typed_func::<i32, i32>(&store, "grow").unwrap();
    assert_eq!(grow.call(&mut store, 1).unwrap(), 1);
    assert_eq!(mem.size(&store), 2);
    assert_eq!(grow.call(&mut store, 5).unwrap(), -1);
    mem.write(&mut store, 70000, b"x").unwrap();
    assert!(mem.write(&mut store, 2 * 65536, b"x").is_err());
    let g = inst.get_global(&store, "g").unwrap();
    inst.get_typed_func::<(), ()>(&store, "bump")
        .unwrap()
        .call(&mut store, ())
        .unwrap();
    assert_eq!(g.get(&mut store).i64(), Some(6));
    g.set(&mut store, Val::I64(100)).unwrap();
    inst.get_typed_func::<(), ()>(&store, "bump")
        .unwrap()
        .call(&mut store, ())
        .unwrap();
    assert_eq!(g.get(&mut store).i64(), Some(101));
    let call = inst.get_typed_func::<i32, i32>(&store, "call").unwrap();
    assert_eq!(call.call(&mut store, 1).unwrap(), 7);
    assert_eq!(
        trap_of(&call.call(&mut store, 0).unwrap_err()),
        Some(Trap::IndirectCallToNull)
    );
    assert_eq!(
        trap_of(&call.call(&mut store, 2).unwrap_err()),
        Some(Trap::IndirectCallOutOfBounds)
    );
    // Put a function of the wrong type into the table from the host.
    let wrong = Func::wrap(&mut store, |x: i32| x);
    let t = inst.get_table(&store, "t").unwrap();
    t.set(&mut store, 0, Val::FuncRef(Some(wrong))).unwrap();
    assert_eq!(
        trap_of(&call.call(&mut store, 0).unwrap_err()),
        Some(Trap::BadSignature)
    );
    let right = Func::wrap(&mut store, || 99i32);
    t.set(&mut store, 0, Val::FuncRef(Some(right))).unwrap();
    assert_eq!(call.call(&mut store, 0).unwrap(), 99);
}

#[test]
fn link_errors_name_the_import() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        wat(r#"(module (import "env" "f" (func (param i32))))"#),
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let err = Linker::new(&engine)
        .instantiate(&mut store, &module)
        .unwrap_err();
    assert!(err.downcast_ref::<spate::LinkError>().is_some());
    assert!(err.to_string().contains("env::f"), "{err}");
    let mut linker = Linker::new(&engine);
    linker.func_wrap("env", "f", |_: i64| {}).unwrap();
    let err = linker.instantiate(&mut store, &module).unwrap_err();
    assert!(
        err.to_string().contains("incompatible import type"),
        "{err}"
    );
    let f = Func::wrap(&mut store, |_: i32| {});
    assert!(spate::Instance::new(&mut store, &module, &[Extern::Func(f)]).is_ok());
}

#[test]
fn tier_up_budget_calls_the_libcall() {
    let mut config = Config::new();
    // Baseline only: in tiered mode the loop would leave for optimized code and stop counting.
    config.tier(spate::TierMode::Baseline).tier_up_threshold(10);
    let engine = Engine::new(&config).unwrap();
    let (mut store, inst) = instantiate(
        &engine,
        r#"(module (func (export "count") (param i32) (result i32) (local i32)
             (loop $l (local.set 1 (i32.add (local.get 1) (i32.const 1)))
                      (br_if $l (i32.lt_u (local.get 1) (local.get 0))))
             (local.get 1)))"#,
    );
    let f = inst.get_typed_func::<i32, i32>(&store, "count").unwrap();
    let before = engine.stats().tier_up_requests;
    assert_eq!(f.call(&mut store, 1000).unwrap(), 1000);
    let after = engine.stats().tier_up_requests;
    // 1000 loop iterations plus one entry against a budget of 10: about 90 requests.
    assert!(
        (80..=100).contains(&(after - before)),
        "tier-up requests: {}",
        after - before
    );
}

#[test]
fn streaming_any_split_gives_the_same_module() {
    let bytes = wat(r#"(module (memory 1) (data (i32.const 0) "hello")
        (func $a (export "a") (param i32) (result i32) (i32.mul (local.get 0) (i32.const 3)))
        (func (export "b") (param i32) (result i32) (call $a (i32.add (local.get 0) (i32.load8_u (i32.const 1))))))"#);
    for threads in [1, 2] {
        let mut config = Config::new();
        config.compile_threads(threads);
        let engine = Engine::new(&config).unwrap();
        for chunk in 1..=bytes.len() {
            let mut s = spate::ModuleStream::new(&engine);
            for c in bytes.chunks(chunk) {
                s.feed(c).unwrap();
            }
            let module = s.finish().unwrap();
            let mut store = Store::new(&engine, ());
            let inst = Linker::new(&engine)
                .instantiate(&mut store, &module)
                .unwrap();
            let b = inst.get_typed_func::<i32, i32>(&store, "b").unwrap();
            assert_eq!(b.call(&mut store, 1).unwrap(), (1 + 101) * 3);
        }
    }
}

#[test]
fn truncated_and_corrupted_modules_are_errors() {
    let engine = Engine::default();
    let bytes = wat(r#"(module (memory 1) (global (mut i32) (i32.const 1))
        (func (export "f") (param i32) (result i32) (local.get 0) (i32.const 5) (i32.add))
        (data (i32.const 0) "abcdef"))"#);
    Module::new(&engine, &bytes).unwrap();
    for cut in 0..bytes.len() {
        match Module::new(&engine, &bytes[..cut]) {
            Ok(_) => {} // a cut on a section boundary can be a valid module
            Err(e) => {
                let me = e
                    .downcast_ref::<spate::ModuleError>()
                    .expect("a ModuleError");
                assert!(me.offset.is_some(), "cut at {cut}: {e}");
            }
        }
    }
    // Flip every byte past the header to each of a few values: never a crash.
    for i in 8..bytes.len() {
        for v in [0x00, 0x7f, 0x80, 0xff] {
            let mut b = bytes.clone();
            b[i] = v;
            let _ = Module::new(&engine, &b);
        }
    }
    let err = Module::new(&engine, b"\0asm\x01\0\0\0\x01").unwrap_err();
    assert!(err.to_string().contains("offset"), "{err}");
}
