//! Numeric operators of `i32`, `i64`, `f32` and `f64`: constants, arithmetic, bit operations,
//! comparisons and conversions.
//!
//! LLVM never sees undefined behaviour: integer division checks its traps explicitly (divisor
//! zero, `INT_MIN / -1`), `rem_s` divides by 1 instead of -1 (the remainder is 0 either way),
//! shift amounts are masked, `ctlz`/`cttz` are defined at zero, and trapping float-to-int
//! conversions compare against the exact bounds of the target type before converting.

use inkwell::types::{BasicTypeEnum, FloatType, IntType};
use inkwell::values::{BasicValueEnum, FloatValue, InstructionOpcode, IntValue};
use inkwell::{FloatPredicate, IntPredicate};
use spate_tiers::{CompileError, TrapCode};
use wasmparser::Operator;

use super::FuncTranslator;

#[derive(Clone, Copy, PartialEq, Eq)]
enum DivKind {
    DivS,
    DivU,
    RemS,
    RemU,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum IntBin {
    Add,
    Sub,
    Mul,
    And,
    Or,
    Xor,
    Shl,
    ShrS,
    ShrU,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FloatBin {
    Add,
    Sub,
    Mul,
    Div,
}

impl<'ctx> FuncTranslator<'ctx> {
    pub(super) fn translate_numeric(
        &mut self,
        op: &Operator<'_>,
        offset: usize,
    ) -> Result<(), CompileError> {
        use Operator as O;
        let i32t = self.ctx.i32_type();
        let i64t = self.ctx.i64_type();
        let f32t = self.ctx.f32_type();
        let f64t = self.ctx.f64_type();
        match *op {
            // Constants (floats from their bits: NaN payloads are kept).
            O::I32Const { value } => self.push(i32t.const_int(value as u32 as u64, false).into()),
            O::I64Const { value } => self.push(i64t.const_int(value as u64, false).into()),
            O::F32Const { value } => {
                let bits = i32t.const_int(u64::from(value.bits()), false);
                let v = self.builder.build_bit_cast(bits, f32t, "").unwrap();
                self.push(v);
            }
            O::F64Const { value } => {
                let bits = i64t.const_int(value.bits(), false);
                let v = self.builder.build_bit_cast(bits, f64t, "").unwrap();
                self.push(v);
            }

            // Integer tests and comparisons.
            O::I32Eqz | O::I64Eqz => {
                let x = self.pop().into_int_value();
                let c = self
                    .builder
                    .build_int_compare(IntPredicate::EQ, x, x.get_type().const_zero(), "")
                    .unwrap();
                self.push_bool(c);
            }
            O::I32Eq | O::I64Eq => self.icmp(IntPredicate::EQ),
            O::I32Ne | O::I64Ne => self.icmp(IntPredicate::NE),
            O::I32LtS | O::I64LtS => self.icmp(IntPredicate::SLT),
            O::I32LtU | O::I64LtU => self.icmp(IntPredicate::ULT),
            O::I32GtS | O::I64GtS => self.icmp(IntPredicate::SGT),
            O::I32GtU | O::I64GtU => self.icmp(IntPredicate::UGT),
            O::I32LeS | O::I64LeS => self.icmp(IntPredicate::SLE),
            O::I32LeU | O::I64LeU => self.icmp(IntPredicate::ULE),
            O::I32GeS | O::I64GeS => self.icmp(IntPredicate::SGE),
            O::I32GeU | O::I64GeU => self.icmp(IntPredicate::UGE),

            // Float comparisons: `ne` is true for unordered operands, the others false.
            O::F32Eq | O::F64Eq => self.fcmp(FloatPredicate::OEQ),
            O::F32Ne | O::F64Ne => self.fcmp(FloatPredicate::UNE),
            O::F32Lt | O::F64Lt => self.fcmp(FloatPredicate::OLT),
            O::F32Gt | O::F64Gt => self.fcmp(FloatPredicate::OGT),
            O::F32Le | O::F64Le => self.fcmp(FloatPredicate::OLE),
            O::F32Ge | O::F64Ge => self.fcmp(FloatPredicate::OGE),

            // Integer arithmetic and bit operations.
            O::I32Clz | O::I64Clz => self.bit_count("llvm.ctlz", true),
            O::I32Ctz | O::I64Ctz => self.bit_count("llvm.cttz", true),
            O::I32Popcnt | O::I64Popcnt => self.bit_count("llvm.ctpop", false),
            O::I32Add | O::I64Add => self.int_bin(IntBin::Add),
            O::I32Sub | O::I64Sub => self.int_bin(IntBin::Sub),
            O::I32Mul | O::I64Mul => self.int_bin(IntBin::Mul),
            O::I32DivS | O::I64DivS => self.int_div(DivKind::DivS),
            O::I32DivU | O::I64DivU => self.int_div(DivKind::DivU),
            O::I32RemS | O::I64RemS => self.int_div(DivKind::RemS),
            O::I32RemU | O::I64RemU => self.int_div(DivKind::RemU),
            O::I32And | O::I64And => self.int_bin(IntBin::And),
            O::I32Or | O::I64Or => self.int_bin(IntBin::Or),
            O::I32Xor | O::I64Xor => self.int_bin(IntBin::Xor),
            O::I32Shl | O::I64Shl => self.int_bin(IntBin::Shl),
            O::I32ShrS | O::I64ShrS => self.int_bin(IntBin::ShrS),
            O::I32ShrU | O::I64ShrU => self.int_bin(IntBin::ShrU),
            // Funnel shifts take the amount modulo the width, like wasm rotations.
            O::I32Rotl | O::I64Rotl => self.rotate("llvm.fshl"),
            O::I32Rotr | O::I64Rotr => self.rotate("llvm.fshr"),

            // Float arithmetic. `llvm.minimum`/`maximum` propagate NaN and order -0 < +0 like
            // wasm; `nearest` rounds half to even.
            O::F32Abs | O::F64Abs => self.float_unary("llvm.fabs"),
            O::F32Neg | O::F64Neg => {
                let x = self.pop().into_float_value();
                let v = self.builder.build_float_neg(x, "").unwrap();
                self.push(v.into());
            }
            O::F32Ceil | O::F64Ceil => self.float_unary("llvm.ceil"),
            O::F32Floor | O::F64Floor => self.float_unary("llvm.floor"),
            O::F32Trunc | O::F64Trunc => self.float_unary("llvm.trunc"),
            O::F32Nearest | O::F64Nearest => self.float_unary("llvm.roundeven"),
            O::F32Sqrt | O::F64Sqrt => self.float_unary("llvm.sqrt"),
            O::F32Add | O::F64Add => self.float_bin(FloatBin::Add),
            O::F32Sub | O::F64Sub => self.float_bin(FloatBin::Sub),
            O::F32Mul | O::F64Mul => self.float_bin(FloatBin::Mul),
            O::F32Div | O::F64Div => self.float_bin(FloatBin::Div),
            O::F32Min | O::F64Min => self.float_min_max("llvm.minimum"),
            O::F32Max | O::F64Max => self.float_min_max("llvm.maximum"),
            O::F32Copysign | O::F64Copysign => self.float_intrinsic2("llvm.copysign"),

            // Integer conversions.
            O::I32WrapI64 => {
                let x = self.pop().into_int_value();
                let v = self.builder.build_int_truncate(x, i32t, "").unwrap();
                self.push(v.into());
            }
            O::I64ExtendI32S => {
                let x = self.pop().into_int_value();
                let v = self.builder.build_int_s_extend(x, i64t, "").unwrap();
                self.push(v.into());
            }
            O::I64ExtendI32U => {
                let x = self.pop().into_int_value();
                let v = self.builder.build_int_z_extend(x, i64t, "").unwrap();
                self.push(v.into());
            }
            O::I32Extend8S => self.sign_extend_from(8),
            O::I32Extend16S => self.sign_extend_from(16),
            O::I64Extend8S => self.sign_extend_from(8),
            O::I64Extend16S => self.sign_extend_from(16),
            O::I64Extend32S => self.sign_extend_from(32),

            // Float to integer, trapping.
            O::I32TruncF32S | O::I32TruncF64S => self.trunc_trapping(i32t, true),
            O::I32TruncF32U | O::I32TruncF64U => self.trunc_trapping(i32t, false),
            O::I64TruncF32S | O::I64TruncF64S => self.trunc_trapping(i64t, true),
            O::I64TruncF32U | O::I64TruncF64U => self.trunc_trapping(i64t, false),

            // Float to integer, saturating.
            O::I32TruncSatF32S | O::I32TruncSatF64S => self.trunc_sat(i32t, "llvm.fptosi.sat"),
            O::I32TruncSatF32U | O::I32TruncSatF64U => self.trunc_sat(i32t, "llvm.fptoui.sat"),
            O::I64TruncSatF32S | O::I64TruncSatF64S => self.trunc_sat(i64t, "llvm.fptosi.sat"),
            O::I64TruncSatF32U | O::I64TruncSatF64U => self.trunc_sat(i64t, "llvm.fptoui.sat"),

            // Integer to float, float to float.
            O::F32ConvertI32S | O::F32ConvertI64S => self.int_to_float(f32t, true),
            O::F32ConvertI32U | O::F32ConvertI64U => self.int_to_float(f32t, false),
            O::F64ConvertI32S | O::F64ConvertI64S => self.int_to_float(f64t, true),
            O::F64ConvertI32U | O::F64ConvertI64U => self.int_to_float(f64t, false),
            O::F32DemoteF64 => {
                let x = self.pop().into_float_value();
                // `demote(promote(x))` would fold to `x`, keeping a signalling NaN signalling.
                let x = match x.as_instruction() {
                    Some(i) if i.get_opcode() == InstructionOpcode::FPExt => self.opaque_float(x),
                    _ => x,
                };
                let v = self.builder.build_float_trunc(x, f32t, "").unwrap();
                self.push(v.into());
            }
            O::F64PromoteF32 => {
                let x = self.pop().into_float_value();
                let v = self.builder.build_float_ext(x, f64t, "").unwrap();
                self.push(v.into());
            }

            // Reinterpretations.
            O::I32ReinterpretF32 => self.bitcast(i32t.into()),
            O::I64ReinterpretF64 => self.bitcast(i64t.into()),
            O::F32ReinterpretI32 => self.bitcast(f32t.into()),
            O::F64ReinterpretI64 => self.bitcast(f64t.into()),

            _ => {
                return Err(CompileError::unsupported(
                    format!("operator {op:?} is not supported by the LLVM tier"),
                    offset,
                ));
            }
        }
        Ok(())
    }

    /// Pushes an `i1` condition as an `i32` 0 or 1.
    fn push_bool(&mut self, c: IntValue<'ctx>) {
        let v = self
            .builder
            .build_int_z_extend(c, self.ctx.i32_type(), "")
            .unwrap();
        self.push(v.into());
    }

    fn icmp(&mut self, pred: IntPredicate) {
        let (x, y) = self.pop2();
        let c = self
            .builder
            .build_int_compare(pred, x.into_int_value(), y.into_int_value(), "")
            .unwrap();
        self.push_bool(c);
    }

    fn fcmp(&mut self, pred: FloatPredicate) {
        let (x, y) = self.pop2();
        let c = self
            .builder
            .build_float_compare(pred, x.into_float_value(), y.into_float_value(), "")
            .unwrap();
        self.push_bool(c);
    }

    /// Calls an intrinsic overloaded on the type of its first argument and returns its value.
    pub(crate) fn call_overloaded(
        &self,
        name: &str,
        args: &[BasicValueEnum<'ctx>],
    ) -> BasicValueEnum<'ctx> {
        let f = self.intrinsic(name, &[args[0].get_type()]);
        let args: Vec<_> = args.iter().map(|&a| a.into()).collect();
        self.builder
            .build_call(f, &args, "")
            .unwrap()
            .try_as_basic_value()
            .basic()
            .expect("intrinsic returns a value")
    }

    /// `ctlz`/`cttz` (with `is_zero_poison = false`) or `ctpop`.
    fn bit_count(&mut self, name: &str, zero_flag: bool) {
        let x = self.pop();
        let v = if zero_flag {
            let no_poison = self.ctx.bool_type().const_zero();
            self.call_overloaded(name, &[x, no_poison.into()])
        } else {
            self.call_overloaded(name, &[x])
        };
        self.push(v);
    }

    fn int_bin(&mut self, op: IntBin) {
        let (x, y) = self.pop2();
        let (x, y) = (x.into_int_value(), y.into_int_value());
        let b = &self.builder;
        let mask = |y: IntValue<'ctx>| {
            let width = y.get_type().get_bit_width();
            let m = y.get_type().const_int(u64::from(width - 1), false);
            b.build_and(y, m, "").unwrap()
        };
        let v = match op {
            IntBin::Add => b.build_int_add(x, y, "").unwrap(),
            IntBin::Sub => b.build_int_sub(x, y, "").unwrap(),
            IntBin::Mul => b.build_int_mul(x, y, "").unwrap(),
            IntBin::And => b.build_and(x, y, "").unwrap(),
            IntBin::Or => b.build_or(x, y, "").unwrap(),
            IntBin::Xor => b.build_xor(x, y, "").unwrap(),
            IntBin::Shl => b.build_left_shift(x, mask(y), "").unwrap(),
            IntBin::ShrS => b.build_right_shift(x, mask(y), true, "").unwrap(),
            IntBin::ShrU => b.build_right_shift(x, mask(y), false, "").unwrap(),
        };
        self.push(v.into());
    }

    fn rotate(&mut self, name: &str) {
        let (x, y) = self.pop2();
        let v = self.call_overloaded(name, &[x, x, y]);
        self.push(v);
    }

    /// Integer division and remainder with explicit trap checks.
    fn int_div(&mut self, kind: DivKind) {
        let (x, y) = self.pop2();
        let (x, y) = (x.into_int_value(), y.into_int_value());
        let ty = y.get_type();
        let divisor = y.get_sign_extended_constant();
        if divisor.is_none_or(|d| d == 0) {
            let is_zero = self
                .builder
                .build_int_compare(IntPredicate::EQ, y, ty.const_zero(), "")
                .unwrap();
            self.trap_if(is_zero, TrapCode::IntegerDivisionByZero);
        }
        let minus_one = ty.const_all_ones();
        let v = match kind {
            DivKind::DivU => self.builder.build_int_unsigned_div(x, y, "").unwrap(),
            DivKind::RemU => self.builder.build_int_unsigned_rem(x, y, "").unwrap(),
            DivKind::DivS => {
                if divisor.is_none_or(|d| d == -1) {
                    let min = int_min(ty);
                    let b = &self.builder;
                    let is_min = b.build_int_compare(IntPredicate::EQ, x, min, "").unwrap();
                    let is_minus_one = b
                        .build_int_compare(IntPredicate::EQ, y, minus_one, "")
                        .unwrap();
                    let overflow = b.build_and(is_min, is_minus_one, "").unwrap();
                    self.trap_if(overflow, TrapCode::IntegerOverflow);
                }
                self.builder.build_int_signed_div(x, y, "").unwrap()
            }
            DivKind::RemS => {
                // x rem -1 is 0, and so is x rem 1: divide by 1 instead of -1 so that
                // INT_MIN rem -1 never reaches `srem` (where it is undefined).
                let y = if divisor.is_none_or(|d| d == -1) {
                    let b = &self.builder;
                    let is_minus_one = b
                        .build_int_compare(IntPredicate::EQ, y, minus_one, "")
                        .unwrap();
                    b.build_select(is_minus_one, ty.const_int(1, false), y, "")
                        .unwrap()
                        .into_int_value()
                } else {
                    y
                };
                self.builder.build_int_signed_rem(x, y, "").unwrap()
            }
        };
        self.push(v.into());
    }

    fn float_unary(&mut self, name: &str) {
        let x = self.pop();
        let v = self.call_overloaded(name, &[x]);
        self.push(v);
    }

    fn float_intrinsic2(&mut self, name: &str) {
        let (x, y) = self.pop2();
        let v = self.call_overloaded(name, &[x, y]);
        self.push(v);
    }

    /// `min`/`max`: `llvm.minimum`/`maximum`, except that a NaN operand gives `x + y`, so that a
    /// signalling NaN comes out quiet (the x86 lowering returns the NaN operand unchanged).
    fn float_min_max(&mut self, name: &str) {
        let (x, y) = self.pop2();
        let m = self.call_overloaded(name, &[x, y]).into_float_value();
        let (x, y) = (x.into_float_value(), y.into_float_value());
        let b = &self.builder;
        let unordered = b
            .build_float_compare(FloatPredicate::UNO, x, y, "")
            .unwrap();
        let nan = b.build_float_add(x, y, "").unwrap();
        let v = b.build_select(unordered, nan, m, "").unwrap();
        self.push(v);
    }

    fn float_bin(&mut self, op: FloatBin) {
        let (x, y) = self.pop2();
        let (x, y) = (x.into_float_value(), y.into_float_value());
        // LLVM folds `x - 0`, `-0 - x`, `x * ±1`, `x / ±1` to `x` or `-x`, which keeps a
        // signalling NaN signalling; wasm requires an arithmetic (quiet) NaN. Hide such
        // constants from the folder.
        let (x, y) = (self.unfoldable(x), self.unfoldable(y));
        let b = &self.builder;
        let v = match op {
            FloatBin::Add => b.build_float_add(x, y, "").unwrap(),
            FloatBin::Sub => b.build_float_sub(x, y, "").unwrap(),
            FloatBin::Mul => b.build_float_mul(x, y, "").unwrap(),
            FloatBin::Div => b.build_float_div(x, y, "").unwrap(),
        };
        self.push(v.into());
    }

    /// `x`, or an opaque copy of it if it is a constant that LLVM's algebraic simplifications
    /// treat as an identity (`±0`, `±1`).
    fn unfoldable(&self, x: FloatValue<'ctx>) -> FloatValue<'ctx> {
        match x.get_constant() {
            Some((c, _)) if c.abs() == 0.0 || c.abs() == 1.0 => self.opaque_float(x),
            _ => x,
        }
    }

    /// `x` passed through an empty inline-assembly statement: the same value in a register,
    /// which no optimization can see through.
    pub(crate) fn opaque_float(&self, x: FloatValue<'ctx>) -> FloatValue<'ctx> {
        let ty = x.get_type();
        let fn_ty = ty.fn_type(&[ty.into()], false);
        let asm = self.ctx.create_inline_asm(
            fn_ty,
            String::new(),
            "=x,0".to_string(),
            false,
            false,
            None,
            false,
        );
        self.builder
            .build_indirect_call(fn_ty, asm, &[x.into()], "")
            .unwrap()
            .try_as_basic_value()
            .basic()
            .expect("the statement returns its operand")
            .into_float_value()
    }

    /// Sign-extends the low `bits` bits of the value on top of the stack to its own width.
    fn sign_extend_from(&mut self, bits: u32) {
        let x = self.pop().into_int_value();
        let narrow = match bits {
            8 => self.ctx.i8_type(),
            16 => self.ctx.i16_type(),
            _ => self.ctx.i32_type(),
        };
        let b = &self.builder;
        let t = b.build_int_truncate(x, narrow, "").unwrap();
        let v = b.build_int_s_extend(t, x.get_type(), "").unwrap();
        self.push(v.into());
    }

    fn bitcast(&mut self, to: BasicTypeEnum<'ctx>) {
        let x = self.pop();
        let v = self.builder.build_bit_cast(x, to, "").unwrap();
        self.push(v);
    }

    fn int_to_float(&mut self, to: FloatType<'ctx>, signed: bool) {
        let x = self.pop().into_int_value();
        let v = if signed {
            self.builder.build_signed_int_to_float(x, to, "").unwrap()
        } else {
            self.builder.build_unsigned_int_to_float(x, to, "").unwrap()
        };
        self.push(v.into());
    }

    fn trunc_sat(&mut self, to: IntType<'ctx>, name: &str) {
        let x = self.pop();
        let f = self.intrinsic(name, &[to.into(), x.get_type()]);
        let v = self
            .builder
            .build_call(f, &[x.into()], "")
            .unwrap()
            .try_as_basic_value()
            .basic()
            .expect("intrinsic returns a value");
        self.push(v);
    }

    /// A trapping float-to-int conversion: NaN traps with `BadConversionToInteger`, values
    /// whose truncation is out of range with `IntegerOverflow`; the conversion then only sees
    /// values in range.
    fn trunc_trapping(&mut self, to: IntType<'ctx>, signed: bool) {
        let x = self.pop().into_float_value();
        let is_nan = self
            .builder
            .build_float_compare(FloatPredicate::UNO, x, x, "")
            .unwrap();
        self.trap_if(is_nan, TrapCode::BadConversionToInteger);
        let in_range = self.trunc_in_range(x, to.get_bit_width(), signed);
        let out_of_range = self.builder.build_not(in_range, "").unwrap();
        self.trap_if(out_of_range, TrapCode::IntegerOverflow);
        let v = if signed {
            self.builder.build_float_to_signed_int(x, to, "").unwrap()
        } else {
            self.builder.build_float_to_unsigned_int(x, to, "").unwrap()
        };
        self.push(v.into());
    }

    /// Whether the (non-NaN) float `x` truncates to a value representable in a `bits`-bit
    /// integer: `lo < x < hi` with exact exclusive bounds, or `lo <= x` where the exclusive
    /// lower bound is not representable in `x`'s type (then no value lies between it and the
    /// integer minimum).
    fn trunc_in_range(&self, x: FloatValue<'ctx>, bits: u32, signed: bool) -> IntValue<'ctx> {
        let ft = x.get_type();
        let is_f64 = ft == self.ctx.f64_type();
        let b = &self.builder;
        let (lo, lo_inclusive, hi) = match (signed, bits, is_f64) {
            // -2^31 - 1 is exact in f64 only.
            (true, 32, true) => (-2_147_483_649.0, false, 2_147_483_648.0),
            (true, 32, false) => (-2_147_483_648.0, true, 2_147_483_648.0),
            (true, _, _) => (
                -9_223_372_036_854_775_808.0,
                true,
                9_223_372_036_854_775_808.0,
            ),
            (false, 32, _) => (-1.0, false, 4_294_967_296.0),
            (false, _, _) => (-1.0, false, 18_446_744_073_709_551_616.0),
        };
        let lo_pred = if lo_inclusive {
            FloatPredicate::OGE
        } else {
            FloatPredicate::OGT
        };
        let above = b
            .build_float_compare(lo_pred, x, ft.const_float(lo), "")
            .unwrap();
        let below = b
            .build_float_compare(FloatPredicate::OLT, x, ft.const_float(hi), "")
            .unwrap();
        b.build_and(above, below, "").unwrap()
    }
}

/// The minimum signed value of an integer type.
fn int_min(ty: IntType<'_>) -> IntValue<'_> {
    let bits = ty.get_bit_width();
    ty.const_int(1u64 << (bits - 1), false)
}
