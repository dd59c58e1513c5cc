//! The open-files limit: raised at start so `--max-connections` is reachable, and the cap
//! lowered when the limit still cannot hold it.

/// Descriptors kept free beside client connections: the stores' pools, the key files, the
/// SQLite database and its journal, the metrics listener, logs.
const RESERVED_DESCRIPTORS: u64 = 256;

/// Raises the soft `RLIMIT_NOFILE` to the hard one (an unprivileged process may) and returns
/// the cap on connections that fits under it: `wanted`, or less with a warning.
///
/// Why: a distribution's default soft limit (often 1024) is below the default cap, and a node
/// that runs out of descriptors fails its store connections, which the log then reported as
/// "key store unreachable" while the real cause was a flood of open connections.
pub fn fit_connection_cap(wanted: u32) -> usize {
    let wanted = u64::from(wanted);
    let Some(limit) = raise_open_files_limit() else {
        return usize::try_from(wanted).unwrap_or(usize::MAX);
    };
    let room = limit.saturating_sub(RESERVED_DESCRIPTORS).max(1);
    if wanted > room {
        tracing::warn!(
            max_connections = wanted,
            open_files_limit = limit,
            using = room,
            "--max-connections does not fit under the open-files limit (less {RESERVED_DESCRIPTORS} for the stores); using {room}; raise the hard limit (LimitNOFILE= in systemd, ulimit -Hn) for more"
        );
    }
    usize::try_from(wanted.min(room)).unwrap_or(usize::MAX)
}

/// The soft open-files limit after raising it to the hard limit; `None` if unknown.
fn raise_open_files_limit() -> Option<libc::rlim_t> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            } else {
                tracing::warn!(
                    soft = limit.rlim_cur,
                    hard = limit.rlim_max,
                    "could not raise the open-files limit to its hard limit"
                );
            }
        }
    }
    Some(limit.rlim_cur)
}
