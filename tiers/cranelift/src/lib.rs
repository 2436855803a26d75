//! Spate baseline tier (under construction).
