//! Turning the relocatable object LLVM emits for one function into the self-contained,
//! position-independent blob the runtime copies into executable memory.
//!
//! Layout: the text section holding the function symbol first (so the function starts at
//! offset 0), then any other text sections, then the read-only data sections (`.rodata`,
//! `.rodata.cst*`, ...) that hold constant pools and jump tables, each at its alignment. The
//! relocations of those sections are applied here: PC-relative ones between parts of the blob
//! resolve to fixed offsets. Anything else (an undefined symbol, an absolute relocation, a
//! reference to writable data) would tie the code to an address or to code outside the blob,
//! and is a [`CompileErrorKind::Codegen`](spate_tiers::CompileErrorKind::Codegen) error.

use std::collections::HashMap;

use object::elf;
use object::read::{Object, ObjectSection, ObjectSymbol, RelocationTarget};
use object::{RelocationFlags, SectionIndex, SectionKind};
use spate_tiers::CompileError;

/// Largest section alignment the blob can honour: the runtime places code at 64-byte aligned
/// addresses (enough for the 32- and 64-byte constant pools of AVX2/AVX-512 code).
const MAX_ALIGN: u64 = 64;

/// Lays out the object file `obj` as one blob that starts with the function `symbol`.
pub(crate) fn link(obj: &[u8], symbol: &str) -> Result<Vec<u8>, CompileError> {
    let file = object::File::parse(obj)
        .map_err(|e| CompileError::codegen(format!("cannot read LLVM's object file: {e}")))?;
    let func = file
        .symbols()
        .find(|s| s.name() == Ok(symbol))
        .ok_or_else(|| CompileError::codegen(format!("object file has no symbol `{symbol}`")))?;
    let func_section = func
        .section_index()
        .ok_or_else(|| CompileError::codegen(format!("symbol `{symbol}` is not defined")))?;
    if func.address() != 0 {
        return Err(CompileError::codegen(format!(
            "symbol `{symbol}` is at offset {} of its section, not 0",
            func.address()
        )));
    }

    // Choose and order the sections.
    let mut text = Vec::new();
    let mut rodata = Vec::new();
    for section in file.sections() {
        let name = section.name().unwrap_or("?");
        let writable = matches!(
            section.kind(),
            SectionKind::Data
                | SectionKind::UninitializedData
                | SectionKind::Tls
                | SectionKind::UninitializedTls
                | SectionKind::TlsVariables
                | SectionKind::Common
        );
        match section.kind() {
            SectionKind::Text => {
                if section.index() == func_section {
                    text.insert(0, section);
                } else if section.size() > 0 {
                    text.push(section);
                }
            }
            SectionKind::ReadOnlyData
            | SectionKind::ReadOnlyString
            | SectionKind::ReadOnlyDataWithRel
                if section.size() > 0 =>
            {
                rodata.push(section);
            }
            _ if writable && section.size() > 0 => {
                return Err(CompileError::codegen(format!(
                    "generated code uses writable data (section `{name}`)"
                )));
            }
            // Unwind tables, notes, symbol tables, address-significance tables: not needed.
            _ => {}
        }
    }
    if text.first().map(|s| s.index()) != Some(func_section) {
        return Err(CompileError::codegen(format!(
            "symbol `{symbol}` is not in a text section"
        )));
    }

    let mut blob = Vec::new();
    let mut placed: HashMap<SectionIndex, u64> = HashMap::new();
    for section in text.iter().chain(&rodata) {
        let align = section.align().max(1);
        if align > MAX_ALIGN && section.size() > 0 {
            return Err(CompileError::codegen(format!(
                "section `{}` needs {align}-byte alignment; code is placed at {MAX_ALIGN}-byte \
                 boundaries",
                section.name().unwrap_or("?")
            )));
        }
        let start = (blob.len() as u64).next_multiple_of(align);
        blob.resize(
            start as usize,
            if section.kind() == SectionKind::Text {
                0xcc
            } else {
                0
            },
        );
        let data = section
            .data()
            .map_err(|e| CompileError::codegen(format!("cannot read section data: {e}")))?;
        blob.extend_from_slice(data);
        // A section without file data (`.bss`-like) would still take its size.
        blob.resize((start + section.size()) as usize, 0);
        placed.insert(section.index(), start);
    }

    for section in text.iter().chain(&rodata) {
        let base = placed[&section.index()];
        for (offset, reloc) in section.relocations() {
            let (target_name, target_addr) = match reloc.target() {
                RelocationTarget::Symbol(index) => {
                    let sym = file.symbol_by_index(index).map_err(|e| {
                        CompileError::codegen(format!("bad relocation symbol: {e}"))
                    })?;
                    let name = sym.name().unwrap_or("?").to_string();
                    let Some(sec) = sym.section_index() else {
                        return Err(CompileError::codegen(format!(
                            "generated code refers to the undefined symbol `{name}`; it must \
                             call nothing outside its own code"
                        )));
                    };
                    let Some(&sec_base) = placed.get(&sec) else {
                        return Err(CompileError::codegen(format!(
                            "generated code refers to `{name}` in a section that is not part of \
                             the code blob"
                        )));
                    };
                    (name, sec_base + sym.address())
                }
                RelocationTarget::Section(sec) => {
                    let Some(&sec_base) = placed.get(&sec) else {
                        return Err(CompileError::codegen(
                            "generated code refers to a section that is not part of the code blob",
                        ));
                    };
                    (format!("section {}", sec.0), sec_base)
                }
                _ => {
                    return Err(CompileError::codegen(
                        "generated code has a relocation with an unsupported target",
                    ));
                }
            };
            let r_type = match reloc.flags() {
                RelocationFlags::Elf { r_type } => r_type,
                other => {
                    return Err(CompileError::codegen(format!(
                        "unsupported relocation {other:?} against `{target_name}`"
                    )));
                }
            };
            let place = base + offset;
            let value = (target_addr as i64)
                .wrapping_add(reloc.addend())
                .wrapping_sub(place as i64);
            let at = place as usize;
            match r_type {
                elf::R_X86_64_PC32 | elf::R_X86_64_PLT32 => {
                    let v = i32::try_from(value).map_err(|_| {
                        CompileError::codegen(format!(
                            "relocation against `{target_name}` out of range"
                        ))
                    })?;
                    blob[at..at + 4].copy_from_slice(&v.to_le_bytes());
                }
                elf::R_X86_64_PC64 => {
                    blob[at..at + 8].copy_from_slice(&value.to_le_bytes());
                }
                elf::R_X86_64_64 | elf::R_X86_64_32 | elf::R_X86_64_32S => {
                    return Err(CompileError::codegen(format!(
                        "generated code needs an absolute relocation (type {r_type}) against \
                         `{target_name}`; it must be position independent"
                    )));
                }
                other => {
                    return Err(CompileError::codegen(format!(
                        "unsupported relocation type {other} against `{target_name}`"
                    )));
                }
            }
        }
    }
    Ok(blob)
}
