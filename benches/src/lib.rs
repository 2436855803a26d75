//! Spate benchmark support.
