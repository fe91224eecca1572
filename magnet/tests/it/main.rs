//! Integration tests: real-world magnet links and property tests.

mod props;
mod real_world;
