//! Translation of the fixed-width SIMD operators (the `v128` instructions of WebAssembly 2.0) to
//! LLVM IR.
//!
//! # Representation
//!
//! A `v128` value is always a `<16 x i8>` LLVM vector on the operand stack, in locals, parameters
//! and results, whatever lane interpretation produced it. Each operator bitcasts its operands to
//! the lane shape it works on (`<4 x float>`, `<2 x i64>`, ...) and bitcasts a vector result back
//! to `<16 x i8>` before pushing it; bitcasts are only emitted when the type actually changes,
//! and LLVM removes the rest.
//!
//! # Semantics
//!
//! The IR never hands LLVM an operation whose result WebAssembly defines but LLVM does not
//! (poison or undefined behaviour): shift counts are masked to the lane width, `swizzle` indices
//! are masked before the variable `extractelement`s and out-of-range lanes are zeroed by a
//! select, float-to-int conversions are fixed up by selects for the lanes where `fptosi`/`fptoui`
//! would be poison. Everything is portable IR; the x86 back end turns the shapes used here into
//! the usual single instructions (`pshufb`, `pavgb`, `pmaddwd`, `packsswb`, `pmovmskb`,
//! `cvttps2dq`, ...) when the host CPU has them.
//!
//! Width: operators that widen lanes work on one half (or the even and odd lanes) at a time,
//! so IR vectors stay within 128 bits where possible. Wider operations invite the back end to
//! use 256-bit registers, whose constant pools need 32-byte alignment, more than the runtime
//! gives code. (The one remaining 256-bit shape, the high half of the 16-bit products in
//! `q15mulr_sat_s`, is matched to `pmulhw` before any 256-bit code exists.)
//!
//! Memory: every access takes its address from `memory_addr` and has alignment 1. A load whose
//! value is dropped is found by `drop` through the few instructions (extend, insert, splat,
//! bitcast) that turn it into a `v128`, and made volatile so that it still traps.
//!
//! NaN results: the hardware `min`/`max` sequences LLVM emits for `llvm.minimum`/`llvm.maximum`
//! can return a signalling NaN operand unchanged, while WebAssembly requires an arithmetic
//! (quiet) NaN, so lanes where either operand is NaN are replaced by the canonical NaN. All other
//! float arithmetic quiets NaNs in hardware.

use inkwell::builder::BuilderError;
use inkwell::types::{BasicTypeEnum, VectorType};
use inkwell::values::{BasicValue, BasicValueEnum, IntValue, VectorValue};
use inkwell::{FloatPredicate, IntPredicate};
use spate_tiers::CompileError;
use wasmparser::{MemArg, Operator};

use super::FuncTranslator;

/// The lane type of a vector shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lane {
    I8,
    I16,
    I32,
    I64,
    F32,
    F64,
}

impl Lane {
    /// Width of one lane in bits.
    fn bits(self) -> u32 {
        match self {
            Lane::I8 => 8,
            Lane::I16 => 16,
            Lane::I32 | Lane::F32 => 32,
            Lane::I64 | Lane::F64 => 64,
        }
    }

    /// Number of lanes of this type in a `v128`.
    fn count(self) -> u32 {
        128 / self.bits()
    }

    /// The integer lane type of the same width.
    fn int(self) -> Lane {
        match self {
            Lane::F32 => Lane::I32,
            Lane::F64 => Lane::I64,
            other => other,
        }
    }

    /// The integer lane type of twice the width (for extending operators).
    fn wide(self) -> Lane {
        match self {
            Lane::I8 => Lane::I16,
            Lane::I16 => Lane::I32,
            Lane::I32 => Lane::I64,
            other => unreachable!("no lane type twice as wide as {other:?}"),
        }
    }
}

/// Whether integer lanes are read as signed or unsigned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sign {
    Signed,
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

/// The three vector shift operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shift {
    Shl,
    ShrS,
    ShrU,
}

/// The basic lane-wise float binary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FloatOp {
    Add,
    Sub,
    Mul,
    Div,
}

/// Converts an LLVM builder failure (the builder is not positioned) to a compile error.
fn built<T>(r: Result<T, BuilderError>) -> Result<T, CompileError> {
    r.map_err(|e| CompileError::codegen(format!("LLVM builder: {e}")))
}

/// Shorthand for a `Result` of this module.
type R<T> = Result<T, CompileError>;

impl<'ctx> FuncTranslator<'ctx> {
    /// Translates the SIMD operator `op`, found at byte `offset` of the module.
    ///
    /// Called only for operators of the fixed-width SIMD proposal (and the relaxed-SIMD ones,
    /// which are rejected) in reachable code, after validation.
    pub(super) fn translate_simd(&mut self, op: &Operator<'_>, offset: usize) -> R<()> {
        use Lane::*;
        use Operator as O;
        use Sign::*;

        match *op {
            // Plain, extending, splatting and zero-filling loads.
            O::V128Load { memarg } => {
                let ty = self.shape(I8).into();
                let v = self.simd_load(&memarg, ty)?;
                self.push(v);
            }
            O::V128Load8x8S { memarg } => self.simd_load_extend(&memarg, I8, Signed)?,
            O::V128Load8x8U { memarg } => self.simd_load_extend(&memarg, I8, Unsigned)?,
            O::V128Load16x4S { memarg } => self.simd_load_extend(&memarg, I16, Signed)?,
            O::V128Load16x4U { memarg } => self.simd_load_extend(&memarg, I16, Unsigned)?,
            O::V128Load32x2S { memarg } => self.simd_load_extend(&memarg, I32, Signed)?,
            O::V128Load32x2U { memarg } => self.simd_load_extend(&memarg, I32, Unsigned)?,
            O::V128Load8Splat { memarg } => self.simd_load_splat(&memarg, I8)?,
            O::V128Load16Splat { memarg } => self.simd_load_splat(&memarg, I16)?,
            O::V128Load32Splat { memarg } => self.simd_load_splat(&memarg, I32)?,
            O::V128Load64Splat { memarg } => self.simd_load_splat(&memarg, I64)?,
            O::V128Load32Zero { memarg } => self.simd_load_zero(&memarg, I32)?,
            O::V128Load64Zero { memarg } => self.simd_load_zero(&memarg, I64)?,

            // Stores.
            O::V128Store { memarg } => {
                let v = self.pop_vec(I8)?;
                self.simd_store(&memarg, v.into())?;
            }

            // Single-lane loads and stores.
            O::V128Load8Lane { memarg, lane } => self.simd_load_lane(&memarg, I8, lane)?,
            O::V128Load16Lane { memarg, lane } => self.simd_load_lane(&memarg, I16, lane)?,
            O::V128Load32Lane { memarg, lane } => self.simd_load_lane(&memarg, I32, lane)?,
            O::V128Load64Lane { memarg, lane } => self.simd_load_lane(&memarg, I64, lane)?,
            O::V128Store8Lane { memarg, lane } => self.simd_store_lane(&memarg, I8, lane)?,
            O::V128Store16Lane { memarg, lane } => self.simd_store_lane(&memarg, I16, lane)?,
            O::V128Store32Lane { memarg, lane } => self.simd_store_lane(&memarg, I32, lane)?,
            O::V128Store64Lane { memarg, lane } => self.simd_store_lane(&memarg, I64, lane)?,

            // Constants and lane permutations.
            O::V128Const { value } => {
                let i8t = self.ctx.i8_type();
                let bytes: Vec<IntValue<'ctx>> = value
                    .bytes()
                    .iter()
                    .map(|&b| i8t.const_int(u64::from(b), false))
                    .collect();
                self.push(VectorType::const_vector(&bytes).into());
            }
            O::I8x16Shuffle { lanes } => {
                // Validation guarantees every index is below 32: 0..16 select from `a`, 16..32
                // from `b`, which is exactly `shufflevector`'s mask convention.
                let (a, b) = self.pop2_vec(I8)?;
                let mask = self.const_mask(lanes.iter().map(|&l| u32::from(l)));
                let v = built(self.builder.build_shuffle_vector(a, b, mask, "shuffle"))?;
                self.push_vec(v)?;
            }
            O::I8x16Swizzle => self.simd_swizzle()?,

            // Splats.
            O::I8x16Splat => self.simd_splat(I8)?,
            O::I16x8Splat => self.simd_splat(I16)?,
            O::I32x4Splat => self.simd_splat(I32)?,
            O::I64x2Splat => self.simd_splat(I64)?,
            O::F32x4Splat => self.simd_splat(F32)?,
            O::F64x2Splat => self.simd_splat(F64)?,

            // Lane accesses.
            O::I8x16ExtractLaneS { lane } => self.simd_extract_lane(I8, lane, Some(Signed))?,
            O::I8x16ExtractLaneU { lane } => self.simd_extract_lane(I8, lane, Some(Unsigned))?,
            O::I16x8ExtractLaneS { lane } => self.simd_extract_lane(I16, lane, Some(Signed))?,
            O::I16x8ExtractLaneU { lane } => self.simd_extract_lane(I16, lane, Some(Unsigned))?,
            O::I32x4ExtractLane { lane } => self.simd_extract_lane(I32, lane, None)?,
            O::I64x2ExtractLane { lane } => self.simd_extract_lane(I64, lane, None)?,
            O::F32x4ExtractLane { lane } => self.simd_extract_lane(F32, lane, None)?,
            O::F64x2ExtractLane { lane } => self.simd_extract_lane(F64, lane, None)?,
            O::I8x16ReplaceLane { lane } => self.simd_replace_lane(I8, lane)?,
            O::I16x8ReplaceLane { lane } => self.simd_replace_lane(I16, lane)?,
            O::I32x4ReplaceLane { lane } => self.simd_replace_lane(I32, lane)?,
            O::I64x2ReplaceLane { lane } => self.simd_replace_lane(I64, lane)?,
            O::F32x4ReplaceLane { lane } => self.simd_replace_lane(F32, lane)?,
            O::F64x2ReplaceLane { lane } => self.simd_replace_lane(F64, lane)?,

            // Integer comparisons.
            O::I8x16Eq => self.simd_icmp(I8, IntPredicate::EQ)?,
            O::I8x16Ne => self.simd_icmp(I8, IntPredicate::NE)?,
            O::I8x16LtS => self.simd_icmp(I8, IntPredicate::SLT)?,
            O::I8x16LtU => self.simd_icmp(I8, IntPredicate::ULT)?,
            O::I8x16GtS => self.simd_icmp(I8, IntPredicate::SGT)?,
            O::I8x16GtU => self.simd_icmp(I8, IntPredicate::UGT)?,
            O::I8x16LeS => self.simd_icmp(I8, IntPredicate::SLE)?,
            O::I8x16LeU => self.simd_icmp(I8, IntPredicate::ULE)?,
            O::I8x16GeS => self.simd_icmp(I8, IntPredicate::SGE)?,
            O::I8x16GeU => self.simd_icmp(I8, IntPredicate::UGE)?,
            O::I16x8Eq => self.simd_icmp(I16, IntPredicate::EQ)?,
            O::I16x8Ne => self.simd_icmp(I16, IntPredicate::NE)?,
            O::I16x8LtS => self.simd_icmp(I16, IntPredicate::SLT)?,
            O::I16x8LtU => self.simd_icmp(I16, IntPredicate::ULT)?,
            O::I16x8GtS => self.simd_icmp(I16, IntPredicate::SGT)?,
            O::I16x8GtU => self.simd_icmp(I16, IntPredicate::UGT)?,
            O::I16x8LeS => self.simd_icmp(I16, IntPredicate::SLE)?,
            O::I16x8LeU => self.simd_icmp(I16, IntPredicate::ULE)?,
            O::I16x8GeS => self.simd_icmp(I16, IntPredicate::SGE)?,
            O::I16x8GeU => self.simd_icmp(I16, IntPredicate::UGE)?,
            O::I32x4Eq => self.simd_icmp(I32, IntPredicate::EQ)?,
            O::I32x4Ne => self.simd_icmp(I32, IntPredicate::NE)?,
            O::I32x4LtS => self.simd_icmp(I32, IntPredicate::SLT)?,
            O::I32x4LtU => self.simd_icmp(I32, IntPredicate::ULT)?,
            O::I32x4GtS => self.simd_icmp(I32, IntPredicate::SGT)?,
            O::I32x4GtU => self.simd_icmp(I32, IntPredicate::UGT)?,
            O::I32x4LeS => self.simd_icmp(I32, IntPredicate::SLE)?,
            O::I32x4LeU => self.simd_icmp(I32, IntPredicate::ULE)?,
            O::I32x4GeS => self.simd_icmp(I32, IntPredicate::SGE)?,
            O::I32x4GeU => self.simd_icmp(I32, IntPredicate::UGE)?,
            O::I64x2Eq => self.simd_icmp(I64, IntPredicate::EQ)?,
            O::I64x2Ne => self.simd_icmp(I64, IntPredicate::NE)?,
            O::I64x2LtS => self.simd_icmp(I64, IntPredicate::SLT)?,
            O::I64x2GtS => self.simd_icmp(I64, IntPredicate::SGT)?,
            O::I64x2LeS => self.simd_icmp(I64, IntPredicate::SLE)?,
            O::I64x2GeS => self.simd_icmp(I64, IntPredicate::SGE)?,

            // Float comparisons: all ordered except `ne`, which is true for unordered lanes.
            O::F32x4Eq => self.simd_fcmp(F32, FloatPredicate::OEQ)?,
            O::F32x4Ne => self.simd_fcmp(F32, FloatPredicate::UNE)?,
            O::F32x4Lt => self.simd_fcmp(F32, FloatPredicate::OLT)?,
            O::F32x4Gt => self.simd_fcmp(F32, FloatPredicate::OGT)?,
            O::F32x4Le => self.simd_fcmp(F32, FloatPredicate::OLE)?,
            O::F32x4Ge => self.simd_fcmp(F32, FloatPredicate::OGE)?,
            O::F64x2Eq => self.simd_fcmp(F64, FloatPredicate::OEQ)?,
            O::F64x2Ne => self.simd_fcmp(F64, FloatPredicate::UNE)?,
            O::F64x2Lt => self.simd_fcmp(F64, FloatPredicate::OLT)?,
            O::F64x2Gt => self.simd_fcmp(F64, FloatPredicate::OGT)?,
            O::F64x2Le => self.simd_fcmp(F64, FloatPredicate::OLE)?,
            O::F64x2Ge => self.simd_fcmp(F64, FloatPredicate::OGE)?,

            // Bitwise operators.
            O::V128Not => {
                let x = self.pop_vec(I8)?;
                let v = built(self.builder.build_not(x, "not"))?;
                self.push_vec(v)?;
            }
            O::V128And => {
                let (a, b) = self.pop2_vec(I64)?;
                let v = built(self.builder.build_and(a, b, "and"))?;
                self.push_vec(v)?;
            }
            O::V128AndNot => {
                let (a, b) = self.pop2_vec(I64)?;
                let nb = built(self.builder.build_not(b, "not"))?;
                let v = built(self.builder.build_and(a, nb, "andnot"))?;
                self.push_vec(v)?;
            }
            O::V128Or => {
                let (a, b) = self.pop2_vec(I64)?;
                let v = built(self.builder.build_or(a, b, "or"))?;
                self.push_vec(v)?;
            }
            O::V128Xor => {
                let (a, b) = self.pop2_vec(I64)?;
                let v = built(self.builder.build_xor(a, b, "xor"))?;
                self.push_vec(v)?;
            }
            O::V128Bitselect => {
                // (v1 & c) | (v2 & ~c)
                let (v1, v2, c) = self.pop3();
                let v1 = self.as_shape(v1, I64)?;
                let v2 = self.as_shape(v2, I64)?;
                let c = self.as_shape(c, I64)?;
                let t = built(self.builder.build_and(v1, c, "bitselect.t"))?;
                let nc = built(self.builder.build_not(c, "bitselect.nc"))?;
                let f = built(self.builder.build_and(v2, nc, "bitselect.f"))?;
                let v = built(self.builder.build_or(t, f, "bitselect"))?;
                self.push_vec(v)?;
            }
            O::V128AnyTrue => self.simd_any_all(I8, "llvm.vector.reduce.or")?,

            // Integer lane-wise unary operators and reductions.
            O::I8x16Abs => self.simd_int_abs(I8)?,
            O::I16x8Abs => self.simd_int_abs(I16)?,
            O::I32x4Abs => self.simd_int_abs(I32)?,
            O::I64x2Abs => self.simd_int_abs(I64)?,
            O::I8x16Neg => self.simd_int_neg(I8)?,
            O::I16x8Neg => self.simd_int_neg(I16)?,
            O::I32x4Neg => self.simd_int_neg(I32)?,
            O::I64x2Neg => self.simd_int_neg(I64)?,
            O::I8x16Popcnt => self.simd_unary_intrinsic(I8, "llvm.ctpop")?,
            O::I8x16AllTrue => self.simd_any_all(I8, "llvm.vector.reduce.and")?,
            O::I16x8AllTrue => self.simd_any_all(I16, "llvm.vector.reduce.and")?,
            O::I32x4AllTrue => self.simd_any_all(I32, "llvm.vector.reduce.and")?,
            O::I64x2AllTrue => self.simd_any_all(I64, "llvm.vector.reduce.and")?,
            O::I8x16Bitmask => self.simd_bitmask(I8)?,
            O::I16x8Bitmask => self.simd_bitmask(I16)?,
            O::I32x4Bitmask => self.simd_bitmask(I32)?,
            O::I64x2Bitmask => self.simd_bitmask(I64)?,

            // Narrowing: both read their inputs as signed and saturate to the signed or unsigned
            // range of the narrow lane.
            O::I8x16NarrowI16x8S => self.simd_narrow(I16, Signed)?,
            O::I8x16NarrowI16x8U => self.simd_narrow(I16, Unsigned)?,
            O::I16x8NarrowI32x4S => self.simd_narrow(I32, Signed)?,
            O::I16x8NarrowI32x4U => self.simd_narrow(I32, Unsigned)?,

            // Widening.
            O::I16x8ExtendLowI8x16S => self.simd_extend(I8, Half::Low, Signed)?,
            O::I16x8ExtendHighI8x16S => self.simd_extend(I8, Half::High, Signed)?,
            O::I16x8ExtendLowI8x16U => self.simd_extend(I8, Half::Low, Unsigned)?,
            O::I16x8ExtendHighI8x16U => self.simd_extend(I8, Half::High, Unsigned)?,
            O::I32x4ExtendLowI16x8S => self.simd_extend(I16, Half::Low, Signed)?,
            O::I32x4ExtendHighI16x8S => self.simd_extend(I16, Half::High, Signed)?,
            O::I32x4ExtendLowI16x8U => self.simd_extend(I16, Half::Low, Unsigned)?,
            O::I32x4ExtendHighI16x8U => self.simd_extend(I16, Half::High, Unsigned)?,
            O::I64x2ExtendLowI32x4S => self.simd_extend(I32, Half::Low, Signed)?,
            O::I64x2ExtendHighI32x4S => self.simd_extend(I32, Half::High, Signed)?,
            O::I64x2ExtendLowI32x4U => self.simd_extend(I32, Half::Low, Unsigned)?,
            O::I64x2ExtendHighI32x4U => self.simd_extend(I32, Half::High, Unsigned)?,

            // Shifts, with the count taken modulo the lane width.
            O::I8x16Shl => self.simd_shift(I8, Shift::Shl)?,
            O::I8x16ShrS => self.simd_shift(I8, Shift::ShrS)?,
            O::I8x16ShrU => self.simd_shift(I8, Shift::ShrU)?,
            O::I16x8Shl => self.simd_shift(I16, Shift::Shl)?,
            O::I16x8ShrS => self.simd_shift(I16, Shift::ShrS)?,
            O::I16x8ShrU => self.simd_shift(I16, Shift::ShrU)?,
            O::I32x4Shl => self.simd_shift(I32, Shift::Shl)?,
            O::I32x4ShrS => self.simd_shift(I32, Shift::ShrS)?,
            O::I32x4ShrU => self.simd_shift(I32, Shift::ShrU)?,
            O::I64x2Shl => self.simd_shift(I64, Shift::Shl)?,
            O::I64x2ShrS => self.simd_shift(I64, Shift::ShrS)?,
            O::I64x2ShrU => self.simd_shift(I64, Shift::ShrU)?,

            // Integer lane-wise arithmetic.
            O::I8x16Add => self.simd_int_add(I8)?,
            O::I16x8Add => self.simd_int_add(I16)?,
            O::I32x4Add => self.simd_int_add(I32)?,
            O::I64x2Add => self.simd_int_add(I64)?,
            O::I8x16Sub => self.simd_int_sub(I8)?,
            O::I16x8Sub => self.simd_int_sub(I16)?,
            O::I32x4Sub => self.simd_int_sub(I32)?,
            O::I64x2Sub => self.simd_int_sub(I64)?,
            O::I16x8Mul => self.simd_int_mul(I16)?,
            O::I32x4Mul => self.simd_int_mul(I32)?,
            O::I64x2Mul => self.simd_int_mul(I64)?,
            O::I8x16AddSatS => self.simd_binary_intrinsic(I8, "llvm.sadd.sat")?,
            O::I8x16AddSatU => self.simd_binary_intrinsic(I8, "llvm.uadd.sat")?,
            O::I16x8AddSatS => self.simd_binary_intrinsic(I16, "llvm.sadd.sat")?,
            O::I16x8AddSatU => self.simd_binary_intrinsic(I16, "llvm.uadd.sat")?,
            O::I8x16SubSatS => self.simd_binary_intrinsic(I8, "llvm.ssub.sat")?,
            O::I8x16SubSatU => self.simd_binary_intrinsic(I8, "llvm.usub.sat")?,
            O::I16x8SubSatS => self.simd_binary_intrinsic(I16, "llvm.ssub.sat")?,
            O::I16x8SubSatU => self.simd_binary_intrinsic(I16, "llvm.usub.sat")?,
            O::I8x16MinS => self.simd_binary_intrinsic(I8, "llvm.smin")?,
            O::I8x16MinU => self.simd_binary_intrinsic(I8, "llvm.umin")?,
            O::I8x16MaxS => self.simd_binary_intrinsic(I8, "llvm.smax")?,
            O::I8x16MaxU => self.simd_binary_intrinsic(I8, "llvm.umax")?,
            O::I16x8MinS => self.simd_binary_intrinsic(I16, "llvm.smin")?,
            O::I16x8MinU => self.simd_binary_intrinsic(I16, "llvm.umin")?,
            O::I16x8MaxS => self.simd_binary_intrinsic(I16, "llvm.smax")?,
            O::I16x8MaxU => self.simd_binary_intrinsic(I16, "llvm.umax")?,
            O::I32x4MinS => self.simd_binary_intrinsic(I32, "llvm.smin")?,
            O::I32x4MinU => self.simd_binary_intrinsic(I32, "llvm.umin")?,
            O::I32x4MaxS => self.simd_binary_intrinsic(I32, "llvm.smax")?,
            O::I32x4MaxU => self.simd_binary_intrinsic(I32, "llvm.umax")?,
            O::I8x16AvgrU => self.simd_avgr_u(I8)?,
            O::I16x8AvgrU => self.simd_avgr_u(I16)?,
            O::I16x8Q15MulrSatS => self.simd_q15mulr_sat_s()?,

            // Extended pairwise additions, extended multiplications and the dot product.
            O::I16x8ExtAddPairwiseI8x16S => self.simd_extadd_pairwise(I8, Signed)?,
            O::I16x8ExtAddPairwiseI8x16U => self.simd_extadd_pairwise(I8, Unsigned)?,
            O::I32x4ExtAddPairwiseI16x8S => self.simd_extadd_pairwise(I16, Signed)?,
            O::I32x4ExtAddPairwiseI16x8U => self.simd_extadd_pairwise(I16, Unsigned)?,
            O::I16x8ExtMulLowI8x16S => self.simd_extmul(I8, Half::Low, Signed)?,
            O::I16x8ExtMulHighI8x16S => self.simd_extmul(I8, Half::High, Signed)?,
            O::I16x8ExtMulLowI8x16U => self.simd_extmul(I8, Half::Low, Unsigned)?,
            O::I16x8ExtMulHighI8x16U => self.simd_extmul(I8, Half::High, Unsigned)?,
            O::I32x4ExtMulLowI16x8S => self.simd_extmul(I16, Half::Low, Signed)?,
            O::I32x4ExtMulHighI16x8S => self.simd_extmul(I16, Half::High, Signed)?,
            O::I32x4ExtMulLowI16x8U => self.simd_extmul(I16, Half::Low, Unsigned)?,
            O::I32x4ExtMulHighI16x8U => self.simd_extmul(I16, Half::High, Unsigned)?,
            O::I64x2ExtMulLowI32x4S => self.simd_extmul(I32, Half::Low, Signed)?,
            O::I64x2ExtMulHighI32x4S => self.simd_extmul(I32, Half::High, Signed)?,
            O::I64x2ExtMulLowI32x4U => self.simd_extmul(I32, Half::Low, Unsigned)?,
            O::I64x2ExtMulHighI32x4U => self.simd_extmul(I32, Half::High, Unsigned)?,
            O::I32x4DotI16x8S => self.simd_dot()?,

            // Float lane-wise arithmetic.
            O::F32x4Abs => self.simd_unary_intrinsic(F32, "llvm.fabs")?,
            O::F64x2Abs => self.simd_unary_intrinsic(F64, "llvm.fabs")?,
            O::F32x4Neg => self.simd_float_neg(F32)?,
            O::F64x2Neg => self.simd_float_neg(F64)?,
            O::F32x4Sqrt => self.simd_unary_intrinsic(F32, "llvm.sqrt")?,
            O::F64x2Sqrt => self.simd_unary_intrinsic(F64, "llvm.sqrt")?,
            O::F32x4Ceil => self.simd_unary_intrinsic(F32, "llvm.ceil")?,
            O::F64x2Ceil => self.simd_unary_intrinsic(F64, "llvm.ceil")?,
            O::F32x4Floor => self.simd_unary_intrinsic(F32, "llvm.floor")?,
            O::F64x2Floor => self.simd_unary_intrinsic(F64, "llvm.floor")?,
            O::F32x4Trunc => self.simd_unary_intrinsic(F32, "llvm.trunc")?,
            O::F64x2Trunc => self.simd_unary_intrinsic(F64, "llvm.trunc")?,
            O::F32x4Nearest => self.simd_unary_intrinsic(F32, "llvm.roundeven")?,
            O::F64x2Nearest => self.simd_unary_intrinsic(F64, "llvm.roundeven")?,
            O::F32x4Add => self.simd_float_binary(F32, FloatOp::Add)?,
            O::F64x2Add => self.simd_float_binary(F64, FloatOp::Add)?,
            O::F32x4Sub => self.simd_float_binary(F32, FloatOp::Sub)?,
            O::F64x2Sub => self.simd_float_binary(F64, FloatOp::Sub)?,
            O::F32x4Mul => self.simd_float_binary(F32, FloatOp::Mul)?,
            O::F64x2Mul => self.simd_float_binary(F64, FloatOp::Mul)?,
            O::F32x4Div => self.simd_float_binary(F32, FloatOp::Div)?,
            O::F64x2Div => self.simd_float_binary(F64, FloatOp::Div)?,
            O::F32x4Min => self.simd_float_min_max(F32, "llvm.minimum")?,
            O::F64x2Min => self.simd_float_min_max(F64, "llvm.minimum")?,
            O::F32x4Max => self.simd_float_min_max(F32, "llvm.maximum")?,
            O::F64x2Max => self.simd_float_min_max(F64, "llvm.maximum")?,
            O::F32x4PMin => self.simd_pseudo_min_max(F32, true)?,
            O::F64x2PMin => self.simd_pseudo_min_max(F64, true)?,
            O::F32x4PMax => self.simd_pseudo_min_max(F32, false)?,
            O::F64x2PMax => self.simd_pseudo_min_max(F64, false)?,

            // Conversions.
            O::F32x4ConvertI32x4S => {
                let x = self.pop_vec(I32)?;
                let ty = self.shape(F32);
                let v = built(self.builder.build_signed_int_to_float(x, ty, "convert"))?;
                self.push_vec(v)?;
            }
            O::F32x4ConvertI32x4U => {
                let x = self.pop_vec(I32)?;
                let ty = self.shape(F32);
                let v = built(self.builder.build_unsigned_int_to_float(x, ty, "convert"))?;
                self.push_vec(v)?;
            }
            O::I32x4TruncSatF32x4S => self.simd_trunc_sat(F32, Signed)?,
            O::I32x4TruncSatF32x4U => self.simd_trunc_sat(F32, Unsigned)?,
            O::I32x4TruncSatF64x2SZero => self.simd_trunc_sat(F64, Signed)?,
            O::I32x4TruncSatF64x2UZero => self.simd_trunc_sat(F64, Unsigned)?,
            O::F64x2ConvertLowI32x4S | O::F64x2ConvertLowI32x4U => {
                let x = self.pop_vec(I32)?;
                let low = self.half(x, I32, Half::Low)?;
                let ty = self.vec_type(F64, 2);
                let v = if matches!(op, O::F64x2ConvertLowI32x4S) {
                    built(self.builder.build_signed_int_to_float(low, ty, "convert"))?
                } else {
                    built(self.builder.build_unsigned_int_to_float(low, ty, "convert"))?
                };
                self.push_vec(v)?;
            }
            O::F32x4DemoteF64x2Zero => {
                // Rounds to nearest-even; the two high lanes are zero.
                let x = self.pop_vec(F64)?;
                let ty = self.vec_type(F32, 2);
                let narrow = built(self.builder.build_float_trunc(x, ty, "demote"))?;
                let v = self.widen_with_zeros(narrow, F32)?;
                self.push_vec(v)?;
            }
            O::F64x2PromoteLowF32x4 => {
                let x = self.pop_vec(F32)?;
                let low = self.half(x, F32, Half::Low)?;
                let ty = self.shape(F64);
                let v = built(self.builder.build_float_ext(low, ty, "promote"))?;
                self.push_vec(v)?;
            }

            _ => {
                return Err(CompileError::unsupported(
                    format!("SIMD operator {op:?} is not supported by the LLVM tier"),
                    offset,
                ));
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------------------------------
    // Types, constants and the operand stack.

    /// The LLVM type of one lane of type `lane`.
    fn lane_type(&self, lane: Lane) -> BasicTypeEnum<'ctx> {
        match lane {
            Lane::I8 => self.ctx.i8_type().into(),
            Lane::I16 => self.ctx.i16_type().into(),
            Lane::I32 => self.ctx.i32_type().into(),
            Lane::I64 => self.ctx.i64_type().into(),
            Lane::F32 => self.ctx.f32_type().into(),
            Lane::F64 => self.ctx.f64_type().into(),
        }
    }

    /// The vector type `<n x lane>`.
    fn vec_type(&self, lane: Lane, n: u32) -> VectorType<'ctx> {
        match lane {
            Lane::I8 => self.ctx.i8_type().vec_type(n),
            Lane::I16 => self.ctx.i16_type().vec_type(n),
            Lane::I32 => self.ctx.i32_type().vec_type(n),
            Lane::I64 => self.ctx.i64_type().vec_type(n),
            Lane::F32 => self.ctx.f32_type().vec_type(n),
            Lane::F64 => self.ctx.f64_type().vec_type(n),
        }
    }

    /// The 128-bit vector type with lanes of type `lane`.
    fn shape(&self, lane: Lane) -> VectorType<'ctx> {
        self.vec_type(lane, lane.count())
    }

    /// A constant integer vector `<n x lane>` with `value` (truncated to the lane) in every lane.
    fn const_splat(&self, lane: Lane, n: u32, value: u64) -> VectorValue<'ctx> {
        let ty = match lane.int() {
            Lane::I8 => self.ctx.i8_type(),
            Lane::I16 => self.ctx.i16_type(),
            Lane::I32 => self.ctx.i32_type(),
            _ => self.ctx.i64_type(),
        };
        let c = ty.const_int(value, false);
        VectorType::const_vector(&vec![c; n as usize])
    }

    /// A constant `shufflevector` mask.
    fn const_mask(&self, lanes: impl IntoIterator<Item = u32>) -> VectorValue<'ctx> {
        let i32t = self.ctx.i32_type();
        let mask: Vec<IntValue<'ctx>> = lanes
            .into_iter()
            .map(|l| i32t.const_int(u64::from(l), false))
            .collect();
        VectorType::const_vector(&mask)
    }

    /// A constant `i32` (lane indices of `extractelement`/`insertelement`).
    fn const_i32(&self, value: u32) -> IntValue<'ctx> {
        self.ctx.i32_type().const_int(u64::from(value), false)
    }

    /// Reinterprets the vector `v` (of any 128-bit vector type) as the shape of `lane`.
    fn as_shape(&self, v: BasicValueEnum<'ctx>, lane: Lane) -> R<VectorValue<'ctx>> {
        let ty = self.shape(lane);
        if v.get_type() == ty.into() {
            Ok(v.into_vector_value())
        } else {
            Ok(built(self.builder.build_bit_cast(v, ty, ""))?.into_vector_value())
        }
    }

    /// Pops a `v128` operand as the shape of `lane`.
    fn pop_vec(&mut self, lane: Lane) -> R<VectorValue<'ctx>> {
        let v = self.pop();
        self.as_shape(v, lane)
    }

    /// Pops two `v128` operands (the second one was on top) as the shape of `lane`.
    fn pop2_vec(&mut self, lane: Lane) -> R<(VectorValue<'ctx>, VectorValue<'ctx>)> {
        let (a, b) = self.pop2();
        Ok((self.as_shape(a, lane)?, self.as_shape(b, lane)?))
    }

    /// Pushes the 128-bit vector `v` as a `v128` (`<16 x i8>`) operand.
    fn push_vec(&mut self, v: VectorValue<'ctx>) -> R<()> {
        let ty = self.v128_type();
        let v = if v.get_type() == ty {
            v.into()
        } else {
            built(self.builder.build_bit_cast(v, ty, ""))?
        };
        self.push(v);
        Ok(())
    }

    /// Calls the overloaded intrinsic `name`, instantiated at the vector types `types`.
    fn call_intrinsic(
        &self,
        name: &str,
        types: &[BasicTypeEnum<'ctx>],
        args: &[BasicValueEnum<'ctx>],
    ) -> R<BasicValueEnum<'ctx>> {
        let f = self.intrinsic(name, types);
        let args: Vec<_> = args.iter().map(|&a| a.into()).collect();
        let call = built(self.builder.build_call(f, &args, ""))?;
        call.try_as_basic_value()
            .basic()
            .ok_or_else(|| CompileError::codegen(format!("intrinsic {name} returns no value")))
    }

    /// `x` (a vector or scalar) in every lane of an `<n x lane>` vector.
    fn splat_value(&self, x: BasicValueEnum<'ctx>, lane: Lane, n: u32) -> R<VectorValue<'ctx>> {
        let poison = self.vec_type(lane, n).get_poison();
        let v = built(
            self.builder
                .build_insert_element(poison, x, self.const_i32(0), ""),
        )?;
        let mask = self.const_mask((0..n).map(|_| 0));
        built(self.builder.build_shuffle_vector(v, poison, mask, "splat"))
    }

    /// The low or high half of the lanes of the 128-bit vector `x` of lane type `lane`.
    fn half(&self, x: VectorValue<'ctx>, lane: Lane, half: Half) -> R<VectorValue<'ctx>> {
        let n = lane.count() / 2;
        let first = match half {
            Half::Low => 0,
            Half::High => n,
        };
        let mask = self.const_mask(first..first + n);
        built(self.builder.build_shuffle_vector(x, x, mask, "half"))
    }

    /// The 64-bit vector `x` (of lane type `lane`) in the low half of a 128-bit vector whose high
    /// half is zero.
    fn widen_with_zeros(&self, x: VectorValue<'ctx>, lane: Lane) -> R<VectorValue<'ctx>> {
        let n = lane.count();
        let zero = self.vec_type(lane, n / 2).const_zero();
        let mask = self.const_mask(0..n);
        built(
            self.builder
                .build_shuffle_vector(x, zero, mask, "zero_high"),
        )
    }

    /// Sign- or zero-extends the integer vector `x` to the vector type `ty`.
    fn extend(
        &self,
        x: VectorValue<'ctx>,
        ty: VectorType<'ctx>,
        sign: Sign,
    ) -> R<VectorValue<'ctx>> {
        match sign {
            Sign::Signed => built(self.builder.build_int_s_extend(x, ty, "sext")),
            Sign::Unsigned => built(self.builder.build_int_z_extend(x, ty, "zext")),
        }
    }

    /// A lane mask (`<N x i1>`) as a vector of all-ones / all-zeros lanes of type `lane`.
    fn mask_to_lanes(&self, mask: VectorValue<'ctx>, lane: Lane) -> R<VectorValue<'ctx>> {
        built(
            self.builder
                .build_int_s_extend(mask, self.shape(lane.int()), "mask"),
        )
    }

    // ---------------------------------------------------------------------------------------
    // Memory.

    /// Pops an index and loads a value of type `ty` from linear memory (alignment 1).
    fn simd_load(&mut self, memarg: &MemArg, ty: BasicTypeEnum<'ctx>) -> R<BasicValueEnum<'ctx>> {
        let index = self.pop().into_int_value();
        let addr = self.memory_addr(memarg, index)?;
        let v = built(self.builder.build_load(ty, addr, "load"))?;
        if let Some(inst) = v.as_instruction_value() {
            inst.set_alignment(1)
                .map_err(|e| CompileError::codegen(format!("LLVM load alignment: {e}")))?;
        }
        Ok(v)
    }

    /// Pops the value to store and then an index, and stores the value to linear memory.
    fn simd_store(&mut self, memarg: &MemArg, value: BasicValueEnum<'ctx>) -> R<()> {
        let index = self.pop().into_int_value();
        let addr = self.memory_addr(memarg, index)?;
        let store = built(self.builder.build_store(addr, value))?;
        store
            .set_alignment(1)
            .map_err(|e| CompileError::codegen(format!("LLVM store alignment: {e}")))?;
        Ok(())
    }

    /// `v128.loadMxN_{s,u}`: loads `64 / M` lanes of `M` bits and extends each to twice its width.
    fn simd_load_extend(&mut self, memarg: &MemArg, lane: Lane, sign: Sign) -> R<()> {
        let n = lane.count() / 2;
        let narrow = self.simd_load(memarg, self.vec_type(lane, n).into())?;
        let v = self.extend(narrow.into_vector_value(), self.shape(lane.wide()), sign)?;
        self.push_vec(v)
    }

    /// `v128.loadN_splat`: loads one lane and copies it to every lane.
    fn simd_load_splat(&mut self, memarg: &MemArg, lane: Lane) -> R<()> {
        let x = self.simd_load(memarg, self.lane_type(lane))?;
        let v = self.splat_value(x, lane, lane.count())?;
        self.push_vec(v)
    }

    /// `v128.loadN_zero`: loads lane 0 and clears the other lanes.
    fn simd_load_zero(&mut self, memarg: &MemArg, lane: Lane) -> R<()> {
        let x = self.simd_load(memarg, self.lane_type(lane))?;
        let zero = self.shape(lane).const_zero();
        let v = built(
            self.builder
                .build_insert_element(zero, x, self.const_i32(0), "load_zero"),
        )?;
        self.push_vec(v)
    }

    /// `v128.loadN_lane`: loads lane `lane_index` into the vector on top of the stack.
    fn simd_load_lane(&mut self, memarg: &MemArg, lane: Lane, lane_index: u8) -> R<()> {
        let vector = self.pop_vec(lane)?;
        let x = self.simd_load(memarg, self.lane_type(lane))?;
        let idx = self.const_i32(u32::from(lane_index));
        let v = built(
            self.builder
                .build_insert_element(vector, x, idx, "load_lane"),
        )?;
        self.push_vec(v)
    }

    /// `v128.storeN_lane`: stores lane `lane_index` of the vector on top of the stack.
    fn simd_store_lane(&mut self, memarg: &MemArg, lane: Lane, lane_index: u8) -> R<()> {
        let vector = self.pop_vec(lane)?;
        let idx = self.const_i32(u32::from(lane_index));
        let x = built(
            self.builder
                .build_extract_element(vector, idx, "store_lane"),
        )?;
        self.simd_store(memarg, x)
    }

    // ---------------------------------------------------------------------------------------
    // Lanes.

    /// `i8x16.swizzle`: lane `i` of the result is lane `s[i]` of `x`, or 0 when `s[i] >= 16`.
    ///
    /// Written as sixteen variable `extractelement`s of masked (so in-range) indices and a select
    /// for the out-of-range lanes, a shape the x86 back end turns into `pshufb`.
    fn simd_swizzle(&mut self) -> R<()> {
        let (x, s) = self.pop2_vec(Lane::I8)?;
        let fifteen = self.const_splat(Lane::I8, 16, 15);
        let masked = built(self.builder.build_and(s, fifteen, "swizzle.idx"))?;
        let mut v = self.shape(Lane::I8).get_poison();
        for i in 0..16 {
            let lane = self.const_i32(i);
            let idx = built(self.builder.build_extract_element(masked, lane, ""))?.into_int_value();
            let byte = built(self.builder.build_extract_element(x, idx, ""))?;
            v = built(self.builder.build_insert_element(v, byte, lane, ""))?;
        }
        let sixteen = self.const_splat(Lane::I8, 16, 16);
        let in_range = built(
            self.builder
                .build_int_compare(IntPredicate::ULT, s, sixteen, ""),
        )?;
        let zero = self.shape(Lane::I8).const_zero();
        let v = built(self.builder.build_select(in_range, v, zero, "swizzle"))?;
        self.push_vec(v.into_vector_value())
    }

    /// `*.splat`: the scalar operand (an `i32` for the 8- and 16-bit lanes) in every lane.
    fn simd_splat(&mut self, lane: Lane) -> R<()> {
        let x = self.pop();
        let x = self.narrow_scalar(x, lane)?;
        let v = self.splat_value(x, lane, lane.count())?;
        self.push_vec(v)
    }

    /// Truncates the wasm scalar `x` (an `i32` for the 8- and 16-bit lanes) to the lane type.
    fn narrow_scalar(&self, x: BasicValueEnum<'ctx>, lane: Lane) -> R<BasicValueEnum<'ctx>> {
        match lane {
            Lane::I8 | Lane::I16 => {
                let ty = self.lane_type(lane).into_int_type();
                Ok(built(
                    self.builder
                        .build_int_truncate(x.into_int_value(), ty, "lane"),
                )?
                .into())
            }
            _ => Ok(x),
        }
    }

    /// `*.extract_lane`: 8- and 16-bit lanes are extended to `i32` with `sign`.
    fn simd_extract_lane(&mut self, lane: Lane, index: u8, sign: Option<Sign>) -> R<()> {
        let x = self.pop_vec(lane)?;
        let idx = self.const_i32(u32::from(index));
        let v = built(self.builder.build_extract_element(x, idx, "extract_lane"))?;
        let v = match sign {
            None => v,
            Some(Sign::Signed) => built(self.builder.build_int_s_extend(
                v.into_int_value(),
                self.ctx.i32_type(),
                "",
            ))?
            .into(),
            Some(Sign::Unsigned) => built(self.builder.build_int_z_extend(
                v.into_int_value(),
                self.ctx.i32_type(),
                "",
            ))?
            .into(),
        };
        self.push(v);
        Ok(())
    }

    /// `*.replace_lane`: replaces lane `index` with the scalar on top of the stack.
    fn simd_replace_lane(&mut self, lane: Lane, index: u8) -> R<()> {
        let x = self.pop();
        let vector = self.pop_vec(lane)?;
        let x = self.narrow_scalar(x, lane)?;
        let idx = self.const_i32(u32::from(index));
        let v = built(
            self.builder
                .build_insert_element(vector, x, idx, "replace_lane"),
        )?;
        self.push_vec(v)
    }

    // ---------------------------------------------------------------------------------------
    // Comparisons, reductions, masks.

    /// Lane-wise integer comparison: all ones where `pred` holds.
    fn simd_icmp(&mut self, lane: Lane, pred: IntPredicate) -> R<()> {
        let (a, b) = self.pop2_vec(lane)?;
        let m = built(self.builder.build_int_compare(pred, a, b, "icmp"))?;
        let v = self.mask_to_lanes(m, lane)?;
        self.push_vec(v)
    }

    /// Lane-wise float comparison: all ones where `pred` holds.
    fn simd_fcmp(&mut self, lane: Lane, pred: FloatPredicate) -> R<()> {
        let (a, b) = self.pop2_vec(lane)?;
        let m = built(self.builder.build_float_compare(pred, a, b, "fcmp"))?;
        let v = self.mask_to_lanes(m, lane)?;
        self.push_vec(v)
    }

    /// `v128.any_true` (`reduce` = `llvm.vector.reduce.or`) and `*.all_true` (`.and`): whether
    /// any / every lane of type `lane` is non-zero, as an `i32` 0 or 1.
    fn simd_any_all(&mut self, lane: Lane, reduce: &str) -> R<()> {
        let x = self.pop_vec(lane)?;
        let zero = self.shape(lane).const_zero();
        let nonzero = built(
            self.builder
                .build_int_compare(IntPredicate::NE, x, zero, "nonzero"),
        )?;
        let r = self.call_intrinsic(reduce, &[nonzero.get_type().into()], &[nonzero.into()])?;
        let v = built(self.builder.build_int_z_extend(
            r.into_int_value(),
            self.ctx.i32_type(),
            "any_all",
        ))?;
        self.push(v.into());
        Ok(())
    }

    /// `*.bitmask`: the sign bit of every lane, lane 0 in bit 0.
    fn simd_bitmask(&mut self, lane: Lane) -> R<()> {
        let x = self.pop_vec(lane)?;
        let zero = self.shape(lane).const_zero();
        let neg = built(
            self.builder
                .build_int_compare(IntPredicate::SLT, x, zero, "neg"),
        )?;
        let width = std::num::NonZeroU32::new(lane.count()).expect("a vector has lanes");
        let bits = self
            .ctx
            .custom_width_int_type(width)
            .map_err(|e| CompileError::codegen(format!("LLVM integer type: {e}")))?;
        let m = built(self.builder.build_bit_cast(neg, bits, ""))?.into_int_value();
        let v = built(
            self.builder
                .build_int_z_extend(m, self.ctx.i32_type(), "bitmask"),
        )?;
        self.push(v.into());
        Ok(())
    }

    // ---------------------------------------------------------------------------------------
    // Integer arithmetic.

    /// Pops one vector of shape `lane`, calls the unary intrinsic `name` on it, pushes the result.
    fn simd_unary_intrinsic(&mut self, lane: Lane, name: &str) -> R<()> {
        let x = self.pop_vec(lane)?;
        let v = self.call_intrinsic(name, &[x.get_type().into()], &[x.into()])?;
        self.push_vec(v.into_vector_value())
    }

    /// Pops two vectors of shape `lane`, calls the binary intrinsic `name`, pushes the result.
    fn simd_binary_intrinsic(&mut self, lane: Lane, name: &str) -> R<()> {
        let (a, b) = self.pop2_vec(lane)?;
        let v = self.call_intrinsic(name, &[a.get_type().into()], &[a.into(), b.into()])?;
        self.push_vec(v.into_vector_value())
    }

    fn simd_int_add(&mut self, lane: Lane) -> R<()> {
        let (a, b) = self.pop2_vec(lane)?;
        let v = built(self.builder.build_int_add(a, b, "add"))?;
        self.push_vec(v)
    }

    fn simd_int_sub(&mut self, lane: Lane) -> R<()> {
        let (a, b) = self.pop2_vec(lane)?;
        let v = built(self.builder.build_int_sub(a, b, "sub"))?;
        self.push_vec(v)
    }

    fn simd_int_mul(&mut self, lane: Lane) -> R<()> {
        let (a, b) = self.pop2_vec(lane)?;
        let v = built(self.builder.build_int_mul(a, b, "mul"))?;
        self.push_vec(v)
    }

    fn simd_int_neg(&mut self, lane: Lane) -> R<()> {
        let x = self.pop_vec(lane)?;
        let v = built(self.builder.build_int_neg(x, "neg"))?;
        self.push_vec(v)
    }

    /// `*.abs`: `llvm.abs` with `is_int_min_poison = false` (the minimum maps to itself).
    fn simd_int_abs(&mut self, lane: Lane) -> R<()> {
        let x = self.pop_vec(lane)?;
        let no_poison = self.ctx.bool_type().const_zero();
        let v = self.call_intrinsic(
            "llvm.abs",
            &[x.get_type().into()],
            &[x.into(), no_poison.into()],
        )?;
        self.push_vec(v.into_vector_value())
    }

    /// Shifts of every lane by the `i32` count on top of the stack, modulo the lane width.
    fn simd_shift(&mut self, lane: Lane, shift: Shift) -> R<()> {
        let count = self.pop().into_int_value();
        let x = self.pop_vec(lane)?;
        let i32t = self.ctx.i32_type();
        let masked = built(self.builder.build_and(
            count,
            i32t.const_int(u64::from(lane.bits() - 1), false),
            "shift.count",
        ))?;
        let lane_ty = self.lane_type(lane).into_int_type();
        let count = if lane == Lane::I64 {
            built(self.builder.build_int_z_extend(masked, lane_ty, ""))?
        } else if lane == Lane::I32 {
            masked
        } else {
            built(self.builder.build_int_truncate(masked, lane_ty, ""))?
        };
        let counts = self.splat_value(count.into(), lane, lane.count())?;
        let v = match shift {
            Shift::Shl => built(self.builder.build_left_shift(x, counts, "shl"))?,
            Shift::ShrS => built(self.builder.build_right_shift(x, counts, true, "shr_s"))?,
            Shift::ShrU => built(self.builder.build_right_shift(x, counts, false, "shr_u"))?,
        };
        self.push_vec(v)
    }

    /// `*.avgr_u`: `(a + b + 1) >> 1` without overflow, as `(a | b) - ((a ^ b) >> 1)` (which
    /// the x86 back end turns into `pavgb`/`pavgw`).
    fn simd_avgr_u(&mut self, lane: Lane) -> R<()> {
        let (a, b) = self.pop2_vec(lane)?;
        let or = built(self.builder.build_or(a, b, ""))?;
        let xor = built(self.builder.build_xor(a, b, ""))?;
        let one = self.const_splat(lane, lane.count(), 1);
        let half = built(self.builder.build_right_shift(xor, one, false, ""))?;
        let v = built(self.builder.build_int_sub(or, half, "avgr_u"))?;
        self.push_vec(v)
    }

    /// `i16x8.q15mulr_sat_s`: `sat_s16((a * b + 0x4000) >> 15)`, computed in 16-bit lanes from
    /// the high and low halves of the 32-bit products (`pmulhw`/`pmullw` on x86, so no IR
    /// operation the back end could widen to 256 bits):
    ///
    /// * `lo' = lo + 0x4000` wraps exactly when `lo >= 0xc000` (unsigned): the carry into `hi`;
    /// * bits 15..30 of `product + 0x4000` are `((hi + carry) << 1) | (lo' >> 15)`;
    /// * the one product that overflows, `-32768 * -32768`, gives `0x8000`, a value no other
    ///   product gives (the smallest result is -32767), and becomes `0x7fff` by flipping all
    ///   bits of the lanes equal to `0x8000`.
    fn simd_q15mulr_sat_s(&mut self) -> R<()> {
        let (a, b) = self.pop2_vec(Lane::I16)?;
        let i16s = |v: u64| self.const_splat(Lane::I16, 8, v);
        // The high halves of the products: the x86 back end matches this shape to `pmulhw`.
        let wide = self.vec_type(Lane::I32, 8);
        let wa = self.extend(a, wide, Sign::Signed)?;
        let wb = self.extend(b, wide, Sign::Signed)?;
        let p = built(self.builder.build_int_mul(wa, wb, ""))?;
        let sixteen = self.const_splat(Lane::I32, 8, 16);
        let p = built(self.builder.build_right_shift(p, sixteen, false, ""))?;
        let hi = built(
            self.builder
                .build_int_truncate(p, self.shape(Lane::I16), "hi"),
        )?;
        let lo = built(self.builder.build_int_mul(a, b, "lo"))?;
        let lo = built(self.builder.build_int_add(lo, i16s(0x4000), ""))?;
        // `lo'` wrapped (a carry into `hi`) exactly when it is below 0x4000.
        let wrapped =
            built(
                self.builder
                    .build_int_compare(IntPredicate::ULT, lo, i16s(0x4000), "carry"),
            )?;
        let carry = built(
            self.builder
                .build_int_z_extend(wrapped, self.shape(Lane::I16), ""),
        )?;
        let hi = built(self.builder.build_int_add(hi, carry, ""))?;
        let hi = built(self.builder.build_left_shift(hi, i16s(1), ""))?;
        let low_bit = built(self.builder.build_right_shift(lo, i16s(15), false, ""))?;
        let r = built(self.builder.build_or(hi, low_bit, ""))?;
        let overflow =
            built(
                self.builder
                    .build_int_compare(IntPredicate::EQ, r, i16s(0x8000), ""),
            )?;
        let flip = self.mask_to_lanes(overflow, Lane::I16)?;
        let v = built(self.builder.build_xor(r, flip, "q15mulr_sat_s"))?;
        self.push_vec(v)
    }

    /// `*.narrow_*`: the lanes of two vectors of shape `lane` (read as signed) saturated to the
    /// signed or unsigned range of half the width; the first operand gives the low lanes.
    ///
    /// Each operand is clamped and truncated on its own, so no IR vector exceeds 128 bits; the
    /// x86 back end turns the whole into `packsswb`/`packuswb`/`packssdw`/`packusdw`.
    fn simd_narrow(&mut self, lane: Lane, sign: Sign) -> R<()> {
        let (a, b) = self.pop2_vec(lane)?;
        let n = lane.count();
        let ty = self.shape(lane);
        let narrow_bits = lane.bits() / 2;
        let (lo, hi) = match sign {
            Sign::Signed => (
                -(1i64 << (narrow_bits - 1)),
                (1i64 << (narrow_bits - 1)) - 1,
            ),
            Sign::Unsigned => (0, (1i64 << narrow_bits) - 1),
        };
        let lo = self.const_splat(lane, n, lo as u64);
        let hi = self.const_splat(lane, n, hi as u64);
        let narrow_ty = self.vec_type(narrow_lane(lane), n);
        let mut parts = Vec::with_capacity(2);
        for x in [a, b] {
            let v = self.call_intrinsic("llvm.smax", &[ty.into()], &[x.into(), lo.into()])?;
            let v = self.call_intrinsic("llvm.smin", &[ty.into()], &[v, hi.into()])?;
            parts.push(built(self.builder.build_int_truncate(
                v.into_vector_value(),
                narrow_ty,
                "",
            ))?);
        }
        let v = built(self.builder.build_shuffle_vector(
            parts[0],
            parts[1],
            self.const_mask(0..2 * n),
            "narrow",
        ))?;
        self.push_vec(v)
    }

    /// `*.extend_{low,high}_*`: one half of the lanes extended to twice their width.
    fn simd_extend(&mut self, lane: Lane, half: Half, sign: Sign) -> R<()> {
        let x = self.pop_vec(lane)?;
        let h = self.half(x, lane, half)?;
        let v = self.extend(h, self.shape(lane.wide()), sign)?;
        self.push_vec(v)
    }

    /// The even-numbered and the odd-numbered lanes of `x`, as two vectors of half the length.
    fn even_odd(&self, x: VectorValue<'ctx>) -> R<(VectorValue<'ctx>, VectorValue<'ctx>)> {
        let n = x.get_type().get_size() / 2;
        let even = self.const_mask((0..n).map(|i| 2 * i));
        let odd = self.const_mask((0..n).map(|i| 2 * i + 1));
        let e = built(self.builder.build_shuffle_vector(x, x, even, "even"))?;
        let o = built(self.builder.build_shuffle_vector(x, x, odd, "odd"))?;
        Ok((e, o))
    }

    /// `*.extadd_pairwise_*`: sums of adjacent lanes, each extended to twice its width first.
    fn simd_extadd_pairwise(&mut self, lane: Lane, sign: Sign) -> R<()> {
        let x = self.pop_vec(lane)?;
        let (e, o) = self.even_odd(x)?;
        let wide = self.shape(lane.wide());
        let e = self.extend(e, wide, sign)?;
        let o = self.extend(o, wide, sign)?;
        let v = built(self.builder.build_int_add(e, o, "extadd_pairwise"))?;
        self.push_vec(v)
    }

    /// `*.extmul_*`: products of one half of the lanes of two vectors, each extended to twice
    /// its width first (so the products cannot overflow).
    fn simd_extmul(&mut self, lane: Lane, half: Half, sign: Sign) -> R<()> {
        let (a, b) = self.pop2_vec(lane)?;
        let wide = self.shape(lane.wide());
        let a = self.half(a, lane, half)?;
        let b = self.half(b, lane, half)?;
        let a = self.extend(a, wide, sign)?;
        let b = self.extend(b, wide, sign)?;
        let v = built(self.builder.build_int_mul(a, b, "extmul"))?;
        self.push_vec(v)
    }

    /// `i32x4.dot_i16x8_s`: sums of adjacent products of sign-extended lanes (wrapping for the
    /// one overflowing case, `-32768 * -32768` twice); `pmaddwd` on x86.
    fn simd_dot(&mut self) -> R<()> {
        let (a, b) = self.pop2_vec(Lane::I16)?;
        let wide = self.shape(Lane::I32);
        let (ae, ao) = self.even_odd(a)?;
        let (be, bo) = self.even_odd(b)?;
        let mut products = Vec::with_capacity(2);
        for (x, y) in [(ae, be), (ao, bo)] {
            let x = self.extend(x, wide, Sign::Signed)?;
            let y = self.extend(y, wide, Sign::Signed)?;
            products.push(built(self.builder.build_int_mul(x, y, ""))?);
        }
        let v = built(self.builder.build_int_add(products[0], products[1], "dot"))?;
        self.push_vec(v)
    }

    // ---------------------------------------------------------------------------------------
    // Float arithmetic and conversions.

    fn simd_float_binary(&mut self, lane: Lane, op: FloatOp) -> R<()> {
        let (a, b) = self.pop2_vec(lane)?;
        let v = match op {
            FloatOp::Add => built(self.builder.build_float_add(a, b, "fadd"))?,
            FloatOp::Sub => built(self.builder.build_float_sub(a, b, "fsub"))?,
            FloatOp::Mul => built(self.builder.build_float_mul(a, b, "fmul"))?,
            FloatOp::Div => built(self.builder.build_float_div(a, b, "fdiv"))?,
        };
        self.push_vec(v)
    }

    fn simd_float_neg(&mut self, lane: Lane) -> R<()> {
        let x = self.pop_vec(lane)?;
        let v = built(self.builder.build_float_neg(x, "fneg"))?;
        self.push_vec(v)
    }

    /// `*.min`/`*.max`: `llvm.minimum`/`llvm.maximum` (-0 below +0, NaN if either lane is NaN),
    /// with NaN lanes replaced by the canonical NaN so that a signalling NaN operand never comes
    /// out unquieted.
    fn simd_float_min_max(&mut self, lane: Lane, name: &str) -> R<()> {
        let (a, b) = self.pop2_vec(lane)?;
        let ty = a.get_type();
        let m = self.call_intrinsic(name, &[ty.into()], &[a.into(), b.into()])?;
        let unordered =
            built(
                self.builder
                    .build_float_compare(FloatPredicate::UNO, a, b, "unordered"),
            )?;
        let nan = self.canonical_nan(lane)?;
        let v = built(
            self.builder
                .build_select(unordered, nan.into(), m, "min_max"),
        )?;
        self.push_vec(v.into_vector_value())
    }

    /// A vector of shape `lane` (a float lane type) with the positive canonical NaN in every
    /// lane.
    fn canonical_nan(&self, lane: Lane) -> R<VectorValue<'ctx>> {
        let bits = match lane {
            Lane::F32 => 0x7fc0_0000,
            _ => 0x7ff8_0000_0000_0000,
        };
        let ints = self.const_splat(lane.int(), lane.count(), bits);
        Ok(built(self.builder.build_bit_cast(ints, self.shape(lane), "nan"))?.into_vector_value())
    }

    /// `*.pmin` (`b < a ? b : a`) and `*.pmax` (`a < b ? b : a`), exactly as specified: the first
    /// operand whenever the lanes compare unordered or equal.
    fn simd_pseudo_min_max(&mut self, lane: Lane, min: bool) -> R<()> {
        let (a, b) = self.pop2_vec(lane)?;
        let (l, r) = if min { (b, a) } else { (a, b) };
        let lt = built(
            self.builder
                .build_float_compare(FloatPredicate::OLT, l, r, "lt"),
        )?;
        let v = built(self.builder.build_select(lt, b, a, "pmin_pmax"))?;
        self.push_vec(v.into_vector_value())
    }

    /// `i32x4.trunc_sat_f32x4_{s,u}` (`lane` = F32) and `i32x4.trunc_sat_f64x2_{s,u}_zero`
    /// (`lane` = F64): truncation towards zero, saturating out-of-range lanes and mapping NaN to
    /// 0; the high lanes of the `_zero` forms are 0.
    ///
    /// `fptosi`/`fptoui` are poison exactly for the lanes the selects replace, and a poison lane
    /// in the arm a select does not choose is harmless. (`llvm.fpto*i.sat` would be simpler, but
    /// the x86 back end scalarises it.)
    fn simd_trunc_sat(&mut self, lane: Lane, sign: Sign) -> R<()> {
        let x = self.pop_vec(lane)?;
        let n = lane.count();
        let int_ty = self.vec_type(Lane::I32, n);
        let float_const = |v: f64| -> VectorValue<'ctx> {
            let c = match lane {
                Lane::F32 => self.ctx.f32_type().const_float(v),
                _ => self.ctx.f64_type().const_float(v),
            };
            VectorType::const_vector(&vec![c; n as usize])
        };
        let select = |cond: VectorValue<'ctx>,
                      then: VectorValue<'ctx>,
                      other: VectorValue<'ctx>|
         -> R<VectorValue<'ctx>> {
            Ok(built(self.builder.build_select(cond, then, other, ""))?.into_vector_value())
        };
        let fcmp = |pred: FloatPredicate, c: f64| -> R<VectorValue<'ctx>> {
            built(
                self.builder
                    .build_float_compare(pred, x, float_const(c), ""),
            )
        };
        let v = match sign {
            Sign::Signed => {
                let t = built(self.builder.build_float_to_signed_int(x, int_ty, "trunc"))?;
                // 2^31 and -2^31 are exact in both float types.
                let too_big = fcmp(FloatPredicate::OGE, 2_147_483_648.0)?;
                let t = select(too_big, self.const_splat(Lane::I32, n, 0x7fff_ffff), t)?;
                let too_small = fcmp(FloatPredicate::OLT, -2_147_483_648.0)?;
                let t = select(too_small, self.const_splat(Lane::I32, n, 0x8000_0000), t)?;
                let ordered = fcmp(FloatPredicate::ORD, 0.0)?;
                select(ordered, t, int_ty.const_zero())?
            }
            Sign::Unsigned => {
                let t = built(self.builder.build_float_to_unsigned_int(x, int_ty, "trunc"))?;
                let too_big = fcmp(FloatPredicate::OGE, 4_294_967_296.0)?;
                let t = select(too_big, self.const_splat(Lane::I32, n, 0xffff_ffff), t)?;
                // Above -1 (false for NaN): in range or too big; else 0.
                let above = fcmp(FloatPredicate::OGT, -1.0)?;
                select(above, t, int_ty.const_zero())?
            }
        };
        let v = if n == 4 {
            v
        } else {
            self.widen_with_zeros(v, Lane::I32)?
        };
        self.push_vec(v)
    }
}

/// The integer lane type of half the width of `lane`.
fn narrow_lane(lane: Lane) -> Lane {
    match lane {
        Lane::I16 => Lane::I8,
        Lane::I32 => Lane::I16,
        Lane::I64 => Lane::I32,
        other => unreachable!("no lane type half as wide as {other:?}"),
    }
}
