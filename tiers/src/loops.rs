//! The loop numbering of the on-stack-replacement contract.
//!
//! Baseline code names a loop to the runtime (`LoopTierUp`) and the runtime names it to the
//! optimizing tier (an OSR entry for loop `n`) by its index: every `loop` operator of the body
//! counted in order from 0, dead code included. The runtime and the tiers read a body's loop
//! structure through these functions so that they all agree on it.

use wasmparser::{BinaryReaderError, FunctionBody, Operator};

/// For each loop of `body`, in the contract's numbering, the loop directly enclosing it, if any.
pub fn loop_parents(body: &FunctionBody<'_>) -> Result<Vec<Option<u32>>, BinaryReaderError> {
    let mut ops = body.get_operators_reader()?;
    let mut parents = Vec::new();
    // The open constructs: `Some(index)` for loops.
    let mut open: Vec<Option<u32>> = Vec::new();
    while !ops.eof() {
        match ops.read()? {
            Operator::Loop { .. } => {
                parents.push(open.iter().rev().find_map(|l| *l));
                open.push(Some(parents.len() as u32 - 1));
            }
            Operator::Block { .. }
            | Operator::If { .. }
            | Operator::Try { .. }
            | Operator::TryTable { .. } => open.push(None),
            Operator::End | Operator::Delegate { .. } => {
                open.pop();
            }
            _ => {}
        }
    }
    Ok(parents)
}

/// The loops enclosing `target` per `parents` (from [`loop_parents`]), outermost first, then
/// `target` itself; just `target` for a loop `parents` does not know.
pub fn loop_path(parents: &[Option<u32>], target: u32) -> Vec<u32> {
    let mut path = vec![target];
    let mut at = target;
    while let Some(&Some(p)) = parents.get(at as usize) {
        path.push(p);
        at = p;
    }
    path.reverse();
    path
}

/// The loops from `outer` in to `inner` (outermost first), per `parents`; just `inner` if
/// `outer` does not enclose it.
pub fn loop_chain(parents: &[Option<u32>], outer: u32, inner: u32) -> Vec<u32> {
    let path = loop_path(parents, inner);
    match path.iter().position(|&l| l == outer) {
        Some(i) => path[i..].to_vec(),
        None => vec![inner],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmparser::BinaryReader;

    /// A body (locals count 0, then `ops`, then `end`) as the reader sees it.
    fn parents_of(ops: &[u8]) -> Vec<Option<u32>> {
        let mut bytes = vec![0];
        bytes.extend_from_slice(ops);
        bytes.push(0x0b);
        loop_parents(&FunctionBody::new(BinaryReader::new(&bytes, 0))).unwrap()
    }

    #[test]
    fn loops_are_numbered_in_order_with_their_parents() {
        const LOOP: u8 = 0x03;
        const BLOCK: u8 = 0x02;
        const END: u8 = 0x0b;
        const VOID: u8 = 0x40;
        // loop 0 { block { loop 1 { loop 2 {} } } loop 3 {} }  loop 4 {}
        let ops = [
            LOOP, VOID, BLOCK, VOID, LOOP, VOID, LOOP, VOID, END, END, END, LOOP, VOID, END, END,
            LOOP, VOID, END,
        ];
        assert_eq!(
            parents_of(&ops),
            vec![None, Some(0), Some(1), Some(0), None]
        );
        assert_eq!(parents_of(&[]), Vec::<Option<u32>>::new());
        // A body that ends in the middle of an operator is an error.
        let truncated = [0u8, LOOP];
        assert!(loop_parents(&FunctionBody::new(BinaryReader::new(&truncated, 0))).is_err());
    }

    #[test]
    fn paths_and_chains() {
        // 0 { 1 { 2 } 3 }  4 { 5 }  6
        let parents = [None, Some(0), Some(1), Some(0), None, Some(4), None];
        assert_eq!(loop_path(&parents, 2), vec![0, 1, 2]);
        assert_eq!(loop_path(&parents, 6), vec![6]);
        assert_eq!(loop_path(&parents, 9), vec![9]);
        assert_eq!(loop_chain(&parents, 0, 2), vec![0, 1, 2]);
        assert_eq!(loop_chain(&parents, 1, 2), vec![1, 2]);
        assert_eq!(loop_chain(&parents, 2, 2), vec![2]);
        // `outer` does not enclose `inner`.
        assert_eq!(loop_chain(&parents, 4, 2), vec![2]);
        assert_eq!(loop_chain(&parents, 0, 9), vec![9]);
    }
}
