//! The small interface the remote tier needs from an object store, so the client
//! library stays behind it: get an object, create one if absent. [`MemoryStore`] is an
//! in-process implementation for tests.

use std::collections::HashMap;
use std::sync::Mutex;

use jitcache_store::sync::lock;

/// Why an object store call failed. A failure is never an error to the cache's caller:
/// it is counted and treated as a miss.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The call did not finish within its bounds.
    Timeout(String),
    /// The server refused the credentials or the request (HTTP 401/403).
    Denied(String),
    /// Anything else: connection refused, a 5xx, a malformed answer.
    Other(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Timeout(m) => write!(f, "timed out: {m}"),
            Failure::Denied(m) => write!(f, "access denied (check the credentials): {m}"),
            Failure::Other(m) => f.write_str(m),
        }
    }
}

/// What a create-only upload found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Put {
    /// The object was written.
    Created,
    /// An object already existed under that path (a success: it is left alone).
    Existed,
}

/// An object store: paths are relative to the remote's prefix.
pub trait ObjectStore: Send + Sync {
    /// The object at `path`, `None` when there is none.
    fn get(&self, path: &str) -> Result<Option<Vec<u8>>, Failure>;

    /// [`ObjectStore::get`] of several paths; implementations may fetch them
    /// concurrently. One result per path, in order.
    fn get_many(&self, paths: &[String]) -> Vec<Result<Option<Vec<u8>>, Failure>> {
        paths.iter().map(|p| self.get(p)).collect()
    }

    /// Writes `bytes` at `path` unless an object is already there.
    fn put_if_absent(&self, path: &str, bytes: &[u8]) -> Result<Put, Failure>;

    /// [`ObjectStore::put_if_absent`] of several objects; implementations may upload
    /// them concurrently. One result per object, in order.
    fn put_many(&self, objects: Vec<(String, Vec<u8>)>) -> Vec<Result<Put, Failure>> {
        objects
            .iter()
            .map(|(path, bytes)| self.put_if_absent(path, bytes))
            .collect()
    }
}

/// An object store in memory, for tests: objects can be planted, changed and removed, and
/// every call can be made to fail.
#[derive(Debug, Default)]
pub struct MemoryStore {
    objects: Mutex<HashMap<String, Vec<u8>>>,
    failure: Mutex<Option<Failure>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Makes every later call fail with `failure` (`None`: succeed again).
    pub fn fail_with(&self, failure: Option<Failure>) {
        *lock(&self.failure) = failure;
    }

    /// Puts `bytes` at `path`, replacing what is there.
    pub fn plant(&self, path: &str, bytes: Vec<u8>) {
        lock(&self.objects).insert(path.to_owned(), bytes);
    }

    /// The object at `path`, bypassing any failure set.
    pub fn peek(&self, path: &str) -> Option<Vec<u8>> {
        lock(&self.objects).get(path).cloned()
    }

    /// The paths stored, sorted.
    pub fn paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = lock(&self.objects).keys().cloned().collect();
        paths.sort();
        paths
    }

    fn check(&self) -> Result<(), Failure> {
        match lock(&self.failure).clone() {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }
}

impl ObjectStore for MemoryStore {
    fn get(&self, path: &str) -> Result<Option<Vec<u8>>, Failure> {
        self.check()?;
        Ok(self.peek(path))
    }

    fn put_if_absent(&self, path: &str, bytes: &[u8]) -> Result<Put, Failure> {
        self.check()?;
        let mut objects = lock(&self.objects);
        if objects.contains_key(path) {
            return Ok(Put::Existed);
        }
        objects.insert(path.to_owned(), bytes.to_vec());
        Ok(Put::Created)
    }
}
