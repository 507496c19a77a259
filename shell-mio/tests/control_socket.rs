//! The control socket under careless or hostile use (issue 9, items 1, 7 and 10): `--socket`
//! never removes what is not a stale socket, idle clients cannot use up the daemon's
//! descriptors, and a request ended by EOF instead of a newline is answered.

mod common;

use common::*;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The one node of the socket-path tests: an address no other test uses, so that its port
/// cannot be taken by another test's connections meanwhile.
const LONE_NODE: &str = "127.0.0.77";

/// Runs a one-node pharosd with `--socket socket` and waits up to 5 s for it to exit. Returns
/// its exit status (`None`: it was still running, and has been killed) and its stderr.
fn run_with_socket(dir: &Scratch, socket: &Path) -> (Option<ExitStatus>, String) {
    let probe = std::net::TcpListener::bind((LONE_NODE, 0)).unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let stderr_path = dir.0.join("stderr");
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let mut child = Command::new(PHAROSD)
        .arg("--nodes")
        .arg(dir.0.join("nodes"))
        .args(["--node-address", LONE_NODE, "--port", &port.to_string()])
        .arg("--socket")
        .arg(socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut status = None;
    wait_for(Duration::from_secs(5), || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    (status, std::fs::read_to_string(&stderr_path).unwrap())
}

#[test]
fn a_socket_path_that_is_not_a_stale_socket_is_never_removed() {
    let dir = Scratch::new("socket-path");
    let nodes = dir.0.join("nodes");
    let nodes_text = format!("{LONE_NODE}\n");
    write(&nodes, &nodes_text);

    // A regular file holding data, and the nodes file itself.
    let data = dir.0.join("data");
    write(&data, "precious data\n");
    for (path, content) in [(&data, "precious data\n"), (&nodes, nodes_text.as_str())] {
        let (status, stderr) = run_with_socket(&dir, path);
        assert_eq!(
            std::fs::read_to_string(path).ok().as_deref(),
            Some(content),
            "{} was changed or removed; stderr: {stderr}",
            path.display()
        );
        let status = status.expect("pharosd ran on with a regular file as its socket");
        assert!(!status.success(), "exit status {status:?}");
        assert!(
            stderr.contains(&path.display().to_string()) && stderr.contains("regular file"),
            "stderr must name the path and what it is: {stderr}"
        );
    }

    // A directory, and a symbolic link to the data file.
    let subdir = dir.0.join("subdir");
    std::fs::create_dir(&subdir).unwrap();
    let link = dir.0.join("link");
    std::os::unix::fs::symlink(&data, &link).unwrap();
    for (path, what) in [(&subdir, "directory"), (&link, "symbolic link")] {
        let (status, stderr) = run_with_socket(&dir, path);
        let status = status.expect("pharosd ran on with a non-socket as its socket");
        assert!(!status.success(), "exit status {status:?}");
        assert!(
            stderr.contains(&path.display().to_string()) && stderr.contains(what),
            "stderr must say {what}: {stderr}"
        );
    }
    assert!(subdir.is_dir());
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_to_string(&data).unwrap(), "precious data\n");

    // A socket someone listens on is not taken over (and stays theirs).
    let live = dir.0.join("live.sock");
    let listener = UnixListener::bind(&live).unwrap();
    let (status, stderr) = run_with_socket(&dir, &live);
    let status = status.expect("pharosd ran on with a live socket");
    assert!(
        !status.success() && stderr.contains("another pharosd"),
        "{stderr}"
    );
    assert!(
        UnixStream::connect(&live).is_ok(),
        "the live socket was removed"
    );
    drop(listener);

    // A stale socket (nobody listens: connect is refused) is replaced.
    let stale = dir.0.join("stale.sock");
    drop(UnixListener::bind(&stale).unwrap());
    let mut c = Cluster::new("stale-socket", 1, &[]);
    std::fs::rename(&stale, c.socket(0)).unwrap();
    c.start(0);
    assert!(
        c.answers_within(0, Duration::from_secs(5)),
        "stale socket not replaced\n{}",
        c.logs()
    );
    assert!(
        c.log(0).contains("removing stale control socket"),
        "{}",
        c.logs()
    );
}

/// Whether the daemon closed `s` (EOF or reset), reading and discarding what it sent.
fn closed(s: &mut UnixStream) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

/// Node 1 of 3 runs under `ulimit -n nofile`; `clients` idle clients connect to it. Its
/// control socket must keep answering and its peers stay connected, and the idle clients are
/// closed (at once when they had to make room, else after the timeout). Returns node 1's log.
fn idle_clients_under_a_descriptor_limit(name: &str, nofile: u32, clients: usize) -> String {
    let mut c = Cluster::new(name, 3, FAST);
    c.start_with_nofile(0, nofile);
    c.start(1);
    c.start(2);
    assert!(
        wait_for(Duration::from_secs(10), || c.all_ok(&[0, 1, 2])).is_some(),
        "{}",
        c.logs()
    );

    // Clients that never say a word, and one that never finishes its line.
    let mut idle: Vec<UnixStream> = (0..clients)
        .map(|_| UnixStream::connect(c.socket(0)).unwrap())
        .collect();
    let mut partial = UnixStream::connect(c.socket(0)).unwrap();
    partial.write_all(b"sta").unwrap();
    idle.push(partial);
    let opened = Instant::now();

    for _ in 0..3 {
        let out = c.pharos(0, &["--json", "status"]);
        assert!(
            out.status.success(),
            "status with {clients} idle clients: {out:?}\n{}",
            c.logs()
        );
    }
    assert!(
        wait_for(Duration::from_secs(5), || c.all_ok(&[0, 1, 2])).is_some(),
        "peers lost with {clients} idle clients\n{}",
        c.logs()
    );

    for s in &idle {
        s.set_nonblocking(true).unwrap();
    }
    let all_closed = wait_for(Duration::from_secs(15), || idle.iter_mut().all(closed));
    let open = idle.iter_mut().map(closed).filter(|c| !c).count();
    assert!(
        all_closed.is_some(),
        "{open} idle clients still open after {:?}\n{}",
        opened.elapsed(),
        c.log(0)
    );
    eprintln!(
        "{name}: idle clients all closed {:?} after they connected",
        opened.elapsed()
    );
    assert!(c.running(0), "{}", c.logs());
    assert!(c.pharos(0, &["ping"]).status.success());
    c.log(0)
}

#[test]
fn idle_control_clients_time_out_and_cannot_use_up_descriptors() {
    let log = idle_clients_under_a_descriptor_limit("idle-clients", 64, 100);
    // A quarter of 64 descriptors: 16 clients, far from exhaustion.
    assert!(
        log.contains("at most 16 control clients"),
        "the client limit follows the descriptor limit\n{log}"
    );
    assert!(!log.contains("Too many open files"), "{log}");
}

#[test]
fn out_of_descriptors_the_daemon_still_serves_and_warns_once() {
    // 18 descriptors: 12 in use before any peer (stdio, two listeners, epoll, the signal
    // pipe, the lock service's waker and socket, the spare, ...) and four peer connections
    // leave room for 2 clients, fewer than the limit of 4, so accepting runs into EMFILE and
    // must get by with evictions and the spare.
    let log = idle_clients_under_a_descriptor_limit("no-descriptors", 18, 30);
    assert_eq!(
        log.matches("Too many open files").count(),
        1,
        "EMFILE warned once per burst\n{log}"
    );
}

/// Sends `request` and half-closes; returns everything the daemon sent back.
fn ask_and_half_close(socket: &Path, request: &[u8]) -> String {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
}

#[test]
fn a_request_ended_by_eof_instead_of_a_newline_is_answered() {
    let mut c = Cluster::new("eof-request", 1, &[]);
    c.start(0);
    assert!(c.answers_within(0, Duration::from_secs(5)), "{}", c.logs());
    let answer = ask_and_half_close(&c.socket(0), b"pnn");
    assert_eq!(answer.trim_end(), r#"{"pnn":0}"#, "answer to `pnn` + EOF");
    let answer = ask_and_half_close(&c.socket(0), b"status");
    assert!(
        answer.contains(r#""nodes":["#),
        "answer to `status` + EOF: {answer:?}"
    );
    let answer = ask_and_half_close(&c.socket(0), b"frobnicate");
    assert!(answer.contains("unknown command"), "{answer:?}");
    // Nothing at all, then EOF: nothing to answer.
    let answer = ask_and_half_close(&c.socket(0), b"");
    assert_eq!(answer, "");
    // Over-long without a newline: an error, at once.
    let answer = ask_and_half_close(&c.socket(0), &[b'x'; 5000]);
    assert!(
        answer.contains("too long") || answer.contains("longer"),
        "{answer:?}"
    );
    assert!(c.running(0));
}
