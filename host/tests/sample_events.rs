//! The sample event directory (`examples/events/legacy/`) run by the event runner: takeip
//! starts a responder that answers on the address, monitor passes while it lives and fails
//! once it is killed, releaseip and shutdown stop it. On 127.0.0.x, and (as root with `ip
//! netns`) in a node namespace reached from a client namespace over a veth pair, with
//! the banner the demo's client reads (the namespace's name).

#[path = "../../shell-mio/tests/netns/mod.rs"]
mod netns;

use pharos_host::scratch::Scratch;
use pharos_host::scripts::{Event, EventDone, EventRunner, Outcome, RunnerConfig};
use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const PATIENCE: Duration = Duration::from_secs(20);
const TIMEOUT: Duration = Duration::from_secs(20);

fn sample_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/events/legacy/50.responder.script")
}

/// Why the sample cannot run here (it needs perl), or `None`.
fn no_perl() -> Option<String> {
    match std::process::Command::new("perl")
        .args(["-MSocket", "-e", "1"])
        .output()
    {
        Ok(o) if o.status.success() => None,
        Ok(_) => Some("perl has no Socket module".into()),
        Err(e) => Some(format!("no perl: {e}")),
    }
}

/// Kills, on drop, every responder the sample recorded under `state` (its pid files): the
/// processes this test made the script start, also when the test fails.
struct Responders(PathBuf);

impl Responders {
    fn pids(&self) -> Vec<u32> {
        let Ok(dir) = std::fs::read_dir(&self.0) else {
            return Vec::new();
        };
        dir.flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".pid"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .filter_map(|s| s.split_whitespace().next()?.parse().ok())
            .collect()
    }
}

fn is_responder(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).starts_with("pharos-responder"))
}

impl Drop for Responders {
    fn drop(&mut self) {
        for pid in self.pids() {
            if is_responder(pid) {
                // SAFETY: kill of a responder this test had started, by PID.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
        }
    }
}

struct Node {
    runner: EventRunner,
    woken: Receiver<()>,
    state: PathBuf,
}

impl Node {
    /// A runner on a scratch event directory holding the sample script (linked, as CTDB's
    /// enabled scripts are) and an options file with `options`.
    fn new(scratch: &Scratch, options: &str) -> Node {
        let dir = scratch.join("etc/events/legacy");
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(sample_script(), dir.join("50.responder.script")).unwrap();
        std::fs::write(dir.join("50.responder.options"), options).unwrap();
        let mut config = RunnerConfig::new(dir);
        config.script_vardir = Some(scratch.join("state"));
        let (tx, woken) = mpsc::channel();
        let tx = Mutex::new(tx);
        let runner = EventRunner::start(
            config,
            Box::new(move || {
                let _ = tx.lock().unwrap().send(());
            }),
        )
        .unwrap();
        Node {
            runner,
            woken,
            state: scratch.join("state/responder"),
        }
    }

    fn event(&mut self, e: Event) -> EventDone {
        let id = self.runner.run(e, TIMEOUT);
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(d) = self.runner.try_recv() {
                assert_eq!(d.id, id);
                return d;
            }
            let left = deadline
                .checked_duration_since(Instant::now())
                .expect("no result");
            let _ = self.woken.recv_timeout(left);
        }
    }

    fn pid_of(&self, ip: IpAddr) -> u32 {
        let s = std::fs::read_to_string(self.state.join(format!("{ip}.pid"))).unwrap();
        s.split_whitespace().next().unwrap().parse().unwrap()
    }
}

fn take(iface: &str, ip: IpAddr, maskbits: u8) -> Event {
    Event::TakeIp {
        iface: iface.into(),
        ip,
        maskbits,
    }
}

fn release(iface: &str, ip: IpAddr, maskbits: u8) -> Event {
    Event::ReleaseIp {
        iface: iface.into(),
        ip,
        maskbits,
    }
}

fn banner_at(addr: SocketAddr) -> std::io::Result<String> {
    let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    c.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut s = String::new();
    c.read_to_string(&mut s)?;
    Ok(s)
}

fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// takeip, monitor, the responder killed, monitor fails, releaseip, monitor passes: the
/// life of one address on a node, with the banner checked through `banner`.
fn address_life(node: &mut Node, iface: &str, ip: IpAddr, bits: u8, banner: &dyn Fn() -> String) {
    let d = node.event(take(iface, ip, bits));
    assert_eq!(d.outcome, Outcome::Ok, "{:?}", d.scripts);
    let took = d.scripts[0].duration;
    let first = banner();
    let d = node.event(Event::Monitor);
    assert_eq!(d.outcome, Outcome::Ok, "{:?}", d.scripts);
    // Kill the responder (not the daemon): the next monitor fails and says why.
    let pid = node.pid_of(ip);
    assert!(is_responder(pid));
    // SAFETY: kill of the responder this test made the script start.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    until("the responder to die", || !is_responder(pid));
    let d = node.event(Event::Monitor);
    assert_eq!(d.outcome, Outcome::Failed("50.responder".into()));
    assert_eq!(
        d.scripts[0].output,
        format!("ERROR: the responder for {ip} is not running\n")
    );
    // The address moves away: releaseip forgets it, and monitor passes again.
    assert_eq!(node.event(release(iface, ip, bits)).outcome, Outcome::Ok);
    assert!(!node.state.join(format!("{ip}.pid")).exists());
    assert_eq!(node.event(Event::Monitor).outcome, Outcome::Ok);
    // Taken again, and everything stopped at shutdown.
    assert_eq!(node.event(take(iface, ip, bits)).outcome, Outcome::Ok);
    let pid = node.pid_of(ip);
    assert_eq!(node.event(Event::Shutdown).outcome, Outcome::Ok);
    until("shutdown to stop the responder", || !is_responder(pid));
    println!("{ip}: banner {first:?}, takeip took {took:?}");
}

#[test]
fn the_sample_responder_follows_an_address_on_loopback() {
    if let Some(why) = no_perl() {
        println!("SKIPPED the_sample_responder_follows_an_address_on_loopback: {why}");
        return;
    }
    let scratch = Scratch::new("sample-lo");
    let ip: IpAddr = "127.0.0.77".parse().unwrap();
    let port = TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut node = Node::new(
        &scratch,
        &format!("RESPONDER_PORT={port}\nRESPONDER_BANNER=node-a\n"),
    );
    let _guard = Responders(node.state.clone());
    let addr = SocketAddr::new(ip, port);
    address_life(&mut node, "lo", ip, 8, &|| {
        let b = banner_at(addr).unwrap();
        assert_eq!(b, "node-a\n");
        b
    });
    // A takeip whose responder cannot listen (the port is taken) fails and says why.
    let taken = TcpListener::bind(addr).unwrap();
    let d = node.event(take("lo", ip, 8));
    assert_eq!(d.outcome, Outcome::Failed("50.responder".into()));
    let out = &d.scripts[0].output;
    assert!(
        out.starts_with(&format!("ERROR: no responder for {ip} port {port}:\n"))
            && out.contains(&format!("cannot listen on [{ip}]:{port}")),
        "{out}"
    );
    assert!(!node.state.join(format!("{ip}.pid")).exists());
    drop(taken);
}

#[test]
fn the_sample_responder_works_in_a_node_namespace() {
    if netns::skip("the_sample_responder_works_in_a_node_namespace") {
        return;
    }
    if let Some(why) = no_perl() {
        println!("SKIPPED the_sample_responder_works_in_a_node_namespace: {why}");
        return;
    }
    let scratch = Scratch::new("sample-ns");
    let node_ns = netns::Netns::new("evn");
    let client = netns::Netns::new("evc");
    netns::veth(&node_ns, "v0", &client, "v0p");
    node_ns.ip(&["addr", "add", "10.213.77.5/24", "dev", "v0"]);
    client.ip(&["addr", "add", "10.213.77.9/24", "dev", "v0p"]);
    let ip: IpAddr = "10.213.77.5".parse().unwrap();
    let port = 8080;
    let addr = SocketAddr::new(ip, port);
    let name = node_ns.name.clone();
    node_ns.enter(|| {
        // The runner's thread, and so every script, starts in the node's namespace.
        let mut node = Node::new(&scratch, "");
        let _guard = Responders(node.state.clone());
        address_life(&mut node, "v0", ip, 24, &|| {
            // From the client's side of the veth, as the demo's client connects.
            let b = client.enter(|| banner_at(addr)).unwrap();
            assert_eq!(b, format!("{name}\n"), "the banner is the namespace's name");
            b
        });
    });
}
