//! The monitor's own process figures (`kata_monitor_process_*`), from procfs,
//! as Prometheus's Go process collector reports them.

/// A reading of this process.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct ProcStats {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub open_fds: u64,
    pub max_fds: u64,
    pub start_time_seconds: f64,
}

/// Read `/proc/self`; fields that cannot be read are left at zero.
pub(super) fn read() -> ProcStats {
    let mut s = ProcStats::default();
    // SAFETY: sysconf has no preconditions.
    let (tck, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK).max(1) as f64,
            libc::sysconf(libc::_SC_PAGESIZE).max(1) as u64,
        )
    };
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat")
        && let Some(f) = stat_fields(&stat)
    {
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        // Fields counted from 3 (state) as in proc(5): utime 14, stime 15,
        // starttime 22, vsize 23, rss 24.
        s.cpu_seconds = (num(14 - 3) + num(15 - 3)) as f64 / tck;
        s.virtual_bytes = num(23 - 3);
        s.resident_bytes = num(24 - 3) * page;
        if let Some(btime) = boot_time() {
            s.start_time_seconds = btime as f64 + num(22 - 3) as f64 / tck;
        }
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        // The directory handle itself is one of the entries.
        s.open_fds = (dir.count() as u64).saturating_sub(1);
    }
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        s.max_fds = lim.rlim_cur;
    }
    s
}

/// Fields after the `(comm)` of a stat line, starting with the state.
pub(super) fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().collect())
}

fn boot_time() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let s = read();
        assert!(s.resident_bytes > 0);
        assert!(s.virtual_bytes >= s.resident_bytes);
        assert!(s.open_fds >= 3);
        assert!(s.max_fds >= s.open_fds);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(s.start_time_seconds > now - 3600.0 && s.start_time_seconds <= now + 1.0);
    }

    #[test]
    fn comm_with_spaces_and_parens() {
        let f = stat_fields("42 (a) b) c) S 1 2 3").unwrap();
        assert_eq!(f, ["S", "1", "2", "3"]);
    }
}

/// The descriptor limit before and after [`raise_nofile_limit`].
#[derive(Clone, Copy, Debug)]
pub(super) struct NoFile {
    pub(super) was: u64,
    pub(super) soft: u64,
    pub(super) hard: u64,
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit, as Go's runtime does
/// at start (upstream's monitor gets it for free): a node with many
/// sandboxes needs a descriptor per shim connection.
pub(super) fn raise_nofile_limit() -> NoFile {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return NoFile {
                was: 1024,
                soft: 1024,
                hard: 1024,
            };
        }
        let was = lim.rlim_cur;
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
        NoFile {
            was,
            soft: lim.rlim_cur,
            hard: lim.rlim_max,
        }
    }
}
