//! `GET /v1/reports/conduct?from=&to=` (`reports:read`): the conduct report for the operator
//! and its regulator, computed by `xiezhi_core::conduct` from the service's own records, as
//! `xiezhi report conduct --data-dir` computes it offline from a data directory.

use crate::auth::Who;
use crate::problem::Problem;
use crate::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use xiezhi_core::conduct::ReportPeriod;

/// `GET /v1/reports/conduct` query parameters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConductParams {
    from: Option<String>,
    to: Option<String>,
}

fn bad_query(detail: String, field: &str) -> Response {
    Problem::new(StatusCode::BAD_REQUEST, "invalid_request", detail).with_field(field).into_response()
}

pub(crate) async fn conduct(
    State(state): State<AppState>,
    _who: Who,
    params: Result<Query<ConductParams>, QueryRejection>,
) -> Response {
    let Query(p) = match params {
        Ok(p) => p,
        Err(error) => {
            let detail = format!("query parameters are `from` and `to` (ISO dates, UTC): {}", error.body_text());
            return bad_query(detail, "query");
        }
    };
    let (from, to) = match (p.from, p.to) {
        (Some(from), Some(to)) => (from, to),
        (from, _) => {
            let missing = if from.is_none() { "from" } else { "to" };
            let detail = format!("`{missing}` is required: `from` and `to` are ISO dates (UTC), such as 2026-11-30");
            return bad_query(detail, missing);
        }
    };
    let period = match ReportPeriod::parse(&from, &to) {
        Ok(period) => period,
        Err(error) => return Problem::from(error).into_response(),
    };
    match state.service.conduct_report(&period).await {
        Ok(report) => (StatusCode::OK, Json(report)).into_response(),
        Err(error) => Problem::from(error).into_response(),
    }
}
