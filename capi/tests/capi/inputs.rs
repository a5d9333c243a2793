//! A callback backend that reports the files its compiles read (`hosts/inputs_host.c`):
//! each unit is keyed by those files' contents from then on.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::support::{Link, build_host, run, scratch, stats, success};

/// What one run of the host printed.
#[derive(Debug)]
struct Run {
    /// Unit name → `compiled: reason`, `disk` or `memory`.
    origin: BTreeMap<String, String>,
    /// Unit name → the value its function returned.
    value: BTreeMap<String, i64>,
    /// How many times the compile callback ran.
    callbacks: u64,
    stdout: String,
}

fn parse(stdout: String) -> Run {
    let mut origin = BTreeMap::new();
    let mut value = BTreeMap::new();
    let mut callbacks = None;
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("unit ") {
            let (name, from) = rest.split_once(' ').expect("unit <name> <origin>");
            origin.insert(name.to_owned(), from.to_owned());
        } else if let Some(rest) = line.strip_prefix("value ") {
            let (name, v) = rest.split_once('=').expect("value <name>=<n>");
            value.insert(name.to_owned(), v.parse().expect("a number"));
        } else if let Some(rest) = line.strip_prefix("callbacks=") {
            let n = rest.split_whitespace().next().expect("a count");
            callbacks = Some(n.parse().expect("a number"));
        }
    }
    Run {
        origin,
        value,
        callbacks: callbacks.unwrap_or_else(|| panic!("no callbacks= line in:\n{stdout}")),
        stdout,
    }
}

/// Writes a file, then waits past the cache's margin for files modified just before a
/// compile started (which it does not store: it may have read a mix of versions).
fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
    std::thread::sleep(Duration::from_millis(100));
}

/// Asserts which units the run compiled; every other one (but `stamped`, which uses
/// `__TIME__` and is never stored) came from the cache.
fn assert_compiled(run: &Run, compiled: &[&str]) {
    for (name, from) in &run.origin {
        let expected = name == "stamped" || compiled.contains(&name.as_str());
        if expected {
            assert!(from.starts_with("compiled"), "{name}: {}", run.stdout);
        } else {
            assert_eq!(from, "disk", "{name}: {}", run.stdout);
        }
    }
    assert_eq!(run.origin.len(), 4, "{}", run.stdout);
    // The host asks for `stamped` twice, and it compiles both times; `config` twice, the
    // second time from memory.
    let n = compiled.len() as u64 + 2;
    let stats = stats(&run.stdout);
    assert_eq!(run.callbacks, n, "{}", run.stdout);
    assert_eq!(stats.compiles, n, "{}", run.stdout);
    assert_eq!(stats.misses, n, "{}", run.stdout);
    assert_eq!(stats.disk_hits, 5 - n, "{}", run.stdout);
    assert_eq!(stats.memory_hits, 1, "{}", run.stdout);
}

#[test]
fn callback_reporting_a_header_recompiles_exactly_the_unit_that_read_it() {
    let exe = build_host("inputs_host.c", "cc", "-std=c11", Link::Shared);
    let tmp = scratch("inputs");
    let dir = tmp.path();
    let cache = dir.join("cache");
    let project = dir.join("project");
    let config = project.join("include/config.h");
    let original = "#define CONFIG_VALUE 1\n";
    write(&config, original);
    write(&project.join("include/other.h"), "#define OTHER_VALUE 2\n");
    let host = || {
        parse(success(
            "inputs_host",
            &run(&exe, &[&cache, &project, &"cc"], &[]),
        ))
    };

    // Cold: everything compiles; the callback saw the path it was given.
    let cold = host();
    assert_compiled(&cold, &["config", "other", "plain"]);
    assert_eq!(
        cold.origin["config"], "compiled: new unit",
        "{}",
        cold.stdout
    );
    assert!(
        cold.stdout.contains("path plain=gen/plain.c"),
        "{}",
        cold.stdout
    );
    assert_eq!(cold.value["config"], 1);
    assert_eq!(cold.value["stamped"], 9);

    // A new process: everything from the cache, but the unit marked uncacheable.
    let warm = host();
    assert_compiled(&warm, &[]);
    assert_eq!(warm.value["config"], 1);

    // New bytes in config.h: exactly the unit that read it misses, and says why.
    write(&config, "#define CONFIG_VALUE 10\n");
    let changed = host();
    assert_compiled(&changed, &["config"]);
    assert!(
        changed.origin["config"].contains("include/config.h"),
        "{}",
        changed.stdout
    );
    assert_eq!(changed.value["config"], 10);

    // Rewritten with the same bytes (new times): a hit.
    write(&config, "#define CONFIG_VALUE 10\n");
    let touched = host();
    assert_compiled(&touched, &[]);
    assert_eq!(touched.value["config"], 10);

    // The old bytes back: the first compile's object, from the cache.
    write(&config, original);
    let restored = host();
    assert_compiled(&restored, &[]);
    assert_eq!(restored.value["config"], 1);

    // A header that shadows config.h (an absent path the callback reported) appears:
    // the entry that held a moment ago (include/config.h is unchanged) no longer does,
    // so that unit compiles again and reads it. (The miss reason is about the newest
    // entry, the one for CONFIG_VALUE 10.) Gone again, the old object holds.
    let shadow = project.join("override/config.h");
    write(&shadow, "#define CONFIG_VALUE 100\n");
    let shadowed = host();
    assert_compiled(&shadowed, &["config"]);
    assert_eq!(shadowed.value["config"], 100);
    std::fs::remove_file(&shadow).expect("remove the shadowing header");
    let unshadowed = host();
    assert_compiled(&unshadowed, &[]);
    assert_eq!(unshadowed.value["config"], 1);
}
