//! Spate engine (under construction).
