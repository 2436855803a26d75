//! Compiles small modules with the Cranelift tier and executes the generated code.

mod harness;

use harness::{Instance, call_f32, call_f64, call_i32, call_i64, compile, wat};
use spate_tier_cranelift::{CraneliftOptions, CraneliftTier, RegallocAlgorithm};
use spate_tiers::abi::ValRaw;
use spate_tiers::{CompileErrorKind, TrapCode};

fn instance(src: &str) -> Instance {
    Instance::new(compile(&wat(src)).expect("module compiles"), Vec::new())
}

fn i32s(vals: &[ValRaw]) -> Vec<i32> {
    vals.iter().map(|v| v.get_i32()).collect()
}

#[test]
fn integer_arithmetic() {
    harness::check_integer_arithmetic(instance);
}

#[test]
fn float_arithmetic_and_conversions() {
    let mut i = instance(
        r#"(module
          (func (export "f64_add") (param f64 f64) (result f64) (f64.add (local.get 0) (local.get 1)))
          (func (export "f64_div") (param f64 f64) (result f64) (f64.div (local.get 0) (local.get 1)))
          (func (export "f64_min") (param f64 f64) (result f64) (f64.min (local.get 0) (local.get 1)))
          (func (export "f64_max") (param f64 f64) (result f64) (f64.max (local.get 0) (local.get 1)))
          (func (export "f64_sqrt") (param f64) (result f64) (f64.sqrt (local.get 0)))
          (func (export "f64_nearest") (param f64) (result f64) (f64.nearest (local.get 0)))
          (func (export "f64_floor") (param f64) (result f64) (f64.floor (local.get 0)))
          (func (export "f64_ceil") (param f64) (result f64) (f64.ceil (local.get 0)))
          (func (export "f64_trunc") (param f64) (result f64) (f64.trunc (local.get 0)))
          (func (export "f64_copysign") (param f64 f64) (result f64) (f64.copysign (local.get 0) (local.get 1)))
          (func (export "f64_neg") (param f64) (result f64) (f64.neg (local.get 0)))
          (func (export "f64_abs") (param f64) (result f64) (f64.abs (local.get 0)))
          (func (export "f32_mul") (param f32 f32) (result f32) (f32.mul (local.get 0) (local.get 1)))
          (func (export "f32_nearest") (param f32) (result f32) (f32.nearest (local.get 0)))
          (func (export "f64_lt") (param f64 f64) (result i32) (f64.lt (local.get 0) (local.get 1)))
          (func (export "f64_ne") (param f64 f64) (result i32) (f64.ne (local.get 0) (local.get 1)))
          (func (export "f64_eq") (param f64 f64) (result i32) (f64.eq (local.get 0) (local.get 1)))
          (func (export "trunc_s") (param f64) (result i32) (i32.trunc_f64_s (local.get 0)))
          (func (export "trunc_u64") (param f64) (result i64) (i64.trunc_f64_u (local.get 0)))
          (func (export "sat_s") (param f64) (result i32) (i32.trunc_sat_f64_s (local.get 0)))
          (func (export "sat_u") (param f32) (result i32) (i32.trunc_sat_f32_u (local.get 0)))
          (func (export "conv_u") (param i64) (result f64) (f64.convert_i64_u (local.get 0)))
          (func (export "conv_s") (param i32) (result f32) (f32.convert_i32_s (local.get 0)))
          (func (export "demote") (param f64) (result f32) (f32.demote_f64 (local.get 0)))
          (func (export "promote") (param f32) (result f64) (f64.promote_f32 (local.get 0)))
          (func (export "bits") (param f64) (result i64) (i64.reinterpret_f64 (local.get 0)))
          (func (export "from_bits") (param i32) (result f32) (f32.reinterpret_i32 (local.get 0)))
          (func (export "consts") (result f64)
            (f64.add (f64.const 1.5) (f64.promote_f32 (f32.const -0.25))))
        )"#,
    );
    assert_eq!(call_f64(&mut i, "f64_add", &[1.5, 2.25]), 3.75);
    assert_eq!(call_f64(&mut i, "f64_div", &[1.0, 4.0]), 0.25);
    assert!(call_f64(&mut i, "f64_min", &[f64::NAN, 1.0]).is_nan());
    assert_eq!(
        call_f64(&mut i, "f64_min", &[0.0, -0.0]).to_bits(),
        (-0.0f64).to_bits()
    );
    assert_eq!(
        call_f64(&mut i, "f64_max", &[-0.0, 0.0]).to_bits(),
        0.0f64.to_bits()
    );
    assert_eq!(call_f64(&mut i, "f64_sqrt", &[16.0]), 4.0);
    assert_eq!(call_f64(&mut i, "f64_nearest", &[2.5]), 2.0);
    assert_eq!(call_f64(&mut i, "f64_nearest", &[3.5]), 4.0);
    assert_eq!(call_f64(&mut i, "f64_floor", &[-1.5]), -2.0);
    assert_eq!(call_f64(&mut i, "f64_ceil", &[-1.5]), -1.0);
    assert_eq!(call_f64(&mut i, "f64_trunc", &[-1.5]), -1.0);
    assert_eq!(call_f64(&mut i, "f64_copysign", &[2.0, -0.0]), -2.0);
    assert_eq!(call_f64(&mut i, "f64_neg", &[2.0]), -2.0);
    assert_eq!(call_f64(&mut i, "f64_abs", &[-2.0]), 2.0);
    assert_eq!(call_f32(&mut i, "f32_mul", &[1.5, -2.0]), -3.0);
    assert_eq!(
        call_f32(&mut i, "f32_nearest", &[-0.5]).to_bits(),
        (-0.0f32).to_bits()
    );
    let f = |i: &mut Instance, n: &str, a: f64, b: f64| {
        i.call(n, &[ValRaw::f64(a.to_bits()), ValRaw::f64(b.to_bits())])[0].get_i32()
    };
    assert_eq!(f(&mut i, "f64_lt", 1.0, 2.0), 1);
    assert_eq!(f(&mut i, "f64_lt", f64::NAN, 2.0), 0);
    assert_eq!(f(&mut i, "f64_ne", f64::NAN, f64::NAN), 1);
    assert_eq!(f(&mut i, "f64_eq", f64::NAN, f64::NAN), 0);
    let g = |i: &mut Instance, n: &str, a: f64| i.call(n, &[ValRaw::f64(a.to_bits())])[0];
    assert_eq!(g(&mut i, "trunc_s", -3.9).get_i32(), -3);
    assert_eq!(
        g(&mut i, "trunc_u64", 1e19).get_i64() as u64,
        10_000_000_000_000_000_000
    );
    assert_eq!(g(&mut i, "sat_s", 1e10).get_i32(), i32::MAX);
    assert_eq!(g(&mut i, "sat_s", f64::NAN).get_i32(), 0);
    assert_eq!(g(&mut i, "sat_s", -1e10).get_i32(), i32::MIN);
    assert_eq!(
        i.call("sat_u", &[ValRaw::f32((-5.0f32).to_bits())])[0].get_i32(),
        0
    );
    assert_eq!(
        f64::from_bits(i.call("conv_u", &[ValRaw::i64(-1)])[0].get_f64()),
        18446744073709551615.0
    );
    assert_eq!(
        f32::from_bits(i.call("conv_s", &[ValRaw::i32(-7)])[0].get_f32()),
        -7.0
    );
    assert_eq!(f32::from_bits(g(&mut i, "demote", 0.5).get_f32()), 0.5);
    assert_eq!(
        f64::from_bits(i.call("promote", &[ValRaw::f32(1.25f32.to_bits())])[0].get_f64()),
        1.25
    );
    assert_eq!(g(&mut i, "bits", 1.0).get_i64(), 0x3ff0_0000_0000_0000);
    assert_eq!(
        i.call("from_bits", &[ValRaw::i32(0x3f80_0000)])[0],
        ValRaw::f32(1.0f32.to_bits())
    );
    assert_eq!(call_f64(&mut i, "consts", &[]), 1.25);
}

#[test]
fn control_flow() {
    let mut i = instance(
        r#"(module
          (func (export "fact") (param i64) (result i64) (local i64)
            (local.set 1 (i64.const 1))
            (block $done
              (loop $l
                (br_if $done (i64.le_s (local.get 0) (i64.const 1)))
                (local.set 1 (i64.mul (local.get 1) (local.get 0)))
                (local.set 0 (i64.sub (local.get 0) (i64.const 1)))
                (br $l)))
            (local.get 1))
          (func (export "switch") (param i32) (result i32)
            (block $d (block $c (block $b (block $a
              (br_table $a $b $c $d (local.get 0)))
              (return (i32.const 10)))
              (return (i32.const 11)))
              (return (i32.const 12)))
            (i32.const 13))
          (func (export "switch_values") (param i32) (result i32 i32)
            (block $outer (result i32 i32)
              (block $inner (result i32 i32)
                (i32.const 1) (i32.const 2)
                (br_table $inner $outer $inner (local.get 0)))
              (i32.add) (i32.const 100)))
          (func (export "multi_block") (param i32 i32) (result i32 i32 i32)
            (local.get 0) (local.get 1)
            (block (param i32 i32) (result i32 i32 i32)
              (i32.const 7)))
          (func (export "swap_sub") (param i32 i32) (result i32)
            (local.get 0) (local.get 1)
            (block (param i32 i32) (result i32 i32)
              (local.set 0) (local.set 1) (local.get 0) (local.get 1))
            (i32.sub))
          (func (export "if_else") (param i32) (result i32)
            (if (result i32) (local.get 0)
              (then (i32.const 1))
              (else (i32.const 2))))
          (func (export "if_params") (param i32 i32) (result i32)
            (local.get 1)
            (if (param i32) (result i32) (local.get 0)
              (then (i32.const 10) (i32.add))))
          (func (export "loop_params") (param i32) (result i32)
            (i32.const 0) (local.get 0)
            (loop $l (param i32 i32) (result i32)
              (local.set 0)
              (i32.add (local.get 0))
              (local.get 0) (i32.const 1) (i32.sub) (local.tee 0)
              (local.get 0)
              (br_if $l)
              (drop)))
          (func (export "dead_code") (param i32) (result i32)
            (block $b (result i32)
              (br $b (i32.const 5))
              (i32.add) (drop) (f32.const 1) (drop)
              (block (loop (if (i32.const 0) (then (unreachable)) (else (nop)))))
              (i32.const 0))
            (if (result i32) (local.get 0)
              (then (return (i32.const 99)) (i32.const 1))
              (else (i32.const 3)))
            (i32.add))
          (func (export "select") (param i32 i64 i64) (result i64)
            (select (local.get 1) (local.get 2) (local.get 0)))
          (func (export "typed_select") (param i32 f64 f64) (result f64)
            (select (result f64) (local.get 1) (local.get 2) (local.get 0)))
          (func (export "early_br") (param i32) (result i32)
            (block $b (result i32)
              (i32.const 1)
              (br_if $b (local.get 0))
              (drop)
              (i32.const 2)))
          (func (export "return_in_loop") (result i32) (local i32)
            (loop $l
              (local.set 0 (i32.add (local.get 0) (i32.const 1)))
              (if (i32.eq (local.get 0) (i32.const 50)) (then (return (local.get 0))))
              (br $l))
            (i32.const -1))
          (func (export "nop_drop") (result i32) (nop) (drop (i32.const 3)) (i32.const 4))
        )"#,
    );
    assert_eq!(call_i64(&mut i, "fact", &[20]), 2432902008176640000);
    assert_eq!(call_i64(&mut i, "fact", &[0]), 1);
    for (x, r) in [(0, 10), (1, 11), (2, 12), (3, 13), (4, 13), (-1, 13)] {
        assert_eq!(call_i32(&mut i, "switch", &[x]), r, "switch {x}");
    }
    assert_eq!(i32s(&i.call("switch_values", &[ValRaw::i32(0)])), [3, 100]);
    assert_eq!(i32s(&i.call("switch_values", &[ValRaw::i32(1)])), [1, 2]);
    assert_eq!(i32s(&i.call("switch_values", &[ValRaw::i32(2)])), [3, 100]);
    assert_eq!(i32s(&i.call("switch_values", &[ValRaw::i32(9)])), [3, 100]);
    assert_eq!(
        i32s(&i.call("multi_block", &[ValRaw::i32(4), ValRaw::i32(5)])),
        [4, 5, 7]
    );
    assert_eq!(call_i32(&mut i, "swap_sub", &[10, 3]), -7);
    assert_eq!(call_i32(&mut i, "if_else", &[1]), 1);
    assert_eq!(call_i32(&mut i, "if_else", &[0]), 2);
    assert_eq!(call_i32(&mut i, "if_params", &[1, 5]), 15);
    assert_eq!(call_i32(&mut i, "if_params", &[0, 5]), 5);
    assert_eq!(call_i32(&mut i, "loop_params", &[4]), 10);
    assert_eq!(call_i32(&mut i, "dead_code", &[0]), 8);
    assert_eq!(call_i32(&mut i, "dead_code", &[1]), 99);
    let sel = |i: &mut Instance, c| {
        i.call("select", &[ValRaw::i32(c), ValRaw::i64(1), ValRaw::i64(2)])[0].get_i64()
    };
    assert_eq!(sel(&mut i, 1), 1);
    assert_eq!(sel(&mut i, 0), 2);
    let r = i.call(
        "typed_select",
        &[ValRaw::i32(0), ValRaw::f64(1), ValRaw::f64(2)],
    );
    assert_eq!(r[0].get_f64(), 2);
    assert_eq!(call_i32(&mut i, "early_br", &[1]), 1);
    assert_eq!(call_i32(&mut i, "early_br", &[0]), 2);
    assert_eq!(call_i32(&mut i, "return_in_loop", &[]), 50);
    assert_eq!(call_i32(&mut i, "nop_drop", &[]), 4);
}

#[test]
fn memory_access() {
    let mut i = instance(
        r#"(module
          (memory 1 3)
          (data (i32.const 16) "\01\02\03\04\05\06\07\08\ff\fe")
          (func (export "load8_s") (param i32) (result i32) (i32.load8_s (local.get 0)))
          (func (export "load8_u") (param i32) (result i32) (i32.load8_u (local.get 0)))
          (func (export "load16_s") (param i32) (result i32) (i32.load16_s offset=8 (local.get 0)))
          (func (export "load32") (param i32) (result i32) (i32.load offset=16 (local.get 0)))
          (func (export "load64") (param i32) (result i64) (i64.load (local.get 0)))
          (func (export "i64_load32_s") (param i32) (result i64) (i64.load32_s (local.get 0)))
          (func (export "i64_load8_u") (param i32) (result i64) (i64.load8_u (local.get 0)))
          (func (export "store_all") (param i32)
            (i32.store8 (local.get 0) (i32.const 0x1ff))
            (i32.store16 offset=2 (local.get 0) (i32.const 0x12345))
            (i64.store32 offset=4 (local.get 0) (i64.const 0x1_2233_4455))
            (i64.store offset=8 (local.get 0) (i64.const -2))
            (f32.store offset=16 (local.get 0) (f32.const 1.5))
            (f64.store offset=24 (local.get 0) (f64.const -0.5)))
          (func (export "f64_load") (param i32) (result f64) (f64.load (local.get 0)))
          (func (export "size") (result i32) (memory.size))
          (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
          (func (export "fill") (param i32 i32 i32) (memory.fill (local.get 0) (local.get 1) (local.get 2)))
          (func (export "copy") (param i32 i32 i32) (memory.copy (local.get 0) (local.get 1) (local.get 2)))
          (func (export "high") (result i32)
            (i32.store (i32.const 131068) (i32.const 77))
            (i32.load (i32.const 131068)))
        )"#,
    );
    assert_eq!(call_i32(&mut i, "load8_s", &[24]), -1);
    assert_eq!(call_i32(&mut i, "load8_u", &[24]), 255);
    assert_eq!(call_i32(&mut i, "load16_s", &[16]), 0xfeffu16 as i16 as i32);
    assert_eq!(call_i32(&mut i, "load32", &[0]), 0x04030201);
    assert_eq!(
        i.call("load64", &[ValRaw::i32(16)])[0].get_i64(),
        0x0807060504030201
    );
    assert_eq!(
        i.call("i64_load32_s", &[ValRaw::i32(22)])[0].get_i64(),
        0xfeff_0807u32 as i32 as i64
    );
    assert_eq!(i.call("i64_load8_u", &[ValRaw::i32(25)])[0].get_i64(), 0xfe);
    i.call("store_all", &[ValRaw::i32(100)]);
    let m = i.memory();
    assert_eq!(m[100], 0xff);
    assert_eq!(&m[102..104], &[0x45, 0x23]);
    assert_eq!(&m[104..108], &[0x55, 0x44, 0x33, 0x22]);
    assert_eq!(&m[108..116], &(-2i64).to_le_bytes());
    assert_eq!(&m[116..120], &1.5f32.to_le_bytes());
    assert_eq!(
        f64::from_bits(i.call("f64_load", &[ValRaw::i32(124)])[0].get_f64()),
        -0.5
    );
    assert_eq!(call_i32(&mut i, "size", &[]), 1);
    assert_eq!(call_i32(&mut i, "grow", &[1]), 1);
    assert_eq!(call_i32(&mut i, "size", &[]), 2);
    assert_eq!(call_i32(&mut i, "grow", &[5]), -1);
    assert_eq!(call_i32(&mut i, "high", &[]), 77);
    i.call(
        "fill",
        &[ValRaw::i32(200), ValRaw::i32(0xab), ValRaw::i32(4)],
    );
    i.call(
        "copy",
        &[ValRaw::i32(300), ValRaw::i32(198), ValRaw::i32(8)],
    );
    assert_eq!(
        &i.memory()[298..310],
        &[0, 0, 0, 0, 0xab, 0xab, 0xab, 0xab, 0, 0, 0, 0]
    );
}

#[test]
fn globals() {
    let mut i = instance(
        r#"(module
          (global $c (mut i32) (i32.const 10))
          (global $k i64 (i64.const -5))
          (global $f (mut f64) (f64.const 0.5))
          (func (export "bump") (result i32)
            (global.set $c (i32.add (global.get $c) (i32.const 1)))
            (global.get $c))
          (func (export "k") (result i64) (global.get $k))
          (func (export "scale") (param f64) (result f64)
            (global.set $f (f64.mul (global.get $f) (local.get 0)))
            (global.get $f))
        )"#,
    );
    assert_eq!(call_i32(&mut i, "bump", &[]), 11);
    assert_eq!(call_i32(&mut i, "bump", &[]), 12);
    assert_eq!(i.global(0).get_i32(), 12);
    assert_eq!(call_i64(&mut i, "k", &[]), -5);
    assert_eq!(call_f64(&mut i, "scale", &[4.0]), 2.0);
    assert_eq!(f64::from_bits(i.global(2).get_f64()), 2.0);
}

#[test]
fn calls() {
    let mut i = instance(
        r#"(module
          (type $bin (func (param i32 i32) (result i32)))
          (table 4 funcref)
          (elem (i32.const 0) $add $sub $pair_sum)
          (func $fib (export "fib") (param i32) (result i32)
            (if (result i32) (i32.lt_u (local.get 0) (i32.const 2))
              (then (local.get 0))
              (else (i32.add (call $fib (i32.sub (local.get 0) (i32.const 1)))
                             (call $fib (i32.sub (local.get 0) (i32.const 2)))))))
          (func $add (type $bin) (i32.add (local.get 0) (local.get 1)))
          (func $sub (type $bin) (i32.sub (local.get 0) (local.get 1)))
          (func $pair_sum (param i32) (result i32) (local.get 0))
          (func $divmod (export "divmod") (param i32 i32) (result i32 i32 i64)
            (i32.div_u (local.get 0) (local.get 1))
            (i32.rem_u (local.get 0) (local.get 1))
            (i64.const -1))
          (func (export "use_divmod") (param i32 i32) (result i32)
            (call $divmod (local.get 0) (local.get 1))
            (drop)
            (i32.mul (i32.const 1000))
            (i32.add))
          (func (export "apply") (param i32 i32 i32) (result i32)
            (call_indirect (type $bin) (local.get 1) (local.get 2) (local.get 0)))
          (func (export "many_args") (param i32 i64 f32 f64 i32 i64 f32 f64 i32 i32) (result f64)
            (f64.add
              (f64.add (f64.convert_i32_s (local.get 0)) (f64.convert_i64_s (local.get 1)))
              (f64.add (f64.promote_f32 (local.get 2)) (local.get 3)))
            (f64.add (f64.convert_i32_s (i32.add (local.get 8) (local.get 9))))
            (f64.add (f64.add (f64.convert_i32_s (local.get 4)) (f64.convert_i64_s (local.get 5)))
                     (f64.add (f64.promote_f32 (local.get 6)) (local.get 7)))
            (f64.add))
          (func (export "call_many") (result f64)
            (call 7 (i32.const 1) (i64.const 2) (f32.const 3) (f64.const 4) (i32.const 5)
                    (i64.const 6) (f32.const 7) (f64.const 8) (i32.const 9) (i32.const 10)))
          (func (export "funcref") (result i32)
            (ref.is_null (ref.func $add)))
          (func (export "table_ops") (result i32)
            (table.set 0 (i32.const 3) (table.get 0 (i32.const 1)))
            (i32.add
              (call_indirect (type $bin) (i32.const 10) (i32.const 4) (i32.const 3))
              (i32.mul (table.size 0) (i32.const 100))))
          (func (export "table_grow") (result i32)
            (drop (table.grow 0 (ref.null func) (i32.const 2)))
            (table.size 0))
        )"#,
    );
    assert_eq!(call_i32(&mut i, "fib", &[20]), 6765);
    let r = i.call("divmod", &[ValRaw::i32(17), ValRaw::i32(5)]);
    assert_eq!((r[0].get_i32(), r[1].get_i32(), r[2].get_i64()), (3, 2, -1));
    assert_eq!(call_i32(&mut i, "use_divmod", &[17, 5]), 2003);
    assert_eq!(call_i32(&mut i, "apply", &[0, 7, 5]), 12);
    assert_eq!(call_i32(&mut i, "apply", &[1, 7, 5]), 2);
    assert_eq!(call_f64(&mut i, "call_many", &[]), 55.0);
    assert_eq!(call_i32(&mut i, "funcref", &[]), 0);
    assert_eq!(call_i32(&mut i, "table_ops", &[]), 406);
    assert_eq!(call_i32(&mut i, "table_grow", &[]), 6);
}

#[test]
fn host_imports() {
    let src = r#"(module
      (import "env" "add3" (func $add3 (param i32 i64 f64) (result f64)))
      (import "env" "split" (func $split (param i64) (result i32 i32)))
      (import "env" "log" (func $log (param i32)))
      (func (export "go") (param i32) (result f64)
        (call $log (local.get 0))
        (call $add3 (local.get 0) (i64.const 10) (f64.const 0.5)))
      (func (export "split_sum") (param i64) (result i32)
        (call $split (local.get 0))
        (i32.sub))
    )"#;
    let module = compile(&wat(src)).unwrap();
    let logged = std::rc::Rc::new(std::cell::Cell::new(0));
    let l2 = logged.clone();
    let imports: Vec<harness::HostFn> = vec![
        Box::new(|v: &mut [spate_tiers::abi::ValRaw]| {
            let sum =
                v[0].get_i32() as f64 + v[1].get_i64() as f64 + f64::from_bits(v[2].get_f64());
            v[0] = ValRaw::f64(sum.to_bits());
        }),
        Box::new(|v: &mut [ValRaw]| {
            let x = v[0].get_i64();
            v[0] = ValRaw::i32((x >> 32) as i32);
            v[1] = ValRaw::i32(x as i32);
        }),
        Box::new(move |v: &mut [ValRaw]| l2.set(v[0].get_i32())),
    ];
    let mut i = Instance::new(module, imports);
    assert_eq!(
        i.call("go", &[ValRaw::i32(5)])[0].get_f64(),
        15.5f64.to_bits()
    );
    assert_eq!(logged.get(), 5);
    assert_eq!(call_i64(&mut i, "split_sum", &[(50 << 32) | 8]) as i32, 42);
}

#[test]
fn values_live_across_the_tier_up_libcalls_survive_them() {
    // Float, vector and integer values live across loops whose headers call the tier-up
    // libcalls at every iteration (budget 0), which the harness makes clobber every register
    // the C convention lets a callee clobber: the calls preserve all registers (Cranelift's
    // `PreserveAll`, through a trampoline), so compiled code may keep values in them.
    let src = r#"(module
      (func (export "f") (param $n i32) (result i32)
        (local $x f64) (local $v v128) (local $i i32) (local $acc i32) (local $k i32)
        (local.set $x (f64.const 1.5))
        (local.set $v (v128.const f64x2 2.0 3.0))
        (loop $l
          (local.set $x (f64.add (local.get $x) (f64.const 0.25)))
          (local.set $v (f64x2.add (local.get $v) (v128.const f64x2 1.0 1.0)))
          (local.set $acc (i32.add (local.get $acc) (local.get $i)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
        ;; A loop entered with a value on the operand stack calls `TierUp`, not `LoopTierUp`.
        i32.const 0
        (loop $m (param i32) (result i32)
          i32.const 1
          i32.add
          (local.set $k (i32.add (local.get $k) (i32.const 1)))
          (br_if $m (i32.lt_u (local.get $k) (i32.const 5))))
        local.get $acc
        i32.add
        local.set $acc
        (i32.trunc_f64_u
          (f64.add (f64.add (local.get $x) (f64x2.extract_lane 0 (local.get $v)))
                   (f64.add (f64x2.extract_lane 1 (local.get $v))
                            (f64.convert_i32_u (local.get $acc)))))))"#;
    // Both allocators: the backtracking one keeps loop values in registers across blocks (the
    // single-pass one keeps them in the frame, so only the first case can catch a clobber).
    for regalloc in [
        RegallocAlgorithm::Backtracking,
        RegallocAlgorithm::SinglePass,
    ] {
        let mut compiler = CraneliftTier::new(CraneliftOptions {
            verify: true,
            regalloc,
            ..CraneliftOptions::default()
        })
        .expect("host supported")
        .compiler();
        let module = harness::compile_with(&mut compiler, &wat(src)).unwrap();
        let mut i = Instance::with_budget(module, Vec::new(), 0);
        i.state.budget_reset = 0;
        // x = 1.5 + 10 * 0.25 = 4, v = (12, 13), acc = 0 + ... + 9 = 45, plus the second loop's
        // value, 1 per pass of its body (five).
        assert_eq!(
            call_i32(&mut i, "f", &[10]),
            4 + 12 + 13 + 45 + 5,
            "{regalloc:?}"
        );
        assert!(
            i.state.loop_tier_ups.len() >= 10,
            "{:?}",
            i.state.loop_tier_ups
        );
        assert!(i.state.tier_ups.len() > i.state.loop_tier_ups.len());
    }
}

#[test]
fn tier_up_libcall_runs_when_budget_goes_negative() {
    let src = r#"(module
      (func (export "leaf") (result i32) (i32.const 1))
      (func (export "spin") (param i32) (result i32) (local i32)
        (loop $l
          (local.set 1 (i32.add (local.get 1) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get 1) (local.get 0))))
        (local.get 1))
    )"#;
    let mut i = Instance::with_budget(compile(&wat(src)).unwrap(), Vec::new(), 3);
    i.state.budget_reset = 1_000_000;
    // Entry checks: budget 3 -> 2, 1, 0, then -1 on the fourth call.
    for _ in 0..3 {
        call_i32(&mut i, "leaf", &[]);
    }
    assert!(i.state.tier_ups.is_empty());
    call_i32(&mut i, "leaf", &[]);
    assert_eq!(i.state.tier_ups, [0]);
    assert_eq!(i.state.budgets[0], 1_000_000);
    for _ in 0..5 {
        call_i32(&mut i, "leaf", &[]);
    }
    assert_eq!(i.state.tier_ups, [0]);
    // The loop header counts too: entry + 10 iterations overrun a budget of 3 once.
    assert_eq!(call_i32(&mut i, "spin", &[10]), 10);
    assert_eq!(i.state.tier_ups, [0, 1]);
    assert_eq!(i.state.budgets[1], 1_000_000 - 7);
}

#[test]
fn loop_tier_up_names_the_outermost_eligible_loop_and_obeys_the_armed_word() {
    // Loop 0 encloses loop 1 (both entered with an empty operand stack) and loop 2 (entered with
    // a value below it, so not eligible for OSR).
    let src = r#"(module
      (func (export "leaf") (result i32) (i32.const 1))
      (func (export "nest") (param i32) (result i32) (local i32 i32 i32)
        (loop $a
          (local.set 2 (i32.const 0))
          (loop $b
            (local.set 3 (i32.add (local.get 3) (local.get 2)))
            (local.set 2 (i32.add (local.get 2) (i32.const 1)))
            (br_if $b (i32.lt_u (local.get 2) (i32.const 4))))
          (local.set 3
            (i32.add (i32.const 1)
              (loop $c (result i32) (i32.const 100))))
          (local.set 1 (i32.add (local.get 1) (i32.const 1)))
          (br_if $a (i32.lt_u (local.get 1) (local.get 0))))
        (local.get 3))
    )"#;
    let mut i = Instance::with_budget(compile(&wat(src)).unwrap(), Vec::new(), 3);
    i.state.budget_reset = 1_000_000;
    // Budgets, OSR-armed words, call counts: three words per function.
    assert_eq!(i.state.budgets.len(), 6);
    assert_eq!(call_i32(&mut i, "leaf", &[]), 1);
    // Budget 3: entry -> 2, header of $a -> 1, $b -> 0, $b -> -1: the inner loop asks, naming
    // $a as its outer loop.
    assert_eq!(call_i32(&mut i, "nest", &[3]), 101);
    assert_eq!(i.state.loop_tier_ups, [(1, 1, 0)]);
    assert_eq!(i.state.tier_ups, [1]);
    // Armed for loop 0 (the word holds the loop index + 1): its header calls at every
    // iteration, whatever the budget; the inner loop does not.
    i.state.loop_tier_ups.clear();
    i.state.budgets[2 + 1] = 1;
    assert_eq!(call_i32(&mut i, "nest", &[3]), 101);
    assert_eq!(i.state.loop_tier_ups, [(1, 0, 0); 3]);
    // Armed for loop 1: the inner header calls at every iteration, the outer one does not.
    i.state.loop_tier_ups.clear();
    i.state.budgets[2 + 1] = 2;
    assert_eq!(call_i32(&mut i, "nest", &[3]), 101);
    assert_eq!(i.state.loop_tier_ups, [(1, 1, 0); 12]);
    // Armed for loop 2, which is not eligible: nothing.
    i.state.loop_tier_ups.clear();
    i.state.budgets[2 + 1] = 3;
    assert_eq!(call_i32(&mut i, "nest", &[3]), 101);
    assert!(i.state.loop_tier_ups.is_empty());
    i.state.budgets[2 + 1] = 0;
    i.state.loop_tier_ups.clear();
    assert_eq!(call_i32(&mut i, "nest", &[3]), 101);
    assert!(i.state.loop_tier_ups.is_empty());
    // The function with OSR loops counted its five calls (the loops' many header checks did
    // not count); the one without loops keeps no count.
    assert_eq!(i.state.budgets[2 * 2 + 1], 5);
    assert_eq!(i.state.budgets[2 * 2], 0);
}

#[test]
fn validation_errors_are_invalid_with_offset() {
    let bytes = wat(r#"(module (func (result i32) (i64.const 0)))"#);
    let err = compile(&bytes).err().expect("invalid body");
    assert_eq!(err.kind, CompileErrorKind::Invalid);
    let expected = wasmparser::Validator::new()
        .validate_all(&bytes)
        .err()
        .unwrap();
    assert_eq!(err.offset, Some(expected.offset() as usize));
    assert!(err.message.contains("type mismatch"), "{}", err.message);

    // An error in the middle of a body, after code was translated.
    let bytes = wat(r#"(module (func (param i32) (result i32)
        (local.get 0) (i32.const 1) (i32.add) (f32.neg)))"#);
    let err = compile(&bytes).err().expect("invalid body");
    let expected = wasmparser::Validator::new()
        .validate_all(&bytes)
        .err()
        .unwrap();
    assert_eq!(err.kind, CompileErrorKind::Invalid);
    assert_eq!(err.offset, Some(expected.offset() as usize));
}

#[test]
fn trap_sites_and_source_locations() {
    let bytes = wat(r#"(module (memory 1)
          (func (param i32 i32) (result i32)
            (i32.load (local.get 0))
            (i32.div_s (local.get 1))
            (if (i32.eqz) (then (unreachable)))
            (i32.trunc_f64_s (f64.const 1))))"#);
    let module = compile(&bytes).unwrap();
    let f = &module.functions[0];
    let traps: Vec<TrapCode> = f.traps.iter().map(|t| t.trap).collect();
    for expected in [
        TrapCode::MemoryOutOfBounds,
        TrapCode::IntegerDivisionByZero,
        TrapCode::IntegerOverflow,
        TrapCode::UnreachableCodeReached,
        TrapCode::BadConversionToInteger,
        TrapCode::StackOverflow,
    ] {
        assert!(
            traps.contains(&expected),
            "{expected:?} missing from {traps:?}"
        );
    }
    assert!(
        f.traps
            .windows(2)
            .all(|w| w[0].code_offset <= w[1].code_offset)
    );
    assert!(!f.srclocs.is_empty());
    assert!(f.srclocs.windows(2).all(|w| w[0].0 <= w[1].0));
    // Every trap site maps to an operator inside the code section.
    for t in &f.traps {
        let off = f.wasm_offset_at(t.code_offset).expect("source location") as usize;
        assert!(off < bytes.len());
    }
    // The load's trap site maps to the `i32.load` operator.
    let load = f
        .traps
        .iter()
        .find(|t| t.trap == TrapCode::MemoryOutOfBounds)
        .unwrap();
    let off = f.wasm_offset_at(load.code_offset).unwrap() as usize;
    assert_eq!(bytes[off], 0x28, "i32.load opcode at the recorded offset");
}

#[test]
fn relaxed_simd_is_unsupported() {
    let bytes = wat(r#"(module (func (param v128 v128) (result v128)
            (f32x4.relaxed_min (local.get 0) (local.get 1))))"#);
    let mut features = wasmparser::WasmFeatures::WASM2;
    features.insert(wasmparser::WasmFeatures::RELAXED_SIMD);
    // Compile through the tier directly with a validator that accepts relaxed SIMD.
    let mut validator = wasmparser::Validator::new_with_features(features);
    let mut compiler = harness::compiler();
    let mut info = spate_tiers::ModuleInfo::default();
    let mut result = None;
    for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
        let payload = payload.unwrap();
        if let wasmparser::Payload::TypeSection(r) = &payload {
            for g in r.clone() {
                for t in g.unwrap().into_types() {
                    info.types.push(t.unwrap_func().clone());
                }
            }
        }
        if let wasmparser::Payload::FunctionSection(r) = &payload {
            info.functions
                .extend(r.clone().into_iter().map(|t| t.unwrap()));
        }
        if let wasmparser::ValidPayload::Func(f, body) = validator.payload(&payload).unwrap() {
            let mut v = f.into_validator(Default::default());
            use spate_tiers::FunctionCompiler;
            result = Some(compiler.compile_function(&info, 0, &body, Some(&mut v)));
        }
    }
    let err = result.unwrap().unwrap_err();
    assert_eq!(err.kind, CompileErrorKind::Unsupported, "{err}");
    assert!(err.offset.is_some());
}

#[test]
fn simd_values_flow_through_locals_blocks_and_calls() {
    let mut i = instance(
        r#"(module (memory 1)
          (func $id (param v128) (result v128) (local.get 0))
          (func (export "go") (param i32 i32) (result i32) (local v128)
            (v128.store (i32.const 32) (i32x4.splat (local.get 0)))
            (local.set 2 (call $id (v128.load (i32.const 32))))
            (block (result v128) (local.get 2))
            (i32x4.splat (local.get 1))
            (i32x4.add)
            (i32x4.extract_lane 3)))"#,
    );
    assert_eq!(call_i32(&mut i, "go", &[40, 2]), 42);
    let r = i.call("go", &[ValRaw::i32(1), ValRaw::i32(1)]);
    assert_eq!(r[0].get_i32(), 2);
}
