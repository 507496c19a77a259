//! The `pharos` command line: arguments, one request, the answer printed as text or JSON.
//!
//! [`run`] is the whole tool minus the process: it takes the arguments and returns the exit
//! code and what to print, so the daemon's process tests drive exactly what the binary runs.

use crate::client::{self, DEFAULT_TIMELIMIT};
use crate::render;
use crate::schema::{
    decode, Done, Ifaces, IpInfoAnswer, Ips, PnnAnswer, Pong, RecmasterAnswer, ScriptStatus,
    Status, Var, Vars,
};
use clap::{Parser, Subcommand};
use pharos_core::control::Request;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Control a pharos cluster node.
#[derive(Parser, Debug)]
#[command(name = "pharos", version, about)]
struct Args {
    /// Control socket of pharosd.
    #[arg(long, env = "PHAROS_SOCKET", default_value = crate::settings::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Print the daemon's JSON answer instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Wait at most this many seconds for pharosd (ctdb's -T); default 5.
    #[arg(short = 'T', long, value_name = "SECONDS", global = true)]
    timelimit: Option<f64>,
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
        seconds: String,
    },
    /// Undo `ban`.
    Unban,
    /// This node's public addresses and who hosts each (`all`: every address of the cluster).
    Ip {
        /// `all`: every address some node lists.
        all: Option<String>,
        /// Show the interfaces too.
        #[arg(short, long)]
        verbose: bool,
    },
    /// One public address in detail.
    Ipinfo {
        /// The address.
        ip: String,
    },
    /// Move a public address to a node (it stays there while that node can host it).
    Moveip {
        /// The address.
        ip: String,
        /// The node to host it.
        pnn: String,
    },
    /// Re-read the public addresses file on every node.
    Reloadips,
    /// The last run of an event's scripts (default: monitor): status, duration, output.
    Scriptstatus {
        /// init, setup, startup, startrecovery, recovered, takeip, releaseip, monitor,
        /// shutdown, updateip, ipreallocated or startipreallocate.
        event: Option<String>,
    },
    /// This node's public interfaces: link state and how many addresses each hosts.
    Ifaces,
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

/// What one run of the tool printed, and its exit code.
#[derive(Debug, Default)]
pub struct Outcome {
    /// 0 on success, 1 on failure (or a not-OK `nodestatus`), 2 for bad arguments.
    pub code: u8,
    /// What goes to standard output.
    pub stdout: String,
    /// What goes to standard error (one line per failure, `pharos: reason`).
    pub stderr: String,
}

/// The request line for a command, parsed here by the daemon's own parser, so that a request
/// the daemon would refuse is refused before it is sent, in the same words.
fn request_of(command: &Command) -> Result<Request, String> {
    let line = match command {
        Command::Ipalloc { .. } => unreachable!("ipalloc needs no daemon"),
        Command::Status => "status".to_string(),
        Command::Nodestatus { pnn: None } => "nodestatus".to_string(),
        Command::Nodestatus { pnn: Some(p) } => format!("nodestatus {p}"),
        Command::Pnn => "pnn".to_string(),
        Command::Recmaster => "recmaster".to_string(),
        Command::Listvars => "listvars".to_string(),
        Command::Getvar { name } => format!("getvar {name}"),
        Command::Setvar { name, value } => format!("setvar {name} {value}"),
        Command::Ping => "ping".to_string(),
        Command::Disable => "disable".to_string(),
        Command::Enable => "enable".to_string(),
        Command::Stop => "stop".to_string(),
        Command::Continue => "continue".to_string(),
        Command::Ban { seconds } => format!("ban {seconds}"),
        Command::Unban => "unban".to_string(),
        Command::Ip { all: None, .. } => "ip".to_string(),
        Command::Ip { all: Some(a), .. } => format!("ip {a}"),
        Command::Ipinfo { ip } => format!("ipinfo {ip}"),
        Command::Moveip { ip, pnn } => format!("moveip {ip} {pnn}"),
        Command::Reloadips => "reloadips".to_string(),
        Command::Scriptstatus { event: None } => "scriptstatus".to_string(),
        Command::Scriptstatus { event: Some(e) } => format!("scriptstatus {e}"),
        Command::Ifaces => "ifaces".to_string(),
    };
    if line.contains('\n') {
        return Err("arguments cannot contain a newline".into());
    }
    Request::parse(&line).map_err(|e| e.to_string())
}

fn timelimit(arg: Option<f64>) -> Result<Duration, String> {
    match arg {
        None => Ok(DEFAULT_TIMELIMIT),
        Some(s) if s.is_finite() && s > 0.0 && s <= 3600.0 => Ok(Duration::from_secs_f64(s)),
        Some(s) => Err(format!(
            "--timelimit {s}: expected seconds, more than 0 and at most 3600"
        )),
    }
}

fn exit_ok(ok: bool) -> u8 {
    if ok {
        0
    } else {
        1
    }
}

fn execute(args: Args, out: &mut Outcome) -> Result<u8, String> {
    if let Command::Ipalloc { text, file } = &args.command {
        out.stdout = crate::ipalloc_case::run(file, *text)?;
        return Ok(0);
    }
    let limit = timelimit(args.timelimit)?;
    let request = request_of(&args.command)?;
    let started = Instant::now();
    let answer = client::request(&args.socket, &request.to_line(), limit)?;
    let elapsed = started.elapsed();
    if args.json {
        // Refusals are errors in JSON mode too; anything else is printed as the daemon sent it.
        decode::<serde_json::Value>(&answer)?;
        out.stdout = format!("{answer}\n");
        if let Command::Nodestatus { .. } = args.command {
            return Ok(exit_ok(render::nodestatus(&decode::<Status>(&answer)?).1));
        }
        if let Ok(Done {
            warning: Some(w), ..
        }) = decode::<Done>(&answer)
        {
            out.stderr = format!("pharos: warning: {w}\n");
        }
        return Ok(0);
    }
    out.stdout = match args.command {
        Command::Status => render::status(&decode::<Status>(&answer)?),
        Command::Nodestatus { .. } => {
            let (text, ok) = render::nodestatus(&decode::<Status>(&answer)?);
            out.stdout = text;
            return Ok(exit_ok(ok));
        }
        Command::Pnn => format!("{}\n", decode::<PnnAnswer>(&answer)?.pnn),
        Command::Recmaster => format!("{}\n", decode::<RecmasterAnswer>(&answer)?.recmaster),
        Command::Listvars => render::listvars(&decode::<Vars>(&answer)?),
        Command::Getvar { .. } => render::getvar(&decode::<Var>(&answer)?),
        Command::Scriptstatus { .. } => render::scriptstatus(&decode::<ScriptStatus>(&answer)?),
        Command::Setvar { .. }
        | Command::Disable
        | Command::Enable
        | Command::Stop
        | Command::Continue
        | Command::Ban { .. }
        | Command::Unban
        | Command::Moveip { .. }
        | Command::Reloadips => {
            if let Some(w) = decode::<Done>(&answer)?.warning {
                out.stderr = format!("pharos: warning: {w}\n");
            }
            String::new()
        }
        Command::Ip { verbose, .. } => render::ip(&decode::<Ips>(&answer)?, verbose),
        Command::Ipinfo { .. } => render::ipinfo(&decode::<IpInfoAnswer>(&answer)?),
        Command::Ifaces => render::ifaces(&decode::<Ifaces>(&answer)?),
        Command::Ping => format!(
            "response from {} time={:.6} sec\n",
            decode::<Pong>(&answer)?.pnn,
            elapsed.as_secs_f64()
        ),
        Command::Ipalloc { .. } => unreachable!("handled above"),
    };
    Ok(0)
}

/// Runs the tool on `args` (the first one is the program name, as in `std::env::args_os`).
pub fn run<I, T>(args: I) -> Outcome
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let mut out = Outcome::default();
    let args = match Args::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            let text = e.render().to_string();
            if e.use_stderr() {
                out.stderr = text;
            } else {
                out.stdout = text;
            }
            out.code = u8::try_from(e.exit_code()).unwrap_or(2);
            return out;
        }
    };
    match execute(args, &mut out) {
        Ok(code) => out.code = code,
        Err(e) => {
            out.stdout.clear();
            out.stderr = format!("pharos: {e}\n");
            out.code = 1;
        }
    }
    out
}

/// The `pharos` binary: [`run`] on the process arguments, printed.
pub fn main() -> ExitCode {
    let out = run(std::env::args_os());
    print!("{}", out.stdout);
    eprint!("{}", out.stderr);
    ExitCode::from(out.code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pharos(args: &[&str]) -> Outcome {
        run(["pharos", "--socket", "/nonexistent/pharos-test.sock"]
            .iter()
            .chain(args))
    }

    /// Refused before anything is sent: the socket does not even exist, yet the error is about
    /// the request, in the daemon parser's words.
    #[test]
    fn bad_requests_are_refused_locally() {
        let o = pharos(&["nodestatus", "4294967295"]);
        assert_eq!(o.code, 1);
        assert!(!o.stderr.contains("\"-1\""), "{}", o.stderr);
        assert!(
            o.stderr.contains("\"4294967295\"") && o.stderr.contains("0 to 255"),
            "{}",
            o.stderr
        );
        let o = pharos(&["setvar", "KeepaliveInterval", "1 s"]);
        assert_eq!(o.code, 1);
        assert!(
            o.stderr.contains("invalid duration \"1 s\""),
            "{}",
            o.stderr
        );
        let o = pharos(&["setvar", "NoSuchTunable", "1 s"]);
        assert!(o.stderr.contains("unknown tunable"), "{}", o.stderr);
        let o = pharos(&["ban", "0"]);
        assert!(o.stderr.contains("invalid ban time"), "{}", o.stderr);
        let o = pharos(&["scriptstatus", "Monitor"]);
        assert!(
            o.stderr.contains("unknown event \"Monitor\""),
            "{}",
            o.stderr
        );
        let o = pharos(&["getvar", "a\nstatus"]);
        assert!(o.stderr.contains("newline"), "{}", o.stderr);
        let o = pharos(&["--timelimit", "0", "ping"]);
        assert!(o.stderr.contains("--timelimit"), "{}", o.stderr);
        // A good request gets as far as the (missing) socket.
        let o = pharos(&["ping"]);
        assert!(o.stderr.contains("no control socket"), "{}", o.stderr);
        assert_eq!(o.stderr.lines().count(), 1);
    }

    #[test]
    fn usage_errors_exit_2_and_help_goes_to_stdout() {
        let o = run(["pharos", "frobnicate"]);
        assert_eq!(o.code, 2);
        assert!(o.stderr.contains("frobnicate"));
        let o = run(["pharos", "--help"]);
        assert_eq!(o.code, 0);
        assert!(o.stdout.contains("Usage: pharos"), "{}", o.stdout);
    }
}
