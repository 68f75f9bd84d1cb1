//! Faults: power loss, data partition full, clock jumps (being written).
