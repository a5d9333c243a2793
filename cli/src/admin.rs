//! The cache administration commands: `key`, `put`, `get`, `stats`, `ls`, `gc`, `verify`,
//! `clear`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use jitcache_remote::{Mode, Remote, RemoteConfig, RemoteStats, breaker_open_until};
use jitcache_store::{FlagOrder, GcOptions, Key, KeyBuilder, Store, StoreConfig};
use serde_json::json;

use super::progress::Bar;
use super::size::{format_size, parse_size};

/// Arguments of `jitcache key`.
#[derive(clap::Args, Debug)]
pub struct KeyArgs {
    /// The unit's namespace (its language or frontend: `lisp`, `c`, `jank`, ...).
    #[arg(long)]
    pub namespace: String,
    /// The unit's name.
    #[arg(long)]
    pub name: String,
    /// The unit's source or IR: a file, or `-` for standard input.
    #[arg(long, value_name = "FILE|-")]
    pub source: PathBuf,
    /// The backend's name.
    #[arg(long, default_value = "")]
    pub backend: String,
    /// The backend's version.
    #[arg(long, default_value = "")]
    pub backend_version: String,
    /// A compile flag; repeat for several. Order matters unless --unordered-flags is given.
    #[arg(long = "flag", value_name = "F", allow_hyphen_values = true)]
    pub flags: Vec<String>,
    /// Treat the flags as a set: sorted and deduplicated before hashing.
    #[arg(long)]
    pub unordered_flags: bool,
    /// The target (triple and CPU features).
    #[arg(long, default_value = "")]
    pub target: String,
    /// A dependency's key or interface hash, in hex; repeat for several.
    #[arg(long = "dep", value_name = "HEX")]
    pub deps: Vec<String>,
}

/// Arguments of `jitcache put`.
#[derive(clap::Args, Debug)]
pub struct PutArgs {
    /// The key, 64 hex digits.
    pub key: String,
    /// The file whose bytes are stored (`-` for standard input).
    pub file: PathBuf,
    /// A name recorded with the entry, shown by `ls`.
    #[arg(long)]
    pub name: Option<String>,
}

/// Arguments of `jitcache get`.
#[derive(clap::Args, Debug)]
pub struct GetArgs {
    /// The key, 64 hex digits.
    pub key: String,
    /// Write the bytes to this file instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Arguments of `jitcache gc`.
#[derive(clap::Args, Debug)]
pub struct GcArgs {
    /// Evict least recently used entries until the blobs take at most this much disk
    /// (`500K`, `5M`, `2G`). Without it, only orphaned blobs and stale temp files go.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_size: Option<u64>,
    /// First evict every entry of a foreign backend identity: one this machine has not
    /// used for 30 days, or not since a newer version of the same backend appeared
    /// (an old compiler, an old jitcache). A capped gc evicts those first anyway.
    #[arg(long)]
    pub prune_foreign: bool,
    /// Look for orphans in every blob file. Without it a run checks one sixteenth of
    /// them, the next slice in turn (after the index was rebuilt, all of them).
    #[arg(long)]
    pub full: bool,
}

/// Arguments of `jitcache max-size`.
#[derive(clap::Args, Debug)]
pub struct MaxSizeArgs {
    /// The new maximum (`500M`, `2G`), or `none` to remove it. Without it, the maximum in
    /// force is shown and where it comes from.
    #[arg(value_name = "SIZE|none")]
    pub size: Option<String>,
}

/// Arguments of `jitcache verify`.
#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// Evict damaged entries and remove orphaned blobs.
    #[arg(long)]
    pub repair: bool,
}

/// Reads a whole file, or standard input for `-`.
fn read_input(path: &Path) -> Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading standard input")?;
        Ok(bytes)
    } else {
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))
    }
}

fn parse_key(text: &str) -> Result<Key> {
    text.parse::<Key>().map_err(anyhow::Error::from)
}

fn parse_hex(text: &str) -> Result<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        anyhow::bail!("invalid dependency hash {text:?}: expected an even number of hex digits");
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(anyhow::Error::from))
        .collect()
}

/// Opens the store at `dir` with the default configuration.
pub fn open_store(dir: &Path) -> Result<Store> {
    Ok(Store::open(dir, StoreConfig::default())?)
}

/// `jitcache key`: prints the key of the given parts as 64 hex digits.
pub fn key(args: &KeyArgs, json: bool) -> Result<ExitCode> {
    let source = read_input(&args.source)?;
    let mut builder = KeyBuilder::new(&args.namespace, &args.name);
    let order = if args.unordered_flags {
        FlagOrder::Unordered
    } else {
        FlagOrder::Ordered
    };
    builder
        .unit(&source)
        .backend(&args.backend, &args.backend_version)
        .flags(&args.flags, order)
        .target(&args.target);
    for dep in &args.deps {
        builder.dep(&parse_hex(dep)?);
    }
    let key = builder.build();
    if json {
        println!("{}", json!({ "key": key.to_string() }));
    } else {
        println!("{key}");
    }
    Ok(ExitCode::SUCCESS)
}

/// What became of `put`'s upload to the remote tier.
enum Upload {
    /// Sent and stored.
    Uploaded,
    /// The remote had an object for the key already (create-only uploads leave it).
    Existed,
    /// Not attempted: the remote is read-only (`mode=ro`).
    ReadOnly,
    /// Not made; why.
    Failed(String),
}

impl Upload {
    /// The `upload` field of `put`'s JSON report.
    fn name(&self) -> &'static str {
        match self {
            Upload::Uploaded => "uploaded",
            Upload::Existed => "existed",
            Upload::ReadOnly => "read-only",
            Upload::Failed(_) => "failed",
        }
    }
}

/// How long `put` waits for its upload: the two calls it makes (a HEAD, then the
/// write), each bounded by the remote's deadline, and a second to spare.
fn upload_wait(config: &RemoteConfig) -> Duration {
    config
        .limits
        .deadline()
        .saturating_mul(2)
        .saturating_add(Duration::from_secs(1))
}

/// Uploads `bytes` under `key` to the remote of `config` and waits for the outcome,
/// at most [`upload_wait`].
fn upload(
    store: &Arc<Store>,
    mut config: RemoteConfig,
    key: &Key,
    name: &str,
    bytes: &[u8],
) -> Upload {
    if config.mode == Mode::ReadOnly {
        return Upload::ReadOnly;
    }
    let wait = upload_wait(&config);
    // This process waits here, so dropping the remote need not wait again.
    config.drain_timeout = Duration::ZERO;
    let remote = match Remote::connect(config, Some(Arc::clone(store))) {
        Ok(remote) => remote,
        Err(err) => return Upload::Failed(err.to_string()),
    };
    remote.upload(key, name, bytes);
    let finished = remote.drain(wait);
    let s = remote.stats();
    if s.uploads > 0 {
        Upload::Uploaded
    } else if s.uploads_existing > 0 {
        Upload::Existed
    } else if !finished {
        Upload::Failed(format!("no answer within {} s", wait.as_secs()))
    } else if s.breaker_skips > 0 {
        Upload::Failed("skipped: the circuit breaker is open after repeated failures".to_owned())
    } else if s.timeouts > 0 {
        Upload::Failed("the remote timed out".to_owned())
    } else {
        Upload::Failed("the request failed".to_owned())
    }
}

/// `jitcache put`: stores a file's bytes under a key, then uploads them to the remote
/// tier when there is a read-write one, waiting a bounded time for the upload. A failed
/// upload is a warning: the entry is stored locally, the local store being the source of
/// truth.
pub fn put(
    dir: &Path,
    args: &PutArgs,
    remote: Option<RemoteConfig>,
    json: bool,
) -> Result<ExitCode> {
    let key = parse_key(&args.key)?;
    let bytes = read_input(&args.file)?;
    let store = Arc::new(open_store(dir)?);
    let meta = jitcache_store::EntryMeta {
        name: args.name.clone(),
        components: None,
    };
    store.put_with(&key, &bytes, &meta)?;
    // The remote's URL and what became of the upload.
    let sent = remote.map(|config| {
        let url = config.url.clone();
        let name = args.name.as_deref().unwrap_or_default();
        (url, upload(&store, config, &key, name, &bytes))
    });
    store.flush()?;
    if let Some((url, Upload::Failed(why))) = &sent {
        eprintln!("jitcache: warning: remote {url}: {key} not uploaded ({why}); stored locally");
    }
    if json {
        let remote = sent
            .as_ref()
            .map(|(url, outcome)| json!({ "url": url, "upload": outcome.name() }));
        println!(
            "{}",
            json!({ "key": key.to_string(), "bytes": bytes.len(), "remote": remote })
        );
    } else {
        let remote = match &sent {
            None => String::new(),
            Some((url, Upload::Uploaded)) => format!("; uploaded to {url}"),
            Some((url, Upload::Existed)) => format!("; {url} has it already"),
            Some((url, Upload::ReadOnly)) => {
                format!("; not uploaded: {url} is read-only (mode=ro)")
            }
            Some((_, Upload::Failed(_))) => "; not uploaded".to_owned(),
        };
        println!(
            "stored {} under {key}{remote}",
            format_size(bytes.len() as u64)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `jitcache get`: writes the bytes stored under a key, from the local store, else from
/// the remote tier (a verified remote hit is kept in the local store); exit status 1 on a
/// miss.
pub fn get(dir: &Path, args: &GetArgs, remote: Option<RemoteConfig>) -> Result<ExitCode> {
    let key = parse_key(&args.key)?;
    let store = Arc::new(open_store(dir)?);
    let mut found = store.get(&key)?;
    let asked_remote = found.is_none() && remote.is_some();
    if let Some(config) = remote.filter(|_| found.is_none()) {
        found = fetch(&store, config, &key);
    }
    store.flush()?;
    let Some(bytes) = found else {
        let where_ = if asked_remote {
            " (locally or in the remote)"
        } else {
            ""
        };
        eprintln!("jitcache: no entry for {key}{where_}");
        return Ok(ExitCode::from(1));
    };
    match &args.output {
        Some(path) => {
            std::fs::write(path, &bytes).with_context(|| format!("writing {}", path.display()))?
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes).context("writing standard output")?;
            out.flush().context("writing standard output")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `key` from the remote of `config`, verified, and kept in `store` (a failure to keep
/// it is a warning: the bytes are still returned).
fn fetch(store: &Arc<Store>, config: RemoteConfig, key: &Key) -> Option<Vec<u8>> {
    let remote = match Remote::connect(config, Some(Arc::clone(store))) {
        Ok(remote) => remote,
        Err(err) => {
            eprintln!("jitcache: warning: {err}; going on without the remote");
            return None;
        }
    };
    let fetched = remote.get(key)?;
    let meta = jitcache_store::EntryMeta {
        name: (!fetched.name.is_empty()).then(|| fetched.name.clone()),
        components: None,
    };
    if let Err(err) = store.put_with(key, &fetched.bytes, &meta) {
        eprintln!("jitcache: warning: keeping the remote object in the local store: {err}");
    }
    Some(fetched.bytes)
}

/// `jitcache stats`: what the cache holds and how it has been used, and the remote
/// tier's counters summed over every process that used it with this cache.
pub fn stats(dir: &Path, remote: Option<&RemoteConfig>, json: bool) -> Result<ExitCode> {
    let store = open_store(dir)?;
    let s = store.stats()?;
    let r = RemoteStats::load(&store)?;
    let m = jitcache::ManifestCounts::load(&store)?;
    let breaker = remote.and_then(|config| breaker_open_until(&store, config));
    let breaker_secs = breaker.map(|until| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        (until - now).max(0) as f64 / 1e3
    });
    if json {
        println!(
            "{}",
            json!({
                "cache_dir": store.root().display().to_string(),
                "entries": s.entries,
                "blobs": s.blobs,
                "bytes_uncompressed": s.bytes_uncompressed,
                "bytes_on_disk": s.bytes_on_disk,
                "hits": s.hits,
                "misses": s.misses,
                "evictions": s.evictions,
                "corrupt": s.corrupt,
                "manifest_hits": m.hits,
                "manifest_misses": m.misses,
                "remote": remote.map(|c| c.url.clone()),
                "remote_mode": remote.map(|c| c.mode.to_string()),
                "remote_signed": remote.map(|c| c.secret.is_some()),
                "remote_breaker_open_s": breaker_secs,
                "remote_counters": super::run::remote_json(&r),
            })
        );
    } else {
        println!("cache directory     {}", store.root().display());
        println!("entries             {}", s.entries);
        println!("blobs               {}", s.blobs);
        println!("bytes uncompressed  {}", format_size(s.bytes_uncompressed));
        println!("bytes on disk       {}", format_size(s.bytes_on_disk));
        println!("hits                {}", s.hits);
        println!("misses              {}", s.misses);
        println!("evictions           {}", s.evictions);
        println!("corrupt blobs found {}", s.corrupt);
        println!(
            "manifest hits       {} (units whose headers were unchanged; {} misses)",
            m.hits, m.misses
        );
        if let Some(config) = remote {
            let signed = if config.secret.is_some() {
                ", signed"
            } else {
                ""
            };
            println!(
                "remote              {} ({}{signed})",
                config.url, config.mode
            );
            match breaker_secs {
                Some(secs) => println!("remote breaker      open, {secs:.0} s left"),
                None => println!("remote breaker      closed"),
            }
        }
        if remote.is_some() || r != RemoteStats::default() {
            println!(
                "remote hits         {} ({} down)",
                r.hits,
                format_size(r.bytes_down)
            );
            println!(
                "remote misses       {} ({} errors, {} timeouts, {} rejected, {} skipped by the breaker)",
                r.misses, r.errors, r.timeouts, r.rejected, r.breaker_skips
            );
            println!(
                "remote uploads      {} ({} up, {} already there, {} dropped)",
                r.uploads,
                format_size(r.bytes_up),
                r.uploads_existing,
                r.uploads_dropped
            );
            println!("remote breaker opens {}", r.breaker_opens);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `jitcache ls`: one line per entry, streamed so memory stays flat.
pub fn ls(dir: &Path, json: bool) -> Result<ExitCode> {
    let store = open_store(dir)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut write_error = None;
    store.for_each_entry(|entry| {
        let line = if json {
            json!({
                "key": entry.key.to_string(),
                "name": entry.name,
                "size": entry.size,
                "stored_size": entry.stored_size,
                "blob": entry.blob.to_string(),
                "created": entry.created,
                "last_access": entry.last_access,
            })
            .to_string()
        } else {
            format!(
                "{}  {:>10}  {}",
                entry.key,
                format_size(entry.size),
                entry.name.as_deref().unwrap_or("-")
            )
        };
        match writeln!(out, "{line}") {
            Ok(()) => true,
            Err(err) => {
                write_error = Some(err);
                false
            }
        }
    })?;
    if let Some(err) = write_error
        && err.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(err).context("writing standard output");
    }
    let _ = out.flush();
    Ok(ExitCode::SUCCESS)
}

/// `jitcache gc`: evicts least recently used entries down to a size, removes orphans.
pub fn gc(dir: &Path, args: &GcArgs, json: bool) -> Result<ExitCode> {
    let store = open_store(dir)?;
    let bar = Bar::new("gc", !json);
    let opts = GcOptions {
        max_size: args.max_size,
        full_orphan_walk: args.full,
        ..GcOptions::default()
    };
    let pruned = if args.prune_foreign {
        store.prune_foreign(&bar)?.evicted_entries
    } else {
        0
    };
    let mut report = store.gc(&opts, &bar)?;
    report.evicted_entries += pruned;
    if json {
        println!(
            "{}",
            json!({
                "evicted_entries": report.evicted_entries,
                "removed_blobs": report.removed_blobs,
                "removed_orphans": report.removed_orphans,
                "full_orphan_walk": report.full_orphan_walk,
                "freed_bytes": report.freed_bytes,
                "bytes_on_disk": report.bytes_on_disk,
            })
        );
    } else {
        println!(
            "evicted {} entries, removed {} blobs ({} orphaned), freed {}; {} on disk",
            report.evicted_entries,
            report.removed_blobs,
            report.removed_orphans,
            format_size(report.freed_bytes),
            format_size(report.bytes_on_disk)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `jitcache verify`: checks every blob; exit status 1 if anything is damaged.
pub fn verify(dir: &Path, args: &VerifyArgs, json: bool) -> Result<ExitCode> {
    let store = open_store(dir)?;
    let bar = Bar::new("verify", !json);
    let report = store.verify(args.repair, &bar)?;
    let damaged = !report.is_clean();
    if json {
        println!(
            "{}",
            json!({
                "checked_entries": report.checked_entries,
                "checked_blobs": report.checked_blobs,
                "damaged_entries": report.damaged_entries,
                "orphaned_blobs": report.orphaned_blobs,
                "stale_tmp": report.stale_tmp,
                "damaged": report.damaged.iter().map(|d| json!({
                    "blob": d.blob.to_string(),
                    "path": d.path.display().to_string(),
                    "damage": d.damage.to_string(),
                })).collect::<Vec<_>>(),
                "index_problems": report.index_problems,
                "repaired": args.repair,
                "clean": !damaged,
            })
        );
    } else {
        for d in &report.damaged {
            println!("damaged: {} ({})", d.path.display(), d.damage);
        }
        for problem in &report.index_problems {
            println!("index: {problem}");
        }
        println!(
            "checked {} entries and {} blobs: {} damaged entries, {} orphaned blobs{}",
            report.checked_entries,
            report.checked_blobs,
            report.damaged_entries,
            report.orphaned_blobs,
            if args.repair && damaged {
                " (repaired)"
            } else {
                ""
            }
        );
    }
    Ok(if damaged {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `jitcache max-size`: shows or changes the cache's own maximum size. Every process
/// using the cache trims it to that size in the background (at most once per
/// interval across processes); `JITCACHE_MAX_SIZE` overrides it.
pub fn max_size(dir: &Path, args: &MaxSizeArgs, json: bool) -> Result<ExitCode> {
    let store = open_store(dir)?;
    if let Some(text) = &args.size {
        let new = if text.eq_ignore_ascii_case("none") {
            None
        } else {
            Some(parse_size(text).map_err(anyhow::Error::msg)?)
        };
        store.set_max_size_setting(new)?;
    }
    let setting = store.max_size_setting()?;
    let in_force = store.max_size()?;
    let from_env = in_force.is_some() && in_force != setting;
    if json {
        println!(
            "{}",
            json!({
                "setting": setting,
                "in_force": in_force,
                "from": if from_env { jitcache_store::MAX_SIZE_ENV } else { "cache" },
            })
        );
    } else {
        match (setting, in_force) {
            (_, Some(max)) if from_env => println!(
                "max size {} (from {}; the cache's setting is {})",
                format_size(max),
                jitcache_store::MAX_SIZE_ENV,
                setting.map_or_else(|| "none".to_owned(), format_size)
            ),
            (Some(max), _) => println!("max size {}", format_size(max)),
            (None, _) => {
                println!("max size none (the cache is only trimmed by `jitcache gc --max-size`)")
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `jitcache clear`: removes every entry and blob.
pub fn clear(dir: &Path, json: bool) -> Result<ExitCode> {
    let store = open_store(dir)?;
    store.clear()?;
    if json {
        println!("{}", json!({ "cleared": true }));
    } else {
        println!("cleared {}", store.root().display());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_deps_parse_and_reject() {
        assert_eq!(parse_hex("00ff10").unwrap(), vec![0, 255, 16]);
        assert!(parse_hex("abc").is_err());
        assert!(parse_hex("zz").is_err());
    }
}
