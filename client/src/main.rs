//! The `rivulet` command line.
fn main() {}
