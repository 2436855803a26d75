//! Structured control flow: `block`, `loop`, `if`/`else`, `end`, branches, `return`,
//! `unreachable`, trap blocks, and the way into an on-stack-replacement entry.
//!
//! Each wasm construct gets a "next" LLVM block whose phi nodes are the construct's results; a
//! loop additionally gets a header block whose phi nodes are the loop's parameters. Branches add
//! the top values of the operand stack as incoming values of the target's phis.
//!
//! # On-stack-replacement entries
//!
//! An OSR entry for loop `L` is the function translated once, with a different way in, plus a
//! copy of `L` alone. The entry block loads the locals from the caller's buffer and goes to the
//! header of the outermost loop enclosing `L`. A flag (an `i1` local, set by the entry block)
//! makes each header of a loop enclosing `L` branch straight to the header of the next such loop
//! (skipping the code in between), and the innermost one to the copy of `L`, clearing the flag
//! on the way. The copy is translated when the main translation reaches `L`, with the main
//! translation's control stack, so its branches out (and its fall-through, with `L`'s results)
//! go to the main translation's blocks and loop headers, all of which enclose the copy. Every
//! loop is thus entered only through its header and stays a natural loop that LLVM optimizes;
//! the main translation's `L` keeps its normal entry only (clean start values for its induction
//! variables), the copy runs the iterations left when the entry was taken. Nothing else is
//! duplicated, so an entry costs about as much to compile as the function. The normal function
//! start is unreachable: LLVM removes the code before the outermost loop enclosing `L`. The
//! headers of the enclosing loops test the flag once per iteration (a predictable branch).
//!
//! Direct entries ([`OsrDirect`]) branch straight to the headers of the loops they serve; a
//! region entry (`super::region`) is a direct entry whose translation holds one loop alone.

use inkwell::IntPredicate;
use inkwell::attributes::AttributeLoc;
use inkwell::basic_block::BasicBlock;
use inkwell::builder::Builder;
use inkwell::types::{BasicType, BasicTypeEnum};
use inkwell::values::{BasicValue, BasicValueEnum, PhiValue, PointerValue};
use spate_tiers::abi::RET_AREA_SLOT;
use spate_tiers::libcall::Libcall;
use spate_tiers::loops::{loop_parents, loop_path};
use spate_tiers::{CompileError, TrapCode};
use wasmparser::{BlockType, BrTable, FunctionBody, Operator, OperatorsReader};

use super::osr_facts::{RangeFact, loop_range_facts};
use super::{FuncTranslator, enum_attribute, set_alignment};

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
}

/// On-stack-replacement state: which loop to enter and the way to it.
pub(crate) struct OsrState<'ctx> {
    target: u32,
    /// `loop` operators translated so far.
    loops_seen: u32,
    /// The loops enclosing the target (outermost first), then the target.
    path: Vec<u32>,
    /// The block that will branch to the header of the next loop on the path (the entry block's
    /// successor at first); `None` once the target is entered.
    hop: Option<BasicBlock<'ctx>>,
    /// Set while the entry goes down the path (only when the target is nested in loops).
    flag: Option<PointerValue<'ctx>>,
}

/// A direct on-stack-replacement entry: the prologue dispatches on the entry's `loop_index`
/// argument straight to the header of each of several loops. The loop the runtime expects the
/// entry to be taken at, if it has range facts ([`super::osr_facts`]), also gets a checked
/// copy: the dispatch checks the facts on the loaded locals and enters the copy, whose start
/// values carry them, when they hold, and the loop's own header when they do not.
pub(crate) struct OsrDirect<'ctx> {
    /// The loops asked for, ascending.
    wanted: Vec<u32>,
    /// `loop` operators seen so far.
    loops_seen: u32,
    /// The loop that gets a checked copy if it has range facts.
    checked: Option<u32>,
    /// Set by [`FuncTranslator::note_loop`] when the loop about to be translated is entered.
    next: Option<u32>,
    /// Set with `next` when that loop has range facts (its copy is translated next).
    facts: Vec<RangeFact>,
    /// The loops entered, each with the block that branches to its header.
    entered: Vec<(u32, BasicBlock<'ctx>)>,
    /// The entered loops with a checked copy: the copy's first block and the facts it assumes.
    copies: Vec<(u32, BasicBlock<'ctx>, Vec<RangeFact>)>,
}

impl OsrDirect<'_> {
    pub(crate) fn new(loops: &[u32], checked: Option<u32>) -> Self {
        let mut wanted = loops.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        OsrDirect {
            wanted,
            loops_seen: 0,
            checked,
            next: None,
            facts: Vec::new(),
            entered: Vec::new(),
            copies: Vec::new(),
        }
    }

    /// Starts the count of `loop` operators at `seen` (for a translation that starts at loop
    /// `seen`).
    pub(super) fn start_count_at(&mut self, seen: u32) {
        self.loops_seen = seen;
    }

    /// Leaves loop `only` as the one loop asked for, if it was asked for at all.
    pub(super) fn ask_only(&mut self, only: u32) {
        self.wanted.retain(|&l| l == only);
        if self.checked != Some(only) {
            self.checked = None;
        }
    }
}

impl<'ctx> ControlFrame<'ctx> {
    /// A frame of a region entry's synthetic control stack, for a construct enclosing the
    /// region's loop (see `super::region`): its label (the header of a `loop`, the end of a
    /// `block` or `if`) is `exit`, a block that leaves the entry, and it takes no values.
    pub(super) fn exit(is_loop: bool, exit: BasicBlock<'ctx>) -> Self {
        ControlFrame {
            kind: match is_loop {
                true => FrameKind::Loop {
                    header: exit,
                    header_phis: Vec::new(),
                },
                false => FrameKind::Block,
            },
            next: exit,
            next_phis: Vec::new(),
            height: 0,
            exit_reachable: false,
        }
    }
}

impl OsrState<'_> {
    pub(crate) fn new(loop_index: u32) -> Self {
        OsrState {
            target: loop_index,
            loops_seen: 0,
            path: Vec::new(),
            hop: None,
            flag: None,
        }
    }

    fn loop_index(&self) -> u32 {
        self.target
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
        self.osr_loop_header(header, &header_phis)?;
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
                (*else_block, std::mem::take(else_params))
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
        self.stack.extend_from_slice(&params);
        self.builder.position_at_end(else_block);
        // The `if` head was reachable (frames are only pushed in reachable code).
        self.reachable = true;
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
            FrameKind::Block | FrameKind::Loop { .. }
                if self.reachable && !frame.exit_reachable =>
            {
                // Nothing branches to the end of the construct: its results are already on the
                // stack, so keep going in the current block (`next` is never used).
                self.terminate_unused(frame.next);
                return Ok(());
            }
            FrameKind::Block | FrameKind::Loop { .. } => {}
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

    /// Counts `loop` operators for an OSR entry, notes which loops a direct entry enters and
    /// checks that a single-loop entry's target can be entered. Called for every operator of
    /// the main translation, reachable or not, before it is translated (`at_op`: the reader
    /// positioned at `op`, for OSR translations); returns whether `op` is to be translated a
    /// first time as a copy: the single-loop entry's target, or the direct entry's checked loop
    /// when it has range facts.
    pub(super) fn note_loop(
        &mut self,
        op: &Operator<'_>,
        offset: usize,
        at_op: Option<&OperatorsReader<'_>>,
    ) -> Result<bool, CompileError> {
        let Operator::Loop { blockty } = *op else {
            return Ok(false);
        };
        if let Some(direct) = &self.osr_direct {
            let index = direct.loops_seen;
            // A loop is entered when it is wanted, reachable, and nothing is on the operand
            // stack at its header; the others are left out (the caller learns which).
            let enter = direct.wanted.binary_search(&index).is_ok()
                && self.reachable
                && self.stack.is_empty()
                && self.block_sig(blockty, offset)?.params().is_empty();
            let facts = match (enter && direct.checked == Some(index), at_op) {
                (true, Some(reader)) => {
                    let i32_type = self.ctx.i32_type().as_basic_type_enum();
                    let is_i32: Vec<bool> = self.locals.iter().map(|l| l.ty == i32_type).collect();
                    loop_range_facts(reader.clone(), |l| {
                        is_i32.get(l as usize).copied().unwrap_or(false)
                    })?
                }
                _ => Vec::new(),
            };
            let direct = self.osr_direct.as_mut().expect("direct OSR translation");
            direct.loops_seen += 1;
            direct.next = enter.then_some(index);
            let copy = !facts.is_empty();
            direct.facts = facts;
            return Ok(copy);
        }
        let Some(osr) = &self.osr else {
            return Ok(false);
        };
        let is_target = osr.loops_seen == osr.loop_index();
        if is_target {
            if !self.reachable {
                return Err(CompileError::unsupported(
                    format!(
                        "no on-stack-replacement entry for loop {}: it is unreachable",
                        osr.loop_index()
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
                        osr.loop_index()
                    ),
                    offset,
                ));
            }
        }
        if let Some(osr) = &mut self.osr {
            osr.loops_seen += 1;
        }
        Ok(is_target)
    }

    /// Prepares an OSR entry before the body is translated: finds the loops on the path to the
    /// target loop, creates the block the prologue ends in (the first hop) and, when the target
    /// is nested in other loops, the flag that steers the first pass through their headers.
    /// Returns the first hop, the block the prologue branches to.
    pub(super) fn start_osr(
        &mut self,
        body: &FunctionBody<'_>,
    ) -> Result<BasicBlock<'ctx>, CompileError> {
        let osr = self.osr.as_ref().expect("OSR translation");
        let target = osr.target;
        let (path, loops) = osr_path(body, target)?;
        if path.is_empty() {
            return Err(CompileError::unsupported(
                format!(
                    "no on-stack-replacement entry for loop {target}: the body has only {loops} \
                     loops"
                ),
                body.range().start as usize,
            ));
        }
        let hop = self.ctx.append_basic_block(self.func, "osr");
        let flag = (path.len() > 1).then(|| {
            let bool_type = self.ctx.bool_type();
            let flag = self.prologue.build_alloca(bool_type, "osr_flag").unwrap();
            self.prologue
                .build_store(flag, bool_type.const_all_ones())
                .unwrap();
            flag
        });
        let osr = self.osr.as_mut().expect("OSR translation");
        osr.path = path;
        osr.hop = Some(hop);
        osr.flag = flag;
        Ok(hop)
    }

    /// For an OSR entry, at the header of a loop just opened: when the loop encloses the target
    /// loop, the pending hop enters it here, and its header passes the first arrival (flag set)
    /// on to a new hop towards the next loop of the path (or the copy of the target).
    fn osr_loop_header(
        &mut self,
        header: BasicBlock<'ctx>,
        header_phis: &[PhiValue<'ctx>],
    ) -> Result<(), CompileError> {
        if let Some(direct) = &mut self.osr_direct {
            if let Some(index) = direct.next.take() {
                // Eligible loops have no parameters, so the header has no phis to feed.
                debug_assert!(header_phis.is_empty());
                let hop = self.ctx.append_basic_block(self.func, "osr_enter");
                let b = self.ctx.create_builder();
                b.position_at_end(hop);
                b.build_unconditional_branch(header).unwrap();
                direct.entered.push((index, hop));
            }
            return Ok(());
        }
        let Some(osr) = &self.osr else {
            return Ok(());
        };
        // `note_loop` already counted this loop (and counts none inside the target's copy, so
        // loops there look like the target).
        let index = osr.loops_seen - 1;
        if index == osr.target || !osr.path.contains(&index) {
            return Ok(());
        }
        let (Some(hop), Some(flag)) = (osr.hop, osr.flag) else {
            return Err(CompileError::codegen(
                "OSR translation: a loop on the path was reached out of order",
            ));
        };
        let b = self.ctx.create_builder();
        b.position_at_end(hop);
        // The OSR path never uses the parameters of the loops it passes through (the operand
        // stack is empty at the target), so they take zeros from it.
        for phi in header_phis {
            let zero = phi.as_basic_value().get_type().const_zero();
            phi.add_incoming(&[(&zero as &dyn BasicValue<'ctx>, hop)]);
        }
        b.build_unconditional_branch(header).unwrap();
        let next_hop = self.ctx.append_basic_block(self.func, "osr");
        let rest = self.ctx.append_basic_block(self.func, "");
        let set = self
            .builder
            .build_load(self.ctx.bool_type(), flag, "")
            .unwrap()
            .into_int_value();
        self.builder
            .build_conditional_branch(set, next_hop, rest)
            .unwrap();
        self.builder.position_at_end(rest);
        if let Some(osr) = &mut self.osr {
            osr.hop = Some(next_hop);
        }
        Ok(())
    }

    /// Translates the OSR target loop a first time, as the copy the entry runs: `reader` is
    /// positioned at its `loop` operator, and the control stack is the one of the main
    /// translation at that point, so branches out of the copy go to the main translation's
    /// blocks and loop headers (which all enclose the copy: no loop gets a second way in). The
    /// pending hop enters the copy. Returns where the copy falls through its `end`, with the
    /// loop's results, for [`Self::osr_attach_fallthrough`]; the builder, operand stack and
    /// reachability are as before.
    pub(super) fn translate_osr_copy(
        &mut self,
        reader: OperatorsReader<'_>,
    ) -> Result<Option<OsrFallthrough<'ctx>>, CompileError> {
        let osr = self.osr.as_mut().expect("OSR translation");
        let (Some(hop), flag) = (osr.hop.take(), osr.flag) else {
            return Err(CompileError::codegen(
                "OSR translation: the target loop was reached out of order",
            ));
        };
        let start = self.ctx.append_basic_block(self.func, "osr_loop");
        let b = self.ctx.create_builder();
        b.position_at_end(hop);
        if let Some(flag) = flag {
            b.build_store(flag, self.ctx.bool_type().const_zero())
                .unwrap();
        }
        b.build_unconditional_branch(start).unwrap();
        self.translate_copy(reader, start)
    }

    /// For a direct OSR entry, translates the loop `reader` is positioned at a first time, as
    /// the checked copy of the loop [`Self::note_loop`] just found range facts for (see
    /// [`OsrDirect`]), otherwise as [`Self::translate_osr_copy`] does. The dispatch enters it
    /// ([`Self::finish_osr_direct`]).
    pub(super) fn translate_direct_copy(
        &mut self,
        reader: OperatorsReader<'_>,
    ) -> Result<Option<OsrFallthrough<'ctx>>, CompileError> {
        let direct = self.osr_direct.as_mut().expect("direct OSR translation");
        // The copy's own header must not be taken for the loop's: the main translation's is.
        let index = direct.next.take().ok_or_else(|| {
            CompileError::codegen("OSR translation: a checked copy of a loop not entered")
        })?;
        let facts = std::mem::take(&mut direct.facts);
        let start = self.ctx.append_basic_block(self.func, "osr_checked_loop");
        let fallthrough = self.translate_copy(reader, start)?;
        let direct = self.osr_direct.as_mut().expect("direct OSR translation");
        direct.next = Some(index);
        direct.copies.push((index, start, facts));
        Ok(fallthrough)
    }

    /// Translates the loop `reader` is positioned at into blocks starting at `start`, with the
    /// control stack of the main translation at that point (see [`Self::translate_osr_copy`]);
    /// restores the builder, operand stack and reachability afterwards.
    fn translate_copy(
        &mut self,
        mut reader: OperatorsReader<'_>,
        start: BasicBlock<'ctx>,
    ) -> Result<Option<OsrFallthrough<'ctx>>, CompileError> {
        let saved_block = self.current_block();
        let saved_stack = std::mem::take(&mut self.stack);
        let depth = self.control.len();
        self.builder.position_at_end(start);
        self.reachable = true;
        self.unreachable_depth = 0;
        loop {
            let offset = reader.original_position() as usize;
            let op = reader.read()?;
            if self.reachable {
                self.translate_operator(&op, offset)?;
            } else {
                self.translate_unreachable_operator(&op, offset)?;
            }
            if self.control.len() == depth {
                break;
            }
        }
        let fallthrough = self.reachable.then(|| OsrFallthrough {
            block: self.current_block(),
            values: std::mem::take(&mut self.stack),
        });
        self.stack = saved_stack;
        self.builder.position_at_end(saved_block);
        self.reachable = true;
        self.unreachable_depth = 0;
        Ok(fallthrough)
    }

    /// Makes the end of the OSR copy of the target loop continue after the main translation's
    /// target loop, whose frame was just pushed.
    pub(super) fn osr_attach_fallthrough(&mut self, fallthrough: OsrFallthrough<'ctx>) {
        let frame = self.control.last_mut().expect("the target loop's frame");
        frame.exit_reachable = true;
        let (next, phis) = (frame.next, frame.next_phis.clone());
        let b = self.ctx.create_builder();
        b.position_at_end(fallthrough.block);
        for (phi, v) in phis.iter().zip(&fallthrough.values) {
            phi.add_incoming(&[(v as &dyn BasicValue<'ctx>, fallthrough.block)]);
        }
        b.build_unconditional_branch(next).unwrap();
    }

    /// For a direct OSR entry, after the translation: the block dispatching on the entry's
    /// `loop_index` argument to the entered loops (any other index traps), and those loops.
    pub(super) fn finish_osr_direct(
        &mut self,
        offset: usize,
    ) -> Result<Option<(BasicBlock<'ctx>, Vec<u32>)>, CompileError> {
        let Some(direct) = self.osr_direct.take() else {
            return Ok(None);
        };
        if direct.entered.is_empty() {
            return Err(CompileError::unsupported(
                format!(
                    "no on-stack-replacement entry for loops {:?}: none can be entered (each \
                     is unreachable, missing, or entered with a non-empty operand stack)",
                    direct.wanted
                ),
                offset,
            ));
        }
        let index = self
            .func
            .get_nth_param(3)
            .expect("loop index parameter")
            .into_int_value();
        let dispatch = self.ctx.append_basic_block(self.func, "osr_dispatch");
        let other = self.trap_block(TrapCode::UnreachableCodeReached);
        let i32_type = self.ctx.i32_type();
        let cases: Vec<_> = direct
            .entered
            .iter()
            .map(|&(l, hop)| {
                let target = match direct.copies.iter().find(|c| c.0 == l) {
                    Some((_, copy, facts)) => self.osr_fact_check(*copy, hop, facts),
                    None => hop,
                };
                (i32_type.const_int(u64::from(l), false), target)
            })
            .collect();
        let b = self.ctx.create_builder();
        b.position_at_end(dispatch);
        b.build_switch(index, other, &cases).unwrap();
        let loops = direct.entered.iter().map(|&(l, _)| l).collect();
        Ok(Some((dispatch, loops)))
    }

    /// The block a direct entry dispatches to for a loop with a checked copy: it checks `facts` on
    /// the locals array and, when all hold, loads those locals again (volatile) with `!range`
    /// metadata stating them and enters `copy`; otherwise it goes on to `plain`, the block entering
    /// the loop's own header.
    fn osr_fact_check(
        &self,
        copy: BasicBlock<'ctx>,
        plain: BasicBlock<'ctx>,
        facts: &[RangeFact],
    ) -> BasicBlock<'ctx> {
        let i32_type = self.ctx.i32_type();
        let check = self.ctx.append_basic_block(self.func, "osr_check");
        let checked = self.ctx.append_basic_block(self.func, "osr_checked");
        let b = self.ctx.create_builder();
        let load_local = |b: &Builder<'ctx>, local: u32| {
            let ptr = self.osr_slot(b, local as usize);
            let v = b.build_load(i32_type, ptr, "").unwrap();
            set_alignment(v, 1);
            v
        };
        b.position_at_end(check);
        let mut all = self.ctx.bool_type().const_all_ones();
        for f in facts {
            debug_assert!(f.bound != 0, "an empty range");
            let v = load_local(&b, f.local).into_int_value();
            let bound = i32_type.const_int(u64::from(f.bound), false);
            let holds = b
                .build_int_compare(IntPredicate::ULT, v, bound, "")
                .unwrap();
            all = b.build_and(all, holds, "").unwrap();
        }
        b.build_conditional_branch(all, checked, plain).unwrap();
        b.position_at_end(checked);
        // Nothing writes the locals array in between, so these loads read the values just
        // checked: the metadata states what holds.
        let range = self.ctx.get_kind_id("range");
        for f in facts {
            let v = load_local(&b, f.local);
            let bounds = self.ctx.metadata_node(&[
                i32_type.const_zero().into(),
                i32_type.const_int(u64::from(f.bound), false).into(),
            ]);
            let load = v.as_instruction_value().expect("a load is an instruction");
            load.set_metadata(bounds, range)
                .expect("range metadata applies to loads");
            // Volatile, or CSE would replace it with the prologue's load of the same slot and
            // drop the metadata with it.
            load.set_volatile(true).expect("a load can be volatile");
            b.build_store(self.locals[f.local as usize].ptr, v).unwrap();
        }
        b.build_unconditional_branch(copy).unwrap();
        check
    }

    /// Checks, after the translation, that the OSR path reached its target loop.
    pub(super) fn finish_osr(&self) -> Result<(), CompileError> {
        match &self.osr {
            Some(osr) if osr.hop.is_some() => Err(CompileError::codegen(
                "OSR translation: the target loop was never reached",
            )),
            _ => Ok(()),
        }
    }
}

/// Where the OSR copy of the target loop falls through its `end`, and the loop's results.
pub(crate) struct OsrFallthrough<'ctx> {
    block: BasicBlock<'ctx>,
    values: Vec<BasicValueEnum<'ctx>>,
}

/// The loops on the way to loop `target` (the loops enclosing it, outermost first, then
/// `target` itself, in the numbering of [`spate_tiers::loops`]); empty when the body has fewer
/// loops. Also returns how many loops the body has.
fn osr_path(body: &FunctionBody<'_>, target: u32) -> Result<(Vec<u32>, u32), CompileError> {
    let parents = loop_parents(body)?;
    let path = if (target as usize) < parents.len() {
        loop_path(&parents, target)
    } else {
        Vec::new()
    };
    Ok((path, parents.len() as u32))
}
