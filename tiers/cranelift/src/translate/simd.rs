//! Translation of the fixed-width SIMD operators (the `v128` instructions of WebAssembly 2.0) to
//! Cranelift IR.
//!
//! # Representation
//!
//! A `v128` value is always an `I8X16` Cranelift value on the operand stack, in locals and in
//! block parameters, whatever lane interpretation produced it. Each operator bitcasts its
//! operands to the lane shape it works on (a no-op on every backend) and bitcasts a vector result
//! back to `I8X16` before pushing it. Bitcasts are only emitted when the type actually changes, so
//! chains of operators on the same shape stay free of them.
//!
//! # Semantics
//!
//! Most operators map onto one Cranelift instruction whose semantics match the WebAssembly
//! specification exactly (shift counts taken modulo the lane width, `fmin`/`fmax` NaN propagation
//! and signed-zero ordering, saturating conversions, out-of-range `swizzle` indices yielding
//! zero, ...). The remaining ones are composed from instructions every backend lowers, and are
//! written in the shapes the x64 backend recognises and turns into single instructions:
//!
//! * `pmin`/`pmax` as `bitselect(fcmp lt, ..)` (`minps`/`maxps` and friends);
//! * `extadd_pairwise` and `i32x4.dot_i16x8_s` as `iadd_pairwise` of widened (products of)
//!   halves (`pmaddubsw`/`pmaddwd`);
//! * `extmul` as `imul` of widened halves;
//! * `i32x4.trunc_sat_f64x2_{s,u}_zero` as a saturating conversion to `i64x2` narrowed against a
//!   zero vector (x64 lowers only this combination: it has no general 64-to-32-bit narrowing);
//! * `f64x2.convert_low_i32x4_{s,u}` as a conversion of the widened low half.
//!
//! Memory accesses take their address from [`FuncTranslator::heap_addr_and_offset`] and their
//! flags from [`FuncTranslator::heap_flags`], so an out-of-bounds access faults in the guard region and is
//! reported as a heap out-of-bounds trap, exactly like the scalar loads and stores.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::types::{
    F32, F32X4, F64, F64X2, I8, I8X16, I16, I16X8, I32, I32X4, I64, I64X2,
};
use cranelift_codegen::ir::{ConstantData, Endianness, InstBuilder, MemFlagsData, Type, Value};
use cranelift_frontend::FunctionBuilder;
use spate_tiers::CompileError;
use wasmparser::{MemArg, Operator};

use super::FuncTranslator;

/// Flags of the lane-reinterpreting bitcasts between vector shapes.
///
/// Cranelift requires an explicit byte order on bitcasts that change the lane count; WebAssembly
/// defines the lanes of a `v128` in little-endian order.
const LANE_ORDER: MemFlagsData = MemFlagsData::new().with_endianness(Endianness::Little);

/// `extract_lane` of an 8- or 16-bit lane, sign-extended to `i32`.
const SIGNED: Option<Sign> = Some(Sign::Signed);

/// `extract_lane` of an 8- or 16-bit lane, zero-extended to `i32`.
const UNSIGNED: Option<Sign> = Some(Sign::Unsigned);

/// Width in bytes of a `v128` value.
const V128_BYTES: usize = 16;

impl<'a> FuncTranslator<'a> {
    /// Translates the SIMD operator `op`, found at byte `offset` of the module.
    ///
    /// Must only be called for operators of the fixed-width SIMD proposal in reachable code, after
    /// validation. Anything else (including relaxed-SIMD operators) is reported as unsupported.
    pub(crate) fn translate_simd(
        &mut self,
        op: &Operator<'_>,
        offset: usize,
    ) -> Result<(), CompileError> {
        use Operator as O;

        match *op {
            // Plain, extending, splatting and zero-filling loads.
            O::V128Load { memarg } => {
                let v = self.simd_load(I8X16, &memarg);
                self.push_v128(v);
            }
            O::V128Load8x8S { memarg } => {
                self.simd_load_extend(&memarg, |b, f, a, o| b.ins().sload8x8(f, a, o))
            }
            O::V128Load8x8U { memarg } => {
                self.simd_load_extend(&memarg, |b, f, a, o| b.ins().uload8x8(f, a, o))
            }
            O::V128Load16x4S { memarg } => {
                self.simd_load_extend(&memarg, |b, f, a, o| b.ins().sload16x4(f, a, o))
            }
            O::V128Load16x4U { memarg } => {
                self.simd_load_extend(&memarg, |b, f, a, o| b.ins().uload16x4(f, a, o))
            }
            O::V128Load32x2S { memarg } => {
                self.simd_load_extend(&memarg, |b, f, a, o| b.ins().sload32x2(f, a, o))
            }
            O::V128Load32x2U { memarg } => {
                self.simd_load_extend(&memarg, |b, f, a, o| b.ins().uload32x2(f, a, o))
            }
            O::V128Load8Splat { memarg } => self.simd_load_splat(I8X16, &memarg),
            O::V128Load16Splat { memarg } => self.simd_load_splat(I16X8, &memarg),
            O::V128Load32Splat { memarg } => self.simd_load_splat(I32X4, &memarg),
            O::V128Load64Splat { memarg } => self.simd_load_splat(I64X2, &memarg),
            O::V128Load32Zero { memarg } => self.simd_load_zero(I32X4, &memarg),
            O::V128Load64Zero { memarg } => self.simd_load_zero(I64X2, &memarg),

            // Stores.
            O::V128Store { memarg } => {
                let v = self.pop_v128(I8X16);
                let (addr, offset, flags) = self.simd_addr(&memarg);
                self.builder.ins().store(flags, v, addr, offset);
            }

            // Single-lane loads and stores.
            O::V128Load8Lane { memarg, lane } => self.simd_load_lane(I8X16, &memarg, lane),
            O::V128Load16Lane { memarg, lane } => self.simd_load_lane(I16X8, &memarg, lane),
            O::V128Load32Lane { memarg, lane } => self.simd_load_lane(I32X4, &memarg, lane),
            O::V128Load64Lane { memarg, lane } => self.simd_load_lane(I64X2, &memarg, lane),
            O::V128Store8Lane { memarg, lane } => self.simd_store_lane(I8X16, &memarg, lane),
            O::V128Store16Lane { memarg, lane } => self.simd_store_lane(I16X8, &memarg, lane),
            O::V128Store32Lane { memarg, lane } => self.simd_store_lane(I32X4, &memarg, lane),
            O::V128Store64Lane { memarg, lane } => self.simd_store_lane(I64X2, &memarg, lane),

            // Constants and lane permutations.
            O::V128Const { value } => {
                let v = self.vector_const(I8X16, *value.bytes());
                self.push_v128(v);
            }
            O::I8x16Shuffle { lanes } => {
                // Validation guarantees every index is below 32: 0..16 select from `a`, 16..32
                // from `b`, which is also the meaning of Cranelift's `shuffle` mask.
                let (a, b) = self.pop2_v128(I8X16);
                let mask = ConstantData::from(&lanes[..]);
                let mask = self.builder.func.dfg.immediates.push(mask);
                let v = self.builder.ins().shuffle(a, b, mask);
                self.push_v128(v);
            }
            O::I8x16Swizzle => {
                // Cranelift's `swizzle` yields zero for indices above 15, like WebAssembly's.
                self.simd_binary(I8X16, |b, x, s| b.ins().swizzle(x, s))
            }

            // Splats.
            O::I8x16Splat => self.simd_splat(I8X16),
            O::I16x8Splat => self.simd_splat(I16X8),
            O::I32x4Splat => self.simd_splat(I32X4),
            O::I64x2Splat => self.simd_splat(I64X2),
            O::F32x4Splat => self.simd_splat(F32X4),
            O::F64x2Splat => self.simd_splat(F64X2),

            // Lane accesses.
            O::I8x16ExtractLaneS { lane } => self.simd_extract_lane(I8X16, lane, SIGNED),
            O::I8x16ExtractLaneU { lane } => self.simd_extract_lane(I8X16, lane, UNSIGNED),
            O::I16x8ExtractLaneS { lane } => self.simd_extract_lane(I16X8, lane, SIGNED),
            O::I16x8ExtractLaneU { lane } => self.simd_extract_lane(I16X8, lane, UNSIGNED),
            O::I32x4ExtractLane { lane } => self.simd_extract_lane(I32X4, lane, None),
            O::I64x2ExtractLane { lane } => self.simd_extract_lane(I64X2, lane, None),
            O::F32x4ExtractLane { lane } => self.simd_extract_lane(F32X4, lane, None),
            O::F64x2ExtractLane { lane } => self.simd_extract_lane(F64X2, lane, None),
            O::I8x16ReplaceLane { lane } => self.simd_replace_lane(I8X16, lane),
            O::I16x8ReplaceLane { lane } => self.simd_replace_lane(I16X8, lane),
            O::I32x4ReplaceLane { lane } => self.simd_replace_lane(I32X4, lane),
            O::I64x2ReplaceLane { lane } => self.simd_replace_lane(I64X2, lane),
            O::F32x4ReplaceLane { lane } => self.simd_replace_lane(F32X4, lane),
            O::F64x2ReplaceLane { lane } => self.simd_replace_lane(F64X2, lane),

            // Integer comparisons.
            O::I8x16Eq => self.simd_icmp(I8X16, IntCC::Equal),
            O::I8x16Ne => self.simd_icmp(I8X16, IntCC::NotEqual),
            O::I8x16LtS => self.simd_icmp(I8X16, IntCC::SignedLessThan),
            O::I8x16LtU => self.simd_icmp(I8X16, IntCC::UnsignedLessThan),
            O::I8x16GtS => self.simd_icmp(I8X16, IntCC::SignedGreaterThan),
            O::I8x16GtU => self.simd_icmp(I8X16, IntCC::UnsignedGreaterThan),
            O::I8x16LeS => self.simd_icmp(I8X16, IntCC::SignedLessThanOrEqual),
            O::I8x16LeU => self.simd_icmp(I8X16, IntCC::UnsignedLessThanOrEqual),
            O::I8x16GeS => self.simd_icmp(I8X16, IntCC::SignedGreaterThanOrEqual),
            O::I8x16GeU => self.simd_icmp(I8X16, IntCC::UnsignedGreaterThanOrEqual),
            O::I16x8Eq => self.simd_icmp(I16X8, IntCC::Equal),
            O::I16x8Ne => self.simd_icmp(I16X8, IntCC::NotEqual),
            O::I16x8LtS => self.simd_icmp(I16X8, IntCC::SignedLessThan),
            O::I16x8LtU => self.simd_icmp(I16X8, IntCC::UnsignedLessThan),
            O::I16x8GtS => self.simd_icmp(I16X8, IntCC::SignedGreaterThan),
            O::I16x8GtU => self.simd_icmp(I16X8, IntCC::UnsignedGreaterThan),
            O::I16x8LeS => self.simd_icmp(I16X8, IntCC::SignedLessThanOrEqual),
            O::I16x8LeU => self.simd_icmp(I16X8, IntCC::UnsignedLessThanOrEqual),
            O::I16x8GeS => self.simd_icmp(I16X8, IntCC::SignedGreaterThanOrEqual),
            O::I16x8GeU => self.simd_icmp(I16X8, IntCC::UnsignedGreaterThanOrEqual),
            O::I32x4Eq => self.simd_icmp(I32X4, IntCC::Equal),
            O::I32x4Ne => self.simd_icmp(I32X4, IntCC::NotEqual),
            O::I32x4LtS => self.simd_icmp(I32X4, IntCC::SignedLessThan),
            O::I32x4LtU => self.simd_icmp(I32X4, IntCC::UnsignedLessThan),
            O::I32x4GtS => self.simd_icmp(I32X4, IntCC::SignedGreaterThan),
            O::I32x4GtU => self.simd_icmp(I32X4, IntCC::UnsignedGreaterThan),
            O::I32x4LeS => self.simd_icmp(I32X4, IntCC::SignedLessThanOrEqual),
            O::I32x4LeU => self.simd_icmp(I32X4, IntCC::UnsignedLessThanOrEqual),
            O::I32x4GeS => self.simd_icmp(I32X4, IntCC::SignedGreaterThanOrEqual),
            O::I32x4GeU => self.simd_icmp(I32X4, IntCC::UnsignedGreaterThanOrEqual),
            O::I64x2Eq => self.simd_icmp(I64X2, IntCC::Equal),
            O::I64x2Ne => self.simd_icmp(I64X2, IntCC::NotEqual),
            O::I64x2LtS => self.simd_icmp(I64X2, IntCC::SignedLessThan),
            O::I64x2GtS => self.simd_icmp(I64X2, IntCC::SignedGreaterThan),
            O::I64x2LeS => self.simd_icmp(I64X2, IntCC::SignedLessThanOrEqual),
            O::I64x2GeS => self.simd_icmp(I64X2, IntCC::SignedGreaterThanOrEqual),

            // Floating-point comparisons. All but `ne` are ordered (false when either lane is
            // NaN); Cranelift's `NotEqual` is "unordered or not equal", as WebAssembly's `ne`.
            O::F32x4Eq => self.simd_fcmp(F32X4, FloatCC::Equal),
            O::F32x4Ne => self.simd_fcmp(F32X4, FloatCC::NotEqual),
            O::F32x4Lt => self.simd_fcmp(F32X4, FloatCC::LessThan),
            O::F32x4Gt => self.simd_fcmp(F32X4, FloatCC::GreaterThan),
            O::F32x4Le => self.simd_fcmp(F32X4, FloatCC::LessThanOrEqual),
            O::F32x4Ge => self.simd_fcmp(F32X4, FloatCC::GreaterThanOrEqual),
            O::F64x2Eq => self.simd_fcmp(F64X2, FloatCC::Equal),
            O::F64x2Ne => self.simd_fcmp(F64X2, FloatCC::NotEqual),
            O::F64x2Lt => self.simd_fcmp(F64X2, FloatCC::LessThan),
            O::F64x2Gt => self.simd_fcmp(F64X2, FloatCC::GreaterThan),
            O::F64x2Le => self.simd_fcmp(F64X2, FloatCC::LessThanOrEqual),
            O::F64x2Ge => self.simd_fcmp(F64X2, FloatCC::GreaterThanOrEqual),

            // Bitwise operators.
            O::V128Not => self.simd_unary(I8X16, |b, x| b.ins().bnot(x)),
            O::V128And => self.simd_binary(I8X16, |b, x, y| b.ins().band(x, y)),
            O::V128AndNot => self.simd_binary(I8X16, |b, x, y| b.ins().band_not(x, y)),
            O::V128Or => self.simd_binary(I8X16, |b, x, y| b.ins().bor(x, y)),
            O::V128Xor => self.simd_binary(I8X16, |b, x, y| b.ins().bxor(x, y)),
            O::V128Bitselect => {
                let (v1, v2, c) = self.pop3();
                let v = self.builder.ins().bitselect(c, v1, v2);
                self.push_v128(v);
            }
            O::V128AnyTrue => self.simd_reduce_bool(I8X16, |b, x| b.ins().vany_true(x)),

            // Integer lane-wise unary operators and reductions.
            O::I8x16Abs => self.simd_unary(I8X16, |b, x| b.ins().iabs(x)),
            O::I16x8Abs => self.simd_unary(I16X8, |b, x| b.ins().iabs(x)),
            O::I32x4Abs => self.simd_unary(I32X4, |b, x| b.ins().iabs(x)),
            O::I64x2Abs => self.simd_unary(I64X2, |b, x| b.ins().iabs(x)),
            O::I8x16Neg => self.simd_unary(I8X16, |b, x| b.ins().ineg(x)),
            O::I16x8Neg => self.simd_unary(I16X8, |b, x| b.ins().ineg(x)),
            O::I32x4Neg => self.simd_unary(I32X4, |b, x| b.ins().ineg(x)),
            O::I64x2Neg => self.simd_unary(I64X2, |b, x| b.ins().ineg(x)),
            O::I8x16Popcnt => self.simd_unary(I8X16, |b, x| b.ins().popcnt(x)),
            O::I8x16AllTrue => self.simd_reduce_bool(I8X16, |b, x| b.ins().vall_true(x)),
            O::I16x8AllTrue => self.simd_reduce_bool(I16X8, |b, x| b.ins().vall_true(x)),
            O::I32x4AllTrue => self.simd_reduce_bool(I32X4, |b, x| b.ins().vall_true(x)),
            O::I64x2AllTrue => self.simd_reduce_bool(I64X2, |b, x| b.ins().vall_true(x)),
            O::I8x16Bitmask => self.simd_bitmask(I8X16),
            O::I16x8Bitmask => self.simd_bitmask(I16X8),
            O::I32x4Bitmask => self.simd_bitmask(I32X4),
            O::I64x2Bitmask => self.simd_bitmask(I64X2),

            // Narrowing. Both forms read their inputs as signed; `unarrow` saturates to the
            // unsigned range.
            O::I8x16NarrowI16x8S => self.simd_binary(I16X8, |b, x, y| b.ins().snarrow(x, y)),
            O::I8x16NarrowI16x8U => self.simd_binary(I16X8, |b, x, y| b.ins().unarrow(x, y)),
            O::I16x8NarrowI32x4S => self.simd_binary(I32X4, |b, x, y| b.ins().snarrow(x, y)),
            O::I16x8NarrowI32x4U => self.simd_binary(I32X4, |b, x, y| b.ins().unarrow(x, y)),

            // Widening.
            O::I16x8ExtendLowI8x16S => self.simd_unary(I8X16, |b, x| b.ins().swiden_low(x)),
            O::I16x8ExtendHighI8x16S => self.simd_unary(I8X16, |b, x| b.ins().swiden_high(x)),
            O::I16x8ExtendLowI8x16U => self.simd_unary(I8X16, |b, x| b.ins().uwiden_low(x)),
            O::I16x8ExtendHighI8x16U => self.simd_unary(I8X16, |b, x| b.ins().uwiden_high(x)),
            O::I32x4ExtendLowI16x8S => self.simd_unary(I16X8, |b, x| b.ins().swiden_low(x)),
            O::I32x4ExtendHighI16x8S => self.simd_unary(I16X8, |b, x| b.ins().swiden_high(x)),
            O::I32x4ExtendLowI16x8U => self.simd_unary(I16X8, |b, x| b.ins().uwiden_low(x)),
            O::I32x4ExtendHighI16x8U => self.simd_unary(I16X8, |b, x| b.ins().uwiden_high(x)),
            O::I64x2ExtendLowI32x4S => self.simd_unary(I32X4, |b, x| b.ins().swiden_low(x)),
            O::I64x2ExtendHighI32x4S => self.simd_unary(I32X4, |b, x| b.ins().swiden_high(x)),
            O::I64x2ExtendLowI32x4U => self.simd_unary(I32X4, |b, x| b.ins().uwiden_low(x)),
            O::I64x2ExtendHighI32x4U => self.simd_unary(I32X4, |b, x| b.ins().uwiden_high(x)),

            // Shifts. Cranelift takes vector shift counts modulo the lane width, as WebAssembly.
            O::I8x16Shl => self.simd_shift(I8X16, |b, x, n| b.ins().ishl(x, n)),
            O::I8x16ShrS => self.simd_shift(I8X16, |b, x, n| b.ins().sshr(x, n)),
            O::I8x16ShrU => self.simd_shift(I8X16, |b, x, n| b.ins().ushr(x, n)),
            O::I16x8Shl => self.simd_shift(I16X8, |b, x, n| b.ins().ishl(x, n)),
            O::I16x8ShrS => self.simd_shift(I16X8, |b, x, n| b.ins().sshr(x, n)),
            O::I16x8ShrU => self.simd_shift(I16X8, |b, x, n| b.ins().ushr(x, n)),
            O::I32x4Shl => self.simd_shift(I32X4, |b, x, n| b.ins().ishl(x, n)),
            O::I32x4ShrS => self.simd_shift(I32X4, |b, x, n| b.ins().sshr(x, n)),
            O::I32x4ShrU => self.simd_shift(I32X4, |b, x, n| b.ins().ushr(x, n)),
            O::I64x2Shl => self.simd_shift(I64X2, |b, x, n| b.ins().ishl(x, n)),
            O::I64x2ShrS => self.simd_shift(I64X2, |b, x, n| b.ins().sshr(x, n)),
            O::I64x2ShrU => self.simd_shift(I64X2, |b, x, n| b.ins().ushr(x, n)),

            // Integer lane-wise arithmetic.
            O::I8x16Add => self.simd_binary(I8X16, |b, x, y| b.ins().iadd(x, y)),
            O::I16x8Add => self.simd_binary(I16X8, |b, x, y| b.ins().iadd(x, y)),
            O::I32x4Add => self.simd_binary(I32X4, |b, x, y| b.ins().iadd(x, y)),
            O::I64x2Add => self.simd_binary(I64X2, |b, x, y| b.ins().iadd(x, y)),
            O::I8x16Sub => self.simd_binary(I8X16, |b, x, y| b.ins().isub(x, y)),
            O::I16x8Sub => self.simd_binary(I16X8, |b, x, y| b.ins().isub(x, y)),
            O::I32x4Sub => self.simd_binary(I32X4, |b, x, y| b.ins().isub(x, y)),
            O::I64x2Sub => self.simd_binary(I64X2, |b, x, y| b.ins().isub(x, y)),
            O::I16x8Mul => self.simd_binary(I16X8, |b, x, y| b.ins().imul(x, y)),
            O::I32x4Mul => self.simd_binary(I32X4, |b, x, y| b.ins().imul(x, y)),
            O::I64x2Mul => self.simd_binary(I64X2, |b, x, y| b.ins().imul(x, y)),
            O::I8x16AddSatS => self.simd_binary(I8X16, |b, x, y| b.ins().sadd_sat(x, y)),
            O::I8x16AddSatU => self.simd_binary(I8X16, |b, x, y| b.ins().uadd_sat(x, y)),
            O::I16x8AddSatS => self.simd_binary(I16X8, |b, x, y| b.ins().sadd_sat(x, y)),
            O::I16x8AddSatU => self.simd_binary(I16X8, |b, x, y| b.ins().uadd_sat(x, y)),
            O::I8x16SubSatS => self.simd_binary(I8X16, |b, x, y| b.ins().ssub_sat(x, y)),
            O::I8x16SubSatU => self.simd_binary(I8X16, |b, x, y| b.ins().usub_sat(x, y)),
            O::I16x8SubSatS => self.simd_binary(I16X8, |b, x, y| b.ins().ssub_sat(x, y)),
            O::I16x8SubSatU => self.simd_binary(I16X8, |b, x, y| b.ins().usub_sat(x, y)),
            O::I8x16MinS => self.simd_binary(I8X16, |b, x, y| b.ins().smin(x, y)),
            O::I8x16MinU => self.simd_binary(I8X16, |b, x, y| b.ins().umin(x, y)),
            O::I8x16MaxS => self.simd_binary(I8X16, |b, x, y| b.ins().smax(x, y)),
            O::I8x16MaxU => self.simd_binary(I8X16, |b, x, y| b.ins().umax(x, y)),
            O::I16x8MinS => self.simd_binary(I16X8, |b, x, y| b.ins().smin(x, y)),
            O::I16x8MinU => self.simd_binary(I16X8, |b, x, y| b.ins().umin(x, y)),
            O::I16x8MaxS => self.simd_binary(I16X8, |b, x, y| b.ins().smax(x, y)),
            O::I16x8MaxU => self.simd_binary(I16X8, |b, x, y| b.ins().umax(x, y)),
            O::I32x4MinS => self.simd_binary(I32X4, |b, x, y| b.ins().smin(x, y)),
            O::I32x4MinU => self.simd_binary(I32X4, |b, x, y| b.ins().umin(x, y)),
            O::I32x4MaxS => self.simd_binary(I32X4, |b, x, y| b.ins().smax(x, y)),
            O::I32x4MaxU => self.simd_binary(I32X4, |b, x, y| b.ins().umax(x, y)),
            O::I8x16AvgrU => self.simd_binary(I8X16, |b, x, y| b.ins().avg_round(x, y)),
            O::I16x8AvgrU => self.simd_binary(I16X8, |b, x, y| b.ins().avg_round(x, y)),
            O::I16x8Q15MulrSatS => self.simd_binary(I16X8, |b, x, y| b.ins().sqmul_round_sat(x, y)),

            // Extended pairwise additions, extended multiplications and the dot product.
            O::I16x8ExtAddPairwiseI8x16S => self.simd_extadd_pairwise(I8X16, Sign::Signed),
            O::I16x8ExtAddPairwiseI8x16U => self.simd_extadd_pairwise(I8X16, Sign::Unsigned),
            O::I32x4ExtAddPairwiseI16x8S => self.simd_extadd_pairwise(I16X8, Sign::Signed),
            O::I32x4ExtAddPairwiseI16x8U => self.simd_extadd_pairwise(I16X8, Sign::Unsigned),
            O::I16x8ExtMulLowI8x16S => self.simd_extmul(I8X16, Half::Low, Sign::Signed),
            O::I16x8ExtMulHighI8x16S => self.simd_extmul(I8X16, Half::High, Sign::Signed),
            O::I16x8ExtMulLowI8x16U => self.simd_extmul(I8X16, Half::Low, Sign::Unsigned),
            O::I16x8ExtMulHighI8x16U => self.simd_extmul(I8X16, Half::High, Sign::Unsigned),
            O::I32x4ExtMulLowI16x8S => self.simd_extmul(I16X8, Half::Low, Sign::Signed),
            O::I32x4ExtMulHighI16x8S => self.simd_extmul(I16X8, Half::High, Sign::Signed),
            O::I32x4ExtMulLowI16x8U => self.simd_extmul(I16X8, Half::Low, Sign::Unsigned),
            O::I32x4ExtMulHighI16x8U => self.simd_extmul(I16X8, Half::High, Sign::Unsigned),
            O::I64x2ExtMulLowI32x4S => self.simd_extmul(I32X4, Half::Low, Sign::Signed),
            O::I64x2ExtMulHighI32x4S => self.simd_extmul(I32X4, Half::High, Sign::Signed),
            O::I64x2ExtMulLowI32x4U => self.simd_extmul(I32X4, Half::Low, Sign::Unsigned),
            O::I64x2ExtMulHighI32x4U => self.simd_extmul(I32X4, Half::High, Sign::Unsigned),
            O::I32x4DotI16x8S => self.simd_binary(I16X8, |b, x, y| {
                // Products of the sign-extended lanes (at most 2^30 in magnitude), then sums of
                // adjacent products, wrapping like WebAssembly for the one overflowing case
                // (-32768 * -32768 twice).
                let lo_x = b.ins().swiden_low(x);
                let lo_y = b.ins().swiden_low(y);
                let hi_x = b.ins().swiden_high(x);
                let hi_y = b.ins().swiden_high(y);
                let lo = b.ins().imul(lo_x, lo_y);
                let hi = b.ins().imul(hi_x, hi_y);
                b.ins().iadd_pairwise(lo, hi)
            }),

            // Floating-point lane-wise arithmetic.
            O::F32x4Abs => self.simd_unary(F32X4, |b, x| b.ins().fabs(x)),
            O::F64x2Abs => self.simd_unary(F64X2, |b, x| b.ins().fabs(x)),
            O::F32x4Neg => self.simd_unary(F32X4, |b, x| b.ins().fneg(x)),
            O::F64x2Neg => self.simd_unary(F64X2, |b, x| b.ins().fneg(x)),
            O::F32x4Sqrt => self.simd_unary(F32X4, |b, x| b.ins().sqrt(x)),
            O::F64x2Sqrt => self.simd_unary(F64X2, |b, x| b.ins().sqrt(x)),
            O::F32x4Ceil => self.simd_unary(F32X4, |b, x| b.ins().ceil(x)),
            O::F64x2Ceil => self.simd_unary(F64X2, |b, x| b.ins().ceil(x)),
            O::F32x4Floor => self.simd_unary(F32X4, |b, x| b.ins().floor(x)),
            O::F64x2Floor => self.simd_unary(F64X2, |b, x| b.ins().floor(x)),
            O::F32x4Trunc => self.simd_unary(F32X4, |b, x| b.ins().trunc(x)),
            O::F64x2Trunc => self.simd_unary(F64X2, |b, x| b.ins().trunc(x)),
            O::F32x4Nearest => self.simd_unary(F32X4, |b, x| b.ins().nearest(x)),
            O::F64x2Nearest => self.simd_unary(F64X2, |b, x| b.ins().nearest(x)),
            O::F32x4Add => self.simd_binary(F32X4, |b, x, y| b.ins().fadd(x, y)),
            O::F64x2Add => self.simd_binary(F64X2, |b, x, y| b.ins().fadd(x, y)),
            O::F32x4Sub => self.simd_binary(F32X4, |b, x, y| b.ins().fsub(x, y)),
            O::F64x2Sub => self.simd_binary(F64X2, |b, x, y| b.ins().fsub(x, y)),
            O::F32x4Mul => self.simd_binary(F32X4, |b, x, y| b.ins().fmul(x, y)),
            O::F64x2Mul => self.simd_binary(F64X2, |b, x, y| b.ins().fmul(x, y)),
            O::F32x4Div => self.simd_binary(F32X4, |b, x, y| b.ins().fdiv(x, y)),
            O::F64x2Div => self.simd_binary(F64X2, |b, x, y| b.ins().fdiv(x, y)),
            // Cranelift's `fmin`/`fmax` follow the WebAssembly rules: NaN if either lane is NaN,
            // and -0 orders below +0.
            O::F32x4Min => self.simd_binary(F32X4, |b, x, y| b.ins().fmin(x, y)),
            O::F64x2Min => self.simd_binary(F64X2, |b, x, y| b.ins().fmin(x, y)),
            O::F32x4Max => self.simd_binary(F32X4, |b, x, y| b.ins().fmax(x, y)),
            O::F64x2Max => self.simd_binary(F64X2, |b, x, y| b.ins().fmax(x, y)),
            O::F32x4PMin => self.simd_pseudo_min_max(F32X4, PseudoMinMax::Min),
            O::F64x2PMin => self.simd_pseudo_min_max(F64X2, PseudoMinMax::Min),
            O::F32x4PMax => self.simd_pseudo_min_max(F32X4, PseudoMinMax::Max),
            O::F64x2PMax => self.simd_pseudo_min_max(F64X2, PseudoMinMax::Max),

            // Conversions.
            O::F32x4ConvertI32x4S => {
                self.simd_unary(I32X4, |b, x| b.ins().fcvt_from_sint(F32X4, x))
            }
            O::F32x4ConvertI32x4U => {
                self.simd_unary(I32X4, |b, x| b.ins().fcvt_from_uint(F32X4, x))
            }
            O::I32x4TruncSatF32x4S => {
                self.simd_unary(F32X4, |b, x| b.ins().fcvt_to_sint_sat(I32X4, x))
            }
            O::I32x4TruncSatF32x4U => {
                self.simd_unary(F32X4, |b, x| b.ins().fcvt_to_uint_sat(I32X4, x))
            }
            O::I32x4TruncSatF64x2SZero => {
                let zero = self.vector_const(I64X2, [0; V128_BYTES]);
                self.simd_unary(F64X2, |b, x| {
                    // Saturating to i64 first and then to i32 saturates to i32 directly; NaN
                    // lanes become 0 in the first step. The high half is the zero vector.
                    let wide = b.ins().fcvt_to_sint_sat(I64X2, x);
                    b.ins().snarrow(wide, zero)
                })
            }
            O::I32x4TruncSatF64x2UZero => {
                let zero = self.vector_const(I64X2, [0; V128_BYTES]);
                self.simd_unary(F64X2, |b, x| {
                    let wide = b.ins().fcvt_to_uint_sat(I64X2, x);
                    b.ins().uunarrow(wide, zero)
                })
            }
            O::F64x2ConvertLowI32x4S => self.simd_unary(I32X4, |b, x| {
                let wide = b.ins().swiden_low(x);
                b.ins().fcvt_from_sint(F64X2, wide)
            }),
            O::F64x2ConvertLowI32x4U => self.simd_unary(I32X4, |b, x| {
                let wide = b.ins().uwiden_low(x);
                b.ins().fcvt_from_uint(F64X2, wide)
            }),
            // `fvdemote` rounds to nearest-even and zeroes the two high lanes.
            O::F32x4DemoteF64x2Zero => self.simd_unary(F64X2, |b, x| b.ins().fvdemote(x)),
            O::F64x2PromoteLowF32x4 => self.simd_unary(F32X4, |b, x| b.ins().fvpromote_low(x)),

            _ => {
                return Err(CompileError::unsupported(
                    format!("SIMD operator {op:?} is not supported by the Cranelift tier"),
                    offset,
                ));
            }
        }
        Ok(())
    }

    /// Reinterprets the vector `v` as the shape `ty`, emitting a bitcast only when the type
    /// differs.
    fn v128_as(&mut self, ty: Type, v: Value) -> Value {
        if self.builder.func.dfg.value_type(v) == ty {
            v
        } else {
            self.builder.ins().bitcast(ty, LANE_ORDER, v)
        }
    }

    /// Pops a `v128` operand and reinterprets it as the shape `ty`.
    fn pop_v128(&mut self, ty: Type) -> Value {
        let v = self.pop1();
        self.v128_as(ty, v)
    }

    /// Pops two `v128` operands (the second one was on top) as the shape `ty`.
    fn pop2_v128(&mut self, ty: Type) -> (Value, Value) {
        let (a, b) = self.pop2();
        (self.v128_as(ty, a), self.v128_as(ty, b))
    }

    /// Pushes the vector `v`, of any 128-bit shape, as a `v128` (`I8X16`) operand.
    fn push_v128(&mut self, v: Value) {
        let v = self.v128_as(I8X16, v);
        self.push(v);
    }

    /// A vector constant of shape `ty` with the given bytes (little-endian lane order).
    fn vector_const(&mut self, ty: Type, bytes: [u8; V128_BYTES]) -> Value {
        let data = ConstantData::from(&bytes[..]);
        let constant = self.builder.func.dfg.constants.insert(data);
        self.builder.ins().vconst(ty, constant)
    }

    /// Pops one vector operand as shape `ty`, applies `f` and pushes the resulting vector.
    fn simd_unary(&mut self, ty: Type, f: impl FnOnce(&mut FunctionBuilder<'a>, Value) -> Value) {
        let x = self.pop_v128(ty);
        let v = f(&mut self.builder, x);
        self.push_v128(v);
    }

    /// Pops two vector operands as shape `ty`, applies `f` and pushes the resulting vector.
    fn simd_binary(
        &mut self,
        ty: Type,
        f: impl FnOnce(&mut FunctionBuilder<'a>, Value, Value) -> Value,
    ) {
        let (x, y) = self.pop2_v128(ty);
        let v = f(&mut self.builder, x, y);
        self.push_v128(v);
    }

    /// Pops a vector of shape `ty` and an `i32` shift count, applies the shift `f` and pushes the
    /// result. Cranelift's vector shifts take the count modulo the lane width.
    fn simd_shift(
        &mut self,
        ty: Type,
        f: impl FnOnce(&mut FunctionBuilder<'a>, Value, Value) -> Value,
    ) {
        let count = self.pop1();
        let x = self.pop_v128(ty);
        let v = f(&mut self.builder, x, count);
        self.push_v128(v);
    }

    /// Pops a vector as shape `ty`, reduces it to an `i8` boolean with `f` and pushes it as an
    /// `i32` 0 or 1.
    fn simd_reduce_bool(
        &mut self,
        ty: Type,
        f: impl FnOnce(&mut FunctionBuilder<'a>, Value) -> Value,
    ) {
        let x = self.pop_v128(ty);
        let flag = f(&mut self.builder, x);
        let v = self.builder.ins().uextend(I32, flag);
        self.push(v);
    }

    /// `iNxM.bitmask`: the sign bit of every lane of shape `ty`, lane 0 in bit 0.
    fn simd_bitmask(&mut self, ty: Type) {
        let x = self.pop_v128(ty);
        let v = self.builder.ins().vhigh_bits(I32, x);
        self.push(v);
    }

    /// Lane-wise comparison of two integer vectors of shape `ty`: all ones where `cc` holds.
    fn simd_icmp(&mut self, ty: Type, cc: IntCC) {
        self.simd_binary(ty, |b, x, y| b.ins().icmp(cc, x, y));
    }

    /// Lane-wise comparison of two float vectors of shape `ty`: all ones where `cc` holds.
    fn simd_fcmp(&mut self, ty: Type, cc: FloatCC) {
        self.simd_binary(ty, |b, x, y| b.ins().fcmp(cc, x, y));
    }

    /// `fNxM.pmin` (`b < a ? b : a`) and `fNxM.pmax` (`a < b ? b : a`) for the float shape `ty`.
    ///
    /// Unlike `min`/`max` these return the first operand when the lanes compare unordered or
    /// equal, which is exactly a select on an ordered less-than (the x64 `minps`/`maxps` rule).
    fn simd_pseudo_min_max(&mut self, ty: Type, which: PseudoMinMax) {
        self.simd_binary(ty, |b, x, y| {
            let lt = match which {
                PseudoMinMax::Min => b.ins().fcmp(FloatCC::LessThan, y, x),
                PseudoMinMax::Max => b.ins().fcmp(FloatCC::LessThan, x, y),
            };
            let mask = b.ins().bitcast(ty, LANE_ORDER, lt);
            b.ins().bitselect(mask, y, x)
        });
    }

    /// `iNxM.splat` for the shape `ty`: the scalar operand (an `i32` for the 8- and 16-bit
    /// shapes) in every lane.
    fn simd_splat(&mut self, ty: Type) {
        let x = self.pop1();
        let x = self.narrow_lane(ty.lane_type(), x);
        let v = self.builder.ins().splat(ty, x);
        self.push_v128(v);
    }

    /// `extract_lane` of lane `lane` of shape `ty`; 8- and 16-bit lanes are extended to `i32`
    /// with the signedness `extend`, which is `None` for the other shapes.
    fn simd_extract_lane(&mut self, ty: Type, lane: u8, extend: Option<Sign>) {
        let x = self.pop_v128(ty);
        let v = self.builder.ins().extractlane(x, lane);
        let v = match extend {
            None => v,
            Some(Sign::Signed) => self.builder.ins().sextend(I32, v),
            Some(Sign::Unsigned) => self.builder.ins().uextend(I32, v),
        };
        self.push(v);
    }

    /// `replace_lane` of lane `lane` of shape `ty` with the scalar on top of the stack.
    fn simd_replace_lane(&mut self, ty: Type, lane: u8) {
        let x = self.pop1();
        let vector = self.pop_v128(ty);
        let x = self.narrow_lane(ty.lane_type(), x);
        let v = self.builder.ins().insertlane(vector, x, lane);
        self.push_v128(v);
    }

    /// Truncates the wasm scalar `x` (an `i32` for the 8- and 16-bit lane types) to `lane_ty`.
    fn narrow_lane(&mut self, lane_ty: Type, x: Value) -> Value {
        if lane_ty == I8 || lane_ty == I16 {
            self.builder.ins().ireduce(lane_ty, x)
        } else {
            debug_assert!(
                [I32, I64, F32, F64].contains(&lane_ty)
                    && self.builder.func.dfg.value_type(x) == lane_ty
            );
            x
        }
    }

    /// `iNxM.extadd_pairwise_*`: sums of adjacent lanes of the shape `ty`, each extended to twice
    /// its width first.
    fn simd_extadd_pairwise(&mut self, ty: Type, sign: Sign) {
        self.simd_unary(ty, |b, x| {
            let (lo, hi) = match sign {
                Sign::Signed => (b.ins().swiden_low(x), b.ins().swiden_high(x)),
                Sign::Unsigned => (b.ins().uwiden_low(x), b.ins().uwiden_high(x)),
            };
            b.ins().iadd_pairwise(lo, hi)
        });
    }

    /// `iNxM.extmul_*`: products of the lanes in the `half` half of two vectors of shape `ty`,
    /// each extended to twice its width first (so the products cannot overflow).
    fn simd_extmul(&mut self, ty: Type, half: Half, sign: Sign) {
        self.simd_binary(ty, |b, x, y| {
            let widen = |b: &mut FunctionBuilder<'a>, v: Value| match (half, sign) {
                (Half::Low, Sign::Signed) => b.ins().swiden_low(v),
                (Half::High, Sign::Signed) => b.ins().swiden_high(v),
                (Half::Low, Sign::Unsigned) => b.ins().uwiden_low(v),
                (Half::High, Sign::Unsigned) => b.ins().uwiden_high(v),
            };
            let x = widen(b, x);
            let y = widen(b, y);
            b.ins().imul(x, y)
        });
    }

    /// Pops the index operand of a memory access and returns the native address, the part of the
    /// static offset left for the access's immediate, and the flags to access the heap with.
    fn simd_addr(&mut self, memarg: &MemArg) -> (Value, i32, MemFlagsData) {
        let (addr, offset) = self.heap_addr_and_offset(memarg);
        (addr, offset, self.heap_flags())
    }

    /// Pops an index and loads a value of type `ty` from the heap.
    fn simd_load(&mut self, ty: Type, memarg: &MemArg) -> Value {
        let (addr, offset, flags) = self.simd_addr(memarg);
        self.builder.ins().load(ty, flags, addr, offset)
    }

    /// `v128.loadMxN_{s,u}`: pops an index and pushes the vector `load` (one of Cranelift's
    /// extending vector loads) reads from the heap.
    fn simd_load_extend(
        &mut self,
        memarg: &MemArg,
        load: impl FnOnce(&mut FunctionBuilder<'a>, MemFlagsData, Value, i32) -> Value,
    ) {
        let (addr, offset, flags) = self.simd_addr(memarg);
        let v = load(&mut self.builder, flags, addr, offset);
        self.push_v128(v);
    }

    /// `v128.loadN_splat`: loads one lane of shape `ty` and copies it to every lane.
    fn simd_load_splat(&mut self, ty: Type, memarg: &MemArg) {
        let x = self.simd_load(ty.lane_type(), memarg);
        let v = self.builder.ins().splat(ty, x);
        self.push_v128(v);
    }

    /// `v128.loadN_zero`: loads lane 0 of shape `ty` and clears the other lanes.
    fn simd_load_zero(&mut self, ty: Type, memarg: &MemArg) {
        let x = self.simd_load(ty.lane_type(), memarg);
        let v = self.builder.ins().scalar_to_vector(ty, x);
        self.push_v128(v);
    }

    /// `v128.loadN_lane`: loads lane `lane` of shape `ty` into the vector on top of the stack.
    fn simd_load_lane(&mut self, ty: Type, memarg: &MemArg, lane: u8) {
        let vector = self.pop_v128(ty);
        let x = self.simd_load(ty.lane_type(), memarg);
        let v = self.builder.ins().insertlane(vector, x, lane);
        self.push_v128(v);
    }

    /// `v128.storeN_lane`: stores lane `lane` of shape `ty` of the vector on top of the stack.
    fn simd_store_lane(&mut self, ty: Type, memarg: &MemArg, lane: u8) {
        let vector = self.pop_v128(ty);
        let (addr, offset, flags) = self.simd_addr(memarg);
        let x = self.builder.ins().extractlane(vector, lane);
        self.builder.ins().store(flags, x, addr, offset);
    }
}

/// Whether integer lanes are read as signed or unsigned (when extending them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sign {
    /// Two's-complement signed: sign-extended.
    Signed,
    /// Unsigned: zero-extended.
    Unsigned,
}

/// Which half of a vector's lanes an operator reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Half {
    /// Lanes `0..n/2`.
    Low,
    /// Lanes `n/2..n`.
    High,
}

/// Which of the pseudo-minimum and pseudo-maximum operators to translate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PseudoMinMax {
    /// `pmin`: `b < a ? b : a`.
    Min,
    /// `pmax`: `a < b ? b : a`.
    Max,
}
