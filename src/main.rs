//! The `wgbert` command line.

mod cli;

fn main() -> std::process::ExitCode {
    quiet_on_broken_pipes();
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("warn,wgpu_hal=off,wgpu_core=error"),
    )
    .init();
    let args = cli::Cli::parse_args();
    match cli::run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // The reader went away (`wgbert ... | head`): nothing left to say to anyone.
        Err(e) if is_broken_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

/// Every command writes its results to stdout; when the reader closes the pipe, the process
/// ends as Unix filters do, killed by SIGPIPE (status 141 in a shell), without a panic or a
/// message. Rust ignores SIGPIPE by default, which turns the write into an error that
/// `println!` panics on; this restores the default action once for every command.
fn quiet_on_broken_pipes() {
    #[cfg(unix)]
    // SAFETY: called first in `main`, before any thread exists; SIG_DFL is a valid action.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Where there is no SIGPIPE (Windows), a write to a closed pipe is an I/O error instead.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
