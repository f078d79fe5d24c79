//! The router API client: whether a publisher's key may publish
//! (`POST /authorize`, which also claims the stream for this origin), and
//! the claim's renewal and release while and after it publishes
//! (`PUT`/`DELETE /claims/{name}`).
//!
//! The key travels only in request bodies, never in a URL or a log line.

use api_types::{AuthorizeRequest, AuthorizeResponse, ClaimRelease, ClaimRenewal};
use reqwest::{Client, StatusCode, Url};
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AuthorizeError {
    #[error("stream key refused")]
    Refused,
    #[error("the stream is being published on another origin")]
    ClaimedElsewhere,
    #[error("router API unavailable: {0}")]
    Unavailable(String),
}

/// What the router said to a claim renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// Still ours.
    Held,
    /// The key was disabled, deleted or rotated: the publish must end.
    Revoked,
    /// Another origin holds the stream now: the publish must end.
    ClaimedElsewhere,
}

#[derive(Clone)]
pub struct RouterClient {
    client: Client,
    base: Url,
    authorize: Url,
    token: String,
    origin: String,
}

impl RouterClient {
    pub fn new(base: &Url, token: &str, origin: &str, timeout: Duration) -> anyhow::Result<RouterClient> {
        Ok(RouterClient {
            client: Client::builder().timeout(timeout).connect_timeout(timeout).build()?,
            base: base.clone(),
            authorize: base.join("authorize")?,
            token: token.to_string(),
            origin: origin.to_string(),
        })
    }

    /// Asks whether `key` may publish and claims its stream for `session`.
    pub async fn authorize(&self, key: &str, session: &str) -> Result<AuthorizeResponse, AuthorizeError> {
        let body = AuthorizeRequest {
            key: key.to_string(),
            origin: self.origin.clone(),
            session: session.to_string(),
        };
        let resp = self
            .client
            .post(self.authorize.clone())
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .map_err(|e| AuthorizeError::Unavailable(e.without_url().to_string()))?;
        match resp.status() {
            StatusCode::OK => resp
                .json()
                .await
                .map_err(|e| AuthorizeError::Unavailable(e.without_url().to_string())),
            StatusCode::FORBIDDEN => Err(AuthorizeError::Refused),
            StatusCode::CONFLICT => Err(AuthorizeError::ClaimedElsewhere),
            s => Err(AuthorizeError::Unavailable(format!("answered {s}"))),
        }
    }

    fn claim_url(&self, stream: &str) -> Result<Url, AuthorizeError> {
        // Stream names are validated ([a-z0-9_-]), so they need no escaping.
        self.base
            .join(&format!("claims/{stream}"))
            .map_err(|e| AuthorizeError::Unavailable(e.to_string()))
    }

    /// Sends `body` to `/claims/{stream}` and gives back the status; `Err`
    /// when there is no answer at all.
    async fn claim_request(
        &self,
        method: reqwest::Method,
        stream: &str,
        body: &impl serde::Serialize,
    ) -> Result<StatusCode, AuthorizeError> {
        self.client
            .request(method, self.claim_url(stream)?)
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .map(|r| r.status())
            .map_err(|e| AuthorizeError::Unavailable(e.without_url().to_string()))
    }

    /// Renews this origin's claim on `stream` with the key it was authorized
    /// with. `Err` means no definitive answer (unreachable, 5xx, ...).
    pub async fn renew(&self, stream: &str, key: &str, session: &str) -> Result<Renewal, AuthorizeError> {
        let body = ClaimRenewal {
            key: key.to_string(),
            origin: self.origin.clone(),
            session: session.to_string(),
        };
        match self.claim_request(reqwest::Method::PUT, stream, &body).await? {
            StatusCode::OK => Ok(Renewal::Held),
            StatusCode::FORBIDDEN => Ok(Renewal::Revoked),
            StatusCode::CONFLICT => Ok(Renewal::ClaimedElsewhere),
            s => Err(AuthorizeError::Unavailable(format!("answered {s}"))),
        }
    }

    /// Gives the claim on `stream` back (best effort: it expires anyway).
    pub async fn release(&self, stream: &str, session: &str) -> Result<(), AuthorizeError> {
        let body = ClaimRelease {
            origin: self.origin.clone(),
            session: session.to_string(),
        };
        match self.claim_request(reqwest::Method::DELETE, stream, &body).await? {
            s if s.is_success() => Ok(()),
            s => Err(AuthorizeError::Unavailable(format!("answered {s}"))),
        }
    }
}
