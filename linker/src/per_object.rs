//! A value per (object, index) pair — per symbol or per section of every object of a
//! unit — in one vector: one allocation per load rather than one per object (a batch is
//! hundreds of small objects).

/// Rows of different lengths, one per object, stored back to back.
#[derive(Debug, Clone)]
pub(crate) struct PerObject<T> {
    /// Start of each row in `items`, plus the end: `objects + 1` entries.
    starts: Vec<usize>,
    items: Vec<T>,
}

impl<T: Clone> PerObject<T> {
    /// A table with rows of the given lengths, every item `fill`.
    pub(crate) fn new(lens: impl Iterator<Item = usize>, fill: T) -> PerObject<T> {
        let mut starts = Vec::with_capacity(lens.size_hint().0 + 1);
        let mut total = 0;
        starts.push(0);
        for len in lens {
            total += len;
            starts.push(total);
        }
        PerObject {
            starts,
            items: vec![fill; total],
        }
    }

    /// Row `object`, or an empty row for an object out of range.
    pub(crate) fn row(&self, object: usize) -> &[T] {
        match (self.starts.get(object), self.starts.get(object + 1)) {
            (Some(&a), Some(&b)) => self.items.get(a..b).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// Item `index` of row `object`.
    pub(crate) fn get(&self, object: usize, index: usize) -> Option<&T> {
        self.row(object).get(index)
    }

    /// Item `index` of row `object`, mutably.
    pub(crate) fn get_mut(&mut self, object: usize, index: usize) -> Option<&mut T> {
        match (self.starts.get(object), self.starts.get(object + 1)) {
            (Some(&a), Some(&b)) => self.items.get_mut(a..b)?.get_mut(index),
            _ => None,
        }
    }

    /// Every row with its object index.
    pub(crate) fn rows(&self) -> impl Iterator<Item = (usize, &[T])> {
        (0..self.starts.len().saturating_sub(1)).map(|o| (o, self.row(o)))
    }
}

#[cfg(test)]
mod tests {
    use super::PerObject;

    #[test]
    fn rows_are_separate_even_when_empty() {
        let mut t = PerObject::new([2, 0, 3].into_iter(), 0_u8);
        *t.get_mut(0, 1).expect("in range") = 1;
        *t.get_mut(2, 0).expect("in range") = 2;
        assert_eq!(t.row(0), &[0, 1]);
        assert!(
            t.get(1, 0).is_none(),
            "an empty row does not reach into the next"
        );
        assert!(t.get_mut(1, 0).is_none());
        assert_eq!(t.row(2), &[2, 0, 0]);
        assert!(t.get(3, 0).is_none());
        assert_eq!(t.rows().count(), 3);
    }
}
