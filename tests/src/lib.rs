//! Spate test support.
