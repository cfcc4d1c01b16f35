//! Signals as a readable fd (signalfd), so they are one more event in the
//! loop. SIGTERM and SIGINT stop the monitor; SIGHUP, SIGUSR1 and SIGUSR2
//! (sent by operators and tooling expecting a reload or a dump) are logged
//! and ignored instead of killing the process. The signals are blocked for
//! the (single) thread first.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const HANDLED: [i32; 5] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

pub(super) struct Signals {
    fd: OwnedFd,
}

/// Whether `sig` asks the monitor to stop.
pub(super) fn is_shutdown(sig: i32) -> bool {
    sig == libc::SIGTERM || sig == libc::SIGINT
}

pub(super) fn name(sig: i32) -> &'static str {
    match sig {
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGHUP => "SIGHUP",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        _ => "other",
    }
}

impl Signals {
    pub(super) fn new() -> io::Result<Signals> {
        // SAFETY: plain libc calls on a sigset we own; the returned fd is
        // owned by us from here on.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in HANDLED {
                libc::sigaddset(&mut set, s);
            }
            if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(Signals {
                fd: OwnedFd::from_raw_fd(fd),
            })
        }
    }

    pub(super) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The next pending signal number, if any.
    pub(super) fn read(&self) -> Option<i32> {
        // SAFETY: reading a signalfd_siginfo-sized record into a zeroed one.
        unsafe {
            let mut info: libc::signalfd_siginfo = std::mem::zeroed();
            let n = libc::read(
                self.fd.as_raw_fd(),
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                std::mem::size_of::<libc::signalfd_siginfo>(),
            );
            (n == std::mem::size_of::<libc::signalfd_siginfo>() as isize)
                .then_some(info.ssi_signo as i32)
        }
    }
}
