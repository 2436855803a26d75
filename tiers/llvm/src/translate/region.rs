//! Region entries: an on-stack-replacement entry holding the code of one loop alone.
//!
//! A whole-function OSR entry costs as much to compile as the function, because once entered
//! it runs the function to its end. A region entry is the loop (and the loops inside it) with a
//! synthetic control stack around it: the frames of the constructs enclosing the loop are
//! there, with their labels (a `loop` header, the end of a `block` or `if`) replaced by blocks
//! that leave the entry, and so is the loop's own fall-through. Leaving writes every local back
//! into the locals array, an exit code naming the target into the status slot after them, and
//! returns; the baseline's transfer reloads the locals and continues at that target in its own
//! code (`spate_tiers::abi`). A branch to the function body or a `return` returns from the
//! function as in any entry. The code before and after the loop is never translated, so the
//! compile time is the loop's.
//!
//! A region of a loop inside no other loop may also be entered at the headers of loops inside
//! it (a loop over phases, entered at the phase the program is in): the entry's dispatch
//! branches straight to those headers, as a direct entry's does, and the exits are the same.
//!
//! Exits carry no values: the baseline takes an entry only at a loop header with an empty
//! operand stack, so nothing below the loop's frame is live, and a region whose exits would
//! pass operands (a branch out to a label that takes values, a loop with results) is declined
//! before anything is translated, as is a loop with parameters.

use spate_tiers::CompileError;
use spate_tiers::abi::{osr_exit_end, osr_exit_label};
use wasmparser::{BlockType, Operator, OperatorsReader};

use super::FuncTranslator;
use super::control::ControlFrame;

/// A construct enclosing the region's loop, as the pre-pass finds it.
#[derive(Clone, Copy)]
struct Enclosing {
    is_loop: bool,
    blockty: BlockType,
}

impl<'ctx> FuncTranslator<'ctx> {
    /// Translates the region entry of loop `region` (see the module documentation), entered at
    /// the loops its `OsrDirect` asks for (`region` and loops inside it; only `region` when it
    /// is inside another loop); `reader` is at the first operator of the body, the locals are
    /// set up and the function's frame is on the control stack. Returns the loops the entry
    /// serves.
    pub(super) fn translate_region(
        &mut self,
        region: u32,
        reader: OperatorsReader<'_>,
        body_offset: usize,
    ) -> Result<Vec<u32>, CompileError> {
        let (enclosing, mut reader) = self.find_region(reader, region, body_offset)?;
        // The shared exit: the code arrives in a phi.
        let exit = self.ctx.append_basic_block(self.func, "osr_exit");
        let i32_type = self.ctx.i32_type();
        let code = {
            let b = self.ctx.create_builder();
            b.position_at_end(exit);
            b.build_phi(i32_type, "exit_code").unwrap()
        };
        let exit_with = |t: &Self, c: u32| {
            let block = t.ctx.append_basic_block(t.func, "osr_leave");
            let b = t.ctx.create_builder();
            b.position_at_end(block);
            b.build_unconditional_branch(exit).unwrap();
            code.add_incoming(&[(&i32_type.const_int(u64::from(c), false), block)]);
            block
        };
        for (i, e) in enclosing.iter().enumerate() {
            let frame = i as u32 + 1;
            let leave = exit_with(self, osr_exit_label(frame));
            self.control.push(ControlFrame::exit(e.is_loop, leave));
        }
        let depth = self.control.len();
        let direct = self
            .osr_direct
            .as_mut()
            .expect("a region entry is a direct entry");
        direct.start_count_at(region);
        if enclosing.iter().any(|e| e.is_loop) {
            // Inside another loop, the baseline takes a region only at its own header (see
            // `spate_tiers::abi`).
            direct.ask_only(region);
        }
        loop {
            self.translate_next(&mut reader, None)?;
            if self.control.len() == depth {
                break;
            }
        }
        if self.reachable {
            // Past the loop's end.
            let leave = exit_with(self, osr_exit_end(depth as u32));
            self.builder.build_unconditional_branch(leave).unwrap();
        }
        // The synthetic frames end here; the function's frame returns whatever branches to it.
        self.control.truncate(1);
        self.reachable = false;
        self.translate_end(reader.original_position() as usize)?;
        self.emit_exit(exit, code.as_basic_value().into_int_value());
        let (dispatch, served) = self
            .finish_osr_direct(body_offset)?
            .expect("a region entry is a direct entry");
        self.finish_prologue(dispatch);
        Ok(served)
    }

    /// Finds loop `region` in the body `reader` starts at: the constructs enclosing it
    /// (outermost first) and a reader at its `loop` operator. Declines a region with
    /// parameters or results, or with a branch out of it to a label that takes values.
    fn find_region<'r>(
        &self,
        mut reader: OperatorsReader<'r>,
        region: u32,
        body_offset: usize,
    ) -> Result<(Vec<Enclosing>, OperatorsReader<'r>), CompileError> {
        let decline = |why: String, offset: usize| {
            CompileError::unsupported(
                format!("no on-stack-replacement region for loop {region}: {why}"),
                offset,
            )
        };
        let mut open: Vec<Enclosing> = Vec::new();
        let mut loops = 0u32;
        let at = loop {
            if reader.eof() {
                return Err(decline(
                    format!("the body has only {loops} loops"),
                    body_offset,
                ));
            }
            let at = reader.clone();
            match reader.read()? {
                Operator::Loop { blockty } if loops == region => break (at, blockty),
                Operator::Loop { blockty } => {
                    loops += 1;
                    open.push(Enclosing {
                        is_loop: true,
                        blockty,
                    });
                }
                Operator::Block { blockty } | Operator::If { blockty } => open.push(Enclosing {
                    is_loop: false,
                    blockty,
                }),
                Operator::End => {
                    open.pop();
                }
                _ => {}
            }
        };
        let (at, blockty) = at;
        let offset = at.original_position() as usize;
        let sig = self.block_sig(blockty, offset)?;
        if !sig.params().is_empty() || !sig.results().is_empty() {
            return Err(decline("the loop has parameters or results".into(), offset));
        }
        // Each label a branch inside the loop may leave to must take no values. Nesting 1 is
        // the loop's own body, whose relative depth 0 is the loop.
        let arity = |e: &Enclosing| -> Result<usize, CompileError> {
            let sig = self.block_sig(e.blockty, offset)?;
            Ok(match e.is_loop {
                true => sig.params().len(),
                false => sig.results().len(),
            })
        };
        let mut nesting = 1usize;
        while nesting > 0 {
            let op_offset = reader.original_position() as usize;
            let op = reader.read()?;
            let depths: Vec<u32> = match op {
                Operator::Block { .. } | Operator::Loop { .. } | Operator::If { .. } => {
                    nesting += 1;
                    continue;
                }
                Operator::End => {
                    nesting -= 1;
                    continue;
                }
                Operator::Br { relative_depth } | Operator::BrIf { relative_depth } => {
                    vec![relative_depth]
                }
                Operator::BrTable { ref targets } => {
                    let mut all = targets.targets().collect::<Result<Vec<_>, _>>()?;
                    all.push(targets.default());
                    all
                }
                Operator::BrOnNull { .. }
                | Operator::BrOnNonNull { .. }
                | Operator::TryTable { .. }
                | Operator::Delegate { .. } => {
                    return Err(decline(format!("operator {op:?}"), op_offset));
                }
                _ => continue,
            };
            for d in depths {
                let d = d as usize;
                if d < nesting {
                    continue;
                }
                // Relative depth `nesting` is the innermost enclosing construct; past all of
                // them is the function body, whose branches return.
                let Some(i) = open.len().checked_sub(d - nesting + 1) else {
                    continue;
                };
                if arity(&open[i])? != 0 {
                    return Err(decline(
                        "a branch out of it passes values".into(),
                        op_offset,
                    ));
                }
            }
        }
        Ok((open, at))
    }

    /// Fills the shared exit block: every local back into the locals array, then `code` into
    /// the status slot after them, and a return (the results are not looked at).
    fn emit_exit(
        &self,
        exit: inkwell::basic_block::BasicBlock<'ctx>,
        code: inkwell::values::IntValue<'ctx>,
    ) {
        let b = self.ctx.create_builder();
        b.position_at_end(exit);
        for (i, local) in self.locals.iter().enumerate() {
            let v = b.build_load(local.ty, local.ptr, "").unwrap();
            let store = b.build_store(self.osr_slot(&b, i), v).unwrap();
            store.set_alignment(1).expect("stores have an alignment");
        }
        let store = b
            .build_store(self.osr_slot(&b, self.locals.len()), code)
            .unwrap();
        store.set_alignment(4).expect("stores have an alignment");
        match (self.ret_area, self.result_types.first()) {
            (None, Some(ty)) => {
                let zero = ty.const_zero();
                b.build_return(Some(&zero)).unwrap();
            }
            _ => {
                b.build_return(None).unwrap();
            }
        }
    }
}
