//! Tier-up policy. The baseline tier counts calls and loop iterations per function against a
//! budget and calls the `TierUp` libcall when it runs out; with only the baseline tier the
//! request is counted (see [`EngineStats`](crate::EngineStats)) and the budget reset. The
//! optimizing tier, its background queue and hot swap come with the LLVM tier.
