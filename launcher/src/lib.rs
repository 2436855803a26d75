//! The `spate` command's library: everything the `spate` binary does, usable from tests.
//!
//! * [`wast`]: the WebAssembly script (`.wast`) runner behind `spate wast` and the spec suite;
//! * [`compile`]: validation and compilation of one module, behind `spate compile`;
//! * [`engine`]: the command-line engine settings (tier, compile threads) and the [`spate::Engine`]
//!   they make.

pub mod compile;
pub mod engine;
pub mod wast;
