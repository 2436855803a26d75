//! Turning script constants into engine values, and checking results against the script's
//! expectations (including the `nan:canonical` / `nan:arithmetic` patterns).

use std::fmt::Write as _;

use spate::{ExternRef, Val};
use wast::core::{AbstractHeapType, HeapType, NanPattern, V128Pattern, WastArgCore, WastRetCore};
use wast::token::{F32, F64};
use wast::{WastArg, WastRet};

const F32_SIGN: u32 = 0x8000_0000;
const F32_CANONICAL_NAN: u32 = 0x7fc0_0000;
const F64_SIGN: u64 = 0x8000_0000_0000_0000;
const F64_CANONICAL_NAN: u64 = 0x7ff8_0000_0000_0000;

/// Converts an argument of an `invoke` into an engine value.
pub(crate) fn arg_to_val(arg: &WastArg<'_>) -> Result<Val, String> {
    let WastArg::Core(arg) = arg else {
        return Err("component-model arguments are not supported".to_string());
    };
    Ok(match arg {
        WastArgCore::I32(v) => Val::I32(*v),
        WastArgCore::I64(v) => Val::I64(*v),
        WastArgCore::F32(v) => Val::F32(v.bits),
        WastArgCore::F64(v) => Val::F64(v.bits),
        WastArgCore::V128(v) => Val::V128(u128::from_le_bytes(v.to_le_bytes())),
        WastArgCore::RefNull(heap) => match abstract_heap_type(heap) {
            Some(AbstractHeapType::Func) => Val::FuncRef(None),
            Some(AbstractHeapType::Extern) => Val::ExternRef(None),
            _ => return Err(format!("unsupported null reference type {heap:?}")),
        },
        WastArgCore::RefExtern(n) => Val::ExternRef(Some(ExternRef::new(*n))),
        WastArgCore::RefHost(_) => return Err("`ref.host` arguments are not supported".to_string()),
    })
}

fn abstract_heap_type(heap: &HeapType<'_>) -> Option<AbstractHeapType> {
    match heap {
        HeapType::Abstract { shared: false, ty } => Some(*ty),
        _ => None,
    }
}

/// Checks one result of an `assert_return` against its expectation. `Err` describes the
/// mismatch.
pub(crate) fn check_result(expected: &WastRet<'_>, actual: &Val) -> Result<(), String> {
    let WastRet::Core(expected) = expected else {
        return Err("component-model results are not supported".to_string());
    };
    match satisfies(expected, actual) {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!(
            "expected {}, got {}",
            describe_expected(expected),
            describe_actual(expected, actual)
        )),
        Err(unsupported) => Err(unsupported),
    }
}

/// Whether `actual` satisfies `expected`. `Err` when the expectation is one the runner cannot
/// check (a GC or host reference, for example).
fn satisfies(expected: &WastRetCore<'_>, actual: &Val) -> Result<bool, String> {
    Ok(match (expected, actual) {
        (WastRetCore::I32(e), Val::I32(a)) => e == a,
        (WastRetCore::I64(e), Val::I64(a)) => e == a,
        (WastRetCore::F32(e), Val::F32(a)) => f32_matches(e, *a),
        (WastRetCore::F64(e), Val::F64(a)) => f64_matches(e, *a),
        (WastRetCore::V128(e), Val::V128(a)) => v128_matches(e, *a),
        (WastRetCore::RefNull(None), Val::FuncRef(r)) => r.is_none(),
        (WastRetCore::RefNull(None), Val::ExternRef(r)) => r.is_none(),
        (WastRetCore::RefNull(Some(heap)), Val::FuncRef(r)) => {
            matches!(abstract_heap_type(heap), Some(AbstractHeapType::Func)) && r.is_none()
        }
        (WastRetCore::RefNull(Some(heap)), Val::ExternRef(r)) => {
            matches!(abstract_heap_type(heap), Some(AbstractHeapType::Extern)) && r.is_none()
        }
        (WastRetCore::RefExtern(None), Val::ExternRef(r)) => r.is_some(),
        (WastRetCore::RefExtern(Some(n)), Val::ExternRef(r)) => {
            r.as_ref().and_then(extern_payload) == Some(*n)
        }
        // The function's identity is not observable from here; a non-null funcref is what the
        // reference interpreter checks as well.
        (WastRetCore::RefFunc(_), Val::FuncRef(r)) => r.is_some(),
        (WastRetCore::Either(options), actual) => {
            let mut any = false;
            for option in options {
                any |= satisfies(option, actual)?;
            }
            any
        }
        (
            WastRetCore::RefHost(_)
            | WastRetCore::RefAny
            | WastRetCore::RefEq
            | WastRetCore::RefArray
            | WastRetCore::RefStruct
            | WastRetCore::RefI31
            | WastRetCore::RefI31Shared,
            _,
        ) => {
            return Err(format!(
                "unsupported expected result {}",
                describe_expected(expected)
            ));
        }
        // A value of the wrong type.
        _ => false,
    })
}

/// The `u32` inside an externref the script created with `ref.extern N`.
fn extern_payload(r: &ExternRef) -> Option<u32> {
    r.data().downcast_ref::<u32>().copied()
}

/// Whether the bits of an `f32` result satisfy a value or NaN pattern. Values are compared
/// bit for bit, so `-0` differs from `0` and NaN payloads matter.
pub(crate) fn f32_matches(pattern: &NanPattern<F32>, bits: u32) -> bool {
    match pattern {
        NanPattern::Value(v) => v.bits == bits,
        NanPattern::CanonicalNan => bits & !F32_SIGN == F32_CANONICAL_NAN,
        NanPattern::ArithmeticNan => bits & F32_CANONICAL_NAN == F32_CANONICAL_NAN,
    }
}

/// Whether the bits of an `f64` result satisfy a value or NaN pattern (see [`f32_matches`]).
pub(crate) fn f64_matches(pattern: &NanPattern<F64>, bits: u64) -> bool {
    match pattern {
        NanPattern::Value(v) => v.bits == bits,
        NanPattern::CanonicalNan => bits & !F64_SIGN == F64_CANONICAL_NAN,
        NanPattern::ArithmeticNan => bits & F64_CANONICAL_NAN == F64_CANONICAL_NAN,
    }
}

/// Whether a `v128` result matches a pattern, lane by lane in the pattern's shape.
pub(crate) fn v128_matches(pattern: &V128Pattern, bits: u128) -> bool {
    let bytes = bits.to_le_bytes();
    match pattern {
        V128Pattern::I8x16(e) => lanes::<1>(&bytes).zip(e).all(|(a, e)| a[0] as i8 == *e),
        V128Pattern::I16x8(e) => lanes::<2>(&bytes)
            .zip(e)
            .all(|(a, e)| i16::from_le_bytes(a) == *e),
        V128Pattern::I32x4(e) => lanes::<4>(&bytes)
            .zip(e)
            .all(|(a, e)| i32::from_le_bytes(a) == *e),
        V128Pattern::I64x2(e) => lanes::<8>(&bytes)
            .zip(e)
            .all(|(a, e)| i64::from_le_bytes(a) == *e),
        V128Pattern::F32x4(e) => lanes::<4>(&bytes)
            .zip(e)
            .all(|(a, e)| f32_matches(e, u32::from_le_bytes(a))),
        V128Pattern::F64x2(e) => lanes::<8>(&bytes)
            .zip(e)
            .all(|(a, e)| f64_matches(e, u64::from_le_bytes(a))),
    }
}

/// The lanes of a little-endian `v128`, `N` bytes each.
fn lanes<const N: usize>(bytes: &[u8; 16]) -> impl Iterator<Item = [u8; N]> + '_ {
    bytes
        .chunks_exact(N)
        .map(|c| c.try_into().expect("chunks_exact yields N bytes"))
}

/// A readable form of an expected result, e.g. `f32:nan:canonical` or `i32x4:[1 2 3 4]`.
pub(crate) fn describe_expected(expected: &WastRetCore<'_>) -> String {
    fn f32_pattern(p: &NanPattern<F32>) -> String {
        match p {
            NanPattern::Value(v) => fmt_f32(v.bits),
            NanPattern::CanonicalNan => "nan:canonical".to_string(),
            NanPattern::ArithmeticNan => "nan:arithmetic".to_string(),
        }
    }
    fn f64_pattern(p: &NanPattern<F64>) -> String {
        match p {
            NanPattern::Value(v) => fmt_f64(v.bits),
            NanPattern::CanonicalNan => "nan:canonical".to_string(),
            NanPattern::ArithmeticNan => "nan:arithmetic".to_string(),
        }
    }
    fn list<T>(items: &[T], f: impl Fn(&T) -> String) -> String {
        let items: Vec<String> = items.iter().map(f).collect();
        format!("[{}]", items.join(" "))
    }
    match expected {
        WastRetCore::I32(v) => format!("i32:{v}"),
        WastRetCore::I64(v) => format!("i64:{v}"),
        WastRetCore::F32(p) => format!("f32:{}", f32_pattern(p)),
        WastRetCore::F64(p) => format!("f64:{}", f64_pattern(p)),
        WastRetCore::V128(p) => match p {
            V128Pattern::I8x16(l) => format!("i8x16:{}", list(l, i8::to_string)),
            V128Pattern::I16x8(l) => format!("i16x8:{}", list(l, i16::to_string)),
            V128Pattern::I32x4(l) => format!("i32x4:{}", list(l, i32::to_string)),
            V128Pattern::I64x2(l) => format!("i64x2:{}", list(l, i64::to_string)),
            V128Pattern::F32x4(l) => format!("f32x4:{}", list(l, f32_pattern)),
            V128Pattern::F64x2(l) => format!("f64x2:{}", list(l, f64_pattern)),
        },
        WastRetCore::RefNull(None) => "ref.null".to_string(),
        WastRetCore::RefNull(Some(heap)) => match abstract_heap_type(heap) {
            Some(AbstractHeapType::Func) => "ref.null func".to_string(),
            Some(AbstractHeapType::Extern) => "ref.null extern".to_string(),
            _ => format!("ref.null {heap:?}"),
        },
        WastRetCore::RefExtern(None) => "ref.extern".to_string(),
        WastRetCore::RefExtern(Some(n)) => format!("ref.extern {n}"),
        WastRetCore::RefHost(n) => format!("ref.host {n}"),
        WastRetCore::RefFunc(_) => "ref.func".to_string(),
        WastRetCore::RefAny => "ref.any".to_string(),
        WastRetCore::RefEq => "ref.eq".to_string(),
        WastRetCore::RefArray => "ref.array".to_string(),
        WastRetCore::RefStruct => "ref.struct".to_string(),
        WastRetCore::RefI31 => "ref.i31".to_string(),
        WastRetCore::RefI31Shared => "ref.i31_shared".to_string(),
        WastRetCore::Either(options) => {
            let options: Vec<String> = options.iter().map(describe_expected).collect();
            format!("either({})", options.join(" | "))
        }
    }
}

/// A readable form of an actual value; a `v128` is shown in the lane shape of what was
/// expected, so the two line up.
fn describe_actual(expected: &WastRetCore<'_>, actual: &Val) -> String {
    match (expected, actual) {
        (WastRetCore::V128(shape), Val::V128(bits)) => describe_v128(shape, *bits),
        _ => describe_val(actual),
    }
}

fn describe_v128(shape: &V128Pattern, bits: u128) -> String {
    let bytes = bits.to_le_bytes();
    let (name, lanes): (&str, Vec<String>) = match shape {
        V128Pattern::I8x16(_) => (
            "i8x16",
            lanes::<1>(&bytes)
                .map(|l| (l[0] as i8).to_string())
                .collect(),
        ),
        V128Pattern::I16x8(_) => (
            "i16x8",
            lanes::<2>(&bytes)
                .map(|l| i16::from_le_bytes(l).to_string())
                .collect(),
        ),
        V128Pattern::I32x4(_) => (
            "i32x4",
            lanes::<4>(&bytes)
                .map(|l| i32::from_le_bytes(l).to_string())
                .collect(),
        ),
        V128Pattern::I64x2(_) => (
            "i64x2",
            lanes::<8>(&bytes)
                .map(|l| i64::from_le_bytes(l).to_string())
                .collect(),
        ),
        V128Pattern::F32x4(_) => (
            "f32x4",
            lanes::<4>(&bytes)
                .map(|l| fmt_f32(u32::from_le_bytes(l)))
                .collect(),
        ),
        V128Pattern::F64x2(_) => (
            "f64x2",
            lanes::<8>(&bytes)
                .map(|l| fmt_f64(u64::from_le_bytes(l)))
                .collect(),
        ),
    };
    format!("{name}:[{}]", lanes.join(" "))
}

/// A readable form of a value, e.g. `i32:-1`, `f32:1.5 (0x3fc00000)`.
pub(crate) fn describe_val(v: &Val) -> String {
    match v {
        Val::I32(v) => format!("i32:{v}"),
        Val::I64(v) => format!("i64:{v}"),
        Val::F32(bits) => format!("f32:{}", fmt_f32(*bits)),
        Val::F64(bits) => format!("f64:{}", fmt_f64(*bits)),
        Val::V128(bits) => format!("v128:0x{bits:032x}"),
        Val::FuncRef(None) => "ref.null func".to_string(),
        Val::FuncRef(Some(_)) => "ref.func".to_string(),
        Val::ExternRef(None) => "ref.null extern".to_string(),
        Val::ExternRef(Some(r)) => match extern_payload(r) {
            Some(n) => format!("ref.extern {n}"),
            None => "ref.extern (host value)".to_string(),
        },
    }
}

/// A list of values, e.g. `[i32:1 f64:2 (0x4000000000000000)]`.
pub(crate) fn describe_vals(vals: &[Val]) -> String {
    let mut out = String::from("[");
    for (i, v) in vals.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&describe_val(v));
    }
    out.push(']');
    out
}

fn fmt_f32(bits: u32) -> String {
    let mut s = String::new();
    let v = f32::from_bits(bits);
    if v.is_nan() {
        let _ = write!(
            s,
            "{}nan (0x{bits:08x})",
            if bits & F32_SIGN != 0 { "-" } else { "" }
        );
    } else {
        let _ = write!(s, "{v:?} (0x{bits:08x})");
    }
    s
}

fn fmt_f64(bits: u64) -> String {
    let mut s = String::new();
    let v = f64::from_bits(bits);
    if v.is_nan() {
        let _ = write!(
            s,
            "{}nan (0x{bits:016x})",
            if bits & F64_SIGN != 0 { "-" } else { "" }
        );
    } else {
        let _ = write!(s, "{v:?} (0x{bits:016x})");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32v(bits: u32) -> NanPattern<F32> {
        NanPattern::Value(F32 { bits })
    }
    fn f64v(bits: u64) -> NanPattern<F64> {
        NanPattern::Value(F64 { bits })
    }

    #[test]
    fn f32_values_compare_bit_for_bit() {
        assert!(f32_matches(&f32v(1.5f32.to_bits()), 1.5f32.to_bits()));
        assert!(!f32_matches(&f32v(0.0f32.to_bits()), (-0.0f32).to_bits()));
        // A NaN value in the script means exactly that NaN.
        assert!(f32_matches(&f32v(0x7fa0_0000), 0x7fa0_0000));
        assert!(!f32_matches(&f32v(0x7fa0_0000), 0x7fc0_0000));
    }

    #[test]
    fn f32_nan_patterns() {
        let canonical = NanPattern::CanonicalNan;
        let arithmetic = NanPattern::ArithmeticNan;
        assert!(f32_matches(&canonical, 0x7fc0_0000));
        assert!(f32_matches(&canonical, 0xffc0_0000));
        assert!(!f32_matches(&canonical, 0x7fc0_0001));
        assert!(!f32_matches(&canonical, 0x7fa0_0000));
        assert!(!f32_matches(&canonical, f32::INFINITY.to_bits()));
        assert!(!f32_matches(&canonical, 1.0f32.to_bits()));
        assert!(f32_matches(&arithmetic, 0x7fc0_0000));
        assert!(f32_matches(&arithmetic, 0xffc0_0001));
        assert!(f32_matches(&arithmetic, 0x7fff_ffff));
        // A signalling NaN (quiet bit clear) is not an arithmetic NaN.
        assert!(!f32_matches(&arithmetic, 0x7fa0_0000));
        assert!(!f32_matches(&arithmetic, f32::INFINITY.to_bits()));
        assert!(!f32_matches(&arithmetic, 0x3fc0_0000));
    }

    #[test]
    fn f64_nan_patterns() {
        let canonical = NanPattern::CanonicalNan;
        let arithmetic = NanPattern::ArithmeticNan;
        assert!(f64_matches(&canonical, 0x7ff8_0000_0000_0000));
        assert!(f64_matches(&canonical, 0xfff8_0000_0000_0000));
        assert!(!f64_matches(&canonical, 0x7ff8_0000_0000_0001));
        assert!(!f64_matches(&canonical, 0x7ff4_0000_0000_0000));
        assert!(f64_matches(&arithmetic, 0x7ff8_0000_0000_0001));
        assert!(f64_matches(&arithmetic, 0xffff_ffff_ffff_ffff));
        assert!(!f64_matches(&arithmetic, 0x7ff4_0000_0000_0000));
        assert!(!f64_matches(&arithmetic, f64::NEG_INFINITY.to_bits()));
        assert!(f64_matches(&f64v(2.5f64.to_bits()), 2.5f64.to_bits()));
        assert!(!f64_matches(&f64v(0.0f64.to_bits()), (-0.0f64).to_bits()));
    }

    fn v128(lanes: [u32; 4]) -> u128 {
        let mut bytes = [0u8; 16];
        for (i, l) in lanes.iter().enumerate() {
            bytes[i * 4..i * 4 + 4].copy_from_slice(&l.to_le_bytes());
        }
        u128::from_le_bytes(bytes)
    }

    #[test]
    fn v128_lanes_follow_the_declared_shape() {
        let bits = v128([1, 2, 0xffff_ffff, 4]);
        assert!(v128_matches(&V128Pattern::I32x4([1, 2, -1, 4]), bits));
        assert!(!v128_matches(&V128Pattern::I32x4([1, 2, -1, 5]), bits));
        assert!(v128_matches(
            &V128Pattern::I64x2([(2 << 32) | 1, (4 << 32) | 0xffff_ffff]),
            bits
        ));
        assert!(v128_matches(
            &V128Pattern::I16x8([1, 0, 2, 0, -1, -1, 4, 0]),
            bits
        ));
        assert!(v128_matches(
            &V128Pattern::I8x16([1, 0, 0, 0, 2, 0, 0, 0, -1, -1, -1, -1, 4, 0, 0, 0]),
            bits
        ));
    }

    #[test]
    fn v128_nan_patterns_apply_per_lane() {
        let bits = v128([0x7fc0_0000, 0xffc0_0000, 0x7fc0_0001, 1.0f32.to_bits()]);
        let pattern = V128Pattern::F32x4([
            NanPattern::CanonicalNan,
            NanPattern::CanonicalNan,
            NanPattern::ArithmeticNan,
            f32v(1.0f32.to_bits()),
        ]);
        assert!(v128_matches(&pattern, bits));
        // The third lane is not canonical.
        let pattern = V128Pattern::F32x4([
            NanPattern::CanonicalNan,
            NanPattern::CanonicalNan,
            NanPattern::CanonicalNan,
            f32v(1.0f32.to_bits()),
        ]);
        assert!(!v128_matches(&pattern, bits));

        let bits =
            u128::from(0x7ff8_0000_0000_0000u64) | (u128::from(0x7ff0_0000_0000_0001u64) << 64);
        assert!(!v128_matches(
            &V128Pattern::F64x2([NanPattern::CanonicalNan, NanPattern::ArithmeticNan]),
            bits
        ));
        assert!(v128_matches(
            &V128Pattern::F64x2([NanPattern::CanonicalNan, f64v(0x7ff0_0000_0000_0001)]),
            bits
        ));
    }

    #[test]
    fn scalar_results_check_type_and_value() {
        assert!(satisfies(&WastRetCore::I32(7), &Val::I32(7)).unwrap());
        assert!(!satisfies(&WastRetCore::I32(7), &Val::I32(8)).unwrap());
        // Same bits, wrong type.
        assert!(!satisfies(&WastRetCore::I32(7), &Val::I64(7)).unwrap());
        assert!(!satisfies(&WastRetCore::F32(f32v(0)), &Val::I32(0)).unwrap());
        assert!(satisfies(&WastRetCore::I64(-1), &Val::I64(-1)).unwrap());
        assert!(
            satisfies(
                &WastRetCore::F64(NanPattern::CanonicalNan),
                &Val::F64(0x7ff8_0000_0000_0000)
            )
            .unwrap()
        );
    }

    #[test]
    fn reference_results() {
        let func_null = HeapType::Abstract {
            shared: false,
            ty: AbstractHeapType::Func,
        };
        let extern_null = HeapType::Abstract {
            shared: false,
            ty: AbstractHeapType::Extern,
        };
        assert!(satisfies(&WastRetCore::RefNull(Some(func_null)), &Val::FuncRef(None)).unwrap());
        assert!(
            !satisfies(
                &WastRetCore::RefNull(Some(func_null)),
                &Val::ExternRef(None)
            )
            .unwrap()
        );
        assert!(
            satisfies(
                &WastRetCore::RefNull(Some(extern_null)),
                &Val::ExternRef(None)
            )
            .unwrap()
        );
        assert!(satisfies(&WastRetCore::RefNull(None), &Val::ExternRef(None)).unwrap());
        assert!(!satisfies(&WastRetCore::RefNull(None), &Val::I32(0)).unwrap());

        let r = Val::ExternRef(Some(ExternRef::new(3u32)));
        assert!(satisfies(&WastRetCore::RefExtern(Some(3)), &r).unwrap());
        assert!(!satisfies(&WastRetCore::RefExtern(Some(4)), &r).unwrap());
        assert!(satisfies(&WastRetCore::RefExtern(None), &r).unwrap());
        assert!(!satisfies(&WastRetCore::RefExtern(Some(3)), &Val::ExternRef(None)).unwrap());
        assert!(!satisfies(&WastRetCore::RefNull(Some(extern_null)), &r).unwrap());
        // An externref that does not hold a script's `u32` never matches a number.
        let foreign = Val::ExternRef(Some(ExternRef::new("host")));
        assert!(!satisfies(&WastRetCore::RefExtern(Some(0)), &foreign).unwrap());

        assert!(!satisfies(&WastRetCore::RefFunc(None), &Val::FuncRef(None)).unwrap());
        assert!(satisfies(&WastRetCore::RefAny, &Val::I32(0)).is_err());
    }

    #[test]
    fn either_matches_any_alternative() {
        let e = WastRetCore::Either(vec![WastRetCore::I32(1), WastRetCore::I32(2)]);
        assert!(satisfies(&e, &Val::I32(2)).unwrap());
        assert!(!satisfies(&e, &Val::I32(3)).unwrap());
    }

    #[test]
    fn arguments_convert_to_values() {
        let v = arg_to_val(&WastArg::Core(WastArgCore::F32(F32 { bits: 0x7fa0_0000 }))).unwrap();
        assert!(matches!(v, Val::F32(0x7fa0_0000)));
        let heap = HeapType::Abstract {
            shared: false,
            ty: AbstractHeapType::Extern,
        };
        let v = arg_to_val(&WastArg::Core(WastArgCore::RefNull(heap))).unwrap();
        assert!(matches!(v, Val::ExternRef(None)));
        let v = arg_to_val(&WastArg::Core(WastArgCore::RefExtern(9))).unwrap();
        match v {
            Val::ExternRef(Some(r)) => assert_eq!(extern_payload(&r), Some(9)),
            other => panic!("unexpected {other:?}"),
        }
        assert!(arg_to_val(&WastArg::Core(WastArgCore::RefHost(1))).is_err());
    }

    #[test]
    fn mismatch_messages_show_both_sides_in_the_same_shape() {
        let expected = WastRet::Core(WastRetCore::V128(V128Pattern::I32x4([1, 2, 3, 4])));
        let err = check_result(&expected, &Val::V128(v128([1, 2, 3, 5]))).unwrap_err();
        assert_eq!(err, "expected i32x4:[1 2 3 4], got i32x4:[1 2 3 5]");
        let expected = WastRet::Core(WastRetCore::F32(NanPattern::CanonicalNan));
        let err = check_result(&expected, &Val::F32(0x7fa0_0000)).unwrap_err();
        assert_eq!(err, "expected f32:nan:canonical, got f32:nan (0x7fa00000)");
    }
}
