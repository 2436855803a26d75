//! Structured control flow: `block`, `loop`, `if`/`else`, `end`, branches, `return`,
//! `unreachable`, and the tier-up budget checks at function entry and loop headers.
//!
//! Each wasm block gets a Cranelift "next" block whose parameters are the wasm block's results;
//! a loop additionally gets a header block whose parameters are the loop's parameters. Branches
//! pass the top values of the operand stack as block arguments.

use cranelift_codegen::cursor::{Cursor, FuncCursor};
use cranelift_codegen::ir;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{Block, BlockArg, BlockCall, InstBuilder, JumpTableData, Value, types};
use spate_tiers::libcall::Libcall;
use spate_tiers::vmctx::VMCTX_BUDGETS;
use spate_tiers::{CompileError, TrapCode};
use wasmparser::{BlockType, BrTable};

use super::{FuncTranslator, trusted, trusted_readonly};

/// Functions with more locals than this get no OSR transfers: the spill slot (16 bytes a local)
/// would be part of every frame, and such functions are rarely the long-running loop nests OSR
/// is for. Their loops still count the tier-up budget.
const MAX_OSR_LOCALS: usize = 1024;
use crate::cranelift_trap_code;

/// Where the prologue's budget check is, for [`FuncTranslator::count_calls`].
pub(super) struct CallCountSite {
    /// The budget array's address, loaded by the check.
    budgets: Value,
    /// The check's branch: the count goes just before it.
    branch: ir::Inst,
}

/// The block an OSR transfer continues in when the entry it called was a region entry that
/// left its loop (see `spate_tiers::abi`); its one parameter is the exit code the entry wrote.
/// The block is filled in at the loop's end, once the locals written inside the loop are known:
/// only those are reloaded (the others still hold the values the transfer spilled), which keeps
/// the function's frame from growing with a reloaded copy of every local at every loop.
///
/// A region of an outermost loop may also be entered at the header of a loop inside it
/// (`spate_tiers::abi`): the transfers of those inner loops send the exit codes that leave the
/// outermost loop (its end, the labels around it) to the outermost loop's block, whose reloads
/// cover every local written anywhere in it. So that block has several predecessors and is
/// sealed when it is filled.
#[derive(Clone, Copy)]
pub(crate) struct OsrExit {
    block: Block,
}

/// One entry of the control stack.
pub(crate) struct ControlFrame {
    kind: FrameKind,
    /// The block following the construct; its parameters are the construct's results.
    next: Block,
    num_params: usize,
    num_results: usize,
    /// Operand stack height below the construct's parameters.
    height: usize,
    /// Whether any branch targets `next` (so it must be emitted).
    exit_reachable: bool,
}

enum FrameKind {
    /// The function body; `next` is the exit block that returns its parameters.
    Function,
    Block,
    Loop {
        header: Block,
        /// The loop's index when it is OSR-eligible (entered with an empty operand stack).
        osr: Option<u32>,
        /// Where its header's OSR transfer goes when a region entry leaves the loop, filled in
        /// at the loop's end.
        exit: Option<OsrExit>,
    },
    If {
        /// Start of the `else` arm (or of the implicit empty one).
        else_block: Block,
        /// The block parameters, which the `else` arm starts with again.
        else_params: Vec<Value>,
        has_else: bool,
    },
}

impl ControlFrame {
    /// The frame of the function body.
    pub(crate) fn function(exit: Block, num_results: usize) -> Self {
        ControlFrame {
            kind: FrameKind::Function,
            next: exit,
            num_params: 0,
            num_results,
            height: 0,
            exit_reachable: false,
        }
    }
}

impl FuncTranslator<'_> {
    pub(super) fn translate_unreachable(&mut self) {
        self.builder
            .ins()
            .trap(cranelift_trap_code(TrapCode::UnreachableCodeReached));
        self.reachable = false;
    }

    pub(super) fn translate_block(
        &mut self,
        blockty: BlockType,
        offset: usize,
    ) -> Result<(), CompileError> {
        let sig = self.block_sig(blockty, offset)?;
        let next = self.block_with_params(sig.results(), offset)?;
        let num_params = sig.params().len();
        self.control.push(ControlFrame {
            kind: FrameKind::Block,
            next,
            num_params,
            num_results: sig.results().len(),
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
        let num_params = sig.params().len();
        let header = self.block_with_params(sig.params(), offset)?;
        let next = self.block_with_params(sig.results(), offset)?;
        self.stack_block_args(num_params);
        self.builder.ins().jump(header, &self.block_args);
        let height = self.stack.len() - num_params;
        self.stack.truncate(height);
        self.builder.switch_to_block(header);
        self.stack
            .extend_from_slice(self.builder.block_params(header));
        let loop_index = self.loop_count;
        self.loop_count += 1;
        if self
            .control
            .iter()
            .any(|f| matches!(f.kind, FrameKind::Loop { .. }))
        {
            self.loop_nest = true;
        }
        // Nothing lives on the operand stack: the loop can be left for an OSR entry that takes
        // the locals alone. The transfer prefers the outermost such loop enclosing this one,
        // where the inner loops start again from their own initial values.
        let osr = (self.stack.is_empty() && self.osr && self.locals.len() <= MAX_OSR_LOCALS)
            .then_some(loop_index);
        let outer = self
            .control
            .iter()
            .find_map(|f| match f.kind {
                FrameKind::Loop { osr, .. } => osr,
                _ => None,
            })
            .unwrap_or(loop_index);
        // The loop's frame is on the control stack while its header's check is emitted: a
        // region entry may leave through the loop's end.
        self.control.push(ControlFrame {
            kind: FrameKind::Loop {
                header,
                osr,
                exit: None,
            },
            next,
            num_params,
            num_results: sig.results().len(),
            height,
            exit_reachable: false,
        });
        match osr {
            Some(_) => self.emit_loop_budget_check(loop_index, outer),
            None => {
                self.emit_budget_check();
            }
        }
        Ok(())
    }

    pub(super) fn translate_if(
        &mut self,
        blockty: BlockType,
        offset: usize,
    ) -> Result<(), CompileError> {
        let sig = self.block_sig(blockty, offset)?;
        let cond = self.pop1();
        let num_params = sig.params().len();
        let next = self.block_with_params(sig.results(), offset)?;
        let then_block = self.builder.create_block();
        let else_block = self.builder.create_block();
        self.builder
            .ins()
            .brif(cond, then_block, &[], else_block, &[]);
        self.builder.seal_block(then_block);
        self.builder.seal_block(else_block);
        self.builder.switch_to_block(then_block);
        let height = self.stack.len() - num_params;
        let else_params = self.stack[height..].to_vec();
        self.control.push(ControlFrame {
            kind: FrameKind::If {
                else_block,
                else_params,
                has_else: false,
            },
            next,
            num_params,
            num_results: sig.results().len(),
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
        let FrameKind::If {
            else_block,
            ref mut else_params,
            ref mut has_else,
        } = frame.kind
        else {
            return Err(CompileError::invalid("`else` outside of `if`", offset));
        };
        if *has_else {
            return Err(CompileError::invalid("duplicate `else`", offset));
        }
        *has_else = true;
        let params = std::mem::take(else_params);
        let (next, num_results, height) = (frame.next, frame.num_results, frame.height);
        if reachable {
            frame.exit_reachable = true;
            self.stack_block_args(num_results);
            self.builder.ins().jump(next, &self.block_args);
        }
        self.stack.truncate(height);
        self.stack.extend_from_slice(&params);
        self.builder.switch_to_block(else_block);
        // The `if` head was reachable (frames are only pushed in reachable code).
        self.reachable = true;
        Ok(())
    }

    pub(super) fn translate_end(&mut self, offset: usize) -> Result<(), CompileError> {
        if let Some(ControlFrame {
            kind:
                FrameKind::Loop {
                    osr: Some(index),
                    exit: Some(exit),
                    ..
                },
            ..
        }) = self.control.last()
        {
            let (index, exit) = (*index, *exit);
            if self.reachable {
                // Leave the current block for the loop's end first: the exit block is filled
                // in from a builder positioned at the end of a finished block.
                let frame = self.control.last_mut().expect("the loop's frame");
                frame.exit_reachable = true;
                let (next, num_results) = (frame.next, frame.num_results);
                self.stack_block_args(num_results);
                self.builder.ins().jump(next, &self.block_args);
                self.reachable = false;
            }
            self.emit_osr_exit(index, exit);
        }
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
                    self.builder.switch_to_block(frame.next);
                    self.builder.seal_block(frame.next);
                    self.stack
                        .extend_from_slice(self.builder.block_params(frame.next));
                    self.emit_return();
                }
                self.stack.clear();
                self.reachable = false;
                return Ok(());
            }
            FrameKind::Block | FrameKind::Loop { .. }
                if self.reachable && !frame.exit_reachable =>
            {
                // Nothing branches to the end of the construct: its results are already on the
                // stack, so keep going in the current block (`next` is never used).
                if let FrameKind::Loop { header, .. } = frame.kind {
                    self.builder.seal_block(header);
                }
                return Ok(());
            }
            FrameKind::Block => {}
            FrameKind::Loop { header, .. } => self.builder.seal_block(header),
            FrameKind::If {
                else_block,
                ref else_params,
                has_else,
            } => {
                if !has_else {
                    // The implicit `else` passes the parameters through as results.
                    if self.reachable {
                        self.stack_block_args(frame.num_results);
                        self.builder.ins().jump(frame.next, &self.block_args);
                    }
                    self.builder.switch_to_block(else_block);
                    self.block_args.clear();
                    self.block_args
                        .extend(else_params.iter().map(|&v| BlockArg::Value(v)));
                    self.builder.ins().jump(frame.next, &self.block_args);
                    frame.exit_reachable = true;
                    self.reachable = false;
                }
            }
        }
        if self.reachable {
            frame.exit_reachable = true;
            self.stack_block_args(frame.num_results);
            self.builder.ins().jump(frame.next, &self.block_args);
        }
        self.stack.truncate(frame.height);
        if frame.exit_reachable {
            self.builder.switch_to_block(frame.next);
            self.builder.seal_block(frame.next);
            self.stack
                .extend_from_slice(self.builder.block_params(frame.next));
            self.reachable = true;
        } else {
            self.reachable = false;
        }
        Ok(())
    }

    /// The Cranelift block a branch to relative depth `depth` goes to, and the number of values
    /// it passes. Marks the target as reachable.
    fn branch_target(&mut self, depth: u32) -> (Block, usize) {
        let i = self.control.len() - 1 - depth as usize;
        let frame = &mut self.control[i];
        match frame.kind {
            FrameKind::Loop { header, .. } => (header, frame.num_params),
            _ => {
                frame.exit_reachable = true;
                (frame.next, frame.num_results)
            }
        }
    }

    pub(super) fn translate_br(&mut self, depth: u32) {
        if depth as usize == self.control.len() - 1 {
            // A branch to the function body is a return.
            self.translate_return();
            return;
        }
        let (target, n) = self.branch_target(depth);
        self.stack_block_args(n);
        self.builder.ins().jump(target, &self.block_args);
        self.reachable = false;
    }

    pub(super) fn translate_br_if(&mut self, depth: u32) {
        let cond = self.pop1();
        let (target, n) = self.branch_target(depth);
        let cont = self.builder.create_block();
        self.stack_block_args(n);
        self.builder
            .ins()
            .brif(cond, target, &self.block_args, cont, &[]);
        self.builder.seal_block(cont);
        self.builder.switch_to_block(cont);
    }

    pub(super) fn translate_br_table(
        &mut self,
        table: &BrTable<'_>,
        offset: usize,
    ) -> Result<(), CompileError> {
        let index = self.pop1();
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
        let arity = {
            let frame = &self.control[self.control.len() - 1 - default as usize];
            match frame.kind {
                FrameKind::Loop { .. } => frame.num_params,
                _ => frame.num_results,
            }
        };

        if arity == 0 {
            // Jump-table entries go straight to the targets.
            let mut calls = Vec::with_capacity(depths.len());
            for &d in &depths {
                let (block, _) = self.branch_target(d);
                calls.push(BlockCall::new(
                    block,
                    [],
                    &mut self.builder.func.dfg.value_lists,
                ));
            }
            let (block, _) = self.branch_target(default);
            let default_call = BlockCall::new(block, [], &mut self.builder.func.dfg.value_lists);
            let jt = self
                .builder
                .create_jump_table(JumpTableData::new(default_call, &calls));
            self.builder.ins().br_table(index, jt);
        } else {
            // Targets need arguments: go through one forwarding block per distinct target.
            let mut forwarders: Vec<(u32, Block)> = Vec::new();
            let mut forwarder = |this: &mut Self, d: u32| -> Block {
                if let Some(&(_, b)) = forwarders.iter().find(|(depth, _)| *depth == d) {
                    return b;
                }
                let b = this.builder.create_block();
                forwarders.push((d, b));
                b
            };
            let mut calls = Vec::with_capacity(depths.len());
            for &d in &depths {
                let block = forwarder(self, d);
                calls.push(BlockCall::new(
                    block,
                    [],
                    &mut self.builder.func.dfg.value_lists,
                ));
            }
            let block = forwarder(self, default);
            let default_call = BlockCall::new(block, [], &mut self.builder.func.dfg.value_lists);
            let jt = self
                .builder
                .create_jump_table(JumpTableData::new(default_call, &calls));
            self.builder.ins().br_table(index, jt);
            self.stack_block_args(arity);
            for (d, block) in forwarders {
                self.builder.seal_block(block);
                self.builder.switch_to_block(block);
                let (target, _) = self.branch_target(d);
                self.builder.ins().jump(target, &self.block_args);
            }
        }
        self.reachable = false;
        Ok(())
    }

    pub(super) fn translate_return(&mut self) {
        self.emit_return();
        self.reachable = false;
    }

    /// Returns the top `num_results` stack values from the function.
    fn emit_return(&mut self) {
        let start = self.stack.len() - self.num_results;
        match self.ret_area {
            Some(ret_area) => {
                for i in 0..self.num_results {
                    let v = self.stack[start + i];
                    let slot = (i * spate_tiers::abi::RET_AREA_SLOT as usize) as i32;
                    self.builder.ins().store(trusted(), v, ret_area, slot);
                }
                self.builder.ins().return_(&[]);
            }
            None => {
                self.builder.ins().return_(&self.stack[start..]);
            }
        }
    }

    /// Decrements this function's tier-up budget and calls the `TierUp` libcall (in a cold
    /// block) when it goes negative. Emitted at function entry and at the header of every loop
    /// entered with values on the operand stack (those cannot be replaced on the stack).
    pub(super) fn emit_budget_check(&mut self) -> CallCountSite {
        let (budgets, exhausted) = self.decrement_budget();
        let cold = self.builder.create_block();
        let cont = self.builder.create_block();
        self.builder.set_cold_block(cold);
        let branch = self.builder.ins().brif(exhausted, cold, &[], cont, &[]);
        self.builder.seal_block(cold);
        self.builder.switch_to_block(cold);
        let index = self
            .builder
            .ins()
            .iconst(types::I32, i64::from(self.def_index));
        self.libcall(Libcall::TierUp, &[index]);
        self.builder.ins().jump(cont, &[]);
        self.builder.seal_block(cont);
        self.builder.switch_to_block(cont);
        CallCountSite { budgets, branch }
    }

    /// Counts the function's calls, once the whole body is translated and it is known to have
    /// an OSR-eligible loop: increments its word in the third part of the budget array before
    /// `site`, the prologue's budget check. The runtime reads the count when an OSR entry is
    /// taken, to tell a function called again (which wants its own optimized code) from one
    /// that re-enters a nested loop's region within one call (see `spate_tiers::vmctx`).
    /// Functions without such a loop are left without the count.
    pub(super) fn count_calls(&mut self, site: CallCountSite) {
        if !self.has_osr_loop {
            return;
        }
        let n = u64::from(self.module.num_defined_functions());
        let offset = (2 * n + u64::from(self.def_index)) * 4;
        let mut pos = FuncCursor::new(self.builder.func).at_inst(site.branch);
        let (base, offset) = match i32::try_from(offset) {
            Ok(off) => (site.budgets, off),
            Err(_) => (pos.ins().iadd_imm_s(site.budgets, offset as i64), 0),
        };
        let calls = pos.ins().load(types::I32, trusted(), base, offset);
        let calls = pos.ins().iadd_imm_s(calls, 1);
        pos.ins().store(trusted(), calls, base, offset);
    }

    /// The budget check at the header of loop `loop_index`, entered with an empty operand
    /// stack; `outer` is the outermost such loop enclosing it (or `loop_index` itself). When the
    /// budget runs out, the `LoopTierUp` libcall returns an on-stack-replacement entry for this
    /// loop once the optimizing tier has installed one. The locals are then spilled to a
    /// `ValRaw` array and the entry continues the function from this header: its results are
    /// returned as this function's own, unless it is a region entry that left the loop, in which
    /// case this code continues at the exit's target (see [`Self::emit_osr_transfer`] and
    /// `spate_tiers::abi`).
    ///
    /// The runtime prefers to compile the entry of `outer` (or of a loop between it and this
    /// one), whose header then has to take it: every such header therefore also calls the
    /// libcall while the function's OSR-armed word names its loop (`loop_index + 1`), which the
    /// runtime sets once the entry is installed.
    fn emit_loop_budget_check(&mut self, loop_index: u32, outer: u32) {
        self.has_osr_loop = true;
        let (budgets, exhausted) = self.decrement_budget();
        let n = u64::from(self.module.num_defined_functions());
        let slot = (n + u64::from(self.def_index)) * 4;
        let addr = self.budget_slot(budgets, slot);
        let armed = self
            .builder
            .ins()
            .load(types::I32, trusted(), addr.0, addr.1);
        let armed = self
            .builder
            .ins()
            .icmp_imm_s(IntCC::Equal, armed, i64::from(loop_index) + 1);
        let exhausted = self.builder.ins().bor(exhausted, armed);
        let cold = self.builder.create_block();
        let enter = self.builder.create_block();
        let cont = self.builder.create_block();
        self.builder.set_cold_block(cold);
        self.builder.set_cold_block(enter);
        self.builder.ins().brif(exhausted, cold, &[], cont, &[]);
        self.builder.seal_block(cold);
        self.builder.switch_to_block(cold);
        let def = self
            .builder
            .ins()
            .iconst(types::I32, i64::from(self.def_index));
        let lp = self.builder.ins().iconst(types::I32, i64::from(loop_index));
        let outer = self.builder.ins().iconst(types::I32, i64::from(outer));
        let entry = self
            .libcall(Libcall::LoopTierUp, &[def, lp, outer])
            .expect("LoopTierUp returns the entry");
        self.builder.ins().brif(entry, enter, &[], cont, &[]);
        self.builder.seal_block(enter);
        self.builder.switch_to_block(enter);
        self.emit_osr_transfer(entry, loop_index);
        self.builder.seal_block(cont);
        self.builder.switch_to_block(cont);
    }

    /// Spills the locals and calls the OSR entry `entry` for loop `loop_index` (see
    /// `spate_tiers::abi`), whose frame is on top of the control stack. When the entry comes
    /// back with the status the transfer wrote, it ran the function to its end and its results
    /// are returned as this function's. A region entry that left the loop instead wrote the
    /// locals back and an exit code: the transfer goes on in a block filled in at the loop's
    /// end ([`OsrExit`], [`Self::emit_osr_exit`]), or, for a code that leaves the outermost
    /// OSR-eligible loop enclosing this one (whose region may be the entry called), in that
    /// loop's block.
    fn emit_osr_transfer(&mut self, entry: ir::Value, loop_index: u32) {
        let slot_size = spate_tiers::abi::RET_AREA_SLOT;
        let n = self.locals.len() as u32;
        // One slot per function, shared by every loop's transfer: each explicit slot is part
        // of every frame of the function, used or not. The last 16 bytes are the status.
        let slot = *self.osr_slot.get_or_insert_with(|| {
            self.builder.create_sized_stack_slot(ir::StackSlotData::new(
                ir::StackSlotKind::ExplicitSlot,
                (n + 1) * slot_size,
                4,
            ))
        });
        let buf = self.builder.ins().stack_addr(types::I64, slot, 0);
        for i in 0..self.locals.len() {
            let v = self.builder.use_var(self.locals[i]);
            self.builder
                .ins()
                .store(trusted(), v, buf, (i as u32 * slot_size) as i32);
        }
        let status_at = (n * slot_size) as i32;
        let returned = spate_tiers::abi::OSR_RETURNED as i32;
        let returned = self.builder.ins().iconst(types::I32, i64::from(returned));
        self.builder
            .ins()
            .store(trusted(), returned, buf, status_at);
        let sig = self.osr_signature();
        let lp = self.builder.ins().iconst(types::I32, i64::from(loop_index));
        let mut args = vec![self.vmctx, self.vmctx, buf, lp];
        args.extend(self.ret_area);
        let call = self.builder.ins().call_indirect(sig, entry, &args);
        let results = self.builder.inst_results(call).to_vec();
        let status = self
            .builder
            .ins()
            .load(types::I32, trusted(), buf, status_at);
        let ended = self.builder.ins().icmp(IntCC::Equal, status, returned);
        let ret = self.builder.create_block();
        let block = self.builder.create_block();
        self.builder.append_block_param(block, types::I32);
        self.builder.set_cold_block(ret);
        self.builder.set_cold_block(block);
        // The outermost OSR-eligible loop enclosing this one, if any: its region may have been
        // the entry called.
        match self.outer_osr_exit() {
            None => {
                self.builder
                    .ins()
                    .brif(ended, ret, &[], block, &[BlockArg::Value(status)]);
            }
            Some((d, outer_exit)) => {
                // Codes that leave the outer loop (a label around it, or its end) go to its
                // exit block; the others stay inside it and are this loop's.
                let route = self.builder.create_block();
                self.builder.set_cold_block(route);
                self.builder.ins().brif(ended, ret, &[], route, &[]);
                self.builder.seal_block(route);
                self.builder.switch_to_block(route);
                let frame = d as u32;
                let label = i64::from(spate_tiers::abi::osr_exit_label(frame));
                let end = i64::from(spate_tiers::abi::osr_exit_end(frame));
                let around = self
                    .builder
                    .ins()
                    .icmp_imm_u(IntCC::UnsignedLessThan, status, label);
                let past = self.builder.ins().icmp_imm_u(IntCC::Equal, status, end);
                let leaves = self.builder.ins().bor(around, past);
                let arg = [BlockArg::Value(status)];
                self.builder
                    .ins()
                    .brif(leaves, outer_exit.block, &arg, block, &arg);
            }
        }
        self.builder.seal_block(ret);
        self.builder.switch_to_block(ret);
        self.builder.ins().return_(&results);
        let frame = self.control.last_mut().expect("the loop's frame");
        if let FrameKind::Loop { exit, .. } = &mut frame.kind {
            *exit = Some(OsrExit { block });
        }
    }

    /// The frame index and continuation block of the outermost OSR-eligible loop enclosing the
    /// loop whose frame is on top of the control stack, if any (see [`OsrExit`]).
    fn outer_osr_exit(&self) -> Option<(usize, OsrExit)> {
        let innermost = self.control.len() - 1;
        self.control[..innermost]
            .iter()
            .enumerate()
            .find_map(|(d, f)| match f.kind {
                FrameKind::Loop {
                    osr: Some(_),
                    exit: Some(exit),
                    ..
                } => Some((d, exit)),
                _ => None,
            })
    }

    /// Fills in the block where the OSR transfer at the header of loop `loop_index` (the frame on
    /// top of the control stack, at its `end`) goes on after a region entry left the loop: the
    /// locals written inside the loop are reloaded from the locals array, and a jump table on
    /// the exit code goes to its target among the frames of the control stack (see
    /// `spate_tiers::abi::osr_exit_label` and `osr_exit_end`): the label of a frame enclosing
    /// the loop, or the loop's end. The operand stack is empty at the header, so targets that
    /// take values cannot be exits; those codes, like any other, trap. For an outermost loop the
    /// transfers of the loops inside it come here too, with the codes that leave it (see
    /// [`OsrExit`]); the locals written anywhere in it cover what any region entered inside it
    /// may have changed.
    /// The builder must be at the end of a finished block; it is left at the end of another.
    fn emit_osr_exit(&mut self, loop_index: u32, exit: OsrExit) {
        // Every transfer that may come here (this loop's, and those of the loops inside it that
        // route exits out of it) has been emitted.
        self.builder.seal_block(exit.block);
        self.builder.switch_to_block(exit.block);
        let status = self.builder.block_params(exit.block)[0];
        let slot = self
            .osr_slot
            .expect("the OSR transfer made the locals array");
        let buf = self.builder.ins().stack_addr(types::I64, slot, 0);
        let slot_size = spate_tiers::abi::RET_AREA_SLOT;
        for i in 0..self.locals.len() {
            // Written at or after the loop's opening, when `loop_count` became its index + 1.
            if self.last_write.get(i).is_none_or(|&w| w <= loop_index) {
                continue;
            }
            let v = self.builder.ins().load(
                self.local_types[i],
                trusted(),
                buf,
                (i as u32 * slot_size) as i32,
            );
            self.builder.def_var(self.locals[i], v);
        }
        let innermost = self.control.len() - 1;
        // Codes that leave an enclosing OSR-eligible loop went to its block instead.
        let below = self.outer_osr_exit().map_or(0, |(d, _)| d);
        let mut targets = Vec::with_capacity(2 * self.control.len());
        for d in 0..self.control.len() {
            let frame = &mut self.control[d];
            let label = match frame.kind {
                // A branch to the function body is a return, which is no exit.
                FrameKind::Function => None,
                _ if d < below => None,
                // The loop's own header is inside its region.
                _ if d == innermost => None,
                FrameKind::Loop { header, .. } => (frame.num_params == 0).then_some(header),
                FrameKind::Block | FrameKind::If { .. } => (frame.num_results == 0).then(|| {
                    frame.exit_reachable = true;
                    frame.next
                }),
            };
            let end = (d == innermost && frame.num_results == 0).then(|| {
                frame.exit_reachable = true;
                frame.next
            });
            targets.push(label);
            targets.push(end);
        }
        let invalid = self.builder.create_block();
        self.builder.set_cold_block(invalid);
        let pool = &mut self.builder.func.dfg.value_lists;
        let calls: Vec<BlockCall> = targets
            .iter()
            .map(|t| BlockCall::new(t.unwrap_or(invalid), [], pool))
            .collect();
        let default_call = BlockCall::new(invalid, [], pool);
        let jt = self
            .builder
            .create_jump_table(JumpTableData::new(default_call, &calls));
        self.builder.ins().br_table(status, jt);
        self.builder.seal_block(invalid);
        self.builder.switch_to_block(invalid);
        self.builder
            .ins()
            .trap(cranelift_trap_code(TrapCode::UnreachableCodeReached));
    }

    /// Records that local `index` is written now (for the loops' OSR exits, see
    /// [`OsrExit`]).
    pub(super) fn note_local_write(&mut self, index: u32) {
        if let Some(w) = self.last_write.get_mut(index as usize) {
            *w = self.loop_count;
        }
    }

    /// Decrements the budget; returns the budget array and the condition "the budget ran out".
    fn decrement_budget(&mut self) -> (ir::Value, ir::Value) {
        let budgets = self.vmctx_load(VMCTX_BUDGETS, trusted_readonly());
        let slot = u64::from(self.def_index) * 4;
        let addr = self.budget_slot(budgets, slot);
        let budget = self
            .builder
            .ins()
            .load(types::I32, trusted(), addr.0, addr.1);
        let budget = self.builder.ins().iadd_imm_s(budget, -1);
        self.builder.ins().store(trusted(), budget, addr.0, addr.1);
        let exhausted = self
            .builder
            .ins()
            .icmp_imm_s(IntCC::SignedLessThan, budget, 0);
        (budgets, exhausted)
    }

    /// Base and offset of the word `byte_offset` bytes into the budget array.
    fn budget_slot(&mut self, budgets: ir::Value, byte_offset: u64) -> (ir::Value, i32) {
        if let Ok(off) = i32::try_from(byte_offset) {
            (budgets, off)
        } else {
            (
                self.builder.ins().iadd_imm_s(budgets, byte_offset as i64),
                0,
            )
        }
    }
}
