//! The origin: ingest (RTMP, SRT) -> transcode (GStreamer ABR ladder) ->
//! package (CMAF HLS) -> serve (HTTP).
//!
//! - [`ingest`]: protocol servers that turn publishers into container bytes;
//! - [`publish`]: one publish from authorization to EXT-X-ENDLIST;
//! - [`router`]: the router API client (`POST /authorize`);
//! - [`profiles`]: named ABR ladders, fitted to each source;
//! - [`transcode`]: the GStreamer pipeline of one publish;
//! - [`package`]: CMAF segments and HLS playlists on disk;
//! - [`serve`]: HTTP with cache headers and CORS;
//! - [`janitor`]: removal of ended sessions, the `--max-disk` bound;
//! - [`app`]: [`run`], the whole origin until its shutdown future resolves;
//! - [`metrics`], [`settings`].

pub mod app;
pub mod ingest;
pub mod janitor;
pub mod metrics;
pub mod package;
pub mod profiles;
pub mod publish;
pub mod router;
pub mod serve;
pub mod settings;
pub mod transcode;

pub use app::{Listeners, SHUTDOWN_TIMEOUT, run};
