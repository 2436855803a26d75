//! Structured control flow: `block`, `loop`, `if`/`else`, `end`, branches, `return`,
//! `unreachable`, trap blocks, and the second translation that makes an on-stack-replacement
//! entry.
//!
//! Each wasm construct gets a "next" LLVM block whose phi nodes are the construct's results; a
//! loop additionally gets a header block whose phi nodes are the loop's parameters. Branches add
//! the top values of the operand stack as incoming values of the target's phis.
//!
//! # On-stack-replacement entries
//!
//! An OSR entry for loop `L` is the function translated once as usual (the "first
//! translation"), plus a second translation of the code from `L` to the end of the body, which
//! the entry block jumps to after loading the locals from the caller's buffer. The second
//! translation starts with the control stack the first one had at `L`, with fresh end blocks
//! for enclosing `block`s and `if`s (when it reaches their `end` it simply goes on with the
//! code after it) but the first translation's headers for enclosing loops: a branch back to an
//! outer loop enters the outer loop at its only header, so every loop stays a natural loop that
//! LLVM optimizes. Code reachable only from the first translation's own start is dead and
//! removed by LLVM.

use inkwell::IntPredicate;
use inkwell::attributes::AttributeLoc;
use inkwell::basic_block::BasicBlock;
use inkwell::types::BasicTypeEnum;
use inkwell::values::{BasicValue, BasicValueEnum, PhiValue};
use spate_tiers::abi::RET_AREA_SLOT;
use spate_tiers::libcall::Libcall;
use spate_tiers::{CompileError, TrapCode};
use wasmparser::{BlockType, BrTable, FunctionBody, Operator, OperatorsReader};

use super::{FuncTranslator, enum_attribute};

/// One entry of the control stack.
#[derive(Clone)]
pub(crate) struct ControlFrame<'ctx> {
    kind: FrameKind<'ctx>,
    /// The block following the construct; its phis are the construct's results.
    next: BasicBlock<'ctx>,
    next_phis: Vec<PhiValue<'ctx>>,
    /// Operand stack height below the construct's parameters.
    height: usize,
    /// Whether any branch targets `next` (so it must be emitted).
    exit_reachable: bool,
}

#[derive(Clone)]
enum FrameKind<'ctx> {
    /// The function body; `next` is the exit block that returns its phis.
    Function,
    Block,
    Loop {
        header: BasicBlock<'ctx>,
        header_phis: Vec<PhiValue<'ctx>>,
    },
    If {
        /// Start of the `else` arm (or of the implicit empty one).
        else_block: BasicBlock<'ctx>,
        /// The block parameters, which the `else` arm starts with again.
        else_params: Vec<BasicValueEnum<'ctx>>,
        has_else: bool,
    },
    /// An `if` around the loop of an OSR entry, in the second translation: its condition was
    /// evaluated by the first translation, so its `else` arm is unreachable.
    OsrIf {
        has_else: bool,
    },
}

/// On-stack-replacement state: which loop to enter and what the first translation saw there.
pub(crate) struct OsrState<'ctx> {
    loop_index: u32,
    loops_seen: u32,
    /// The control stack at the target loop (without the loop's own frame).
    snapshot: Option<Vec<ControlFrame<'ctx>>>,
    /// Whether the second translation is running (no more recording).
    second_pass: bool,
}

impl OsrState<'_> {
    pub(crate) fn new(loop_index: u32) -> Self {
        OsrState {
            loop_index,
            loops_seen: 0,
            snapshot: None,
            second_pass: false,
        }
    }
}

impl<'ctx> FuncTranslator<'ctx> {
    /// A new block with one phi of each of `types`. The builder stays where it was.
    fn block_with_phis(
        &self,
        types: &[BasicTypeEnum<'ctx>],
    ) -> (BasicBlock<'ctx>, Vec<PhiValue<'ctx>>) {
        let block = self.ctx.append_basic_block(self.func, "");
        if types.is_empty() {
            return (block, Vec::new());
        }
        let current = self.builder.get_insert_block();
        self.builder.position_at_end(block);
        let phis = types
            .iter()
            .map(|&t| self.builder.build_phi(t, "").unwrap())
            .collect();
        if let Some(current) = current {
            self.builder.position_at_end(current);
        }
        (block, phis)
    }

    fn wasm_types(
        &self,
        tys: &[wasmparser::ValType],
        offset: usize,
    ) -> Result<Vec<BasicTypeEnum<'ctx>>, CompileError> {
        tys.iter().map(|&t| self.llvm_type(t, offset)).collect()
    }

    /// The frame of the function body.
    pub(super) fn function_frame(&mut self) -> ControlFrame<'ctx> {
        let types = self.result_types.clone();
        let (next, next_phis) = self.block_with_phis(&types);
        ControlFrame {
            kind: FrameKind::Function,
            next,
            next_phis,
            height: 0,
            exit_reachable: false,
        }
    }

    /// Adds the top `phis.len()` stack values as incoming values from the current block.
    fn add_incoming(&self, phis: &[PhiValue<'ctx>]) {
        if phis.is_empty() {
            return;
        }
        let from = self.current_block();
        let start = self.stack.len() - phis.len();
        for (phi, v) in phis.iter().zip(&self.stack[start..]) {
            phi.add_incoming(&[(v as &dyn BasicValue<'ctx>, from)]);
        }
    }

    /// Adds `values` as incoming values from the current block.
    fn add_incoming_values(&self, phis: &[PhiValue<'ctx>], values: &[BasicValueEnum<'ctx>]) {
        let from = self.current_block();
        for (phi, v) in phis.iter().zip(values) {
            phi.add_incoming(&[(v as &dyn BasicValue<'ctx>, from)]);
        }
    }

    /// The block raising trap `code` (one per function and code).
    pub(crate) fn trap_block(&mut self, code: TrapCode) -> BasicBlock<'ctx> {
        if let Some(&b) = self.trap_blocks.get(&(code as u8)) {
            return b;
        }
        let block = self.ctx.append_basic_block(self.func, "trap");
        let fn_ptr = self.libcall_ptr(Libcall::RaiseTrap);
        let fn_type = self.libcall_type(Libcall::RaiseTrap);
        let b = self.ctx.create_builder();
        b.position_at_end(block);
        let code_value = self.ctx.i32_type().const_int(code as u64, false);
        let call = b
            .build_indirect_call(fn_type, fn_ptr, &[self.vmctx.into(), code_value.into()], "")
            .unwrap();
        call.add_attribute(AttributeLoc::Function, enum_attribute(self.ctx, "noreturn"));
        call.add_attribute(AttributeLoc::Function, enum_attribute(self.ctx, "cold"));
        b.build_unreachable().unwrap();
        self.trap_blocks.insert(code as u8, block);
        block
    }

    pub(super) fn translate_unreachable(&mut self) {
        let trap = self.trap_block(TrapCode::UnreachableCodeReached);
        self.builder.build_unconditional_branch(trap).unwrap();
        self.reachable = false;
    }

    pub(super) fn translate_block(
        &mut self,
        blockty: BlockType,
        offset: usize,
    ) -> Result<(), CompileError> {
        let sig = self.block_sig(blockty, offset)?;
        let results = self.wasm_types(sig.results(), offset)?;
        let (next, next_phis) = self.block_with_phis(&results);
        let num_params = sig.params().len();
        self.control.push(ControlFrame {
            kind: FrameKind::Block,
            next,
            next_phis,
            height: self.stack.len() - num_params,
            exit_reachable: false,
        });
        Ok(())
    }

    pub(super) fn translate_loop(
        &mut self,
        blockty: BlockType,
        offset: usize,
    ) -> Result<(), CompileError> {
        let sig = self.block_sig(blockty, offset)?;
        let params = self.wasm_types(sig.params(), offset)?;
        let results = self.wasm_types(sig.results(), offset)?;
        let (header, header_phis) = self.block_with_phis(&params);
        let (next, next_phis) = self.block_with_phis(&results);
        self.add_incoming(&header_phis);
        self.builder.build_unconditional_branch(header).unwrap();
        let height = self.stack.len() - params.len();
        self.stack.truncate(height);
        self.builder.position_at_end(header);
        self.stack
            .extend(header_phis.iter().map(|p| p.as_basic_value()));
        self.control.push(ControlFrame {
            kind: FrameKind::Loop {
                header,
                header_phis,
            },
            next,
            next_phis,
            height,
            exit_reachable: false,
        });
        Ok(())
    }

    pub(super) fn translate_if(
        &mut self,
        blockty: BlockType,
        offset: usize,
    ) -> Result<(), CompileError> {
        let sig = self.block_sig(blockty, offset)?;
        let cond = self.pop().into_int_value();
        let results = self.wasm_types(sig.results(), offset)?;
        let (next, next_phis) = self.block_with_phis(&results);
        let then_block = self.ctx.append_basic_block(self.func, "then");
        let else_block = self.ctx.append_basic_block(self.func, "else");
        let zero = cond.get_type().const_zero();
        let c = self
            .builder
            .build_int_compare(IntPredicate::NE, cond, zero, "")
            .unwrap();
        self.builder
            .build_conditional_branch(c, then_block, else_block)
            .unwrap();
        self.builder.position_at_end(then_block);
        let height = self.stack.len() - sig.params().len();
        let else_params = self.stack[height..].to_vec();
        self.control.push(ControlFrame {
            kind: FrameKind::If {
                else_block,
                else_params,
                has_else: false,
            },
            next,
            next_phis,
            height,
            exit_reachable: false,
        });
        Ok(())
    }

    pub(super) fn translate_else(&mut self, offset: usize) -> Result<(), CompileError> {
        let reachable = self.reachable;
        let Some(frame) = self.control.last_mut() else {
            return Err(CompileError::invalid("`else` outside of `if`", offset));
        };
        let (else_block, params) = match &mut frame.kind {
            FrameKind::If {
                else_block,
                else_params,
                has_else,
            } if !*has_else => {
                *has_else = true;
                (Some(*else_block), std::mem::take(else_params))
            }
            FrameKind::OsrIf { has_else } if !*has_else => {
                *has_else = true;
                (None, Vec::new())
            }
            _ => return Err(CompileError::invalid("`else` without `if`", offset)),
        };
        let height = frame.height;
        if reachable {
            frame.exit_reachable = true;
            let phis = frame.next_phis.clone();
            let next = frame.next;
            self.add_incoming(&phis);
            self.builder.build_unconditional_branch(next).unwrap();
        }
        self.stack.truncate(height);
        match else_block {
            Some(else_block) => {
                self.stack.extend_from_slice(&params);
                self.builder.position_at_end(else_block);
                // The `if` head was reachable (frames are only pushed in reachable code).
                self.reachable = true;
            }
            None => {
                // OSR second translation: the else arm cannot be entered from here.
                self.reachable = false;
            }
        }
        Ok(())
    }

    pub(super) fn translate_end(&mut self, offset: usize) -> Result<(), CompileError> {
        let Some(mut frame) = self.control.pop() else {
            return Err(CompileError::invalid(
                "`end` without a matching block",
                offset,
            ));
        };
        match frame.kind {
            FrameKind::Function => {
                if self.reachable {
                    self.emit_return();
                }
                if frame.exit_reachable {
                    self.stack.truncate(frame.height);
                    self.builder.position_at_end(frame.next);
                    self.stack
                        .extend(frame.next_phis.iter().map(|p| p.as_basic_value()));
                    self.emit_return();
                } else {
                    self.terminate_unused(frame.next);
                }
                self.stack.clear();
                self.reachable = false;
                return Ok(());
            }
            FrameKind::Block | FrameKind::Loop { .. } | FrameKind::OsrIf { .. }
                if self.reachable && !frame.exit_reachable =>
            {
                // Nothing branches to the end of the construct: its results are already on the
                // stack, so keep going in the current block (`next` is never used).
                self.terminate_unused(frame.next);
                return Ok(());
            }
            FrameKind::Block | FrameKind::Loop { .. } | FrameKind::OsrIf { .. } => {}
            FrameKind::If {
                else_block,
                ref else_params,
                has_else,
            } => {
                if !has_else {
                    // The implicit `else` passes the parameters through as results.
                    if self.reachable {
                        self.add_incoming(&frame.next_phis);
                        self.builder.build_unconditional_branch(frame.next).unwrap();
                    }
                    self.builder.position_at_end(else_block);
                    self.add_incoming_values(&frame.next_phis, else_params);
                    self.builder.build_unconditional_branch(frame.next).unwrap();
                    frame.exit_reachable = true;
                    self.reachable = false;
                }
            }
        }
        if self.reachable {
            frame.exit_reachable = true;
            self.add_incoming(&frame.next_phis);
            self.builder.build_unconditional_branch(frame.next).unwrap();
        }
        self.stack.truncate(frame.height);
        if frame.exit_reachable {
            self.builder.position_at_end(frame.next);
            self.stack
                .extend(frame.next_phis.iter().map(|p| p.as_basic_value()));
            self.reachable = true;
        } else {
            self.terminate_unused(frame.next);
            self.reachable = false;
        }
        Ok(())
    }

    /// Gives a block that nothing branches to a terminator (LLVM deletes it).
    fn terminate_unused(&self, block: BasicBlock<'ctx>) {
        let current = self.builder.get_insert_block();
        self.builder.position_at_end(block);
        self.builder.build_unreachable().unwrap();
        if let Some(current) = current {
            self.builder.position_at_end(current);
        }
    }

    /// The block a branch to relative depth `depth` goes to, and the phis it passes values to.
    /// Marks the target as reachable.
    fn branch_target(&mut self, depth: u32) -> (BasicBlock<'ctx>, Vec<PhiValue<'ctx>>) {
        let i = self.control.len() - 1 - depth as usize;
        let frame = &mut self.control[i];
        match &frame.kind {
            FrameKind::Loop {
                header,
                header_phis,
            } => (*header, header_phis.clone()),
            _ => {
                frame.exit_reachable = true;
                (frame.next, frame.next_phis.clone())
            }
        }
    }

    pub(super) fn translate_br(&mut self, depth: u32) {
        if depth as usize == self.control.len() - 1 {
            // A branch to the function body is a return.
            self.translate_return();
            return;
        }
        let (target, phis) = self.branch_target(depth);
        self.add_incoming(&phis);
        self.builder.build_unconditional_branch(target).unwrap();
        self.reachable = false;
    }

    pub(super) fn translate_br_if(&mut self, depth: u32) {
        let cond = self.pop().into_int_value();
        let (target, phis) = self.branch_target(depth);
        let cont = self.ctx.append_basic_block(self.func, "");
        self.add_incoming(&phis);
        let zero = cond.get_type().const_zero();
        let c = self
            .builder
            .build_int_compare(IntPredicate::NE, cond, zero, "")
            .unwrap();
        self.builder
            .build_conditional_branch(c, target, cont)
            .unwrap();
        self.builder.position_at_end(cont);
    }

    pub(super) fn translate_br_table(
        &mut self,
        table: &BrTable<'_>,
        offset: usize,
    ) -> Result<(), CompileError> {
        let index = self.pop().into_int_value();
        let mut depths = Vec::with_capacity(table.len() as usize);
        for depth in table.targets() {
            depths.push(depth?);
        }
        let default = table.default();
        for &d in depths.iter().chain(std::iter::once(&default)) {
            if d as usize >= self.control.len() {
                return Err(CompileError::invalid(format!("unknown label {d}"), offset));
            }
        }
        let (_, default_phis) = self.branch_target(default);
        let i32t = self.ctx.i32_type();
        if default_phis.is_empty() {
            // No values to pass: the switch goes straight to the targets.
            let (default_block, _) = self.branch_target(default);
            let mut cases = Vec::with_capacity(depths.len());
            for (i, &d) in depths.iter().enumerate() {
                let (block, _) = self.branch_target(d);
                cases.push((i32t.const_int(i as u64, false), block));
            }
            self.builder
                .build_switch(index, default_block, &cases)
                .unwrap();
        } else {
            // Targets take values: go through one forwarding block per distinct target, so no
            // phi has two incoming edges from the switch.
            let mut forwarders: Vec<(u32, BasicBlock<'ctx>)> = Vec::new();
            let mut forwarder = |this: &Self, d: u32| -> BasicBlock<'ctx> {
                if let Some(&(_, b)) = forwarders.iter().find(|(depth, _)| *depth == d) {
                    return b;
                }
                let b = this.ctx.append_basic_block(this.func, "");
                forwarders.push((d, b));
                b
            };
            let mut cases = Vec::with_capacity(depths.len());
            for (i, &d) in depths.iter().enumerate() {
                let block = forwarder(self, d);
                cases.push((i32t.const_int(i as u64, false), block));
            }
            let default_block = forwarder(self, default);
            self.builder
                .build_switch(index, default_block, &cases)
                .unwrap();
            for (d, block) in forwarders {
                self.builder.position_at_end(block);
                if d as usize == self.control.len() - 1 {
                    self.emit_return();
                } else {
                    let (target, phis) = self.branch_target(d);
                    self.add_incoming(&phis);
                    self.builder.build_unconditional_branch(target).unwrap();
                }
            }
        }
        self.reachable = false;
        Ok(())
    }

    pub(super) fn translate_return(&mut self) {
        self.emit_return();
        self.reachable = false;
    }

    /// Returns the top stack values (as many as the function has results) from the function.
    fn emit_return(&mut self) {
        let n = self.result_types.len();
        let start = self.stack.len() - n;
        match self.ret_area {
            Some(ret_area) => {
                for i in 0..n {
                    let v = self.stack[start + i];
                    let ptr = self.gep_const(ret_area, i as u64 * u64::from(RET_AREA_SLOT));
                    let store = self.builder.build_store(ptr, v).unwrap();
                    store.set_alignment(8).expect("stores have an alignment");
                }
                self.builder.build_return(None).unwrap();
            }
            None if n == 0 => {
                self.builder.build_return(None).unwrap();
            }
            None => {
                let v = self.stack[start];
                self.builder.build_return(Some(&v)).unwrap();
            }
        }
    }

    /// Counts `loop` operators for an OSR entry and records the control stack at the target
    /// loop. Called for every operator of the first translation, reachable or not.
    pub(super) fn note_loop(
        &mut self,
        op: &Operator<'_>,
        offset: usize,
    ) -> Result<(), CompileError> {
        let Operator::Loop { blockty } = *op else {
            return Ok(());
        };
        let Some(osr) = &self.osr else {
            return Ok(());
        };
        if osr.second_pass {
            return Ok(());
        }
        if osr.loops_seen == osr.loop_index {
            if !self.reachable {
                return Err(CompileError::unsupported(
                    format!(
                        "no on-stack-replacement entry for loop {}: it is unreachable",
                        osr.loop_index
                    ),
                    offset,
                ));
            }
            let params = self.block_sig(blockty, offset)?.params().len();
            if !self.stack.is_empty() || params != 0 {
                return Err(CompileError::unsupported(
                    format!(
                        "no on-stack-replacement entry for loop {}: it is entered with a \
                         non-empty operand stack",
                        osr.loop_index
                    ),
                    offset,
                ));
            }
            let snapshot = self.control.clone();
            if let Some(osr) = &mut self.osr {
                osr.snapshot = Some(snapshot);
            }
        }
        if let Some(osr) = &mut self.osr {
            osr.loops_seen += 1;
        }
        Ok(())
    }

    /// Translates the code from the OSR target loop to the end of the body a second time (see
    /// the module documentation) and returns the block where it starts.
    pub(super) fn translate_osr_tail(
        &mut self,
        body: &FunctionBody<'_>,
    ) -> Result<BasicBlock<'ctx>, CompileError> {
        let osr = self.osr.as_mut().expect("OSR translation");
        let loop_index = osr.loop_index;
        osr.second_pass = true;
        let Some(snapshot) = osr.snapshot.take() else {
            return Err(CompileError::unsupported(
                format!(
                    "no on-stack-replacement entry for loop {loop_index}: the body has only {} loops",
                    osr.loops_seen
                ),
                body.range().start as usize,
            ));
        };
        let start = self.ctx.append_basic_block(self.func, "osr");
        self.builder.position_at_end(start);
        let mut control = Vec::with_capacity(snapshot.len());
        for frame in snapshot {
            let types: Vec<BasicTypeEnum<'ctx>> = frame
                .next_phis
                .iter()
                .map(|p| p.as_basic_value().get_type())
                .collect();
            let (next, next_phis) = self.block_with_phis(&types);
            let kind = match frame.kind {
                FrameKind::Function => FrameKind::Function,
                FrameKind::Block => FrameKind::Block,
                FrameKind::Loop {
                    header,
                    header_phis,
                } => FrameKind::Loop {
                    header,
                    header_phis,
                },
                FrameKind::If { has_else, .. } | FrameKind::OsrIf { has_else } => {
                    FrameKind::OsrIf { has_else }
                }
            };
            control.push(ControlFrame {
                kind,
                next,
                next_phis,
                height: frame.height,
                exit_reachable: false,
            });
        }
        self.control = control;
        self.stack.clear();
        self.reachable = true;
        self.unreachable_depth = 0;

        let mut reader: OperatorsReader<'_> = body.get_operators_reader()?;
        let mut loops_seen = 0;
        let mut started = false;
        while !reader.eof() {
            let offset = reader.original_position() as usize;
            let op = reader.read()?;
            if !started {
                if let Operator::Loop { .. } = op {
                    started = loops_seen == loop_index;
                    loops_seen += 1;
                }
                if !started {
                    continue;
                }
            }
            if self.reachable {
                self.translate_operator(&op, offset)?;
            } else {
                self.translate_unreachable_operator(&op, offset)?;
            }
        }
        if !self.control.is_empty() {
            return Err(CompileError::codegen(
                "control frames remain at the end of the OSR translation",
            ));
        }
        Ok(start)
    }
}
