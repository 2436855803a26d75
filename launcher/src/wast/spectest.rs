//! The `spectest` host module that the specification's scripts import.

use spate::{
    Global, GlobalType, Linker, Memory, MemoryType, Mutability, Result, Store, Table, TableType,
    Val, ValType,
};

/// The module name the scripts import from.
pub const MODULE: &str = "spectest";

/// Defines `spectest` in `linker`: the `print*` functions (which print their arguments when
/// `echo` is set and do nothing otherwise), the globals `global_i32`/`global_i64` (666) and
/// `global_f32`/`global_f64` (666.6), `table` (10..20 funcref) and `memory` (1..2 pages).
pub fn define<T: 'static>(linker: &mut Linker<T>, store: &mut Store<T>, echo: bool) -> Result<()> {
    linker.func_wrap(MODULE, "print", move || {
        if echo {
            println!("spectest.print");
        }
    })?;
    linker.func_wrap(MODULE, "print_i32", move |v: i32| {
        if echo {
            println!("spectest.print_i32: {v}");
        }
    })?;
    linker.func_wrap(MODULE, "print_i64", move |v: i64| {
        if echo {
            println!("spectest.print_i64: {v}");
        }
    })?;
    linker.func_wrap(MODULE, "print_f32", move |v: f32| {
        if echo {
            println!("spectest.print_f32: {v}");
        }
    })?;
    linker.func_wrap(MODULE, "print_f64", move |v: f64| {
        if echo {
            println!("spectest.print_f64: {v}");
        }
    })?;
    linker.func_wrap(MODULE, "print_i32_f32", move |a: i32, b: f32| {
        if echo {
            println!("spectest.print_i32_f32: {a} {b}");
        }
    })?;
    linker.func_wrap(MODULE, "print_f64_f64", move |a: f64, b: f64| {
        if echo {
            println!("spectest.print_f64_f64: {a} {b}");
        }
    })?;

    let globals = [
        ("global_i32", ValType::I32, Val::I32(666)),
        ("global_i64", ValType::I64, Val::I64(666)),
        ("global_f32", ValType::F32, Val::F32(666.6f32.to_bits())),
        ("global_f64", ValType::F64, Val::F64(666.6f64.to_bits())),
    ];
    for (name, ty, value) in globals {
        let global = Global::new(&mut *store, GlobalType::new(ty, Mutability::Const), value)?;
        linker.define(&mut *store, MODULE, name, global)?;
    }

    let table = Table::new(
        &mut *store,
        TableType::new(ValType::FuncRef, 10, Some(20)),
        Val::FuncRef(None),
    )?;
    linker.define(&mut *store, MODULE, "table", table)?;

    let memory = Memory::new(&mut *store, MemoryType::new(1, Some(2)))?;
    linker.define(&mut *store, MODULE, "memory", memory)?;
    Ok(())
}
