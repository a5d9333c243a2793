//! x86-64 psABI notes: the relocation kinds this linker applies, their formulas, and the
//! call stub.
//!
//! Notation (System V x86-64 psABI, §4.4):
//!
//! | name | meaning |
//! | --- | --- |
//! | `S` | address of the symbol the relocation refers to |
//! | `A` | the addend (explicit in `SHT_RELA`) |
//! | `P` | address of the field being relocated |
//! | `L` | address of the call target: `S`, or the symbol's call stub when `S` is out of reach |
//! | `GOT` | address of the unit's global offset table |
//! | `G` | offset of the symbol's GOT entry from `GOT` |
//!
//! Fields of 32 bits are range-checked: `PC32`, `PLT32` and the `GOTPCREL*` family are
//! signed 32-bit displacements (±2 GiB), `32` is zero-extended, `32S` is sign-extended.
//! A value that does not fit is an error, never a truncated write. Fields of 64 bits take
//! the value modulo 2^64, as the ABI says.

use object::elf;

/// A relocation kind this linker applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RelocKind {
    /// `R_X86_64_NONE`: nothing.
    None,
    /// `R_X86_64_64`: `S + A`, 64 bits. Pointers in data (`.data.rel`, `.init_array`).
    Abs64,
    /// `R_X86_64_PC32`: `S + A - P`, signed 32 bits. `lea sym(%rip)`, `.eh_frame` pointers.
    Pc32,
    /// `R_X86_64_PLT32`: `L + A - P`, signed 32 bits. `call sym@PLT`; when the symbol is
    /// data (cranelift-object emits this for local data without PIC) it is `S + A - P`.
    Plt32,
    /// `R_X86_64_32`: `S + A`, zero-extended 32 bits. `mov $sym, %edi` without PIC.
    Abs32,
    /// `R_X86_64_32S`: `S + A`, sign-extended 32 bits. `movq $sym, %rax`, `jmp *table(,%rax,8)`.
    Abs32S,
    /// `R_X86_64_PC64`: `S + A - P`, 64 bits.
    Pc64,
    /// `R_X86_64_GOTPCREL`: `G + GOT + A - P`, signed 32 bits. `mov sym@GOTPCREL(%rip), %rax`.
    GotPcRel,
    /// `R_X86_64_GOTPCRELX`: as `GOTPCREL`; the assembler marks the instruction relaxable
    /// (`call *sym@GOTPCREL(%rip)` with `-fno-plt`). This linker keeps the GOT load.
    GotPcRelX,
    /// `R_X86_64_REX_GOTPCRELX`: as `GOTPCRELX` for an instruction with a REX prefix.
    RexGotPcRelX,
    /// `R_X86_64_GOTPCREL64`: `G + GOT + A - P`, 64 bits (large code model).
    GotPcRel64,
    /// `R_X86_64_GOTOFF64`: `S + A - GOT`, 64 bits (large code model).
    GotOff64,
    /// `R_X86_64_GOTPC32`: `GOT + A - P`, signed 32 bits (`_GLOBAL_OFFSET_TABLE_`).
    GotPc32,
    /// `R_X86_64_GOTPC64`: `GOT + A - P`, 64 bits (large code model).
    GotPc64,
    /// `R_X86_64_GOT64`: `G + A`, 64 bits: the GOT entry's offset (large model, PIC).
    Got64,
    /// `R_X86_64_PLTOFF64`: `L + A - GOT`, 64 bits (large model, PIC). A 64-bit field
    /// reaches anything, so `L` is always `S` here.
    PltOff64,
    /// `R_X86_64_TLSGD`: `GD + A - P`, signed 32 bits, where `GD` is the address of the
    /// symbol's `tls_index` pair. `data16 lea x@tlsgd(%rip), %rdi`, then `call
    /// __tls_get_addr` (general dynamic).
    TlsGd,
    /// `R_X86_64_TLSLD`: `LD + A - P`, signed 32 bits, where `LD` is the address of the
    /// unit's `tls_index` pair for offset 0. `lea x@tlsld(%rip), %rdi` (local dynamic).
    TlsLd,
    /// `R_X86_64_DTPOFF32`: `S + A`, signed 32 bits, `S` being the symbol's offset in its
    /// unit's TLS block. `lea x@dtpoff(%rax), %rdx` after a local-dynamic call.
    DtpOff32,
    /// `R_X86_64_DTPOFF64`: `S + A`, 64 bits, as `DTPOFF32`.
    DtpOff64,
    /// `R_X86_64_GOTPC32_TLSDESC`: `D + A - P`, signed 32 bits, where `D` is the address
    /// of the symbol's TLS descriptor. `lea x@tlsdesc(%rip), %rax` (`-mtls-dialect=gnu2`).
    GotPc32TlsDesc,
    /// `R_X86_64_TLSDESC_CALL`: marks `call *x@tlscall(%rax)`; nothing is written.
    TlsDescCall,
}

/// Why a raw relocation type is refused.
pub(crate) enum Refused {
    /// A thread-local storage relocation of a kind objects do not carry (`DTPMOD64`,
    /// `TLSDESC`: dynamic relocations; the APX `CODE_*` forms).
    ThreadLocal(&'static str),
    /// An initial-exec or local-exec access: an offset from the thread pointer that
    /// assumes a static TLS block laid out at start-up. The second string is the model.
    StaticTls(&'static str, &'static str),
    /// Anything else not in [`RelocKind`].
    Other(&'static str),
}

impl RelocKind {
    /// Maps a raw `r_type` to a kind, or says why it is refused.
    pub(crate) fn from_raw(r_type: u32) -> Result<RelocKind, Refused> {
        Ok(match r_type {
            elf::R_X86_64_NONE => RelocKind::None,
            elf::R_X86_64_64 => RelocKind::Abs64,
            elf::R_X86_64_PC32 => RelocKind::Pc32,
            elf::R_X86_64_PLT32 => RelocKind::Plt32,
            elf::R_X86_64_32 => RelocKind::Abs32,
            elf::R_X86_64_32S => RelocKind::Abs32S,
            elf::R_X86_64_PC64 => RelocKind::Pc64,
            elf::R_X86_64_GOTPCREL => RelocKind::GotPcRel,
            elf::R_X86_64_GOTPCRELX => RelocKind::GotPcRelX,
            elf::R_X86_64_REX_GOTPCRELX => RelocKind::RexGotPcRelX,
            elf::R_X86_64_GOTPCREL64 => RelocKind::GotPcRel64,
            elf::R_X86_64_GOTOFF64 => RelocKind::GotOff64,
            elf::R_X86_64_GOTPC32 => RelocKind::GotPc32,
            elf::R_X86_64_GOTPC64 => RelocKind::GotPc64,
            elf::R_X86_64_GOT64 => RelocKind::Got64,
            elf::R_X86_64_PLTOFF64 => RelocKind::PltOff64,
            elf::R_X86_64_TLSGD => RelocKind::TlsGd,
            elf::R_X86_64_TLSLD => RelocKind::TlsLd,
            elf::R_X86_64_DTPOFF32 => RelocKind::DtpOff32,
            elf::R_X86_64_DTPOFF64 => RelocKind::DtpOff64,
            elf::R_X86_64_GOTPC32_TLSDESC => RelocKind::GotPc32TlsDesc,
            elf::R_X86_64_TLSDESC_CALL => RelocKind::TlsDescCall,
            other => {
                let name = raw_name(other);
                return Err(match static_tls_model(other) {
                    Some(model) => Refused::StaticTls(name, model),
                    None if is_tls(other) => Refused::ThreadLocal(name),
                    None => Refused::Other(name),
                });
            }
        })
    }

    /// The `R_X86_64_*` name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            RelocKind::None => "R_X86_64_NONE",
            RelocKind::Abs64 => "R_X86_64_64",
            RelocKind::Pc32 => "R_X86_64_PC32",
            RelocKind::Plt32 => "R_X86_64_PLT32",
            RelocKind::Abs32 => "R_X86_64_32",
            RelocKind::Abs32S => "R_X86_64_32S",
            RelocKind::Pc64 => "R_X86_64_PC64",
            RelocKind::GotPcRel => "R_X86_64_GOTPCREL",
            RelocKind::GotPcRelX => "R_X86_64_GOTPCRELX",
            RelocKind::RexGotPcRelX => "R_X86_64_REX_GOTPCRELX",
            RelocKind::GotPcRel64 => "R_X86_64_GOTPCREL64",
            RelocKind::GotOff64 => "R_X86_64_GOTOFF64",
            RelocKind::GotPc32 => "R_X86_64_GOTPC32",
            RelocKind::GotPc64 => "R_X86_64_GOTPC64",
            RelocKind::Got64 => "R_X86_64_GOT64",
            RelocKind::PltOff64 => "R_X86_64_PLTOFF64",
            RelocKind::TlsGd => "R_X86_64_TLSGD",
            RelocKind::TlsLd => "R_X86_64_TLSLD",
            RelocKind::DtpOff32 => "R_X86_64_DTPOFF32",
            RelocKind::DtpOff64 => "R_X86_64_DTPOFF64",
            RelocKind::GotPc32TlsDesc => "R_X86_64_GOTPC32_TLSDESC",
            RelocKind::TlsDescCall => "R_X86_64_TLSDESC_CALL",
        }
    }

    /// Bytes written at `P`.
    pub(crate) fn width(self) -> u64 {
        match self {
            RelocKind::None | RelocKind::TlsDescCall => 0,
            RelocKind::Abs64
            | RelocKind::DtpOff64
            | RelocKind::Pc64
            | RelocKind::GotPcRel64
            | RelocKind::GotOff64
            | RelocKind::GotPc64
            | RelocKind::Got64
            | RelocKind::PltOff64 => 8,
            _ => 4,
        }
    }

    /// Whether the symbol needs a GOT entry (`G` appears in the formula).
    pub(crate) fn needs_got_entry(self) -> bool {
        matches!(
            self,
            RelocKind::GotPcRel
                | RelocKind::GotPcRelX
                | RelocKind::RexGotPcRelX
                | RelocKind::GotPcRel64
                | RelocKind::Got64
        )
    }

    /// Whether this is a thread-local kind: its symbol must be a thread-local variable,
    /// and `S` is the symbol's offset in its TLS block.
    pub(crate) fn is_tls(self) -> bool {
        matches!(
            self,
            RelocKind::TlsGd
                | RelocKind::TlsLd
                | RelocKind::DtpOff32
                | RelocKind::DtpOff64
                | RelocKind::GotPc32TlsDesc
                | RelocKind::TlsDescCall
        )
    }

    /// Whether the field holds an absolute 32-bit address (needs low memory).
    pub(crate) fn is_abs32(self) -> bool {
        matches!(self, RelocKind::Abs32 | RelocKind::Abs32S)
    }
}

/// The inputs of a relocation formula, all as addresses.
pub(crate) struct Inputs {
    /// `S` (or `L` for a `PLT32` that goes through a stub).
    pub s: u64,
    /// `A`.
    pub a: i64,
    /// `P`.
    pub p: u64,
    /// `GOT`.
    pub got: u64,
    /// `GOT + G`: the address of the symbol's GOT entry (0 when it has none); for
    /// `TLSGD`, `TLSLD` and `GOTPC32_TLSDESC`, the address of its `tls_index` pair or
    /// descriptor (`GD`, `LD`, `D`).
    pub got_entry: u64,
}

/// The field to write: its bytes, or the value that did not fit and the field width.
pub(crate) enum Field {
    /// Little-endian bytes to store at `P`.
    Bytes4([u8; 4]),
    /// Little-endian bytes to store at `P`.
    Bytes8([u8; 8]),
    /// Nothing to write.
    Nothing,
    /// The value does not fit in `bits` bits.
    Overflow {
        /// The value computed by the formula.
        value: i128,
        /// The width of the field.
        bits: u32,
    },
}

/// Computes a relocation's field from its formula, with the range check.
pub(crate) fn compute(kind: RelocKind, i: &Inputs) -> Field {
    let s = i128::from(i.s);
    let a = i128::from(i.a);
    let p = i128::from(i.p);
    let got = i128::from(i.got);
    let got_entry = i128::from(i.got_entry);
    match kind {
        RelocKind::None | RelocKind::TlsDescCall => Field::Nothing,
        RelocKind::Abs64 | RelocKind::DtpOff64 => wrap64(s + a),
        RelocKind::Pc64 => wrap64(s + a - p),
        RelocKind::GotPcRel64 => wrap64(got_entry + a - p),
        RelocKind::GotOff64 => wrap64(s + a - got),
        RelocKind::GotPc64 => wrap64(got + a - p),
        RelocKind::Got64 => wrap64(got_entry - got + a),
        RelocKind::PltOff64 => wrap64(s + a - got),
        RelocKind::Pc32 | RelocKind::Plt32 => signed32(s + a - p),
        RelocKind::GotPcRel
        | RelocKind::GotPcRelX
        | RelocKind::RexGotPcRelX
        | RelocKind::TlsGd
        | RelocKind::TlsLd
        | RelocKind::GotPc32TlsDesc => signed32(got_entry + a - p),
        RelocKind::DtpOff32 => signed32(s + a),
        RelocKind::GotPc32 => signed32(got + a - p),
        RelocKind::Abs32S => signed32(s + a),
        RelocKind::Abs32 => match u32::try_from(s + a) {
            Ok(v) => Field::Bytes4(v.to_le_bytes()),
            Err(_) => Field::Overflow {
                value: s + a,
                bits: 32,
            },
        },
    }
}

fn wrap64(value: i128) -> Field {
    // Modulo 2^64: the truncation is the ABI's definition for 64-bit fields.
    #[expect(
        clippy::cast_possible_truncation,
        reason = "64-bit fields wrap by definition"
    )]
    let v = value as u64;
    Field::Bytes8(v.to_le_bytes())
}

fn signed32(value: i128) -> Field {
    match i32::try_from(value) {
        Ok(v) => Field::Bytes4(v.to_le_bytes()),
        Err(_) => Field::Overflow { value, bits: 32 },
    }
}

/// Size of one call stub, and its alignment.
pub(crate) const STUB_SIZE: u64 = 16;

/// A call stub for a target beyond ±2 GiB: an indirect jump through the 8 bytes that
/// follow it.
///
/// ```text
/// ff 25 00 00 00 00    jmp *0(%rip)        ; reads the next 8 bytes
/// <8-byte address>     .quad target
/// cc cc                int3; int3          ; padding to 16
/// ```
///
/// The stub lives in the unit's text and is read-only once protected. It clobbers no
/// register, so it is transparent to the callee (unlike a PLT it needs no `%r11`).
pub(crate) fn stub(target: u64) -> [u8; STUB_SIZE as usize] {
    let mut b = [0xcc_u8; STUB_SIZE as usize];
    b[0] = 0xff;
    b[1] = 0x25;
    b[2..6].copy_from_slice(&[0, 0, 0, 0]);
    b[6..14].copy_from_slice(&target.to_le_bytes());
    b
}

/// Size of the `atexit` thunk.
pub(crate) const ATEXIT_THUNK_SIZE: u64 = 32;

/// `int atexit(void (*f)(void))` for loaded code. glibc does not export `atexit` (it
/// lives in `libc_nonshared.a` as `__cxa_atexit(f, NULL, __dso_handle)`), so the linker
/// synthesizes the same thing with the unit's own DSO handle, which makes the handler
/// run at unload (`__cxa_finalize`) or at exit, whichever comes first:
///
/// ```text
/// 48 8d 15 <rel32>     lea  dso(%rip), %rdx     ; 3rd argument: the unit's handle
/// 31 f6                xor  %esi, %esi          ; 2nd argument: NULL
/// ff 25 00 00 00 00    jmp  *0(%rip)            ; tail call __cxa_atexit(f, NULL, dso)
/// <8-byte address>     .quad __cxa_atexit
/// ```
///
/// Returns `None` if the handle is out of reach (it never is: both are in the unit).
pub(crate) fn atexit_thunk(
    at: u64,
    dso: u64,
    cxa_atexit: u64,
) -> Option<[u8; ATEXIT_THUNK_SIZE as usize]> {
    let disp = i32::try_from(i128::from(dso) - i128::from(at) - 7).ok()?;
    let mut b = [0xcc_u8; ATEXIT_THUNK_SIZE as usize];
    b[0..3].copy_from_slice(&[0x48, 0x8d, 0x15]);
    b[3..7].copy_from_slice(&disp.to_le_bytes());
    b[7..9].copy_from_slice(&[0x31, 0xf6]);
    b[9..15].copy_from_slice(&[0xff, 0x25, 0, 0, 0, 0]);
    b[15..23].copy_from_slice(&cxa_atexit.to_le_bytes());
    Some(b)
}

/// The TLS model of a relocation that needs a static TLS block, or `None`.
fn static_tls_model(r_type: u32) -> Option<&'static str> {
    match r_type {
        elf::R_X86_64_GOTTPOFF
        | elf::R_X86_64_CODE_4_GOTTPOFF
        | elf::R_X86_64_CODE_5_GOTTPOFF
        | elf::R_X86_64_CODE_6_GOTTPOFF => Some("initial-exec"),
        elf::R_X86_64_TPOFF32 | elf::R_X86_64_TPOFF64 => Some("local-exec"),
        _ => None,
    }
}

fn is_tls(r_type: u32) -> bool {
    matches!(
        r_type,
        elf::R_X86_64_DTPMOD64
            | elf::R_X86_64_DTPOFF64
            | elf::R_X86_64_TPOFF64
            | elf::R_X86_64_TLSGD
            | elf::R_X86_64_TLSLD
            | elf::R_X86_64_DTPOFF32
            | elf::R_X86_64_GOTTPOFF
            | elf::R_X86_64_TPOFF32
            | elf::R_X86_64_GOTPC32_TLSDESC
            | elf::R_X86_64_TLSDESC_CALL
            | elf::R_X86_64_TLSDESC
            | elf::R_X86_64_CODE_4_GOTTPOFF
            | elf::R_X86_64_CODE_4_GOTPC32_TLSDESC
            | elf::R_X86_64_CODE_5_GOTTPOFF
            | elf::R_X86_64_CODE_5_GOTPC32_TLSDESC
            | elf::R_X86_64_CODE_6_GOTTPOFF
            | elf::R_X86_64_CODE_6_GOTPC32_TLSDESC
    )
}

/// The `R_X86_64_*` name of a raw type, for messages.
fn raw_name(r_type: u32) -> &'static str {
    match r_type {
        elf::R_X86_64_GOT32 => "R_X86_64_GOT32",
        elf::R_X86_64_COPY => "R_X86_64_COPY",
        elf::R_X86_64_GLOB_DAT => "R_X86_64_GLOB_DAT",
        elf::R_X86_64_JUMP_SLOT => "R_X86_64_JUMP_SLOT",
        elf::R_X86_64_RELATIVE => "R_X86_64_RELATIVE",
        elf::R_X86_64_16 => "R_X86_64_16",
        elf::R_X86_64_PC16 => "R_X86_64_PC16",
        elf::R_X86_64_8 => "R_X86_64_8",
        elf::R_X86_64_PC8 => "R_X86_64_PC8",
        elf::R_X86_64_DTPMOD64 => "R_X86_64_DTPMOD64",
        elf::R_X86_64_DTPOFF64 => "R_X86_64_DTPOFF64",
        elf::R_X86_64_TPOFF64 => "R_X86_64_TPOFF64",
        elf::R_X86_64_TLSGD => "R_X86_64_TLSGD",
        elf::R_X86_64_TLSLD => "R_X86_64_TLSLD",
        elf::R_X86_64_DTPOFF32 => "R_X86_64_DTPOFF32",
        elf::R_X86_64_GOTTPOFF => "R_X86_64_GOTTPOFF",
        elf::R_X86_64_TPOFF32 => "R_X86_64_TPOFF32",
        elf::R_X86_64_GOT64 => "R_X86_64_GOT64",
        elf::R_X86_64_GOTPLT64 => "R_X86_64_GOTPLT64",
        elf::R_X86_64_PLTOFF64 => "R_X86_64_PLTOFF64",
        elf::R_X86_64_SIZE32 => "R_X86_64_SIZE32",
        elf::R_X86_64_SIZE64 => "R_X86_64_SIZE64",
        elf::R_X86_64_GOTPC32_TLSDESC => "R_X86_64_GOTPC32_TLSDESC",
        elf::R_X86_64_TLSDESC_CALL => "R_X86_64_TLSDESC_CALL",
        elf::R_X86_64_TLSDESC => "R_X86_64_TLSDESC",
        elf::R_X86_64_IRELATIVE => "R_X86_64_IRELATIVE",
        elf::R_X86_64_RELATIVE64 => "R_X86_64_RELATIVE64",
        elf::R_X86_64_CODE_4_GOTPCRELX => "R_X86_64_CODE_4_GOTPCRELX",
        elf::R_X86_64_CODE_4_GOTTPOFF => "R_X86_64_CODE_4_GOTTPOFF",
        elf::R_X86_64_CODE_4_GOTPC32_TLSDESC => "R_X86_64_CODE_4_GOTPC32_TLSDESC",
        elf::R_X86_64_CODE_5_GOTPCRELX => "R_X86_64_CODE_5_GOTPCRELX",
        elf::R_X86_64_CODE_5_GOTTPOFF => "R_X86_64_CODE_5_GOTTPOFF",
        elf::R_X86_64_CODE_5_GOTPC32_TLSDESC => "R_X86_64_CODE_5_GOTPC32_TLSDESC",
        elf::R_X86_64_CODE_6_GOTPCRELX => "R_X86_64_CODE_6_GOTPCRELX",
        elf::R_X86_64_CODE_6_GOTTPOFF => "R_X86_64_CODE_6_GOTTPOFF",
        elf::R_X86_64_CODE_6_GOTPC32_TLSDESC => "R_X86_64_CODE_6_GOTPC32_TLSDESC",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(s: u64, a: i64, p: u64) -> Inputs {
        Inputs {
            s,
            a,
            p,
            got: 0x1000,
            got_entry: 0x1010,
        }
    }

    #[test]
    fn pc32_is_s_plus_a_minus_p() {
        match compute(RelocKind::Pc32, &inputs(0x5000, -4, 0x4000)) {
            Field::Bytes4(b) => assert_eq!(i32::from_le_bytes(b), 0x1000 - 4),
            _ => panic!("expected a 4-byte field"),
        }
    }

    #[test]
    fn pc32_out_of_reach_is_overflow_not_truncation() {
        let far = 0x7fff_0000_0000;
        assert!(matches!(
            compute(RelocKind::Pc32, &inputs(far, 0, 0x1000)),
            Field::Overflow { bits: 32, .. }
        ));
    }

    #[test]
    fn abs32_and_32s_ranges() {
        assert!(matches!(
            compute(RelocKind::Abs32, &inputs(0xffff_ffff, 0, 0)),
            Field::Bytes4(_)
        ));
        assert!(matches!(
            compute(RelocKind::Abs32S, &inputs(0xffff_ffff, 0, 0)),
            Field::Overflow { .. }
        ));
        assert!(matches!(
            compute(RelocKind::Abs32, &inputs(0, -1, 0)),
            Field::Overflow { .. }
        ));
        assert!(matches!(
            compute(RelocKind::Abs32S, &inputs(0, -1, 0)),
            Field::Bytes4(_)
        ));
    }

    #[test]
    fn got_formulas() {
        match compute(RelocKind::GotPcRel, &inputs(0, -4, 0x1000)) {
            Field::Bytes4(b) => assert_eq!(i32::from_le_bytes(b), 0x10 - 4),
            _ => panic!("expected a 4-byte field"),
        }
        match compute(RelocKind::GotOff64, &inputs(0x1800, 8, 0)) {
            Field::Bytes8(b) => assert_eq!(i64::from_le_bytes(b), 0x808),
            _ => panic!("expected an 8-byte field"),
        }
        match compute(RelocKind::GotPc64, &inputs(0, 0, 0x800)) {
            Field::Bytes8(b) => assert_eq!(i64::from_le_bytes(b), 0x800),
            _ => panic!("expected an 8-byte field"),
        }
    }

    #[test]
    fn tls_formulas() {
        // TLSGD/TLSLD/TLSDESC point PC-relatively at the pair or descriptor.
        for kind in [
            RelocKind::TlsGd,
            RelocKind::TlsLd,
            RelocKind::GotPc32TlsDesc,
        ] {
            match compute(kind, &inputs(0x40, -4, 0x1000)) {
                Field::Bytes4(b) => assert_eq!(i32::from_le_bytes(b), 0x10 - 4, "{kind:?}"),
                _ => panic!("expected a 4-byte field"),
            }
        }
        // DTPOFF is the offset in the block plus the addend.
        match compute(RelocKind::DtpOff32, &inputs(0x40, 8, 0x1000)) {
            Field::Bytes4(b) => assert_eq!(i32::from_le_bytes(b), 0x48),
            _ => panic!("expected a 4-byte field"),
        }
        match compute(RelocKind::DtpOff64, &inputs(0x40, 8, 0x1000)) {
            Field::Bytes8(b) => assert_eq!(i64::from_le_bytes(b), 0x48),
            _ => panic!("expected an 8-byte field"),
        }
        assert!(matches!(
            compute(RelocKind::TlsDescCall, &inputs(0x40, 0, 0x1000)),
            Field::Nothing
        ));
        assert!(matches!(
            RelocKind::from_raw(elf::R_X86_64_GOTTPOFF),
            Err(Refused::StaticTls(_, "initial-exec"))
        ));
        assert!(matches!(
            RelocKind::from_raw(elf::R_X86_64_TPOFF32),
            Err(Refused::StaticTls(_, "local-exec"))
        ));
        assert!(matches!(
            RelocKind::from_raw(elf::R_X86_64_DTPMOD64),
            Err(Refused::ThreadLocal(_))
        ));
    }

    #[test]
    fn stub_encodes_an_indirect_jump() {
        let s = stub(0x1122_3344_5566_7788);
        assert_eq!(&s[..6], &[0xff, 0x25, 0, 0, 0, 0]);
        assert_eq!(
            u64::from_le_bytes(s[6..14].try_into().unwrap()),
            0x1122_3344_5566_7788
        );
    }
}
