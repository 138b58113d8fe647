//! The `vcguard` command: parses arguments and calls into the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use vcguard::config::{Config, LogFormat, Overrides};
use vcguard::gateway::{Gateway, GatewayParts};

/// A policy-enforcing reverse proxy for the VMware vSphere API.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Log format: text or json (overrides `log.format`).
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway in front of a vCenter.
    Serve(ServeArgs),
    /// Run the built-in vCenter simulator.
    Sim(SimArgs),
    /// Run the simulator and the gateway together on loopback, ready to try.
    Demo(DemoArgs),
    /// Check, test and explain Cedar policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Mint and inspect change tickets.
    #[command(subcommand)]
    Ticket(TicketCommand),
    /// Review the audit log: verify the chain, query, follow.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// List, show, approve and deny approval requests (two-person rule), through a gateway.
    #[command(subcommand)]
    Approval(ApprovalCommand),
}

#[derive(Subcommand)]
enum ApprovalCommand {
    /// List approval requests (default: the pending ones).
    List {
        /// pending, approved, denied, used, expired or all.
        #[arg(long, default_value = "pending")]
        state: String,
        #[command(flatten)]
        gateway: GatewayArgs,
    },
    /// Show one approval request.
    Show {
        /// The request id (apr-…).
        id: String,
        #[command(flatten)]
        gateway: GatewayArgs,
    },
    /// Approve a request another user made (you must be in its approver group).
    Approve {
        /// The request id (apr-…).
        id: String,
        /// Why you approve it (recorded in the audit log).
        #[arg(long, default_value = "")]
        comment: String,
        #[command(flatten)]
        gateway: GatewayArgs,
    },
    /// Deny a request.
    Deny {
        /// The request id (apr-…).
        id: String,
        /// Why you deny it (recorded in the audit log).
        #[arg(long, default_value = "")]
        comment: String,
        #[command(flatten)]
        gateway: GatewayArgs,
    },
}

/// Where the gateway is and who logs in (the password comes from VCGUARD_PASSWORD or a prompt).
#[derive(Args, Clone)]
struct GatewayArgs {
    /// The gateway's URL, e.g. https://vcguard.example.com.
    #[arg(long, env = "VCGUARD_GATEWAY")]
    gateway: String,
    /// The vCenter user to log in as (through the gateway).
    #[arg(long, env = "VCGUARD_USER")]
    user: String,
    /// PEM CA file the gateway's certificate is checked against (default: the system's roots).
    #[arg(long, conflicts_with = "insecure")]
    ca: Option<PathBuf>,
    /// Do not check the gateway's certificate.
    #[arg(long, short = 'k')]
    insecure: bool,
    /// Print the API's JSON answer instead of a table.
    #[arg(long)]
    json: bool,
    /// The VI/JSON release used to log in.
    #[arg(long, default_value = "8.0.3.0")]
    api_release: String,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check every record's hash and link across FILES in order (oldest first). One
    /// argument may be the log directory or the active file: its rotated siblings are
    /// found and checked with it, and every gap is reported.
    Verify {
        /// Audit files, rotated ones first, the active one last; or one directory or active file.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print matching records as a table (or JSON lines).
    Query(QueryArgs),
    /// Print the last records of FILE; with -f, keep printing new ones.
    Tail {
        /// The active audit file.
        file: PathBuf,
        /// Keep following the file (across rotation).
        #[arg(short, long)]
        follow: bool,
        /// How many records to show first.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
    },
}

#[derive(Args)]
struct QueryArgs {
    /// Audit files, in order.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Records at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Records before this time (RFC 3339).
    #[arg(long)]
    until: Option<String>,
    /// Principal contains this (case-insensitive).
    #[arg(long)]
    user: Option<String>,
    /// vim method.
    #[arg(long)]
    method: Option<String>,
    /// Target moId, e.g. host-21.
    #[arg(long)]
    host: Option<String>,
    /// allow, deny or would-deny.
    #[arg(long)]
    decision: Option<String>,
    /// Change ticket id.
    #[arg(long)]
    ticket: Option<String>,
    /// Print the matching records as JSON lines.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum TicketCommand {
    /// Print a signed change ticket (JWT) scoped to hosts and actions.
    Mint(MintArgs),
    /// Look a change ticket up in the change system ([ticket.change_system]) and print the verdict.
    ///
    /// Exit status: 0 authorised, 1 not authorised, 2 configuration error.
    Check(CheckArgs),
    /// Claim a ticket for your calls from clients that cannot send the ticket header.
    Claim {
        /// The ticket (a plain change id or a signed ticket).
        ticket: String,
        /// A host (moId) the claim covers (repeatable).
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
        /// A vim method the claim covers (repeatable; default: the ticket's own scope).
        #[arg(long = "action")]
        actions: Vec<String>,
        /// How long: 90s, 30m, 2h, 1d (at most a day).
        #[arg(long, default_value = "2h")]
        ttl: String,
        #[command(flatten)]
        gateway: GatewayArgs,
    },
    /// List your active ticket claims.
    Claims {
        #[command(flatten)]
        gateway: GatewayArgs,
    },
    /// Release one of your ticket claims.
    Release {
        /// The claim id (clm-…).
        id: String,
        #[command(flatten)]
        gateway: GatewayArgs,
    },
    /// Show a ticket's header and claims, and whether it verifies under a config's [ticket] section.
    Inspect {
        /// The ticket (the X-Change-Ticket header value).
        token: String,
        /// Config file whose [ticket] section verifies it.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[derive(Args)]
struct CheckArgs {
    /// The change id, e.g. CHG0012345.
    id: String,
    /// A host name the call would act on, as in the change's configuration items (repeatable).
    #[arg(long = "host")]
    hosts: Vec<String>,
    /// The vim method the call would run.
    #[arg(long, default_value = "EnterMaintenanceMode_Task")]
    action: String,
    /// Config file with the [ticket.change_system] section.
    #[arg(long, short)]
    config: PathBuf,
}

#[derive(Args)]
struct MintArgs {
    /// PEM private key of the change system (Ed25519, P-256 or RSA).
    #[arg(long)]
    key: PathBuf,
    /// The change id, e.g. CHG0012345.
    #[arg(long)]
    id: String,
    /// A host (moId or name) the ticket covers (repeatable).
    #[arg(long = "host", required = true)]
    hosts: Vec<String>,
    /// A vim method the ticket covers (repeatable).
    #[arg(long = "action", required = true)]
    actions: Vec<String>,
    /// Lifetime: 90s, 30m, 4h, 1d.
    #[arg(long, default_value = "4h")]
    ttl: String,
    /// The `iss` claim (must match `ticket.signed.issuer`).
    #[arg(long, default_value = "vcguard-demo")]
    issuer: String,
    /// The `aud` claim (must match `ticket.signed.audience`).
    #[arg(long, default_value = "vcguard")]
    audience: String,
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate a policy directory; print every error with file and line.
    Check {
        /// The policy directory.
        #[arg(default_value = "policies")]
        dir: PathBuf,
    },
    /// Run the test cases in DIR/tests/*.toml; prints `N passed, N failed`.
    Test {
        /// The policy directory.
        #[arg(default_value = "policies")]
        dir: PathBuf,
    },
    /// Show the decision for one request and the policies that determined it.
    Explain(ExplainArgs),
}

#[derive(Args)]
struct ExplainArgs {
    /// The policy directory.
    #[arg(long, default_value = "policies")]
    dir: PathBuf,
    /// Principal, e.g. 'User::"VSPHERE.LOCAL\\Administrator"' or 'Unauthenticated'.
    #[arg(long, default_value = "Unauthenticated")]
    principal: String,
    /// Groups of a User principal (repeatable).
    #[arg(long = "group")]
    groups: Vec<String>,
    /// The vim method, e.g. ChangeLockdownMode.
    #[arg(long)]
    action: String,
    /// Resource, e.g. 'HostAccessManager::"ham-21"'.
    #[arg(long)]
    resource: String,
    /// The context as a JSON object (see policies/schema.cedarschema).
    #[arg(long)]
    context: String,
}

#[derive(Args)]
struct ServeArgs {
    /// TOML config file (see vcguard.example.toml); flags below win over it.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Client-facing listen address (`server.listen`).
    #[arg(long)]
    listen: Option<String>,
    /// PEM certificate chain for clients (`server.cert`).
    #[arg(long)]
    cert: Option<PathBuf>,
    /// PEM private key for clients (`server.key`).
    #[arg(long)]
    key: Option<PathBuf>,
    /// vCenter base URL (`upstream.url`).
    #[arg(long)]
    upstream: Option<String>,
    /// PEM CA file for vCenter's certificate (`upstream.ca_file`).
    #[arg(long)]
    upstream_ca: Option<PathBuf>,
    /// SHA-256 thumbprint pinning vCenter's certificate (`upstream.thumbprint`).
    #[arg(long)]
    upstream_thumbprint: Option<String>,
    /// Do not verify vCenter's certificate (`upstream.insecure_skip_verify`).
    #[arg(long)]
    upstream_insecure: bool,
    /// Admin listen address for /healthz, /readyz, /metrics (`admin.listen`).
    #[arg(long)]
    admin_listen: Option<String>,
    /// Cedar policy directory (`policy.dir`).
    #[arg(long)]
    policies: Option<PathBuf>,
    /// Audit log file (`audit.file`).
    #[arg(long)]
    audit: Option<PathBuf>,
    /// Log one line per request (`log.access`).
    #[arg(long)]
    access_log: bool,
}

#[derive(Args)]
struct SimArgs {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:8989")]
    listen: SocketAddr,
    /// Serve plain HTTP instead of TLS with a generated certificate.
    #[arg(long)]
    plain: bool,
    /// Extra user as NAME:PASSWORD (repeatable); administrator@vsphere.local:VMware1! always exists.
    #[arg(long = "user", value_name = "NAME:PASSWORD")]
    users: Vec<String>,
    /// Seconds each task (maintenance mode, VM power, datastore search) runs before it
    /// succeeds; 0 completes tasks at once.
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    task_duration_secs: u64,
}

#[derive(Args)]
struct DemoArgs {
    /// Gateway listen address.
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// Simulator listen address.
    #[arg(long, default_value = "127.0.0.1:8989")]
    sim_listen: SocketAddr,
    /// Admin listen address.
    #[arg(long, default_value = "127.0.0.1:9090")]
    admin_listen: SocketAddr,
    /// Cedar policy directory the demo enforces (default: ./policies if present, else the
    /// shipped policies built into this binary).
    #[arg(long)]
    policies: Option<PathBuf>,
    /// Audit log file (default: in the demo's own directory).
    #[arg(long)]
    audit: Option<PathBuf>,
    /// Keep the demo's directory (certificate, keys, policies, audit log) after it stops.
    #[arg(long)]
    keep: bool,
}

/// mimalloc instead of glibc's allocator: about a tenth less CPU per pass-through call, where a
/// call makes about a hundred small allocations (BENCHMARKS.md). Built without transparent huge
/// pages (`no_thp`), which would otherwise raise the resident memory at 1,000 connections by a third,
/// and asked for plain blocks where their alignment suffices (`crates/natural-mimalloc`).
#[global_allocator]
static ALLOCATOR: natural_mimalloc::NaturalMimalloc = natural_mimalloc::NaturalMimalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("vcguard: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let command = match cli.command {
        Command::Ticket(TicketCommand::Check(args)) => {
            init_logging(cli.log_format.unwrap_or_default(), false);
            return runtime.block_on(ticket_check(args));
        }
        Command::Approval(command) => return runtime.block_on(client(approval_command(command))),
        Command::Ticket(TicketCommand::Claim {
            ticket,
            hosts,
            actions,
            ttl,
            gateway,
        }) => {
            let ttl = match vcguard::ticket::parse_ttl(&ttl) {
                Ok(ttl) => ttl,
                Err(err) => {
                    eprintln!("vcguard: --ttl: {err}");
                    return ExitCode::from(2);
                }
            };
            let command = vcguard::client::ClientCommand::TicketClaim {
                ticket,
                hosts,
                actions,
                ttl,
            };
            return runtime.block_on(client((command, gateway)));
        }
        Command::Ticket(TicketCommand::Claims { gateway }) => {
            return runtime.block_on(client((
                vcguard::client::ClientCommand::TicketClaims,
                gateway,
            )));
        }
        Command::Ticket(TicketCommand::Release { id, gateway }) => {
            return runtime.block_on(client((
                vcguard::client::ClientCommand::TicketRelease { id },
                gateway,
            )));
        }
        command => command,
    };
    let result = runtime.block_on(async move {
        match command {
            Command::Serve(args) => serve(args, cli.log_format).await,
            Command::Sim(args) => {
                init_logging(cli.log_format.unwrap_or_default(), true);
                sim(args).await
            }
            Command::Demo(args) => {
                init_logging(cli.log_format.unwrap_or_default(), true);
                demo(args).await
            }
            Command::Policy(command) => policy(command),
            Command::Ticket(command) => ticket(command),
            Command::Audit(command) => audit(command).await,
            Command::Approval(_) => Err("vcguard approval runs on its own".into()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("vcguard: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs, log_format: Option<LogFormat>) -> Result<(), String> {
    let mut config = match &args.config {
        Some(path) => Config::load(path).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    config.apply(Overrides {
        listen: args.listen,
        cert: args.cert,
        key: args.key,
        upstream: args.upstream,
        upstream_ca: args.upstream_ca,
        upstream_thumbprint: args.upstream_thumbprint,
        upstream_insecure: args.upstream_insecure,
        admin_listen: args.admin_listen,
        policies: args.policies,
        audit: args.audit,
        access_log: args.access_log,
    });
    init_logging(log_format.unwrap_or(config.log.format), config.log.access);
    let settings = config.validate().map_err(|e| e.to_string())?;
    vcguard::fd_limit::prepare(vcguard::fd_limit::FdDemand {
        client_connections: settings.max_connections as u64,
        upstream_in_flight: settings.max_upstream_connections as u64,
        upstream_idle: settings.pool_max_idle as u64,
    })?;
    let parts = GatewayParts::from_settings(&settings).map_err(|e| e.to_string())?;
    let gateway = Gateway::bind(parts).await.map_err(|e| e.to_string())?;
    tracing::info!(
        listen = %gateway.local_addr(),
        admin = %gateway.admin_addr(),
        upstream = %settings.upstream,
        "vcguard is serving"
    );
    gateway.run(vcguard::server::shutdown_signal()).await;
    tracing::info!("vcguard stopped");
    Ok(())
}

async fn sim(args: SimArgs) -> Result<(), String> {
    let users = args
        .users
        .iter()
        .map(|spec| {
            spec.split_once(':')
                .map(|(name, password)| (name.to_owned(), password.to_owned()))
                .ok_or_else(|| format!("--user {spec}: expected NAME:PASSWORD"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let task_duration = std::time::Duration::from_secs(args.task_duration_secs);
    vcsim_lite::server::run_standalone(
        args.listen,
        !args.plain,
        users,
        task_duration,
        vcguard::server::shutdown_signal(),
    )
    .await
    .map_err(|e| e.to_string())
}

async fn demo(args: DemoArgs) -> Result<(), String> {
    vcguard::demo::run(vcguard::demo::DemoOptions {
        listen: args.listen,
        sim_listen: args.sim_listen,
        admin_listen: args.admin_listen,
        policies: args.policies,
        audit: args.audit,
        keep: args.keep,
    })
    .await
    .map_err(|e| e.to_string())
}

fn policy(command: PolicyCommand) -> Result<(), String> {
    use vcguard::policy::{
        PolicyRequest, PolicySet, explain, parse_principal, parse_resource, run_tests,
    };
    match command {
        PolicyCommand::Check { dir } => {
            let set = PolicySet::load(&dir).map_err(|errors| errors.to_string())?;
            println!(
                "{}: {} policies valid (set {})",
                dir.display(),
                set.policy_ids().len(),
                set.hash()
            );
            Ok(())
        }
        PolicyCommand::Test { dir } => {
            let report = run_tests(&dir).map_err(|errors| errors.to_string())?;
            println!("{report}");
            if report.success() {
                Ok(())
            } else {
                Err("policy tests failed".into())
            }
        }
        PolicyCommand::Explain(args) => {
            let set = PolicySet::load(&args.dir).map_err(|errors| errors.to_string())?;
            let mut principal = parse_principal(&args.principal).map_err(|e| e.to_string())?;
            if let vcguard::policy::Principal::User { groups, .. } = &mut principal {
                groups.extend(args.groups);
            }
            let context = serde_json::from_str(&args.context)
                .map_err(|e| format!("--context is not a JSON object: {e}"))?;
            let request = PolicyRequest {
                principal,
                action: args.action,
                resource: parse_resource(&args.resource).map_err(|e| e.to_string())?,
                context,
            };
            print!("{}", explain(&set, &request));
            Ok(())
        }
    }
}

fn ticket(command: TicketCommand) -> Result<(), String> {
    use vcguard::ticket::{MintRequest, TicketVerifier, inspect, mint, parse_ttl};
    match command {
        TicketCommand::Mint(args) => {
            let token = mint(
                &args.key,
                MintRequest {
                    id: args.id,
                    hosts: args.hosts,
                    actions: args.actions,
                    ttl: parse_ttl(&args.ttl).map_err(|e| e.to_string())?,
                    issuer: args.issuer,
                    audience: args.audience,
                    not_before: None,
                },
            )
            .map_err(|e| e.to_string())?;
            println!("{token}");
            Ok(())
        }
        TicketCommand::Check(_)
        | TicketCommand::Claim { .. }
        | TicketCommand::Claims { .. }
        | TicketCommand::Release { .. } => Err("this ticket command runs on its own".into()),
        TicketCommand::Inspect { token, config } => {
            let verifier = match config {
                Some(path) => {
                    let config = Config::load(&path).map_err(|e| e.to_string())?;
                    Some(TicketVerifier::new(&config.ticket).map_err(|e| e.to_string())?)
                }
                None => None,
            };
            print!(
                "{}",
                inspect(&token, verifier.as_ref(), std::time::SystemTime::now())
            );
            Ok(())
        }
    }
}

fn approval_command(command: ApprovalCommand) -> (vcguard::client::ClientCommand, GatewayArgs) {
    use vcguard::client::ClientCommand;
    match command {
        ApprovalCommand::List { state, gateway } => {
            (ClientCommand::ApprovalList { state }, gateway)
        }
        ApprovalCommand::Show { id, gateway } => (ClientCommand::ApprovalShow { id }, gateway),
        ApprovalCommand::Approve {
            id,
            comment,
            gateway,
        } => (
            ClientCommand::ApprovalDecide {
                id,
                approve: true,
                comment,
            },
            gateway,
        ),
        ApprovalCommand::Deny {
            id,
            comment,
            gateway,
        } => (
            ClientCommand::ApprovalDecide {
                id,
                approve: false,
                comment,
            },
            gateway,
        ),
    }
}

/// The client commands (`approval`, `ticket claim|claims|release`): exit 0 done, 1 refused or
/// failed, 2 usage error.
async fn client((command, args): (vcguard::client::ClientCommand, GatewayArgs)) -> ExitCode {
    use vcguard::client::{ClientError, ClientOptions, run};
    use vcguard::config::UpstreamTrust;
    let password = match std::env::var("VCGUARD_PASSWORD") {
        Ok(password) if !password.is_empty() => password,
        _ => match rpassword::prompt_password(format!("Password for {}: ", args.user)) {
            Ok(password) => password,
            Err(err) => {
                eprintln!(
                    "vcguard: cannot read the password ({err}); set VCGUARD_PASSWORD or run in a terminal"
                );
                return ExitCode::from(2);
            }
        },
    };
    let trust = match (&args.ca, args.insecure) {
        (Some(ca), _) => UpstreamTrust::CaFile(ca.clone()),
        (None, true) => UpstreamTrust::InsecureSkipVerify,
        (None, false) => UpstreamTrust::SystemRoots,
    };
    let options = ClientOptions {
        gateway: args.gateway,
        user: args.user,
        password,
        trust,
        release: args.api_release,
        json: args.json,
    };
    match run(&command, &options).await {
        Ok(output) => {
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(err @ ClientError::Usage(_)) => {
            eprintln!("vcguard: {err}");
            ExitCode::from(2)
        }
        Err(err) => {
            eprintln!("vcguard: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `vcguard ticket check`: exit 0 authorised, 1 not authorised, 2 configuration error.
async fn ticket_check(args: CheckArgs) -> ExitCode {
    use vcguard::ticket::ChangeSystem;
    let config_error = |message: String| {
        eprintln!("vcguard: {message}");
        ExitCode::from(2)
    };
    let config = match Config::load(&args.config) {
        Ok(config) => config,
        Err(err) => return config_error(err.to_string()),
    };
    if let Err(err) = config.ticket.validate() {
        return config_error(format!("config section [ticket]: {err}"));
    }
    let change_system = match ChangeSystem::from_ticket_config(&config.ticket) {
        Ok(Some(change_system)) => change_system,
        Ok(None) => {
            return config_error(format!(
                "{} has no [ticket.change_system] section",
                args.config.display()
            ));
        }
        Err(err) => return config_error(err.to_string()),
    };
    let verdict = change_system
        .check(
            &args.id,
            &args.hosts,
            &args.action,
            std::time::SystemTime::now(),
        )
        .await;
    print!("{}", verdict.report(&args.hosts));
    if verdict.authorises() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

async fn audit(command: AuditCommand) -> Result<(), String> {
    use vcguard::audit::{QueryFilter, parse_time, query, tail, verify};
    match command {
        AuditCommand::Verify { files } => {
            let report = match files.as_slice() {
                [one] => {
                    let set = vcguard::audit::log_set(one).map_err(|e| e.to_string())?;
                    if set.is_empty() {
                        return Err(format!("{}: no audit log files found", one.display()));
                    }
                    if set.len() > 1 {
                        println!("checking {} files:", set.len());
                        for f in &set {
                            println!("  {}", f.display());
                        }
                    }
                    vcguard::audit::verify_set(&set)
                }
                _ => verify(&files),
            };
            print!("{report}");
            if report.ok {
                Ok(())
            } else {
                Err("the audit chain is broken".into())
            }
        }
        AuditCommand::Query(args) => {
            let time = |t: Option<String>| t.map(|t| parse_time(&t)).transpose();
            let filter = QueryFilter {
                since: time(args.since).map_err(|e| e.to_string())?,
                until: time(args.until).map_err(|e| e.to_string())?,
                user: args.user,
                method: args.method,
                host: args.host,
                decision: args
                    .decision
                    .map(|d| d.parse())
                    .transpose()
                    .map_err(|e: vcguard::audit::UnknownDecision| e.to_string())?,
                ticket: args.ticket,
            };
            let mut out = std::io::stdout().lock();
            query(&args.files, &filter, &mut out, args.json).map_err(|e| e.to_string())?;
            Ok(())
        }
        AuditCommand::Tail {
            file,
            follow,
            lines,
        } => {
            let mut out = std::io::stdout();
            tail(&file, lines, follow, &mut out)
                .await
                .map_err(|e| e.to_string())
        }
    }
}

/// Logs to stderr at `RUST_LOG` (default `info`, with the per-request access line only when
/// `access`).
fn init_logging(format: LogFormat, access: bool) {
    // rustls warns about every client that sends an IP address as SNI (wrk, some SDKs): harmless.
    let default = if access {
        "info,rustls::msgs::handshake=error"
    } else {
        "info,rustls::msgs::handshake=error,vcguard::access=off"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
