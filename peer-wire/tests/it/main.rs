//! Integration tests for rivulet-peer-wire.

mod codec_props;
mod extension_props;
mod state_props;
