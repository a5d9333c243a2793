//! Target 5 (memory): memory per loaded unit when many small units are loaded one by
//! one (a JIT loading one definition at a time), against half a page, the page size
//! measured on this machine (`KernelPageSize` of `/proc/self/smaps`).
//!
//! The units are small Cranelift functions, each its own object, loaded with
//! [`Linker::load`] into one linker; the figure is what the linker's code arena has
//! made usable (`ArenaStats::touched_bytes`) divided by the number of units. The growth
//! of the process's resident memory over the loads, and the same loads with one
//! mapping per unit, are in the notes.

use anyhow::{Context, Result};
use jitcache::backends::{Backend, ClifUnit, CraneliftBackend, CraneliftConfig};
use jitcache::linker::{Linker, MemoryStrategy, ObjectFile};

use crate::measure::status_bytes;
use crate::report::{Ratio, Row, Target};

/// The size of a page of this process's memory: `KernelPageSize` of its first mapping
/// in `/proc/self/smaps`.
pub fn page_size() -> Result<u64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").context("reading /proc/self/smaps")?;
    crate::measure::parse_status_kib(
        smaps
            .lines()
            .find(|l| l.starts_with("KernelPageSize:"))
            .context("/proc/self/smaps has no KernelPageSize")?,
        "KernelPageSize",
    )
    .map(|kib| kib * 1024)
    .context("KernelPageSize does not parse")
}

/// `n` small objects, each defining one function `f<i>`.
pub fn small_objects(n: usize) -> Result<Vec<Vec<u8>>> {
    let backend = CraneliftBackend::new(CraneliftConfig::default())?;
    (0..n)
        .map(|i| {
            let clif = format!(
                "function %f{i}(i64) -> i64 {{\nblock0(v0: i64):\n    v1 = iconst.i64 {i}\n    v2 = imul v0, v0\n    v3 = iadd v2, v1\n    return v3\n}}\n"
            );
            let unit = ClifUnit::parse(&clif)?;
            Ok(backend.compile(&unit)?.bytes)
        })
        .collect::<Result<Vec<_>>>()
        .context("compiling the small units")
}

/// What loading small units one by one cost in memory, per unit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PerUnit {
    /// With the code arena: pages that can hold memory (`touched_bytes`) per unit.
    pub arena_touched: f64,
    /// With the code arena: address space mapped per unit.
    pub arena_mapped: f64,
    /// With the code arena: the units' own pieces per unit.
    pub arena_used: f64,
    /// With one mapping per unit (the arena turned off): bytes mapped per unit.
    pub per_unit_mapping: f64,
    /// The same objects linked as one unit: bytes it maps, per object.
    pub one_unit: f64,
    /// With the code arena: growth of the process's resident memory (VmRSS) over the
    /// loads, per unit (the linker's own tables too; 0 when not readable).
    pub rss: f64,
}

/// Loads `objects` one unit each, with the arena and without, and all as one unit.
pub fn per_unit(objects: &[Vec<u8>]) -> Result<PerUnit> {
    let names: Vec<String> = (0..objects.len()).map(|i| format!("f{i}.o")).collect();
    let files: Vec<ObjectFile<'_>> = objects
        .iter()
        .zip(&names)
        .map(|(bytes, name)| ObjectFile { name, bytes })
        .collect();
    let n = objects.len().max(1) as f64;

    let rss_before = status_bytes("VmRSS");
    let mut arena = Linker::new();
    for file in &files {
        arena.load(std::slice::from_ref(file))?;
    }
    let stats = arena.arena_stats();
    let rss = match (rss_before, status_bytes("VmRSS")) {
        (Some(before), Some(after)) => after.saturating_sub(before) as f64 / n,
        _ => 0.0,
    };
    drop(arena);

    let mut strict = Linker::with_memory(MemoryStrategy::MappingPerUnit);
    let mut mapped = 0usize;
    for file in &files {
        let unit = strict.load(std::slice::from_ref(file))?;
        mapped += strict.mapped_bytes(unit).unwrap_or(0);
    }
    drop(strict);

    let mut together = Linker::new();
    let batch = together.load(&files)?;
    let one_unit = together.mapped_bytes(batch).unwrap_or(0);
    Ok(PerUnit {
        arena_touched: stats.touched_bytes as f64 / n,
        arena_mapped: stats.mapped_bytes as f64 / n,
        arena_used: stats.used_bytes as f64 / n,
        per_unit_mapping: mapped as f64 / n,
        one_unit: one_unit as f64 / n,
        rss,
    })
}

/// The row of target 5.
pub fn rows(units: usize) -> Vec<Row> {
    let name = format!("bytes mapped per unit, {units} small units");
    let measured = small_objects(units).and_then(|objects| {
        let code: usize = objects.iter().map(Vec::len).sum();
        Ok((
            per_unit(&objects)?,
            code as f64 / units.max(1) as f64,
            page_size()?,
        ))
    });
    match measured {
        Ok((m, object_len, page)) => vec![
            Row::new(
                5,
                name,
                "bytes",
                (m.arena_touched, page as f64),
                format!("a page, measured: {page} bytes"),
                Ratio::ValueOverBaseline,
                Target::AtMost(0.5),
            )
            .with_sizes(format!(
                "{units} one-function Cranelift objects of ~{object_len:.0} bytes of ELF"
            ))
            .with_notes(format!(
                "each a separate Linker::load; value = the arena's touched_bytes / units (pages that can hold memory); resident memory grew {:.0} bytes per unit over the loads (the linker's tables too); the units' own pieces take {:.0} bytes each, address space mapped {:.0} bytes per unit; with one mapping per unit (MemoryStrategy::MappingPerUnit) {:.0} bytes per unit; the same objects linked as one unit {:.0} bytes per object",
                m.rss, m.arena_used, m.arena_mapped, m.per_unit_mapping, m.one_unit
            )),
        ],
        Err(err) => vec![Row::skipped(
            5,
            name,
            "bytes",
            Ratio::ValueOverBaseline,
            Target::AtMost(0.5),
            format!("{err:#}"),
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_units_load_and_report_their_memory() {
        let objects = small_objects(3).unwrap();
        assert_eq!(objects.len(), 3);
        let m = per_unit(&objects).unwrap();
        assert!(m.arena_used > 0.0 && m.arena_touched >= m.arena_used);
        assert!(m.per_unit_mapping >= 4096.0, "a mapping is whole pages");
        assert!(m.one_unit > 0.0);
    }

    #[test]
    fn the_page_size_is_measured() {
        let page = page_size().unwrap();
        assert!(page >= 4096 && page.is_power_of_two(), "{page}");
    }
}
