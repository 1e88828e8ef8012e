//! The compensation fund over HTTP: `POST /v1/fund/deposits` (an operator with
//! `fund:write` pays the platform's own money in), `GET /v1/fund` (its balance and what
//! waits for it, `fund:read`) and `GET /v1/compensations` (every compensation owed or
//! paid, a page at a time, `fund:read`).

use crate::auth::Who;
use crate::problem::Problem;
use crate::{query, run_post, AppState, Posted};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use xiezhi_core::{Command, CompensationQuery, CompensationStatus, MAX_PAGE};

/// `GET /v1/compensations` query parameters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CompensationParams {
    status: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

fn bad_query(detail: String, field: &str) -> Response {
    Problem::new(StatusCode::BAD_REQUEST, "invalid_request", detail).with_field(field).into_response()
}

pub(crate) async fn deposit(State(state): State<AppState>, posted: Posted) -> Response {
    run_post(&state, posted, StatusCode::CREATED, |request| Ok(Command::FundDeposit(request))).await
}

pub(crate) async fn get_fund(State(state): State<AppState>, who: Who) -> Response {
    query(&state, who, Command::GetFund).await
}

pub(crate) async fn list_compensations(
    State(state): State<AppState>,
    who: Who,
    params: Result<Query<CompensationParams>, QueryRejection>,
) -> Response {
    let Query(p) = match params {
        Ok(p) => p,
        Err(error) => {
            let names = format!("`status` (due|waiting_for_funds|paid), `cursor`, `limit` (1-{MAX_PAGE})");
            return bad_query(format!("query parameters are {names}: {}", error.body_text()), "query");
        }
    };
    let status = match p.status {
        None => None,
        Some(text) => match serde_json::from_value::<CompensationStatus>(serde_json::Value::String(text.clone())) {
            Ok(status) => Some(status),
            Err(_) => {
                return bad_query(format!("`status` is one of due, waiting_for_funds, paid, not `{text}`"), "status")
            }
        },
    };
    let query = CompensationQuery { status, cursor: p.cursor, limit: p.limit };
    crate::query(&state, who, Command::ListCompensations(query)).await
}
