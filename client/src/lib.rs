//! `rivulet`: the reference client built from the rivulet crates (under construction).
//!
//! ```
//! // The library grows with the client issue.
//! ```
