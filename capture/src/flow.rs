//! Bounded flow table with a seeded hasher, idle timeout and LRU eviction.
