//! A callback backend that reports the files its compiles read (`hosts/inputs_host.c`):
//! each unit is keyed by those files' contents from then on.

use crate::support::{Link, Units, build_host, run, scratch, stats, success, units, write_input};

/// What one run of the host printed.
struct Run {
    units: Units,
    /// How many times the compile callback ran.
    callbacks: u64,
}

impl std::ops::Deref for Run {
    type Target = Units;
    fn deref(&self) -> &Units {
        &self.units
    }
}

fn parse(stdout: String) -> Run {
    let callbacks = stdout
        .lines()
        .find_map(|l| l.strip_prefix("callbacks="))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no callbacks= line in:\n{stdout}"));
    Run {
        units: units(stdout),
        callbacks,
    }
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
    write_input(&config, original);
    write_input(&project.join("include/other.h"), "#define OTHER_VALUE 2\n");
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
    write_input(&config, "#define CONFIG_VALUE 10\n");
    let changed = host();
    assert_compiled(&changed, &["config"]);
    assert!(
        changed.origin["config"].contains("include/config.h"),
        "{}",
        changed.stdout
    );
    assert_eq!(changed.value["config"], 10);

    // Rewritten with the same bytes (new times): a hit.
    write_input(&config, "#define CONFIG_VALUE 10\n");
    let touched = host();
    assert_compiled(&touched, &[]);
    assert_eq!(touched.value["config"], 10);

    // The old bytes back: the first compile's object, from the cache.
    write_input(&config, original);
    let restored = host();
    assert_compiled(&restored, &[]);
    assert_eq!(restored.value["config"], 1);

    // A header that shadows config.h (an absent path the callback reported) appears:
    // the entry that held a moment ago (include/config.h is unchanged) no longer does,
    // so that unit compiles again and reads it. (The miss reason is about the newest
    // entry, the one for CONFIG_VALUE 10.) Gone again, the old object holds.
    let shadow = project.join("override/config.h");
    write_input(&shadow, "#define CONFIG_VALUE 100\n");
    let shadowed = host();
    assert_compiled(&shadowed, &["config"]);
    assert_eq!(shadowed.value["config"], 100);
    std::fs::remove_file(&shadow).expect("remove the shadowing header");
    let unshadowed = host();
    assert_compiled(&unshadowed, &[]);
    assert_eq!(unshadowed.value["config"], 1);
}
