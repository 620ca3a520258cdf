//! `flashgate`: the command line. `flashgate serve` runs a node; `promote` and
//! `switchover` change which node of a pair is the primary; `demo` shows it all
//! on two local nodes; see `--help`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use flashgate_gateway::config::{BuyerAuth, ReplicationMode, StandbyLossMode, StartRole};
use flashgate_gateway::log_limit::{is_client_caused, ClientLines, LineLimits};
use flashgate_gateway::{Config, LogFormat, Overrides};

mod cli;
mod demo;

#[derive(Parser)]
#[command(
    name = "flashgate",
    version,
    about = "An order gateway for flash sales"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node: recover the data dir, then take orders over HTTP and QUIC until SIGINT or SIGTERM.
    Serve(Box<ServeArgs>),
    /// Make a standby the primary (after the primary was lost).
    Promote(cli::promote::PromoteArgs),
    /// Planned change of primary: handover, promote, and wait until the old primary follows.
    Switchover(cli::switchover::SwitchoverArgs),
    /// One node's state: role, epoch, whether it would take an order now, log, peer, lag.
    Status(cli::status::StatusArgs),
    /// A consistent backup of a running node (primary or standby) at one LSN;
    /// `flashgate backup verify DIR` checks one in full.
    Backup(cli::backup::BackupArgs),
    /// Build a data dir from a backup (checked in full first).
    Restore(cli::restore::RestoreArgs),
    /// Print a shell completion script for flashgate (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print flashgate's man page (roff), e.g. `flashgate man > flashgate.1`, or
    /// with --out-dir write one page per command (flashgate-serve.1, …).
    Man {
        /// Write flashgate.1 and a page for each command into this directory.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<std::path::PathBuf>,
    },
    /// The whole product in one command: a primary and a standby, a flash sale,
    /// a crash and a failover, and an audit of every acknowledged order.
    Demo(demo::DemoArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML configuration file; FLASHGATE_* environment variables override it, flags override both.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory for the log, checkpoints and generated secrets [default: ./flashgate-data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Address to listen on for HTTP [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    http_addr: Option<SocketAddr>,
    /// Address to listen on for QUIC (UDP) [default: 127.0.0.1:4433].
    #[arg(long, value_name = "ADDR")]
    quic_addr: Option<SocketAddr>,
    /// Do not run the QUIC front end (the other --quic-* flags are then unused);
    /// HTTP runs either way.
    #[arg(long)]
    no_quic: bool,
    /// Serve the HTTP API over TLS with this PEM certificate chain (with
    /// --http-tls-key); HTTP/2 and HTTP/1.1 by ALPN; read again on SIGHUP.
    #[arg(long, value_name = "FILE")]
    http_tls_cert: Option<PathBuf>,
    /// PEM private key for --http-tls-cert.
    #[arg(long, value_name = "FILE")]
    http_tls_key: Option<PathBuf>,
    /// PEM certificate chain for QUIC, with --quic-key [default: a self-signed
    /// certificate generated into the data dir].
    #[arg(long, value_name = "FILE")]
    quic_cert: Option<PathBuf>,
    /// PEM private key for --quic-cert.
    #[arg(long, value_name = "FILE")]
    quic_key: Option<PathBuf>,
    /// Shards for a new data dir [default: the number of cores].
    #[arg(long)]
    shards: Option<u32>,
    /// Bearer token for the admin API; generated into the data dir when absent.
    #[arg(long, env = "FLASHGATE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Whether buyer and payment calls need a credential: token (every call
    /// but the catalogue carries one) or development (none needed, anyone
    /// acts for any customer; refused with replication) [default: token].
    #[arg(long, value_enum)]
    buyer_auth: Option<BuyerAuth>,
    /// File with the HMAC secret (at least 32 bytes) that signs buyer tokens
    /// (JWT HS256/384/512 whose `sub` is the customer id).
    #[arg(long, value_name = "FILE")]
    jwt_hmac_secret_file: Option<PathBuf>,
    /// File with a JWK set of the public keys that sign buyer tokens.
    #[arg(long, value_name = "FILE")]
    jwt_jwks_file: Option<PathBuf>,
    /// File of service tokens (trusted upstreams acting for any customer), one a line.
    #[arg(long, value_name = "FILE")]
    service_tokens_file: Option<PathBuf>,
    /// File of payments tokens (confirm or cancel any order), one a line.
    #[arg(long, value_name = "FILE")]
    payments_tokens_file: Option<PathBuf>,
    /// File of fulfilment tokens (the warehouse: read and ship any order), one a line.
    #[arg(long, value_name = "FILE")]
    fulfilment_tokens_file: Option<PathBuf>,
    /// File of operator tokens (metrics, cluster status, every SKU; read only), one a line.
    #[arg(long, value_name = "FILE")]
    operator_tokens_file: Option<PathBuf>,
    /// Write logs as JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
    /// Start as the primary (takes orders) or as a standby of --follow [default: primary].
    #[arg(long, value_enum)]
    role: Option<StartRole>,
    /// The primary's replication address (HOST:PORT), for --role standby.
    #[arg(long, value_name = "ADDR")]
    follow: Option<String>,
    /// Address (UDP) to listen on for a standby, and for fencing by a newer
    /// primary. Give it to both nodes of a pair. Without it (and --follow) the
    /// node runs standalone.
    #[arg(long, value_name = "ADDR")]
    replication_addr: Option<SocketAddr>,
    /// sync: a buyer hears yes once the order is durable on both nodes; async:
    /// once durable here, the standby lagging behind [default: sync].
    #[arg(long, value_enum)]
    replication: Option<ReplicationMode>,
    /// What a sync primary does when its standby is gone: block (orders wait,
    /// then get 503 standby_unavailable) or degrade (after --standby-timeout, go
    /// on alone) [default: block].
    #[arg(long, value_enum)]
    standby_loss: Option<StandbyLossMode>,
    /// How long orders wait for the standby before --standby-loss applies, e.g. 5s [default: 5s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    standby_timeout: Option<std::time::Duration>,
    /// Promote this standby after hearing nothing from its primary this long,
    /// e.g. 3s. Only with sync replication and --standby-loss block.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    auto_promote_after: Option<std::time::Duration>,
    /// File holding the cluster secret (at least 16 bytes) every node shares;
    /// or set FLASHGATE_CLUSTER_SECRET.
    #[arg(long, value_name = "FILE")]
    cluster_secret_file: Option<PathBuf>,
    /// Longest one wait on the disk (a log write, an fsync) may last before the
    /// node fail-stops (503 storage_failed), e.g. 5s; it also bounds a stop's
    /// final checkpoint [default: 5s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    disk_stall_timeout: Option<std::time::Duration>,
    /// Continuous archiving: copy every durable log record to segment files
    /// in this directory, for `flashgate restore --archive`.
    #[arg(long, value_name = "DIR")]
    archive_dir: Option<PathBuf>,
    /// Run on every closed archive segment (%p its path, %f its name), e.g.
    /// "cp %p /mnt/elsewhere/%f"; exit status 0 means copied.
    #[arg(long, value_name = "COMMAND")]
    archive_command: Option<String>,
    /// Publish every committed domain event (orders, SKUs) to NATS JetStream
    /// at this URL, e.g. nats://127.0.0.1:4222 (docs/EVENTS.md).
    #[arg(long, value_name = "URL")]
    events_nats_url: Option<String>,
    /// POST every alert event (raised, resolved) to this URL, signed as
    /// Standard Webhooks says; repeat for more receivers (docs/ALERTS.md).
    #[arg(long = "webhook-url", value_name = "URL")]
    webhook_urls: Vec<String>,
    /// File holding the webhook signing secret (whsec_<base64>); without it
    /// one is generated into the data dir (webhook-secret), or set
    /// FLASHGATE_WEBHOOK_SECRET.
    #[arg(long, value_name = "FILE")]
    webhook_secret_file: Option<PathBuf>,
}

/// The man pages of flashgate, generated from the command line's definition
/// (so they say what `--help` says): flashgate.1 on stdout, or every page
/// (flashgate.1, flashgate-serve.1, …) written into `out_dir`.
fn man_pages(out_dir: Option<&std::path::Path>) -> ExitCode {
    let command = <Cli as clap::CommandFactory>::command();
    let Some(dir) = out_dir else {
        let mut page = Vec::new();
        if let Err(error) = clap_mangen::Man::new(command).render(&mut page) {
            eprintln!("flashgate: cannot render the man page: {error}");
            return ExitCode::FAILURE;
        }
        return write_stdout(&page);
    };
    match std::fs::create_dir_all(dir).and_then(|()| clap_mangen::generate_to(command, dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!(
                "flashgate: cannot write the man pages into {}: {error}",
                dir.display()
            );
            ExitCode::FAILURE
        }
    }
}

/// Writes generated text to stdout; a reader that went away (`| head`) is
/// not an error.
fn write_stdout(bytes: &[u8]) -> ExitCode {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("flashgate: cannot write to stdout: {error}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Promote(args) => cli::promote::run(args),
        Command::Switchover(args) => cli::switchover::run(args),
        Command::Status(args) => cli::status::run(args),
        Command::Backup(args) => cli::backup::run(args),
        Command::Restore(args) => cli::restore::run(args),
        Command::Completions { shell } => {
            // Generated into memory: the generator panics on a failed write
            // (a closed pipe), and a panic aborts this process.
            let mut script = Vec::new();
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "flashgate",
                &mut script,
            );
            write_stdout(&script)
        }
        Command::Man { out_dir } => man_pages(out_dir.as_deref()),
        Command::Demo(args) => demo::run(args),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let overrides = Overrides {
        data_dir: args.data_dir,
        http_addr: args.http_addr,
        shards: args.shards,
        admin_token: args.admin_token,
        buyer_auth: args.buyer_auth,
        jwt_hmac_secret_file: args.jwt_hmac_secret_file,
        jwt_jwks_file: args.jwt_jwks_file,
        service_tokens_file: args.service_tokens_file,
        payments_tokens_file: args.payments_tokens_file,
        fulfilment_tokens_file: args.fulfilment_tokens_file,
        operator_tokens_file: args.operator_tokens_file,
        log_format: args.log_json.then_some(LogFormat::Json),
        quic_enabled: args.no_quic.then_some(false),
        quic_addr: args.quic_addr,
        http_tls_cert: args.http_tls_cert,
        http_tls_key: args.http_tls_key,
        quic_cert: args.quic_cert,
        quic_key: args.quic_key,
        role: args.role,
        follow: args.follow,
        replication_addr: args.replication_addr,
        replication: args.replication,
        standby_loss: args.standby_loss,
        standby_timeout_ms: args
            .standby_timeout
            .map(|timeout| timeout.as_millis() as u64),
        auto_promote_after_ms: args
            .auto_promote_after
            .map(|after| after.as_millis() as u64),
        cluster_secret_file: args.cluster_secret_file,
        disk_stall_timeout_ms: args
            .disk_stall_timeout
            .map(|timeout| timeout.as_millis() as u64),
        archive_dir: args.archive_dir,
        archive_command: args.archive_command,
        events_nats_url: args.events_nats_url,
        webhook_urls: args.webhook_urls,
        webhook_secret_file: args.webhook_secret_file,
    };
    let config = match Config::load(args.config.as_deref(), &overrides) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("flashgate: {error}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&config.log_format, config.client_log_limits());
    install_fail_stop_panic_hook();
    raise_open_file_limit();
    let result = actix_web::rt::System::new().block_on(flashgate_gateway::serve(config));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error @ flashgate_gateway::ServeError::StorageFailed(_)) => {
            eprintln!("flashgate: {error}");
            ExitCode::from(flashgate_gateway::EXIT_STORAGE_FAILED)
        }
        Err(error) => {
            tracing::error!(%error, "flashgate stopped");
            eprintln!("flashgate: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Raises the soft limit on open files to the hard limit: every connection is a
/// file descriptor, and the usual soft limit (1,024) is reached by a crowd (or
/// by 2,000 slow clients) long before the connection limits are.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for the call to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "cannot read the open-file limit");
        return;
    }
    let soft = limit.rlim_cur;
    if soft >= limit.rlim_max {
        tracing::info!(open_files_max = soft, "open-file limit");
        return;
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: `limit` is a valid rlimit; raising the soft limit up to the hard
    // one needs no privilege.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } == 0 {
        tracing::info!(
            from = soft,
            to = limit.rlim_max,
            "raised the open-file limit to its hard limit"
        );
    } else {
        tracing::warn!(error = %std::io::Error::last_os_error(), soft, "cannot raise the open-file limit");
    }
}

/// Makes any panic, on any thread, end the process (fail-stop). Without it a
/// panic ends only its own thread: a dead log writer or shard actor would leave
/// a node that reports ready and never answers. A dead process is what a
/// supervisor and a standby know how to replace, and it loses nothing: every
/// acknowledged order is in the log. The hook says which thread panicked,
/// where and why, then aborts (SIGABRT), before any unwinding could hide it.
fn install_fail_stop_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("unnamed");
        let location = info
            .location()
            .map_or_else(|| "an unknown location".to_owned(), ToString::to_string);
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        let backtrace = std::backtrace::Backtrace::capture();
        eprintln!(
            "flashgate: PANIC in thread '{thread}' at {location}: {message}; aborting the process (fail-stop: every acknowledged order is in the log; restart the node or promote its standby)\n{backtrace}"
        );
        tracing::error!(
            thread,
            %location,
            message,
            "PANIC: aborting the process (fail-stop)"
        );
        std::process::abort();
    }));
}

/// Colour codes only on a terminal, and not when `NO_COLOR` is set
/// (no-color.org): a log file or a pipe gets plain text.
fn colour_on_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
}

/// Lines go to stderr; those an outside client causes (a malformed request, a
/// failed replication handshake) go through `ClientLines` instead: at WARN or
/// below, rate-limited per kind, with a summary of what was suppressed.
fn init_tracing(format: &LogFormat, client_limits: LineLimits) {
    use tracing_subscriber::filter::filter_fn;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let not_client_caused = filter_fn(|metadata| !is_client_caused(metadata.target()));
    let lines = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_filter(not_client_caused)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(colour_on_stderr())
            .with_filter(not_client_caused)
            .boxed(),
    };
    let client_lines = ClientLines::new(client_limits);
    tracing_subscriber::registry()
        .with(filter)
        .with(lines)
        .with(client_lines.clone())
        .init();
    client_lines.start_summaries();
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// The completion scripts and man pages come from the command line's own
    /// definition: every command is in them, so they cannot fall behind.
    #[test]
    fn completions_and_man_pages_cover_every_command() {
        let commands: Vec<String> = Cli::command()
            .get_subcommands()
            .map(|command| command.get_name().to_owned())
            .collect();
        assert!(commands.iter().any(|name| name == "status"));
        for shell in [clap_complete::Shell::Bash, clap_complete::Shell::Zsh] {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "flashgate", &mut script);
            let script = String::from_utf8(script).expect("a script is text");
            for name in &commands {
                assert!(script.contains(name.as_str()), "{shell}: {name}");
            }
        }
        let dir = tempfile::tempdir().expect("a temporary dir");
        assert_eq!(man_pages(Some(dir.path())), ExitCode::SUCCESS);
        for name in commands.iter().filter(|name| *name != "help") {
            let page = std::fs::read_to_string(dir.path().join(format!("flashgate-{name}.1")))
                .unwrap_or_else(|error| panic!("flashgate-{name}.1: {error}"));
            assert!(page.contains(".TH"), "flashgate-{name}.1 is a man page");
        }
        let main = std::fs::read_to_string(dir.path().join("flashgate.1")).expect("flashgate.1");
        assert!(main.contains("switchover"), "{main}");
    }
}
