//! Paging positions of creation-ordered sequences newest first, by cursor, in O(log n + limit).
//!
//! Must not touch: anything else; it knows no resource.

/// A page of positions in a creation-ordered sequence, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub items: Vec<u32>,
    /// Cursor of the next (older) page, if any.
    pub next: Option<u32>,
    /// Cursor of the previous (newer) page: `Some(None)` for the first page.
    pub prev: Option<Option<u32>>,
}

/// Pages `len` ascending sequence numbers (`seq_at(i)`) newest first. A cursor `c` means "the
/// items with a sequence number below `c`".
pub fn page(seq_at: impl Fn(usize) -> u32, len: usize, limit: usize, cursor: Option<u32>) -> Page {
    let end = match cursor {
        None => len,
        Some(c) => {
            let (mut lo, mut hi) = (0, len);
            while lo < hi {
                let mid = (lo + hi) / 2;
                if seq_at(mid) < c {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            lo
        }
    };
    let start = end.saturating_sub(limit);
    let items = (start..end).rev().map(&seq_at).collect();
    let next = (start > 0).then(|| seq_at(start));
    let prev = (end < len).then(|| (end + limit < len).then(|| seq_at(end + limit)));
    Page { items, next, prev }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(n: u32) -> Vec<u32> {
        (0..n).collect()
    }

    #[test]
    fn pages_walk_newest_first_and_end_without_next() {
        let s = seqs(60);
        let p1 = page(|i| s[i], s.len(), 25, None);
        assert_eq!(p1.items.first(), Some(&59));
        assert_eq!(p1.items.len(), 25);
        assert_eq!(p1.prev, None);
        let p2 = page(|i| s[i], s.len(), 25, p1.next);
        assert_eq!(p2.items.first(), Some(&34));
        assert_eq!(p2.prev, Some(None));
        let p3 = page(|i| s[i], s.len(), 25, p2.next);
        assert_eq!(p3.items, (0..10).rev().collect::<Vec<_>>());
        assert_eq!(p3.next, None);
        assert_eq!(p3.prev, Some(p1.next));
        let back = page(|i| s[i], s.len(), 25, p3.prev.unwrap());
        assert_eq!(back, p2);
    }

    #[test]
    fn pages_over_sparse_indexes() {
        let s = [3, 8, 9, 20, 41];
        let p = page(|i| s[i], s.len(), 2, None);
        assert_eq!(p.items, vec![41, 20]);
        let p = page(|i| s[i], s.len(), 2, p.next);
        assert_eq!(p.items, vec![9, 8]);
        let p = page(|i| s[i], s.len(), 2, p.next);
        assert_eq!(p.items, vec![3]);
        assert_eq!(p.next, None);
        assert_eq!(page(|i| s[i], 0, 2, None).items, Vec::<u32>::new());
    }
}
