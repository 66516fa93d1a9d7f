//! The `agc-sandbox` binary: parse the command line, set up logging, run.

use agc_sandbox::cli::{Cli, Command, ScenarioCommand};
use clap::Parser;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    raise_open_files_limit();
    // `scenario run` prints progress lines; the sandboxes it starts log only warnings unless
    // asked otherwise.
    let level = match (&cli.command, cli.log_level.as_str()) {
        (Command::Scenario(_), "info") => "warn",
        (_, l) => l,
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: failed to start the async runtime: {err}");
            return ExitCode::from(2);
        }
    };
    // === scenario replay (issue 6): exit 0 all passed, 1 a scenario failed, 2 usage error ===
    if let Command::Scenario(ScenarioCommand::Run(args)) = &cli.command {
        let server = match scenario_server(args) {
            Ok(s) => s,
            Err(err) => {
                eprintln!("error: {err}");
                return ExitCode::from(2);
            }
        };
        let opts = agc_sandbox::scenario::Options {
            files: args.files.clone(),
            server,
            port_offset: args.port_offset,
            junit: args.junit.clone(),
        };
        let out: agc_sandbox::scenario::Out = std::sync::Arc::new(|line| println!("{line}"));
        return match runtime.block_on(agc_sandbox::scenario::run(&opts, out)) {
            Ok(summary) if summary.failed() == 0 => ExitCode::SUCCESS,
            Ok(_) => ExitCode::from(1),
            Err(err) => {
                eprintln!("error: {err}");
                ExitCode::from(2)
            }
        };
    }
    // === end scenario replay ===
    let result = runtime.block_on(async {
        match cli.command {
            Command::Up(args) => {
                agc_sandbox::app::run(args, shutdown_signal(), |s| {
                    println!("agc-sandbox is up");
                    println!("  API:        {}", s.api_url);
                    println!("  kubeconfig: {}", s.kubeconfig.display());
                    println!();
                    println!("  export KUBECONFIG={}", s.kubeconfig.display());
                })
                .await
            }
            Command::Scenario(_) => unreachable!("handled above"),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// The running sandbox `scenario run --kubeconfig` or `--server` names, if any.
fn scenario_server(
    args: &agc_sandbox::cli::ScenarioRunArgs,
) -> Result<Option<agc_sandbox::client::Access>, String> {
    use agc_sandbox::client::{kubeconfig, Access};
    if let Some(path) = &args.kubeconfig {
        return kubeconfig::read(path)
            .map(Some)
            .map_err(|e| agc_sandbox::error_chain(&e));
    }
    let Some(url) = &args.server else {
        return Ok(None);
    };
    let token = match &args.token_file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| format!("failed to read the token file {}: {e}", p.display()))?
                .trim()
                .to_string(),
        ),
        None => None,
    };
    Ok(Some(Access {
        token,
        ..Access::plain(url)
    }))
}

/// Every pod listener, client connection and WebSocket tunnel (two sockets) holds a file
/// descriptor, so raise the soft limit to the hard limit, as nginx's `worker_rlimit_nofile` does.
fn raise_open_files_limit() {
    #[cfg(unix)]
    // SAFETY: getrlimit/setrlimit only read and write the struct passed to them.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
