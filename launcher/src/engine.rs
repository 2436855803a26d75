//! Engine settings shared by the subcommands.

use std::fmt;
use std::num::NonZeroUsize;

use anyhow::{Result, bail};
use spate::{Config, Engine, TierMode};

/// A compiler tier as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TierChoice {
    /// Cranelift with fast-compile settings: every function is compiled once, quickly.
    #[default]
    Baseline,
    /// Every function through LLVM before anything runs (not available yet).
    Optimized,
    /// Baseline first, hot functions recompiled by LLVM in the background (not available yet).
    Tiered,
}

impl TierChoice {
    /// The engine's tier mode, or an error for a tier this build of the engine lacks.
    pub fn mode(self) -> Result<TierMode> {
        match self {
            TierChoice::Baseline => Ok(TierMode::Baseline),
            TierChoice::Optimized | TierChoice::Tiered => bail!(
                "the `{self}` tier is not available yet in this version of spate; use `--tier baseline`"
            ),
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
}

impl EngineSettings {
    /// Builds the engine these settings describe.
    pub fn build(&self) -> Result<Engine> {
        let mut config = Config::new();
        config.tier(self.tier.mode()?);
        if let Some(n) = self.compile_threads {
            config.compile_threads(n.get());
        }
        config.wasm_multi_memory(self.multi_memory);
        Engine::new(&config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_available_tiers_are_accepted() {
        assert!(TierChoice::Baseline.mode().is_ok());
        let err = TierChoice::Optimized.mode().unwrap_err().to_string();
        assert!(err.contains("`optimized` tier is not available"), "{err}");
        let err = TierChoice::Tiered.mode().unwrap_err().to_string();
        assert!(err.contains("--tier baseline"), "{err}");
    }
}
