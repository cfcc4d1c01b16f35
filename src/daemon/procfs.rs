//! The monitor's own process figures (`kata_monitor_process_*`), from procfs,
//! as Prometheus's Go process collector reports them; and raising the
//! descriptor limit at start (also used by `kata-sim`).

/// A reading of this process.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct ProcStats {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub open_fds: u64,
    pub max_fds: u64,
    pub start_time_seconds: f64,
    /// RLIMIT_AS (`u64::MAX`: unlimited, as client_golang reports it).
    pub virtual_max_bytes: u64,
    /// IP octets received and sent in this process's network namespace
    /// (`/proc/self/net/netstat`, IpExt), what client_golang reports as
    /// `process_network_{receive,transmit}_bytes_total`.
    pub net_octets: Option<(u64, u64)>,
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
    // SAFETY: as above.
    if unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut lim) } == 0 {
        s.virtual_max_bytes = lim.rlim_cur;
    }
    s.net_octets = std::fs::read_to_string("/proc/self/net/netstat")
        .ok()
        .and_then(|t| ip_ext_octets(&t));
    s
}

/// `InOctets` and `OutOctets` of the `IpExt:` header and value lines of a
/// `/proc/<pid>/net/netstat`.
pub(super) fn ip_ext_octets(netstat: &str) -> Option<(u64, u64)> {
    let mut lines = netstat.lines().filter(|l| l.starts_with("IpExt:"));
    let (names, values) = (lines.next()?, lines.next()?);
    let field = |want: &str| {
        let i = names.split_whitespace().position(|n| n == want)?;
        values.split_whitespace().nth(i)?.parse().ok()
    };
    Some((field("InOctets")?, field("OutOctets")?))
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
    fn ip_ext_octets_are_found_by_name() {
        let t =
            "TcpExt: A B\nTcpExt: 1 2\nIpExt: InNoRoutes InOctets X OutOctets\nIpExt: 0 405 7 68\n";
        assert_eq!(ip_ext_octets(t), Some((405, 68)));
        assert_eq!(ip_ext_octets("IpExt: InOctets OutOctets\n"), None);
        assert_eq!(ip_ext_octets("IpExt: InOctets\nIpExt: 1\n"), None);
        assert!(read().virtual_max_bytes > 0);
    }

    #[test]
    fn comm_with_spaces_and_parens() {
        let f = stat_fields("42 (a) b) c) S 1 2 3").unwrap();
        assert_eq!(f, ["S", "1", "2", "3"]);
    }
}

/// The descriptor limit before and after [`raise_nofile_limit`].
#[derive(Clone, Copy, Debug)]
pub struct NoFile {
    pub was: u64,
    pub soft: u64,
    pub hard: u64,
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit, as Go's runtime does
/// at start (upstream's monitor gets it for free): a node with many
/// sandboxes needs a descriptor per shim connection.
pub fn raise_nofile_limit() -> NoFile {
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
