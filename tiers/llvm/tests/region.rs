//! Region entries of the LLVM tier (`FunctionCompiler::compile_osr_region`), called directly
//! with a locals array: each runs its loop from the given state and either returns from the
//! function or leaves with the locals written back and the exit code of the label it left to.

#[path = "../../cranelift/tests/harness/mod.rs"]
mod harness;

use harness::{Instance, wat};
use spate_tier_llvm::{LlvmCompiler, LlvmOptions, LlvmTier};
use spate_tiers::abi::{OSR_RETURNED, ValRaw, osr_exit_end, osr_exit_label};
use spate_tiers::{CompileError, CompileErrorKind, CompiledFunction, FunctionCompiler};
use wasmparser::{Parser, Payload};

fn compiler() -> LlvmCompiler {
    LlvmTier::new(LlvmOptions::default())
        .expect("host supported")
        .compiler()
        .expect("compiler")
}

fn instance(src: &str) -> Instance {
    let module = harness::compile_with(&mut compiler(), &wat(src)).expect("module compiles");
    Instance::new(module, Vec::new())
}

const MODULE: &str = concat!(
    r#"(module
"#,
    // Three nested loops, an early way out of the middle one, then a loop of its own.
    include_str!("fixtures/deep.wat"),
    r#"  ;; a search that returns from inside its loop, or leaves to the block around it
  (func (export "find") (param $n i64) (result i64) (local $i i64)
    (block $none
      (loop $l
        (br_if $none (i64.ge_u (local.get $i) (local.get $n)))
        (if (i64.eq (i64.rem_u (i64.mul (local.get $i) (local.get $i)) (i64.const 97))
                    (i64.const 50))
          (then (return (local.get $i))))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $l)))
    (i64.const -1))
  ;; a branch out of the loop that passes a value, and a loop with a result
  (func (export "valued") (param $n i32) (result i32) (local $i i32)
    (block $b (result i32)
      (loop $l
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (drop (br_if $b (local.get $i) (i32.ge_u (local.get $i) (local.get $n))))
        (br $l))
      (loop $m (result i32)
        (local.get $i)))
    (drop)
    (i32.const 0))
)"#
);

/// Compiles the region entry of loop `region` of exported function `name`, entered at its own
/// header.
fn region(
    inst: &Instance,
    name: &str,
    region: u32,
) -> Result<(CompiledFunction, Vec<u32>), CompileError> {
    region_at(inst, name, region, &[region])
}

/// Compiles the region entry of loop `region` of exported function `name`, entered at `loops`.
fn region_at(
    inst: &Instance,
    name: &str,
    region: u32,
    loops: &[u32],
) -> Result<(CompiledFunction, Vec<u32>), CompileError> {
    let index = inst.module.exports[name];
    let info = inst.module.info.clone();
    let mut n = info.num_imported_functions;
    for payload in Parser::new(0).parse_all(&inst.module.bytes) {
        if let Payload::CodeSectionEntry(body) = payload.unwrap() {
            if n == index {
                return compiler().compile_osr_region(
                    &info,
                    index,
                    &body,
                    region,
                    loops,
                    Some(region),
                );
            }
            n += 1;
        }
    }
    panic!("no function {name}");
}

/// What a region entry did: returned a value, or left with an exit code and these locals.
#[derive(Debug, PartialEq)]
enum Outcome {
    Returned(i64),
    Left(u32, Vec<i64>),
}

/// Calls the region entry `compiled` (of a function returning one `i64`) at loop `at` with
/// `locals` (all `i64`).
fn call(inst: &mut Instance, compiled: &CompiledFunction, at: u32, locals: &[i64]) -> Outcome {
    let code = harness::Code::new(&compiled.code);
    type Osr = unsafe extern "C" fn(*mut u8, *mut u8, *mut ValRaw, u32) -> i64;
    // SAFETY: the entry was compiled for the OSR signature of a function returning one i64.
    let f: Osr = unsafe { std::mem::transmute(code.ptr()) };
    let vmctx: *mut u8 = (&mut *inst.vmctx as *mut spate_tiers::vmctx::VMContext).cast();
    let mut buf: Vec<ValRaw> = locals.iter().map(|&v| ValRaw::i64(v)).collect();
    buf.push(ValRaw::i32(OSR_RETURNED as i32));
    // SAFETY: the instance's context is live; `buf` has a slot for every local and the status.
    let result = unsafe { f(vmctx, vmctx, buf.as_mut_ptr(), at) };
    let status = buf[locals.len()].get_i32() as u32;
    if status == OSR_RETURNED {
        return Outcome::Returned(result);
    }
    Left(
        status,
        buf[..locals.len()].iter().map(ValRaw::get_i64).collect(),
    )
}
use Outcome::{Left, Returned};

/// The reference run of `deep`'s loop `$b` from the given state: where it leaves to, and the
/// locals `[n, i, j, k, acc]` then.
fn deep_b(n: i64, i: i64, mut j: i64, mut acc: i64) -> Outcome {
    loop {
        // The header comes before `$k` is reset, so `$k` starts at 0 whatever it was.
        let mut k = 0i64;
        loop {
            acc = acc
                .wrapping_mul(3)
                .wrapping_add(i.wrapping_add(j.wrapping_mul(k)));
            k += 1;
            if k as u64 >= 5 {
                break;
            }
        }
        if i + j == 7 {
            // `br_if $a_body`: frame 2 (function 0, `$a` 1, `$a_body` 2).
            return Left(osr_exit_label(2), vec![n, i, j, k, acc]);
        }
        j += 1;
        if j as u64 >= 4 {
            // Past the end of `$b`, frame 3.
            return Left(osr_exit_end(3), vec![n, i, j, k, acc]);
        }
    }
}

#[test]
fn a_region_leaves_at_its_end_or_through_an_enclosing_label() {
    let mut inst = instance(MODULE);
    let (compiled, served) = region(&inst, "deep", 1).expect("region compiles");
    assert_eq!(served, vec![1]);
    for (i, j, k, acc) in [(0, 0, 0, 0), (2, 1, 3, 9), (5, 0, 0, 77), (4, 2, 1, -3)] {
        let got = call(&mut inst, &compiled, 1, &[6, i, j, k, acc]);
        assert_eq!(got, deep_b(6, i, j, acc), "loop $b from i={i} j={j} k={k}");
    }
    // Both exits were taken by the cases above.
    assert!(matches!(
        call(&mut inst, &compiled, 1, &[6, 5, 0, 0, 1]),
        Left(4, _)
    ));
    assert!(matches!(
        call(&mut inst, &compiled, 1, &[6, 0, 0, 0, 1]),
        Left(7, _)
    ));

    // The outermost loop leaves past its end (frame 1) with the state `$d` starts from.
    let (compiled, _) = region(&inst, "deep", 0).expect("region compiles");
    let Left(code, locals) = call(&mut inst, &compiled, 0, &[3, 0, 0, 0, 0]) else {
        panic!("the outer loop returned");
    };
    assert_eq!(code, osr_exit_end(1));
    assert_eq!(locals, deep_a_from_b(3, 0, 0, 0));
    // The last loop, a sibling of the others: its entry knows nothing of them.
    let (compiled, _) = region(&inst, "deep", 3).expect("region compiles");
    assert_eq!(
        call(&mut inst, &compiled, 3, &[3, 7, 1, 2, 1]),
        Left(osr_exit_end(1), vec![3, 9, 1, 2, 1i64.rotate_left(7 + 8)])
    );
    // Any other loop index traps in the entry's dispatch: not called here; the index is
    // part of the contract the baseline keeps.
}

/// The reference run of `deep` from the header of loop `$b` to the end of loop `$a`: the
/// locals `[n, i, j, k, acc]` there.
fn deep_a_from_b(n: i64, mut i: i64, mut j: i64, acc: i64) -> Vec<i64> {
    let mut acc = acc;
    loop {
        // `$b` leaves to the end of `$a_body` either way.
        let Left(_, locals) = deep_b(n, i, j, acc) else {
            unreachable!("loop $b never returns");
        };
        let k = locals[3];
        (i, j, acc) = (locals[1], locals[2], locals[4] ^ 0x55);
        i += 1;
        if i as u64 >= n as u64 {
            return vec![n, i, j, k, acc];
        }
        j = 0;
    }
}

#[test]
fn an_outermost_region_is_entered_at_the_loops_inside_it() {
    let mut inst = instance(MODULE);
    let (compiled, served) = region_at(&inst, "deep", 0, &[0, 1]).expect("region compiles");
    assert_eq!(served, vec![0, 1]);
    for (i, j, k, acc) in [(0, 0, 0, 0), (2, 1, 3, 9), (5, 0, 0, 77), (4, 3, 1, -3)] {
        // Entered at `$b`, the rest of `$a` runs too, and it leaves past `$a`'s end (frame 1).
        let got = call(&mut inst, &compiled, 1, &[6, i, j, k, acc]);
        assert_eq!(
            got,
            Left(osr_exit_end(1), deep_a_from_b(6, i, j, acc)),
            "loop $b from i={i} j={j} k={k}"
        );
    }
    // Entered at `$a`'s own header, the same region runs `$a` from the top.
    let Left(code, locals) = call(&mut inst, &compiled, 0, &[3, 1, 9, 9, 5]) else {
        panic!("the outer loop returned");
    };
    assert_eq!(code, osr_exit_end(1));
    assert_eq!(locals, deep_a_from_b(3, 1, 0, 5));

    // A region inside another loop is entered at its own header only: the baseline routes
    // exits to an outermost loop's continuation alone.
    let (_, served) = region_at(&inst, "deep", 1, &[1, 2]).expect("region compiles");
    assert_eq!(served, vec![1]);
}

#[test]
fn a_region_returns_from_the_function_or_leaves_to_a_block() {
    let mut inst = instance(MODULE);
    let (compiled, _) = region(&inst, "find", 0).expect("region compiles");
    let first = (0i64..).find(|i| i * i % 97 == 50).unwrap();
    assert_eq!(call(&mut inst, &compiled, 0, &[1000, 0]), Returned(first));
    assert_eq!(call(&mut inst, &compiled, 0, &[1000, first + 1]), {
        let next = (first + 1..).find(|i| i * i % 97 == 50).unwrap();
        Returned(next)
    });
    // No hit below n: leaves to the end of `$none` (frame 1) with i = n.
    assert_eq!(
        call(&mut inst, &compiled, 0, &[first, 0]),
        Left(osr_exit_label(1), vec![first, first])
    );
}

#[test]
fn regions_whose_exits_carry_values_or_that_are_missing_are_declined() {
    let inst = instance(MODULE);
    for (name, loop_index, why) in [
        ("valued", 0, "a branch out of it passes values"),
        ("valued", 1, "the loop has parameters or results"),
        // Not a value-carrying exit: `deep` has loops 0 to 3 only.
        ("deep", 4, "the body has only 4 loops"),
    ] {
        let err = region(&inst, name, loop_index).unwrap_err();
        assert_eq!(
            err.kind,
            CompileErrorKind::Unsupported,
            "{name} {loop_index}: {err}"
        );
        let text = err.to_string();
        assert!(
            text.contains(&format!("region for loop {loop_index}: {why}")),
            "{name} {loop_index}: {err}"
        );
    }
}

/// Rounds of three phases (loops 1 to 3) inside loop 0, with locals written between the phases
/// and after them. The round loop ends after `$rounds` rounds through a branch to the block
/// around it (`$how` = 0) or past its end (`$how` = 1, which then adds 1000 to `$c`). In round
/// `$stop + 1`, the second phase leaves everything early through a branch to that block.
const PHASES: &str = r#"(module
  (func (export "run") (param $n i32) (param $rounds i32) (param $how i32) (param $stop i32)
    (result i32)
    (local $i i32) (local $a i32) (local $b i32) (local $c i32) (local $r i32)
    (block $done
      (loop $round
        (local.set $i (i32.const 0))
        (loop $p1
          (local.set $a (i32.add (i32.mul (local.get $a) (i32.const 31)) (local.get $i)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $p1 (i32.lt_u (local.get $i) (local.get $n))))
        (local.set $c (i32.add (local.get $c) (local.get $a)))
        (local.set $i (i32.const 0))
        (loop $p2
          (local.set $b (i32.xor (local.get $b) (i32.add (local.get $a) (local.get $i))))
          (br_if $done (i32.and (i32.eq (local.get $r) (local.get $stop))
                                (i32.eq (local.get $i) (i32.const 7))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $p2 (i32.lt_u (local.get $i) (local.get $n))))
        (local.set $i (i32.const 0))
        (loop $p3
          (local.set $a (i32.sub (local.get $a) (i32.and (local.get $b) (local.get $i))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $p3 (i32.lt_u (local.get $i) (local.get $n))))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (local.set $c (i32.xor (local.get $c) (i32.mul (local.get $r) (local.get $b))))
        (br_if $done (i32.and (i32.ge_u (local.get $r) (local.get $rounds))
                              (i32.eqz (local.get $how))))
        (br_if $round (i32.lt_u (local.get $r) (local.get $rounds))))
      (local.set $c (i32.add (local.get $c) (i32.const 1000))))
    (i32.add (i32.add (local.get $a) (i32.mul (local.get $c) (i32.const 3)))
             (i32.add (i32.mul (local.get $b) (i32.const 7)) (local.get $r))))
)"#;

/// `PHASES`'s `run(300, 6, how, stop)` in baseline code whose `LoopTierUp` returns `entry` (if
/// any) at the header of its loop; returns the result and how many times the entry was taken.
fn phases_in_baseline(entry: Option<(u32, &CompiledFunction)>, how: i32, stop: i32) -> (i32, u32) {
    let module = harness::compile(&wat(PHASES)).expect("baseline compiles");
    // A budget well below a phase's 300 iterations: every phase's header runs out now and then.
    let mut inst = Instance::with_budget(module, Vec::new(), 100);
    let code = entry.map(|(at, f)| (at, harness::Code::new(&f.code)));
    inst.state.osr_entry = code.as_ref().map(|(at, c)| (*at, c.ptr()));
    let args = [300, 6, how, stop].map(ValRaw::i32);
    let got = inst.call("run", &args)[0].get_i32();
    (got, inst.state.osr_taken)
}

#[test]
fn baseline_transfers_continue_where_a_region_entered_inside_its_loop_leaves() {
    // The region of the round loop, entered at the second phase's header by the baseline's
    // transfer there: it runs the remaining rounds, and its exits (the round loop's end, the
    // branch to the block around it, from the round loop or from inside a phase) leave the
    // round loop, so the phase's transfer hands them to the round loop's continuation, which
    // reloads the locals written anywhere in the round (`$c` and `$r` outside the phases).
    let inst = instance(PHASES);
    let (round, served) = region_at(&inst, "run", 0, &[0, 2]).expect("region compiles");
    assert_eq!(served, vec![0, 2]);
    // The second phase's region alone: it leaves at the phase's end, to the round loop's
    // continuation when the phase branches out of the round loop, and is taken again.
    let (phase, _) = region(&inst, "run", 2).expect("region compiles");
    for (how, stop) in [(0, 100), (1, 100), (0, 3), (1, 4)] {
        let (want, _) = phases_in_baseline(None, how, stop);
        let (got, taken) = phases_in_baseline(Some((2, &round)), how, stop);
        assert_eq!(got, want, "round loop's region, how {how}, stop {stop}");
        // Taken once: it holds the rest of the function's loops.
        assert_eq!(taken, 1, "how {how}, stop {stop}");
        let (got, taken) = phases_in_baseline(Some((2, &phase)), how, stop);
        assert_eq!(got, want, "phase's region, how {how}, stop {stop}");
        assert!(taken > 1, "how {how}, stop {stop}: taken {taken}");
    }
}
