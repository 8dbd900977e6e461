//! BGP messages: types and the wire codec, one module per RFC concern.
pub mod types;
