//! Engine settings shared by the subcommands.

use std::fmt;
use std::num::NonZeroUsize;

use anyhow::Result;
use spate::{Config, Engine, TierMode};

/// A compiler tier as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TierChoice {
    /// Cranelift with fast-compile settings: every function is compiled once, quickly.
    Baseline,
    /// Every function through LLVM before anything runs: slow to compile, fast from the start.
    Optimized,
    /// Baseline first; hot functions recompiled by LLVM in the background and swapped in, hot
    /// loops reaching the optimized code through on-stack replacement.
    #[default]
    Tiered,
}

impl TierChoice {
    /// The engine's tier mode.
    pub fn mode(self) -> TierMode {
        match self {
            TierChoice::Baseline => TierMode::Baseline,
            TierChoice::Optimized => TierMode::Optimized,
            TierChoice::Tiered => TierMode::Tiered,
        }
    }
}

/// When function bodies are compiled, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompileChoice {
    /// Wait for every function before running anything.
    Eager,
    /// Compile in the background while the module arrives; run as soon as the last byte is
    /// validated, compiling at first call whatever the background has not reached.
    Background,
    /// Compile each function at its first call only.
    OnFirstCall,
}

impl CompileChoice {
    /// The engine's compile strategy.
    pub fn strategy(self) -> spate::CompileStrategy {
        match self {
            CompileChoice::Eager => spate::CompileStrategy::Eager,
            CompileChoice::Background => spate::CompileStrategy::Background,
            CompileChoice::OnFirstCall => spate::CompileStrategy::OnFirstCall,
        }
    }
}

/// The optimizing tier's LLVM pipeline, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PipelineChoice {
    /// The passes that pay off on an already optimized module (the default).
    Lean,
    /// LLVM's `default<O2>`.
    O2,
    /// LLVM's `default<O3>`.
    O3,
}

impl PipelineChoice {
    /// The engine's pipeline.
    pub fn pipeline(self) -> spate::LlvmPipeline {
        match self {
            PipelineChoice::Lean => spate::LlvmPipeline::Lean,
            PipelineChoice::O2 => spate::LlvmPipeline::O2,
            PipelineChoice::O3 => spate::LlvmPipeline::O3,
        }
    }
}

/// The baseline tier's register allocator, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RegallocChoice {
    /// The single-pass allocator everywhere: the fastest compile.
    SinglePass,
    /// The backtracking allocator for small functions with a loop nest (the default).
    LoopNests,
    /// The backtracking allocator everywhere: the fastest baseline code.
    Backtracking,
}

impl RegallocChoice {
    /// The engine's allocator choice.
    pub fn regalloc(self) -> spate::BaselineRegalloc {
        match self {
            RegallocChoice::SinglePass => spate::BaselineRegalloc::SinglePass,
            RegallocChoice::LoopNests => spate::BaselineRegalloc::default(),
            RegallocChoice::Backtracking => spate::BaselineRegalloc::Backtracking,
        }
    }
}

impl fmt::Display for TierChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TierChoice::Baseline => "baseline",
            TierChoice::Optimized => "optimized",
            TierChoice::Tiered => "tiered",
        })
    }
}

/// Settings that shape the [`Engine`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineSettings {
    /// Which tier compiles the code.
    pub tier: TierChoice,
    /// How many threads compile function bodies; `None` leaves the choice to the engine.
    pub compile_threads: Option<NonZeroUsize>,
    /// Accept modules with several memories (the multi-memory proposal).
    pub multi_memory: bool,
    /// Calls plus loop iterations before a function tiers up; `None` keeps the engine's default.
    pub tier_up_threshold: Option<u32>,
    /// Background tier-up compile threads; `None` keeps the engine's default.
    pub tier_up_threads: Option<NonZeroUsize>,
    /// When functions are compiled (`None`: the engine's default, compile in the background
    /// and at first call, so a module is ready when its last byte is validated).
    pub compile_strategy: Option<spate::CompileStrategy>,
    /// The optimizing tier's LLVM pipeline; `None` keeps the engine's default (lean).
    pub llvm_pipeline: Option<spate::LlvmPipeline>,
    /// The baseline tier's register allocator; `None` keeps the engine's default (loop nests).
    pub baseline_regalloc: Option<spate::BaselineRegalloc>,
    /// Leave out the optimizing tier's indirect-access prefetches (on by default).
    pub no_llvm_prefetch: bool,
    /// Do not advise linear memories for transparent huge pages (advised by default).
    pub no_huge_pages: bool,
    /// Every loop header whose budget runs out waits for its loop's OSR entry and takes it (a
    /// testing aid, see [`Config::osr_at_every_loop`]).
    pub osr_at_every_loop: bool,
}

impl EngineSettings {
    /// Builds the engine these settings describe.
    pub fn build(&self) -> Result<Engine> {
        let mut config = Config::new();
        config.tier(self.tier.mode());
        if let Some(n) = self.compile_threads {
            config.compile_threads(n.get());
        }
        if let Some(n) = self.tier_up_threshold {
            config.tier_up_threshold(n);
        }
        if let Some(n) = self.tier_up_threads {
            config.tier_up_threads(n.get());
        }
        if let Some(s) = self.compile_strategy {
            config.compile_strategy(s);
        }
        if let Some(p) = self.llvm_pipeline {
            config.llvm_pipeline(p);
        }
        if let Some(r) = self.baseline_regalloc {
            config.baseline_regalloc(r);
        }
        config.llvm_prefetch(!self.no_llvm_prefetch);
        config.memory_huge_pages(!self.no_huge_pages);
        config.osr_at_every_loop(self.osr_at_every_loop);
        config.wasm_multi_memory(self.multi_memory);
        Engine::new(&config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tier_builds_an_engine() {
        for tier in [
            TierChoice::Baseline,
            TierChoice::Optimized,
            TierChoice::Tiered,
        ] {
            let settings = EngineSettings {
                tier,
                tier_up_threshold: Some(0),
                ..EngineSettings::default()
            };
            let engine = settings.build().unwrap();
            assert_eq!(engine.config().tier_mode(), tier.mode());
        }
        assert_eq!(TierChoice::default(), TierChoice::Tiered);
    }

    #[test]
    fn the_baseline_allocator_is_the_engines_unless_chosen() {
        let default = EngineSettings::default().build().unwrap();
        assert_eq!(
            default.config().baseline_regalloc_algorithm(),
            spate::BaselineRegalloc::default()
        );
        for (choice, expected) in [
            (
                RegallocChoice::SinglePass,
                spate::BaselineRegalloc::SinglePass,
            ),
            (
                RegallocChoice::LoopNests,
                spate::BaselineRegalloc::default(),
            ),
            (
                RegallocChoice::Backtracking,
                spate::BaselineRegalloc::Backtracking,
            ),
        ] {
            let engine = EngineSettings {
                tier: TierChoice::Baseline,
                baseline_regalloc: Some(choice.regalloc()),
                ..EngineSettings::default()
            }
            .build()
            .unwrap();
            assert_eq!(engine.config().baseline_regalloc_algorithm(), expected);
        }
    }

    #[test]
    fn llvm_prefetches_are_on_unless_turned_off() {
        let on = EngineSettings::default().build().unwrap();
        assert!(on.config().llvm_prefetch_enabled());
        let off = EngineSettings {
            no_llvm_prefetch: true,
            ..EngineSettings::default()
        }
        .build()
        .unwrap();
        assert!(!off.config().llvm_prefetch_enabled());
    }

    #[test]
    fn huge_pages_are_advised_unless_turned_off() {
        let on = EngineSettings::default().build().unwrap();
        assert!(on.config().memory_huge_pages_enabled());
        let off = EngineSettings {
            no_huge_pages: true,
            ..EngineSettings::default()
        }
        .build()
        .unwrap();
        assert!(!off.config().memory_huge_pages_enabled());
    }
}
