//! Rate limiting of failed authentications per client address (DESIGN §6), so token and
//! invitation-link guessing is slowed to a trickle. Successful requests are not limited, except
//! that an invitation accept from a client over its budget is refused before its token is looked
//! at (so a correct guess made over budget fails too).
//!
//! The address is the TCP peer, unless the peer is one of `server.trusted_proxies`: then it is
//! the right-most address of `X-Forwarded-For` that is not itself a trusted proxy.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::http::request::Parts;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;

use super::AppState;
use super::problem::ApiError;

/// The budget a client address spends from: an IPv4 address, or the /64 an IPv6 address lies
/// in (one host usually holds a whole /64, so per-address budgets would be no limit at all).
/// An IPv4-mapped IPv6 address counts as its IPv4 address.
pub fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[derive(Clone)]
pub struct AuthFailures {
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    /// Clients that went over budget, and until when they stay refused.
    blocked: Arc<Mutex<HashMap<IpAddr, Instant>>>,
    /// Proxies whose `X-Forwarded-For` is believed.
    trusted: Arc<Vec<IpNet>>,
}

impl AuthFailures {
    /// `n` failures per minute per client; `trusted` proxies' `X-Forwarded-For` is honoured.
    pub fn new(n: u32, trusted: Vec<IpNet>) -> Self {
        let n = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: Arc::new(RateLimiter::keyed(Quota::per_minute(n))),
            blocked: Arc::new(Mutex::new(HashMap::new())),
            trusted: Arc::new(trusted),
        }
    }

    fn too_many(ip: IpAddr, wait: Duration) -> ApiError {
        let secs = wait.as_secs().max(1);
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_failures",
            format!("too many failed authentications from this address; retry in {secs} s"),
        );
        e.0.retry_after = Some(secs);
        tracing::warn!(client = %ip, "too many failed authentications");
        e
    }

    fn blocked(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Instant>> {
        // The map holds plain data: a panic elsewhere cannot leave it inconsistent.
        self.blocked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Err(429)` while the client is over its budget; counts nothing. Checked before a
    /// credential is looked up.
    pub fn check(&self, ip: Option<IpAddr>) -> Result<(), ApiError> {
        let Some(ip) = ip.map(bucket) else {
            return Ok(());
        };
        let now = Instant::now();
        let mut blocked = self.blocked();
        match blocked.get(&ip) {
            Some(until) if *until > now => Err(Self::too_many(ip, *until - now)),
            Some(_) => {
                blocked.remove(&ip);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Counts one failure from a client; `Err(429)` once over the budget.
    pub fn record(&self, ip: Option<IpAddr>) -> Result<(), ApiError> {
        let Some(ip) = ip.map(bucket) else {
            return Ok(());
        };
        match self.limiter.check_key(&ip) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                ));
                self.blocked().insert(ip, Instant::now() + wait);
                Err(Self::too_many(ip, wait))
            }
        }
    }

    /// Forgets addresses whose budget is full again (called now and then).
    pub fn tidy(&self) {
        self.limiter.retain_recent();
        let now = Instant::now();
        self.blocked().retain(|_, until| *until > now);
    }

    /// The client a request comes from (see the module documentation).
    pub fn client(&self, parts: &Parts) -> Option<IpAddr> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())?;
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        // Right to left: each trusted proxy appended the address it got the request from.
        let mut client = peer;
        for value in parts.headers.get_all("x-forwarded-for").iter().rev() {
            let Ok(value) = value.to_str() else {
                return Some(client);
            };
            for hop in value.rsplit(',') {
                // Some proxies add the port (`192.0.2.1:4711`, `[2001:db8::1]:4711`).
                let hop = hop.trim();
                let Some(ip) = hop
                    .parse::<IpAddr>()
                    .ok()
                    .or_else(|| hop.parse::<SocketAddr>().ok().map(|a| a.ip()))
                else {
                    return Some(client);
                };
                client = ip;
                if !self.is_trusted(ip) {
                    return Some(ip);
                }
            }
        }
        Some(client)
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.trusted.iter().any(|n| n.contains(&ip))
    }
}

/// An IPv4 address seen through an IPv6 socket (`::ffff:a.b.c.d`) as the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The client address of a request, if known (see the module documentation).
pub fn client_ip(parts: &Parts, state: &AppState) -> Option<IpAddr> {
    state.auth_failures.client(parts)
}

/// The client's address, if known (an extractor that never fails).
pub struct ClientIp(pub Option<IpAddr>);

impl axum::extract::FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(parts, state)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_share_their_64_and_mapped_v4_is_v4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(bucket(a), bucket(b));
        assert_ne!(bucket(a), bucket(other));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(bucket(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
        let v4: IpAddr = "192.0.2.8".parse().unwrap();
        assert_eq!(bucket(v4), v4);
    }

    #[test]
    fn one_64_spends_one_budget() {
        let f = AuthFailures::new(2, Vec::new());
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert!(f.record(ip("2001:db8::1")).is_ok());
        assert!(f.record(ip("2001:db8::2")).is_ok());
        // A third address in the same /64 is over the shared budget.
        assert!(f.record(ip("2001:db8::3")).is_err());
        assert!(f.check(ip("2001:db8::4")).is_err());
        // Another /64 has its own.
        assert!(f.check(ip("2001:db8:0:1::1")).is_ok());
        assert!(f.record(ip("2001:db8:0:1::1")).is_ok());
    }
}
