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
        config::Command::Run(cfg) => *cfg,
    };
    logger::init(cfg.log_level);
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
