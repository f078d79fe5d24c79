//! The types that cross Dionysia's process boundaries.
//!
//! Every JSON body exchanged with the router API lives here, so that the
//! router API, the origins, the discovery agents and the edges cannot drift
//! apart: a field renamed here is renamed for every process at compile time.
//! The validation rules for the identifiers inside those messages (stream
//! names, origin ids, session ids, `host:port`, manifest paths) live here too,
//! because every process that accepts one from the outside must apply the same
//! rule.

pub mod hls_query;
pub mod ident;
pub mod layout;
pub mod playback;
pub mod router;

pub use ident::{
    InvalidIdent, RESERVED_STREAM_NAMES, validate_host_port, validate_manifest_path, validate_name,
    validate_new_stream_name, validate_session,
};
pub use router::*;
