//! `/v1/api-keys` (scope `keys:admin`) and `/v1/shopper-tokens` (scope `tokens:mint`).
//!
//! A new or rotated key is in its creation's answer once and nowhere else: these routes
//! ignore `Idempotency-Key`, since keeping the answer for a replay would keep the key.

use crate::auth::Who;
use crate::problem::Problem;
use crate::tokens::{DEFAULT_SHOPPER_TOKEN_TTL_S, MAX_SHOPPER_TOKEN_TTL_S};
use crate::{query, run_post, AppState, Posted};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use xiezhi_core::{Caller, Command, KeyCommand, Scope, Shopper};

pub(crate) async fn list(State(state): State<AppState>, who: Who) -> Response {
    query(&state, who, Command::Keys(KeyCommand::List)).await
}

pub(crate) async fn create(State(state): State<AppState>, posted: Posted) -> Response {
    run_post(&state, posted, StatusCode::CREATED, |r| Ok(Command::Keys(KeyCommand::Create(r)))).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RotateRequest {
    /// How long the old key stays valid, in seconds (default a day).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 2592000, example = 86400)]
    overlap_s: Option<i64>,
}

pub(crate) async fn rotate(State(state): State<AppState>, Path(id): Path<String>, posted: Posted) -> Response {
    run_post(&state, posted, StatusCode::CREATED, |r: RotateRequest| {
        Ok(Command::Keys(KeyCommand::Rotate { id, overlap_s: r.overlap_s }))
    })
    .await
}

pub(crate) async fn revoke(State(state): State<AppState>, who: Who, Path(id): Path<String>) -> Response {
    query(&state, who, Command::Keys(KeyCommand::Revoke { id })).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenRequest {
    credit_line_id: String,
    #[schema(min_length = 1, max_length = 128, example = "phone-1")]
    device_id: String,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3600, example = 900)]
    ttl_s: Option<i64>,
}

fn check_token_request(request: &TokenRequest) -> Result<i64, Problem> {
    let ttl_s = request.ttl_s.unwrap_or(DEFAULT_SHOPPER_TOKEN_TTL_S);
    if !(1..=MAX_SHOPPER_TOKEN_TTL_S).contains(&ttl_s) {
        let detail = format!("a shopper token lives 1 to {MAX_SHOPPER_TOKEN_TTL_S} seconds");
        return Err(Problem::new(StatusCode::BAD_REQUEST, "invalid_request", detail).with_field("ttl_s"));
    }
    let max = xiezhi_core::MAX_TEXT_CHARS;
    if request.device_id.is_empty() || request.device_id.chars().count() > max {
        let detail = format!("`device_id` is 1 to {max} characters");
        return Err(Problem::new(StatusCode::BAD_REQUEST, "invalid_request", detail).with_field("device_id"));
    }
    Ok(ttl_s)
}

/// A token for one shopper's line and device, minted for a wallet key that opened the line
/// (or an operator key): the writer checks the line is the caller's before anything is signed.
pub(crate) async fn mint_shopper_token(State(state): State<AppState>, posted: Posted) -> Response {
    let request: TokenRequest = match posted.parse() {
        Ok(request) => request,
        Err(problem) => return problem.into_response(),
    };
    let ttl_s = match check_token_request(&request) {
        Ok(ttl_s) => ttl_s,
        Err(problem) => return problem.into_response(),
    };
    // A token can do what its minter could: read the line and answer its challenges.
    let (wallet_id, minted_by) = match &posted.caller {
        Caller::Key(p) if p.scopes.contains(Scope::LinesRead) && p.scopes.contains(Scope::ChallengesWrite) => {
            (p.wallet_id.clone().unwrap_or_default(), p.principal_id.clone())
        }
        _ => {
            let detail = "minting a shopper token needs lines:read and challenges:write beside tokens:mint";
            let mut problem = Problem::new(StatusCode::FORBIDDEN, "forbidden", detail);
            problem.scope = Some("challenges:write".into());
            return problem.into_response();
        }
    };
    let line = Command::GetCreditLine { id: request.credit_line_id.clone() };
    if let Err(error) = state.service.execute_as(posted.caller, line, None).await {
        return Problem::from(error).into_response();
    }
    let shopper =
        Shopper { credit_line_id: request.credit_line_id, device_id: request.device_id, wallet_id, minted_by };
    let now_ms = state.service.clock().now_ms();
    let token = state.tokens.mint(&shopper, now_ms, ttl_s);
    let body = serde_json::json!({
        "token": token,
        "credit_line_id": shopper.credit_line_id,
        "device_id": shopper.device_id,
        "expires_at": xiezhi_core::timestamp(now_ms.saturating_add(ttl_s * 1000)),
    });
    (StatusCode::CREATED, Json(body)).into_response()
}
