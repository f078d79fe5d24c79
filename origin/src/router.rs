//! The router API client: asks whether a publisher's key may publish.

use api_types::{AuthorizeRequest, AuthorizeResponse};
use reqwest::{Client, StatusCode, Url};
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AuthorizeError {
    #[error("stream key refused")]
    Refused,
    #[error("router API unavailable: {0}")]
    Unavailable(String),
}

#[derive(Clone)]
pub struct RouterClient {
    client: Client,
    authorize: Url,
    token: String,
    origin: String,
}

impl RouterClient {
    pub fn new(base: &Url, token: &str, origin: &str, timeout: Duration) -> anyhow::Result<RouterClient> {
        Ok(RouterClient {
            client: Client::builder().timeout(timeout).connect_timeout(timeout).build()?,
            authorize: base.join("authorize")?,
            token: token.to_string(),
            origin: origin.to_string(),
        })
    }

    pub async fn authorize(&self, key: &str) -> Result<AuthorizeResponse, AuthorizeError> {
        let body = AuthorizeRequest {
            key: key.to_string(),
            origin: self.origin.clone(),
        };
        let resp = self
            .client
            .post(self.authorize.clone())
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .map_err(|e| AuthorizeError::Unavailable(e.to_string()))?;
        match resp.status() {
            StatusCode::OK => resp
                .json()
                .await
                .map_err(|e| AuthorizeError::Unavailable(e.to_string())),
            StatusCode::FORBIDDEN => Err(AuthorizeError::Refused),
            s => Err(AuthorizeError::Unavailable(format!("answered {s}"))),
        }
    }
}
