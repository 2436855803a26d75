//! The tables `tiers` prints: per kernel and mode, the summary against the goals, the best of
//! N runs, the later calls, and the notes on tier-up figures and time off the CPU.

use super::*;

/// The 1.10x goal's column for a tiered run/native ratio (decided on the unrounded ratio).
pub(super) fn within_goal(ratio: f64) -> String {
    if ratio <= 1.03 {
        "yes (<= 1.03x)".into()
    } else if ratio <= 1.10 {
        "yes".into()
    } else {
        "no".into()
    }
}

/// Whether tiered's `total` is below both other modes' ("-" unless all three ran).
pub(super) fn tiered_lowest(
    b: Option<&Summary>,
    o: Option<&Summary>,
    t: Option<&Summary>,
    total: impl Fn(&Summary) -> f64,
) -> String {
    match (b, o, t) {
        (Some(b), Some(o), Some(t)) if total(t) < total(b) && total(t) < total(o) => "yes".into(),
        (Some(_), Some(_), Some(_)) => "no".into(),
        _ => "-".into(),
    }
}

fn f2(v: f64) -> String {
    format!("{v:.2}")
}
fn f0(v: Duration) -> String {
    format!("{:.0}", ms(v))
}
fn f1(v: Duration) -> String {
    format!("{:.1}", ms(v))
}

pub(super) fn report(opts: &Options, results: &[KernelResult]) {
    let md = opts.markdown;
    let mut detail = Table::new(
        &[
            "kernel",
            "mode",
            "compile ms",
            "Cranelift ms",
            "LLVM ms",
            "inst ms",
            "run ms",
            "total ms",
            "run/native",
            "total/native",
            "tier-ups",
            "OSR entries",
        ],
        2,
    );
    for r in results {
        detail.row(vec![
            r.kernel.name.into(),
            "native".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            f0(r.native),
            f0(r.native),
            "1.00".into(),
            "1.00".into(),
        ]);
        for (mode, s) in &r.modes {
            match s {
                Ok(s) => detail.row(vec![
                    r.kernel.name.into(),
                    mode.name().into(),
                    f1(s.compile),
                    f1(s.figures.baseline_compile),
                    f1(s.figures.optimized_compile),
                    format!("{:.2}", ms(s.instantiate)),
                    f0(s.run),
                    f0(s.total),
                    f2(s.run_ratio),
                    f2(s.total_ratio),
                    s.figures.tier_ups.to_string(),
                    s.figures.osr_entries.to_string(),
                ]),
                Err(_) => detail.row(vec![
                    r.kernel.name.into(),
                    mode.name().into(),
                    "unavailable".into(),
                ]),
            }
        }
    }

    // The goals: tiered run within 1.10x of native (stretch 1.03x), tiered total below
    // both baseline-only and optimized-only.
    let mut summary = Table::new(
        &[
            "kernel",
            "native ms",
            "baseline total",
            "optimized total",
            "tiered total",
            "baseline run/native",
            "optimized run/native",
            "tiered run/native",
            "tiered <= 1.10x",
            "tiered total lowest",
        ],
        1,
    );
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); 3];
    for r in results {
        let (b, o, t) = r.summaries();
        let total = |s: Option<&Summary>| s.map_or("-".to_string(), |s| f0(s.total));
        let rn = |s: Option<&Summary>| s.map_or("-".to_string(), |s| f2(s.run_ratio));
        for (i, s) in [b, o, t].into_iter().enumerate() {
            if let Some(s) = s {
                ratios[i].push(s.run_ratio);
            }
        }
        let within = t.map_or("-".to_string(), |t| within_goal(t.run_ratio));
        let lowest = tiered_lowest(b, o, t, |s| s.total_ratio);
        summary.row(vec![
            r.kernel.name.into(),
            f0(r.native),
            total(b),
            total(o),
            total(t),
            rn(b),
            rn(o),
            rn(t),
            within,
            lowest,
        ]);
    }
    let g = |i: usize| geomean(&ratios[i]).map_or("-".to_string(), f2);
    summary.row(vec![
        "geomean".into(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        g(0),
        g(1),
        g(2),
    ]);

    println!();
    println!(
        "Machine: {}; Spate {}",
        spate_benches::machine(),
        env!("CARGO_PKG_VERSION")
    );
    println!(
        "Module: {} ({} bytes); median of {} repetition(s), each wasm run paired with the mean of the native runs just before and after it (ratios: median of the paired ratios); total = compile + instantiate + run",
        if opts.separate {
            "one per kernel, benches/kernels/NAME.wasm".to_string()
        } else {
            "benches/kernels/kernels.wasm, all five kernels".to_string()
        },
        if opts.separate {
            results.iter().map(|r| r.kernel.module.len()).sum::<usize>()
        } else {
            COMBINED.len()
        },
        opts.reps
    );
    println!(
        "Memory: {}",
        if opts.cold_memory {
            "--cold-memory: the wasm memory's pages are faulted in during the timed call (the \
             native arrays are resident from the reference call)"
        } else {
            "the wasm memory's pages are faulted in before the timed call, untimed, as the \
             native arrays are by the reference call"
        }
    );
    println!("Native: {}", env!("SPATE_KERNELS_NATIVE_CC"));
    let floats: Vec<&str> = results
        .iter()
        .filter(|r| matches!(r.checksum, Checksum::Float(_)))
        .map(|r| {
            if r.identical {
                "bit-identical"
            } else {
                "within tolerance"
            }
        })
        .collect();
    println!(
        "Checksums: every wasm run matched native (integers exactly, floats within a relative \
         {FLOAT_REL_TOLERANCE:e}{})",
        if floats.is_empty() {
            String::new()
        } else if floats.iter().all(|f| *f == "bit-identical") {
            "; all float results were bit-identical".to_string()
        } else {
            "; some float results differed in the last bits".to_string()
        }
    );
    if let Some(t) = opts.threshold {
        println!("Tier-up threshold: {t}");
    }
    println!(
        "LLVM pipeline: {}; indirect-access prefetches: {}; baseline register allocator: {}",
        opts.pipeline.unwrap_or_default().name(),
        if opts.prefetch {
            "on"
        } else {
            "off (--no-prefetch)"
        },
        opts.regalloc.unwrap_or_default().name()
    );
    let thp =
        spate::vm::memory::transparent_huge_page_mode().unwrap_or_else(|| "unknown".to_string());
    println!(
        "Wasm memory: {}; native arrays: {} (the system's transparent huge pages: {thp})",
        if opts.huge_pages {
            "advised for transparent huge pages (MADV_HUGEPAGE)"
        } else {
            "4 KiB pages (--no-huge-pages)"
        },
        if thp == "always" {
            "may get huge pages too"
        } else {
            "4 KiB pages"
        }
    );
    let mut noted = Vec::new();
    for (mode, s) in results.iter().flat_map(|r| &r.modes) {
        if let Err(e) = s
            && !noted.contains(mode)
        {
            println!("{} mode unavailable: {e}", mode.name());
            noted.push(*mode);
        }
    }
    println!();
    if md {
        println!(
            "Per kernel and mode (compile = Module::new wall time; Cranelift / LLVM = compile time summed over that tier's functions, background tier-up included):"
        );
        println!();
    }
    print!("{}", detail.render(md));
    println!();
    print!("{}", summary.render(md));
    if md {
        println!();
    }
    println!(
        "Goals: tiered run within 1.10x of native on every kernel (stretch 1.03x), decided on the \
         unrounded ratio; tiered total below both baseline-only and optimized-only."
    );
    if opts.reps >= 3 {
        report_best(opts, results);
    }
    if opts.calls > 1 {
        report_later_calls(opts, results);
    }
    for r in results {
        let s = r.modes.iter().find_map(|(m, s)| match s {
            Ok(s) if *m == Mode::Tiered => Some(s),
            _ => None,
        });
        if let Some(s) = s {
            let f = &s.figures;
            if f.tier_up_requests > 0 || f.tier_ups > 0 {
                println!(
                    "{}{}: tiered: {} tier-up requests, {} tier-ups, {} OSR entries, LLVM {} \
                     functions, longest request-to-install {:.1} ms",
                    if md { "- " } else { "" },
                    r.kernel.name,
                    f.tier_up_requests,
                    f.tier_ups,
                    f.osr_entries,
                    f.optimized_functions,
                    ms(f.install_latency_max),
                );
            }
        }
        let (native, wasm, repeated) = &r.off_cpu;
        let share = |v: &[f64]| {
            if v.is_empty() {
                return "-".to_string();
            }
            let max = v.iter().copied().fold(0.0, f64::max);
            format!("median {:.1}%, max {:.1}%", median(v) * 100.0, max * 100.0)
        };
        let compile = match r.compile_off_cpu.is_empty() {
            true => String::new(),
            false => format!(
                ", tiered runs' compile thread {}",
                share(&r.compile_off_cpu)
            ),
        };
        println!(
            "{}{}: off the CPU (wall minus thread CPU time) in the kept runs: native {}, wasm \
             {}{compile}; {}",
            if md { "- " } else { "" },
            r.kernel.name,
            share(native),
            share(wasm),
            match opts.max_off_cpu {
                Some(max) => format!(
                    "{repeated} run(s) repeated for more than {:.1}% (--max-off-cpu)",
                    max * 100.0
                ),
                None => "no run repeated (no --max-off-cpu)".to_string(),
            }
        );
    }
}

/// The best-of-N table (`--reps` 3 or more): per mode, the fastest run over the fastest native
/// run, the range of the paired ratios, and the goals decided on the best runs and totals.
///
/// On a shared machine interference only ever slows a run down, so the fastest of N runs is the
/// estimate of a run's own cost least disturbed by it; each tiered run still contains its own
/// wait for the optimized code. The median table above stays the headline.
fn report_best(opts: &Options, results: &[KernelResult]) {
    let md = opts.markdown;
    let mut table = Table::new(
        &[
            "kernel",
            "native best ms",
            "baseline best/native best",
            "optimized best/native best",
            "tiered best/native best",
            "tiered paired ratios, range",
            "tiered <= 1.10x",
            "tiered best total lowest",
            "native vs its brackets, median (range)",
        ],
        1,
    );
    for r in results {
        let (b, o, t) = r.summaries();
        let best = |s: Option<&Summary>| s.map(|s| ratio(s.best_run, r.native_best));
        let show = |v: Option<f64>| v.map_or("-".to_string(), f2);
        let within = best(t).map_or("-".to_string(), within_goal);
        let lowest = tiered_lowest(b, o, t, |s| ms(s.best_total));
        table.row(vec![
            r.kernel.name.into(),
            f0(r.native_best),
            show(best(b)),
            show(best(o)),
            show(best(t)),
            t.map_or("-".to_string(), |t| {
                format!("{}-{}", f2(t.run_ratio_range.0), f2(t.run_ratio_range.1))
            }),
            within,
            lowest,
            r.noise.map_or("-".to_string(), |n| {
                format!("{} ({}-{})", f2(n.median), f2(n.min), f2(n.max))
            }),
        ]);
    }
    println!();
    println!(
        "Best of {} repetitions (the fastest wasm run over the fastest native run; the tiered \
         runs' paired ratios range as shown; the last column pairs each native run but the \
         first and last with the mean of the native runs on either side of it, as the wasm runs \
         are paired: the spread identical code shows here):",
        opts.reps
    );
    if md {
        println!();
    }
    print!("{}", table.render(md));
}

/// The table of calls 2.. (`--calls` above 1): per mode, the median over the repetitions of the
/// later calls' median time over the bracketing native runs' mean.
fn report_later_calls(opts: &Options, results: &[KernelResult]) {
    let md = opts.markdown;
    let ratios: Vec<String> = opts
        .modes
        .iter()
        .map(|m| format!("{}/native", m.name()))
        .collect();
    let mut header = vec!["kernel", "native ms per call"];
    header.extend(ratios.iter().map(String::as_str));
    let mut table = Table::new(&header, 1);
    for r in results {
        let mut row = vec![
            r.kernel.name.to_string(),
            r.native_later.map_or_else(|| "-".into(), f0),
        ];
        row.extend(r.modes.iter().map(|(_, s)| match s {
            Ok(Summary {
                later_ratio: Some(v),
                ..
            }) => f2(*v),
            _ => "-".into(),
        }));
        table.row(row);
    }
    println!();
    println!(
        "Calls 2..{} of each run, in the same instance (steady state: no compile wait; \
         ratio = median over the repetitions of the later calls' median / the mean of the \
         bracketing native runs'):",
        opts.calls
    );
    if md {
        println!();
    }
    print!("{}", table.render(md));
}
