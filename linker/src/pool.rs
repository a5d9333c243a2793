//! Book-keeping of one pool of the code arena (`arena.rs`): which byte ranges of the pool
//! are free; fresh bytes (above the high-water mark) first, then first fit, with
//! alignment; coalescing on free. No memory is touched here;
//! offsets are relative to the pool's start.
//!
//! Every range handed out is a multiple of [`GRANULE`] long and starts at a multiple of
//! the asked alignment (at least [`GRANULE`]). The pool also remembers its high-water mark
//! (the end of the highest range ever handed out): bytes below it may hold what an earlier
//! unit left there (its code may even have run), bytes above it were never handed out and
//! are still the zero pages the kernel mapped.

use std::ops::Range;

/// Allocation unit: pieces start and end on 16-byte boundaries (the alignment compilers
/// give functions and most data), so small units share pages and cache lines tightly.
pub(crate) const GRANULE: u64 = 16;

/// A range handed out by [`Pool::alloc`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Allocation {
    /// Offsets in the pool.
    pub range: Range<u64>,
    /// Some of these bytes were handed out before (they are not fresh zero pages).
    pub reused: bool,
}

/// The free ranges of one pool.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    len: u64,
    /// Sorted, disjoint, never adjacent (adjacent ranges are merged), none empty.
    free: Vec<Range<u64>>,
    high_water: u64,
    used: u64,
}

impl Pool {
    /// A pool of `len` bytes, all free.
    pub(crate) fn new(len: u64) -> Pool {
        let len = len - len % GRANULE;
        Pool {
            len,
            free: std::iter::once(0..len).filter(|r| !r.is_empty()).collect(),
            high_water: 0,
            used: 0,
        }
    }

    /// Hands out `size` bytes (rounded up to [`GRANULE`]) at an offset that is a multiple
    /// of `align` (a power of two), first fit. `size` 0 takes nothing and returns `0..0`.
    pub(crate) fn alloc(&mut self, size: u64, align: u64) -> Option<Allocation> {
        if size == 0 {
            return Some(Allocation {
                range: 0..0,
                reused: false,
            });
        }
        let size = size.checked_next_multiple_of(GRANULE)?;
        let align = align.max(GRANULE);
        if !align.is_power_of_two() {
            return None;
        }
        let (index, start) = self.fresh(size, align).or_else(|| {
            self.free.iter().enumerate().find_map(|(i, r)| {
                let start = r.start.checked_next_multiple_of(align)?;
                (start.checked_add(size)? <= r.end).then_some((i, start))
            })
        })?;
        let end = start + size;
        let hole = self.free.remove(index);
        // Put back what is left on either side, in order.
        let mut at = index;
        if hole.start < start {
            self.free.insert(at, hole.start..start);
            at += 1;
        }
        if end < hole.end {
            self.free.insert(at, end..hole.end);
        }
        let reused = start < self.high_water;
        self.high_water = self.high_water.max(end);
        self.used += size;
        Some(Allocation {
            range: start..end,
            reused,
        })
    }

    /// Where `size` bytes fit above the high-water mark (index of the free range, start),
    /// if they do. Fresh bytes are taken before holes: code written where no code has run
    /// needs no instruction serialisation of the other threads (`membarrier`, ~0.5 µs
    /// here), so holes are reused only once the pool's fresh bytes run out.
    fn fresh(&self, size: u64, align: u64) -> Option<(usize, u64)> {
        let index = self.free.len().checked_sub(1)?;
        let tail = &self.free[index];
        let start = tail
            .start
            .max(self.high_water)
            .checked_next_multiple_of(align)?;
        (start.checked_add(size)? <= tail.end).then_some((index, start))
    }

    /// Returns a range handed out by [`Pool::alloc`]. Empty ranges are ignored.
    pub(crate) fn free(&mut self, range: Range<u64>) {
        if range.is_empty() {
            return;
        }
        debug_assert!(range.end <= self.len);
        self.used = self.used.saturating_sub(range.end - range.start);
        // First free range that starts after this one.
        let at = self.free.partition_point(|r| r.start < range.start);
        debug_assert!(
            at == 0 || self.free[at - 1].end <= range.start,
            "double free"
        );
        debug_assert!(
            self.free.get(at).is_none_or(|r| range.end <= r.start),
            "double free"
        );
        let merge_prev = at > 0 && self.free[at - 1].end == range.start;
        let merge_next = self.free.get(at).is_some_and(|r| r.start == range.end);
        match (merge_prev, merge_next) {
            (true, true) => {
                let next_end = self.free[at].end;
                self.free[at - 1].end = next_end;
                self.free.remove(at);
            }
            (true, false) => self.free[at - 1].end = range.end,
            (false, true) => self.free[at].start = range.start,
            (false, false) => self.free.insert(at, range),
        }
    }

    /// Bytes handed out and not freed.
    #[cfg(test)]
    fn used(&self) -> u64 {
        self.used
    }

    /// End of the highest range ever handed out.
    pub(crate) fn high_water(&self) -> u64 {
        self.high_water
    }

    /// The free ranges, sorted (for tests).
    #[cfg(test)]
    fn free_ranges(&self) -> &[Range<u64>] {
        &self.free
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn first_fit_aligned_and_coalescing() {
        let mut p = Pool::new(4096);
        let a = p.alloc(10, 1).expect("a");
        assert_eq!(a.range, 0..16);
        assert!(!a.reused);
        let b = p.alloc(100, 64).expect("b");
        assert_eq!(b.range, 64..176);
        let c = p.alloc(16, 16).expect("c");
        assert_eq!(c.range, 176..192, "fresh bytes before the hole before b");
        assert!(!c.reused);
        assert_eq!(p.used(), 16 + 112 + 16);
        p.free(a.range);
        assert_eq!(p.free_ranges()[0], 0..64, "a and the gap merge");
        // Fresh bytes run out: the rest of the pool is taken, then holes are reused.
        let rest = p.alloc(4096 - 192, 16).expect("rest");
        assert_eq!(rest.range, 192..4096);
        let d = p.alloc(48, 16).expect("d");
        assert_eq!(d.range, 0..48, "first fit once nothing is fresh");
        assert!(d.reused, "below the high-water mark");
        for r in [b.range, c.range, d.range, rest.range] {
            p.free(r);
        }
        assert_eq!(p.free_ranges().first(), Some(&(0..4096)));
        assert_eq!(p.free_ranges().len(), 1);
        assert_eq!(p.used(), 0);
        assert_eq!(p.high_water(), 4096);
    }

    #[test]
    fn full_pool_refuses_and_zero_size_takes_nothing() {
        let mut p = Pool::new(64);
        assert_eq!(p.alloc(0, 4096).expect("empty").range, 0..0);
        assert!(p.alloc(65, 1).is_none());
        assert!(p.alloc(64, 1).is_some());
        assert!(p.alloc(1, 1).is_none());
        assert!(p.alloc(1, 3).is_none(), "alignment must be a power of two");
    }

    proptest! {
        /// Against a byte-map model: ranges handed out never overlap, are aligned, lie
        /// inside the pool; `used` and the free list agree with the model; freeing
        /// everything gives the whole pool back as one range.
        #[test]
        fn never_overlaps_and_returns_everything(
            ops in proptest::collection::vec((any::<bool>(), 1_u64..700, 0_u32..8, any::<prop::sample::Index>()), 1..200)
        ) {
            const LEN: u64 = 8192;
            let mut pool = Pool::new(LEN);
            let mut owner = vec![false; LEN as usize];
            let mut live: Vec<Range<u64>> = Vec::new();
            for (alloc, size, align_log, pick) in ops {
                if alloc || live.is_empty() {
                    let align = 1_u64 << (align_log + 2);
                    if let Some(a) = pool.alloc(size, align) {
                        prop_assert_eq!(a.range.start % align.max(GRANULE), 0);
                        prop_assert!(a.range.end <= LEN);
                        prop_assert!(a.range.end - a.range.start >= size);
                        for i in a.range.clone() {
                            prop_assert!(!owner[i as usize], "overlap at {}", i);
                            owner[i as usize] = true;
                        }
                        live.push(a.range);
                    } else {
                        // Refusal only when no aligned hole of that size exists.
                        let size = size.next_multiple_of(GRANULE);
                        let align = align.max(GRANULE);
                        let fits = (0..LEN).step_by(align as usize).any(|s| {
                            s + size <= LEN && (s..s + size).all(|i| !owner[i as usize])
                        });
                        prop_assert!(!fits, "refused although {} bytes fit", size);
                    }
                } else {
                    let r = live.swap_remove(pick.index(live.len()));
                    for i in r.clone() {
                        owner[i as usize] = false;
                    }
                    pool.free(r);
                }
                let used = owner.iter().filter(|&&o| o).count() as u64;
                prop_assert_eq!(pool.used(), used);
                let free: u64 = pool.free_ranges().iter().map(|r| r.end - r.start).sum();
                prop_assert_eq!(free + used, LEN);
                for w in pool.free_ranges().windows(2) {
                    prop_assert!(w[0].end < w[1].start, "sorted, disjoint, merged");
                }
            }
            for r in live.drain(..) {
                pool.free(r);
            }
            prop_assert_eq!(pool.free_ranges().first(), Some(&(0..LEN)));
            prop_assert_eq!(pool.free_ranges().len(), 1);
        }
    }
}
