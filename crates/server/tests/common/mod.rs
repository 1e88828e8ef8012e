//! A real server on a free port with a known admin key, for the API tests.
#![allow(dead_code)]

use std::sync::Arc;
use xiezhi_core::{Command, KeyCommand, NotifierHandle, RecordingNotifier, Service, ServiceConfig, SystemClock};
use xiezhi_store_sqlite::SqliteStore;

/// The admin key every test server is bootstrapped with (every scope).
pub const ADMIN_KEY: &str = "xz_test_admin_key_0123456789abcdef0123456789";

/// Makes the admin key on a fresh service, as `serve` does with `XIEZHI_BOOTSTRAP_ADMIN_KEY`.
pub async fn bootstrap(service: &Service) {
    let command = Command::Keys(KeyCommand::Bootstrap { secret: Some(ADMIN_KEY.into()) });
    service.execute(command, None).await.expect("bootstrap the admin key");
}

/// A client that sends `key` with every request.
pub fn client_with(key: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {key}").parse().unwrap());
    reqwest::Client::builder().default_headers(headers).build().unwrap()
}

/// Starts `service` on a free port; returns its base URL.
pub async fn serve(service: Service) -> String {
    serve_with(service, xiezhi_server::RouterConfig::default()).await
}

/// As [`serve`], with the router configured by `config`.
pub async fn serve_with(service: Service, config: xiezhi_server::RouterConfig) -> String {
    bootstrap(&service).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = xiezhi_server::router_with(service, config);
    tokio::spawn(xiezhi_server::serve(listener, router, std::future::pending()));
    base
}

/// The phone every test service sends its codes to (challenge ids are unique, so one is
/// enough for all of them).
pub fn phone() -> &'static Arc<RecordingNotifier> {
    static PHONE: std::sync::OnceLock<Arc<RecordingNotifier>> = std::sync::OnceLock::new();
    PHONE.get_or_init(Arc::default)
}

/// `config` with its codes sent to [`phone`].
pub fn with_phone(config: ServiceConfig) -> ServiceConfig {
    let notifier = Some(NotifierHandle(Arc::clone(phone()) as Arc<dyn xiezhi_core::Notifier>));
    ServiceConfig { notifier, ..config }
}

/// A fresh store and service under `config` (codes sent to [`phone`]), served; returns its
/// base URL, the service and the directory (keep it alive).
pub async fn start(config: ServiceConfig) -> (String, Service, tempfile::TempDir) {
    let config = with_phone(config);
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_dir(dir.path()).unwrap();
    let service = Service::start(Box::new(store), config, Arc::new(SystemClock)).unwrap();
    let base = serve(service.clone()).await;
    (base, service, dir)
}

/// A clock the test moves by hand: the service's restrictions, appeals and sweeps run on it.
pub struct ManualClock(pub std::sync::atomic::AtomicI64);

impl xiezhi_core::Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// One request; the status and the JSON body (`null` when there is none).
pub async fn send(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<serde_json::Value>,
) -> (reqwest::StatusCode, serde_json::Value) {
    let mut request = client.request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json::<serde_json::Value>().await.unwrap_or(serde_json::Value::Null))
}

/// A server on the store in `dir` (reopened as it is: a restart test stops one and starts
/// another on the same directory), stopped by [`Running::stop`].
pub struct Running {
    pub base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

pub async fn start_on(dir: &std::path::Path, clock: Arc<dyn xiezhi_core::Clock>) -> Running {
    let store = SqliteStore::open_dir(dir).unwrap();
    let service = Service::start(Box::new(store), with_phone(ServiceConfig::default()), clock).unwrap();
    bootstrap(&service).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = xiezhi_server::router_with(service, xiezhi_server::RouterConfig::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(xiezhi_server::serve(listener, router, async move {
        let _ = stopped.await;
    }));
    Running { base, stop, served }
}

impl Running {
    /// Stops serving; the service's writer ends once the last handle to it is gone.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(std::time::Duration::from_secs(10), self.served).await.unwrap().unwrap().unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The HTTP side of a test world: the server's address, the admin's client and a wallet's
/// (the admin's until a test makes a wallet key), with the requests every test sends.
pub struct Api {
    pub base: String,
    pub admin: reqwest::Client,
    pub wallet: reqwest::Client,
}

impl Api {
    pub async fn get(&self, client: &reqwest::Client, path: &str) -> (reqwest::StatusCode, serde_json::Value) {
        send(client, reqwest::Method::GET, &format!("{}{path}", self.base), None).await
    }

    pub async fn post(
        &self,
        client: &reqwest::Client,
        path: &str,
        body: serde_json::Value,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        send(client, reqwest::Method::POST, &format!("{}{path}", self.base), Some(body)).await
    }

    /// A POST that must answer 201; its body.
    pub async fn created(&self, client: &reqwest::Client, path: &str, body: serde_json::Value) -> serde_json::Value {
        let (status, body) = self.post(client, path, body).await;
        assert_eq!(status, reqwest::StatusCode::CREATED, "{path}: {body}");
        body
    }

    /// A POST that must answer 200; its body.
    pub async fn ok(&self, client: &reqwest::Client, path: &str, body: serde_json::Value) -> serde_json::Value {
        let (status, body) = self.post(client, path, body).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{path}: {body}");
        body
    }

    /// A client with a new API key the admin makes from `body`.
    pub async fn key(&self, body: serde_json::Value) -> reqwest::Client {
        let made = self.created(&self.admin, "/v1/api-keys", body).await;
        client_with(made["key"].as_str().unwrap())
    }

    /// A client with a shopper token the wallet mints for `line` (device `phone-1`, an hour).
    pub async fn token(&self, line: &str) -> reqwest::Client {
        let body = serde_json::json!({"credit_line_id": line, "device_id": "phone-1", "ttl_s": 3600});
        let minted = self.created(&self.wallet, "/v1/shopper-tokens", body).await;
        client_with(minted["token"].as_str().unwrap())
    }
}
