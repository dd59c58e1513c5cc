//! Which key protects new payloads at a given time: the state the ring knows at one revision
//! and its timeline of default keys.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::key::KeyId;
use crate::repository::Revision;

/// What the ring knows at one revision.
#[derive(Default)]
pub(crate) struct RingState {
    pub(crate) keys: RandomBytesMap<KeyId, Arc<KeyEntry>>,
    pub(super) revision: Revision,
    pub(super) bad_documents: Vec<(String, String)>,
    /// The default key over all time, built on first use (the keys of a state never change;
    /// a reload installs a new state).
    pub(super) timeline: OnceLock<Timeline>,
}

impl RingState {
    /// The key that protects new payloads at `now`: among keys not revoked, not expired and
    /// active (allowing for clock skew), the most recently activated.
    pub(crate) fn default_key(&self, now: DateTime<Utc>, skew: Duration) -> Option<&Arc<KeyEntry>> {
        match self.default_key_at_nanos(crate::clock::nanos(now), skew) {
            Some(found) => found,
            None => self.scan_default_key(now, skew),
        }
    }

    /// [`Self::default_key`] at `now_ns` (Unix nanoseconds, as from
    /// [`Clock::now_nanos`](crate::Clock::now_nanos)): usually two atomic loads (the built
    /// timeline, its hint) and two comparisons. `None` when `now_ns` is saturated (outside 1677-2262), where nanoseconds
    /// cannot tell instants apart: ask [`Self::default_key`] with the date instead.
    pub(crate) fn default_key_at_nanos(
        &self,
        now_ns: i64,
        skew: Duration,
    ) -> Option<Option<&Arc<KeyEntry>>> {
        if now_ns == i64::MIN || now_ns == i64::MAX {
            return None;
        }
        let timeline = self.timeline.get_or_init(|| Timeline::build(self, skew));
        // Every ring passes its one configured skew; a different one is answered by a scan.
        if timeline.skew != skew {
            return None;
        }
        Some(timeline.at(now_ns))
    }

    /// The default key as of the most recent lookup on this state (a protect, the refresh
    /// task's poll, any [`Self::default_key`]), without reading the clock: `None` before the
    /// first lookup. Reading the clock costs far more than the rest of the lookup (about 35 ns
    /// on a virtual machine), too much for a metric on every unprotect.
    pub(crate) fn recent_default_key(&self, skew: Duration) -> Option<Option<&Arc<KeyEntry>>> {
        let timeline = self.timeline.get().filter(|t| t.skew == skew)?;
        Some(timeline.recent())
    }

    pub(super) fn scan_default_key(
        &self,
        now: DateTime<Utc>,
        skew: Duration,
    ) -> Option<&Arc<KeyEntry>> {
        let horizon = now
            .checked_add_signed(skew)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        self.keys
            .values()
            .filter(|k| {
                !k.info.is_revoked() && k.info.activates_at <= horizon && k.info.expires_at > now
            })
            .max_by_key(|k| (k.info.activates_at, k.info.created_at, k.info.id))
    }
}

/// The default key of one state as a function of time. A key is eligible from
/// `activates_at - skew` until `expires_at`, so the default can only change at those instants:
/// between two consecutive ones it is constant. The spans are computed once per state, and a
/// hint remembers the span last asked about, so the hot path is a relaxed load and two
/// comparisons; when the clock leaves that span the next lookup finds the new one (a binary
/// search over a few entries) and moves the hint. The default is therefore exact at every
/// instant, never lagging behind the clock.
pub(super) struct Timeline {
    skew: Duration,
    /// Consecutive spans covering every `i64` nanosecond, sorted by `from_ns`.
    spans: Vec<Span>,
    /// Index of the span last looked up; only ever a valid index.
    hint: AtomicUsize,
}

/// `[from_ns, until_ns)` in Unix nanoseconds, and the default key throughout it.
struct Span {
    from_ns: i64,
    until_ns: i64,
    key: Option<Arc<KeyEntry>>,
}

impl Timeline {
    fn build(state: &RingState, skew: Duration) -> Self {
        // Every instant at which a key becomes or stops being eligible. Instants outside the
        // nanosecond range saturate; several may collapse onto `i64::MIN`/`i64::MAX`, which is
        // why saturated lookups never reach the timeline.
        let mut edges: Vec<DateTime<Utc>> = state
            .keys
            .values()
            .filter(|k| !k.info.is_revoked())
            .flat_map(|k| {
                let eligible = k.info.activates_at.checked_sub_signed(skew);
                eligible.into_iter().chain([k.info.expires_at])
            })
            .collect();
        edges.sort();
        edges.dedup();
        let mut spans: Vec<Span> = Vec::with_capacity(edges.len() + 1);
        let mut from = (i64::MIN, DateTime::<Utc>::MIN_UTC);
        for edge in edges.into_iter().map(|e| (crate::clock::nanos(e), e)) {
            if edge.0 > from.0 {
                spans.push(Span {
                    from_ns: from.0,
                    until_ns: edge.0,
                    key: state.scan_default_key(from.1, skew).cloned(),
                });
                from = edge;
            } else {
                // Same nanosecond after saturation: the later instant starts the span.
                from.1 = edge.1;
            }
        }
        spans.push(Span {
            from_ns: from.0,
            until_ns: i64::MAX,
            key: state.scan_default_key(from.1, skew).cloned(),
        });
        Self {
            skew,
            spans,
            hint: AtomicUsize::new(0),
        }
    }

    /// The default key of the span last looked up.
    fn recent(&self) -> Option<&Arc<KeyEntry>> {
        self.spans
            .get(self.hint.load(Ordering::Relaxed))
            .and_then(|s| s.key.as_ref())
    }

    /// The default key at `now_ns`, for `i64::MIN < now_ns < i64::MAX`.
    fn at(&self, now_ns: i64) -> Option<&Arc<KeyEntry>> {
        // Relaxed is enough: the spans are immutable, the hint only saves a search, and any
        // index it holds is valid.
        let hint = self.hint.load(Ordering::Relaxed);
        if let Some(span) = self.spans.get(hint) {
            if span.from_ns <= now_ns && now_ns < span.until_ns {
                return span.key.as_ref();
            }
        }
        let index = self
            .spans
            .partition_point(|s| s.from_ns <= now_ns)
            .saturating_sub(1);
        self.hint.store(index, Ordering::Relaxed);
        self.spans.get(index).and_then(|s| s.key.as_ref())
    }
}
