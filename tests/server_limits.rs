//! Slow clients against the example servers (filled in by the next commits).
