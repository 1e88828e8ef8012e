//! The HTTP API: thin axum handlers over [`xiezhi_core::Service`].
//!
//! Bodies are read as bytes (at most [`MAX_BODY_BYTES`]), fingerprinted for idempotency,
//! then parsed strictly (unknown fields are refused). Errors are problem+json.

// A `Problem` is the error half of every handler's result and becomes the response body;
// boxing it would only add an allocation to every error path.
#![allow(clippy::result_large_err)]

pub mod auth;
mod fund;
mod keys;
mod listen;
pub mod openapi;
mod outbox;
mod problem;
pub mod rate;
mod recourse;
mod reports;
pub mod tokens;

pub use listen::{HEADER_READ_TIMEOUT, MAX_CONNECTIONS, MAX_CONNECTIONS_PER_NETWORK, MAX_HEADERS, MAX_HEADER_BYTES};
pub use problem::Problem;

use auth::Who;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use xiezhi_core::*;

/// Largest request body accepted; larger bodies get 413 (at once when declared).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest a client may take to send a request body once its headers are in (then 408).
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) service: Service,
    metrics: PrometheusHandle,
    pub(crate) tokens: Arc<tokens::TokenKeys>,
}

/// What the router needs beside the service.
pub struct RouterConfig {
    /// The key pair shopper tokens are signed with (keep it across restarts, or tokens
    /// already handed out stop working).
    pub token_keys: Arc<tokens::TokenKeys>,
    pub rate_limits: rate::RateLimits,
}

impl Default for RouterConfig {
    fn default() -> RouterConfig {
        RouterConfig { token_keys: Arc::new(tokens::TokenKeys::generate()), rate_limits: rate::RateLimits::default() }
    }
}

/// How often pending histogram samples are folded into their buckets.
const METRICS_UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// The process-wide Prometheus recorder (installed once; later calls share it).
///
/// The recorder keeps every histogram sample until upkeep folds it into the buckets; without
/// the upkeep thread started here, memory would grow with each request until someone
/// scrapes `/metrics`.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let latency_buckets =
                [100.0, 250.0, 500.0, 1_000.0, 2_500.0, 5_000.0, 10_000.0, 25_000.0, 50_000.0, 100_000.0];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_us".into()), &latency_buckets)
                .expect("buckets")
                .set_buckets_for_metric(
                    Matcher::Full("xiezhi_commit_batch_requests".into()),
                    &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0],
                )
                .expect("buckets");
            let handle = match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is installed (e.g. in a test binary): render our own.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            };
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("xiezhi-metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(METRICS_UPKEEP_INTERVAL);
                    upkeep.run_upkeep();
                })
                .expect("spawn the metrics upkeep thread");
            handle
        })
        .clone()
}

/// The API with a fresh token key pair (tests; `xiezhi serve` keeps its pair on disk).
pub fn router(service: Service) -> Router {
    router_with(service, RouterConfig::default())
}

pub fn router_with(service: Service, config: RouterConfig) -> Router {
    let state = AppState { service, metrics: metrics_handle(), tokens: config.token_keys };
    let limits = config.rate_limits;
    let per_caller = rate::layer(rate::ByCaller, limits.per_caller_per_s, limits.per_caller_burst);
    let per_network = rate::layer(rate::ByNetwork, limits.per_ip_per_s, limits.per_ip_burst);
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi_json))
        .route("/metrics", get(metrics_text))
        .route("/v1/stats", get(stats))
        .route("/v1/merchants", post(create_merchant))
        .route("/v1/merchants/{id}", get(get_merchant))
        .route("/v1/merchants/{id}/qr", get(merchant_qr_image).post(issue_dynamic_qr))
        .route("/v1/credit-lines", post(create_credit_line))
        .route("/v1/credit-lines/{id}", get(get_credit_line))
        .route("/v1/credit-lines/{id}/repayments", post(repay))
        .route("/v1/credit-lines/{id}/profile", post(complete_profile))
        .route("/v1/payments", post(create_payment))
        .route("/v1/payments/{id}", get(get_payment))
        .route("/v1/payments/{id}/capture", post(capture))
        .route("/v1/payments/{id}/void", post(void))
        .route("/v1/payments/{id}/refunds", post(refund))
        .route("/v1/payments/{id}/decision", get(get_decision))
        .route("/v1/payments/{id}/decision/replay", post(replay_decision))
        .route("/v1/challenges/{id}", get(get_challenge).post(complete_challenge))
        .route("/v1/credit-lines/{id}/notifications", get(get_notifications))
        .route("/v1/rules", get(get_rules).put(put_rules))
        .route("/v1/rules/features", get(rule_features))
        .route("/v1/reason-codes", get(reason_codes))
        .route("/v1/policy", get(get_policy).put(put_policy))
        .route("/v1/lists", get(get_lists).post(add_list_entry))
        .route("/v1/lists/{id}", axum::routing::delete(remove_list_entry))
        .route("/v1/api-keys", get(keys::list).post(keys::create))
        .route("/v1/api-keys/{id}/rotate", post(keys::rotate))
        .route("/v1/api-keys/{id}", axum::routing::delete(keys::revoke))
        .route("/v1/shopper-tokens", post(keys::mint_shopper_token))
        .route("/v1/restrictions", get(recourse::list_restrictions))
        .route("/v1/restrictions/{id}", get(recourse::get_restriction))
        .route("/v1/restrictions/{id}/lift", post(recourse::lift_restriction))
        .route("/v1/users/{user_id}/status", get(recourse::user_status))
        .route("/v1/appeals", get(recourse::list_appeals).post(recourse::file_appeal))
        .route("/v1/appeals/{id}", get(recourse::get_appeal))
        .route("/v1/appeals/{id}/claim", post(recourse::claim_appeal))
        .route("/v1/appeals/{id}/decision", post(recourse::decide_appeal))
        .route("/v1/fund", get(fund::get_fund))
        .route("/v1/fund/deposits", post(fund::deposit))
        .route("/v1/compensations", get(fund::list_compensations))
        .route("/v1/outbox", get(outbox::list))
        .route("/v1/outbox/replay", post(outbox::replay))
        .route("/v1/reports/conduct", get(reports::conduct))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(tower::util::option_layer(per_caller))
        .layer(middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .layer(tower::util::option_layer(per_network))
        .layer(middleware::from_fn(record_request))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// A body declared larger than the service takes is refused before a byte of it is read
/// (a client announcing 10 GB and sending nothing would otherwise hold the connection).
fn declared_too_large(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|length| length > MAX_BODY_BYTES as u64)
}

async fn record_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    if declared_too_large(&request) {
        return Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body exceeds {MAX_BODY_BYTES} bytes"),
        )
        .into_response();
    }
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(request.method());
    let response = next.run(request).await;
    let mut response = if response.status() == StatusCode::PAYLOAD_TOO_LARGE
        && response.headers().get(header::CONTENT_TYPE).is_none_or(|v| v != "application/problem+json")
    {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body exceeds {MAX_BODY_BYTES} bytes"),
        )
        .into_response()
    } else {
        response
    };
    let status = response.status().as_u16().to_string();
    metrics::counter!("xiezhi_http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("xiezhi_http_request_duration_us", "method" => method, "route" => route)
        .record(started.elapsed().as_micros() as f64);
    response.headers_mut().insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    response
}

/// Metric labels come from closed sets, so no client can grow the number of series: a
/// method outside the standard ones is `other` (routes are the matched templates or
/// `unmatched`).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

async fn method_not_allowed(method: Method) -> Problem {
    Problem::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", format!("{method} is not allowed here"))
}

async fn not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn index() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Xiezhi (獬豸) scan-to-pay credit service\n\n\
         GET  /healthz                      liveness and readiness\n\
         GET  /metrics                      Prometheus metrics\n\
         GET  /v1/stats                     live counters\n\
         POST /v1/merchants                 register a merchant, get its static EMV QR\n\
         GET  /v1/merchants/{id}/qr         QR image (?format=png|svg)\n\
         POST /v1/merchants/{id}/qr         issue a dynamic QR {amount, bill_number?}\n\
         POST /v1/credit-lines              open a credit line {user_id, currency, limit | application + monthly_income}\n\
         GET  /v1/credit-lines/{id}         limit, available, held, receivable\n\
         POST /v1/credit-lines/{id}/repayments {amount}\n\
         POST /v1/credit-lines/{id}/profile {kyc_level, fields}  complete your profile (values never kept)\n\
         POST /v1/payments                  pay {credit_line_id, qr_payload, amount?, context}\n\
         GET  /v1/payments/{id}\n\
         POST /v1/payments/{id}/capture     {amount?}\n\
         POST /v1/payments/{id}/void\n\
         POST /v1/payments/{id}/refunds     {amount}\n\
         GET  /v1/payments/{id}/decision    the decision record: features, rule hits, score, versions\n\
         POST /v1/payments/{id}/decision/replay  the same facts under today's policy and rules\n\
         GET  /v1/challenges/{id}           a step-up or restriction challenge\n\
         POST /v1/challenges/{id}           answer it {code}\n\
         GET  /v1/credit-lines/{id}/notifications  the user's inbox (codes, restriction notices)\n\
         GET  /v1/rules  PUT /v1/rules      the live rule set; PUT validates and swaps atomically\n\
         GET  /v1/rules/features            the features rules can use\n\
         GET  /v1/reason-codes              reason codes with zh/en text and ways out\n\
         GET  /v1/policy PUT /v1/policy     the regulatory policy document\n\
         GET  /v1/lists  POST /v1/lists     deny/allow lists; DELETE /v1/lists/{id}\n\
         GET  /v1/api-keys POST /v1/api-keys  API keys; POST /v1/api-keys/{id}/rotate, DELETE /v1/api-keys/{id}\n\
         POST /v1/shopper-tokens            a shopper token for one line and device\n\
         GET  /v1/restrictions              restrictions (?status=active|lifted&credit_line_id=&user_id=&cursor=&limit=)\n\
         GET  /v1/restrictions/{id}         one, with who imposed it and its history\n\
         POST /v1/restrictions/{id}/lift    an operator lifts it {reason}\n\
         GET  /v1/users/{user_id}/status    can the user pay; if not, why and the ways out\n\
         POST /v1/appeals                   appeal {decision_id | restriction_id, message}\n\
         GET  /v1/appeals                   the review queue (?status=open|claimed|decided|escalated&cursor=&limit=)\n\
         GET  /v1/appeals/{id}  POST /v1/appeals/{id}/claim  POST /v1/appeals/{id}/decision {outcome, note}\n\
         GET  /v1/outbox                    notifications (?status=pending|dead|delivered&cursor=&limit=)\n\
         POST /v1/outbox/replay             send dead letters again {id | all_dead}\n\n\
         GET  /v1/reports/conduct           the conduct report (?from=2026-11-01&to=2026-11-30)\n\n\
         Every route but /, /healthz and /openapi.json needs `Authorization: Bearer <key>`.\n",
    )
}

async fn healthz(State(state): State<AppState>) -> Response {
    let stats = state.service.stats();
    let healthy = stats.healthy.load(Ordering::Relaxed);
    let clock = state.service.clock();
    let now_ms = clock.now_ms();
    let read_only = stats.read_only.get();
    let body = serde_json::json!({
        "status": match (healthy, read_only) { (false, _) => "unavailable", (true, Some(_)) => "read_only", (true, None) => "ok" },
        "writer": if healthy { "up" } else { "down" },
        "writer_restarts": stats.writer_restarts.load(Ordering::Relaxed),
        "read_only": read_only,
        "clock": {
            "now": jiff::Timestamp::from_millisecond(now_ms).map(|t| t.to_string()).unwrap_or_default(),
            "now_ms": now_ms,
            "speed": clock.speed(),
        },
    });
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

async fn openapi_json() -> Json<serde_json::Value> {
    static DOCUMENT: OnceLock<serde_json::Value> = OnceLock::new();
    Json(DOCUMENT.get_or_init(openapi::document).clone())
}

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    let stats = state.service.stats();
    metrics::gauge!("xiezhi_payments_stored").set(stats.payments.load(Ordering::Relaxed) as f64);
    metrics::gauge!("xiezhi_pending_holds").set(stats.pending_holds.load(Ordering::Relaxed) as f64);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

async fn stats(State(state): State<AppState>) -> Json<serde_json::Value> {
    let stats = state.service.stats();
    Json(serde_json::json!({
        "payments": stats.payments.load(Ordering::Relaxed),
        "pending_holds": stats.pending_holds.load(Ordering::Relaxed),
        "commits": stats.commits.load(Ordering::Relaxed),
        "committed_requests": stats.committed_requests.load(Ordering::Relaxed),
        "failed_commits": stats.failed_commits.load(Ordering::Relaxed),
    }))
}

/// Reads the idempotency key and the request fingerprint: SHA-256 over method, path and body.
fn idempotency(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Option<IdempotencyKey>, Problem> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().map_err(|_| {
        Problem::new(StatusCode::BAD_REQUEST, "invalid_request", "Idempotency-Key must be visible ASCII")
            .with_field("Idempotency-Key")
    })?;
    let mut hasher = Sha256::new();
    hasher.update(method.as_str().as_bytes());
    hasher.update(b" ");
    hasher.update(path.as_bytes());
    hasher.update(b"\n");
    hasher.update(body);
    let fingerprint = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(Some(IdempotencyKey { key: key.to_owned(), fingerprint }))
}

pub(crate) fn reply(status: StatusCode, result: Result<Reply, CoreError>) -> Response {
    match result {
        Ok(Reply::Merchant(v)) => (status, Json(v)).into_response(),
        Ok(Reply::CreditLine(v)) => (status, Json(v)).into_response(),
        Ok(Reply::Payment(v)) => (status, Json(v)).into_response(),
        Ok(Reply::Repayment(v)) => (status, Json(v)).into_response(),
        Ok(Reply::DynamicQr(v)) => (status, Json(v)).into_response(),
        Ok(Reply::Challenge(v)) => (status, Json(v)).into_response(),
        Ok(Reply::Document(v)) => (status, Json(v)).into_response(),
        Ok(Reply::UserStatus(v)) => (status, Json(v)).into_response(),
        Err(error) => Problem::from(error).into_response(),
    }
}

/// Runs a command that needs no body and no idempotency key, answering `200` or a problem.
pub(crate) async fn query(state: &AppState, Who(caller): Who, command: Command) -> Response {
    reply(StatusCode::OK, state.service.execute_as(caller, command, None).await)
}

/// A POST body with its idempotency key, read once for every POST route.
pub(crate) struct Posted {
    pub(crate) caller: Caller,
    pub(crate) key: Option<IdempotencyKey>,
    pub(crate) body: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for Posted {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Posted, Response> {
        let caller = auth::caller_of(request.extensions())?;
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let headers = request.headers().clone();
        let body = match tokio::time::timeout(BODY_READ_TIMEOUT, Bytes::from_request(request, state)).await {
            Ok(body) => body.map_err(IntoResponse::into_response)?,
            Err(_) => {
                let detail = format!("the request body did not arrive within {} s", BODY_READ_TIMEOUT.as_secs());
                return Err(Problem::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", detail).into_response());
            }
        };
        let key = idempotency(&method, &path, &headers, &body).map_err(IntoResponse::into_response)?;
        Ok(Posted { caller, key, body })
    }
}

impl Posted {
    /// The body as `T` (an empty body as `{}` where `T` allows it), or a problem naming the
    /// field that is wrong.
    pub(crate) fn parse<T: DeserializeOwned>(&self) -> Result<T, Problem> {
        let body: &[u8] = if self.body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &self.body };
        serde_path_to_error::deserialize::<_, T>(&mut serde_json::Deserializer::from_slice(body))
            .map_err(|error| problem::json_problem(&error.path().to_string(), error.inner()))
    }
}

/// Parses the body as `T`, turns it into a command, runs it, and answers with `status` or a
/// problem.
pub(crate) async fn run_post<T: DeserializeOwned>(
    state: &AppState,
    posted: Posted,
    status: StatusCode,
    command: impl FnOnce(T) -> Result<Command, Problem>,
) -> Response {
    match posted.parse().and_then(command) {
        Ok(command) => reply(status, state.service.execute_as(posted.caller, command, posted.key).await),
        Err(problem) => problem.into_response(),
    }
}

async fn create_merchant(State(state): State<AppState>, posted: Posted) -> Response {
    run_post(&state, posted, StatusCode::CREATED, |r| Ok(Command::CreateMerchant(r))).await
}

async fn get_merchant(State(state): State<AppState>, who: Who, Path(id): Path<String>) -> Response {
    query(&state, who, Command::GetMerchant { id }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QrImageQuery {
    format: Option<String>,
    module_px: Option<u32>,
}

async fn merchant_qr_image(
    State(state): State<AppState>,
    Who(caller): Who,
    Path(id): Path<String>,
    query: Result<Query<QrImageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "query parameters are `format` (png|svg) and `module_px`",
        )
        .into_response();
    };
    let merchant = match state.service.execute_as(caller, Command::GetMerchant { id }, None).await {
        Ok(Reply::Merchant(m)) => m,
        Ok(_) => unreachable!("GetMerchant replies with a merchant"),
        Err(error) => return Problem::from(error).into_response(),
    };
    let module_px = query.module_px.unwrap_or(8).clamp(1, 32);
    let rendered = match query.format.as_deref().unwrap_or("png") {
        "png" => xiezhi_qr::render_png(&merchant.qr_payload, module_px).map(|png| ("image/png", png)),
        "svg" => xiezhi_qr::render_svg(&merchant.qr_payload, module_px).map(|svg| ("image/svg+xml", svg.into_bytes())),
        other => {
            return Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("format `{other}` is not png or svg"),
            )
            .with_field("format")
            .into_response()
        }
    };
    match rendered {
        Ok((content_type, bytes)) => ([(header::CONTENT_TYPE, content_type)], bytes).into_response(),
        Err(e) => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "render_failed", e.to_string()).into_response(),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DynamicQrRequest {
    #[schema(pattern = r"^[0-9]{1,13}(\.[0-9]{1,2})?$", example = "35.00")]
    amount: String,
    #[serde(default)]
    bill_number: Option<String>,
}

async fn issue_dynamic_qr(State(state): State<AppState>, Path(id): Path<String>, posted: Posted) -> Response {
    run_post(&state, posted, StatusCode::CREATED, |r: DynamicQrRequest| {
        Ok(Command::IssueDynamicQr { merchant_id: id, amount: r.amount, bill_number: r.bill_number })
    })
    .await
}

async fn create_credit_line(State(state): State<AppState>, posted: Posted) -> Response {
    run_post(&state, posted, StatusCode::CREATED, |r: CreditLineRequest| {
        xiezhi_core::credit_line_command(r).map_err(Problem::from)
    })
    .await
}

async fn get_credit_line(State(state): State<AppState>, who: Who, Path(id): Path<String>) -> Response {
    query(&state, who, Command::GetCreditLine { id }).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AmountRequest {
    #[schema(pattern = r"^[0-9]{1,13}(\.[0-9]{1,2})?$", example = "20.00")]
    amount: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OptionalAmountRequest {
    #[serde(default)]
    #[schema(pattern = r"^[0-9]{1,13}(\.[0-9]{1,2})?$", example = "80.00")]
    amount: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EmptyRequest {}

async fn repay(State(state): State<AppState>, Path(id): Path<String>, posted: Posted) -> Response {
    run_post(&state, posted, StatusCode::CREATED, |r: AmountRequest| {
        Ok(Command::Repay { credit_line_id: id, amount: r.amount })
    })
    .await
}

/// The "complete your profile" way out: the values are checked by the writer and dropped.
async fn complete_profile(State(state): State<AppState>, Path(id): Path<String>, posted: Posted) -> Response {
    run_post(&state, posted, StatusCode::OK, |submission: xiezhi_core::ProfileSubmission| {
        Ok(Command::CompleteProfile { credit_line_id: id, submission })
    })
    .await
}

async fn create_payment(State(state): State<AppState>, posted: Posted) -> Response {
    let service = state.service.clone();
    run_post(&state, posted, StatusCode::CREATED, |request: NewPayment| {
        if let Some(ip) = &request.context.ip {
            if ip.parse::<std::net::IpAddr>().is_err() {
                return Err(Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    format!("`{ip}` is not an IP address"),
                )
                .with_field("context.ip"));
            }
        }
        service.prepare_payment(request).map_err(Problem::from)
    })
    .await
}

async fn get_payment(State(state): State<AppState>, who: Who, Path(id): Path<String>) -> Response {
    query(&state, who, Command::GetPayment { id }).await
}

async fn capture(State(state): State<AppState>, Path(id): Path<String>, posted: Posted) -> Response {
    run_post(&state, posted, StatusCode::OK, |r: OptionalAmountRequest| {
        Ok(Command::Capture { payment_id: id, amount: r.amount })
    })
    .await
}

async fn void(State(state): State<AppState>, Path(id): Path<String>, posted: Posted) -> Response {
    run_post(&state, posted, StatusCode::OK, |_: EmptyRequest| Ok(Command::Void { payment_id: id })).await
}

async fn refund(State(state): State<AppState>, Path(id): Path<String>, posted: Posted) -> Response {
    run_post(&state, posted, StatusCode::CREATED, |r: AmountRequest| {
        Ok(Command::Refund { payment_id: id, amount: r.amount })
    })
    .await
}

async fn get_decision(State(state): State<AppState>, who: Who, Path(id): Path<String>) -> Response {
    query(&state, who, Command::GetDecision { payment_id: id }).await
}

async fn replay_decision(State(state): State<AppState>, who: Who, Path(id): Path<String>) -> Response {
    query(&state, who, Command::ReplayDecision { payment_id: id }).await
}

async fn get_challenge(State(state): State<AppState>, who: Who, Path(id): Path<String>) -> Response {
    query(&state, who, Command::GetChallenge { id }).await
}

async fn complete_challenge(State(state): State<AppState>, Path(id): Path<String>, posted: Posted) -> Response {
    run_post(&state, posted, StatusCode::OK, |answer: ChallengeAnswer| Ok(Command::CompleteChallenge { id, answer }))
        .await
}

async fn get_notifications(State(state): State<AppState>, who: Who, Path(id): Path<String>) -> Response {
    query(&state, who, Command::GetNotifications { credit_line_id: id }).await
}

async fn get_rules(State(state): State<AppState>, who: Who) -> Response {
    query(&state, who, Command::GetRules).await
}

async fn put_rules(State(state): State<AppState>, posted: Posted) -> Response {
    run_post(&state, posted, StatusCode::OK, |definition| Ok(Command::PutRules(definition))).await
}

async fn rule_features() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "features": xiezhi_risk::features::catalogue() }))
}

async fn reason_codes() -> Json<serde_json::Value> {
    static CATALOGUE: OnceLock<xiezhi_risk::Catalogue> = OnceLock::new();
    let catalogue = CATALOGUE.get_or_init(xiezhi_risk::Catalogue::new);
    let codes: Vec<serde_json::Value> = catalogue
        .codes()
        .map(|c| {
            serde_json::json!({
                "code": c.code,
                "layer": c.layer,
                "default_outcome": c.default_outcome,
                "recovery": c.recovery,
                "explanation": catalogue.both(&c.code.replace('_', "-"), &[]),
            })
        })
        .collect();
    Json(serde_json::json!({ "reason_codes": codes }))
}

async fn get_policy(State(state): State<AppState>, who: Who) -> Response {
    query(&state, who, Command::GetPolicy).await
}

async fn put_policy(State(state): State<AppState>, posted: Posted) -> Response {
    // Parsed (strictly) by the policy compiler, which names what is wrong.
    match std::str::from_utf8(&posted.body) {
        Ok(text) => {
            let command = Command::PutPolicy(text.to_owned());
            reply(StatusCode::OK, state.service.execute_as(posted.caller, command, posted.key).await)
        }
        Err(_) => Problem::new(StatusCode::BAD_REQUEST, "invalid_json", "the body is not UTF-8").into_response(),
    }
}

async fn get_lists(State(state): State<AppState>, who: Who) -> Response {
    query(&state, who, Command::GetLists).await
}

async fn add_list_entry(State(state): State<AppState>, posted: Posted) -> Response {
    run_post(&state, posted, StatusCode::CREATED, |entry| Ok(Command::AddListEntry(entry))).await
}

async fn remove_list_entry(State(state): State<AppState>, who: Who, Path(id): Path<String>) -> Response {
    query(&state, who, Command::RemoveListEntry { id }).await
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listen::serve(listener, router, shutdown).await
}
