//! Rate limits through `tower_governor` (token buckets from the `governor` crate): one per
//! client network, before anything else runs, and one per caller (an API key's principal, a
//! shopper token's line) once the caller is known. Over either: `429 rate_limited` with
//! `Retry-After`.
//!
//! A client network is its IPv4 address or its IPv6 /64: one host owns a whole /64, so
//! keying on full IPv6 addresses would give it 2^64 buckets.

use crate::problem::Problem;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode};
use axum::response::IntoResponse;
use governor::clock::QuantaInstant;
use governor::middleware::NoOpMiddleware;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tower_governor::governor::{GovernorConfig, GovernorConfigBuilder};
use tower_governor::key_extractor::KeyExtractor;
use tower_governor::{GovernorError, GovernorLayer};
use xiezhi_core::Caller;

/// How often buckets idle long enough to be full again are dropped (memory stays bounded by
/// the clients of the last interval).
pub const RATE_STATE_PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// Requests per second and burst, per client network and per caller. `0` turns one off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub per_ip_per_s: u32,
    pub per_ip_burst: u32,
    pub per_caller_per_s: u32,
    pub per_caller_burst: u32,
}

impl Default for RateLimits {
    /// Room for the benchmark's 5,000 payments a second from one key on one host, far above
    /// what a person or a merchant's checkout sends; a deployment sets its own.
    fn default() -> RateLimits {
        RateLimits { per_ip_per_s: 20_000, per_ip_burst: 40_000, per_caller_per_s: 10_000, per_caller_burst: 20_000 }
    }
}

/// The client network of an address: the IPv4 address itself, or the IPv6 /64.
pub(crate) fn network_of(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
        v4 => v4,
    }
}

/// The client network a request came from.
fn network(request: &Request<impl Sized>) -> Option<IpAddr> {
    Some(network_of(request.extensions().get::<ConnectInfo<SocketAddr>>()?.0.ip()))
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct ByNetwork;

impl KeyExtractor for ByNetwork {
    type Key = IpAddr;

    fn extract<T>(&self, request: &Request<T>) -> Result<IpAddr, GovernorError> {
        // A request with no peer (an in-process test) shares one bucket.
        Ok(network(request).unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)))
    }
}

/// Whose budget a request spends: its caller's, or (on public routes) its network's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Spender {
    Principal(String),
    Shopper(String),
    Network(Option<IpAddr>),
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct ByCaller;

impl KeyExtractor for ByCaller {
    type Key = Spender;

    fn extract<T>(&self, request: &Request<T>) -> Result<Spender, GovernorError> {
        Ok(match request.extensions().get::<Caller>() {
            Some(Caller::Key(principal)) => Spender::Principal(principal.principal_id.clone()),
            Some(Caller::Shopper(shopper)) => Spender::Shopper(shopper.credit_line_id.clone()),
            Some(Caller::System) | None => Spender::Network(network(request)),
        })
    }
}

fn refused(error: GovernorError) -> Response<Body> {
    match error {
        GovernorError::TooManyRequests { wait_time, .. } => {
            let detail = format!("too many requests; try again in {} s", wait_time.max(1));
            let mut problem = Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", detail);
            problem.retry_after_s = Some(wait_time.max(1));
            problem.into_response()
        }
        other => {
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "rate_limit_failed", other.to_string()).into_response()
        }
    }
}

type Limiter<K> = GovernorLayer<K, NoOpMiddleware<QuantaInstant>, Body>;

/// A layer allowing `per_s` requests a second with bursts of `burst`, keyed by `extractor`;
/// `None` when `per_s` is 0. Buckets of keys idle for a while are pruned in the background.
pub(crate) fn layer<K>(extractor: K, per_s: u32, burst: u32) -> Option<Limiter<K>>
where
    K: KeyExtractor + Send + Sync + 'static,
    K::Key: Send + Sync,
{
    if per_s == 0 {
        return None;
    }
    let period = Duration::from_nanos(1_000_000_000 / u64::from(per_s));
    let config: GovernorConfig<K, NoOpMiddleware<QuantaInstant>> = GovernorConfigBuilder::default()
        .key_extractor(extractor)
        .period(period.max(Duration::from_nanos(1)))
        .burst_size(burst.max(1))
        .finish()?;
    let limiter = std::sync::Arc::clone(config.limiter());
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let limiter = std::sync::Arc::downgrade(&limiter);
        runtime.spawn(async move {
            let mut ticker = tokio::time::interval(RATE_STATE_PRUNE_INTERVAL);
            loop {
                ticker.tick().await;
                let Some(limiter) = limiter.upgrade() else { break };
                limiter.retain_recent();
            }
        });
    }
    Some(GovernorLayer::new(config).error_handler(refused))
}
