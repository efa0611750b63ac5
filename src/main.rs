use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};

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
        // Registered before anything starts, so an early Ctrl-C still cleans up.
        let mut interrupt = signal(SignalKind::interrupt())
            .map_err(|e| Error::Server(format!("cannot watch SIGINT: {e}")))?;
        let mut terminate = signal(SignalKind::terminate())
            .map_err(|e| Error::Server(format!("cannot watch SIGTERM: {e}")))?;
        tokio::select! {
            r = cli::run(cli) => r,
            _ = interrupt.recv() => Err(Error::Interrupted("SIGINT")),
            _ = terminate.recv() => Err(Error::Interrupted("SIGTERM")),
        }
    });
    // The run future, and with it the staging server and its directory, is
    // dropped by now.
    drop(runtime);
    downtime::ui::progress_finish();
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("downtime: error: {e}");
            std::process::exit(e.exit_code());
        }
    }
}
