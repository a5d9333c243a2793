//! [`Remote`]: the remote tier as the cache sees it. Lookups return verified bytes or
//! nothing; uploads are queued; every failure is counted, warned about once, and fed to
//! the circuit breaker.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jitcache_store::sync::lock;
use jitcache_store::{Key, Store};

use crate::breaker::{Breaker, now_ms};
use crate::config::{Mode, RemoteConfig};
use crate::counters::{Counter, Counters, RemoteStats};
use crate::envelope::{self, MacKey};
use crate::error::Error;
use crate::object_store::{Failure, ObjectStore, Put};
use crate::upload::{Job, Uploader};

/// Keys looked up per round in [`Remote::get_many`]; the breaker is consulted between
/// rounds, so a dead server costs one round of failures, not one per key.
const ROUND: usize = 32;

/// How often counters are added to the local index while the remote is in use (they
/// are also added when it is dropped).
const PERSIST_EVERY: Duration = Duration::from_secs(5);

/// An object fetched from the remote and verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// The object bytes: they matched their BLAKE3 hash (and signature, when required).
    pub bytes: Vec<u8>,
    /// The entry name the uploader recorded (`lisp/fib`, `pack`; may be empty).
    pub name: String,
}

/// What the upload thread shares with the caller's side.
pub(crate) struct Inner {
    pub config: RemoteConfig,
    store: Arc<dyn ObjectStore>,
    mac: Option<MacKey>,
    pub counters: Counters,
    breaker: Breaker,
    local: Option<Arc<Store>>,
    last_persist: Mutex<Instant>,
    warned_failure: AtomicBool,
    warned_rejection: AtomicBool,
    warned_breaker: AtomicBool,
}

/// The remote tier: a bucket of verified, optionally signed objects, one per cache key.
///
/// Lookups ([`Remote::get`], [`Remote::get_many`]) never fail: an absent, corrupt,
/// unsigned or wrongly signed object, an error or a timeout is a miss, counted in
/// [`Remote::stats`] and warned about once on stderr. Uploads ([`Remote::upload`]) go
/// through a bounded background queue; dropping the `Remote` waits at most
/// [`RemoteConfig::drain_timeout`] for them.
///
/// ```no_run
/// use std::sync::Arc;
/// use jitcache_remote::{Remote, RemoteConfig};
/// use jitcache_store::{Key, Store, StoreConfig};
///
/// let local = Arc::new(Store::open("/tmp/jit-cache", StoreConfig::default())?);
/// let config = RemoteConfig::from_env("s3://jit-cache/fleet?endpoint=http://127.0.0.1:8333&mode=rw")?;
/// let remote = Remote::connect(config, Some(Arc::clone(&local)))?;
/// let key = Key::from_bytes([7; 32]);
/// match remote.get(&key) {
///     Some(fetched) => local.put(&key, &fetched.bytes)?,
///     None => remote.upload(&key, "demo", b"compiled object"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Remote {
    inner: Arc<Inner>,
    uploader: Option<Uploader>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("url", &self.inner.config.url)
            .field("mode", &self.inner.config.mode)
            .field("signed", &self.inner.mac.is_some())
            .finish_non_exhaustive()
    }
}

/// The object path of `key` under the remote's prefix.
pub fn object_path(key: &Key) -> String {
    format!("v{}/{key}", envelope::FORMAT_VERSION)
}

impl Remote {
    /// Sets up the S3 client for `config`. `local` is the local cache, where the breaker's
    /// state and the counters are shared with other processes (without it they stay in
    /// this process). Makes no request.
    pub fn connect(config: RemoteConfig, local: Option<Arc<Store>>) -> Result<Remote, Error> {
        #[cfg(feature = "s3")]
        {
            let store = crate::s3::S3Store::new(&config)?;
            Ok(Remote::with_object_store(config, Arc::new(store), local))
        }
        #[cfg(not(feature = "s3"))]
        {
            let _ = local;
            Err(Error::Client {
                url: config.url,
                message: "this build has no S3 client (the s3 feature is off)".to_owned(),
            })
        }
    }

    /// A remote on any [`ObjectStore`] (a [`crate::MemoryStore`] in tests).
    pub fn with_object_store(
        config: RemoteConfig,
        store: Arc<dyn ObjectStore>,
        local: Option<Arc<Store>>,
    ) -> Remote {
        let inner = Arc::new(Inner {
            mac: config.secret.as_ref().map(MacKey::derive),
            breaker: Breaker::new(&config, local.clone()),
            store,
            counters: Counters::default(),
            local,
            last_persist: Mutex::new(Instant::now()),
            warned_failure: AtomicBool::new(false),
            warned_rejection: AtomicBool::new(false),
            warned_breaker: AtomicBool::new(false),
            config,
        });
        let uploader = (inner.config.mode == Mode::ReadWrite)
            .then(|| Uploader::start(Arc::clone(&inner), inner.config.upload_queue))
            .flatten();
        Remote { inner, uploader }
    }

    /// The configuration.
    pub fn config(&self) -> &RemoteConfig {
        &self.inner.config
    }

    /// Whether uploads are made (`mode=rw`).
    pub fn is_writable(&self) -> bool {
        self.uploader.is_some()
    }

    /// The verified object stored for `key`, or `None` (a miss, whatever the reason).
    pub fn get(&self, key: &Key) -> Option<Fetched> {
        self.get_many(std::slice::from_ref(key)).pop().flatten()
    }

    /// [`Remote::get`] of several keys, fetched concurrently; one answer per key, in order.
    pub fn get_many(&self, keys: &[Key]) -> Vec<Option<Fetched>> {
        let inner = &self.inner;
        let mut out = Vec::with_capacity(keys.len());
        for round in keys.chunks(ROUND) {
            if !inner.allowed() {
                let n = round.len() as u64;
                inner.counters.add(Counter::BreakerSkips, n);
                inner.counters.add(Counter::Misses, n);
                out.extend(round.iter().map(|_| None));
                continue;
            }
            let paths: Vec<String> = round.iter().map(object_path).collect();
            let answers = inner.store.get_many(&paths);
            for (key, answer) in round.iter().zip(answers) {
                out.push(inner.accept(key, answer));
            }
        }
        inner.maybe_persist();
        out
    }

    /// Queues an upload of `bytes` stored under `key` (with the entry name `name`).
    /// Does nothing on a read-only remote; a full queue drops it (counted).
    pub fn upload(&self, key: &Key, name: &str, bytes: &[u8]) {
        if let Some(uploader) = &self.uploader {
            uploader.enqueue(Job {
                key: *key,
                name: name.to_owned(),
                bytes: bytes.to_vec(),
            });
        }
    }

    /// Waits at most `timeout` for queued uploads to finish; true when none is left.
    pub fn drain(&self, timeout: Duration) -> bool {
        self.uploader.as_ref().is_none_or(|u| u.drain(timeout))
    }

    /// This process's counters.
    pub fn stats(&self) -> RemoteStats {
        self.inner.counters.snapshot()
    }

    /// Adds the counters not yet persisted to the local cache's (also done every few
    /// seconds of use, and on drop).
    pub fn persist_counters(&self) {
        self.inner.persist();
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        if let Some(mut uploader) = self.uploader.take() {
            uploader.close(self.inner.config.drain_timeout);
        }
        self.inner.persist();
    }
}

impl Inner {
    /// Whether the breaker lets a call through now; warns once when it does not.
    fn allowed(&self) -> bool {
        if self.breaker.allows(now_ms()) {
            return true;
        }
        self.warn_breaker();
        false
    }

    /// Turns one answer of the object store into a verified object or a counted miss.
    fn accept(&self, key: &Key, answer: Result<Option<Vec<u8>>, Failure>) -> Option<Fetched> {
        let c = &self.counters;
        let envelope = match answer {
            Ok(Some(envelope)) => envelope,
            Ok(None) => {
                self.breaker.succeeded();
                c.bump(Counter::Misses);
                return None;
            }
            Err(failure) => {
                c.bump(Counter::Misses);
                self.failed(&failure);
                return None;
            }
        };
        self.breaker.succeeded();
        c.add(Counter::BytesDown, envelope.len() as u64);
        let max = self.config.max_object_size;
        match envelope::open(&envelope, key, self.mac.as_ref(), max) {
            Ok(opened) => {
                c.bump(Counter::Hits);
                Some(Fetched {
                    bytes: opened.bytes,
                    name: opened.name,
                })
            }
            Err(rejection) => {
                c.bump(Counter::Rejected);
                c.bump(Counter::Misses);
                if !self.warned_rejection.swap(true, Ordering::Relaxed) {
                    eprintln!(
                        "jitcache: warning: remote {}: rejected the object for {key}: {rejection}; compiling instead",
                        self.config.url
                    );
                }
                None
            }
        }
    }

    /// Counts a failed call, feeds the breaker, warns once.
    fn failed(&self, failure: &Failure) {
        let c = &self.counters;
        match failure {
            Failure::Timeout(_) => c.bump(Counter::Timeouts),
            Failure::Denied(_) | Failure::Other(_) => c.bump(Counter::Errors),
        }
        if !self.warned_failure.swap(true, Ordering::Relaxed) {
            eprintln!(
                "jitcache: warning: remote {}: {failure}; going on without it",
                self.config.url
            );
        }
        if self.breaker.failed(now_ms()) {
            c.bump(Counter::BreakerOpens);
            self.warn_breaker();
        }
    }

    fn warn_breaker(&self) {
        if !self.warned_breaker.swap(true, Ordering::Relaxed) {
            eprintln!(
                "jitcache: warning: remote {}: skipping it for {} s after {} failures in a row",
                self.config.url,
                self.config.breaker.cooldown.as_secs(),
                self.config.breaker.threshold
            );
        }
    }

    /// Uploads jobs now (on the upload thread), concurrently.
    pub(crate) fn upload_now(&self, jobs: Vec<Job>) {
        let c = &self.counters;
        if !self.allowed() {
            c.add(Counter::UploadsDropped, jobs.len() as u64);
            c.add(Counter::BreakerSkips, jobs.len() as u64);
            return;
        }
        let objects: Vec<(String, Vec<u8>)> = jobs
            .iter()
            .map(|job| {
                let sealed = envelope::seal(&job.key, &job.name, &job.bytes, self.mac.as_ref());
                (object_path(&job.key), sealed)
            })
            .collect();
        let sizes: Vec<u64> = objects.iter().map(|(_, b)| b.len() as u64).collect();
        for (result, size) in self.store.put_many(objects).into_iter().zip(sizes) {
            match result {
                Ok(Put::Created) => {
                    self.breaker.succeeded();
                    c.bump(Counter::Uploads);
                    c.add(Counter::BytesUp, size);
                }
                Ok(Put::Existed) => {
                    self.breaker.succeeded();
                    c.bump(Counter::UploadsExisting);
                }
                Err(failure) => {
                    c.bump(Counter::UploadsDropped);
                    self.failed(&failure);
                }
            }
        }
        self.maybe_persist();
    }

    fn maybe_persist(&self) {
        let due = {
            let mut last = lock(&self.last_persist);
            let due = last.elapsed() >= PERSIST_EVERY;
            if due {
                *last = Instant::now();
            }
            due
        };
        if due {
            self.persist();
        }
    }

    fn persist(&self) {
        if let Some(local) = &self.local {
            // Losing a few counts is better than failing anything.
            let _ = self.counters.persist(local);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::object_store::MemoryStore;
    use jitcache_store::StoreConfig;

    fn config(mode: &str) -> RemoteConfig {
        RemoteConfig::parse(&format!("s3://bucket/p?mode={mode}")).unwrap()
    }

    fn key(n: u8) -> Key {
        Key::from_bytes([n; 32])
    }

    fn local() -> (tempfile::TempDir, Arc<Store>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), StoreConfig::default()).unwrap());
        (dir, store)
    }

    #[test]
    fn what_one_uploads_another_reads_verified() {
        let objects = Arc::new(MemoryStore::new());
        let writer = Remote::with_object_store(config("rw"), objects.clone(), None);
        assert!(writer.is_writable());
        writer.upload(&key(1), "lisp/f", b"object one");
        writer.upload(&key(2), "lisp/g", b"object two");
        assert!(writer.drain(Duration::from_secs(10)));
        writer.upload(&key(1), "lisp/f", b"object one");
        assert!(writer.drain(Duration::from_secs(10)));
        let w = writer.stats();
        assert_eq!(
            (w.uploads, w.uploads_existing, w.uploads_dropped),
            (2, 1, 0)
        );
        assert!(w.bytes_up > 0);
        assert_eq!(
            objects.paths(),
            [object_path(&key(1)), object_path(&key(2))]
        );

        let reader = Remote::with_object_store(config("ro"), objects.clone(), None);
        assert!(!reader.is_writable());
        let got = reader.get_many(&[key(2), key(3), key(1)]);
        assert_eq!(
            got[0].as_ref().map(|f| f.bytes.as_slice()),
            Some(&b"object two"[..])
        );
        assert_eq!(got[0].as_ref().map(|f| f.name.as_str()), Some("lisp/g"));
        assert_eq!(got[1], None);
        assert_eq!(
            got[2].as_ref().map(|f| f.bytes.as_slice()),
            Some(&b"object one"[..])
        );
        let r = reader.stats();
        assert_eq!((r.hits, r.misses, r.errors, r.rejected), (2, 1, 0, 0));

        // A read-only remote never uploads.
        reader.upload(&key(4), "x", b"nope");
        assert!(reader.drain(Duration::from_secs(1)));
        assert_eq!(objects.peek(&object_path(&key(4))), None);
    }

    #[test]
    fn damaged_misplaced_and_unsigned_objects_are_counted_misses() {
        let objects = Arc::new(MemoryStore::new());
        let mut damaged = envelope::seal(&key(1), "", b"some object bytes", None);
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        objects.plant(&object_path(&key(1)), damaged);
        objects.plant(
            &object_path(&key(2)),
            envelope::seal(&key(9), "", b"another key's object", None),
        );
        objects.plant(&object_path(&key(3)), b"not an envelope".to_vec());
        let reader = Remote::with_object_store(config("ro"), objects.clone(), None);
        assert_eq!(
            reader.get_many(&[key(1), key(2), key(3)]),
            [None, None, None]
        );
        assert_eq!((reader.stats().rejected, reader.stats().misses), (3, 3));

        // With a secret, unsigned and wrongly signed objects are rejected; signed ones pass.
        let mut signed = config("ro");
        signed.secret = Secret::new("fleet");
        let good = MacKey::derive(&Secret::new("fleet").unwrap());
        let bad = MacKey::derive(&Secret::new("intruder").unwrap());
        objects.plant(
            &object_path(&key(4)),
            envelope::seal(&key(4), "", b"plain", None),
        );
        objects.plant(
            &object_path(&key(5)),
            envelope::seal(&key(5), "", b"evil", Some(&bad)),
        );
        objects.plant(
            &object_path(&key(6)),
            envelope::seal(&key(6), "", b"good", Some(&good)),
        );
        let reader = Remote::with_object_store(signed, objects, None);
        let got = reader.get_many(&[key(4), key(5), key(6)]);
        assert_eq!((got[0].clone(), got[1].clone()), (None, None));
        assert_eq!(
            got[2].as_ref().map(|f| f.bytes.as_slice()),
            Some(&b"good"[..])
        );
        assert_eq!((reader.stats().rejected, reader.stats().hits), (2, 1));
    }

    #[test]
    fn failures_open_the_breaker_for_every_process_and_counters_persist() {
        let (_dir, store) = local();
        let objects = Arc::new(MemoryStore::new());
        objects.fail_with(Some(Failure::Other("connection refused".into())));
        let first = Remote::with_object_store(config("ro"), objects.clone(), Some(store.clone()));
        // One failure per key until the third opens the breaker; the rest are skipped.
        assert!(first.get_many(&[key(1)]).iter().all(Option::is_none));
        assert!(first.get(&key(2)).is_none());
        assert!(first.get(&key(3)).is_none());
        assert!(first.get(&key(4)).is_none());
        let s = first.stats();
        assert_eq!(
            (s.errors, s.breaker_opens, s.breaker_skips, s.misses),
            (3, 1, 1, 4)
        );
        assert!(crate::breaker_open_until(&store, first.config()).is_some());

        // Another process on the same local cache skips the remote without calling it,
        // even once the remote is back.
        objects.fail_with(None);
        let second = Remote::with_object_store(config("ro"), objects, Some(store.clone()));
        assert!(second.get(&key(1)).is_none());
        assert_eq!(
            (second.stats().errors, second.stats().breaker_skips),
            (0, 1)
        );

        drop(first);
        drop(second);
        let total = RemoteStats::load(&store).unwrap();
        assert_eq!(
            (total.errors, total.breaker_opens, total.breaker_skips),
            (3, 1, 2)
        );
        assert_eq!(total.misses, 5);
    }

    #[test]
    fn timeouts_and_denials_are_counted_apart() {
        let objects = Arc::new(MemoryStore::new());
        let remote = Remote::with_object_store(config("ro"), objects.clone(), None);
        objects.fail_with(Some(Failure::Timeout("slow".into())));
        assert!(remote.get(&key(1)).is_none());
        objects.fail_with(Some(Failure::Denied("403".into())));
        assert!(remote.get(&key(1)).is_none());
        let s = remote.stats();
        assert_eq!((s.timeouts, s.errors, s.misses), (1, 1, 2));
    }

    /// An object store whose uploads wait until released, to fill the queue.
    struct Gate {
        entered: Mutex<std::sync::mpsc::Sender<()>>,
        release: Mutex<std::sync::mpsc::Receiver<()>>,
    }

    impl ObjectStore for Gate {
        fn get(&self, _: &str) -> Result<Option<Vec<u8>>, Failure> {
            Ok(None)
        }

        fn put_if_absent(&self, _: &str, _: &[u8]) -> Result<Put, Failure> {
            let _ = self.entered.lock().unwrap().send(());
            let _ = self.release.lock().unwrap().recv();
            Ok(Put::Created)
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_drop_waits_a_bounded_time() {
        let (entered_tx, entered) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel();
        let gate = Arc::new(Gate {
            entered: Mutex::new(entered_tx),
            release: Mutex::new(release_rx),
        });
        let mut c = config("rw");
        c.upload_queue = 2;
        c.drain_timeout = Duration::from_millis(100);
        let (_dir, store) = local();
        let remote = Remote::with_object_store(c, gate, Some(store.clone()));
        remote.upload(&key(1), "", b"a");
        entered.recv().unwrap(); // the thread is busy with the first upload
        for n in 2..=5 {
            remote.upload(&key(n), "", b"b");
        }
        assert_eq!(remote.stats().uploads_dropped, 2, "two fit in the queue");
        assert!(!remote.drain(Duration::from_millis(10)));
        // Dropping gives up after the drain timeout: the three left are dropped.
        drop(remote);
        let total = RemoteStats::load(&store).unwrap();
        assert_eq!(total.uploads_dropped, 5);
        drop(release);
    }
}
