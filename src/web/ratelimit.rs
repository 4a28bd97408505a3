//! Rate limiting of failed authentications per client address (DESIGN §6), so token and
//! invitation-link guessing is slowed to a trickle. Successful requests are never limited.
//!
//! The address is the TCP peer. Behind a load balancer that is the balancer's address; put the
//! limit at the balancer too.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::http::request::Parts;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::problem::ApiError;

#[derive(Clone)]
pub struct AuthFailures(Arc<DefaultKeyedRateLimiter<IpAddr>>);

impl AuthFailures {
    pub fn per_minute(n: u32) -> Self {
        let n = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        Self(Arc::new(RateLimiter::keyed(Quota::per_minute(n))))
    }

    /// Counts one failure from a client; `Err(429)` once over the budget.
    pub fn record(&self, ip: Option<IpAddr>) -> Result<(), ApiError> {
        let Some(ip) = ip else {
            return Ok(());
        };
        match self.0.check_key(&ip) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                ));
                tracing::warn!(client = %ip, "too many failed authentications");
                let mut e = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_failures",
                    format!(
                        "too many failed authentications from this address; retry in {} s",
                        wait.as_secs().max(1)
                    ),
                );
                e.0.retry_after = Some(wait.as_secs().max(1));
                Err(e)
            }
        }
    }

    /// Forgets addresses whose budget is full again (called now and then).
    pub fn tidy(&self) {
        self.0.retain_recent();
    }
}

/// The TCP peer of a request.
pub fn client_ip(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The client's address, if known (an extractor that never fails).
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(parts)))
    }
}
