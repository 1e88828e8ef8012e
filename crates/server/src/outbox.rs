//! The notification outbox over HTTP, for operators: `GET /v1/outbox` (rows by status, a
//! page at a time, `outbox:read`) and `POST /v1/outbox/replay` (dead letters back to
//! pending, `outbox:replay`). Neither shows an address, a number or a message's text.

use crate::auth::Who;
use crate::problem::Problem;
use crate::{run_post, AppState, Posted};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use xiezhi_core::{Command, OutboxQuery, OutboxStatus, MAX_OUTBOX_PAGE};

/// `GET /v1/outbox` query parameters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OutboxParams {
    status: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

fn bad_query(detail: String, field: &str) -> Response {
    Problem::new(StatusCode::BAD_REQUEST, "invalid_request", detail).with_field(field).into_response()
}

pub(crate) async fn list(
    State(state): State<AppState>,
    who: Who,
    params: Result<Query<OutboxParams>, QueryRejection>,
) -> Response {
    let Query(p) = match params {
        Ok(p) => p,
        Err(error) => {
            let names = format!("`status` (pending|dead|delivered), `cursor`, `limit` (1-{MAX_OUTBOX_PAGE})");
            return bad_query(format!("query parameters are {names}: {}", error.body_text()), "query");
        }
    };
    let status = match p.status {
        None => None,
        Some(text) => match serde_json::from_value::<OutboxStatus>(serde_json::Value::String(text.clone())) {
            Ok(status) => Some(status),
            Err(_) => return bad_query(format!("`status` is one of pending, dead, delivered, not `{text}`"), "status"),
        },
    };
    let query = OutboxQuery { status, cursor: p.cursor, limit: p.limit };
    crate::query(&state, who, Command::ListOutbox(query)).await
}

pub(crate) async fn replay(State(state): State<AppState>, posted: Posted) -> Response {
    run_post(&state, posted, StatusCode::OK, |request| Ok(Command::ReplayOutbox(request))).await
}
