//! The registry of live handles.
//!
//! A handle given to C is not a pointer to anything: it is a number, shown to C as an
//! opaque pointer, that encodes a tag, a slot index and the slot's generation. The
//! object lives in the registry, so a freed, closed, forged or wrong-kind handle is
//! recognized and refused, never dereferenced. A slot is reused with a new generation,
//! so an old handle to it stays stale.
//!
//! Objects are reference counted: a call takes a clone of the object and releases the
//! registry lock before it does any work, so a long compile never blocks other threads,
//! and a handle freed while another thread still uses it stays alive until that call
//! returns. Objects are dropped outside the registry lock, since dropping a cache runs
//! destructors of loaded code, which may call back into the API.

use std::collections::VecDeque;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::backend::BackendObj;
use crate::cache::CacheObj;
use crate::compile::OutputObj;
use crate::status::{ApiError, Status};
use crate::unit::UnitObj;

const _: () = assert!(
    usize::BITS == 64,
    "handles are 64-bit values shown to C as pointers"
);

/// The top 16 bits of every handle: "JC".
const TAG: u64 = 0x4A43;
const INDEX_BITS: u32 = 24;
const GENERATION_BITS: u32 = 24;
const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;
const GENERATION_MASK: u64 = (1 << GENERATION_BITS) - 1;

/// A live object behind a handle.
#[derive(Clone)]
pub(crate) enum Object {
    /// `jitcache_cache`.
    Cache(Arc<CacheObj>),
    /// `jitcache_backend`.
    Backend(Arc<BackendObj>),
    /// `jitcache_unit`.
    Unit(Arc<UnitObj>),
    /// `jitcache_compile_output` (alive only during a compile callback).
    Output(Arc<OutputObj>),
}

/// The kinds of handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `jitcache_cache`.
    Cache,
    /// `jitcache_backend`.
    Backend,
    /// `jitcache_unit`.
    Unit,
    /// `jitcache_compile_output`.
    Output,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Cache => "cache",
            Kind::Backend => "backend",
            Kind::Unit => "unit",
            Kind::Output => "compile output",
        }
    }
}

impl Object {
    fn kind(&self) -> Kind {
        match self {
            Object::Cache(_) => Kind::Cache,
            Object::Backend(_) => Kind::Backend,
            Object::Unit(_) => Kind::Unit,
            Object::Output(_) => Kind::Output,
        }
    }
}

/// Why a slot's last object left it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Gone {
    /// Freed by its free function (or, for a compile output, its callback returned).
    Freed,
    /// Its cache was closed (the cache itself, or a unit of it).
    Closed,
    /// Its code was unloaded.
    Unloaded,
}

struct Slot {
    generation: u64,
    kind: Kind,
    object: Option<Object>,
    gone: Gone,
}

struct Registry {
    slots: Vec<Slot>,
    free: VecDeque<usize>,
}

static REGISTRY: RwLock<Registry> = RwLock::new(Registry {
    slots: Vec::new(),
    free: VecDeque::new(),
});

// Nothing panics while holding the lock, and every update leaves the registry consistent;
// recover from poisoning anyway rather than fail every later call.

fn registry() -> RwLockWriteGuard<'static, Registry> {
    REGISTRY.write().unwrap_or_else(PoisonError::into_inner)
}

fn registry_read() -> RwLockReadGuard<'static, Registry> {
    REGISTRY.read().unwrap_or_else(PoisonError::into_inner)
}

fn encode(index: usize, generation: u64) -> u64 {
    (TAG << 48) | ((generation & GENERATION_MASK) << INDEX_BITS) | (index as u64 & INDEX_MASK)
}

/// The handle as the opaque pointer C sees.
pub(crate) fn to_ptr<T>(handle: u64) -> *mut T {
    std::ptr::without_provenance_mut(handle as usize)
}

/// The handle inside an opaque pointer from C (not dereferenced).
pub(crate) fn from_ptr<T>(ptr: *const T) -> u64 {
    ptr.addr() as u64
}

impl Registry {
    fn insert(&mut self, make: impl FnOnce(u64) -> Object) -> Result<u64, ApiError> {
        let index = match self.free.pop_front() {
            Some(index) => index,
            None => {
                if self.slots.len() as u64 > INDEX_MASK {
                    return Err(ApiError::invalid(
                        "too many live handles (16777216): free some",
                    ));
                }
                self.slots.push(Slot {
                    generation: 0,
                    kind: Kind::Cache,
                    object: None,
                    gone: Gone::Freed,
                });
                self.slots.len() - 1
            }
        };
        let slot = &mut self.slots[index];
        // Generation 0 is never issued, so a zeroed handle body is never valid.
        slot.generation = (slot.generation % GENERATION_MASK) + 1;
        let handle = encode(index, slot.generation);
        let object = make(handle);
        slot.kind = object.kind();
        slot.object = Some(object);
        Ok(handle)
    }

    /// The slot index of a live handle of `kind`, or why it is not one.
    fn find(&self, handle: u64, kind: Kind) -> Result<usize, ApiError> {
        let what = kind.name();
        if handle == 0 {
            return Err(ApiError::null(&format!("the {what} handle")));
        }
        let invalid = || {
            ApiError::new(
                Status::InvalidHandle,
                format!("{handle:#x} is not a jitcache {what} handle"),
            )
        };
        if handle >> 48 != TAG {
            return Err(invalid());
        }
        let index = (handle & INDEX_MASK) as usize;
        let generation = (handle >> INDEX_BITS) & GENERATION_MASK;
        let slot = self.slots.get(index).ok_or_else(invalid)?;
        if generation == 0 || generation > slot.generation {
            return Err(invalid());
        }
        if generation < slot.generation {
            return Err(ApiError::new(
                Status::StaleHandle,
                format!("the {what} handle {handle:#x} was freed"),
            ));
        }
        if slot.kind != kind {
            return Err(ApiError::new(
                Status::InvalidHandle,
                format!(
                    "{handle:#x} is a {} handle, not a {what} handle",
                    slot.kind.name()
                ),
            ));
        }
        if slot.object.is_none() {
            let (status, how) = match slot.gone {
                Gone::Freed => (Status::StaleHandle, "was freed"),
                Gone::Closed if kind == Kind::Cache => (Status::Closed, "was closed"),
                Gone::Closed => (Status::Closed, "belongs to a closed cache"),
                Gone::Unloaded => (Status::StaleHandle, "was unloaded"),
            };
            return Err(ApiError::new(
                status,
                format!("the {what} handle {handle:#x} {how}"),
            ));
        }
        Ok(index)
    }

    fn release(&mut self, index: usize, gone: Gone) -> Option<Object> {
        let slot = &mut self.slots[index];
        let object = slot.object.take();
        slot.gone = gone;
        if object.is_some() {
            self.free.push_back(index);
        }
        object
    }
}

/// Registers the object `make` builds from its own handle; returns the handle.
pub(crate) fn insert(make: impl FnOnce(u64) -> Object) -> Result<u64, ApiError> {
    registry().insert(make)
}

/// Registers objects that belong to the cache `cache`, all or none: if the cache is no
/// longer live (closed meanwhile) nothing is registered and the objects are dropped.
pub(crate) fn insert_for_cache(cache: u64, objects: Vec<Object>) -> Result<Vec<u64>, ApiError> {
    let mut registry = registry();
    if let Err(err) = registry.find(cache, Kind::Cache) {
        drop(registry);
        drop(objects);
        return Err(err);
    }
    let mut handles = Vec::with_capacity(objects.len());
    let mut failure = None;
    let mut objects = objects.into_iter();
    for object in objects.by_ref() {
        match registry.insert(|_| object) {
            Ok(handle) => handles.push(handle),
            Err(err) => {
                failure = Some(err);
                break;
            }
        }
    }
    let Some(err) = failure else {
        return Ok(handles);
    };
    let released: Vec<Object> = handles
        .iter()
        .filter_map(|h| registry.release((h & INDEX_MASK) as usize, Gone::Freed))
        .collect();
    drop(registry);
    drop(released);
    drop(objects);
    Err(err)
}

/// The object of a live handle of `kind`.
pub(crate) fn get(handle: u64, kind: Kind) -> Result<Object, ApiError> {
    let registry = registry_read();
    let index = registry.find(handle, kind)?;
    registry.slots[index]
        .object
        .clone()
        .ok_or_else(|| ApiError::new(Status::StaleHandle, "the handle was freed"))
}

/// Removes a live handle; returns its object, for the caller to drop (outside the lock).
pub(crate) fn remove(handle: u64, kind: Kind, gone: Gone) -> Result<Object, ApiError> {
    let mut registry = registry();
    let index = registry.find(handle, kind)?;
    registry
        .release(index, gone)
        .ok_or_else(|| ApiError::new(Status::StaleHandle, "the handle was freed"))
}

/// Removes every live object `select` picks; returns them, for the caller to drop.
pub(crate) fn remove_where(select: impl Fn(&Object) -> bool, gone: Gone) -> Vec<Object> {
    let mut registry = registry();
    let picked: Vec<usize> = registry
        .slots
        .iter()
        .enumerate()
        .filter(|(_, slot)| slot.object.as_ref().is_some_and(&select))
        .map(|(index, _)| index)
        .collect();
    picked
        .into_iter()
        .filter_map(|index| registry.release(index, gone))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    fn output() -> Object {
        Object::Output(Arc::new(OutputObj::default()))
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert,
        Remove(usize),
        Get(usize),
        Forge(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => Just(Op::Insert),
            2 => any::<usize>().prop_map(Op::Remove),
            3 => any::<usize>().prop_map(Op::Get),
            1 => any::<u64>().prop_map(Op::Forge),
        ]
    }

    proptest! {
        /// Against a model: a live handle is found, a removed one is stale (however its
        /// slot was reused since), and no handle is ever issued twice. (The registry is
        /// shared with other tests, so only this run's handles are checked.)
        #[test]
        fn handles_are_live_until_removed_then_stale(ops in proptest::collection::vec(op(), 1..200)) {
            let mut model: HashMap<u64, bool> = HashMap::new(); // handle -> live
            let mut order: Vec<u64> = Vec::new();
            for op in ops {
                match op {
                    Op::Insert => {
                        let handle = insert(|_| output()).unwrap();
                        prop_assert!(!model.contains_key(&handle), "handle {handle:#x} reissued");
                        model.insert(handle, true);
                        order.push(handle);
                    }
                    Op::Remove(i) | Op::Get(i) if order.is_empty() => { let _ = i; }
                    Op::Remove(i) => {
                        let handle = order[i % order.len()];
                        let result = remove(handle, Kind::Output, Gone::Freed);
                        if model[&handle] {
                            prop_assert!(result.is_ok());
                            model.insert(handle, false);
                        } else {
                            prop_assert_eq!(result.err().map(|e| e.status), Some(Status::StaleHandle));
                        }
                    }
                    Op::Get(i) => {
                        let handle = order[i % order.len()];
                        let result = get(handle, Kind::Output);
                        if model[&handle] {
                            prop_assert!(result.is_ok());
                            prop_assert_eq!(
                                get(handle, Kind::Unit).err().map(|e| e.status),
                                Some(Status::InvalidHandle)
                            );
                        } else {
                            prop_assert_eq!(result.err().map(|e| e.status), Some(Status::StaleHandle));
                        }
                    }
                    Op::Forge(value) => {
                        // Anything without the tag is refused without looking further.
                        if value >> 48 != TAG && value != 0 {
                            prop_assert_eq!(
                                get(value, Kind::Output).err().map(|e| e.status),
                                Some(Status::InvalidHandle)
                            );
                        }
                    }
                }
            }
            for (handle, live) in model {
                if live {
                    prop_assert!(remove(handle, Kind::Output, Gone::Freed).is_ok());
                }
            }
        }
    }

    #[test]
    fn null_and_never_issued_handles_are_refused() {
        assert_eq!(
            get(0, Kind::Cache).err().map(|e| e.status),
            Some(Status::NullArgument)
        );
        // The tag, but generation 0: never issued.
        assert_eq!(
            get(TAG << 48, Kind::Cache).err().map(|e| e.status),
            Some(Status::InvalidHandle)
        );
        // The tag, an index far past any slot.
        assert_eq!(
            get(encode(INDEX_MASK as usize, 1), Kind::Cache)
                .err()
                .map(|e| e.status),
            Some(Status::InvalidHandle)
        );
    }

    #[test]
    fn a_removed_handle_says_why() {
        let handle = insert(|_| output()).unwrap();
        drop(remove(handle, Kind::Output, Gone::Closed).unwrap());
        let err = get(handle, Kind::Output).err().unwrap();
        assert_eq!(err.status, Status::Closed);
        let handle = insert(|_| output()).unwrap();
        drop(remove(handle, Kind::Output, Gone::Unloaded).unwrap());
        let err = get(handle, Kind::Output).err().unwrap();
        assert_eq!(err.status, Status::StaleHandle);
        assert!(err.message.contains("unloaded"), "{}", err.message);
    }
}
