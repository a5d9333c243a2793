//! The code arena: small units share pages, W^X holds in /proc/self/maps, unloading
//! returns pieces that later loads reuse, failed loads return theirs, big and
//! over-aligned units, threads, and fork.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use jitcache_linker::{Linker, LoadOptions, MemoryStrategy, UnitId, call};

use crate::common::{cc, maps_line, obj, perms};

/// A small unit: two functions and a private global (its own data piece).
const SMALL: &str =
    "static long k = 7;\nvoid set(long v) { k = v; }\nlong get(void) { return k * 2; }\n";

fn small() -> Vec<u8> {
    cc("arena_small", SMALL, &["-O2", "-fPIC"])
}

fn load(linker: &mut Linker, bytes: &[u8]) -> UnitId {
    linker
        .load_with(
            &[obj("small.o", bytes)],
            &LoadOptions::default().export(false),
        )
        .expect("load")
}

fn sym(linker: &Linker, unit: UnitId, name: &str) -> usize {
    linker.symbol(unit, name).expect("defined")
}

fn set(linker: &Linker, unit: UnitId, v: i64) {
    // SAFETY: a function of that C signature in a unit still loaded.
    unsafe { call::call_i64(sym(linker, unit, "set"), &[v]) }.expect("set");
}

fn get(linker: &Linker, unit: UnitId) -> i64 {
    // SAFETY: a function of that C signature in a unit still loaded.
    unsafe { call::call_i64(sym(linker, unit, "get"), &[]) }.expect("get")
}

#[test]
fn many_small_units_share_pages() {
    let bytes = small();
    let mut linker = Linker::new();
    assert_eq!(linker.memory_strategy(), MemoryStrategy::Arena);
    let units: Vec<UnitId> = (0..1000).map(|_| load(&mut linker, &bytes)).collect();
    for (i, &u) in units.iter().enumerate() {
        set(&linker, u, i as i64);
    }
    for (i, &u) in units.iter().enumerate() {
        assert_eq!(get(&linker, u), 2 * i as i64, "each unit has its own data");
        assert!(linker.mapped_bytes(u).expect("mapped") < 512);
    }
    let stats = linker.arena_stats();
    assert_eq!(stats.units, 1000);
    let used: usize = units
        .iter()
        .map(|&u| linker.mapped_bytes(u).expect("mapped"))
        .sum();
    assert_eq!(stats.used_bytes, used);
    assert!(
        stats.touched_bytes / stats.units < 1024,
        "memory per unit well under a page: {stats:?}"
    );
    assert!(
        stats.mapped_bytes / stats.units < 4096,
        "address space per unit under a page: {stats:?}"
    );
    let code_pages: HashSet<usize> = units
        .iter()
        .map(|&u| sym(&linker, u, "get") / 4096)
        .collect();
    assert!(
        code_pages.len() * 10 < units.len(),
        "{} code pages for {} units",
        code_pages.len(),
        units.len()
    );

    // The same units with a mapping each: at least a page per segment.
    let mut own = Linker::with_memory(MemoryStrategy::MappingPerUnit);
    for _ in 0..10 {
        load(&mut own, &bytes);
    }
    let own_stats = own.arena_stats();
    assert!(own_stats.touched_bytes / own_stats.units >= 3 * 4096);
}

/// The views of the arena's memory files in /proc/self/maps: (executable, writable), for
/// the default arena's files or the shared-alias ones.
fn memfd_views(maps: &str, alias: bool) -> (usize, usize) {
    let name = if alias {
        "memfd:jitcache-code-alias (deleted)"
    } else {
        "memfd:jitcache-code (deleted)"
    };
    let mut views = (0, 0);
    for line in maps.lines().filter(|l| l.ends_with(name)) {
        let perms = line.split_whitespace().nth(1).expect("perms");
        views.0 += usize::from(perms.contains('x'));
        views.1 += usize::from(perms.contains('w'));
    }
    views
}

#[test]
fn no_mapping_is_writable_and_executable() {
    let bytes = small();
    let mut linker = Linker::new();
    let units: Vec<UnitId> = (0..200).map(|_| load(&mut linker, &bytes)).collect();
    let mut alias = Linker::with_memory(MemoryStrategy::ArenaSharedAlias);
    let alias_units: Vec<UnitId> = (0..20).map(|_| load(&mut alias, &bytes)).collect();
    let mut own = Linker::with_memory(MemoryStrategy::MappingPerUnit);
    let own_unit = load(&mut own, &bytes);
    let maps = std::fs::read_to_string("/proc/self/maps").expect("maps");
    for line in maps.lines() {
        let perms = line.split_whitespace().nth(1).expect("perms");
        assert!(
            !(perms.contains('w') && perms.contains('x')),
            "writable and executable: {line}"
        );
    }
    // W^X by default: no view of the code is writable, ever.
    let (exec, writable) = memfd_views(&maps, false);
    assert!(exec > 0, "executable views");
    assert_eq!(writable, 0, "a writable view of code:\n{maps}");
    assert_eq!(linker.arena_stats().alias_bytes, 0);
    // The opt-in shared alias: a writable view of the same pages, elsewhere.
    let (exec, writable) = memfd_views(&maps, true);
    assert!(exec > 0 && writable > 0, "executable and writable views");
    assert!(alias.arena_stats().alias_bytes > 0);
    // Code runs from the executable view, which is never writable.
    for (l, us, name) in [
        (&linker, &units, "/memfd:jitcache-code"),
        (&alias, &alias_units, "/memfd:jitcache-code-alias"),
    ] {
        for &u in us {
            let (perms, mapped) = maps_line(sym(l, u, "get")).expect("mapped");
            assert_eq!(perms, "r-xs");
            assert!(mapped.ends_with(name), "{mapped}");
            assert_eq!(get(l, u), 14);
        }
    }
    assert_eq!(perms(sym(&own, own_unit, "get")), "r-xp");
}

#[test]
fn unloading_returns_pieces_that_later_loads_reuse() {
    let bytes = small();
    let mut linker = Linker::new();
    let keep = load(&mut linker, &bytes);
    let before = linker.arena_stats();

    let a = load(&mut linker, &bytes);
    set(&linker, a, 100);
    let a_get = sym(&linker, a, "get");
    let with_a = linker.arena_stats();
    assert!(with_a.used_bytes > before.used_bytes);
    linker.unload(a).expect("unload");
    assert_eq!(linker.arena_stats().used_bytes, before.used_bytes);

    // Fresh bytes first: while the pools have room never handed out, the next unit
    // does not take a's pieces (code written where none ran needs no membarrier).
    let b = load(&mut linker, &bytes);
    assert_ne!(sym(&linker, b, "get"), a_get);
    assert_eq!(get(&linker, b), 14);
    linker.unload(b).expect("unload");

    // Churn: once the fresh bytes are used up, returned pieces are reused (cleared and
    // refilled), so loading and unloading forever stays within the first chunk and
    // touched memory stops growing.
    let chunks = linker.arena_stats().chunks;
    let mut reused_a = false;
    let mut flat_rounds = 0;
    let mut touched = linker.arena_stats().touched_bytes;
    for _ in 0..200 {
        let again: Vec<UnitId> = (0..300).map(|_| load(&mut linker, &bytes)).collect();
        for &u in &again {
            assert_eq!(
                get(&linker, u),
                14,
                "a reused data piece is cleared and refilled"
            );
            reused_a |= sym(&linker, u, "get") == a_get;
        }
        assert_eq!(
            linker.arena_stats().chunks,
            chunks,
            "no chunk while pieces are free"
        );
        for u in again {
            linker.unload(u).expect("unload");
        }
        let now = linker.arena_stats().touched_bytes;
        flat_rounds = if now == touched { flat_rounds + 1 } else { 0 };
        touched = now;
        if flat_rounds == 3 && reused_a {
            break;
        }
    }
    assert!(
        reused_a,
        "a's pieces were reused once the fresh bytes ran out"
    );
    assert_eq!(flat_rounds, 3, "touched memory stopped growing");
    assert!(touched <= linker.arena_stats().mapped_bytes);
    assert_eq!(get(&linker, keep), 14);
    linker.unload(keep).expect("unload");
    let empty = linker.arena_stats();
    assert_eq!((empty.units, empty.used_bytes), (0, 0));
    assert!(empty.chunks <= 1, "one spare chunk at most: {empty:?}");
}

#[test]
fn a_failed_load_returns_its_pieces() {
    let bytes = small();
    // Needs low memory (R_X86_64_32) and refers to libc's `stdout` with a PC32 field:
    // it fails in the apply pass, after its pieces were taken.
    let far = cc(
        "arena_far_stdout",
        "#include <stdio.h>\nconst char *text(void) { return \"x\"; }\nFILE *out(void) { return stdout; }\n",
        &["-O2", "-fno-pic"],
    );
    let mut linker = Linker::new();
    let u = load(&mut linker, &bytes);
    let before = linker.arena_stats();
    for _ in 0..3 {
        linker
            .load(&[obj("far.o", &far)])
            .expect_err("out of range");
        linker
            .load(&[obj(
                "undefined.o",
                &cc(
                    "arena_undef",
                    "long nowhere(void);\nlong f(void) { return nowhere(); }\n",
                    &["-O2", "-fPIC"],
                ),
            )])
            .expect_err("undefined");
        assert_eq!(linker.arena_stats().used_bytes, before.used_bytes);
    }
    let v = load(&mut linker, &bytes);
    assert_eq!(get(&linker, u) + get(&linker, v), 28);

    // A unit too big for a pool fails after its own chunk was made: the chunk goes too.
    let chunks = linker.arena_stats().chunks;
    let big_far = cc(
        "arena_big_far",
        "#include <stdio.h>\nstatic const char table[600000] = { 1 };\nconst char *text(void) { return table; }\nFILE *out(void) { return stdout; }\n",
        &["-O2", "-fno-pic"],
    );
    linker
        .load(&[obj("big_far.o", &big_far)])
        .expect_err("out of range");
    assert_eq!(linker.arena_stats().chunks, chunks);
}

#[test]
fn a_unit_larger_than_a_pool_gets_a_chunk_of_its_own() {
    let big = cc(
        "arena_big",
        "static const char table[600000] = { 1, 2, 3 };\nlong at(long i) { return table[i]; }\n",
        &["-O2", "-fPIC"],
    );
    let bytes = small();
    let mut linker = Linker::new();
    let u = load(&mut linker, &bytes);
    let before = linker.arena_stats();
    let b = linker.load(&[obj("big.o", &big)]).expect("load big");
    assert!(linker.mapped_bytes(b).expect("mapped") >= 600_000);
    assert_eq!(linker.arena_stats().chunks, before.chunks + 1);
    let at = sym(&linker, b, "at");
    // SAFETY: a function of that C signature in a unit still loaded.
    assert_eq!(unsafe { call::call_i64(at, &[2]) }.expect("call"), 3);
    // SAFETY: a function of that C signature in a unit still loaded.
    assert_eq!(unsafe { call::call_i64(at, &[599_999]) }.expect("call"), 0);
    linker.unload(b).expect("unload");
    assert_eq!(linker.arena_stats().chunks, before.chunks, "unmapped");
    assert_eq!(get(&linker, u), 14);
}

#[test]
fn over_aligned_sections_keep_their_alignment() {
    let bytes = cc(
        "arena_aligned",
        "__attribute__((aligned(8192))) long page[4] = { 5 };\n__attribute__((aligned(64))) const long line[2] = { 6 };\nlong sum(void) { return page[0] + line[0]; }\n",
        &["-O2", "-fPIC"],
    );
    let mut linker = Linker::new();
    for _ in 0..3 {
        let u = linker.load(&[obj("aligned.o", &bytes)]).expect("load");
        assert_eq!(sym(&linker, u, "page") % 8192, 0);
        assert_eq!(sym(&linker, u, "line") % 64, 0);
        assert_eq!(
            // SAFETY: a function of that C signature in a unit still loaded.
            unsafe { call::call_i64(sym(&linker, u, "sum"), &[]) }.expect("call"),
            11
        );
    }
}

#[test]
fn low_units_share_a_low_chunk() {
    let bytes = cc(
        "arena_low",
        "static const char msg[] = \"hi\";\nconst char *message(void) { return msg; }\n",
        &["-O2", "-fno-pic"],
    );
    let mut linker = Linker::new();
    let a = linker.load(&[obj("a.o", &bytes)]).expect("load");
    let b = linker.load(&[obj("b.o", &bytes)]).expect("load");
    let (ma, mb) = (sym(&linker, a, "message"), sym(&linker, b, "message"));
    assert!(ma < 1 << 31 && mb < 1 << 31, "{ma:#x} {mb:#x}");
    assert_eq!(ma / 4096, mb / 4096, "one page for both");
    // SAFETY: a function of that C signature in a unit still loaded.
    let text = unsafe { call::call_i64(ma, &[]) }.expect("call") as usize;
    assert!(text < 1 << 31);
    assert_eq!(perms(text), "r--s");
}

#[test]
fn separate_linkers_load_from_several_threads() {
    let bytes = Arc::new(small());
    let threads: Vec<_> = (0..4_i64)
        .map(|t| {
            let bytes = Arc::clone(&bytes);
            std::thread::spawn(move || {
                let mut linker = Linker::new();
                let mut live = Vec::new();
                for i in 0..200_i64 {
                    let u = load(&mut linker, &bytes);
                    set(&linker, u, t * 1000 + i);
                    live.push((u, t * 1000 + i));
                    if i % 3 == 0 {
                        let (old, _) = live.remove(live.len() / 2);
                        linker.unload(old).expect("unload");
                    }
                }
                for &(u, v) in &live {
                    assert_eq!(get(&linker, u), 2 * v);
                }
                linker
            })
        })
        .collect();
    // Linkers move between threads (Send): unload them here.
    for t in threads {
        let linker = t.join().expect("thread");
        assert!(linker.arena_stats().units > 0);
        drop(linker);
    }
}

#[test]
fn code_keeps_running_while_its_pages_are_shared_with_new_loads() {
    let bytes = small();
    let linker = Arc::new(Mutex::new(Linker::new()));
    let stable: Vec<(usize, i64)> = {
        let mut l = linker.lock().expect("lock");
        (0..32)
            .map(|i| {
                let u = load(&mut l, &bytes);
                set(&l, u, i);
                (sym(&l, u, "get"), 2 * i)
            })
            .collect()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let stable = Arc::new(stable);
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (stop, stable) = (Arc::clone(&stop), Arc::clone(&stable));
            std::thread::spawn(move || {
                let mut calls = 0_u64;
                while !stop.load(Ordering::Relaxed) {
                    for &(get, want) in stable.iter() {
                        // SAFETY: a function of that C signature in a unit still loaded.
                        assert_eq!(unsafe { call::call_i64(get, &[]) }.expect("call"), want);
                        calls += 1;
                    }
                }
                calls
            })
        })
        .collect();
    // Meanwhile: loads into the same pages, calls, unloads (pieces reused).
    for round in 0..200 {
        let mut l = linker.lock().expect("lock");
        let units: Vec<UnitId> = (0..8).map(|_| load(&mut l, &bytes)).collect();
        for &u in &units {
            set(&l, u, round);
            assert_eq!(get(&l, u), 2 * round);
        }
        for u in units {
            l.unload(u).expect("unload");
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        assert!(w.join().expect("worker") > 0);
    }
}

/// `fork`, `waitpid` and `_exit` as loaded code: a loaded program that forks is the case
/// this is about, and calling loaded code is what the linker offers as safe.
const PROCESS: &str = "#include <unistd.h>\n#include <sys/wait.h>\n\
    long do_fork(void) { return fork(); }\n\
    long wait_status(long pid) { int st; if (waitpid(pid, &st, 0) != pid) return -1; return WIFEXITED(st) ? WEXITSTATUS(st) : 256; }\n\
    long quit(long code) { _exit(code); }\n";

/// `fork` freezes the chunks of every linker of the process (in the parent too), which
/// would change what the other tests here observe: the scenario runs in a process of its
/// own (this test binary, asked for that one test).
#[test]
fn after_fork_parent_and_child_load_into_separate_chunks() {
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "arena::fork_scenario", "--include-ignored"])
        .args(["--test-threads", "1", "--nocapture"])
        .output()
        .expect("run the fork scenario");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "run in a process of its own by after_fork_parent_and_child_load_into_separate_chunks"]
fn fork_scenario() {
    let process = cc("arena_process", PROCESS, &["-O2", "-fPIC"]);
    let mut host = Linker::new();
    let p = host.load(&[obj("process.o", &process)]).expect("load");
    let (do_fork, wait_status, quit) = (
        sym(&host, p, "do_fork"),
        sym(&host, p, "wait_status"),
        sym(&host, p, "quit"),
    );

    // In the child only code of this test runs, and nothing that needs a lock another
    // thread may hold at fork: the units have no undefined symbols (no dlsym) and are
    // loaded without unwind info.
    let bytes = small();
    let inert = LoadOptions::default().export(false).unwind_info(false);
    let mut linker = Linker::new();
    let a = linker
        .load_with(&[obj("a.o", &bytes)], &inert)
        .expect("load");
    set(&linker, a, 21);
    // Loaded before the fork, unloaded in the parent after it: its pieces must not be
    // reused while the child may still run it.
    let b = linker
        .load_with(&[obj("b.o", &bytes)], &inert)
        .expect("load");
    set(&linker, b, 5);
    let chunks = linker.arena_stats().chunks;
    assert_eq!(chunks, 1);
    let (a_get, b_set, b_get) = (
        sym(&linker, a, "get"),
        sym(&linker, b, "set"),
        sym(&linker, b, "get"),
    );

    // SAFETY: a function of that C signature in a unit still loaded.
    let pid = unsafe { call::call_i64(do_fork, &[]) }.expect("fork");
    assert!(pid >= 0, "fork");
    if pid == 0 {
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // Let the parent unload and load first.
            std::thread::sleep(std::time::Duration::from_millis(100));
            // SAFETY: a function of that C signature in a unit still loaded.
            let mut ok = unsafe { call::call_i64(a_get, &[]) }.ok() == Some(42);
            // SAFETY: a function of that C signature in a unit still loaded.
            ok &= unsafe { call::call_i64(b_get, &[]) }.ok() == Some(10);
            if let Ok(c) = linker.load_with(&[obj("c.o", &bytes)], &inert) {
                ok &= linker.arena_stats().chunks == chunks + 1;
                set(&linker, c, 8);
                ok &= get(&linker, c) == 16;
            } else {
                ok = false;
            }
            // SAFETY: a function of that C signature in a unit still loaded.
            ok &= unsafe { call::call_i64(b_get, &[]) }.ok() == Some(10);
            ok
        }));
        // SAFETY: a function of that C signature in a unit still loaded.
        let _ = unsafe { call::call_i64(quit, &[if ok.unwrap_or(false) { 0 } else { 1 }]) };
        unreachable!("_exit returned");
    }
    // Parent: unload b, load more; none of it may land on b's pieces (shared with the
    // child) or in the old chunk at all.
    linker.unload(b).expect("unload");
    let d = linker
        .load_with(&[obj("d.o", &bytes)], &inert)
        .expect("load");
    assert_ne!(sym(&linker, d, "set"), b_set);
    assert_eq!(linker.arena_stats().chunks, chunks + 1);
    set(&linker, d, 9);
    assert_eq!(
        // SAFETY: a function of that C signature in a unit still loaded.
        unsafe { call::call_i64(wait_status, &[pid]) }.expect("wait"),
        0,
        "the child saw its own units intact"
    );
    assert_eq!(get(&linker, d), 18);
    // SAFETY: a function of that C signature in a unit still loaded.
    assert_eq!(unsafe { call::call_i64(a_get, &[]) }.expect("call"), 42);
}

/// A stale pointer into an unloaded unit traps (`int3`, SIGTRAP) in both arena modes,
/// while another unit in the same pages keeps running: its freed text was filled with
/// 0xCC before the pool could hand it out again. With a mapping per unit the text is
/// unmapped (SIGSEGV). Each case runs in a process of its own (this test binary, asked
/// for the ignored scenario below), since the stale call kills it.
#[test]
fn a_stale_pointer_into_an_unloaded_unit_traps() {
    for (mode, signal) in [
        ("arena", libc::SIGTRAP),
        ("alias", libc::SIGTRAP),
        ("own", libc::SIGSEGV),
    ] {
        let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "arena::stale_pointer_scenario",
                "--include-ignored",
            ])
            .args(["--test-threads", "1", "--nocapture"])
            .env("JITCACHE_STALE_MODE", mode)
            .output()
            .expect("run the stale-pointer scenario");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(signal),
            "{mode}: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("calling the stale pointer"),
            "{mode}: {stdout}"
        );
        assert!(
            !stdout.contains("the stale call returned"),
            "{mode}: {stdout}"
        );
    }
}

#[test]
#[ignore = "run in a process of its own by a_stale_pointer_into_an_unloaded_unit_traps"]
fn stale_pointer_scenario() {
    let strategy = match std::env::var("JITCACHE_STALE_MODE").as_deref() {
        Ok("alias") => MemoryStrategy::ArenaSharedAlias,
        Ok("own") => MemoryStrategy::MappingPerUnit,
        _ => MemoryStrategy::Arena,
    };
    let bytes = small();
    let mut linker = Linker::with_memory(strategy);
    let before = load(&mut linker, &bytes);
    let stale = load(&mut linker, &bytes);
    let after = load(&mut linker, &bytes);
    let stale_get = sym(&linker, stale, "get");
    // SAFETY: a function of that C signature in a unit still loaded.
    assert_eq!(unsafe { call::call_i64(stale_get, &[]) }.expect("call"), 14);
    linker.unload(stale).expect("unload");
    // Its neighbours, on the same pages in the arena, still run.
    assert_eq!(get(&linker, before), 14);
    assert_eq!(get(&linker, after), 14);
    if strategy != MemoryStrategy::MappingPerUnit {
        assert_eq!(perms(stale_get), "r-xs", "still mapped, executable");
    }
    println!("calling the stale pointer");
    use std::io::Write;
    std::io::stdout().flush().expect("flush");
    // SAFETY: not sound on purpose: this child process calls into an unloaded unit to
    // show that the freed bytes trap; the parent only checks how the child ended.
    let result = unsafe { call::call_i64(stale_get, &[]) };
    println!("the stale call returned {result:?}");
}
