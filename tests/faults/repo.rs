//! See the module doc of `faults`.
