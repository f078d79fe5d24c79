//! Request and response bodies of the router API.
//!
//! Who sends what:
//! - operators: [`CreateStream`], [`UpdateStream`] -> [`StreamCreated`], [`StreamInfo`]
//! - origins, when a publisher connects: [`AuthorizeRequest`] -> [`AuthorizeResponse`]
//! - discovery agents: [`OriginReport`] -> [`ReportAccepted`]
//! - edges: -> [`Route`] (and a list of them); [`ViewerReport`] -> [`ViewersAccepted`]
//! - operators' playback URLs: [`CreatePlaybackToken`] -> [`PlaybackToken`]
//! - webhook receivers: [`WebhookEvent`]
//!
//! Every error body is an [`ErrorBody`].

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// The transcoding profile used when a stream is created without one.
pub const DEFAULT_PROFILE: &str = "default";

/// Every 4xx/5xx answer of the router API.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// A human-readable reason, safe to show to the client.
    pub error: String,
}

/// `POST /admin/streams`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateStream {
    /// Stream name, `[a-z0-9][a-z0-9_-]{0,63}`; it is what viewers see in URLs.
    pub name: String,
    /// Name of a transcoding profile known to the origins (default: `default`).
    #[serde(default)]
    pub profile: Option<String>,
}

/// `PATCH /admin/streams/{name}`: fields left out are unchanged.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateStream {
    /// Disabled streams cannot publish (their key is answered 403).
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub profile: Option<String>,
    /// Who may watch: `public` or `token`.
    #[serde(default)]
    pub playback: Option<Playback>,
    /// Whether each publish session is kept as a recording (VOD) after it
    /// ends; takes effect at the next publish.
    #[serde(default)]
    pub record: Option<bool>,
}

/// A stream's playback policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Playback {
    /// Anyone who knows the name may watch (the default).
    #[default]
    Public,
    /// Every object needs a valid playback token for the stream
    /// (`api_types::playback`), carried as a `/t/{token}/` path prefix.
    Token,
}

impl Playback {
    pub fn as_str(&self) -> &'static str {
        match self {
            Playback::Public => "public",
            Playback::Token => "token",
        }
    }
}

/// Answer to stream creation and key rotation: the only time the key is shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StreamCreated {
    pub name: String,
    /// The secret stream key publishers use. Only its hash is stored.
    pub key: String,
    pub profile: String,
}

/// A stream as operators see it (never with its key).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StreamInfo {
    pub name: String,
    pub profile: String,
    pub enabled: bool,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// Whether at least one origin currently reports the stream live.
    pub live: bool,
    /// The live origins holding the stream (empty when not live).
    pub origins: Vec<RouteOrigin>,
    pub playback: Playback,
    /// Concurrent viewers, summed over the edges reporting within the last
    /// few seconds.
    pub viewers: u64,
    /// Whether publish sessions are recorded.
    #[serde(default)]
    pub record: bool,
}

/// Shortest playback token lifetime accepted, in seconds.
pub const MIN_TOKEN_TTL_S: u64 = 60;
/// Longest playback token lifetime accepted, in seconds (7 days).
pub const MAX_TOKEN_TTL_S: u64 = 7 * 24 * 3600;
/// Playback token lifetime when none is asked for, in seconds.
pub const DEFAULT_TOKEN_TTL_S: u64 = 3600;

/// `POST /admin/streams/{name}/playback-tokens`: both fields optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePlaybackToken {
    /// Lifetime in seconds, 60 to 604800 (default 3600).
    #[serde(default)]
    pub ttl_s: Option<u64>,
    /// A viewer binding, `[A-Za-z0-9_-]{0,64}`, signed into the token.
    #[serde(default)]
    pub viewer: Option<String>,
}

/// `201` answer to [`CreatePlaybackToken`].
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PlaybackToken {
    /// `{kid}.{exp_ms}.{viewer}.{sig}` (see docs/router-api.md).
    pub token: String,
    pub expires_at_ms: u64,
    /// The path a player opens on any edge: `/t/{token}/{stream}/index.m3u8`.
    pub url: String,
}

/// Most streams one [`ViewerReport`] may list.
pub const MAX_VIEWER_STREAMS: usize = 1000;
/// Largest count one edge may report for one stream; larger ones are capped.
pub const MAX_VIEWERS_PER_STREAM: u64 = 1_000_000;

/// `PUT /viewers/{edge_id}`: an edge's concurrent viewers per stream. Each
/// report replaces the edge's previous one; streams left out count zero.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ViewerReport {
    /// Stream name -> viewers on this edge (at most 1000 streams; counts
    /// above 1000000 are capped).
    pub streams: BTreeMap<String, u64>,
}

/// Answer to an accepted [`ViewerReport`].
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ViewersAccepted {
    /// How long the report counts without another one, in milliseconds.
    pub ttl_ms: u64,
}

/// The body of a webhook delivery, signed in `X-Dionysia-Signature`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookEvent {
    /// `stream.live` or `stream.ended`.
    pub event: String,
    pub stream: String,
    /// The origin that held the stream's claim.
    pub origin: String,
    /// The publish session.
    pub session: String,
    /// When the router saw it, milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Unique per event (retries carry the same id): receivers dedupe on it.
    pub id: String,
}

/// `POST /authorize`: an origin asks whether a publisher's key may publish.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeRequest {
    /// The stream key the publisher presented.
    pub key: String,
    /// The id of the origin asking.
    pub origin: String,
    /// The publish session the origin will open: with `origin`, the holder
    /// of the stream's claim (one origin at a time per stream).
    pub session: String,
}

/// `PUT /claims/{name}`: an origin renews its claim on a live stream with
/// the key the publisher gave it, every few seconds while it publishes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRenewal {
    /// The stream key the publish was authorized with.
    pub key: String,
    pub origin: String,
    pub session: String,
}

/// `DELETE /claims/{name}`: an origin gives its claim back when a publish ends.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRelease {
    pub origin: String,
    pub session: String,
}

/// `200` answer to [`ClaimRenewal`].
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClaimRenewed {
    /// How long the claim lives unless renewed again, in milliseconds.
    pub ttl_ms: u64,
}

/// The transcoding profile an origin must apply to a stream. Ladders are
/// defined in each origin's own configuration; the router only names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProfileRef {
    pub name: String,
}

/// `200` answer to [`AuthorizeRequest`].
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuthorizeResponse {
    /// The stream's public name: the only identifier used in playback paths.
    pub name: String,
    pub profile: ProfileRef,
    /// Keep this session as a recording after it ends.
    #[serde(default)]
    pub record: bool,
}

/// `{stream}/{session}/recording.json` (`layout::RECORDING_META`): written by
/// the origin when a recorded session ends, after its VOD playlists; read by
/// the discovery agent, which reports it as a [`RecordingReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RecordingMeta {
    pub stream: String,
    pub session: String,
    /// Wall-clock time of the session's first media, ms since the Unix epoch.
    pub started_at_ms: u64,
    /// Wall-clock time of the session's end, ms since the Unix epoch.
    pub ended_at_ms: u64,
    /// Media duration of the recording (its VOD playlists' total), seconds.
    pub duration_s: f64,
    #[serde(default)]
    pub renditions: Vec<Rendition>,
}

/// `PUT /origins/{origin_id}/recordings/{name}/{session}`: a discovery agent
/// reports that its origin holds a complete recording. Heartbeated inside
/// the answer's TTL like live reports, deleted when the origin removes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordingReport {
    /// `host:port` at which edges reach the origin's HTTP server.
    pub host: String,
    pub started_at_ms: u64,
    pub ended_at_ms: u64,
    pub duration_s: f64,
    #[serde(default)]
    pub renditions: Vec<Rendition>,
}

/// One entry of `GET /streams/{name}/recordings` (newest first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Recording {
    pub session: String,
    pub started_at_ms: u64,
    pub ended_at_ms: u64,
    pub duration_s: f64,
    /// Path of the recording's VOD multivariant playlist, playable through
    /// any edge: `/{name}/{session}/vod.m3u8`.
    pub url: String,
}

/// `GET /recordings/{name}/{session}`: which origin holds a recording (for
/// edges, with the edge token like `GET /streams/{name}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RecordingRoute {
    pub name: String,
    pub session: String,
    pub origin: String,
    pub host: String,
    /// The stream's playback policy (tokens apply to recordings too).
    #[serde(default)]
    pub playback: Playback,
}

/// Most renditions one report may list (the router refuses more). A
/// stream's renditions are its video rungs plus its audio rendition, so an
/// origin refuses a profile of more than `MAX_RENDITIONS - 1` rungs: every
/// stream it can produce is one the router accepts.
pub const MAX_RENDITIONS: usize = 16;

/// One rendition of a live stream, as read from its multivariant playlist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Rendition {
    /// Rendition name, e.g. `720p`; also its folder under the session.
    pub name: String,
    /// Peak bandwidth in bits per second (EXT-X-STREAM-INF BANDWIDTH).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<u64>,
    /// `WIDTHxHEIGHT` when the rendition has video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codecs: Option<String>,
}

/// `PUT /origins/{origin_id}/streams/{name}`: a discovery agent reports that
/// its origin holds a live stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OriginReport {
    /// `host:port` at which edges reach the origin's HTTP server.
    pub host: String,
    /// Path of the multivariant playlist on that server, e.g. `golive/index.m3u8`.
    pub manifest: String,
    /// The publish session id; it changes on every (re)publish.
    pub session: String,
    #[serde(default)]
    pub renditions: Vec<Rendition>,
}

/// Answer to an accepted [`OriginReport`].
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReportAccepted {
    /// How long the report stays live without another one, in milliseconds.
    /// Agents heartbeat well inside it.
    pub ttl_ms: u64,
}

/// One live origin holding a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RouteOrigin {
    pub origin: String,
    pub host: String,
    pub manifest: String,
    pub session: String,
    /// Milliseconds since this origin first reported this session.
    pub age_ms: u64,
    /// Milliseconds since this origin's last report.
    pub last_report_ms: u64,
    #[serde(default)]
    pub renditions: Vec<Rendition>,
}

/// `GET /streams/{name}`: where a live stream can be played from.
///
/// `host` and `manifest` name the preferred origin (the one with the newest
/// session); `origins` lists every live origin, preferred first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Route {
    pub name: String,
    pub manifest: String,
    pub host: String,
    pub origins: Vec<RouteOrigin>,
    /// The stream's playback policy; `token` means every object needs a
    /// valid playback token (edges check it themselves).
    #[serde(default)]
    pub playback: Playback,
    /// Concurrent viewers over all edges.
    #[serde(default)]
    pub viewers: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<CreateStream>(r#"{"name":"a","bogus":1}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field"));
    }

    #[test]
    fn routes_without_policy_or_viewers_are_public() {
        // What a router from before playback policies answers.
        let old = r#"{"name":"golive","manifest":"golive/index.m3u8","host":"h:1","origins":[]}"#;
        let route: Route = serde_json::from_str(old).unwrap();
        assert_eq!((route.playback, route.viewers), (Playback::Public, 0));
    }

    #[test]
    fn route_round_trips() {
        let route = Route {
            name: "golive".into(),
            manifest: "golive/index.m3u8".into(),
            host: "127.0.0.1:8080".into(),
            origins: vec![RouteOrigin {
                origin: "a".into(),
                host: "127.0.0.1:8080".into(),
                manifest: "golive/index.m3u8".into(),
                session: "s1".into(),
                age_ms: 5,
                last_report_ms: 1,
                renditions: vec![],
            }],
            playback: Playback::Token,
            viewers: 3,
        };
        assert!(serde_json::to_string(&route).unwrap().contains(r#""playback":"token""#));
        let json = serde_json::to_string(&route).unwrap();
        assert_eq!(serde_json::from_str::<Route>(&json).unwrap(), route);
    }
}
