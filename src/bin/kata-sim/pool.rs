//! Connection threads, reused: a job never waits behind a busy thread.
//!
//! Creating and tearing down a thread per connection costs more CPU than
//! serving a scrape, which would distort benchmarks of a monitor that does
//! not keep connections alive.  So finished connection threads park as idle
//! workers.  A job goes to an idle worker only after claiming one (the idle
//! count is decremented first), otherwise a new thread is spawned: a
//! keep-alive connection occupying a worker can never delay another one.
//! Workers idle for a minute exit.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

type Job = Box<dyn FnOnce() + Send>;

const IDLE_EXIT: Duration = Duration::from_secs(60);
const STACK: usize = 256 * 1024;

struct Pool {
    tx: Mutex<Sender<Job>>,
    rx: Arc<Mutex<Receiver<Job>>>,
    /// Workers waiting for a job and not yet claimed by a submitter.
    idle: Arc<AtomicUsize>,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = mpsc::channel();
        Pool {
            tx: Mutex::new(tx),
            rx: Arc::new(Mutex::new(rx)),
            idle: Arc::new(AtomicUsize::new(0)),
        }
    })
}

/// Runs `job` on an idle worker, or on a new thread if none is idle.
pub fn run(job: impl FnOnce() + Send + 'static) -> io::Result<()> {
    let p = pool();
    let mut job: Job = Box::new(job);
    let claimed = p
        .idle
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
        .is_ok();
    if claimed {
        match p.tx.lock().unwrap_or_else(|e| e.into_inner()).send(job) {
            Ok(()) => return Ok(()),
            // Cannot happen (the receiver is never dropped); run it anyway.
            Err(mpsc::SendError(j)) => job = j,
        }
    }
    let (rx, idle) = (Arc::clone(&p.rx), Arc::clone(&p.idle));
    thread::Builder::new()
        .name("conn".into())
        .stack_size(STACK)
        .spawn(move || {
            job();
            worker(&rx, &idle);
        })?;
    Ok(())
}

fn worker(rx: &Mutex<Receiver<Job>>, idle: &AtomicUsize) {
    loop {
        idle.fetch_add(1, Ordering::AcqRel);
        let job = loop {
            let got = rx
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .recv_timeout(IDLE_EXIT);
            match got {
                Ok(job) => break job,
                Err(RecvTimeoutError::Timeout) => {
                    // Leave only if no submitter claimed us meanwhile.
                    if idle
                        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                        .is_ok()
                    {
                        return;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
        };
        job();
    }
}
