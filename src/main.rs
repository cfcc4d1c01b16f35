//! `kata-monitor`: parse flags, start the daemon, serve until SIGTERM/SIGINT.

use kata_monitor::daemon::{Daemon, config, logger};

fn main() {
    let cmd = match config::parse(std::env::args_os().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: {e}", config::NAME);
            std::process::exit(2);
        }
    };
    let cfg = match cmd {
        config::Command::Help => {
            print!("{}", config::HELP);
            return;
        }
        config::Command::Version => {
            print!("{}", config::version_text());
            return;
        }
        config::Command::Run(cfg) => cfg,
    };
    logger::init(cfg.log_level);
    raise_fd_limit();
    log::info!(
        version = config::VERSION,
        commit = config::COMMIT,
        listen:% = cfg.listen,
        runtime_endpoint:% = cfg.runtime_endpoint.display(),
        sandbox_dirs:% = format!("{:?}", cfg.sandbox_dirs);
        "announce"
    );
    let mut daemon = match Daemon::new(cfg) {
        Ok(d) => d,
        Err(e) => {
            // One line on stderr, through the logger like every other line.
            log::error!("{e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = daemon.run() {
        log::error!(error:% = e; "event loop failed");
        std::process::exit(1);
    }
}

/// Raises the soft limit on open files to the hard one, as Go programs
/// (upstream's kata-monitor among them) do at start: every sandbox holds a
/// shim connection, and a systemd service's default soft limit of 1024
/// would run out at ~1000 sandboxes where upstream would not.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let soft = lim.rlim_cur;
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                log::debug!(from = soft, to = lim.rlim_max; "raised the open files limit");
            }
        }
    }
}
