//! The OpenAPI document served at `/openapi.json`, generated from the
//! handlers' annotations and the `api-types` schemas, so it cannot drift from
//! the code.

use crate::api::{admin, health, ingest, recordings, reports, routing, viewers};
use api_types::*;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "Dionysia router API", description = "Stream keys, ingest authorization, discovery reports, routing, playback policy and tokens, viewer counts, recordings."),
    paths(
        admin::create, admin::list, admin::show, admin::update, admin::delete, admin::rotate_key, admin::mint_token,
        viewers::put,
        ingest::authorize, ingest::renew, ingest::release, reports::put, reports::delete, routing::show, routing::list,
        recordings::put, recordings::delete, recordings::list, recordings::route,
        health::healthz, health::readyz,
    ),
    components(schemas(
        ErrorBody, CreateStream, UpdateStream, StreamCreated, StreamInfo, AuthorizeRequest, AuthorizeResponse,
        ClaimRenewal, ClaimRelease, ClaimRenewed,
        ProfileRef, Rendition, OriginReport, ReportAccepted, RouteOrigin, Route,
        Playback, CreatePlaybackToken, PlaybackToken, ViewerReport, ViewersAccepted, WebhookEvent,
        RecordingMeta, RecordingReport, Recording, RecordingRoute,
    )),
    modifiers(&BearerSchemes),
)]
struct ApiDoc;

struct BearerSchemes;

impl Modify for BearerSchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for name in ["admin", "agent"] {
            components.add_security_scheme(name, SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        }
    }
}

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
