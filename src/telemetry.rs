//! Logs and traces. Logs: `RUST_LOG` filters (default `info`), `BRIDGE_LOG_FORMAT=json`
//! for machines. Traces: OpenTelemetry over OTLP/HTTP (`otel`), for `serve` and `worker`
//! when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set.
//! Otherwise there is no trace layer, and the spans made only for traces
//! ([`traced_span!`]) are `Span::none()`: no cost on the webhook path.

use std::sync::atomic::{AtomicBool, Ordering};

use tracing::Span;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::MakeWriterExt;

use crate::config::LogFormat;

#[cfg(feature = "otel")]
pub mod otel;

/// Set once the trace layer is installed.
static TRACED: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported (the `otel` layer is installed).
#[inline]
pub fn traced() -> bool {
    TRACED.load(Ordering::Relaxed)
}

/// An INFO span made only when traces are exported, `Span::none()` otherwise: spans on
/// the webhook path cost CPU for every request, which logs alone don't need.
#[macro_export]
macro_rules! traced_span {
    ($($span:tt)*) => {
        if $crate::telemetry::traced() {
            ::tracing::info_span!($($span)*)
        } else {
            ::tracing::Span::none()
        }
    };
}

/// What must outlive the program's work: dropping it flushes the spans not yet exported
/// (at most a few seconds), so a stopping service still sends its last traces.
#[must_use = "dropping it stops the trace export"]
pub struct Telemetry {
    #[cfg(feature = "otel")]
    traces: Option<otel::Traces>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        #[cfg(feature = "otel")]
        if let Some(traces) = self.traces.take() {
            TRACED.store(false, Ordering::Relaxed);
            traces.shutdown();
        }
    }
}

fn env_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Installs the global subscriber; logs go to stderr so stdout stays for command output.
/// With `export_traces` (serve, worker) and an OTLP endpoint configured, spans are also
/// exported; a trace setup that fails is logged and the service runs without.
pub fn init(format: LogFormat, export_traces: bool) -> Telemetry {
    #[cfg(feature = "otel")]
    if export_traces && otel::configured() {
        return match otel::init(format, env_filter()) {
            Ok(traces) => {
                TRACED.store(true, Ordering::Relaxed);
                // Not the endpoint: a URL may carry credentials.
                tracing::info!("OpenTelemetry traces are exported over OTLP/HTTP");
                Telemetry {
                    traces: Some(traces),
                }
            }
            Err(e) => {
                init_logs(format);
                tracing::error!(error = %e, "OpenTelemetry traces are off: the exporter could not be set up");
                Telemetry { traces: None }
            }
        };
    }
    let _ = export_traces;
    init_logs(format);
    Telemetry {
        #[cfg(feature = "otel")]
        traces: None,
    }
}

fn init_logs(format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter())
        .with_writer(std::io::stderr.with_max_level(tracing::Level::TRACE));
    let result = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
}

/// Makes `span` continue the trace of a W3C `traceparent` header sent by the CRM, when
/// it is well formed (it is unauthenticated input: anything else is ignored).
pub fn continue_trace(span: &Span, traceparent: Option<&str>) {
    #[cfg(feature = "otel")]
    if traced() {
        otel::continue_trace(span, traceparent);
    }
    let _ = (span, traceparent);
}

/// The W3C `traceparent` of `span`, to store with what it produced (outbox rows), or
/// `None` when traces are not exported.
pub fn traceparent(span: &Span) -> Option<String> {
    #[cfg(feature = "otel")]
    if traced() {
        return otel::traceparent(span);
    }
    let _ = span;
    None
}

/// Links `span` to the spans of stored `traceparent`s (a WebEngage call to the webhooks
/// of the rows it carries); malformed ones are skipped.
pub fn link<'a>(span: &Span, traceparents: impl IntoIterator<Item = &'a str>) {
    #[cfg(feature = "otel")]
    if traced() {
        otel::link(span, traceparents);
        return;
    }
    let _ = (span, traceparents.into_iter());
}
