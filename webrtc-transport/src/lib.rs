//! `rivulet-webrtc-transport`: not built yet. See the workspace README for the plan.
//!
//! ```
//! // Nothing to show yet.
//! ```
