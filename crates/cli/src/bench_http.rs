//! `xiezhi bench http`: an open-loop load of `POST /v1/payments` at a fixed rate, each
//! request from its own shopper (device and network per credit line), so the risk engine
//! sees traffic shaped like people rather than one device paying for a thousand accounts.
//!
//! Latency is measured from when each request was due, not when it was sent: a server that
//! falls behind cannot hide its queue (no coordinated omission).

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

pub struct HttpArgs {
    pub target: String,
    pub api_key: String,
    pub lines_file: std::path::PathBuf,
    pub qr: String,
    pub rate: u32,
    pub duration_s: u64,
    pub connections: usize,
    /// Send an Idempotency-Key with every request, as real clients do.
    pub idempotency_keys: bool,
}

pub fn http(args: HttpArgs) -> Result<(), String> {
    let lines: Vec<String> = std::fs::read_to_string(&args.lines_file)
        .map_err(|e| format!("{}: {e}", args.lines_file.display()))?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if lines.is_empty() {
        return Err("the lines file holds no credit line ids".into());
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(run(args, Arc::new(lines)))
}

async fn run(args: HttpArgs, lines: Arc<Vec<String>>) -> Result<(), String> {
    let builder = reqwest::Client::builder().pool_max_idle_per_host(args.connections).timeout(Duration::from_secs(10));
    let client = crate::client::client(&args.api_key, builder)?;
    let url = format!("{}/v1/payments", args.target.trim_end_matches('/'));
    let permits = Arc::new(Semaphore::new(args.connections.max(1)));
    let total = u64::from(args.rate.max(1)) * args.duration_s.max(1);
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1)));
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<(u32, u16)>();
    let started = Instant::now();
    for i in 0..total {
        let due = started + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let permit = Arc::clone(&permits).acquire_owned().await.map_err(|e| e.to_string())?;
        let index = fastrand::usize(..lines.len());
        let body = serde_json::json!({
            "credit_line_id": lines[index],
            "qr_payload": args.qr,
            "amount": format!("{}.{:02}", fastrand::u32(1..80), fastrand::u32(..100)),
            "context": {
                "device_id": format!("bench-dev-{index}"),
                // A home network (/48) of their own: shoppers do not share a carrier NAT here.
                "ip": format!("fd00:{:x}:{:x}::9", index >> 16, index & 0xffff),
                "network": "wifi",
            },
        });
        let (client, url, sender) = (client.clone(), url.clone(), sender.clone());
        let keys = args.idempotency_keys;
        tokio::spawn(async move {
            let mut request = client.post(&url).json(&body);
            if keys {
                request = request.header("Idempotency-Key", format!("bench-{:016x}", fastrand::u64(..)));
            }
            let result = request.send().await;
            let status = match result {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let _ = response.bytes().await;
                    status
                }
                Err(_) => 0,
            };
            let _ = sender.send((due.elapsed().as_micros().min(u128::from(u32::MAX)) as u32, status));
            drop(permit);
        });
    }
    drop(sender);
    let mut latencies_us = Vec::with_capacity(total as usize);
    let mut statuses = std::collections::BTreeMap::<u16, u64>::new();
    while let Some((latency, status)) = receiver.recv().await {
        latencies_us.push(latency);
        *statuses.entry(status).or_default() += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies_us.sort_unstable();
    let n = latencies_us.len();
    let pct = |p: f64| latencies_us[((n as f64 - 1.0) * p) as usize] as f64 / 1_000.0;
    let report = serde_json::json!({
        "benchmark": "http_payments_open_loop",
        "target_rate_per_s": args.rate,
        "achieved_rate_per_s": (n as f64 / elapsed).round(),
        "requests": n,
        "connections": args.connections,
        "idempotency_keys": args.idempotency_keys,
        "credit_lines": lines.len(),
        "latency_ms_p50": pct(0.50),
        "latency_ms_p90": pct(0.90),
        "latency_ms_p99": pct(0.99),
        "latency_ms_max": pct(1.0),
        "status_codes": statuses,
    });
    println!("{}", serde_json::to_string_pretty(&report).expect("json"));
    Ok(())
}

/// Opens `count` credit lines over HTTP (64 at a time) and writes their ids, one per line.
pub fn seed_lines(
    target: &str,
    api_key: &str,
    count: usize,
    out: &std::path::Path,
    with_profile: bool,
) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let client = crate::client::client(api_key, reqwest::Client::builder().pool_max_idle_per_host(64))?;
        let url = format!("{}/v1/credit-lines", target.trim_end_matches('/'));
        let mut ids = vec![String::new(); count];
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..count {
            let (client, url) = (client.clone(), url.clone());
            tasks.spawn(async move {
                let mut body =
                    serde_json::json!({"user_id": format!("bench-{i}"), "currency": "CNY", "limit": "100000000.00"});
                if with_profile {
                    // An established line: brand-new ones meet the engine's new-line rules.
                    body["profile"] = serde_json::json!({"kyc_level": 2});
                    body["opened_at"] = serde_json::json!("2025-01-01T00:00:00Z");
                }
                let response = client.post(url).json(&body).send().await.map_err(|e| e.to_string())?;
                let value: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
                let id = value["id"].as_str().ok_or_else(|| format!("opening a line: {value}"))?.to_owned();
                Ok::<_, String>((i, id))
            });
            while tasks.len() >= 64 {
                let (i, id) = tasks.join_next().await.expect("a task").map_err(|e| e.to_string())??;
                ids[i] = id;
            }
        }
        while let Some(done) = tasks.join_next().await {
            let (i, id) = done.map_err(|e| e.to_string())??;
            ids[i] = id;
        }
        std::fs::write(out, ids.join("\n") + "\n").map_err(|e| format!("{}: {e}", out.display()))
    })
}
