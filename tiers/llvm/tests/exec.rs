//! Compiles small modules with the LLVM tier and executes the generated code, using the
//! Cranelift tier's test runtime (its trampolines come from the Cranelift tier, as in the
//! engine).
//!
//! Traps end the process that runs the code (the test runtime cannot unwind), so every trap is
//! checked in a child process: the test binary runs itself with the case named in an
//! environment variable, the `RaiseTrap` libcall exits with status `100 + trap code`, and an
//! out-of-bounds access dies of `SIGSEGV`.

#[path = "../../cranelift/tests/harness/mod.rs"]
mod harness;

use std::os::unix::process::ExitStatusExt;

use harness::{Instance, Module, call_f32, call_f64, call_i32, call_i64, wat};
use spate_tier_llvm::{LlvmCompiler, LlvmOptions, LlvmTier, Pipeline};
use spate_tiers::abi::ValRaw;
use spate_tiers::libcall::Libcall;
use spate_tiers::{CompileErrorKind, CompiledFunction, FunctionCompiler, TrapCode};
use wasmparser::{Parser, Payload};

fn compiler() -> LlvmCompiler {
    compiler_with(Pipeline::default())
}

fn compiler_with(pipeline: Pipeline) -> LlvmCompiler {
    LlvmTier::new(LlvmOptions {
        pipeline,
        ..LlvmOptions::default()
    })
    .expect("host supported")
    .compiler()
    .expect("compiler")
}

fn compile(src: &str) -> Module {
    harness::compile_with(&mut compiler(), &wat(src)).expect("module compiles")
}

fn instance(src: &str) -> Instance {
    Instance::new(compile(src), Vec::new())
}

#[test]
fn integer_arithmetic() {
    harness::check_integer_arithmetic(instance);
}

#[test]
fn float_arithmetic_and_conversions() {
    let mut i = instance(
        r#"(module
          (func (export "min") (param f64 f64) (result f64) (f64.min (local.get 0) (local.get 1)))
          (func (export "max") (param f32 f32) (result f32) (f32.max (local.get 0) (local.get 1)))
          (func (export "nearest") (param f64) (result f64) (f64.nearest (local.get 0)))
          (func (export "copysign") (param f64 f64) (result f64) (f64.copysign (local.get 0) (local.get 1)))
          (func (export "neg") (param f32) (result f32) (f32.neg (local.get 0)))
          (func (export "mul_one") (param f32) (result f32) (f32.mul (local.get 0) (f32.const 1)))
          (func (export "abs") (param f64) (result f64) (f64.abs (local.get 0)))
          (func (export "sqrt") (param f64) (result f64) (f64.sqrt (local.get 0)))
          (func (export "div") (param f64 f64) (result f64) (f64.div (local.get 0) (local.get 1)))
          (func (export "lt") (param f64 f64) (result i32) (f64.lt (local.get 0) (local.get 1)))
          (func (export "ne") (param f64 f64) (result i32) (f64.ne (local.get 0) (local.get 1)))
          (func (export "trunc_s") (param f64) (result i32) (i32.trunc_f64_s (local.get 0)))
          (func (export "trunc_u") (param f32) (result i32) (i32.trunc_f32_u (local.get 0)))
          (func (export "i64_trunc_u") (param f64) (result i64) (i64.trunc_f64_u (local.get 0)))
          (func (export "sat_s") (param f64) (result i32) (i32.trunc_sat_f64_s (local.get 0)))
          (func (export "sat_u") (param f32) (result i64) (i64.trunc_sat_f32_u (local.get 0)))
          (func (export "conv_u") (param i64) (result f32) (f32.convert_i64_u (local.get 0)))
          (func (export "conv_s") (param i32) (result f64) (f64.convert_i32_s (local.get 0)))
          (func (export "demote") (param f64) (result f32) (f32.demote_f64 (local.get 0)))
          (func (export "reinterpret") (param f32) (result i32) (i32.reinterpret_f32 (local.get 0)))
          (func (export "nan_const") (result i32) (i32.reinterpret_f32 (f32.const nan:0x200001)))
        )"#,
    );
    assert_eq!(
        call_f64(&mut i, "min", &[-0.0, 0.0]).to_bits(),
        (-0.0f64).to_bits()
    );
    assert!(call_f64(&mut i, "min", &[f64::NAN, 1.0]).is_nan());
    assert_eq!(
        call_f32(&mut i, "max", &[-0.0, 0.0]).to_bits(),
        0.0f32.to_bits()
    );
    assert_eq!(call_f32(&mut i, "max", &[1.5, -3.0]), 1.5);
    // A signalling NaN operand gives a quiet NaN.
    let snan = ValRaw::f32(0x7fa0_0000);
    let r = i.call("max", &[snan, ValRaw::f32(1f32.to_bits())])[0].get_f32();
    assert_eq!(r & 0x7fc0_0000, 0x7fc0_0000, "{r:#x}");
    let r = i.call("max", &[ValRaw::f32(1f32.to_bits()), snan])[0].get_f32();
    assert_eq!(r & 0x7fc0_0000, 0x7fc0_0000, "{r:#x}");
    let r = i.call("mul_one", &[snan])[0].get_f32();
    assert_eq!(r & 0x7fc0_0000, 0x7fc0_0000, "{r:#x}");
    assert_eq!(call_f64(&mut i, "nearest", &[2.5]), 2.0);
    assert_eq!(call_f64(&mut i, "nearest", &[3.5]), 4.0);
    assert_eq!(
        call_f64(&mut i, "nearest", &[-0.5]).to_bits(),
        (-0.0f64).to_bits()
    );
    assert_eq!(call_f64(&mut i, "copysign", &[3.0, -0.0]), -3.0);
    assert_eq!(
        call_f32(&mut i, "neg", &[0.0]).to_bits(),
        (-0.0f32).to_bits()
    );
    assert_eq!(call_f64(&mut i, "abs", &[-2.0]), 2.0);
    assert_eq!(call_f64(&mut i, "sqrt", &[16.0]), 4.0);
    assert_eq!(call_f64(&mut i, "div", &[1.0, 0.0]), f64::INFINITY);
    assert_eq!(
        i.call(
            "lt",
            &[ValRaw::f64(f64::NAN.to_bits()), ValRaw::f64(1f64.to_bits())]
        )[0]
        .get_i32(),
        0
    );
    assert_eq!(
        i.call(
            "ne",
            &[ValRaw::f64(f64::NAN.to_bits()), ValRaw::f64(1f64.to_bits())]
        )[0]
        .get_i32(),
        1
    );
    let trunc_s =
        |i: &mut Instance, x: f64| i.call("trunc_s", &[ValRaw::f64(x.to_bits())])[0].get_i32();
    assert_eq!(trunc_s(&mut i, -3.9), -3);
    assert_eq!(trunc_s(&mut i, -2147483648.9), i32::MIN);
    assert_eq!(trunc_s(&mut i, 2147483647.9), i32::MAX);
    assert_eq!(
        i.call("trunc_u", &[ValRaw::f32((-0.9f32).to_bits())])[0].get_i32(),
        0
    );
    assert_eq!(
        i.call("trunc_u", &[ValRaw::f32(4294967040f32.to_bits())])[0].get_i32(),
        -256
    );
    assert_eq!(
        i.call(
            "i64_trunc_u",
            &[ValRaw::f64((18446744073709549568.0f64).to_bits())]
        )[0]
        .get_i64(),
        -2048
    );
    let sat_s =
        |i: &mut Instance, x: f64| i.call("sat_s", &[ValRaw::f64(x.to_bits())])[0].get_i32();
    assert_eq!(sat_s(&mut i, f64::NAN), 0);
    assert_eq!(sat_s(&mut i, 1e20), i32::MAX);
    assert_eq!(sat_s(&mut i, -1e20), i32::MIN);
    assert_eq!(
        i.call("sat_u", &[ValRaw::f32((-5f32).to_bits())])[0].get_i64(),
        0
    );
    assert_eq!(
        i.call("sat_u", &[ValRaw::f32(f32::INFINITY.to_bits())])[0].get_i64(),
        -1
    );
    assert_eq!(
        f32::from_bits(i.call("conv_u", &[ValRaw::i64(-1)])[0].get_f32()),
        18446744073709551616.0
    );
    assert_eq!(
        f64::from_bits(i.call("conv_s", &[ValRaw::i32(-7)])[0].get_f64()),
        -7.0
    );
    assert_eq!(
        f32::from_bits(i.call("demote", &[ValRaw::f64(0.1f64.to_bits())])[0].get_f32()),
        0.1f32
    );
    assert_eq!(
        i.call("reinterpret", &[ValRaw::f32(1f32.to_bits())])[0].get_i32(),
        0x3f80_0000
    );
    assert_eq!(i.call("nan_const", &[])[0].get_i32(), 0x7fa0_0001);
}

#[test]
fn control_flow() {
    let mut i = instance(
        r#"(module
          (func (export "fac") (param i64) (result i64) (local i64)
            (local.set 1 (i64.const 1))
            (block $done
              (loop $l
                (br_if $done (i64.eqz (local.get 0)))
                (local.set 1 (i64.mul (local.get 1) (local.get 0)))
                (local.set 0 (i64.sub (local.get 0) (i64.const 1)))
                (br $l)))
            (local.get 1))
          (func (export "select") (param i32 i32 i32) (result i32)
            (select (local.get 0) (local.get 1) (local.get 2)))
          (func (export "if") (param i32) (result i32)
            (if (result i32) (local.get 0) (then (i32.const 10)) (else (i32.const 20))))
          (func (export "br_table") (param i32) (result i32)
            (block $c (result i32)
              (block $b (result i32)
                (block $a (result i32)
                  (i32.const 100)
                  (local.get 0)
                  (br_table $a $b $c))
                (i32.add (i32.const 1)) (return))
              (i32.add (i32.const 2)) (return))
            (i32.add (i32.const 3)))
          (func (export "br_table_ret") (param i32) (result i32)
            (i32.const 7) (local.get 0) (br_table 0 0))
          (func (export "multi") (param i32) (result i32 i32 i64)
            (local.get 0) (i32.const 1) (i64.const -1))
          (func (export "block_params") (param i32) (result i32)
            (local.get 0)
            (block (param i32) (result i32) (i32.const 5) (i32.add))
            (loop (param i32) (result i32) (i32.const 2) (i32.mul)))
          (func (export "if_no_else") (param i32) (result i32)
            (i32.const 3)
            (if (param i32) (result i32) (local.get 0) (then (i32.const 4) (i32.add))))
          (func (export "dead") (result i32)
            (return (i32.const 9)) (i32.const 1) (drop) (unreachable))
        )"#,
    );
    assert_eq!(call_i64(&mut i, "fac", &[20]), 2432902008176640000);
    assert_eq!(call_i32(&mut i, "select", &[1, 2, 0]), 2);
    assert_eq!(call_i32(&mut i, "select", &[1, 2, 7]), 1);
    assert_eq!(call_i32(&mut i, "if", &[1]), 10);
    assert_eq!(call_i32(&mut i, "if", &[0]), 20);
    assert_eq!(call_i32(&mut i, "br_table", &[0]), 101);
    assert_eq!(call_i32(&mut i, "br_table", &[1]), 102);
    assert_eq!(call_i32(&mut i, "br_table", &[2]), 103);
    assert_eq!(call_i32(&mut i, "br_table", &[99]), 103);
    assert_eq!(call_i32(&mut i, "br_table_ret", &[5]), 7);
    let r = i.call("multi", &[ValRaw::i32(42)]);
    assert_eq!(
        (r[0].get_i32(), r[1].get_i32(), r[2].get_i64()),
        (42, 1, -1)
    );
    assert_eq!(call_i32(&mut i, "block_params", &[1]), 12);
    assert_eq!(call_i32(&mut i, "if_no_else", &[0]), 3);
    assert_eq!(call_i32(&mut i, "if_no_else", &[1]), 7);
    assert_eq!(call_i32(&mut i, "dead", &[]), 9);
}

#[test]
fn memory_access() {
    let mut i = instance(
        r#"(module
          (memory 1 3)
          (data (i32.const 16) "\01\02\03\04\05\06\07\08\ff")
          (func (export "load") (param i32) (result i32) (i32.load offset=1 (local.get 0)))
          (func (export "load8_s") (param i32) (result i32) (i32.load8_s (local.get 0)))
          (func (export "load16_u") (param i32) (result i32) (i32.load16_u (local.get 0)))
          (func (export "i64_load32_s") (param i32) (result i64) (i64.load32_s (local.get 0)))
          (func (export "store") (param i32 i64) (i64.store offset=4 (local.get 0) (local.get 1)))
          (func (export "store8") (param i32 i32) (i32.store8 (local.get 0) (local.get 1)))
          (func (export "f64_roundtrip") (param f64) (result f64)
            (f64.store (i32.const 100) (local.get 0)) (f64.load (i32.const 100)))
          (func (export "size") (result i32) (memory.size))
          (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
          (func (export "fill") (param i32 i32 i32) (memory.fill (local.get 0) (local.get 1) (local.get 2)))
          (func (export "copy") (param i32 i32 i32) (memory.copy (local.get 0) (local.get 1) (local.get 2)))
          (func (export "grown_store") (param i32 i32) (i32.store (local.get 0) (local.get 1)))
        )"#,
    );
    assert_eq!(call_i32(&mut i, "load", &[15]), 0x0403_0201);
    assert_eq!(call_i32(&mut i, "load8_s", &[24]), -1);
    assert_eq!(call_i32(&mut i, "load16_u", &[23]), 0xff08);
    assert_eq!(
        i.call("i64_load32_s", &[ValRaw::i32(21)])[0].get_i64(),
        0xffff_ffff_ff08_0706u64 as i64
    );
    i.call(
        "store",
        &[ValRaw::i32(200), ValRaw::i64(0x1122_3344_5566_7788)],
    );
    assert_eq!(
        &i.memory()[204..212],
        &0x1122_3344_5566_7788u64.to_le_bytes()
    );
    i.call("store8", &[ValRaw::i32(300), ValRaw::i32(0x1ff)]);
    assert_eq!(i.memory()[300], 0xff);
    assert_eq!(call_f64(&mut i, "f64_roundtrip", &[1.25]), 1.25);
    assert_eq!(call_i32(&mut i, "size", &[]), 1);
    assert_eq!(call_i32(&mut i, "grow", &[1]), 1);
    assert_eq!(call_i32(&mut i, "size", &[]), 2);
    assert_eq!(call_i32(&mut i, "grow", &[5]), -1);
    i.call(
        "grown_store",
        &[ValRaw::i32(0x1_0000 + 8), ValRaw::i32(0x55)],
    );
    assert_eq!(i.memory()[0x1_0008], 0x55);
    i.call(
        "fill",
        &[ValRaw::i32(400), ValRaw::i32(0xab), ValRaw::i32(4)],
    );
    assert_eq!(&i.memory()[400..405], &[0xab, 0xab, 0xab, 0xab, 0]);
    i.call("copy", &[ValRaw::i32(500), ValRaw::i32(16), ValRaw::i32(3)]);
    assert_eq!(&i.memory()[500..503], &[1, 2, 3]);
}

#[test]
fn globals_tables_and_references() {
    let mut i = instance(
        r#"(module
          (global $g (mut i64) (i64.const 5))
          (global $c f32 (f32.const 2.5))
          (table $t 4 funcref)
          (elem (table $t) (i32.const 1) func $f)
          (func $f (result i32) (i32.const 77))
          (func (export "bump") (result i64)
            (global.set $g (i64.add (global.get $g) (i64.const 1))) (global.get $g))
          (func (export "const") (result f32) (global.get $c))
          (func (export "size") (result i32) (table.size $t))
          (func (export "is_null") (param i32) (result i32) (ref.is_null (table.get $t (local.get 0))))
          (func (export "set_and_call") (result i32)
            (table.set $t (i32.const 3) (ref.func $f))
            (call_indirect (result i32) (i32.const 3)))
          (func (export "grow") (result i32) (table.grow $t (ref.null func) (i32.const 2)))
          (func (export "null_is_null") (result i32) (ref.is_null (ref.null extern)))
        )"#,
    );
    assert_eq!(call_i64(&mut i, "bump", &[]), 6);
    assert_eq!(call_i64(&mut i, "bump", &[]), 7);
    assert_eq!(i.global(0).get_i64(), 7);
    assert_eq!(call_f32(&mut i, "const", &[]), 2.5);
    assert_eq!(call_i32(&mut i, "size", &[]), 4);
    assert_eq!(call_i32(&mut i, "is_null", &[0]), 1);
    assert_eq!(call_i32(&mut i, "is_null", &[1]), 0);
    assert_eq!(call_i32(&mut i, "set_and_call", &[]), 77);
    assert_eq!(call_i32(&mut i, "grow", &[]), 4);
    assert_eq!(call_i32(&mut i, "size", &[]), 6);
    assert_eq!(call_i32(&mut i, "null_is_null", &[]), 1);
}

#[test]
fn calls() {
    let mut i = instance(
        r#"(module
          (type $bin (func (param i32 i32) (result i32)))
          (table 3 funcref)
          (elem (i32.const 0) $add $sub)
          (func $add (type $bin) (i32.add (local.get 0) (local.get 1)))
          (func $sub (type $bin) (i32.sub (local.get 0) (local.get 1)))
          (func $swap (param i32 i64) (result i64 i32) (local.get 1) (local.get 0))
          (func $fib (param i32) (result i32)
            (if (result i32) (i32.lt_u (local.get 0) (i32.const 2))
              (then (local.get 0))
              (else (i32.add (call $fib (i32.sub (local.get 0) (i32.const 1)))
                             (call $fib (i32.sub (local.get 0) (i32.const 2)))))))
          (func (export "fib") (param i32) (result i32) (call $fib (local.get 0)))
          (func (export "indirect") (param i32 i32 i32) (result i32)
            (call_indirect (type $bin) (local.get 0) (local.get 1) (local.get 2)))
          (func (export "swap") (result i32)
            (call $swap (i32.const 3) (i64.const 40))
            (drop)
            (i32.wrap_i64))
          (func (export "vec") (param v128) (result v128) (local v128)
            (local.set 1 (local.get 0))
            (call $id (local.get 1)))
          (func $id (param v128) (result v128) (local.get 0))
        )"#,
    );
    assert_eq!(call_i32(&mut i, "fib", &[20]), 6765);
    assert_eq!(call_i32(&mut i, "indirect", &[7, 5, 0]), 12);
    assert_eq!(call_i32(&mut i, "indirect", &[7, 5, 1]), 2);
    assert_eq!(call_i32(&mut i, "swap", &[]), 40);
    let v = 0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10u128;
    assert_eq!(i.call("vec", &[ValRaw::u128(v)])[0].get_u128(), v);
}

#[test]
fn host_imports() {
    let module = compile(
        r#"(module
          (import "host" "double" (func $double (param i32) (result i32)))
          (func (export "quad") (param i32) (result i32) (call $double (call $double (local.get 0))))
        )"#,
    );
    let imports: Vec<harness::HostFn> = vec![Box::new(|v: &mut [ValRaw]| {
        v[0] = ValRaw::i32(v[0].get_i32() * 2);
    })];
    let mut i = Instance::new(module, imports);
    assert_eq!(call_i32(&mut i, "quad", &[5]), 20);
}

#[test]
fn validation_errors_are_invalid_with_offset() {
    let bytes = wat(r#"(module (func (result i32) (i64.const 1)))"#);
    let Err(err) = harness::compile_with(&mut compiler(), &bytes) else {
        panic!("an invalid body compiled");
    };
    assert_eq!(err.kind, CompileErrorKind::Invalid);
    assert!(err.offset.is_some());
}

/// A loop nest that every pipeline transforms differently (unrolling, LICM of the memory base,
/// vectorization under O3): a prefix sum over memory, a float reduction, a 2-D integer stencil.
const LOOPS: &str = r#"(module (memory 1)
  (func (export "fill") (param $n i32) (local $i i32)
    (loop $l
      (i32.store (i32.shl (local.get $i) (i32.const 2))
        (i32.sub (i32.mul (local.get $i) (i32.const 7919)) (i32.const 100000)))
      (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $n)))))
  (func (export "prefix") (param $n i32) (result i64) (local $i i32) (local $acc i64)
    (loop $l
      (local.set $acc (i64.add (local.get $acc)
        (i64.extend_i32_s (i32.load (i32.shl (local.get $i) (i32.const 2))))))
      (i64.store offset=32768 (i32.shl (local.get $i) (i32.const 3)) (local.get $acc))
      (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $n))))
    (local.get $acc))
  (func (export "fsum") (param $n i32) (result f64) (local $i i32) (local $s f64)
    (loop $l
      (local.set $s (f64.add (f64.mul (local.get $s) (f64.const 0.5))
        (f64.convert_i32_s (i32.load (i32.shl (local.get $i) (i32.const 2))))))
      (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $n))))
    (local.get $s))
  (func (export "stencil") (param $n i32) (result i32) (local $i i32) (local $j i32) (local $s i32)
    (local.set $i (i32.const 1))
    (loop $rows
      (local.set $j (i32.const 1))
      (loop $cols
        (local.set $s (i32.xor (i32.rotl (local.get $s) (i32.const 5))
          (i32.add (i32.load (i32.shl (i32.add (i32.mul (local.get $i) (local.get $n)) (local.get $j)) (i32.const 2)))
                   (i32.load (i32.shl (i32.add (i32.mul (i32.sub (local.get $i) (i32.const 1)) (local.get $n)) (local.get $j)) (i32.const 2))))))
        (br_if $cols (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 1))) (i32.sub (local.get $n) (i32.const 1)))))
      (br_if $rows (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.sub (local.get $n) (i32.const 1)))))
    (local.get $s)))"#;

#[test]
fn every_pipeline_computes_the_same() {
    let n = 1000u32;
    let data: Vec<i32> = (0..n as i32)
        .map(|i| i.wrapping_mul(7919) - 100_000)
        .collect();
    let mut acc = 0i64;
    let prefix: Vec<i64> = data
        .iter()
        .map(|&v| {
            acc += i64::from(v);
            acc
        })
        .collect();
    let fsum = data.iter().fold(0.0f64, |s, &v| s * 0.5 + f64::from(v));
    let side = 30u32;
    let mut stencil = 0i32;
    for i in 1..side - 1 {
        for j in 1..side - 1 {
            let at = |r: u32| data[(r * side + j) as usize];
            stencil = stencil.rotate_left(5) ^ at(i).wrapping_add(at(i - 1));
        }
    }
    for pipeline in [Pipeline::Lean, Pipeline::O2, Pipeline::O3] {
        let module = harness::compile_with(&mut compiler_with(pipeline), &wat(LOOPS))
            .unwrap_or_else(|e| panic!("{pipeline:?}: {e}"));
        let mut i = Instance::new(module, Vec::new());
        i.call("fill", &[ValRaw::i32(n as i32)]);
        let got = i.call("prefix", &[ValRaw::i32(n as i32)])[0].get_i64();
        assert_eq!(got, acc, "{pipeline:?}");
        let stored: Vec<i64> = i.memory()[32768..32768 + 8 * n as usize]
            .chunks(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(stored, prefix, "{pipeline:?}");
        let got = f64::from_bits(i.call("fsum", &[ValRaw::i32(n as i32)])[0].get_f64());
        assert_eq!(got.to_bits(), fsum.to_bits(), "{pipeline:?}");
        let got = call_i32(&mut i, "stencil", &[side as i32]);
        assert_eq!(got, stencil, "{pipeline:?}");
        harness::check_integer_arithmetic(|src| {
            Instance::new(
                harness::compile_with(&mut compiler_with(pipeline), &wat(src)).unwrap(),
                Vec::new(),
            )
        });
    }
}

#[test]
fn memset_and_memcpy_loops_stay_loops() {
    // Loop idioms must not become calls of `memset`/`memcpy` (undefined symbols), under any
    // pipeline (O2 and O3 run LLVM's loop-idiom recognition).
    for pipeline in [Pipeline::Lean, Pipeline::O2, Pipeline::O3] {
        memset_and_memcpy_loops_stay_loops_with(pipeline);
    }
}

fn memset_and_memcpy_loops_stay_loops_with(pipeline: Pipeline) {
    let mut i = Instance::new(
        harness::compile_with(
            &mut compiler_with(pipeline),
            &wat(r#"(module (memory 1)
          (func (export "zero") (param $p i32) (param $n i32)
            (block $done (loop $l
              (br_if $done (i32.eqz (local.get $n)))
              (i32.store8 (local.get $p) (i32.const 0))
              (local.set $p (i32.add (local.get $p) (i32.const 1)))
              (local.set $n (i32.sub (local.get $n) (i32.const 1)))
              (br $l))))
          (func (export "copy") (param $d i32) (param $s i32) (param $n i32)
            (block $done (loop $l
              (br_if $done (i32.eqz (local.get $n)))
              (i32.store8 (local.get $d) (i32.load8_u (local.get $s)))
              (local.set $d (i32.add (local.get $d) (i32.const 1)))
              (local.set $s (i32.add (local.get $s) (i32.const 1)))
              (local.set $n (i32.sub (local.get $n) (i32.const 1)))
              (br $l))))
          (data (i32.const 0) "abcdefgh"))"#),
        )
        .unwrap(),
        Vec::new(),
    );
    i.call("copy", &[ValRaw::i32(100), ValRaw::i32(0), ValRaw::i32(8)]);
    assert_eq!(&i.memory()[100..108], b"abcdefgh");
    i.call("zero", &[ValRaw::i32(101), ValRaw::i32(6)]);
    assert_eq!(&i.memory()[100..108], b"a\0\0\0\0\0\0h");
}

#[test]
fn code_is_self_contained() {
    // Float constants, jump tables, saturating conversions: nothing may need relocation or
    // call outside the blob (compile errors otherwise).
    let m = compile(
        r#"(module
          (func (export "f") (param i32 f64) (result f64)
            (block (block (block (block (block
              (br_table 0 1 2 3 4 (local.get 0)))
              (return (f64.const 1.5))) (return (f64.const 2.75)))
              (return (f64.mul (local.get 1) (f64.const 3.3))))
              (return (f64.nearest (local.get 1))))
            (f64.convert_i64_u (i64.trunc_sat_f64_u (local.get 1)))))"#,
    );
    assert!(!m.functions[0].code.is_empty());
    assert_eq!(m.functions[0].fault_trap, Some(TrapCode::MemoryOutOfBounds));
    assert!(m.functions[0].traps.is_empty());
    let mut i = Instance::new(m, Vec::new());
    let f = |i: &mut Instance, a: i32, b: f64| {
        f64::from_bits(i.call("f", &[ValRaw::i32(a), ValRaw::f64(b.to_bits())])[0].get_f64())
    };
    assert_eq!(f(&mut i, 0, 0.0), 1.5);
    assert_eq!(f(&mut i, 1, 0.0), 2.75);
    assert_eq!(f(&mut i, 2, 2.0), 6.6);
    assert_eq!(f(&mut i, 3, 2.5), 2.0);
    assert_eq!(f(&mut i, 4, 7.9), 7.0);
}

// ---------------------------------------------------------------------------------------------
// Traps, each in a child process.

const CASE_VAR: &str = "SPATE_LLVM_TRAP_CASE";

const TRAP_MODULE: &str = r#"(module
  (type $v (func))
  (type $i (func (result i32)))
  (memory 1)
  (table 2 funcref)
  (elem (i32.const 0) $nop)
  (func $nop)
  (func (export "div_s") (param i32 i32) (result i32) (i32.div_s (local.get 0) (local.get 1)))
  (func (export "div_u") (param i32 i32) (result i32) (i32.div_u (local.get 0) (local.get 1)))
  (func (export "rem_s") (param i32 i32) (result i32) (i32.rem_s (local.get 0) (local.get 1)))
  (func (export "i64_div_s") (param i64 i64) (result i64) (i64.div_s (local.get 0) (local.get 1)))
  (func (export "trunc_s") (param f64) (result i32) (i32.trunc_f64_s (local.get 0)))
  (func (export "trunc_u32") (param f32) (result i32) (i32.trunc_f32_u (local.get 0)))
  (func (export "trunc_i64") (param f64) (result i64) (i64.trunc_f64_s (local.get 0)))
  (func (export "unreachable") (unreachable))
  (func (export "call_null") (call_indirect (type $v) (i32.const 1)))
  (func (export "call_oob") (call_indirect (type $v) (i32.const 2)))
  (func (export "call_sig") (result i32) (call_indirect (type $i) (i32.const 0)))
  (func $rec (export "recurse") (param i32) (result i32)
    (i32.add (call $rec (i32.add (local.get 0) (i32.const 1))) (i32.const 1)))
  (func $runaway (export "runaway") (call $runaway))
  (func (export "load") (param i32) (result i32) (i32.load (local.get 0)))
  (func (export "store") (param i32) (i64.store offset=4 (local.get 0) (i64.const 1)))
  (func (export "dropped_load") (param i32) (drop (i32.load (local.get 0))))
  (func (export "dropped_if_load") (param i32)
    (drop (if (result i32) (local.get 0) (then (i32.load (local.get 0))) (else (i32.const 0)))))
  (func (export "dropped_load_expr") (param i32)
    (drop (i32.add (i64.eqz (i64.load8_u offset=7 (local.get 0))) (i32.const 1))))
)"#;

/// Runs trap case `case` of `TRAP_MODULE` (in the child process).
fn run_trap_case(case: &str) {
    let mut i = Instance::new(compile(TRAP_MODULE), Vec::new());
    // Route `RaiseTrap` to a function that exits with the trap code.
    let mut table = Box::new([0usize; Libcall::COUNT]);
    // SAFETY: the harness's libcall table has `Libcall::COUNT` entries.
    unsafe { std::ptr::copy_nonoverlapping(i.vmctx.libcalls, table.as_mut_ptr(), Libcall::COUNT) };
    table[Libcall::RaiseTrap as usize] = exit_with_trap as *const () as usize;
    i.vmctx.libcalls = table.as_ptr();
    let (name, args): (&str, Vec<ValRaw>) = match case {
        "div_zero" => ("div_s", vec![ValRaw::i32(1), ValRaw::i32(0)]),
        "div_u_zero" => ("div_u", vec![ValRaw::i32(1), ValRaw::i32(0)]),
        "rem_zero" => ("rem_s", vec![ValRaw::i32(1), ValRaw::i32(0)]),
        "div_overflow" => ("div_s", vec![ValRaw::i32(i32::MIN), ValRaw::i32(-1)]),
        "i64_div_overflow" => ("i64_div_s", vec![ValRaw::i64(i64::MIN), ValRaw::i64(-1)]),
        "trunc_nan" => ("trunc_s", vec![ValRaw::f64(f64::NAN.to_bits())]),
        "trunc_big" => ("trunc_s", vec![ValRaw::f64(2147483648.0f64.to_bits())]),
        "trunc_small" => ("trunc_s", vec![ValRaw::f64((-2147483649.0f64).to_bits())]),
        "trunc_u_neg" => ("trunc_u32", vec![ValRaw::f32((-1.0f32).to_bits())]),
        "trunc_u_big" => ("trunc_u32", vec![ValRaw::f32(4294967296.0f32.to_bits())]),
        "trunc_i64_big" => (
            "trunc_i64",
            vec![ValRaw::f64(9223372036854775808.0f64.to_bits())],
        ),
        "unreachable" => ("unreachable", vec![]),
        "call_null" => ("call_null", vec![]),
        "call_oob" => ("call_oob", vec![]),
        "call_sig" => ("call_sig", vec![]),
        "stack" => {
            let here = 0u8;
            let sp = &here as *const u8 as usize;
            i.set_stack_limit(sp - 256 * 1024);
            ("recurse", vec![ValRaw::i32(0)])
        }
        "runaway" => {
            let here = 0u8;
            let sp = &here as *const u8 as usize;
            i.set_stack_limit(sp - 256 * 1024);
            ("runaway", vec![])
        }
        "load_oob" => ("load", vec![ValRaw::i32(65533)]),
        "load_far" => ("load", vec![ValRaw::i32(-1)]),
        "store_oob" => ("store", vec![ValRaw::i32(65530)]),
        "dropped_load" => ("dropped_load", vec![ValRaw::i32(65536)]),
        "dropped_if_load" => ("dropped_if_load", vec![ValRaw::i32(65536)]),
        "dropped_load_expr" => ("dropped_load_expr", vec![ValRaw::i32(65530)]),
        "in_bounds" => ("load", vec![ValRaw::i32(65532)]),
        other => panic!("unknown trap case {other}"),
    };
    i.call(name, &args);
    // No trap.
    std::process::exit(0);
}

extern "C" fn exit_with_trap(_vmctx: *mut u8, code: u32) {
    // SAFETY: `_exit` ends the process without running anything else.
    unsafe { libc::_exit(100 + code as i32) };
}

/// The child side: runs the case named in the environment, if any.
#[test]
fn trap_child() {
    if let Ok(case) = std::env::var(CASE_VAR) {
        run_trap_case(&case);
    }
}

/// How a trap case ended in its child process.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Returned,
    Trap(TrapCode),
    Fault,
    Other(String),
}

fn run_case(case: &str) -> Outcome {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "trap_child", "--nocapture", "--test-threads=1"])
        .env(CASE_VAR, case)
        .output()
        .expect("run the test binary");
    let status = out.status;
    match (status.code(), status.signal()) {
        (Some(0), _) => Outcome::Returned,
        (Some(c), _) if c > 100 => match TrapCode::from_u8((c - 100) as u8) {
            Some(t) => Outcome::Trap(t),
            None => Outcome::Other(format!("exit {c}")),
        },
        (_, Some(s)) if s == libc::SIGSEGV || s == libc::SIGBUS => Outcome::Fault,
        _ => Outcome::Other(format!(
            "{status:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

#[test]
fn every_trap_is_raised() {
    use TrapCode as T;
    let cases = [
        ("div_zero", Outcome::Trap(T::IntegerDivisionByZero)),
        ("div_u_zero", Outcome::Trap(T::IntegerDivisionByZero)),
        ("rem_zero", Outcome::Trap(T::IntegerDivisionByZero)),
        ("div_overflow", Outcome::Trap(T::IntegerOverflow)),
        ("i64_div_overflow", Outcome::Trap(T::IntegerOverflow)),
        ("trunc_nan", Outcome::Trap(T::BadConversionToInteger)),
        ("trunc_big", Outcome::Trap(T::IntegerOverflow)),
        ("trunc_small", Outcome::Trap(T::IntegerOverflow)),
        ("trunc_u_neg", Outcome::Trap(T::IntegerOverflow)),
        ("trunc_u_big", Outcome::Trap(T::IntegerOverflow)),
        ("trunc_i64_big", Outcome::Trap(T::IntegerOverflow)),
        ("unreachable", Outcome::Trap(T::UnreachableCodeReached)),
        ("call_null", Outcome::Trap(T::IndirectCallToNull)),
        ("call_oob", Outcome::Trap(T::IndirectCallOutOfBounds)),
        ("call_sig", Outcome::Trap(T::BadSignature)),
        ("stack", Outcome::Trap(T::StackOverflow)),
        // A call in tail position must not become a jump: unbounded recursion exhausts the
        // stack instead of looping forever.
        ("runaway", Outcome::Trap(T::StackOverflow)),
        ("load_oob", Outcome::Fault),
        ("load_far", Outcome::Fault),
        ("store_oob", Outcome::Fault),
        ("dropped_load", Outcome::Fault),
        ("dropped_load_expr", Outcome::Fault),
        ("dropped_if_load", Outcome::Fault),
        ("in_bounds", Outcome::Returned),
    ];
    let mut failures = Vec::new();
    for (case, expected) in cases {
        let got = run_case(case);
        if got != expected {
            failures.push(format!("{case}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// On-stack replacement.

/// The body of function `func_index` of `bytes`.
fn with_body<R>(
    bytes: &[u8],
    func_index: u32,
    imported: u32,
    f: impl FnOnce(&wasmparser::FunctionBody<'_>) -> R,
) -> R {
    let mut n = imported;
    for payload in Parser::new(0).parse_all(bytes) {
        if let Payload::CodeSectionEntry(body) = payload.unwrap() {
            if n == func_index {
                return f(&body);
            }
            n += 1;
        }
    }
    panic!("no function {func_index}");
}

/// Compiles the OSR entry of exported function `name` for loop `loop_index` and calls it with
/// `locals`; returns its `i64` result.
fn call_osr_i64(inst: &mut Instance, name: &str, loop_index: u32, locals: &[ValRaw]) -> i64 {
    let index = inst.module.exports[name];
    let info = inst.module.info.clone();
    let compiled = with_body(
        &inst.module.bytes.clone(),
        index,
        info.num_imported_functions,
        |body| compiler().compile_osr_entry(&info, index, body, loop_index),
    )
    .expect("OSR entry compiles");
    call_entry_i64(inst, &compiled, loop_index, locals)
}

/// Calls the OSR entry `compiled` (of a function returning one `i64`) for loop `loop_index`
/// with `locals`.
fn call_entry_i64(
    inst: &mut Instance,
    compiled: &CompiledFunction,
    loop_index: u32,
    locals: &[ValRaw],
) -> i64 {
    let code = harness::Code::new(&compiled.code);
    type Osr = unsafe extern "C" fn(*mut u8, *mut u8, *const ValRaw, u32) -> i64;
    // SAFETY: the entry was compiled for the OSR signature of a function returning one i64.
    let f: Osr = unsafe { std::mem::transmute(code.ptr()) };
    let vmctx: *mut u8 = (&mut *inst.vmctx as *mut spate_tiers::vmctx::VMContext).cast();
    // SAFETY: the instance's context is live; `locals` has a slot for every local.
    unsafe { f(vmctx, vmctx, locals.as_ptr(), loop_index) }
}

#[test]
fn direct_osr_entry_serves_every_loop_it_names() {
    let mut inst = instance(OSR_MODULE);
    let v = |x: i64| ValRaw::i64(x);
    let index = inst.module.exports["deep"];
    let info = inst.module.info.clone();
    let bytes = inst.module.bytes.clone();
    // Loops 0..=3 nest; 9 does not exist. One entry serves the four, whichever is asked for.
    let (compiled, loops) = with_body(&bytes, index, info.num_imported_functions, |body| {
        compiler().compile_osr_entries(&info, index, body, &[3, 0, 9, 1, 2], None)
    })
    .expect("direct OSR entry compiles");
    assert_eq!(loops, vec![0, 1, 2, 3]);
    for (at, i, j, k, acc) in [
        (0, 0, 0, 0, 0),
        (0, 3, 9, 9, 77),
        (1, 2, 3, 9, -5),
        (1, 4, 3, 2, 11),
        (2, 1, 2, 3, 123_456),
        (2, 5, 0, 1, -1),
        (3, 4, 0, 0, 99),
    ] {
        assert_eq!(
            call_entry_i64(&mut inst, &compiled, at, &[v(6), v(i), v(j), v(k), v(acc)]),
            deep_from(at, 6, i, j, k, acc),
            "direct entry, loop {at} at i={i} j={j} k={k} acc={acc}"
        );
    }
    // Only some of the loops: the entry serves those.
    let (_, loops) = with_body(&bytes, index, info.num_imported_functions, |body| {
        compiler().compile_osr_entries(&info, index, body, &[2], Some(2))
    })
    .expect("direct OSR entry compiles");
    assert_eq!(loops, vec![2]);
    // None of the loops can be entered: unsupported, not an internal error.
    let idx = inst.module.exports["not_eligible"];
    let err = with_body(&bytes, idx, 0, |b| {
        compiler().compile_osr_entries(&info, idx, b, &[0, 5], None)
    })
    .unwrap_err();
    assert_eq!(err.kind, CompileErrorKind::Unsupported, "{err}");
}

const OSR_MODULE: &str = concat!(
    r#"(module
  (memory 1)
  ;; sum of i * j over a nest of loops, with a block and an if around the inner loop
  (func (export "nest") (param $n i64) (result i64) (local $i i64) (local $j i64) (local $acc i64)
    (local.set $i (i64.const 0))
    (block $out
      (loop $outer
        (br_if $out (i64.ge_u (local.get $i) (local.get $n)))
        (local.set $j (i64.const 0))
        (if (i64.ne (local.get $i) (i64.const 3))
          (then
            (block $inner_done
              (loop $inner
                (br_if $inner_done (i64.ge_u (local.get $j) (local.get $i)))
                (local.set $acc (i64.add (local.get $acc) (i64.mul (local.get $i) (local.get $j))))
                (local.set $j (i64.add (local.get $j) (i64.const 1)))
                (br $inner)))
            (local.set $acc (i64.add (local.get $acc) (i64.const 1000))))
          (else (local.set $acc (i64.sub (local.get $acc) (i64.const 7)))))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $outer)))
    (local.get $acc))
  ;; the loop in an else arm, leaving through a block with a result; two results
  (func (export "pair") (param $n i32) (result i32 i64) (local $i i32) (local $s i64)
    (block $b (result i32)
      (if (i32.eqz (local.get $n))
        (then (return (i32.const -1) (i64.const -1)))
        (else
          (loop $l
            (local.set $s (i64.add (local.get $s) (i64.extend_i32_u (local.get $i))))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (drop (br_if $b (i32.mul (local.get $i) (i32.const 10))
                            (i32.ge_u (local.get $i) (local.get $n))))
            (br $l))))
      (unreachable))
    (local.get $s))
"#,
    include_str!("fixtures/deep.wat"),
    r#"  ;; results flowing out of the hot loop and out of its enclosing loop
  (func (export "results") (param $n i64) (result i64) (local $i i64) (local $j i64) (local $s i64)
    (i64.add
      (loop $outer (result i64)
        (local.set $j (i64.const 0))
        (i64.mul
          (loop $inner (result i64)
            (local.set $s (i64.add (local.get $s) (i64.add (local.get $i) (local.get $j))))
            (local.set $j (i64.add (local.get $j) (i64.const 1)))
            (br_if $inner (i64.lt_u (local.get $j) (i64.const 6)))
            (i64.add (local.get $s) (local.get $j)))
          (i64.const 2))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br_if $outer (i64.lt_u (local.get $i) (local.get $n))))
      (i64.const 7)))
  (func (export "not_eligible") (param i64) (result i64)
    (i64.const 1)
    (loop (param i64) (result i64) (i64.const 1) (i64.add)))
)"#
);

/// The reference result of `deep` continued from the header of loop `at` (0 `$a`, 1 `$b`,
/// 2 `$c`, 3 `$d`) with the given state; `at` 0 with all zeros is the full function.
fn deep_from(at: u32, n: i64, mut i: i64, mut j: i64, mut k: i64, mut acc: i64) -> i64 {
    if at < 3 {
        // Whether the entry is still on its way to loop `at` (skipping the code before it).
        let mut entering = true;
        loop {
            if !(entering && at >= 1) {
                j = 0;
            }
            'a_body: loop {
                if !(entering && at >= 2) {
                    k = 0;
                }
                entering = false;
                loop {
                    acc = acc
                        .wrapping_mul(3)
                        .wrapping_add(i.wrapping_add(j.wrapping_mul(k)));
                    k = k.wrapping_add(1);
                    if (k as u64) >= 5 {
                        break;
                    }
                }
                if i.wrapping_add(j) == 7 {
                    break 'a_body;
                }
                j = j.wrapping_add(1);
                if (j as u64) >= 4 {
                    break;
                }
            }
            acc ^= 0x55;
            i = i.wrapping_add(1);
            if (i as u64) >= (n as u64) {
                break;
            }
        }
        acc = acc.wrapping_add(1000);
        i = 0;
    }
    loop {
        acc = acc.rotate_left((i & 63) as u32);
        i += 1;
        if i >= 9 {
            return acc;
        }
    }
}

/// The reference result of `results` continued from the header of its inner loop (`inner`) or
/// its outer loop.
fn results_from(inner: bool, n: i64, mut i: i64, mut j: i64, mut s: i64) -> i64 {
    let mut skip_reset = inner;
    loop {
        if !skip_reset {
            j = 0;
        }
        skip_reset = false;
        let v = loop {
            s = s.wrapping_add(i.wrapping_add(j));
            j = j.wrapping_add(1);
            if (j as u64) >= 6 {
                break s.wrapping_add(j);
            }
        };
        let v = v.wrapping_mul(2);
        i = i.wrapping_add(1);
        if (i as u64) >= (n as u64) {
            return v.wrapping_add(7);
        }
    }
}

#[test]
fn osr_entries_of_nested_loops_and_loop_results() {
    let mut inst = instance(OSR_MODULE);
    let v = |x: i64| ValRaw::i64(x);
    let full = call_i64(&mut inst, "deep", &[6]);
    assert_eq!(full, deep_from(0, 6, 0, 0, 0, 0));
    for at in 0..3 {
        assert_eq!(
            call_osr_i64(&mut inst, "deep", at, &[v(6), v(0), v(0), v(0), v(0)]),
            full,
            "loop {at} from the start"
        );
    }
    // Mid-way, with states the loops can have at their headers.
    for (at, i, j, k, acc) in [
        (0, 3, 9, 9, 77),
        (1, 2, 3, 9, -5),
        (1, 4, 3, 2, 11),
        (2, 1, 2, 3, 123_456),
        (2, 3, 3, 4, 1 << 40),
        (2, 5, 0, 1, -1),
        (3, 4, 0, 0, 99),
    ] {
        assert_eq!(
            call_osr_i64(&mut inst, "deep", at, &[v(6), v(i), v(j), v(k), v(acc)]),
            deep_from(at, 6, i, j, k, acc),
            "loop {at} at i={i} j={j} k={k} acc={acc}"
        );
    }

    let full = call_i64(&mut inst, "results", &[5]);
    assert_eq!(full, results_from(false, 5, 0, 0, 0));
    assert_eq!(
        call_osr_i64(&mut inst, "results", 0, &[v(5), v(0), v(0), v(0)]),
        full
    );
    assert_eq!(
        call_osr_i64(&mut inst, "results", 1, &[v(5), v(0), v(0), v(0)]),
        full
    );
    for (i, j, s) in [(2, 3, 40), (4, 5, -9), (0, 1, 1)] {
        assert_eq!(
            call_osr_i64(&mut inst, "results", 1, &[v(5), v(i), v(j), v(s)]),
            results_from(true, 5, i, j, s),
            "inner loop at i={i} j={j} s={s}"
        );
        assert_eq!(
            call_osr_i64(&mut inst, "results", 0, &[v(5), v(i), v(j), v(s)]),
            results_from(false, 5, i, j, s),
            "outer loop at i={i} j={j} s={s}"
        );
    }
}

/// The reference result of `nest` continued from the inner loop header with the given state.
fn nest_from_inner(n: i64, mut i: i64, mut j: i64, mut acc: i64) -> i64 {
    loop {
        while j < i {
            acc += i * j;
            j += 1;
        }
        acc += 1000;
        i += 1;
        loop {
            if i >= n {
                return acc;
            }
            j = 0;
            if i != 3 {
                break;
            }
            acc -= 7;
            i += 1;
        }
    }
}

#[test]
fn osr_entries_continue_the_function() {
    let mut inst = instance(OSR_MODULE);
    let full = call_i64(&mut inst, "nest", &[10]);
    // Entering the outer loop (loop 0) at its header with the initial state is the same as
    // calling the function.
    let locals0 = [
        ValRaw::i64(10),
        ValRaw::i64(0),
        ValRaw::i64(0),
        ValRaw::i64(0),
    ];
    assert_eq!(call_osr_i64(&mut inst, "nest", 0, &locals0), full);
    // Mid-way through the outer loop.
    let locals = [
        ValRaw::i64(10),
        ValRaw::i64(5),
        ValRaw::i64(0),
        ValRaw::i64(12345),
    ];
    let expected = {
        let (n, mut i, mut acc) = (10i64, 5i64, 12345i64);
        while i < n {
            if i != 3 {
                acc += (0..i).map(|j| i * j).sum::<i64>() + 1000;
            } else {
                acc -= 7;
            }
            i += 1;
        }
        acc
    };
    assert_eq!(call_osr_i64(&mut inst, "nest", 0, &locals), expected);
    // Inside the inner loop (loop 1): i = 6, j = 2, acc = 100.
    let locals1 = [
        ValRaw::i64(10),
        ValRaw::i64(6),
        ValRaw::i64(2),
        ValRaw::i64(100),
    ];
    assert_eq!(
        call_osr_i64(&mut inst, "nest", 1, &locals1),
        nest_from_inner(10, 6, 2, 100)
    );
    // Loop 1 with the state the function has when it first gets there: same as a full run.
    let start = [
        ValRaw::i64(10),
        ValRaw::i64(0),
        ValRaw::i64(0),
        ValRaw::i64(0),
    ];
    assert_eq!(call_osr_i64(&mut inst, "nest", 1, &start), full);

    // Two results through the return area.
    let index = inst.module.exports["pair"];
    let info = inst.module.info.clone();
    let compiled = with_body(&inst.module.bytes.clone(), index, 0, |body| {
        compiler().compile_osr_entry(&info, index, body, 0)
    })
    .expect("OSR entry compiles");
    let code = harness::Code::new(&compiled.code);
    type Osr2 = unsafe extern "C" fn(*mut u8, *mut u8, *const ValRaw, u32, *mut ValRaw);
    // SAFETY: the entry was compiled for the OSR signature of a function with two results.
    let f: Osr2 = unsafe { std::mem::transmute(code.ptr()) };
    let vmctx: *mut u8 = (&mut *inst.vmctx as *mut spate_tiers::vmctx::VMContext).cast();
    let locals = [ValRaw::i32(10), ValRaw::i32(4), ValRaw::i64(6)];
    let mut results = [ValRaw::default(); 2];
    // SAFETY: live context, a slot per local, a return area of two slots.
    unsafe { f(vmctx, vmctx, locals.as_ptr(), 0, results.as_mut_ptr()) };
    let (mut i, mut s) = (4i64, 6i64);
    loop {
        s += i;
        i += 1;
        if i >= 10 {
            break;
        }
    }
    assert_eq!(
        (results[0].get_i32(), results[1].get_i64()),
        (i as i32 * 10, s)
    );
    let full = inst.call("pair", &[ValRaw::i32(10)]);
    assert_eq!((full[0].get_i32(), full[1].get_i64()), (100, 45));

    // Ineligible and missing loops are unsupported.
    let info = inst.module.info.clone();
    let bytes = inst.module.bytes.clone();
    let idx = inst.module.exports["not_eligible"];
    let err = with_body(&bytes, idx, 0, |b| {
        compiler().compile_osr_entry(&info, idx, b, 0)
    })
    .unwrap_err();
    assert_eq!(err.kind, CompileErrorKind::Unsupported, "{err}");
    let err = with_body(&bytes, idx, 0, |b| {
        compiler().compile_osr_entry(&info, idx, b, 5)
    })
    .unwrap_err();
    assert_eq!(err.kind, CompileErrorKind::Unsupported, "{err}");
}

/// A matmul-shaped nest: the outer loop counts `$i` up to a constant and carries the offset
/// `$p` of its row; the inner loop reads the row through `$p + $j`. The sum is taken over both
/// the values read and the offsets themselves, so a wrapped offset shows in the result.
const ROWS_MODULE: &str = r#"(module
  (memory 1)
  (func (export "rows") (result i64) (local $i i32) (local $p i32) (local $j i32) (local $acc i64)
    (local.set $p (i32.const 64))
    (loop $outer
      (local.set $j (i32.const 0))
      (loop $inner
        (local.set $acc (i64.add (local.get $acc)
          (i64.add (i64.extend_i32_u (i32.add (local.get $p) (local.get $j)))
                   (i64.load32_u (i32.and (i32.add (local.get $p) (local.get $j))
                                          (i32.const 0xfffc))))))
        (br_if $inner (i32.ne (local.tee $j (i32.add (local.get $j) (i32.const 4)))
                              (i32.const 32))))
      (local.set $p (i32.add (local.get $p) (i32.const 32)))
      (br_if $outer (i32.ne (local.tee $i (i32.add (local.get $i) (i32.const 1)))
                            (i32.const 10))))
    (local.get $acc))
  (data (i32.const 0) "\01\00\00\00\02\00\00\00\03\00\00\00\04\00\00\00")
  (data (i32.const 64) "\05\00\00\00\06\00\00\00\07\00\00\00\08\00\00\00")
  (data (i32.const 65520) "\09\00\00\00\0a\00\00\00\0b\00\00\00\0c\00\00\00")
)"#;

/// The reference result of `rows` continued from its outer loop's header with the given state.
fn rows_from(mem: &[u8], mut i: u32, mut p: u32, mut acc: i64) -> i64 {
    loop {
        let mut j = 0u32;
        loop {
            let at = p.wrapping_add(j);
            let word = (at & 0xfffc) as usize;
            let value = u32::from_le_bytes(mem[word..word + 4].try_into().unwrap());
            acc = acc.wrapping_add(i64::from(at) + i64::from(value));
            j = j.wrapping_add(4);
            if j == 32 {
                break;
            }
        }
        p = p.wrapping_add(32);
        i = i.wrapping_add(1);
        if i == 10 {
            return acc;
        }
    }
}

#[test]
fn direct_osr_entry_checks_range_facts_and_falls_back_when_they_fail() {
    let mut inst = instance(ROWS_MODULE);
    let index = inst.module.exports["rows"];
    let info = inst.module.info.clone();
    let bytes = inst.module.bytes.clone();
    let compile = |checked| {
        with_body(&bytes, index, info.num_imported_functions, |body| {
            compiler().compile_osr_entries(&info, index, body, &[0], checked)
        })
        .expect("direct OSR entry compiles")
    };
    let (compiled, loops) = compile(Some(0));
    assert_eq!(loops, vec![0]);
    // Named as the checked loop, the outer loop gets its copy: more code than without.
    let (plain, _) = compile(None);
    assert!(
        compiled.code.len() > plain.code.len(),
        "checked {} bytes, plain {} bytes",
        compiled.code.len(),
        plain.code.len()
    );
    // `rows` only reads memory: the reference reads the same bytes, its data segments.
    let mem = inst.memory().to_vec();
    assert_eq!(mem.len(), 65536);
    let v32 = |x: u32| ValRaw::i32(x as i32);
    // Offsets below 2^31 (with the counter below its bound, 10) take the checked copy; offsets
    // from 2^31 up, such as one whose `$p + $j` wraps to the bottom of memory, fail the check
    // and take the loop's own header. (A counter at or past its bound fails too, but then the
    // loop runs 2^32 times.) Every case must give the reference result.
    for (i, p, acc) in [
        (0u32, 64u32, 0i64),
        (3, 64 + 3 * 32, 1_000),
        (9, 0x7fff_ff00, -5),
        (2, 0xffff_fff0, 7),
        (5, 0x8000_0000, 0),
        (0, 65_504, 3),
    ] {
        let locals = [v32(i), v32(p), v32(0), ValRaw::i64(acc)];
        for (entry, what) in [(&compiled, "checked"), (&plain, "plain")] {
            assert_eq!(
                call_entry_i64(&mut inst, entry, 0, &locals),
                rows_from(&mem, i, p, acc),
                "{what} direct entry at i={i} p={p:#x} acc={acc}"
            );
        }
    }
    // The function from the start agrees too.
    assert_eq!(call_i64(&mut inst, "rows", &[]), rows_from(&mem, 0, 64, 0));
}
