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

const MODULE: &str = r#"(module
  ;; three nested loops, an early way out of the middle one, then a loop of its own
  (func (export "deep") (param $n i64) (result i64)
    (local $i i64) (local $j i64) (local $k i64) (local $acc i64)
    (loop $a
      (local.set $j (i64.const 0))
      (block $a_body
        (loop $b
          (local.set $k (i64.const 0))
          (loop $c
            (local.set $acc (i64.add (i64.mul (local.get $acc) (i64.const 3))
                                     (i64.add (local.get $i) (i64.mul (local.get $j) (local.get $k)))))
            (local.set $k (i64.add (local.get $k) (i64.const 1)))
            (br_if $c (i64.lt_u (local.get $k) (i64.const 5))))
          (br_if $a_body (i64.eq (i64.add (local.get $i) (local.get $j)) (i64.const 7)))
          (local.set $j (i64.add (local.get $j) (i64.const 1)))
          (br_if $b (i64.lt_u (local.get $j) (i64.const 4)))))
      (local.set $acc (i64.xor (local.get $acc) (i64.const 0x55)))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br_if $a (i64.lt_u (local.get $i) (local.get $n))))
    (local.set $acc (i64.add (local.get $acc) (i64.const 1000)))
    (local.set $i (i64.const 0))
    (loop $d
      (local.set $acc (i64.rotl (local.get $acc) (local.get $i)))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br_if $d (i64.lt_u (local.get $i) (i64.const 9))))
    (local.get $acc))
  ;; a search that returns from inside its loop, or leaves to the block around it
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
)"#;

/// Compiles the region entry of loop `region` of exported function `name`.
fn region(
    inst: &Instance,
    name: &str,
    region: u32,
) -> Result<(CompiledFunction, Vec<u32>), CompileError> {
    let index = inst.module.exports[name];
    let info = inst.module.info.clone();
    let mut n = info.num_imported_functions;
    for payload in Parser::new(0).parse_all(&inst.module.bytes) {
        if let Payload::CodeSectionEntry(body) = payload.unwrap() {
            if n == index {
                return compiler().compile_osr_region(&info, index, &body, region, true);
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

/// Calls the region entry `compiled` (of a function returning one `i64`) at loop `region` with
/// `locals` (all `i64`).
fn call(inst: &mut Instance, compiled: &CompiledFunction, region: u32, locals: &[i64]) -> Outcome {
    let code = harness::Code::new(&compiled.code);
    type Osr = unsafe extern "C" fn(*mut u8, *mut u8, *mut ValRaw, u32) -> i64;
    // SAFETY: the entry was compiled for the OSR signature of a function returning one i64.
    let f: Osr = unsafe { std::mem::transmute(code.ptr()) };
    let vmctx: *mut u8 = (&mut *inst.vmctx as *mut spate_tiers::vmctx::VMContext).cast();
    let mut buf: Vec<ValRaw> = locals.iter().map(|&v| ValRaw::i64(v)).collect();
    buf.push(ValRaw::i32(OSR_RETURNED as i32));
    // SAFETY: the instance's context is live; `buf` has a slot for every local and the status.
    let result = unsafe { f(vmctx, vmctx, buf.as_mut_ptr(), region) };
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
    assert_eq!(&locals[..2], &[3, 3]);
    // The last loop, a sibling of the others: its entry knows nothing of them.
    let (compiled, _) = region(&inst, "deep", 3).expect("region compiles");
    assert_eq!(
        call(&mut inst, &compiled, 3, &[3, 7, 1, 2, 1]),
        Left(osr_exit_end(1), vec![3, 9, 1, 2, 1i64.rotate_left(7 + 8)])
    );
    // Any other loop index traps in the entry's dispatch: not called here; the index is
    // part of the contract the baseline keeps.
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
fn regions_whose_exits_carry_values_are_declined() {
    let inst = instance(MODULE);
    for (name, loop_index) in [("valued", 0), ("valued", 1), ("deep", 4)] {
        let err = region(&inst, name, loop_index).unwrap_err();
        assert_eq!(
            err.kind,
            CompileErrorKind::Unsupported,
            "{name} {loop_index}: {err}"
        );
        assert!(
            err.to_string().contains("region for loop"),
            "{name} {loop_index}: {err}"
        );
    }
}
