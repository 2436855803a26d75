//! Numeric operators of `i32`, `i64`, `f32` and `f64`: constants, arithmetic, bit operations,
//! comparisons and conversions. SIMD operators are forwarded to the SIMD translation; anything
//! else is an unsupported operator.
//!
//! Integer division checks its traps explicitly (divisor zero, and `INT_MIN / -1` for signed
//! division) so that it never relies on a hardware fault. Trapping float-to-int conversions
//! use Cranelift's `fcvt_to_sint`/`fcvt_to_uint`, whose explicit checks trap with
//! `BAD_CONVERSION_TO_INTEGER` (NaN) and `INTEGER_OVERFLOW` (out of range).

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::immediates::{Ieee32, Ieee64};
use cranelift_codegen::ir::{
    self, InstBuilder, InstructionData, MemFlagsData, Opcode, Value, types,
};
use cranelift_frontend::FunctionBuilder;
use spate_tiers::{CompileError, TrapCode};
use wasmparser::Operator;

use super::{FuncTranslator, is_simd};
use crate::cranelift_trap_code;

use types::{F32, F64, I8, I16, I32, I64};

#[derive(Clone, Copy, PartialEq, Eq)]
enum DivKind {
    DivS,
    DivU,
    RemS,
    RemU,
}

impl<'a> FuncTranslator<'a> {
    pub(super) fn translate_numeric(
        &mut self,
        op: &Operator<'_>,
        offset: usize,
    ) -> Result<(), CompileError> {
        use Operator as O;
        match *op {
            // Constants.
            O::I32Const { value } => {
                let v = self.builder.ins().iconst(I32, i64::from(value as u32));
                self.push(v);
            }
            O::I64Const { value } => {
                let v = self.builder.ins().iconst(I64, value);
                self.push(v);
            }
            O::F32Const { value } => {
                let v = self.builder.ins().f32const(Ieee32::with_bits(value.bits()));
                self.push(v);
            }
            O::F64Const { value } => {
                let v = self.builder.ins().f64const(Ieee64::with_bits(value.bits()));
                self.push(v);
            }

            // Integer tests and comparisons.
            O::I32Eqz | O::I64Eqz => {
                let x = self.pop1();
                let c = self.builder.ins().icmp_imm_s(IntCC::Equal, x, 0);
                self.push_bool(c);
            }
            O::I32Eq | O::I64Eq => self.icmp(IntCC::Equal),
            O::I32Ne | O::I64Ne => self.icmp(IntCC::NotEqual),
            O::I32LtS | O::I64LtS => self.icmp(IntCC::SignedLessThan),
            O::I32LtU | O::I64LtU => self.icmp(IntCC::UnsignedLessThan),
            O::I32GtS | O::I64GtS => self.icmp(IntCC::SignedGreaterThan),
            O::I32GtU | O::I64GtU => self.icmp(IntCC::UnsignedGreaterThan),
            O::I32LeS | O::I64LeS => self.icmp(IntCC::SignedLessThanOrEqual),
            O::I32LeU | O::I64LeU => self.icmp(IntCC::UnsignedLessThanOrEqual),
            O::I32GeS | O::I64GeS => self.icmp(IntCC::SignedGreaterThanOrEqual),
            O::I32GeU | O::I64GeU => self.icmp(IntCC::UnsignedGreaterThanOrEqual),

            // Float comparisons (`ne` is true for unordered operands, the others false).
            O::F32Eq | O::F64Eq => self.fcmp(FloatCC::Equal),
            O::F32Ne | O::F64Ne => self.fcmp(FloatCC::NotEqual),
            O::F32Lt | O::F64Lt => self.fcmp(FloatCC::LessThan),
            O::F32Gt | O::F64Gt => self.fcmp(FloatCC::GreaterThan),
            O::F32Le | O::F64Le => self.fcmp(FloatCC::LessThanOrEqual),
            O::F32Ge | O::F64Ge => self.fcmp(FloatCC::GreaterThanOrEqual),

            // Integer arithmetic and bit operations.
            O::I32Clz | O::I64Clz => self.unop(|b, x| b.ins().clz(x)),
            O::I32Ctz | O::I64Ctz => self.unop(|b, x| b.ins().ctz(x)),
            O::I32Popcnt | O::I64Popcnt => self.unop(|b, x| b.ins().popcnt(x)),
            O::I32Add | O::I64Add => self.binop(|b, x, y| b.ins().iadd(x, y)),
            O::I32Sub | O::I64Sub => self.binop(|b, x, y| b.ins().isub(x, y)),
            O::I32Mul | O::I64Mul => self.binop(|b, x, y| b.ins().imul(x, y)),
            O::I32DivS | O::I64DivS => self.int_div(DivKind::DivS),
            O::I32DivU | O::I64DivU => self.int_div(DivKind::DivU),
            O::I32RemS | O::I64RemS => self.int_div(DivKind::RemS),
            O::I32RemU | O::I64RemU => self.int_div(DivKind::RemU),
            O::I32And | O::I64And => self.binop(|b, x, y| b.ins().band(x, y)),
            O::I32Or | O::I64Or => self.binop(|b, x, y| b.ins().bor(x, y)),
            O::I32Xor | O::I64Xor => self.binop(|b, x, y| b.ins().bxor(x, y)),
            // Cranelift shifts and rotates take the amount modulo the width, like wasm.
            O::I32Shl | O::I64Shl => self.binop(|b, x, y| b.ins().ishl(x, y)),
            O::I32ShrS | O::I64ShrS => self.binop(|b, x, y| b.ins().sshr(x, y)),
            O::I32ShrU | O::I64ShrU => self.binop(|b, x, y| b.ins().ushr(x, y)),
            O::I32Rotl | O::I64Rotl => self.binop(|b, x, y| b.ins().rotl(x, y)),
            O::I32Rotr | O::I64Rotr => self.binop(|b, x, y| b.ins().rotr(x, y)),

            // Float arithmetic. Cranelift's fmin/fmax have wasm semantics (NaN-propagating,
            // -0 < +0); nearest rounds to even.
            O::F32Abs | O::F64Abs => self.unop(|b, x| b.ins().fabs(x)),
            O::F32Neg | O::F64Neg => self.unop(|b, x| b.ins().fneg(x)),
            O::F32Ceil | O::F64Ceil => self.unop(|b, x| b.ins().ceil(x)),
            O::F32Floor | O::F64Floor => self.unop(|b, x| b.ins().floor(x)),
            O::F32Trunc | O::F64Trunc => self.unop(|b, x| b.ins().trunc(x)),
            O::F32Nearest | O::F64Nearest => self.unop(|b, x| b.ins().nearest(x)),
            O::F32Sqrt | O::F64Sqrt => self.unop(|b, x| b.ins().sqrt(x)),
            O::F32Add | O::F64Add => self.binop(|b, x, y| b.ins().fadd(x, y)),
            O::F32Sub | O::F64Sub => self.binop(|b, x, y| b.ins().fsub(x, y)),
            O::F32Mul | O::F64Mul => self.binop(|b, x, y| b.ins().fmul(x, y)),
            O::F32Div | O::F64Div => self.binop(|b, x, y| b.ins().fdiv(x, y)),
            O::F32Min | O::F64Min => self.binop(|b, x, y| b.ins().fmin(x, y)),
            O::F32Max | O::F64Max => self.binop(|b, x, y| b.ins().fmax(x, y)),
            O::F32Copysign | O::F64Copysign => self.binop(|b, x, y| b.ins().fcopysign(x, y)),

            // Integer conversions.
            O::I32WrapI64 => self.unop(|b, x| b.ins().ireduce(I32, x)),
            O::I64ExtendI32S => self.unop(|b, x| b.ins().sextend(I64, x)),
            O::I64ExtendI32U => self.unop(|b, x| b.ins().uextend(I64, x)),
            O::I32Extend8S => self.sign_extend(I8, I32),
            O::I32Extend16S => self.sign_extend(I16, I32),
            O::I64Extend8S => self.sign_extend(I8, I64),
            O::I64Extend16S => self.sign_extend(I16, I64),
            O::I64Extend32S => self.sign_extend(I32, I64),

            // Float to integer, trapping.
            O::I32TruncF32S | O::I32TruncF64S => self.unop(|b, x| b.ins().fcvt_to_sint(I32, x)),
            O::I32TruncF32U | O::I32TruncF64U => self.unop(|b, x| b.ins().fcvt_to_uint(I32, x)),
            O::I64TruncF32S | O::I64TruncF64S => self.unop(|b, x| b.ins().fcvt_to_sint(I64, x)),
            O::I64TruncF32U | O::I64TruncF64U => self.unop(|b, x| b.ins().fcvt_to_uint(I64, x)),

            // Float to integer, saturating.
            O::I32TruncSatF32S | O::I32TruncSatF64S => {
                self.unop(|b, x| b.ins().fcvt_to_sint_sat(I32, x))
            }
            O::I32TruncSatF32U | O::I32TruncSatF64U => {
                self.unop(|b, x| b.ins().fcvt_to_uint_sat(I32, x))
            }
            O::I64TruncSatF32S | O::I64TruncSatF64S => {
                self.unop(|b, x| b.ins().fcvt_to_sint_sat(I64, x))
            }
            O::I64TruncSatF32U | O::I64TruncSatF64U => {
                self.unop(|b, x| b.ins().fcvt_to_uint_sat(I64, x))
            }

            // Integer to float, float to float.
            O::F32ConvertI32S | O::F32ConvertI64S => {
                self.unop(|b, x| b.ins().fcvt_from_sint(F32, x))
            }
            O::F32ConvertI32U | O::F32ConvertI64U => {
                self.unop(|b, x| b.ins().fcvt_from_uint(F32, x))
            }
            O::F64ConvertI32S | O::F64ConvertI64S => {
                self.unop(|b, x| b.ins().fcvt_from_sint(F64, x))
            }
            O::F64ConvertI32U | O::F64ConvertI64U => {
                self.unop(|b, x| b.ins().fcvt_from_uint(F64, x))
            }
            O::F32DemoteF64 => self.unop(|b, x| b.ins().fdemote(F32, x)),
            O::F64PromoteF32 => self.unop(|b, x| b.ins().fpromote(F64, x)),

            // Reinterpretations.
            O::I32ReinterpretF32 => self.bitcast(I32),
            O::I64ReinterpretF64 => self.bitcast(I64),
            O::F32ReinterpretI32 => self.bitcast(F32),
            O::F64ReinterpretI64 => self.bitcast(F64),

            _ if is_simd(op) => self.translate_simd(op, offset)?,
            _ => {
                return Err(CompileError::unsupported(
                    format!("operator {op:?} is not supported by the baseline tier"),
                    offset,
                ));
            }
        }
        Ok(())
    }

    /// Pushes an `i8` condition as an `i32` 0 or 1.
    fn push_bool(&mut self, c: Value) {
        let v = self.builder.ins().uextend(I32, c);
        self.push(v);
    }

    fn unop(&mut self, f: impl FnOnce(&mut FunctionBuilder<'a>, Value) -> Value) {
        let x = self.pop1();
        let v = f(&mut self.builder, x);
        self.push(v);
    }

    fn binop(&mut self, f: impl FnOnce(&mut FunctionBuilder<'a>, Value, Value) -> Value) {
        let (x, y) = self.pop2();
        let v = f(&mut self.builder, x, y);
        self.push(v);
    }

    fn icmp(&mut self, cc: IntCC) {
        let (x, y) = self.pop2();
        let c = self.builder.ins().icmp(cc, x, y);
        self.push_bool(c);
    }

    fn fcmp(&mut self, cc: FloatCC) {
        let (x, y) = self.pop2();
        let c = self.builder.ins().fcmp(cc, x, y);
        self.push_bool(c);
    }

    fn sign_extend(&mut self, from: ir::Type, to: ir::Type) {
        self.unop(|b, x| {
            let narrow = b.ins().ireduce(from, x);
            b.ins().sextend(to, narrow)
        });
    }

    fn bitcast(&mut self, to: ir::Type) {
        self.unop(|b, x| b.ins().bitcast(to, MemFlagsData::new(), x));
    }

    /// The value of `v` if it is an integer constant.
    fn iconst_value(&self, v: Value) -> Option<i64> {
        let dfg = &self.builder.func.dfg;
        let inst = dfg.value_def(v).inst()?;
        match dfg.insts[inst] {
            InstructionData::UnaryImm {
                opcode: Opcode::Iconst,
                imm,
            } => {
                // Sign-extend from the value's width.
                let bits = dfg.value_type(v).bits();
                let raw = imm.bits();
                Some(if bits < 64 {
                    (raw << (64 - bits)) >> (64 - bits)
                } else {
                    raw
                })
            }
            _ => None,
        }
    }

    /// Integer division and remainder with explicit trap checks.
    fn int_div(&mut self, kind: DivKind) {
        let (x, y) = self.pop2();
        let ty = self.value_type(y);
        let divisor = self.iconst_value(y);
        if divisor.is_none_or(|d| d == 0) {
            self.builder
                .ins()
                .trapz(y, cranelift_trap_code(TrapCode::IntegerDivisionByZero));
        }
        if kind == DivKind::DivS && divisor.is_none_or(|d| d == -1) {
            // INT_MIN / -1 overflows. (INT_MIN rem -1 is 0, which `srem` computes.)
            let min = if ty == I32 {
                i64::from(i32::MIN)
            } else {
                i64::MIN
            };
            let is_min = self.builder.ins().icmp_imm_s(IntCC::Equal, x, min);
            let is_minus_one = self.builder.ins().icmp_imm_s(IntCC::Equal, y, -1);
            let overflow = self.builder.ins().band(is_min, is_minus_one);
            self.builder
                .ins()
                .trapnz(overflow, cranelift_trap_code(TrapCode::IntegerOverflow));
        }
        let ins = self.builder.ins();
        let v = match kind {
            DivKind::DivS => ins.sdiv(x, y),
            DivKind::DivU => ins.udiv(x, y),
            DivKind::RemS => ins.srem(x, y),
            DivKind::RemU => ins.urem(x, y),
        };
        self.push(v);
    }
}
