//! The descriptor budget: at start the soft `RLIMIT_NOFILE` is raised to the hard limit (the
//! default soft limit, often 1,024, would let a few hundred idle sockets stop RTMP accept,
//! ffmpeg spawns and store writes), and HTTP connections may use it all but a reserve.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Descriptors the process may hold once raised as far as it is allowed, or `None` when the
/// limit is unlimited.
pub fn raise_nofile_limit() -> Option<u64> {
    let lim = getrlimit(Resource::Nofile);
    // An unlimited hard limit still meets the kernel's nr_open (1 Mi by default).
    let want = lim.maximum.unwrap_or(1 << 20);
    if lim.current.is_some_and(|c| c < want) {
        let raised = Rlimit {
            current: Some(want),
            maximum: lim.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!("cannot raise the open file limit to {want}: {e}");
        }
    }
    getrlimit(Resource::Nofile).current
}

/// How many HTTP connections fit: the configured cap, but never more than the descriptor
/// limit minus `reserve` (RTMP ingest, ffmpeg's pipes and sockets, store files, Redis and
/// S3 clients). With a limit too small for the reserve, half of it. The flag says whether the
/// configured cap was lowered.
pub fn http_budget(nofile: Option<u64>, reserve: usize, configured: usize) -> (usize, bool) {
    let Some(nofile) = nofile.map(|n| usize::try_from(n).unwrap_or(usize::MAX)) else {
        return (configured, false);
    };
    let room = match nofile.checked_sub(reserve) {
        Some(r) if r >= nofile / 2 => r,
        _ => nofile / 2,
    };
    let cap = configured.min(room).max(1);
    (cap, cap < configured)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_kept_out_of_the_http_budget() {
        assert_eq!(http_budget(Some(20_000), 1_024, 10_000), (10_000, false));
        assert_eq!(http_budget(Some(8_192), 1_024, 10_000), (7_168, true));
        // A small limit: half for HTTP, half for everything else.
        assert_eq!(http_budget(Some(1_024), 1_024, 10_000), (512, true));
        assert_eq!(http_budget(None, 1_024, 10_000), (10_000, false));
    }

    #[test]
    fn raising_never_lowers_the_limit() {
        let before = getrlimit(Resource::Nofile).current;
        let after = raise_nofile_limit();
        assert!(after >= before, "{before:?} -> {after:?}");
    }
}
