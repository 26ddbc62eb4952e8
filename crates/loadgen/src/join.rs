//! Collecting the clients' tasks at the end of a run, the same in every mode: each is given
//! until one deadline, and one that has not finished by then is aborted and stands in the
//! report as what `missing` makes of its index.

use tokio::{
    task::JoinHandle,
    time::{timeout_at, Instant},
};

/// The tasks' results in order; a task not done by `deadline` (or that panicked) is aborted
/// and replaced by `missing(index)`.
pub(crate) async fn join_by<T>(
    handles: Vec<JoinHandle<T>>,
    deadline: Instant,
    missing: impl Fn(usize) -> T,
) -> Vec<T> {
    let mut out = Vec::with_capacity(handles.len());
    for (index, mut h) in handles.into_iter().enumerate() {
        let r = timeout_at(deadline, &mut h).await;
        if r.is_err() {
            h.abort();
        }
        out.push(match r {
            Ok(Ok(v)) => v,
            _ => missing(index),
        });
    }
    out
}
