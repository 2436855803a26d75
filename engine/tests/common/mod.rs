//! Helpers shared by the engine's integration tests.

use spate::{Engine, Instance, Linker, Module, Store};

/// The binary of a module in WebAssembly text.
pub fn wat(src: &str) -> Vec<u8> {
    let buf = wast::parser::ParseBuffer::new(src).expect("lexing test module");
    let mut module = wast::parser::parse::<wast::Wat>(&buf).expect("parsing test module");
    module.encode().expect("encoding test module")
}

/// Compiles `src` and instantiates it in a fresh store, with no imports.
pub fn load(engine: &Engine, src: &str) -> (Module, Store<()>, Instance) {
    let module = Module::new(engine, wat(src)).expect("module compiles");
    let mut store = Store::new(engine, ());
    let instance = Linker::new(engine)
        .instantiate(&mut store, &module)
        .expect("instantiates");
    (module, store, instance)
}
