use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};

use downtime::cancel::{Abort, Cancel};
use downtime::cli::{self, Cli};
use downtime::error::{Error, EXIT_ERROR};

fn main() {
    let cli = Cli::parse();
    downtime::ui::set_quiet(cli.quiet);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("downtime: error: cannot start the async runtime: {e}");
            std::process::exit(EXIT_ERROR);
        }
    };
    let result = runtime.block_on(async {
        // Registered before anything starts, so an early signal still cleans up.
        let mut interrupt = signal(SignalKind::interrupt())
            .map_err(|e| Error::Server(format!("cannot watch SIGINT: {e}")))?;
        let mut terminate = signal(SignalKind::terminate())
            .map_err(|e| Error::Server(format!("cannot watch SIGTERM: {e}")))?;
        let (trigger, cancel) = Cancel::new();
        let run = cli::run(cli, cancel);
        tokio::pin!(run);
        loop {
            let abort = tokio::select! {
                r = &mut run => return r,
                _ = interrupt.recv() => Abort::Sigint,
                _ = terminate.recv() => Abort::Sigterm,
            };
            if trigger.borrow().is_some() {
                // A second signal: stop now, but leave nothing behind.
                downtime::ui::progress_finish();
                eprintln!("downtime: {abort} again: stopping at once");
                downtime::staging::emergency_cleanup();
                std::process::exit(abort.exit_code().unwrap_or(130));
            }
            downtime::ui::warn(&format!(
                "{abort}: cancelling the running statement and cleaning up (again to stop at once)"
            ));
            let _ = trigger.send(Some(abort));
        }
    });
    // The run future, and with it the staging server and its directory, is
    // dropped by now.
    drop(runtime);
    downtime::ui::progress_finish();
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            downtime::ui::error(&e.to_string());
            std::process::exit(e.exit_code());
        }
    }
}
