//! Embedding rampart: serve a directory over HTTPS from your own program, on your own
//! runtime, and stop it from your own shutdown signal.
//!
//! ```text
//! cargo run --example embed -- ./www 127.0.0.1:9443
//! ```
//! The asset-serving `tower::Service` is also usable on its own (`rampart::AssetService`),
//! e.g. as the fallback service of an axum router.

use std::time::Duration;

use rampart::{Config, Server};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let root = args.next().unwrap_or_else(|| "www".into());
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:9443".into());

    let mut config = Config::new(root);
    config.listen = vec![listen.parse()?];
    config.shutdown_timeout = Duration::from_secs(5);
    // config.cert = rampart::CertSource::Files { cert: "fullchain.pem".into(), key: "key.pem".into() };

    rampart::telemetry::init("info", rampart::config::LogFormat::Pretty, false)?;
    let server = Server::bind(config).await?;
    for addr in server.local_addrs() {
        println!("serving https://{addr}/ (Ctrl-C to stop)");
    }
    let metrics = server.metrics();
    let summary = server
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    println!("stopped: {summary:?}; counters: {:?}", metrics.snapshot());
    Ok(())
}
