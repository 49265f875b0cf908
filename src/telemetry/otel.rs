//! The OpenTelemetry trace layer: spans of this crate exported over OTLP/HTTP
//! (protobuf), configured by the standard `OTEL_*` variables, read by the SDK and the
//! exporter themselves (endpoint, headers, timeout, sampler, batch delays, resource).
//! Header values (`OTEL_EXPORTER_OTLP_HEADERS`) often hold an ingest key: nothing here
//! reads or logs them.

use std::collections::HashMap;

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider,
};
use opentelemetry_otlp::WithHttpConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::{Level, Metadata, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::writer::MakeWriterExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

const SERVICE_NAME: &str = "webengage-bridge";

/// The exporting tracer provider; [`Traces::shutdown`] flushes what is queued.
pub struct Traces {
    provider: SdkTracerProvider,
}

impl Traces {
    pub fn shutdown(self) {
        // Bounded: a collector that does not answer must not hold up the exit.
        if let Err(e) = self
            .provider
            .shutdown_with_timeout(std::time::Duration::from_secs(5))
        {
            eprintln!("OpenTelemetry: the last spans may not have been exported: {e}");
        }
    }
}

fn set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

/// An OTLP endpoint is configured, and the SDK is not disabled (`OTEL_SDK_DISABLED`).
pub fn configured() -> bool {
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    !disabled && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// Installs logs (filtered by `logs`) and the trace layer as the global subscriber.
pub fn init(
    format: LogFormat,
    logs: EnvFilter,
) -> Result<Traces, opentelemetry_otlp::ExporterBuildError> {
    let mut exporter = opentelemetry_otlp::SpanExporter::builder().with_http();
    // Headers from a secret file, as every secret of the bridge may be; the exporter
    // reads `OTEL_EXPORTER_OTLP_HEADERS` itself (and lets it win for a key in both).
    if set("OTEL_EXPORTER_OTLP_HEADERS_FILE")
        && let Ok(Some(headers)) = crate::config::secret("OTEL_EXPORTER_OTLP_HEADERS")
    {
        exporter = exporter.with_headers(parse_headers(&headers));
    }
    let exporter = exporter.build()?;
    let mut resource = Resource::builder();
    let named = set("OTEL_SERVICE_NAME")
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| v.contains("service.name="));
    if !named {
        resource = resource.with_service_name(SERVICE_NAME);
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    let tracer = provider.tracer(SERVICE_NAME);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr.with_max_level(tracing::Level::TRACE));
    let fmt = match format {
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
        LogFormat::Text => fmt.boxed(),
    };
    let spans = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(filter_fn(exported));
    // A second init (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(logs))
        .with(spans)
        .try_init();
    Ok(Traces { provider })
}

/// What becomes part of a trace, whatever `RUST_LOG` says: this crate's spans at INFO
/// (a webhook's, a delivery's), with its warnings and errors as span events. Not the
/// per-request root span of every HTTP route: health checks and scrapes would each
/// make a trace.
fn exported(meta: &Metadata<'_>) -> bool {
    let ours = meta.target().starts_with("webengage_bridge")
        && meta.target() != "webengage_bridge::http::request_span";
    let level = if meta.is_span() {
        Level::INFO
    } else {
        Level::WARN
    };
    ours && *meta.level() <= level
}

/// `key=value,key2=value2`, values percent-encoded: the format of
/// `OTEL_EXPORTER_OTLP_HEADERS`. A part without `=` is skipped, as the exporter does.
fn parse_headers(text: &str) -> HashMap<String, String> {
    text.split(',')
        .filter_map(|part| part.split_once('='))
        .map(|(key, value)| {
            let value = percent_encoding::percent_decode_str(value.trim()).decode_utf8_lossy();
            (key.trim().to_owned(), value.into_owned())
        })
        .filter(|(key, _)| !key.is_empty())
        .collect()
}

/// The longest `traceparent` read: version 00's exact length. A longer value (a future
/// version) is ignored rather than parsed in part.
const TRACEPARENT_LEN: usize = 55;

/// A W3C `traceparent` (version 00): `00-<32 hex trace id>-<16 hex span id>-<2 hex
/// flags>`, lowercase, ids not all zero. Anything else is `None`.
pub fn parse_traceparent(value: &str) -> Option<SpanContext> {
    if value.len() != TRACEPARENT_LEN {
        return None;
    }
    let lower_hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let mut parts = value.split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || version != "00"
        || trace.len() != 32
        || span.len() != 16
        || flags.len() != 2
        || ![trace, span, flags].into_iter().all(lower_hex)
    {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(span).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    let context = SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags) & TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    context.is_valid().then_some(context)
}

/// The `traceparent` of a span context.
pub fn format_traceparent(context: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        context.trace_id(),
        context.span_id(),
        context.trace_flags().to_u8()
    )
}

pub fn continue_trace(span: &Span, traceparent: Option<&str>) {
    if let Some(remote) = traceparent.and_then(parse_traceparent) {
        let parent = opentelemetry::Context::new().with_remote_span_context(remote);
        // Fails only for a span not exported (filtered out, or none): nothing to continue.
        let _ = span.set_parent(parent);
    }
}

pub fn traceparent(span: &Span) -> Option<String> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| format_traceparent(&span_context))
}

pub fn link<'a>(span: &Span, traceparents: impl IntoIterator<Item = &'a str>) {
    for context in traceparents.into_iter().filter_map(parse_traceparent) {
        span.add_link(context);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn headers_are_parsed_as_the_exporter_parses_its_variable() {
        let headers = parse_headers("authorization=Bearer%20k3y, x-team = ops ,broken,=empty");
        assert_eq!(headers.len(), 2, "{headers:?}");
        assert_eq!(headers["authorization"], "Bearer k3y");
        assert_eq!(headers["x-team"], "ops");
    }

    #[test]
    fn a_valid_traceparent_round_trips() {
        let context = parse_traceparent(VALID).expect("valid");
        assert_eq!(
            context.trace_id(),
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap()
        );
        assert!(context.is_remote() && context.is_sampled());
        assert_eq!(format_traceparent(&context), VALID);
    }

    #[test]
    fn a_malformed_traceparent_is_ignored() {
        let zero_trace = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
        let zero_span = "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01";
        let upper = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01";
        let version = "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let longer = format!("{VALID}-extra");
        let shifted = "00-4bf92f3577b34da6a3ce929d0e0e47360-0f067aa0ba902b7-01";
        let not_hex = "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01";
        let huge = "0".repeat(100_000);
        for bad in [
            "", zero_trace, zero_span, upper, version, &longer, shifted, not_hex, &huge,
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad:.80} accepted");
        }
    }
}
