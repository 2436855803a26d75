//! Builds the small C helper that performs non-local exits from wasm code.
fn main() {
    println!("cargo:rerun-if-changed=csrc/unwind.c");
    cc::Build::new()
        .file("csrc/unwind.c")
        .warnings(true)
        .compile("spate_unwind");
}
