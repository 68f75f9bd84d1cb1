//! A per-stream store of values whose sizes add up to at most a byte cap,
//! the oldest dropped first.
//!
//! Two in-memory picture stores need exactly this: the live grid's
//! thumbnails ([`crate::live::thumbs`]) and the web's "Check now" results
//! ([`crate::web::check`]). It sits at the top level, in neither of them,
//! because `web` may use `live` but `live` must not use `web`, and it needs
//! nothing from anyone: the caller says how many bytes a value holds. Not
//! thread-safe by itself; both users keep it behind their own `Mutex`.

use std::collections::HashMap;

/// See the module docs.
#[derive(Debug)]
pub struct ByteCache<V> {
    entries: HashMap<String, Entry<V>>,
    cap_bytes: usize,
    /// Sum of the entries' `bytes`.
    total_bytes: usize,
    /// Insertion counter: lower means older.
    next_seq: u64,
}

#[derive(Debug)]
struct Entry<V> {
    value: V,
    bytes: usize,
    seq: u64,
}

impl<V> ByteCache<V> {
    /// An empty cache holding at most `cap_bytes` (beyond the newest value).
    pub fn new(cap_bytes: usize) -> Self {
        ByteCache {
            entries: HashMap::new(),
            cap_bytes,
            total_bytes: 0,
            next_seq: 0,
        }
    }

    /// The value kept for `key`, if any.
    pub fn get(&self, key: &str) -> Option<&V> {
        self.entries.get(key).map(|e| &e.value)
    }

    /// Forgets `key`.
    pub fn remove(&mut self, key: &str) -> Option<V> {
        let e = self.entries.remove(key)?;
        self.total_bytes -= e.bytes;
        Some(e.value)
    }

    /// Keeps `value` (of `bytes` bytes) as the newest value of `key`, then
    /// drops the oldest other keys while the total is over the cap. The new
    /// value itself is never dropped, even if it alone is over the cap.
    pub fn insert(&mut self, key: &str, value: V, bytes: usize) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.remove(key);
        self.entries
            .insert(key.to_owned(), Entry { value, bytes, seq });
        self.total_bytes += bytes;
        while self.total_bytes > self.cap_bytes {
            let oldest = self
                .entries
                .iter()
                .filter(|(k, _)| k.as_str() != key)
                .min_by_key(|(_, e)| e.seq)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    self.remove(&k);
                }
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_go_first_and_the_newest_stays() {
        let mut c = ByteCache::new(10);
        c.insert("a", 'a', 4);
        c.insert("b", 'b', 4);
        c.insert("a", 'A', 4); // a is now newer than b
        c.insert("c", 'c', 4);
        assert_eq!(c.get("b"), None, "the oldest went first");
        assert_eq!((c.get("a"), c.get("c")), (Some(&'A'), Some(&'c')));

        c.insert("big", 'x', 50);
        assert_eq!(
            c.get("big"),
            Some(&'x'),
            "the newest stays, even over the cap"
        );
        assert_eq!((c.get("a"), c.get("c")), (None, None));
        assert_eq!(c.remove("big"), Some('x'));
        c.insert("d", 'd', 10);
        assert_eq!(c.get("d"), Some(&'d'), "the cap is inclusive");
    }
}
