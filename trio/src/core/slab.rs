//! A generational slab: the runtime's tables of tasks, nurseries, cancel
//! statuses and parked waits.
//!
//! Keys carry the generation of the entry they were made for, so a stale key
//! (its entry removed, the slot reused) finds nothing instead of the wrong
//! entry. That is what lets wakers and handles outlive what they point at
//! without any risk: at worst they wake nothing. Freed slots are reused LIFO,
//! which keeps the tables small and warm in cache.
//!
//! # Pages
//!
//! Entries live in pages of [`PAGE`] slots, not in one `Vec`: the first
//! page grows like a `Vec` (a small run stays small), every later one is
//! allocated at its full size once and never moves. So a table that grows
//! past the first page never copies its entries or holds two copies during
//! the copy, and the capacity it holds beyond its peak size is under one
//! page, where a single doubling `Vec` holds up to as much again (on average
//! a third more) as it needs: the tables of tasks and parks are most of the
//! memory a blocked task costs. The first page is a field of its own, so a
//! lookup in it (every lookup, in most runs) costs one comparison more than
//! in a plain `Vec`; slot `i` past it is entry `i % PAGE` of
//! `rest[i / PAGE - 1]`.

use std::fmt;

/// A key into a [`Slab`]: slot index plus generation.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Key {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

impl Key {
    /// A key that never matches an entry.
    pub(crate) const DANGLING: Key = Key {
        index: u32::MAX,
        generation: u32::MAX,
    };
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}v{}", self.index, self.generation)
    }
}

enum Entry<T> {
    Occupied { generation: u32, value: T },
    Vacant { generation: u32, next_free: u32 },
}

pub(crate) struct Slab<T> {
    /// Slots `0..PAGE`; grows as a `Vec` (see "Pages" in the module docs).
    first: Vec<Entry<T>>,
    /// The pages of slots `PAGE..`: full pages of `PAGE` entries, then the
    /// last one, which may be partly filled. Each is allocated at full size.
    rest: Vec<Vec<Entry<T>>>,
    free_head: u32,
    len: usize,
}

const NO_FREE: u32 = u32::MAX;

/// Slots per page: a power of two, so that finding a slot is a shift and a
/// mask. 1024 keeps the unused tail below 1% of a table of 100 000
/// entries, and a page of the largest records (parks) below 100 KiB.
const PAGE_BITS: u32 = 10;
const PAGE: usize = 1 << PAGE_BITS;

impl<T> Slab<T> {
    pub(crate) const fn new() -> Self {
        Slab {
            first: Vec::new(),
            rest: Vec::new(),
            free_head: NO_FREE,
            len: 0,
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn insert(&mut self, value: T) -> Key {
        self.len += 1;
        if self.free_head != NO_FREE {
            let index = self.free_head;
            let Some(entry) = Self::slot_mut(&mut self.first, &mut self.rest, index) else {
                unreachable!("the free list points past the end")
            };
            let Entry::Vacant {
                generation,
                next_free,
            } = *entry
            else {
                unreachable!("the free list points at an occupied slot")
            };
            let generation = generation.wrapping_add(1);
            *entry = Entry::Occupied { generation, value };
            self.free_head = next_free;
            Key { index, generation }
        } else {
            let entry = Entry::Occupied {
                generation: 0,
                value,
            };
            let index = if self.first.len() < PAGE {
                self.first.push(entry);
                self.first.len() - 1
            } else {
                if self.rest.last().is_none_or(|p| p.len() == PAGE) {
                    self.rest.push(Vec::with_capacity(PAGE));
                }
                let pages = self.rest.len();
                let last = &mut self.rest[pages - 1];
                last.push(entry);
                pages * PAGE + last.len() - 1
            };
            Key {
                index: index as u32,
                generation: 0,
            }
        }
    }

    /// The entry in slot `index`, if that slot exists.
    #[inline]
    fn entry(&self, index: u32) -> Option<&Entry<T>> {
        let i = index as usize;
        if i < PAGE {
            self.first.get(i)
        } else {
            self.rest.get((i >> PAGE_BITS) - 1)?.get(i & (PAGE - 1))
        }
    }

    #[inline]
    fn entry_mut(&mut self, index: u32) -> Option<&mut Entry<T>> {
        Self::slot_mut(&mut self.first, &mut self.rest, index)
    }

    /// `entry_mut` on the page fields alone, so that the rest of the slab
    /// stays free to change while the entry is borrowed.
    #[inline]
    fn slot_mut<'a>(
        first: &'a mut [Entry<T>],
        rest: &'a mut [Vec<Entry<T>>],
        index: u32,
    ) -> Option<&'a mut Entry<T>> {
        let i = index as usize;
        if i < PAGE {
            first.get_mut(i)
        } else {
            rest.get_mut((i >> PAGE_BITS) - 1)?.get_mut(i & (PAGE - 1))
        }
    }

    pub(crate) fn get(&self, key: Key) -> Option<&T> {
        match self.entry(key.index) {
            Some(Entry::Occupied { generation, value }) if *generation == key.generation => {
                Some(value)
            }
            _ => None,
        }
    }

    pub(crate) fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        match self.entry_mut(key.index) {
            Some(Entry::Occupied { generation, value }) if *generation == key.generation => {
                Some(value)
            }
            _ => None,
        }
    }

    /// Looks an entry up by slot and the low 16 bits of its generation, as a
    /// waker remembers it. Returns the full key with the value.
    /// The key of the live entry at `index` whose generation ends in
    /// `short_gen`.
    pub(crate) fn key_by_short(&self, index: u32, short_gen: u16) -> Option<Key> {
        match self.entry(index) {
            Some(Entry::Occupied { generation, .. }) if *generation as u16 == short_gen => {
                Some(Key {
                    index,
                    generation: *generation,
                })
            }
            _ => None,
        }
    }

    pub(crate) fn get_mut_by_short(&mut self, index: u32, short_gen: u16) -> Option<(Key, &mut T)> {
        match self.entry_mut(index) {
            Some(Entry::Occupied { generation, value }) if *generation as u16 == short_gen => {
                Some((
                    Key {
                        index,
                        generation: *generation,
                    },
                    value,
                ))
            }
            _ => None,
        }
    }

    pub(crate) fn remove(&mut self, key: Key) -> Option<T> {
        let free_head = self.free_head;
        let entry = self.entry_mut(key.index)?;
        match entry {
            Entry::Occupied { generation, .. } if *generation == key.generation => {
                let old = std::mem::replace(
                    entry,
                    Entry::Vacant {
                        generation: key.generation,
                        next_free: free_head,
                    },
                );
                self.free_head = key.index;
                self.len -= 1;
                match old {
                    Entry::Occupied { value, .. } => Some(value),
                    Entry::Vacant { .. } => unreachable!(),
                }
            }
            _ => None,
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (Key, &T)> {
        self.first
            .iter()
            .chain(self.rest.iter().flatten())
            .enumerate()
            .filter_map(|(i, e)| match e {
                Entry::Occupied { generation, value } => Some((
                    Key {
                        index: i as u32,
                        generation: *generation,
                    },
                    value,
                )),
                Entry::Vacant { .. } => None,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_keys_find_nothing() {
        let mut s = Slab::new();
        let a = s.insert("a");
        assert_eq!(s.remove(a), Some("a"));
        let b = s.insert("b");
        assert_eq!(a.index, b.index);
        assert!(s.get(a).is_none());
        assert_eq!(s.get(b), Some(&"b"));
        assert!(s.remove(a).is_none());
        assert_eq!(s.len(), 1);
        assert!(s.get(Key::DANGLING).is_none());
        let (k, v) = s.get_mut_by_short(b.index, b.generation as u16).unwrap();
        assert_eq!((k, *v), (b, "b"));
        assert_eq!(s.iter().count(), 1);
    }

    /// Slots past the first page are found, reused and listed in order,
    /// and every page after the first is allocated at full size once.
    #[test]
    fn pages_hold_many_entries() {
        let mut s = Slab::new();
        let keys: Vec<Key> = (0..3 * PAGE + 5).map(|i| s.insert(i)).collect();
        assert_eq!(s.rest.len(), 3);
        assert!(s.rest.iter().all(|p| p.capacity() == PAGE));
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(s.get(*k), Some(&i));
        }
        let gone = keys[2 * PAGE + 1];
        assert_eq!(s.remove(gone), Some(2 * PAGE + 1));
        let again = s.insert(7);
        assert_eq!((again.index, again.generation), (gone.index, 1));
        assert!(s.get(gone).is_none());
        assert_eq!(s.len(), 3 * PAGE + 5);
        let listed: Vec<u32> = s.iter().map(|(k, _)| k.index).collect();
        assert_eq!(listed, (0..(3 * PAGE + 5) as u32).collect::<Vec<_>>());
    }
}
