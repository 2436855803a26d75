//! The `spate` command's library: everything the `spate` binary does, usable from tests.
//!
//! * [`wast`]: the WebAssembly script (`.wast`) runner behind `spate wast` and the spec suite;
//! * [`compile`]: validation and compilation of one module, behind `spate compile`;
//! * [`engine`]: the command-line engine settings (tier, compile threads) and the [`spate::Engine`]
//!   they make;
//! * [`run`]: running a WASI program, behind `spate run`;
//! * [`fetch`]: downloading a module over HTTP(S) and compiling it as it arrives, behind
//!   `spate run URL`.

pub mod compile;
pub mod engine;
pub mod fetch;
pub mod run;
pub mod wast;
