//! Recovery master, cluster lock and quorum with real `pharosd` processes on 127.0.0.x.

mod common;

use common::*;
use std::time::Duration;

const FAST: &[&str] = &[
    "--tunable",
    "KeepaliveInterval=100ms",
    "--tunable",
    "KeepaliveLimit=3",
];

/// (recmaster, generation, holds_lock, quorate) as node `i` reports them.
fn view(c: &Cluster, i: usize) -> Option<(i64, u64, bool, bool)> {
    let s = c.status(i)?;
    Some((
        s["recmaster"].as_i64()?,
        s["generation"].as_u64()?,
        s["holds_lock"].as_bool()?,
        s["quorate"].as_bool()?,
    ))
}

/// The recmaster all of `nodes` agree on (with one generation), if it holds the lock.
fn agreed(c: &Cluster, nodes: &[usize]) -> Option<(i64, u64)> {
    let views: Vec<_> = nodes.iter().map(|&i| view(c, i)).collect::<Option<_>>()?;
    let (r, g, _, _) = views[0];
    let same = views.iter().all(|&(r2, g2, _, q)| r2 == r && g2 == g && q);
    let leader = nodes.iter().position(|&i| i as i64 == r)?;
    (r >= 0 && same && views[leader].2).then_some((r, g))
}

#[test]
fn recmaster_holds_the_fcntl_lock_and_fails_over_when_killed() {
    let dir = Scratch::new("lockfile");
    let lock = dir.0.join("cluster.lock");
    let spec = format!("fcntl:{}", lock.display());
    let mut args = FAST.to_vec();
    args.extend(["--cluster-lock", spec.as_str()]);
    let mut c = Cluster::new("election-kill", 3, &args);
    c.start_all();
    let all = [0, 1, 2];
    let took = wait_for(Duration::from_secs(10), || agreed(&c, &all).is_some());
    assert!(took.is_some(), "no agreed recmaster\n{}", c.logs());
    eprintln!("recmaster agreed in {:?}", took.unwrap());
    let (old, gen) = agreed(&c, &all).unwrap();
    assert!(gen > 1, "a recovery bumped the generation");
    assert!(
        lock_holder(&lock).is_some(),
        "the recmaster holds the lock file"
    );

    c.kill(old as usize);
    let survivors: Vec<usize> = all.iter().copied().filter(|&i| i as i64 != old).collect();
    let took = wait_for(Duration::from_secs(10), || {
        agreed(&c, &survivors).is_some_and(|(r, _)| r != old)
    });
    assert!(took.is_some(), "no new recmaster\n{}", c.logs());
    eprintln!("new recmaster after kill -9 in {:?}", took.unwrap());
    let (new, new_gen) = agreed(&c, &survivors).unwrap();
    assert!(new_gen > gen);
    assert!(
        lock_holder(&lock).is_some(),
        "the new recmaster {new} took the lock"
    );
    assert!(c.log(new as usize).contains("holds the cluster lock"));
}

#[test]
fn ban_is_cluster_wide_and_a_banned_node_is_not_recmaster() {
    let mut c = Cluster::new("election-ban", 3, FAST);
    c.start_all();
    let all = [0, 1, 2];
    assert!(
        wait_for(Duration::from_secs(10), || agreed(&c, &all).is_some()).is_some(),
        "{}",
        c.logs()
    );
    let (r, _) = agreed(&c, &all).unwrap();
    let out = c.pharos(r as usize, &["ban", "5"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let banned_everywhere = wait_for(Duration::from_secs(3), || {
        all.iter().all(|&i| {
            c.flags(i, r as usize)
                .is_some_and(|f| f.contains(&"BANNED".to_string()))
        })
    });
    assert!(banned_everywhere.is_some(), "{}", c.logs());
    let others: Vec<usize> = all.iter().copied().filter(|&i| i as i64 != r).collect();
    let took = wait_for(Duration::from_secs(5), || {
        agreed(&c, &others).is_some_and(|(x, _)| x != r)
    });
    assert!(took.is_some(), "{}", c.logs());
    let text = String::from_utf8_lossy(&c.pharos(others[0], &["status"]).stdout).into_owned();
    assert!(
        text.contains("BANNED") && !text.contains(&format!("Recovery master:{r}\n")),
        "{text}"
    );
    let out = c.pharos(others[0], &["ban", "0"]);
    assert!(!out.status.success(), "ban 0 must be refused");
}

#[test]
fn five_nodes_two_frozen_majority_leads_thawed_pair_is_not_quorate() {
    let mut c = Cluster::new("election-freeze", 5, FAST);
    c.start_all();
    let all = [0, 1, 2, 3, 4];
    assert!(
        wait_for(Duration::from_secs(10), || agreed(&c, &all).is_some()).is_some(),
        "{}",
        c.logs()
    );
    let (r, _) = agreed(&c, &all).unwrap();
    // Freeze two nodes that are not the recmaster.
    let frozen: Vec<usize> = all
        .iter()
        .copied()
        .filter(|&i| i as i64 != r)
        .take(2)
        .collect();
    let rest: Vec<usize> = all
        .iter()
        .copied()
        .filter(|i| !frozen.contains(i))
        .collect();
    for &i in &frozen {
        c.signal(i, libc::SIGSTOP);
    }
    let seen = wait_for(Duration::from_secs(5), || {
        rest.iter().all(|&a| {
            frozen.iter().all(|&b| {
                c.flags(a, b)
                    .is_some_and(|f| f.contains(&"DISCONNECTED".to_string()))
            })
        })
    });
    assert!(seen.is_some(), "{}", c.logs());
    // The three stay quorate, with a recmaster that holds the lock.
    assert!(
        wait_for(Duration::from_secs(5), || agreed(&c, &rest).is_some()).is_some(),
        "{}",
        c.logs()
    );
    // Now the three stop and the pair wakes up: two of five is no majority.
    for &i in &rest {
        c.signal(i, libc::SIGSTOP);
    }
    for &i in &frozen {
        c.signal(i, libc::SIGCONT);
    }
    let minority = wait_for(Duration::from_secs(5), || {
        frozen
            .iter()
            .all(|&i| view(&c, i).is_some_and(|(rm, _, lock, q)| !q && rm == -1 && !lock))
    });
    for &i in &rest {
        c.signal(i, libc::SIGCONT);
    }
    assert!(
        minority.is_some(),
        "thawed pair claims quorum\n{}",
        c.logs()
    );
}
