//! Hot reload: a change in the mappings folder, or SIGHUP, loads the whole set again.
//! The registry swaps only when the new set loads and passes its mapping tests;
//! otherwise the old set keeps serving.

use std::sync::Arc;
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, new_debouncer};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Registry;

/// Edits arrive as bursts (editors write a temp file, then rename): wait for quiet.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// Watches the registry's folder (recursively, so `tests/` counts) and listens for
/// SIGHUP; both reload until `shutdown`.
pub fn spawn_reloader(registry: Arc<Registry>, shutdown: CancellationToken) {
    let (tx, rx) = mpsc::unbounded_channel();
    let debouncer = {
        let tx = tx.clone();
        new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| {
            let changed = result.is_ok_and(|events| events.iter().any(|e| !e.kind.is_access()));
            if changed {
                let _ = tx.send(());
            }
        })
    };
    // The watcher is best effort: without it, SIGHUP still reloads.
    let debouncer = match debouncer {
        Ok(mut d) => match d.watch(registry.dir(), RecursiveMode::Recursive) {
            Ok(()) => Some(d),
            Err(e) => {
                tracing::warn!(error = %e, dir = %registry.dir().display(), "cannot watch the mappings folder; reload with SIGHUP");
                None
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the file watcher; reload with SIGHUP");
            None
        }
    };
    spawn_sighup_forwarder(tx, shutdown.clone());
    tokio::spawn(reload_loop(registry, rx, shutdown, debouncer));
}

async fn reload_loop<D: Send + 'static>(
    registry: Arc<Registry>,
    mut requests: mpsc::UnboundedReceiver<()>,
    shutdown: CancellationToken,
    _watcher: Option<D>,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            request = requests.recv() => {
                if request.is_none() {
                    return;
                }
                // Coalesce a burst into one reload.
                while requests.try_recv().is_ok() {}
                let registry = registry.clone();
                let _ = tokio::task::spawn_blocking(move || reload(&registry)).await;
            }
        }
    }
}

fn spawn_sighup_forwarder(tx: mpsc::UnboundedSender<()>, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = hangup.recv() => { let _ = tx.send(()); }
            }
        }
    });
}

/// Reloads and says what happened, in the log and (through the registry) in `/readyz`.
pub fn reload(registry: &Registry) {
    let outcome = registry.reload();
    let label = if outcome.is_ok() { "ok" } else { "error" };
    metrics::counter!("bridge_mapping_reloads_total", "outcome" => label).increment(1);
    // 1 while the folder on disk does not load and an older set is serving.
    metrics::gauge!("bridge_mapping_reload_failing").set(if outcome.is_ok() { 0.0 } else { 1.0 });
    match outcome {
        Ok(()) => {
            let set = registry.current();
            tracing::info!(dir = %registry.dir().display(), sources = ?set.source_ids().collect::<Vec<_>>(), "mappings reloaded");
        }
        Err(error) => {
            tracing::error!(%error, "mapping reload refused; the previous set keeps serving")
        }
    }
}
