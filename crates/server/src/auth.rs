//! Who is calling, and may they: every request names its route's access in [`ROUTES`],
//! and [`authenticate`] checks the bearer credential against it before any handler runs.
//!
//! Scopes are checked here; whose payment, line or merchant a request touches is checked by
//! the writer (`xiezhi_core`'s `State::authorize`), where those records are at hand.

use crate::problem::Problem;
use crate::AppState;
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use xiezhi_core::{Caller, Scope};

/// What a route needs from its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health, the API document, the index).
    Public,
    /// Any valid API key or shopper token.
    Authenticated,
    /// An API key holding the scope.
    Key(Scope),
    /// An API key holding the scope, or a shopper token (for the shopper's own line).
    KeyOrShopper(Scope),
}

/// Every route with its access, in one table: the router, the API document and the
/// table-driven authorization test all read it.
pub const ROUTES: &[(&str, &str, Access)] = {
    use Access::*;
    use Scope::*;
    &[
        ("GET", "/", Public),
        ("GET", "/healthz", Public),
        ("GET", "/openapi.json", Public),
        ("GET", "/metrics", Key(MetricsRead)),
        ("GET", "/v1/stats", Key(StatsRead)),
        ("POST", "/v1/merchants", Key(MerchantsWrite)),
        ("GET", "/v1/merchants/{id}", Key(MerchantsRead)),
        ("GET", "/v1/merchants/{id}/qr", Key(MerchantsRead)),
        ("POST", "/v1/merchants/{id}/qr", Key(QrWrite)),
        ("POST", "/v1/credit-lines", Key(LinesWrite)),
        ("GET", "/v1/credit-lines/{id}", KeyOrShopper(LinesRead)),
        ("POST", "/v1/credit-lines/{id}/repayments", Key(LinesWrite)),
        ("POST", "/v1/credit-lines/{id}/profile", Key(LinesWrite)),
        ("GET", "/v1/credit-lines/{id}/notifications", KeyOrShopper(LinesRead)),
        ("POST", "/v1/payments", Key(PaymentsWrite)),
        ("GET", "/v1/payments/{id}", Key(PaymentsRead)),
        ("POST", "/v1/payments/{id}/capture", Key(PaymentsSettle)),
        ("POST", "/v1/payments/{id}/void", Key(PaymentsSettle)),
        ("POST", "/v1/payments/{id}/refunds", Key(PaymentsSettle)),
        ("GET", "/v1/payments/{id}/decision", Key(DecisionsRead)),
        ("POST", "/v1/payments/{id}/decision/replay", Key(DecisionsRead)),
        ("GET", "/v1/challenges/{id}", KeyOrShopper(ChallengesWrite)),
        ("POST", "/v1/challenges/{id}", KeyOrShopper(ChallengesWrite)),
        ("GET", "/v1/rules", Key(RulesRead)),
        ("PUT", "/v1/rules", Key(RulesWrite)),
        ("GET", "/v1/rules/features", Key(RulesRead)),
        ("GET", "/v1/reason-codes", Authenticated),
        ("GET", "/v1/policy", Key(PolicyRead)),
        ("PUT", "/v1/policy", Key(PolicyWrite)),
        ("GET", "/v1/lists", Key(ListsRead)),
        ("POST", "/v1/lists", Key(ListsWrite)),
        ("DELETE", "/v1/lists/{id}", Key(ListsWrite)),
        ("GET", "/v1/api-keys", Key(KeysAdmin)),
        ("POST", "/v1/api-keys", Key(KeysAdmin)),
        ("POST", "/v1/api-keys/{id}/rotate", Key(KeysAdmin)),
        ("DELETE", "/v1/api-keys/{id}", Key(KeysAdmin)),
        ("POST", "/v1/shopper-tokens", Key(TokensMint)),
        ("GET", "/v1/restrictions", Key(DecisionsRead)),
        ("GET", "/v1/restrictions/{id}", Key(DecisionsRead)),
        ("POST", "/v1/restrictions/{id}/lift", Key(RestrictionsWrite)),
        ("GET", "/v1/users/{user_id}/status", KeyOrShopper(LinesRead)),
        ("POST", "/v1/appeals", KeyOrShopper(AppealsFile)),
        ("GET", "/v1/appeals", Key(AppealsDecide)),
        ("GET", "/v1/appeals/{id}", KeyOrShopper(AppealsDecide)),
        ("POST", "/v1/appeals/{id}/claim", Key(AppealsDecide)),
        ("POST", "/v1/appeals/{id}/decision", Key(AppealsDecide)),
        ("GET", "/v1/fund", Key(FundRead)),
        ("POST", "/v1/fund/deposits", Key(FundWrite)),
        ("GET", "/v1/compensations", Key(FundRead)),
        ("GET", "/v1/outbox", Key(OutboxRead)),
        ("POST", "/v1/outbox/replay", Key(OutboxReplay)),
        ("GET", "/v1/reports/conduct", Key(ReportsRead)),
    ]
};

/// The access a matched route needs; `None` for a method the route does not serve (the
/// router answers 405 for it).
pub fn access(method: &Method, route: &str) -> Option<Access> {
    // The router answers HEAD on every GET route: it needs what the GET needs.
    let method = if method == Method::HEAD { "GET" } else { method.as_str() };
    ROUTES.iter().find(|(m, r, _)| *r == route && *m == method).map(|(_, _, a)| *a)
}

fn unauthenticated(detail: &str, presented: bool) -> Response {
    let challenge =
        if presented { "Bearer realm=\"xiezhi\", error=\"invalid_token\"" } else { "Bearer realm=\"xiezhi\"" };
    let mut response = Problem::new(StatusCode::UNAUTHORIZED, "unauthenticated", detail).into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    response
}

fn forbidden(scope: Option<Scope>, detail: String) -> Response {
    let mut problem = Problem::new(StatusCode::FORBIDDEN, "forbidden", detail);
    problem.scope = scope.map(|s| s.as_str().to_owned());
    problem.into_response()
}

/// The bearer credential, if the request carries one in the expected form.
fn bearer(request: &Request) -> Result<Option<&str>, Response> {
    let Some(value) = request.headers().get(header::AUTHORIZATION) else { return Ok(None) };
    let text = value.to_str().map_err(|_| unauthenticated("the Authorization header is not visible ASCII", true))?;
    match text.split_once(' ') {
        Some((scheme, credential)) if scheme.eq_ignore_ascii_case("bearer") && !credential.trim().is_empty() => {
            Ok(Some(credential.trim()))
        }
        _ => Err(unauthenticated("send `Authorization: Bearer <key>`", true)),
    }
}

/// Checks the caller against the route's access and hands the [`Caller`] to the handler
/// (as a request extension). Runs before the body is read.
pub(crate) async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let Some(route) = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()) else {
        // No such route: the router answers 404.
        return next.run(request).await;
    };
    let access = match access(request.method(), &route) {
        Some(access) => access,
        // A method the route does not serve: answered here, so no handler ever runs for a
        // method the table does not name.
        None if ROUTES.iter().any(|(_, r, _)| *r == route) => {
            let detail = format!("{} is not allowed here", request.method());
            return Problem::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", detail).into_response();
        }
        // A route missing from the table is refused, never served unchecked.
        None => {
            tracing::error!(%route, "a route has no entry in the access table; refused");
            let detail = "this route has no access rule";
            return Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "no_access_rule", detail).into_response();
        }
    };
    if access == Access::Public {
        return next.run(request).await;
    }
    let credential = match bearer(&request) {
        Ok(Some(credential)) => credential,
        Ok(None) => return unauthenticated("this endpoint needs `Authorization: Bearer <key>`", false),
        Err(response) => return response,
    };
    let caller = match resolve(&state, credential) {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    if let Err(response) = permits(access, &caller) {
        return response;
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

fn resolve(state: &AppState, credential: &str) -> Result<Caller, Response> {
    if credential.starts_with(crate::tokens::TOKEN_PREFIX) {
        let now_ms = state.service.clock().now_ms();
        return match state.tokens.verify(credential, now_ms) {
            Ok(shopper) if state.service.key_ring().principal_active(&shopper.minted_by, now_ms) => {
                Ok(Caller::Shopper(Arc::new(shopper)))
            }
            Ok(_) => Err(unauthenticated("the key that minted this shopper token is revoked or expired", true)),
            Err(reason) => Err(unauthenticated(&format!("the shopper token is not valid: {reason}"), true)),
        };
    }
    let now_ms = state.service.clock().now_ms();
    match state.service.key_ring().authenticate(credential, now_ms) {
        Ok(principal) => Ok(Caller::Key(principal)),
        Err(_) => Err(unauthenticated("the API key is unknown, revoked or expired", true)),
    }
}

fn permits(access: Access, caller: &Caller) -> Result<(), Response> {
    let scope = match access {
        Access::Public | Access::Authenticated => return Ok(()),
        Access::Key(scope) | Access::KeyOrShopper(scope) => scope,
    };
    match caller {
        Caller::Shopper(_) if matches!(access, Access::KeyOrShopper(_)) => Ok(()),
        Caller::Shopper(_) => Err(forbidden(
            None,
            "a shopper token cannot do this; it reads its own line and status, answers its own challenges and \
             files its own appeals"
                .into(),
        )),
        Caller::Key(principal) if principal.scopes.contains(scope) => Ok(()),
        Caller::Key(_) => Err(forbidden(Some(scope), format!("this key lacks the scope `{}`", scope.as_str()))),
        Caller::System => Ok(()),
    }
}

/// The authenticated caller of a request (put there by [`authenticate`]).
pub struct Who(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Who {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Who, Response> {
        caller_of(&parts.extensions).map(Who)
    }
}

/// The caller [`authenticate`] found for a request. A handler that asks for one on a route
/// the table marks public would run as nobody: refused rather than defaulted to a trusted
/// caller.
pub(crate) fn caller_of(extensions: &axum::http::Extensions) -> Result<Caller, Response> {
    extensions
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| unauthenticated("this endpoint needs `Authorization: Bearer <key>`", false))
}
