//! Prefetching of indirect memory accesses, a pass the tier runs between the optimization
//! pipeline and code generation.
//!
//! Hardware prefetchers follow strided streams, not accesses whose address comes from data:
//! `out[count[keys[i]]]` in a counting sort, `x[col[j]]` in a sparse matrix product. For each
//! such load or store in an innermost loop, where the address depends (through integer
//! arithmetic and at most three loads) on a load that walks linear memory with a
//! constant stride, the pass recomputes the address some iterations ahead and prefetches it,
//! the indirect prefetching of Ainsworth and Jones ("Software prefetching for indirect memory
//! accesses", CGO 2017) adapted to WebAssembly's sandbox:
//!
//! * the look-ahead copies of the loads are clamped into the memory's length, read once in the
//!   loop's preheader (memories only grow, so a length read earlier never exceeds the current
//!   one; without a preheader it is read just before the access), so they can neither fault nor
//!   read outside the linear memory, whatever the data;
//! * the prefetch address is clamped the same way (prefetches never fault, but the clamp keeps
//!   even a hint inside the sandbox);
//! * the loop's own instructions are untouched, so its results, traps included, are those of
//!   the code without the pass.
//!
//! The distance is 128 bytes of the strided stream (two cache lines) in iterations, between 4
//! and 64. What it is worth depends on where the indirect targets live. On the Intel Xeon VM the
//! project used until session 15, where the benchmark's counting sort waited on memory, it took
//! the sort from about 0.9x to about 0.5x native, and the same prefetch written by hand into the
//! native C made its scatter loop about 2.7-3x as fast (docs/BENCHMARKS.md, "Session 10"). On the
//! AMD EPYC VM of session 16, whose 32 MiB L3 holds the sort's arrays, the hand-written prefetch
//! gains nothing natively and the pass is worth 0-15% ("Session 16"). A loop whose indirect
//! targets already sit in cache pays a few instructions per access for nothing, which is why the
//! clamp limits are computed once before the loop (with them read at every access, the pass
//! cost the sort 20-50% on that machine).
//!
//! The pass is C++ (`cpp/prefetch.cpp`, built by `build.rs`): it needs LLVM's scalar evolution,
//! which the C API does not expose. It finds a memory by the metadata kind [`MEMORY_BASE_KIND`]
//! that the translator puts on the load of each memory's base address.

use inkwell::module::Module;
use spate_tiers::vmctx::{VMMEMORY_BASE, VMMEMORY_LENGTH};

/// The metadata kind that marks the load of a linear memory's base address from its
/// `VMMemory` record (the pass reads the length next to it).
pub(crate) const MEMORY_BASE_KIND: &str = "spate.memory.base";

unsafe extern "C" {
    /// Adds the prefetches to every function defined in `module`; returns how many it added.
    /// `kind` names the metadata kind of memory-base loads (NUL-terminated); `length_delta` is
    /// the distance in bytes from a `VMMemory`'s base field to its length field.
    fn spate_llvm_prefetch_indirect(
        module: inkwell::llvm_sys::prelude::LLVMModuleRef,
        kind: *const std::ffi::c_char,
        length_delta: u64,
    ) -> u32;
}

/// Runs the pass over `module`; returns the number of prefetches added.
///
/// The pass trusts the translator's marking: every load carrying [`MEMORY_BASE_KIND`] reads the
/// `base` field of a live `VMMemory` record, whose `length` field it then reads too.
pub(crate) fn insert(module: &Module<'_>) -> u32 {
    let delta = (VMMEMORY_LENGTH - VMMEMORY_BASE) as u64;
    let kind = std::ffi::CString::new(MEMORY_BASE_KIND).expect("no NUL in the kind");
    // SAFETY: `module` is a live module owned by this thread (its context lives here), with
    // the target's data layout already set (`finish` sets it before the pipeline); nothing
    // else touches it during the call. The pass reads and adds IR only within it (declaring
    // `llvm.prefetch` in it). `build.rs` compiles the C++ against LLVM 19's headers, the
    // version whose library inkwell links. `kind` outlives the call.
    unsafe { spate_llvm_prefetch_indirect(module.as_mut_ptr(), kind.as_ptr(), delta) }
}

#[cfg(test)]
mod tests {
    use inkwell::context::Context;
    use inkwell::memory_buffer::MemoryBuffer;

    /// A loop over `n` keys of type `key` (`size` bytes each, from address 0 of memory 0),
    /// doing `out[count[k]++] = k` with `count` at 64 KiB and `out` at 128 KiB. `chain` is
    /// spliced in after the key load: it computes `%k` from the key `%k0`.
    fn scatter_ir(key: &str, size: u32, chain: &str) -> String {
        let widen = if key == "i32" {
            "add i32 %kw, 0".to_string()
        } else {
            format!("zext {key} %kw to i32")
        };
        format!(
            r#"target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"
declare i32 @llvm.fshl.i32(i32, i32, i32)
define void @f(ptr %def, i32 %n) {{
entry:
  %base = load ptr, ptr %def, align 8, !spate.memory.base !0
  br label %loop
loop:
  %i = phi i32 [ 0, %entry ], [ %i.next, %loop ]
  %ka = mul i32 %i, {size}
  %ka.z = zext i32 %ka to i64
  %kp = getelementptr i8, ptr %base, i64 %ka.z
  %kw = load {key}, ptr %kp, align 1
  %k0 = {widen}
{chain}
  %ca = shl i32 %k, 2
  %ca2 = add i32 %ca, 65536
  %ca.z = zext i32 %ca2 to i64
  %cp = getelementptr i8, ptr %base, i64 %ca.z
  %c = load i32, ptr %cp, align 1
  %c1 = add i32 %c, 1
  store i32 %c1, ptr %cp, align 1
  %oa = shl i32 %c, 2
  %oa2 = add i32 %oa, 131072
  %oa.z = zext i32 %oa2 to i64
  %op = getelementptr i8, ptr %base, i64 %oa.z
  store i32 %k, ptr %op, align 1
  %i.next = add i32 %i, 1
  %done = icmp eq i32 %i.next, %n
  br i1 %done, label %exit, label %loop
exit:
  ret void
}}
!0 = !{{}}
"#
        )
    }

    /// Runs the pass over `ir`; returns the prefetches added and the IR after the pass.
    fn run(ir: &str) -> (u32, String) {
        let context = Context::create();
        let buffer = MemoryBuffer::create_from_memory_range_copy(ir.as_bytes(), "test");
        let module = context
            .create_module_from_ir(buffer)
            .expect("test IR parses");
        let added = super::insert(&module);
        module
            .verify()
            .unwrap_or_else(|e| panic!("{}\n{}", e.to_string(), module.print_to_string()));
        (added, module.print_to_string().to_string())
    }

    fn prefetch_calls(ir: &str) -> Vec<&str> {
        ir.lines()
            .filter(|l| l.contains("call void @llvm.prefetch"))
            .collect()
    }

    #[test]
    fn a_scatter_loop_gets_one_write_prefetch_at_the_distance_of_its_stride() {
        // 4-byte keys: 128 / 4 = 32 iterations ahead. The count access needs no prefetch of
        // its own (the look-ahead loads count[k'] to find out[..]); the out store gets one with
        // the write hint.
        let (added, ir) = run(&scatter_ir("i32", 4, "  %k = add i32 %k0, 0"));
        assert_eq!(added, 1, "{ir}");
        let calls = prefetch_calls(&ir);
        assert_eq!(calls.len(), 1, "{ir}");
        assert!(calls[0].ends_with("i32 1, i32 3, i32 1)"), "{}", calls[0]);
        assert!(ir.contains("add i32 %i, 32"), "{ir}");
        // The look-ahead loads are clamped into the memory's length, read at offset 8.
        assert!(ir.contains("getelementptr i8, ptr %def, i64 8"), "{ir}");
        assert!(ir.contains("@llvm.umin.i64"), "{ir}");
    }

    /// The printed text of block `label` of the single function in `ir` (up to the next label
    /// or the end of the function).
    fn block<'a>(ir: &'a str, label: &str) -> &'a str {
        let start = ir
            .find(&format!("\n{label}:"))
            .unwrap_or_else(|| panic!("no block {label}:\n{ir}"));
        let rest = &ir[start + 1..];
        let body = &rest[rest.find('\n').map_or(rest.len(), |i| i + 1)..];
        // The block ends at the first line that is not an indented instruction: the next
        // label, or the function's closing brace.
        let mut end = 0;
        for line in body.split_inclusive('\n') {
            if !line.trim().is_empty() && !line.starts_with(' ') {
                break;
            }
            end += line.len();
        }
        &body[..end]
    }

    /// Lines of `text` that load the memory's length (the `VMMemory` field at offset 8).
    fn length_loads(text: &str) -> usize {
        text.lines().filter(|l| l.contains("load i64, ptr")).count()
    }

    #[test]
    fn the_clamp_limits_are_computed_once_in_the_preheader() {
        // The loop stores to linear memory, which LLVM cannot tell from a store to the
        // `VMMemory` record, so a length read in the loop would be read again every iteration.
        let (added, ir) = run(&scatter_ir("i32", 4, "  %k = add i32 %k0, 0"));
        assert_eq!(added, 1, "{ir}");
        let entry = block(&ir, "entry");
        let body = block(&ir, "loop");
        assert_eq!(length_loads(entry), 1, "{ir}");
        assert!(entry.contains("@llvm.usub.sat.i64"), "{ir}");
        assert_eq!(length_loads(body), 0, "{ir}");
        assert!(!body.contains("@llvm.usub.sat"), "{ir}");
        assert!(body.contains("@llvm.umin.i64"), "{ir}");

        // Without a preheader (the entry block branches to the loop or past it), the limits go
        // at the end of the header's immediate dominator, here the entry block too.
        let ir = scatter_ir("i32", 4, "  %k = add i32 %k0, 0").replace(
            "  br label %loop\nloop:",
            "  %empty = icmp eq i32 %n, 0\n  br i1 %empty, label %exit, label %loop\nloop:",
        );
        let (added, ir) = run(&ir);
        assert_eq!(added, 1, "{ir}");
        assert_eq!(length_loads(block(&ir, "entry")), 1, "{ir}");
        assert_eq!(length_loads(block(&ir, "loop")), 0, "{ir}");

        // A memory base loaded inside the loop would not be available before it; the pass
        // declines such accesses altogether (the slice reaches a load of a pointer), so nothing
        // is added anywhere.
        let ir = scatter_ir("i32", 4, "  %k = add i32 %k0, 0")
            .replace(
                "  %base = load ptr, ptr %def, align 8, !spate.memory.base !0\n",
                "",
            )
            .replace(
                "  %i = phi i32 [ 0, %entry ], [ %i.next, %loop ]\n",
                "  %i = phi i32 [ 0, %entry ], [ %i.next, %loop ]\n  %base = load ptr, ptr %def, align 8, !spate.memory.base !0\n",
            );
        let (added, ir) = run(&ir);
        assert_eq!(added, 0, "{ir}");
        assert_eq!(length_loads(&ir), 0, "{ir}");
    }

    #[test]
    fn the_distance_is_bounded_for_narrow_strides() {
        // 1-byte keys: 128 iterations would be the stride rule; the bound is 64.
        let (added, ir) = run(&scatter_ir("i8", 1, "  %k = add i32 %k0, 0"));
        assert_eq!(added, 1, "{ir}");
        assert!(ir.contains("add i32 %i, 64"), "{ir}");
    }

    /// A chain making `%k` the key plus `n` more words read with the keys' stride (from 4 KiB
    /// apart): `n` more loads on the way from the keys to `count` and `out`.
    fn strided_terms(n: u32) -> String {
        let mut chain = String::new();
        let mut sum = "%k0".to_string();
        for t in 1..=n {
            let next = if t == n {
                "%k".to_string()
            } else {
                format!("%s{t}")
            };
            chain += &format!(
                "  %tp{t} = getelementptr i8, ptr %kp, i64 {off}
  %t{t} = load i32, ptr %tp{t}, align 1
  {next} = add i32 {sum}, %t{t}
",
                off = 4096 * t
            );
            sum = next;
        }
        chain
    }

    #[test]
    fn chains_the_pass_does_not_follow_get_no_prefetch() {
        // Three more strided loads feeding the key: four loads on the way to `count`'s address
        // and five to `out`'s, over the limit of three.
        let (added, ir) = run(&scatter_ir("i32", 4, &strided_terms(3)));
        assert_eq!(added, 0, "{ir}");
        // Two of them (three loads to `count`): `count` is prefetched, `out` (four) is not.
        let (added, ir) = run(&scatter_ir("i32", 4, &strided_terms(2)));
        assert_eq!(added, 1, "{ir}");
        assert!(
            prefetch_calls(&ir)[0].ends_with("i32 1, i32 3, i32 1)"),
            "{ir}"
        );
        // A remainder on the way (it could divide by zero on a look-ahead value).
        let (added, ir) = run(&scatter_ir("i32", 4, "  %k = urem i32 %k0, %n"));
        assert_eq!(added, 0, "{ir}");
        // A call on the way.
        let (added, ir) = run(&scatter_ir(
            "i32",
            4,
            "  %k = call i32 @llvm.fshl.i32(i32 %k0, i32 %k0, i32 3)",
        ));
        assert_eq!(added, 0, "{ir}");
    }

    #[test]
    fn accesses_to_memory_the_translator_did_not_mark_get_no_prefetch() {
        let ir =
            scatter_ir("i32", 4, "  %k = add i32 %k0, 0").replace(", !spate.memory.base !0", "");
        let (added, ir) = run(&ir);
        assert_eq!(added, 0, "{ir}");
    }
}
