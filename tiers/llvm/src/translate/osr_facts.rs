//! Range facts for the loops a direct OSR entry enters.
//!
//! An OSR entry starts a loop from values it loads from the locals array, where the function's
//! own code starts it from constants. For a loop nest whose outer loop carries a 32-bit offset
//! (a row of a matrix: `p += 8000` per outer iteration, `p + 8 * j` in the inner loop), LLVM can
//! then no longer prove that the offsets stay below 4 GiB, so every access keeps a 32-bit add
//! instead of a 64-bit address (`benches/kernels/probe/entry-addressing.sh`: a few percent of
//! matmul). Two facts give the proof back: the outer loop's counter is below the constant its
//! back edge compares with (which bounds the trip count), and the carried offsets are below
//! 2^31. The entry checks both at run time and enters a copy of the loop whose start values
//! carry them as `!range` metadata; when a check fails it enters the loop as before. So the
//! facts cost nothing in correctness: this module only decides which checks are worth making.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use wasmparser::{BinaryReaderError, Operator, OperatorsReader};

/// A fact an OSR entry checks on a 32-bit local before entering a loop's checked copy: the
/// local's value, as unsigned, is below `bound`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RangeFact {
    pub(crate) local: u32,
    pub(crate) bound: u32,
}

/// The bound of a carried 32-bit local that is not a counter: below 2^31, which any offset into
/// a linear memory of up to 2 GiB is.
pub(crate) const OFFSET_BOUND: u32 = 1 << 31;

/// The operators of a counted back edge, in the shape clang emits at the end of a rotated loop:
/// `local.get v; i32.const k; i32.add; local.tee v; i32.const C; i32.ne|lt_u|lt_s; br_if 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Get(u32),
    Const(i32),
    Add,
    Tee(u32),
    /// `i32.ne`, `i32.lt_u` or `i32.lt_s`: the loop goes on while the counter is below (or not
    /// yet at) the constant.
    Below,
    Other,
}

/// The facts worth checking for the loop whose `loop` operator `reader` is positioned at: for each
/// counter (a local stepped up by a positive constant and compared with a positive constant `C` on
/// a back edge at the loop's top level) `counter < C`, and for each other 32-bit local the loop
/// carries (reads before it writes it, in the order of the body's operators) and steps up by a
/// positive constant, an offset, `local < 2^31`. Empty unless there is a counter and another
/// carried 32-bit local: without a carried offset the entry's code is as good as the function's
/// own, and a copy would only cost compile time. `is_i32` says which locals are 32-bit integers.
pub(crate) fn loop_range_facts(
    mut reader: OperatorsReader<'_>,
    is_i32: impl Fn(u32) -> bool,
) -> Result<Vec<RangeFact>, BinaryReaderError> {
    if !matches!(reader.read()?, Operator::Loop { .. }) {
        return Ok(Vec::new());
    }
    // Nesting inside the loop: 1 is the loop's own body.
    let mut depth = 1u32;
    // Locals written so far in the loop's body (in program order, at any depth: a temporary
    // set and used inside an inner loop is not carried by this one, and a value set only on
    // some paths at most loses a fact), and those read before such a write.
    let mut written_first = HashSet::new();
    let mut read_first = BTreeSet::new();
    // Locals stepped up by a positive constant (`local.get v; i32.const k; i32.add;
    // local.set|tee v`): offsets moving through memory, unlike accumulators or hashes, whose
    // values may take any sign and would only fail their check.
    let mut stepped = HashSet::new();
    let mut counters = BTreeMap::new();
    let mut window = [Shape::Other; 6];
    while depth > 0 {
        let op = reader.read()?;
        let shape = match op {
            Operator::Block { .. } | Operator::Loop { .. } | Operator::If { .. } => {
                depth += 1;
                Shape::Other
            }
            Operator::End => {
                depth -= 1;
                Shape::Other
            }
            Operator::LocalGet { local_index } => {
                if !written_first.contains(&local_index) {
                    read_first.insert(local_index);
                }
                Shape::Get(local_index)
            }
            Operator::LocalSet { local_index } | Operator::LocalTee { local_index } => {
                written_first.insert(local_index);
                if let [.., Shape::Get(v), Shape::Const(k), Shape::Add] = window
                    && v == local_index
                    && k > 0
                {
                    stepped.insert(local_index);
                }
                match op {
                    Operator::LocalTee { .. } => Shape::Tee(local_index),
                    _ => Shape::Other,
                }
            }
            Operator::I32Const { value } => Shape::Const(value),
            Operator::I32Add => Shape::Add,
            Operator::I32Ne | Operator::I32LtU | Operator::I32LtS => Shape::Below,
            Operator::BrIf { relative_depth: 0 } if depth == 1 => {
                if let [
                    Shape::Get(v),
                    Shape::Const(k),
                    Shape::Add,
                    Shape::Tee(t),
                    Shape::Const(c),
                    Shape::Below,
                ] = window
                    && v == t
                    && k > 0
                    && c > 0
                    && is_i32(v)
                {
                    counters.entry(v).or_insert(c as u32);
                }
                Shape::Other
            }
            _ => Shape::Other,
        };
        window.rotate_left(1);
        window[5] = shape;
    }
    // Counters and stepped locals are written by construction.
    let carried: Vec<u32> = read_first
        .into_iter()
        .filter(|l| is_i32(*l) && (counters.contains_key(l) || stepped.contains(l)))
        .collect();
    let has_counter = carried.iter().any(|l| counters.contains_key(l));
    let has_offset = carried.iter().any(|l| !counters.contains_key(l));
    if !(has_counter && has_offset) {
        return Ok(Vec::new());
    }
    Ok(carried
        .into_iter()
        .map(|local| RangeFact {
            local,
            bound: counters.get(&local).copied().unwrap_or(OFFSET_BOUND),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmparser::{Parser, Payload};

    /// The facts of loop `n` (in the order of the `loop` operators) of the first function of
    /// the module `wat`.
    fn facts_of(wat: &str, n: usize) -> Vec<RangeFact> {
        let buf = wast::parser::ParseBuffer::new(wat).unwrap();
        let mut module = wast::parser::parse::<wast::Wat>(&buf).unwrap();
        let bytes = module.encode().unwrap();
        for payload in Parser::new(0).parse_all(&bytes) {
            if let Payload::CodeSectionEntry(body) = payload.unwrap() {
                let mut reader = body.get_operators_reader().unwrap();
                let mut seen = 0;
                loop {
                    let at = reader.clone();
                    if let Operator::Loop { .. } = reader.read().unwrap() {
                        if seen == n {
                            // Local 4 is the i64 accumulator; the others are i32.
                            return loop_range_facts(at, |l| l != 4).unwrap();
                        }
                        seen += 1;
                    }
                }
            }
        }
        panic!("no function");
    }

    const ROWS: &str = r#"(module (func (param $n i32)
        (local $i i32) (local $p i32) (local $j i32) (local $acc i64)
        (loop $outer
          (local.set $j (i32.const 0))
          (loop $inner
            (local.set $acc (i64.add (local.get $acc)
              (i64.extend_i32_u (i32.add (local.get $p) (local.get $j)))))
            (br_if $inner (i32.ne (local.tee $j (i32.add (local.get $j) (i32.const 4)))
                                  (i32.const 32))))
          (local.set $p (i32.add (local.get $p) (i32.const 32)))
          (br_if $outer (i32.ne (local.tee $i (i32.add (local.get $i) (i32.const 1)))
                                (i32.const 10))))))"#;

    #[test]
    fn a_counted_loop_carrying_an_offset_gets_both_facts() {
        // $i (local 1) is the counter, $p (local 2) the carried offset; $j is set before it
        // is read, $acc is not 32-bit, $n is not written.
        assert_eq!(
            facts_of(ROWS, 0),
            vec![
                RangeFact {
                    local: 1,
                    bound: 10
                },
                RangeFact {
                    local: 2,
                    bound: OFFSET_BOUND
                },
            ]
        );
    }

    #[test]
    fn a_temporary_set_before_its_use_in_an_inner_loop_is_not_carried() {
        // $t (local 5) is set and then read inside the inner loop, so the outer loop does not
        // carry it: no fact (its last value, whatever its sign, must not fail the checks).
        let wat = ROWS
            .replace("(local $acc i64)", "(local $acc i64) (local $t i32)")
            .replace(
                "(local.set $acc (i64.add (local.get $acc)",
                "(local.set $t (i32.sub (local.get $j) (i32.const 9))) \
             (local.set $acc (i64.add (i64.extend_i32_s (local.get $t)) (local.get $acc))) \
             (local.set $acc (i64.add (local.get $acc)",
            );
        assert!(wat.contains("local.get $t"));
        let facts = facts_of(&wat, 0);
        assert_eq!(
            facts.iter().map(|f| f.local).collect::<Vec<_>>(),
            vec![1, 2]
        );
    }

    #[test]
    fn loops_without_a_carried_offset_or_a_counter_get_none() {
        // The inner loop's only carried 32-bit local is its counter.
        assert_eq!(facts_of(ROWS, 1), vec![]);
        // A counter compared with a local, not a constant: no counter, so no facts.
        let wat = r#"(module (func (param $n i32) (local $i i32) (local $p i32)
            (loop $l
              (local.set $p (i32.add (local.get $p) (i32.const 8)))
              (br_if $l (i32.ne (local.tee $i (i32.add (local.get $i) (i32.const 1)))
                                (local.get $n))))))"#;
        assert_eq!(facts_of(wat, 0), vec![]);
        // Counting down (to a positive constant): no counter either.
        let wat = r#"(module (func (param $n i32) (local $i i32) (local $p i32)
            (loop $l
              (local.set $p (i32.add (local.get $p) (i32.const 8)))
              (br_if $l (i32.ne (local.tee $i (i32.add (local.get $i) (i32.const -1)))
                                (i32.const 100))))))"#;
        assert_eq!(facts_of(wat, 0), vec![]);
        // A counter and a carried accumulator that is not stepped by a constant: no offset.
        let wat = r#"(module (func (param $n i32) (local $i i32) (local $h i32)
            (loop $l
              (local.set $h (i32.mul (local.get $h) (i32.const 31)))
              (br_if $l (i32.ne (local.tee $i (i32.add (local.get $i) (i32.const 1)))
                                (i32.const 100))))))"#;
        assert_eq!(facts_of(wat, 0), vec![]);
    }
}
