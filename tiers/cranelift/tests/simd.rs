//! Compiles the fixed-width SIMD operators with the Cranelift tier, runs them and checks every
//! lane of the results.
//!
//! Most operators are checked table-style: each case is one exported function applying one
//! operator to its parameters, and the expected lanes are computed by a scalar reference
//! implementation over inputs chosen to hit the edge cases (lane minimum and maximum, -1, NaN,
//! signed zeros, shift counts of at least the lane width, ...). Memory accesses are checked
//! against a known memory image. A last test checks that together the cases use every SIMD
//! operator wasmparser knows (relaxed SIMD excluded).

mod harness;

use std::collections::BTreeSet;

use harness::{Instance, compile, wat};
use spate_tiers::abi::ValRaw;

// ---------------------------------------------------------------------------------------------
// Lane conversions (lane 0 in the low bits, as WebAssembly lays out a v128).

/// Packs lanes of `BYTES` bytes each into a v128.
fn pack<const BYTES: usize, const N: usize>(lanes: [[u8; BYTES]; N]) -> u128 {
    let mut bytes = [0u8; 16];
    for (i, lane) in lanes.iter().enumerate() {
        bytes[i * BYTES..(i + 1) * BYTES].copy_from_slice(lane);
    }
    u128::from_le_bytes(bytes)
}

/// Splits a v128 into lanes of `BYTES` bytes each.
fn unpack<const BYTES: usize, const N: usize>(v: u128) -> [[u8; BYTES]; N] {
    let bytes = v.to_le_bytes();
    std::array::from_fn(|i| bytes[i * BYTES..(i + 1) * BYTES].try_into().unwrap())
}

fn i8x16(l: [i8; 16]) -> u128 {
    pack(l.map(i8::to_le_bytes))
}
fn i16x8(l: [i16; 8]) -> u128 {
    pack(l.map(i16::to_le_bytes))
}
fn i32x4(l: [i32; 4]) -> u128 {
    pack(l.map(i32::to_le_bytes))
}
fn i64x2(l: [i64; 2]) -> u128 {
    pack(l.map(i64::to_le_bytes))
}
fn f32x4(l: [f32; 4]) -> u128 {
    pack(l.map(f32::to_le_bytes))
}
fn f64x2(l: [f64; 2]) -> u128 {
    pack(l.map(f64::to_le_bytes))
}
fn lanes_i8(v: u128) -> [i8; 16] {
    unpack(v).map(i8::from_le_bytes)
}
fn lanes_i16(v: u128) -> [i16; 8] {
    unpack(v).map(i16::from_le_bytes)
}
fn lanes_i32(v: u128) -> [i32; 4] {
    unpack(v).map(i32::from_le_bytes)
}
fn lanes_i64(v: u128) -> [i64; 2] {
    unpack(v).map(i64::from_le_bytes)
}
fn lanes_f32(v: u128) -> [f32; 4] {
    unpack(v).map(f32::from_le_bytes)
}
fn lanes_f64(v: u128) -> [f64; 2] {
    unpack(v).map(f64::from_le_bytes)
}

/// All ones when `c` holds, as a comparison result lane.
fn mask<T: From<i8>>(c: bool) -> T {
    T::from(if c { -1 } else { 0 })
}

// ---------------------------------------------------------------------------------------------
// Cases.

/// A wasm value: an argument, or an expected result.
#[derive(Clone, Copy, Debug)]
enum Val {
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
    /// A v128 compared bit for bit.
    V(u128),
    /// A v128 compared as four `f32` lanes: a NaN lane accepts any NaN.
    F32x4([f32; 4]),
    /// A v128 compared as two `f64` lanes: a NaN lane accepts any NaN.
    F64x2([f64; 2]),
}

impl Val {
    fn wasm_type(self) -> &'static str {
        match self {
            Val::I32(_) => "i32",
            Val::I64(_) => "i64",
            Val::F32(_) => "f32",
            Val::F64(_) => "f64",
            Val::V(_) | Val::F32x4(_) | Val::F64x2(_) => "v128",
        }
    }

    fn raw(self) -> ValRaw {
        match self {
            Val::I32(v) => ValRaw::i32(v),
            Val::I64(v) => ValRaw::i64(v),
            Val::F32(v) => ValRaw::f32(v.to_bits()),
            Val::F64(v) => ValRaw::f64(v.to_bits()),
            Val::V(v) => ValRaw::u128(v),
            Val::F32x4(l) => ValRaw::u128(f32x4(l)),
            Val::F64x2(l) => ValRaw::u128(f64x2(l)),
        }
    }

    fn matches(self, got: ValRaw) -> bool {
        let f32_eq = |e: f32, g: f32| (e.is_nan() && g.is_nan()) || e.to_bits() == g.to_bits();
        let f64_eq = |e: f64, g: f64| (e.is_nan() && g.is_nan()) || e.to_bits() == g.to_bits();
        match self {
            Val::I32(v) => got.get_i32() == v,
            Val::I64(v) => got.get_i64() == v,
            Val::F32(v) => f32_eq(v, f32::from_bits(got.get_f32())),
            Val::F64(v) => f64_eq(v, f64::from_bits(got.get_f64())),
            Val::V(v) => got.get_u128() == v,
            Val::F32x4(l) => l
                .iter()
                .zip(lanes_f32(got.get_u128()))
                .all(|(&e, g)| f32_eq(e, g)),
            Val::F64x2(l) => l
                .iter()
                .zip(lanes_f64(got.get_u128()))
                .all(|(&e, g)| f64_eq(e, g)),
        }
    }
}

/// One operator applied to `args`, which must produce `expect`.
struct Case {
    /// The instruction in flat text form, immediates included (`i8x16.extract_lane_s 3`).
    op: String,
    args: Vec<Val>,
    expect: Val,
}

fn case(op: impl Into<String>, args: &[Val], expect: Val) -> Case {
    Case {
        op: op.into(),
        args: args.to_vec(),
        expect,
    }
}

/// A module with one exported function (named after its index) per case.
fn cases_module(cases: &[Case]) -> String {
    let mut text = String::from("(module (memory 1)\n");
    for (i, c) in cases.iter().enumerate() {
        let params: Vec<_> = c.args.iter().map(|a| a.wasm_type()).collect();
        let gets: String = (0..c.args.len())
            .map(|j| format!("local.get {j} "))
            .collect();
        text.push_str(&format!(
            "  (func (export \"{i}\") (param {}) (result {}) {gets}{})\n",
            params.join(" "),
            c.expect.wasm_type(),
            c.op
        ));
    }
    text.push(')');
    text
}

/// Compiles all `cases` as one module, runs each and reports every mismatch.
fn run(cases: &[Case]) {
    let module = compile(&wat(&cases_module(cases))).expect("module compiles");
    let mut inst = Instance::new(module, Vec::new());
    let mut failures = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let args: Vec<ValRaw> = c.args.iter().map(|a| a.raw()).collect();
        let got = inst.call(&i.to_string(), &args)[0];
        if !c.expect.matches(got) {
            failures.push(format!(
                "{}{:?}: expected {:?}, got {got:?}",
                c.op, c.args, c.expect
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Inputs.

const A8: [i8; 16] = [
    0, 1, -1, 127, -128, 100, -100, 5, 64, -64, 2, 3, 126, -127, 50, -2,
];
const B8: [i8; 16] = [
    0, -1, -1, 1, -1, 100, 28, -5, 64, 65, 7, 0, 127, -128, -50, 2,
];
const A16: [i16; 8] = [0, 1, -1, i16::MAX, i16::MIN, 300, -20000, i16::MIN];
const B16: [i16; 8] = [0, -1, -1, 1, -1, 300, 30000, i16::MIN];
const A32: [i32; 4] = [1, -1, i32::MAX, i32::MIN];
const B32: [i32; 4] = [-1, -1, 1, i32::MIN];
const A64: [i64; 2] = [i64::MIN, -5];
const B64: [i64; 2] = [i64::MAX, -5];
const AF32: [f32; 4] = [1.5, -0.0, f32::NAN, f32::NEG_INFINITY];
const BF32: [f32; 4] = [-2.25, 0.0, 1.0, 3.0];
const CF32: [f32; 4] = [2.5, -0.0, 0.0, 1.0];
const DF32: [f32; 4] = [-2.5, 3.5, f32::NAN, 0.0];
const AF64: [f64; 2] = [1.5, -0.0];
const BF64: [f64; 2] = [-2.25, 0.0];
const CF64: [f64; 2] = [f64::NAN, -3.5];
const DF64: [f64; 2] = [1.0, f64::INFINITY];

fn v(x: u128) -> Val {
    Val::V(x)
}

/// Lane-wise binary operator on 8-bit lanes.
fn bin8(op: &str, f: fn(i8, i8) -> i8) -> Case {
    let r = std::array::from_fn(|i| f(A8[i], B8[i]));
    case(op, &[v(i8x16(A8)), v(i8x16(B8))], v(i8x16(r)))
}
/// Lane-wise binary operator on 16-bit lanes.
fn bin16(op: &str, f: fn(i16, i16) -> i16) -> Case {
    let r = std::array::from_fn(|i| f(A16[i], B16[i]));
    case(op, &[v(i16x8(A16)), v(i16x8(B16))], v(i16x8(r)))
}
/// Lane-wise binary operator on 32-bit lanes.
fn bin32(op: &str, f: fn(i32, i32) -> i32) -> Case {
    let r = std::array::from_fn(|i| f(A32[i], B32[i]));
    case(op, &[v(i32x4(A32)), v(i32x4(B32))], v(i32x4(r)))
}
/// Lane-wise binary operator on 64-bit lanes.
fn bin64(op: &str, f: fn(i64, i64) -> i64) -> Case {
    let r = std::array::from_fn(|i| f(A64[i], B64[i]));
    case(op, &[v(i64x2(A64)), v(i64x2(B64))], v(i64x2(r)))
}
/// Lane-wise binary operator on `f32` lanes, over two input pairs.
fn binf32(op: &str, f: fn(f32, f32) -> f32) -> [Case; 2] {
    let r1 = std::array::from_fn(|i| f(AF32[i], BF32[i]));
    let r2 = std::array::from_fn(|i| f(CF32[i], DF32[i]));
    [
        case(op, &[Val::F32x4(AF32), Val::F32x4(BF32)], Val::F32x4(r1)),
        case(op, &[Val::F32x4(CF32), Val::F32x4(DF32)], Val::F32x4(r2)),
    ]
}
/// Lane-wise binary operator on `f64` lanes, over two input pairs.
fn binf64(op: &str, f: fn(f64, f64) -> f64) -> [Case; 2] {
    let r1 = std::array::from_fn(|i| f(AF64[i], BF64[i]));
    let r2 = std::array::from_fn(|i| f(CF64[i], DF64[i]));
    [
        case(op, &[Val::F64x2(AF64), Val::F64x2(BF64)], Val::F64x2(r1)),
        case(op, &[Val::F64x2(CF64), Val::F64x2(DF64)], Val::F64x2(r2)),
    ]
}
/// Lane-wise `f32` comparison.
fn cmpf32(op: &str, f: fn(f32, f32) -> bool) -> [Case; 2] {
    let r1 = std::array::from_fn(|i| mask(f(AF32[i], BF32[i])));
    let r2 = std::array::from_fn(|i| mask(f(CF32[i], DF32[i])));
    [
        case(op, &[Val::F32x4(AF32), Val::F32x4(BF32)], v(i32x4(r1))),
        case(op, &[Val::F32x4(CF32), Val::F32x4(DF32)], v(i32x4(r2))),
    ]
}
/// Lane-wise `f64` comparison.
fn cmpf64(op: &str, f: fn(f64, f64) -> bool) -> [Case; 2] {
    let r1 = std::array::from_fn(|i| mask(f(AF64[i], BF64[i])));
    let r2 = std::array::from_fn(|i| mask(f(CF64[i], DF64[i])));
    [
        case(op, &[Val::F64x2(AF64), Val::F64x2(BF64)], v(i64x2(r1))),
        case(op, &[Val::F64x2(CF64), Val::F64x2(DF64)], v(i64x2(r2))),
    ]
}
/// Lane-wise unary operator on `f32` lanes.
fn unf32(op: &str, input: [f32; 4], f: fn(f32) -> f32) -> Case {
    case(op, &[Val::F32x4(input)], Val::F32x4(input.map(f)))
}
/// Lane-wise unary operator on `f64` lanes.
fn unf64(op: &str, input: [f64; 2], f: fn(f64) -> f64) -> Case {
    case(op, &[Val::F64x2(input)], Val::F64x2(input.map(f)))
}

/// WebAssembly `fmin`: NaN if either operand is NaN, -0 below +0.
fn wasm_min<T: Float>(a: T, b: T) -> T {
    if a.nan() || b.nan() {
        T::NAN
    } else if a.eq_(b) {
        if a.neg_sign() { a } else { b }
    } else if a.lt_(b) {
        a
    } else {
        b
    }
}

/// WebAssembly `fmax`: NaN if either operand is NaN, +0 above -0.
fn wasm_max<T: Float>(a: T, b: T) -> T {
    if a.nan() || b.nan() {
        T::NAN
    } else if a.eq_(b) {
        if a.neg_sign() { b } else { a }
    } else if a.lt_(b) {
        b
    } else {
        a
    }
}

/// The float operations the min/max references need.
trait Float: Copy {
    const NAN: Self;
    fn nan(self) -> bool;
    fn eq_(self, o: Self) -> bool;
    fn lt_(self, o: Self) -> bool;
    fn neg_sign(self) -> bool;
}
impl Float for f32 {
    const NAN: Self = f32::NAN;
    fn nan(self) -> bool {
        self.is_nan()
    }
    fn eq_(self, o: Self) -> bool {
        self == o
    }
    fn lt_(self, o: Self) -> bool {
        self < o
    }
    fn neg_sign(self) -> bool {
        self.is_sign_negative()
    }
}
impl Float for f64 {
    const NAN: Self = f64::NAN;
    fn nan(self) -> bool {
        self.is_nan()
    }
    fn eq_(self, o: Self) -> bool {
        self == o
    }
    fn lt_(self, o: Self) -> bool {
        self < o
    }
    fn neg_sign(self) -> bool {
        self.is_sign_negative()
    }
}

// ---------------------------------------------------------------------------------------------
// The cases, by family.

fn bitwise_and_lane_cases() -> Vec<Case> {
    let a = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210u128;
    let b = 0xffff_0000_f0f0_0f0f_3333_cccc_5555_aaaau128;
    let c = 0x00ff_ff00_0f0f_f0f0_ffff_0000_0000_ffffu128;
    let seq = i8x16(std::array::from_fn(|i| i as i8));
    let seq2 = i8x16(std::array::from_fn(|i| 16 + i as i8));
    let mut cases = vec![
        case("v128.not", &[v(a)], v(!a)),
        case("v128.and", &[v(a), v(b)], v(a & b)),
        case("v128.andnot", &[v(a), v(b)], v(a & !b)),
        case("v128.or", &[v(a), v(b)], v(a | b)),
        case("v128.xor", &[v(a), v(b)], v(a ^ b)),
        case("v128.bitselect", &[v(a), v(b), v(c)], v((a & c) | (b & !c))),
        case("v128.any_true", &[v(0)], Val::I32(0)),
        case("v128.any_true", &[v(1 << 100)], Val::I32(1)),
        case(
            "drop v128.const i32x4 1 -2 0x7fffffff 4",
            &[v(0)],
            v(i32x4([1, -2, i32::MAX, 4])),
        ),
        case(
            "i8x16.shuffle 0 17 2 19 4 21 6 23 31 30 29 28 3 3 16 0",
            &[v(seq), v(seq2)],
            v(i8x16([
                0, 17, 2, 19, 4, 21, 6, 23, 31, 30, 29, 28, 3, 3, 16, 0,
            ])),
        ),
        case(
            "i8x16.swizzle",
            &[
                v(seq2),
                v(i8x16([
                    15, 0, 16, -1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
                ])),
            ],
            v(i8x16([
                31, 16, 0, 0, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28,
            ])),
        ),
        case("i8x16.splat", &[Val::I32(0x1ff)], v(i8x16([-1; 16]))),
        case("i16x8.splat", &[Val::I32(0x12345)], v(i16x8([0x2345; 8]))),
        case("i32x4.splat", &[Val::I32(-7)], v(i32x4([-7; 4]))),
        case(
            "i64x2.splat",
            &[Val::I64(i64::MIN)],
            v(i64x2([i64::MIN; 2])),
        ),
        case("f32x4.splat", &[Val::F32(-1.5)], Val::F32x4([-1.5; 4])),
        case(
            "f64x2.splat",
            &[Val::F64(f64::NAN)],
            Val::F64x2([f64::NAN; 2]),
        ),
        case("i8x16.extract_lane_s 4", &[v(i8x16(A8))], Val::I32(-128)),
        case("i8x16.extract_lane_u 4", &[v(i8x16(A8))], Val::I32(128)),
        case("i8x16.extract_lane_u 15", &[v(i8x16(A8))], Val::I32(254)),
        case("i16x8.extract_lane_s 7", &[v(i16x8(A16))], Val::I32(-32768)),
        case("i16x8.extract_lane_u 6", &[v(i16x8(A16))], Val::I32(45536)),
        case("i32x4.extract_lane 3", &[v(i32x4(A32))], Val::I32(i32::MIN)),
        case("i64x2.extract_lane 1", &[v(i64x2(A64))], Val::I64(-5)),
        case(
            "f32x4.extract_lane 3",
            &[Val::F32x4(AF32)],
            Val::F32(f32::NEG_INFINITY),
        ),
        case("f64x2.extract_lane 1", &[Val::F64x2(AF64)], Val::F64(-0.0)),
        case(
            "i8x16.replace_lane 15",
            &[v(0), Val::I32(0x1234)],
            v(0x34 << 120),
        ),
        case(
            "i16x8.replace_lane 1",
            &[v(0), Val::I32(-1)],
            v(0xffff << 16),
        ),
        case(
            "i32x4.replace_lane 2",
            &[v(0), Val::I32(-2)],
            v(i32x4([0, 0, -2, 0])),
        ),
        case(
            "i64x2.replace_lane 0",
            &[v(!0), Val::I64(5)],
            v(i64x2([5, -1])),
        ),
        case(
            "f32x4.replace_lane 1",
            &[Val::F32x4(AF32), Val::F32(7.0)],
            Val::F32x4([1.5, 7.0, f32::NAN, f32::NEG_INFINITY]),
        ),
        case(
            "f64x2.replace_lane 1",
            &[Val::F64x2(AF64), Val::F64(7.0)],
            Val::F64x2([1.5, 7.0]),
        ),
    ];
    // all_true and bitmask over a vector with and without a zero lane.
    let some_zero = i8x16(A8);
    let no_zero = i8x16(A8.map(|x| x | 1));
    cases.extend([
        case("i8x16.all_true", &[v(some_zero)], Val::I32(0)),
        case("i8x16.all_true", &[v(no_zero)], Val::I32(1)),
        case(
            "i16x8.all_true",
            &[v(i16x8([1, 2, 3, 4, 5, 6, 7, 0x100]))],
            Val::I32(1),
        ),
        case(
            "i16x8.all_true",
            &[v(i16x8([1, 2, 3, 4, 5, 6, 7, 0]))],
            Val::I32(0),
        ),
        case(
            "i32x4.all_true",
            &[v(i32x4([1, 1 << 31, 3, 4]))],
            Val::I32(1),
        ),
        case("i32x4.all_true", &[v(i32x4([1, 0, 3, 4]))], Val::I32(0)),
        case("i64x2.all_true", &[v(i64x2([1 << 40, 1]))], Val::I32(1)),
        case("i64x2.all_true", &[v(i64x2([1 << 40, 0]))], Val::I32(0)),
        case(
            "i8x16.bitmask",
            &[v(some_zero)],
            Val::I32(0b1010_0010_0101_0100),
        ),
        case("i16x8.bitmask", &[v(i16x8(A16))], Val::I32(0b1101_0100)),
        case("i32x4.bitmask", &[v(i32x4(A32))], Val::I32(0b1010)),
        case("i64x2.bitmask", &[v(i64x2(A64))], Val::I32(0b11)),
    ]);
    cases
}

fn integer_cases() -> Vec<Case> {
    let mut cases = vec![
        bin8("i8x16.add", i8::wrapping_add),
        bin8("i8x16.sub", i8::wrapping_sub),
        bin8("i8x16.add_sat_s", i8::saturating_add),
        bin8("i8x16.add_sat_u", |a, b| {
            (a as u8).saturating_add(b as u8) as i8
        }),
        bin8("i8x16.sub_sat_s", i8::saturating_sub),
        bin8("i8x16.sub_sat_u", |a, b| {
            (a as u8).saturating_sub(b as u8) as i8
        }),
        bin8("i8x16.min_s", i8::min),
        bin8("i8x16.min_u", |a, b| (a as u8).min(b as u8) as i8),
        bin8("i8x16.max_s", i8::max),
        bin8("i8x16.max_u", |a, b| (a as u8).max(b as u8) as i8),
        bin8("i8x16.avgr_u", |a, b| {
            (a as u8 as u16 + b as u8 as u16).div_ceil(2) as i8
        }),
        bin8("i8x16.eq", |a, b| mask(a == b)),
        bin8("i8x16.ne", |a, b| mask(a != b)),
        bin8("i8x16.lt_s", |a, b| mask(a < b)),
        bin8("i8x16.lt_u", |a, b| mask((a as u8) < (b as u8))),
        bin8("i8x16.gt_s", |a, b| mask(a > b)),
        bin8("i8x16.gt_u", |a, b| mask(a as u8 > b as u8)),
        bin8("i8x16.le_s", |a, b| mask(a <= b)),
        bin8("i8x16.le_u", |a, b| mask(a as u8 <= b as u8)),
        bin8("i8x16.ge_s", |a, b| mask(a >= b)),
        bin8("i8x16.ge_u", |a, b| mask(a as u8 >= b as u8)),
        bin16("i16x8.add", i16::wrapping_add),
        bin16("i16x8.sub", i16::wrapping_sub),
        bin16("i16x8.mul", i16::wrapping_mul),
        bin16("i16x8.add_sat_s", i16::saturating_add),
        bin16("i16x8.add_sat_u", |a, b| {
            (a as u16).saturating_add(b as u16) as i16
        }),
        bin16("i16x8.sub_sat_s", i16::saturating_sub),
        bin16("i16x8.sub_sat_u", |a, b| {
            (a as u16).saturating_sub(b as u16) as i16
        }),
        bin16("i16x8.min_s", i16::min),
        bin16("i16x8.min_u", |a, b| (a as u16).min(b as u16) as i16),
        bin16("i16x8.max_s", i16::max),
        bin16("i16x8.max_u", |a, b| (a as u16).max(b as u16) as i16),
        bin16("i16x8.avgr_u", |a, b| {
            (a as u16 as u32 + b as u16 as u32).div_ceil(2) as i16
        }),
        bin16("i16x8.q15mulr_sat_s", |a, b| {
            ((a as i32 * b as i32 + 0x4000) >> 15).clamp(-0x8000, 0x7fff) as i16
        }),
        bin16("i16x8.eq", |a, b| mask(a == b)),
        bin16("i16x8.ne", |a, b| mask(a != b)),
        bin16("i16x8.lt_s", |a, b| mask(a < b)),
        bin16("i16x8.lt_u", |a, b| mask((a as u16) < (b as u16))),
        bin16("i16x8.gt_s", |a, b| mask(a > b)),
        bin16("i16x8.gt_u", |a, b| mask(a as u16 > b as u16)),
        bin16("i16x8.le_s", |a, b| mask(a <= b)),
        bin16("i16x8.le_u", |a, b| mask(a as u16 <= b as u16)),
        bin16("i16x8.ge_s", |a, b| mask(a >= b)),
        bin16("i16x8.ge_u", |a, b| mask(a as u16 >= b as u16)),
        bin32("i32x4.add", i32::wrapping_add),
        bin32("i32x4.sub", i32::wrapping_sub),
        bin32("i32x4.mul", i32::wrapping_mul),
        bin32("i32x4.min_s", i32::min),
        bin32("i32x4.min_u", |a, b| (a as u32).min(b as u32) as i32),
        bin32("i32x4.max_s", i32::max),
        bin32("i32x4.max_u", |a, b| (a as u32).max(b as u32) as i32),
        bin32("i32x4.eq", |a, b| mask(a == b)),
        bin32("i32x4.ne", |a, b| mask(a != b)),
        bin32("i32x4.lt_s", |a, b| mask(a < b)),
        bin32("i32x4.lt_u", |a, b| mask((a as u32) < (b as u32))),
        bin32("i32x4.gt_s", |a, b| mask(a > b)),
        bin32("i32x4.gt_u", |a, b| mask(a as u32 > b as u32)),
        bin32("i32x4.le_s", |a, b| mask(a <= b)),
        bin32("i32x4.le_u", |a, b| mask(a as u32 <= b as u32)),
        bin32("i32x4.ge_s", |a, b| mask(a >= b)),
        bin32("i32x4.ge_u", |a, b| mask(a as u32 >= b as u32)),
        bin64("i64x2.add", i64::wrapping_add),
        bin64("i64x2.sub", i64::wrapping_sub),
        bin64("i64x2.mul", i64::wrapping_mul),
        case(
            "i64x2.mul",
            &[
                v(i64x2([0x1_0000_0003, -3])),
                v(i64x2([0x7_0000_0005, 0x1234_5678_9abc])),
            ],
            v(i64x2([
                0x1_0000_0003i64.wrapping_mul(0x7_0000_0005),
                -3 * 0x1234_5678_9abc,
            ])),
        ),
        bin64("i64x2.eq", |a, b| mask(a == b)),
        bin64("i64x2.ne", |a, b| mask(a != b)),
        bin64("i64x2.lt_s", |a, b| mask(a < b)),
        bin64("i64x2.gt_s", |a, b| mask(a > b)),
        bin64("i64x2.le_s", |a, b| mask(a <= b)),
        bin64("i64x2.ge_s", |a, b| mask(a >= b)),
        case(
            "i8x16.abs",
            &[v(i8x16(A8))],
            v(i8x16(A8.map(i8::wrapping_abs))),
        ),
        case(
            "i8x16.neg",
            &[v(i8x16(A8))],
            v(i8x16(A8.map(i8::wrapping_neg))),
        ),
        case(
            "i8x16.popcnt",
            &[v(i8x16(A8))],
            v(i8x16(A8.map(|x| x.count_ones() as i8))),
        ),
        case(
            "i16x8.abs",
            &[v(i16x8(A16))],
            v(i16x8(A16.map(i16::wrapping_abs))),
        ),
        case(
            "i16x8.neg",
            &[v(i16x8(A16))],
            v(i16x8(A16.map(i16::wrapping_neg))),
        ),
        case(
            "i32x4.abs",
            &[v(i32x4(A32))],
            v(i32x4(A32.map(i32::wrapping_abs))),
        ),
        case(
            "i32x4.neg",
            &[v(i32x4(A32))],
            v(i32x4(A32.map(i32::wrapping_neg))),
        ),
        case(
            "i64x2.abs",
            &[v(i64x2(A64))],
            v(i64x2(A64.map(i64::wrapping_abs))),
        ),
        case(
            "i64x2.neg",
            &[v(i64x2(A64))],
            v(i64x2(A64.map(i64::wrapping_neg))),
        ),
    ];

    // Shifts, with counts at and beyond the lane width (taken modulo the width) and negative.
    for count in [0, 1, 7, 9, 15, 17, 31, 33, 63, 65, -1] {
        let n = count as u32;
        let s = |op: &str| (op.to_string(), Val::I32(count));
        let (op, c) = s("i8x16.shl");
        cases.push(case(
            op,
            &[v(i8x16(A8)), c],
            v(i8x16(A8.map(|x| x.wrapping_shl(n)))),
        ));
        let (op, c) = s("i8x16.shr_s");
        cases.push(case(
            op,
            &[v(i8x16(A8)), c],
            v(i8x16(A8.map(|x| x.wrapping_shr(n)))),
        ));
        let (op, c) = s("i8x16.shr_u");
        let r = A8.map(|x| (x as u8).wrapping_shr(n) as i8);
        cases.push(case(op, &[v(i8x16(A8)), c], v(i8x16(r))));
        let (op, c) = s("i16x8.shl");
        cases.push(case(
            op,
            &[v(i16x8(A16)), c],
            v(i16x8(A16.map(|x| x.wrapping_shl(n)))),
        ));
        let (op, c) = s("i16x8.shr_s");
        cases.push(case(
            op,
            &[v(i16x8(A16)), c],
            v(i16x8(A16.map(|x| x.wrapping_shr(n)))),
        ));
        let (op, c) = s("i16x8.shr_u");
        let r = A16.map(|x| (x as u16).wrapping_shr(n) as i16);
        cases.push(case(op, &[v(i16x8(A16)), c], v(i16x8(r))));
        let (op, c) = s("i32x4.shl");
        cases.push(case(
            op,
            &[v(i32x4(A32)), c],
            v(i32x4(A32.map(|x| x.wrapping_shl(n)))),
        ));
        let (op, c) = s("i32x4.shr_s");
        cases.push(case(
            op,
            &[v(i32x4(A32)), c],
            v(i32x4(A32.map(|x| x.wrapping_shr(n)))),
        ));
        let (op, c) = s("i32x4.shr_u");
        let r = A32.map(|x| (x as u32).wrapping_shr(n) as i32);
        cases.push(case(op, &[v(i32x4(A32)), c], v(i32x4(r))));
        let (op, c) = s("i64x2.shl");
        cases.push(case(
            op,
            &[v(i64x2(A64)), c],
            v(i64x2(A64.map(|x| x.wrapping_shl(n)))),
        ));
        let (op, c) = s("i64x2.shr_s");
        cases.push(case(
            op,
            &[v(i64x2(A64)), c],
            v(i64x2(A64.map(|x| x.wrapping_shr(n)))),
        ));
        let (op, c) = s("i64x2.shr_u");
        let r = A64.map(|x| (x as u64).wrapping_shr(n) as i64);
        cases.push(case(op, &[v(i64x2(A64)), c], v(i64x2(r))));
    }
    cases
}

fn widening_and_narrowing_cases() -> Vec<Case> {
    let (a8, b8, a16, b16, a32, b32) = (A8, B8, A16, B16, A32, B32);
    let sx8 = |lo: usize| -> [i16; 8] { std::array::from_fn(|i| a8[lo + i] as i16) };
    let zx8 = |lo: usize| -> [i16; 8] { std::array::from_fn(|i| a8[lo + i] as u8 as i16) };
    let sx16 = |lo: usize| -> [i32; 4] { std::array::from_fn(|i| a16[lo + i] as i32) };
    let zx16 = |lo: usize| -> [i32; 4] { std::array::from_fn(|i| a16[lo + i] as u16 as i32) };
    let sx32 = |lo: usize| -> [i64; 2] { std::array::from_fn(|i| a32[lo + i] as i64) };
    let zx32 = |lo: usize| -> [i64; 2] { std::array::from_fn(|i| a32[lo + i] as u32 as i64) };
    let mul8s =
        |lo: usize| -> [i16; 8] { std::array::from_fn(|i| a8[lo + i] as i16 * b8[lo + i] as i16) };
    let mul8u = |lo: usize| -> [i16; 8] {
        std::array::from_fn(|i| (a8[lo + i] as u8 as u16 * b8[lo + i] as u8 as u16) as i16)
    };
    let mul16s = |lo: usize| -> [i32; 4] {
        std::array::from_fn(|i| a16[lo + i] as i32 * b16[lo + i] as i32)
    };
    let mul16u = |lo: usize| -> [i32; 4] {
        std::array::from_fn(|i| (a16[lo + i] as u16 as u32 * b16[lo + i] as u16 as u32) as i32)
    };
    let mul32s = |lo: usize| -> [i64; 2] {
        std::array::from_fn(|i| a32[lo + i] as i64 * b32[lo + i] as i64)
    };
    let mul32u = |lo: usize| -> [i64; 2] {
        std::array::from_fn(|i| (a32[lo + i] as u32 as u64 * b32[lo + i] as u32 as u64) as i64)
    };
    let (va8, vb8) = (v(i8x16(a8)), v(i8x16(b8)));
    let (va16, vb16) = (v(i16x8(a16)), v(i16x8(b16)));
    let (va32, vb32) = (v(i32x4(a32)), v(i32x4(b32)));
    let narrow_in_a = [0, 127, 128, -128, -129, 255, 256, -1];
    let narrow_in_b = [i16::MAX, i16::MIN, 1, -1, 300, -300, 200, 100];
    let narrow = |f: fn(i16) -> i8| -> [i8; 16] {
        std::array::from_fn(|i| {
            f(if i < 8 {
                narrow_in_a[i]
            } else {
                narrow_in_b[i - 8]
            })
        })
    };
    let narrow32_in_a = [0, 32767, 32768, -32769];
    let narrow32_in_b = [i32::MAX, i32::MIN, 65535, 65536];
    let narrow32 = |f: fn(i32) -> i16| -> [i16; 8] {
        std::array::from_fn(|i| {
            f(if i < 4 {
                narrow32_in_a[i]
            } else {
                narrow32_in_b[i - 4]
            })
        })
    };
    vec![
        case("i16x8.extend_low_i8x16_s", &[va8], v(i16x8(sx8(0)))),
        case("i16x8.extend_high_i8x16_s", &[va8], v(i16x8(sx8(8)))),
        case("i16x8.extend_low_i8x16_u", &[va8], v(i16x8(zx8(0)))),
        case("i16x8.extend_high_i8x16_u", &[va8], v(i16x8(zx8(8)))),
        case("i32x4.extend_low_i16x8_s", &[va16], v(i32x4(sx16(0)))),
        case("i32x4.extend_high_i16x8_s", &[va16], v(i32x4(sx16(4)))),
        case("i32x4.extend_low_i16x8_u", &[va16], v(i32x4(zx16(0)))),
        case("i32x4.extend_high_i16x8_u", &[va16], v(i32x4(zx16(4)))),
        case("i64x2.extend_low_i32x4_s", &[va32], v(i64x2(sx32(0)))),
        case("i64x2.extend_high_i32x4_s", &[va32], v(i64x2(sx32(2)))),
        case("i64x2.extend_low_i32x4_u", &[va32], v(i64x2(zx32(0)))),
        case("i64x2.extend_high_i32x4_u", &[va32], v(i64x2(zx32(2)))),
        case("i16x8.extmul_low_i8x16_s", &[va8, vb8], v(i16x8(mul8s(0)))),
        case("i16x8.extmul_high_i8x16_s", &[va8, vb8], v(i16x8(mul8s(8)))),
        case("i16x8.extmul_low_i8x16_u", &[va8, vb8], v(i16x8(mul8u(0)))),
        case("i16x8.extmul_high_i8x16_u", &[va8, vb8], v(i16x8(mul8u(8)))),
        case(
            "i32x4.extmul_low_i16x8_s",
            &[va16, vb16],
            v(i32x4(mul16s(0))),
        ),
        case(
            "i32x4.extmul_high_i16x8_s",
            &[va16, vb16],
            v(i32x4(mul16s(4))),
        ),
        case(
            "i32x4.extmul_low_i16x8_u",
            &[va16, vb16],
            v(i32x4(mul16u(0))),
        ),
        case(
            "i32x4.extmul_high_i16x8_u",
            &[va16, vb16],
            v(i32x4(mul16u(4))),
        ),
        case(
            "i64x2.extmul_low_i32x4_s",
            &[va32, vb32],
            v(i64x2(mul32s(0))),
        ),
        case(
            "i64x2.extmul_high_i32x4_s",
            &[va32, vb32],
            v(i64x2(mul32s(2))),
        ),
        case(
            "i64x2.extmul_low_i32x4_u",
            &[va32, vb32],
            v(i64x2(mul32u(0))),
        ),
        case(
            "i64x2.extmul_high_i32x4_u",
            &[va32, vb32],
            v(i64x2(mul32u(2))),
        ),
        case(
            "i16x8.extadd_pairwise_i8x16_s",
            &[va8],
            v(i16x8(std::array::from_fn(|i| {
                a8[2 * i] as i16 + a8[2 * i + 1] as i16
            }))),
        ),
        case(
            "i16x8.extadd_pairwise_i8x16_u",
            &[va8],
            v(i16x8(std::array::from_fn(|i| {
                a8[2 * i] as u8 as i16 + a8[2 * i + 1] as u8 as i16
            }))),
        ),
        case(
            "i32x4.extadd_pairwise_i16x8_s",
            &[va16],
            v(i32x4(std::array::from_fn(|i| {
                a16[2 * i] as i32 + a16[2 * i + 1] as i32
            }))),
        ),
        case(
            "i32x4.extadd_pairwise_i16x8_u",
            &[va16],
            v(i32x4(std::array::from_fn(|i| {
                a16[2 * i] as u16 as i32 + a16[2 * i + 1] as u16 as i32
            }))),
        ),
        case(
            "i32x4.dot_i16x8_s",
            &[va16, vb16],
            v(i32x4(std::array::from_fn(|i| {
                (a16[2 * i] as i32 * b16[2 * i] as i32)
                    .wrapping_add(a16[2 * i + 1] as i32 * b16[2 * i + 1] as i32)
            }))),
        ),
        case(
            "i8x16.narrow_i16x8_s",
            &[v(i16x8(narrow_in_a)), v(i16x8(narrow_in_b))],
            v(i8x16(narrow(|x| x.clamp(-128, 127) as i8))),
        ),
        case(
            "i8x16.narrow_i16x8_u",
            &[v(i16x8(narrow_in_a)), v(i16x8(narrow_in_b))],
            v(i8x16(narrow(|x| x.clamp(0, 255) as u8 as i8))),
        ),
        case(
            "i16x8.narrow_i32x4_s",
            &[v(i32x4(narrow32_in_a)), v(i32x4(narrow32_in_b))],
            v(i16x8(narrow32(|x| x.clamp(-32768, 32767) as i16))),
        ),
        case(
            "i16x8.narrow_i32x4_u",
            &[v(i32x4(narrow32_in_a)), v(i32x4(narrow32_in_b))],
            v(i16x8(narrow32(|x| x.clamp(0, 65535) as u16 as i16))),
        ),
    ]
}

fn float_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    cases.extend(binf32("f32x4.add", |a, b| a + b));
    cases.extend(binf32("f32x4.sub", |a, b| a - b));
    cases.extend(binf32("f32x4.mul", |a, b| a * b));
    cases.extend(binf32("f32x4.div", |a, b| a / b));
    cases.extend(binf32("f32x4.min", wasm_min));
    cases.extend(binf32("f32x4.max", wasm_max));
    cases.extend(binf32("f32x4.pmin", |a, b| if b < a { b } else { a }));
    cases.extend(binf32("f32x4.pmax", |a, b| if a < b { b } else { a }));
    cases.extend(binf64("f64x2.add", |a, b| a + b));
    cases.extend(binf64("f64x2.sub", |a, b| a - b));
    cases.extend(binf64("f64x2.mul", |a, b| a * b));
    cases.extend(binf64("f64x2.div", |a, b| a / b));
    cases.extend(binf64("f64x2.min", wasm_min));
    cases.extend(binf64("f64x2.max", wasm_max));
    cases.extend(binf64("f64x2.pmin", |a, b| if b < a { b } else { a }));
    cases.extend(binf64("f64x2.pmax", |a, b| if a < b { b } else { a }));
    cases.extend(cmpf32("f32x4.eq", |a, b| a == b));
    cases.extend(cmpf32("f32x4.ne", |a, b| a != b));
    cases.extend(cmpf32("f32x4.lt", |a, b| a < b));
    cases.extend(cmpf32("f32x4.gt", |a, b| a > b));
    cases.extend(cmpf32("f32x4.le", |a, b| a <= b));
    cases.extend(cmpf32("f32x4.ge", |a, b| a >= b));
    cases.extend(cmpf64("f64x2.eq", |a, b| a == b));
    cases.extend(cmpf64("f64x2.ne", |a, b| a != b));
    cases.extend(cmpf64("f64x2.lt", |a, b| a < b));
    cases.extend(cmpf64("f64x2.gt", |a, b| a > b));
    cases.extend(cmpf64("f64x2.le", |a, b| a <= b));
    cases.extend(cmpf64("f64x2.ge", |a, b| a >= b));

    let r32 = [2.5, -3.5, -0.4, 0.5];
    let r64a = [2.5, -0.5];
    let r64b = [3.5, -1e300];
    cases.extend([
        unf32("f32x4.abs", AF32, f32::abs),
        unf32("f32x4.neg", AF32, |x| -x),
        unf32("f32x4.sqrt", [4.0, -0.0, -1.0, 2.0], f32::sqrt),
        unf32("f32x4.ceil", r32, f32::ceil),
        unf32("f32x4.floor", r32, f32::floor),
        unf32("f32x4.trunc", r32, f32::trunc),
        unf32("f32x4.nearest", r32, f32::round_ties_even),
        unf64("f64x2.abs", CF64, f64::abs),
        unf64("f64x2.neg", AF64, |x| -x),
        unf64("f64x2.sqrt", [2.0, f64::INFINITY], f64::sqrt),
        unf64("f64x2.ceil", r64a, f64::ceil),
        unf64("f64x2.floor", r64a, f64::floor),
        unf64("f64x2.trunc", r64a, f64::trunc),
        unf64("f64x2.nearest", r64a, f64::round_ties_even),
        unf64("f64x2.nearest", r64b, f64::round_ties_even),
    ]);

    // Conversions. Rust's `as` saturates and maps NaN to 0 like `trunc_sat`, and rounds to
    // nearest-even like `convert` and `demote`.
    let to_int = [f32::NAN, -1e10, 1e10, -2.9];
    let to_uint = [f32::NAN, -1.0, 4294967040.0, 3e9];
    let f64_to_int = [f64::NAN, -1e10];
    let f64_to_int2 = [2147483647.9, -2.9];
    let f64_to_uint = [4294967295.9, -0.9];
    let ints = [i32::MIN, -1, 16777217, i32::MAX];
    cases.extend([
        case(
            "i32x4.trunc_sat_f32x4_s",
            &[Val::F32x4(to_int)],
            v(i32x4(to_int.map(|x| x as i32))),
        ),
        case(
            "i32x4.trunc_sat_f32x4_u",
            &[Val::F32x4(to_uint)],
            v(i32x4(to_uint.map(|x| x as u32 as i32))),
        ),
        case(
            "i32x4.trunc_sat_f64x2_s_zero",
            &[Val::F64x2(f64_to_int)],
            v(i32x4([0, i32::MIN, 0, 0])),
        ),
        case(
            "i32x4.trunc_sat_f64x2_s_zero",
            &[Val::F64x2(f64_to_int2)],
            v(i32x4([i32::MAX, -2, 0, 0])),
        ),
        case(
            "i32x4.trunc_sat_f64x2_u_zero",
            &[Val::F64x2(f64_to_int)],
            v(i32x4([0; 4])),
        ),
        case(
            "i32x4.trunc_sat_f64x2_u_zero",
            &[Val::F64x2(f64_to_uint)],
            v(i32x4([-1, 0, 0, 0])),
        ),
        case(
            "f32x4.convert_i32x4_s",
            &[v(i32x4(ints))],
            Val::F32x4(ints.map(|x| x as f32)),
        ),
        case(
            "f32x4.convert_i32x4_u",
            &[v(i32x4(ints))],
            Val::F32x4(ints.map(|x| x as u32 as f32)),
        ),
        case(
            "f64x2.convert_low_i32x4_s",
            &[v(i32x4(ints))],
            Val::F64x2([i32::MIN as f64, -1.0]),
        ),
        case(
            "f64x2.convert_low_i32x4_u",
            &[v(i32x4(ints))],
            Val::F64x2([2147483648.0, 4294967295.0]),
        ),
        case(
            "f32x4.demote_f64x2_zero",
            &[Val::F64x2([1.0 + f64::EPSILON, -1e300])],
            Val::F32x4([1.0, f32::NEG_INFINITY, 0.0, 0.0]),
        ),
        case(
            "f64x2.promote_low_f32x4",
            &[Val::F32x4([1.5, f32::MIN_POSITIVE, 7.0, 8.0])],
            Val::F64x2([1.5, f32::MIN_POSITIVE as f64]),
        ),
    ]);
    cases
}

#[test]
fn bitwise_permutations_and_lanes() {
    run(&bitwise_and_lane_cases());
}

#[test]
fn integer_arithmetic_comparisons_and_shifts() {
    run(&integer_cases());
}

#[test]
fn widening_narrowing_and_dot_products() {
    run(&widening_and_narrowing_cases());
}

#[test]
fn float_arithmetic_comparisons_and_conversions() {
    run(&float_cases());
}

// ---------------------------------------------------------------------------------------------
// Memory accesses.

/// Functions over a memory whose byte `i` is `i` (for the first 256 bytes), with accesses at
/// unaligned addresses and with static offsets.
const MEMORY_MODULE: &str = r#"(module
  (memory 1)
  (data (i32.const 0) "\00\01\02\03\04\05\06\07\08\09\0a\0b\0c\0d\0e\0f\10\11\12\13\14\15\16\17\18\19\1a\1b\1c\1d\1e\1f\80\81\82\83\84\85\86\87\88\89\8a\8b\8c\8d\8e\8f\f0\f1\f2\f3\f4\f5\f6\f7\f8\f9\fa\fb\fc\fd\fe\ff")
  (func (export "load") (param i32) (result v128) (v128.load offset=1 align=1 (local.get 0)))
  (func (export "load8x8_s") (param i32) (result v128) (v128.load8x8_s offset=32 (local.get 0)))
  (func (export "load8x8_u") (param i32) (result v128) (v128.load8x8_u offset=32 (local.get 0)))
  (func (export "load16x4_s") (param i32) (result v128) (v128.load16x4_s (local.get 0)))
  (func (export "load16x4_u") (param i32) (result v128) (v128.load16x4_u (local.get 0)))
  (func (export "load32x2_s") (param i32) (result v128) (v128.load32x2_s (local.get 0)))
  (func (export "load32x2_u") (param i32) (result v128) (v128.load32x2_u (local.get 0)))
  (func (export "load8_splat") (param i32) (result v128) (v128.load8_splat offset=2 (local.get 0)))
  (func (export "load16_splat") (param i32) (result v128) (v128.load16_splat (local.get 0)))
  (func (export "load32_splat") (param i32) (result v128) (v128.load32_splat (local.get 0)))
  (func (export "load64_splat") (param i32) (result v128) (v128.load64_splat (local.get 0)))
  (func (export "load32_zero") (param i32) (result v128) (v128.load32_zero (local.get 0)))
  (func (export "load64_zero") (param i32) (result v128) (v128.load64_zero offset=3 (local.get 0)))
  (func (export "load8_lane") (param i32 v128) (result v128)
    (v128.load8_lane 15 (local.get 0) (local.get 1)))
  (func (export "load16_lane") (param i32 v128) (result v128)
    (v128.load16_lane offset=1 3 (local.get 0) (local.get 1)))
  (func (export "load32_lane") (param i32 v128) (result v128)
    (v128.load32_lane 0 (local.get 0) (local.get 1)))
  (func (export "load64_lane") (param i32 v128) (result v128)
    (v128.load64_lane 1 (local.get 0) (local.get 1)))
  (func (export "store") (param i32 v128) (v128.store offset=7 (local.get 0) (local.get 1)))
  (func (export "store8_lane") (param i32 v128) (v128.store8_lane 9 (local.get 0) (local.get 1)))
  (func (export "store16_lane") (param i32 v128)
    (v128.store16_lane offset=2 7 (local.get 0) (local.get 1)))
  (func (export "store32_lane") (param i32 v128) (v128.store32_lane 2 (local.get 0) (local.get 1)))
  (func (export "store64_lane") (param i32 v128) (v128.store64_lane 1 (local.get 0) (local.get 1)))
)"#;

/// The first 64 bytes of [`MEMORY_MODULE`]'s memory.
fn memory_image() -> [u8; 64] {
    std::array::from_fn(|i| match i {
        0..32 => i as u8,
        32..48 => 0x80 + (i - 32) as u8,
        _ => 0xf0 + (i - 48) as u8,
    })
}

/// 16 bytes of the memory image from `at`, as a v128.
fn mem_v128(at: usize) -> u128 {
    u128::from_le_bytes(memory_image()[at..at + 16].try_into().unwrap())
}

#[test]
fn memory_access() {
    let mut inst = Instance::new(compile(&wat(MEMORY_MODULE)).expect("compiles"), Vec::new());
    let load = |inst: &mut Instance, name: &str, addr: i32| {
        inst.call(name, &[ValRaw::i32(addr)])[0].get_u128()
    };
    let m = memory_image();
    let le16 = |at: usize| i16::from_le_bytes([m[at], m[at + 1]]);
    let le32 = |at: usize| i32::from_le_bytes(m[at..at + 4].try_into().unwrap());
    let le64 = |at: usize| i64::from_le_bytes(m[at..at + 8].try_into().unwrap());

    assert_eq!(load(&mut inst, "load", 2), mem_v128(3));
    let b: [i8; 8] = std::array::from_fn(|i| m[41 + i] as i8);
    assert_eq!(load(&mut inst, "load8x8_s", 9), i16x8(b.map(i16::from)));
    assert_eq!(
        load(&mut inst, "load8x8_u", 9),
        i16x8(b.map(|x| x as u8 as i16))
    );
    let h: [i16; 4] = std::array::from_fn(|i| le16(45 + 2 * i));
    assert_eq!(load(&mut inst, "load16x4_s", 45), i32x4(h.map(i32::from)));
    assert_eq!(
        load(&mut inst, "load16x4_u", 45),
        i32x4(h.map(|x| x as u16 as i32))
    );
    let w = [le32(47), le32(51)];
    assert_eq!(load(&mut inst, "load32x2_s", 47), i64x2(w.map(i64::from)));
    assert_eq!(
        load(&mut inst, "load32x2_u", 47),
        i64x2(w.map(|x| x as u32 as i64))
    );
    assert_eq!(load(&mut inst, "load8_splat", 48), i8x16([m[50] as i8; 16]));
    assert_eq!(load(&mut inst, "load16_splat", 33), i16x8([le16(33); 8]));
    assert_eq!(load(&mut inst, "load32_splat", 46), i32x4([le32(46); 4]));
    assert_eq!(load(&mut inst, "load64_splat", 37), i64x2([le64(37); 2]));
    assert_eq!(
        load(&mut inst, "load32_zero", 30),
        i32x4([le32(30), 0, 0, 0])
    );
    assert_eq!(load(&mut inst, "load64_zero", 40), i64x2([le64(43), 0]));
    // Accesses that end exactly at the end of memory.
    assert_eq!(load(&mut inst, "load", 0xffff - 16), 0);
    assert_eq!(load(&mut inst, "load64_zero", 0xffff - 10), 0);

    let ones = !0u128;
    let lane = |inst: &mut Instance, name: &str, addr: i32, v: u128| {
        inst.call(name, &[ValRaw::i32(addr), ValRaw::u128(v)])[0].get_u128()
    };
    assert_eq!(lane(&mut inst, "load8_lane", 63, 0), (m[63] as u128) << 120);
    let l16 = lane(&mut inst, "load16_lane", 40, ones);
    assert_eq!(lanes_i16(l16), [-1, -1, -1, le16(41), -1, -1, -1, -1]);
    assert_eq!(
        lanes_i32(lane(&mut inst, "load32_lane", 1, ones)),
        [le32(1), -1, -1, -1]
    );
    assert_eq!(
        lanes_i64(lane(&mut inst, "load64_lane", 5, 0)),
        [0, le64(5)]
    );

    let pattern = i8x16(std::array::from_fn(|i| (0xa0 + i) as u8 as i8));
    let store = |inst: &mut Instance, name: &str, addr: i32| {
        assert!(
            inst.call(name, &[ValRaw::i32(addr), ValRaw::u128(pattern)])
                .is_empty()
        );
    };
    store(&mut inst, "store", 100);
    assert_eq!(inst.memory()[107..123], pattern.to_le_bytes());
    assert_eq!(inst.memory()[106], 0);
    assert_eq!(inst.memory()[123], 0);
    store(&mut inst, "store8_lane", 200);
    assert_eq!(inst.memory()[199..202], [0, 0xa9, 0]);
    store(&mut inst, "store16_lane", 300);
    assert_eq!(inst.memory()[301..305], [0, 0xae, 0xaf, 0]);
    store(&mut inst, "store32_lane", 400);
    assert_eq!(inst.memory()[399..405], [0, 0xa8, 0xa9, 0xaa, 0xab, 0]);
    store(&mut inst, "store64_lane", 0xffff - 7);
    assert_eq!(
        inst.memory()[0xffff - 8..],
        [0, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf]
    );
    assert_eq!(
        lanes_i8(load(&mut inst, "load", 0xffff - 16))[15],
        0xaf_u8 as i8
    );
}

// ---------------------------------------------------------------------------------------------
// Coverage.

/// Every (non-relaxed) SIMD operator, by wasmparser's name.
fn all_simd_operators() -> BTreeSet<&'static str> {
    macro_rules! simd_operators {
        ($( @$proposal:ident $op:ident $({ $($arg:ident: $argty:ty),* })? => $visit:ident ($($ann:tt)*) )*) => {
            [$( (stringify!($proposal), stringify!($op)) ),*]
        };
    }
    wasmparser::for_each_visit_simd_operator!(simd_operators)
        .into_iter()
        .filter(|(proposal, _)| *proposal == "simd")
        .map(|(_, op)| op)
        .collect()
}

/// The names of the SIMD operators in the function bodies of `wasm`.
fn simd_operators_in(wasm: &[u8], into: &mut BTreeSet<String>) {
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        if let wasmparser::Payload::CodeSectionEntry(body) = payload.unwrap() {
            let mut ops = body.get_operators_reader().unwrap();
            while !ops.eof() {
                let name = format!("{:?}", ops.read().unwrap());
                let end = name.find([' ', '{']).unwrap_or(name.len());
                into.insert(name[..end].to_string());
            }
        }
    }
}

#[test]
fn cases_cover_every_simd_operator() {
    let mut seen = BTreeSet::new();
    let groups = [
        bitwise_and_lane_cases(),
        integer_cases(),
        widening_and_narrowing_cases(),
        float_cases(),
    ];
    for cases in &groups {
        simd_operators_in(&wat(&cases_module(cases)), &mut seen);
    }
    simd_operators_in(&wat(MEMORY_MODULE), &mut seen);
    let missing: Vec<_> = all_simd_operators()
        .into_iter()
        .filter(|op| !seen.contains(*op))
        .collect();
    assert!(
        missing.is_empty(),
        "SIMD operators without a test case: {missing:?}"
    );
}
