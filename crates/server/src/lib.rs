//! The HTTP API: thin axum handlers over [`xiezhi_core::Service`].
//!
//! Bodies are read as bytes (at most [`MAX_BODY_BYTES`]), fingerprinted for idempotency,
//! then parsed strictly (unknown fields are refused). Errors are problem+json.

// A `Problem` is the error half of every handler's result and becomes the response body;
// boxing it would only add an allocation to every error path.
#![allow(clippy::result_large_err)]

mod problem;

pub use problem::Problem;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
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
use std::sync::OnceLock;
use std::time::Instant;
use xiezhi_core::*;

/// Largest request body accepted; larger bodies get 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Clone)]
struct AppState {
    service: Service,
    metrics: PrometheusHandle,
}

/// The process-wide Prometheus recorder (installed once; later calls share it).
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
            match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is installed (e.g. in a test binary): render our own.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

pub fn router(service: Service) -> Router {
    let state = AppState { service, metrics: metrics_handle() };
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/v1/stats", get(stats))
        .route("/v1/merchants", post(create_merchant))
        .route("/v1/merchants/{id}", get(get_merchant))
        .route("/v1/merchants/{id}/qr", get(merchant_qr_image).post(issue_dynamic_qr))
        .route("/v1/credit-lines", post(create_credit_line))
        .route("/v1/credit-lines/{id}", get(get_credit_line))
        .route("/v1/credit-lines/{id}/repayments", post(repay))
        .route("/v1/payments", post(create_payment))
        .route("/v1/payments/{id}", get(get_payment))
        .route("/v1/payments/{id}/capture", post(capture))
        .route("/v1/payments/{id}/void", post(void))
        .route("/v1/payments/{id}/refunds", post(refund))
        .fallback(not_found)
        .layer(middleware::from_fn(record_request))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn record_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
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
    metrics::counter!("xiezhi_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("xiezhi_http_request_duration_us", "method" => method, "route" => route)
        .record(started.elapsed().as_micros() as f64);
    response.headers_mut().insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    response
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
         POST /v1/credit-lines              open a credit line {user_id, currency, limit}\n\
         GET  /v1/credit-lines/{id}         limit, available, held, receivable\n\
         POST /v1/credit-lines/{id}/repayments {amount}\n\
         POST /v1/payments                  pay {credit_line_id, qr_payload, amount?, context}\n\
         GET  /v1/payments/{id}\n\
         POST /v1/payments/{id}/capture     {amount?}\n\
         POST /v1/payments/{id}/void\n\
         POST /v1/payments/{id}/refunds     {amount}\n",
    )
}

async fn healthz(State(state): State<AppState>) -> Response {
    let stats = state.service.stats();
    let healthy = stats.healthy.load(Ordering::Relaxed);
    let body = serde_json::json!({
        "status": if healthy { "ok" } else { "unavailable" },
        "writer": healthy,
    });
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
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

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    serde_json::from_slice(body).map_err(problem::json_problem)
}

/// Parses a body that may be empty (treated as `{}`).
fn parse_optional<T: DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return parse(b"{}");
    }
    parse(body)
}

fn reply(status: StatusCode, result: Result<Reply, CoreError>) -> Response {
    match result {
        Ok(Reply::Merchant(v)) => (status, Json(v)).into_response(),
        Ok(Reply::CreditLine(v)) => (status, Json(v)).into_response(),
        Ok(Reply::Payment(v)) => (status, Json(v)).into_response(),
        Ok(Reply::Repayment(v)) => (status, Json(v)).into_response(),
        Ok(Reply::DynamicQr(v)) => (status, Json(v)).into_response(),
        Err(error) => Problem::from(error).into_response(),
    }
}

struct Post {
    key: Option<IdempotencyKey>,
}

fn post_prelude(method: &Method, path: &str, headers: &HeaderMap, body: &[u8]) -> Result<Post, Problem> {
    Ok(Post { key: idempotency(method, path, headers, body)? })
}

async fn create_merchant(State(state): State<AppState>, method: Method, headers: HeaderMap, body: Bytes) -> Response {
    let run = async {
        let post = post_prelude(&method, "/v1/merchants", &headers, &body)?;
        let request: NewMerchant = parse(&body)?;
        Ok::<_, Problem>(reply(
            StatusCode::CREATED,
            state.service.execute(Command::CreateMerchant(request), post.key).await,
        ))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

async fn get_merchant(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    reply(StatusCode::OK, state.service.execute(Command::GetMerchant { id }, None).await)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QrImageQuery {
    format: Option<String>,
    module_px: Option<u32>,
}

async fn merchant_qr_image(
    State(state): State<AppState>,
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
    let merchant = match state.service.execute(Command::GetMerchant { id }, None).await {
        Ok(Reply::Merchant(m)) => m,
        Ok(_) => unreachable!("GetMerchant replies with a merchant"),
        Err(error) => return Problem::from(error).into_response(),
    };
    let module_px = query.module_px.unwrap_or(8).clamp(1, 32);
    match query.format.as_deref().unwrap_or("png") {
        "png" => match xiezhi_qr::render_png(&merchant.qr_payload, module_px) {
            Ok(png) => ([(header::CONTENT_TYPE, "image/png")], png).into_response(),
            Err(e) => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "render_failed", e.to_string()).into_response(),
        },
        "svg" => match xiezhi_qr::render_svg(&merchant.qr_payload, module_px) {
            Ok(svg) => ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response(),
            Err(e) => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "render_failed", e.to_string()).into_response(),
        },
        other => {
            Problem::new(StatusCode::BAD_REQUEST, "invalid_request", format!("format `{other}` is not png or svg"))
                .with_field("format")
                .into_response()
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DynamicQrRequest {
    amount: String,
    #[serde(default)]
    bill_number: Option<String>,
}

async fn issue_dynamic_qr(
    State(state): State<AppState>,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = async {
        let post = post_prelude(&method, &format!("/v1/merchants/{id}/qr"), &headers, &body)?;
        let request: DynamicQrRequest = parse(&body)?;
        let command =
            Command::IssueDynamicQr { merchant_id: id, amount: request.amount, bill_number: request.bill_number };
        Ok::<_, Problem>(reply(StatusCode::CREATED, state.service.execute(command, post.key).await))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

async fn create_credit_line(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = async {
        let post = post_prelude(&method, "/v1/credit-lines", &headers, &body)?;
        let request: NewCreditLine = parse(&body)?;
        Ok::<_, Problem>(reply(
            StatusCode::CREATED,
            state.service.execute(Command::CreateCreditLine(request), post.key).await,
        ))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

async fn get_credit_line(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    reply(StatusCode::OK, state.service.execute(Command::GetCreditLine { id }, None).await)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AmountRequest {
    amount: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct OptionalAmountRequest {
    #[serde(default)]
    amount: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EmptyRequest {}

async fn repay(
    State(state): State<AppState>,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = async {
        let post = post_prelude(&method, &format!("/v1/credit-lines/{id}/repayments"), &headers, &body)?;
        let request: AmountRequest = parse(&body)?;
        let command = Command::Repay { credit_line_id: id, amount: request.amount };
        Ok::<_, Problem>(reply(StatusCode::CREATED, state.service.execute(command, post.key).await))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

async fn create_payment(State(state): State<AppState>, method: Method, headers: HeaderMap, body: Bytes) -> Response {
    let run = async {
        let post = post_prelude(&method, "/v1/payments", &headers, &body)?;
        let request: NewPayment = parse(&body)?;
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
        let command = state.service.prepare_payment(request).map_err(Problem::from)?;
        Ok(reply(StatusCode::CREATED, state.service.execute(command, post.key).await))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

async fn get_payment(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    reply(StatusCode::OK, state.service.execute(Command::GetPayment { id }, None).await)
}

async fn capture(
    State(state): State<AppState>,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = async {
        let post = post_prelude(&method, &format!("/v1/payments/{id}/capture"), &headers, &body)?;
        let request: OptionalAmountRequest = parse_optional(&body)?;
        let command = Command::Capture { payment_id: id, amount: request.amount };
        Ok::<_, Problem>(reply(StatusCode::OK, state.service.execute(command, post.key).await))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

async fn void(
    State(state): State<AppState>,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = async {
        let post = post_prelude(&method, &format!("/v1/payments/{id}/void"), &headers, &body)?;
        let _: EmptyRequest = parse_optional(&body)?;
        Ok::<_, Problem>(reply(StatusCode::OK, state.service.execute(Command::Void { payment_id: id }, post.key).await))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

async fn refund(
    State(state): State<AppState>,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = async {
        let post = post_prelude(&method, &format!("/v1/payments/{id}/refunds"), &headers, &body)?;
        let request: AmountRequest = parse(&body)?;
        let command = Command::Refund { payment_id: id, amount: request.amount };
        Ok::<_, Problem>(reply(StatusCode::CREATED, state.service.execute(command, post.key).await))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}
