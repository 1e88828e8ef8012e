//! What a restricted user can turn to, and who answers: `/v1/restrictions` (operators and
//! analysts read them; an operator lifts one with a reason), `/v1/users/{user_id}/status`
//! (can this user pay, and if not, why and what can they do), and `/v1/appeals` (a user
//! files, a reviewer with `appeals:decide` claims and decides).

use crate::auth::Who;
use crate::problem::Problem;
use crate::{query, run_post, AppState, Posted};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use xiezhi_core::{AppealQuery, AppealStatus, Command, Language, RestrictionQuery, RestrictionStatus, MAX_PAGE};

/// `GET /v1/restrictions` query parameters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RestrictionParams {
    status: Option<String>,
    credit_line_id: Option<String>,
    user_id: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/appeals` query parameters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AppealParams {
    status: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

fn bad_query(detail: String, field: &str) -> Response {
    Problem::new(StatusCode::BAD_REQUEST, "invalid_request", detail).with_field(field).into_response()
}

fn query_rejection(error: QueryRejection, names: &str) -> Response {
    bad_query(format!("query parameters are {names}: {}", error.body_text()), "query")
}

/// A `status` filter's value, as the enum serde names it.
fn status_filter<T: serde::de::DeserializeOwned>(text: Option<String>, allowed: &str) -> Result<Option<T>, Response> {
    let Some(text) = text else { return Ok(None) };
    serde_json::from_value(serde_json::Value::String(text.clone()))
        .map(Some)
        .map_err(|_| bad_query(format!("`status` is one of {allowed}, not `{text}`"), "status"))
}

pub(crate) async fn list_restrictions(
    State(state): State<AppState>,
    who: Who,
    params: Result<Query<RestrictionParams>, QueryRejection>,
) -> Response {
    let names = "`status` (active|lifted), `credit_line_id`, `user_id`, `cursor`, `limit` (1-500)";
    let Query(p) = match params {
        Ok(p) => p,
        Err(error) => return query_rejection(error, names),
    };
    let status = match status_filter::<RestrictionStatus>(p.status, "active, lifted") {
        Ok(status) => status,
        Err(response) => return response,
    };
    let query = RestrictionQuery {
        status,
        credit_line_id: p.credit_line_id,
        user_id: p.user_id,
        cursor: p.cursor,
        limit: p.limit,
    };
    crate::query(&state, who, Command::ListRestrictions(query)).await
}

pub(crate) async fn get_restriction(State(state): State<AppState>, who: Who, Path(id): Path<String>) -> Response {
    query(&state, who, Command::GetRestriction { id }).await
}

pub(crate) async fn lift_restriction(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> Response {
    run_post(&state, posted, StatusCode::OK, |request| Ok(Command::LiftRestriction { id, request })).await
}

/// The user's status, in the language `Accept-Language` prefers (`Content-Language` says
/// which).
pub(crate) async fn user_status(
    State(state): State<AppState>,
    who: Who,
    Path(user_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let accept = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok());
    let language = Language::from_accept_language(accept);
    let mut response = query(&state, who, Command::UserStatus { user_id, language }).await;
    if response.status().is_success() {
        let value = header::HeaderValue::from_static(language.as_str());
        response.headers_mut().insert(header::CONTENT_LANGUAGE, value);
    }
    response
}

pub(crate) async fn file_appeal(State(state): State<AppState>, posted: Posted) -> Response {
    run_post(&state, posted, StatusCode::CREATED, |request| Ok(Command::FileAppeal(request))).await
}

pub(crate) async fn list_appeals(
    State(state): State<AppState>,
    who: Who,
    params: Result<Query<AppealParams>, QueryRejection>,
) -> Response {
    let names = format!("`status` (open|claimed|decided|escalated), `cursor`, `limit` (1-{MAX_PAGE})");
    let Query(p) = match params {
        Ok(p) => p,
        Err(error) => return query_rejection(error, &names),
    };
    let status = match status_filter::<AppealStatus>(p.status, "open, claimed, decided, escalated") {
        Ok(status) => status,
        Err(response) => return response,
    };
    let query = AppealQuery { status, cursor: p.cursor, limit: p.limit };
    crate::query(&state, who, Command::ListAppeals(query)).await
}

pub(crate) async fn get_appeal(State(state): State<AppState>, who: Who, Path(id): Path<String>) -> Response {
    query(&state, who, Command::GetAppeal { id }).await
}

pub(crate) async fn claim_appeal(State(state): State<AppState>, Path(id): Path<String>, posted: Posted) -> Response {
    run_post(&state, posted, StatusCode::OK, |_: crate::EmptyRequest| Ok(Command::ClaimAppeal { id })).await
}

pub(crate) async fn decide_appeal(State(state): State<AppState>, Path(id): Path<String>, posted: Posted) -> Response {
    run_post(&state, posted, StatusCode::OK, |decision| Ok(Command::DecideAppeal { id, decision })).await
}
