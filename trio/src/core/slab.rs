//! A generational slab: the runtime's tables of tasks, nurseries, cancel
//! statuses and parked waits.
//!
//! Keys carry the generation of the entry they were made for, so a stale key
//! (its entry removed, the slot reused) finds nothing instead of the wrong
//! entry. That is what lets wakers and handles outlive what they point at
//! without any risk: at worst they wake nothing. Freed slots are reused LIFO,
//! which keeps the tables small and warm in cache.
//!
//! # Growth
//!
//! A table grows as a `Vec` does (doubling) up to [`DOUBLE_UP_TO`] entries,
//! then by a sixteenth at a time ([`push_capped`]): a doubling `Vec` holds
//! up to as much again as it needs (a third more, on average), and the
//! tables of tasks and parks, with the per-nursery and per-status lists that
//! grow with them, are most of the memory a blocked task costs; a sixteenth
//! bounds that waste at 6.25%. A lookup stays one `Vec` index (a paged
//! table, which never copies, cost the hot paths 3 to 10% more
//! instructions). The price is paid only while a table grows past its peak:
//! each growth step may copy the table, about sixteen entries per insert
//! amortised instead of one or two (none where the allocator can remap a
//! large block in place, as glibc does for `mmap`ed ones).

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
    entries: Vec<Entry<T>>,
    free_head: u32,
    len: usize,
}

const NO_FREE: u32 = u32::MAX;

/// Up to this many entries a table doubles as it grows (a few allocations
/// for a small run); past it, it grows by a sixteenth (see "Growth" in the
/// module docs).
pub(crate) const DOUBLE_UP_TO: usize = 4096;

/// Pushes `value` onto `v`, growing it by the rule in "Growth" (module
/// docs) when it is full. For the runtime's tables and the lists that grow
/// with one entry per task or wait.
#[inline]
pub(crate) fn push_capped<T>(v: &mut Vec<T>, value: T) {
    if v.len() == v.capacity() {
        grow(v);
    }
    v.push(value);
}

#[cold]
#[inline(never)]
fn grow<T>(v: &mut Vec<T>) {
    let len = v.len();
    let extra = if len < DOUBLE_UP_TO {
        len.max(4)
    } else {
        len / 16
    };
    v.reserve_exact(extra);
}

impl<T> Slab<T> {
    pub(crate) const fn new() -> Self {
        Slab {
            entries: Vec::new(),
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
            let entry = &mut self.entries[index as usize];
            let Entry::Vacant {
                generation,
                next_free,
            } = *entry
            else {
                unreachable!("free list points at an occupied slot")
            };
            self.free_head = next_free;
            let generation = generation.wrapping_add(1);
            *entry = Entry::Occupied { generation, value };
            Key { index, generation }
        } else {
            let index = self.entries.len() as u32;
            push_capped(
                &mut self.entries,
                Entry::Occupied {
                    generation: 0,
                    value,
                },
            );
            Key {
                index,
                generation: 0,
            }
        }
    }

    pub(crate) fn get(&self, key: Key) -> Option<&T> {
        match self.entries.get(key.index as usize) {
            Some(Entry::Occupied { generation, value }) if *generation == key.generation => {
                Some(value)
            }
            _ => None,
        }
    }

    pub(crate) fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        match self.entries.get_mut(key.index as usize) {
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
        match self.entries.get(index as usize) {
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
        match self.entries.get_mut(index as usize) {
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
        let entry = self.entries.get_mut(key.index as usize)?;
        match entry {
            Entry::Occupied { generation, .. } if *generation == key.generation => {
                let old = std::mem::replace(
                    entry,
                    Entry::Vacant {
                        generation: key.generation,
                        next_free: self.free_head,
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
        self.entries
            .iter()
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

    /// Past `DOUBLE_UP_TO` entries a table grows by a sixteenth, so its
    /// unused capacity stays within 6.25% of its length.
    #[test]
    fn growth_past_the_doubling_range_is_by_a_sixteenth() {
        let mut v: Vec<u32> = Vec::new();
        for i in 0..100_000 {
            push_capped(&mut v, i);
            assert!(v.len() < DOUBLE_UP_TO || v.capacity() <= v.len() + v.len() / 16 + 1);
        }
        let mut s = Slab::new();
        for i in 0..100_000 {
            s.insert(i);
        }
        assert!(s.entries.capacity() <= 100_000 + 100_000 / 16);
    }
}
