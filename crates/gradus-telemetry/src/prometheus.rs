//! The opt-in Prometheus endpoint: a scrape target at `http://ADDR/metrics`, served from
//! its own thread so that stages without an async runtime can offer it.

use std::net::SocketAddr;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

use crate::TelemetryError;

/// Builds the Prometheus recorder and starts serving it on `addr`.
pub(crate) fn serve(addr: SocketAddr) -> Result<PrometheusRecorder, TelemetryError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| TelemetryError::Prometheus(addr, e.to_string()))?;
    let (recorder, exporter) = {
        let _guard = runtime.enter();
        PrometheusBuilder::new()
            .with_http_listener(addr)
            .build()
            .map_err(|e| TelemetryError::Prometheus(addr, e.to_string()))?
    };
    std::thread::Builder::new()
        .name("gradus-prometheus".into())
        .spawn(move || {
            if let Err(e) = runtime.block_on(exporter) {
                tracing::warn!("prometheus endpoint on {addr} stopped: {e:?}");
            }
        })
        .map_err(|e| TelemetryError::Prometheus(addr, e.to_string()))?;
    Ok(recorder)
}
