//! What the edge did for one request, for the `X-Cache` header, logs and
//! metrics (pingora's `CachePhase`, reduced to the outcomes an edge reports).

/// The outcome of one [`Edge::get`](crate::Edge::get).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CachePhase {
    /// Served from the cache, fresh.
    Hit,
    /// This request fetched the object from the origin (and stored it if the
    /// policy allows).
    Miss,
    /// Another request was already fetching the object; this one received
    /// the same bytes as they arrived (request coalescing).
    Coalesced,
    /// Served from the cache past its freshness lifetime because the origin
    /// failed, timed out or was fail-fast (stale-if-error).
    Stale,
    /// Fetched from the origin for this request (and its coalesced waiters)
    /// only: the response may not be stored (`no-cache`/`no-store`, an
    /// in-progress segment, an error status).
    Bypass,
    /// No response could be produced; see the [`EdgeError`](crate::EdgeError).
    Error,
}

impl CachePhase {
    /// Every phase, for metrics labels.
    pub const ALL: [CachePhase; 6] = [
        CachePhase::Hit,
        CachePhase::Miss,
        CachePhase::Coalesced,
        CachePhase::Stale,
        CachePhase::Bypass,
        CachePhase::Error,
    ];

    /// The `X-Cache` header value: `HIT`, `MISS`, `COALESCED`, `STALE`,
    /// `BYPASS` or `ERROR`.
    pub fn as_str(self) -> &'static str {
        match self {
            CachePhase::Hit => "HIT",
            CachePhase::Miss => "MISS",
            CachePhase::Coalesced => "COALESCED",
            CachePhase::Stale => "STALE",
            CachePhase::Bypass => "BYPASS",
            CachePhase::Error => "ERROR",
        }
    }

    /// True when the bytes came from memory without an origin fetch of
    /// their own (hit, stale or coalesced): what a hit ratio counts.
    pub fn served_from_edge(self) -> bool {
        matches!(
            self,
            CachePhase::Hit | CachePhase::Stale | CachePhase::Coalesced
        )
    }
}

impl std::fmt::Display for CachePhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_distinct_upper_case() {
        let mut seen = std::collections::HashSet::new();
        for p in CachePhase::ALL {
            assert!(seen.insert(p.as_str()));
            assert_eq!(p.as_str(), p.as_str().to_ascii_uppercase());
            assert_eq!(p.to_string(), p.as_str());
        }
        assert!(CachePhase::Coalesced.served_from_edge());
        assert!(!CachePhase::Miss.served_from_edge());
    }
}
