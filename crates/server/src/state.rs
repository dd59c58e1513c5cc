//! Shared server state.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use ringfence_axum::Ringfence;

/// Whether the node takes new traffic: false once it starts draining.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    draining: Arc<AtomicBool>,
}

impl Readiness {
    /// Marks the node as draining: `/readyz` answers `503` from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether the node is draining.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Key ring, sessions, accounts.
    pub ringfence: Ringfence,
    /// This node's name (`X-Ringfence-Node`, page header).
    pub node_name: Arc<str>,
    /// Draining flag.
    pub readiness: Readiness,
    /// Renders `/metrics`; `None` when no recorder was installed (tests in one process).
    pub metrics: Option<PrometheusHandle>,
    /// Passkeys (`/api/v1/passkeys/*`); `None`: those routes answer `404`.
    pub passkeys: Option<ringfence_accounts::PasskeyService>,
}

impl AppState {
    /// State for a node named `node_name`.
    pub fn new(ringfence: Ringfence, node_name: &str, metrics: Option<PrometheusHandle>) -> Self {
        Self {
            ringfence,
            node_name: Arc::from(node_name),
            readiness: Readiness::default(),
            metrics,
            passkeys: None,
        }
    }

    /// The same state with passkeys.
    pub fn with_passkeys(mut self, passkeys: ringfence_accounts::PasskeyService) -> Self {
        self.passkeys = Some(passkeys);
        self
    }

    /// Where users reach the app (`--public-url`): build links from it, never from a request's
    /// `Host`.
    pub fn public_url(&self) -> Option<&ringfence_axum::PublicUrl> {
        self.ringfence.public_url()
    }
}
