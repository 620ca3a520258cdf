//! Ctrl-C and SIGTERM during the demo: the nodes are the demo's children and
//! must not outlive it, so the signal is handled (on a thread of its own)
//! by a cleanup that kills them, and only then does the process exit.

use std::io;
use std::sync::mpsc;

use tokio::signal::unix::{signal, SignalKind};

/// The signal that stopped the demo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interrupt {
    Interrupt,
    Terminate,
}

impl Interrupt {
    pub fn name(self) -> &'static str {
        match self {
            Interrupt::Interrupt => "SIGINT",
            Interrupt::Terminate => "SIGTERM",
        }
    }

    /// The exit status a shell reports for a process ended by this signal.
    pub fn exit_code(self) -> i32 {
        128 + match self {
            Interrupt::Interrupt => libc::SIGINT,
            Interrupt::Terminate => libc::SIGTERM,
        }
    }
}

/// From now on, SIGINT and SIGTERM call `on_interrupt` (once, on a thread of
/// its own) instead of ending the process; `on_interrupt` is expected to
/// clean up and exit. Returns once the handlers are in place.
pub fn on_interrupt(on_interrupt: impl FnOnce(Interrupt) + Send + 'static) -> io::Result<()> {
    let (ready, installed) = mpsc::channel::<io::Result<()>>();
    std::thread::Builder::new()
        .name("demo-signals".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = ready.send(Err(error));
                    return;
                }
            };
            let received = runtime.block_on(async move {
                let (mut interrupt, mut terminate) = match (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                ) {
                    (Ok(interrupt), Ok(terminate)) => (interrupt, terminate),
                    (Err(error), _) | (_, Err(error)) => {
                        let _ = ready.send(Err(error));
                        return None;
                    }
                };
                let _ = ready.send(Ok(()));
                tokio::select! {
                    _ = interrupt.recv() => Some(Interrupt::Interrupt),
                    _ = terminate.recv() => Some(Interrupt::Terminate),
                }
            });
            if let Some(received) = received {
                on_interrupt(received);
            }
        })?;
    installed.recv().unwrap_or_else(|_| {
        Err(io::Error::other(
            "the signal thread ended before it installed its handlers",
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_ends_the_process_with_the_status_a_shell_expects() {
        assert_eq!(Interrupt::Interrupt.exit_code(), 130);
        assert_eq!(Interrupt::Terminate.exit_code(), 143);
        assert_eq!(Interrupt::Terminate.name(), "SIGTERM");
    }
}
