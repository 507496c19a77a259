//! The `pharos` command line: arguments, one request, the answer printed as text or JSON.

use clap::{Parser, Subcommand};
use pharos_core::control::{AdminCommand, Request};
use pharos_core::Pnn;
use crate::render as cli;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Control a pharos cluster node.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Control socket of pharosd.
    #[arg(long, env = "PHAROS_SOCKET", default_value = crate::settings::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Print the daemon's JSON answer instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Node map, generation, recovery master, quorum.
    Status,
    /// Status of one node (or all); exit 1 if a listed node is not OK.
    Nodestatus {
        /// PNN or `all`.
        pnn: Option<String>,
    },
    /// This node's PNN.
    Pnn,
    /// The recovery master's PNN (-1 while none).
    #[command(alias = "leader")]
    Recmaster,
    /// Every tunable and its value.
    Listvars,
    /// One tunable.
    Getvar {
        /// Tunable name.
        name: String,
    },
    /// Set a tunable on this node (takes effect at once).
    Setvar {
        /// Tunable name.
        name: String,
        /// Value (durations: 250ms, 2s, or seconds).
        value: String,
    },
    /// Check that the daemon answers.
    Ping,
    /// Keep this node in the cluster but host no public IP.
    Disable,
    /// Undo `disable`.
    Enable,
    /// Make this node inactive (no IPs, never recovery master).
    Stop,
    /// Undo `stop`.
    Continue,
    /// Ban this node for SECONDS.
    Ban {
        /// Ban duration in seconds.
        seconds: u32,
    },
    /// Undo `ban`.
    Unban,
    /// Run the public-IP allocator offline on a case file (no daemon needed) and print the
    /// allocation after every step.
    Ipalloc {
        /// Print a table instead of JSON.
        #[arg(long)]
        text: bool,
        /// The case file (CTDB conformance format).
        file: PathBuf,
    },
}

fn run(args: Args) -> Result<ExitCode, String> {
    if let Command::Ipalloc { text, file } = &args.command {
        print!("{}", crate::ipalloc_case::run(file, *text)?);
        return Ok(ExitCode::SUCCESS);
    }
    let request = match &args.command {
        Command::Ipalloc { .. } => unreachable!("handled above"),
        Command::Status => Request::Status,
        Command::Nodestatus { pnn: None } => Request::NodeStatus(None),
        Command::Nodestatus { pnn: Some(p) } if p == "all" => Request::NodeStatus(None),
        Command::Nodestatus { pnn: Some(p) } => Request::NodeStatus(Some(Pnn(p
            .parse()
            .map_err(|_| format!("invalid PNN {p:?}"))?))),
        Command::Pnn => Request::Pnn,
        Command::Recmaster => Request::Recmaster,
        Command::Listvars => Request::ListVars,
        Command::Getvar { name } => Request::GetVar(name.clone()),
        Command::Setvar { name, value } => Request::SetVar(name.clone(), value.clone()),
        Command::Ping => Request::Ping,
        Command::Disable => Request::Admin(AdminCommand::Disable),
        Command::Enable => Request::Admin(AdminCommand::Enable),
        Command::Stop => Request::Admin(AdminCommand::Stop),
        Command::Continue => Request::Admin(AdminCommand::Continue),
        Command::Ban { seconds: 0 } => return Err("ban: SECONDS must be more than 0".into()),
        Command::Ban { seconds } => Request::Admin(AdminCommand::Ban(*seconds)),
        Command::Unban => Request::Admin(AdminCommand::Unban),
    };
    let started = Instant::now();
    let answer = cli::request(&args.socket, &request.to_line())?;
    let elapsed = started.elapsed();
    if let Some(e) = cli::error_of(&answer) {
        return Err(e);
    }
    if args.json {
        println!("{answer}");
        if let Command::Nodestatus { .. } = args.command {
            let (_, ok) = cli::render_nodestatus(&answer)?;
            return Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        return Ok(ExitCode::SUCCESS);
    }
    let text = match args.command {
        Command::Status => cli::render_status(&answer)?,
        Command::Nodestatus { .. } => {
            let (text, ok) = cli::render_nodestatus(&answer)?;
            print!("{text}");
            return Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        Command::Pnn => cli::render_number(&answer, "pnn")?,
        Command::Recmaster => cli::render_number(&answer, "recmaster")?,
        Command::Listvars => cli::render_listvars(&answer)?,
        Command::Getvar { .. } => cli::render_getvar(&answer)?,
        Command::Setvar { .. }
        | Command::Disable
        | Command::Enable
        | Command::Stop
        | Command::Continue
        | Command::Ban { .. }
        | Command::Unban
        | Command::Ipalloc { .. } => String::new(),
        Command::Ping => {
            let pnn = cli::render_number(&answer, "pnn")?;
            format!(
                "response from {} time={:.6} sec\n",
                pnn.trim(),
                elapsed.as_secs_f64()
            )
        }
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// Runs the `pharos` tool on the process arguments.
pub fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pharos: {e}");
            ExitCode::FAILURE
        }
    }
}
