//! CTDB's own IP-allocation unit tests (`ctdb/tests/UNIT/takeover/*.sh`), re-encoded as data in
//! `tests/data/ctdb-takeover/`: every step of every case must give CTDB's allocation exactly.

use pharos_host::ipalloc_case::{check, run};
use std::path::{Path, PathBuf};

fn cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ctdb-takeover");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_ctdb_case_matches() {
    let files = cases();
    let (mut steps, mut compared) = (0, 0);
    let mut failures = Vec::new();
    for file in &files {
        match check(file) {
            Ok(report) => {
                steps += report.steps;
                compared += report.compared;
                for f in report.failures {
                    failures.push(format!("{}: {f}", report.name));
                }
            }
            Err(e) => failures.push(e),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Guard against passing vacuously (a moved folder, a silently skipped step).
    assert_eq!(files.len(), 36, "case files");
    assert_eq!(steps, 53, "allocator runs");
    assert_eq!(compared, 53, "runs with an expected allocation");
}

/// The CLI path (`pharos ipalloc FILE`) prints what the cases expect.
#[test]
fn cli_output_matches_expected() {
    let mut runs = 0;
    for file in cases() {
        let out = run(&file, false).unwrap_or_else(|e| panic!("{e}"));
        let got: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
        let case: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let steps = case["steps"].as_array().unwrap();
        assert_eq!(
            got["steps"].as_array().unwrap().len(),
            steps.len(),
            "{}",
            file.display()
        );
        for (i, step) in steps.iter().enumerate() {
            let want: Vec<(String, i64)> = step["expected"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["addr"].as_str().unwrap().to_owned(),
                        e["pnn"].as_i64().unwrap_or(-1),
                    )
                })
                .collect();
            let have: Vec<(String, i64)> = got["steps"][i]["allocation"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["addr"].as_str().unwrap().to_owned(),
                        e["pnn"].as_i64().unwrap(),
                    )
                })
                .collect();
            assert_eq!(have, want, "{} step {}", file.display(), i + 1);
            runs += 1;
        }
        // The table form runs too.
        assert!(run(&file, true).unwrap().contains("ADDRESS"));
    }
    assert_eq!(runs, 53);
}

/// Corrupted case files give errors, never panics (the case parser takes operator input).
#[test]
fn mutated_cases_never_panic() {
    use pharos_core::rng::Rng;
    use pharos_host::ipalloc_case::{parse, run_case};
    let alphabet = b"0123456789-,:[]{}\" nulltrueaxX.";
    let mut rng = Rng::new(4);
    let mut outcomes = (0, 0);
    for file in cases()
        .iter()
        .filter(|f| std::fs::metadata(f).unwrap().len() < 10_000)
    {
        let original = std::fs::read(file).unwrap();
        for _ in 0..60 {
            let mut bytes = original.clone();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(bytes.len() as u64) as usize;
                if rng.below(4) == 0 {
                    bytes.remove(at);
                } else {
                    bytes[at] = alphabet[rng.below(alphabet.len() as u64) as usize];
                }
            }
            let Ok(text) = String::from_utf8(bytes) else {
                continue;
            };
            match parse(&text).and_then(|c| run_case(&c)) {
                Ok(_) => outcomes.0 += 1,
                Err(e) => {
                    assert!(!e.is_empty());
                    outcomes.1 += 1
                }
            }
        }
    }
    // Both paths were exercised.
    assert!(outcomes.0 > 100 && outcomes.1 > 100, "{outcomes:?}");
}

/// The real binary: `pharos ipalloc FILE` prints exactly what the checked runner computes, and
/// `--text` prints a table; a missing file is a one-line error.
#[test]
fn pharos_binary_runs_every_case() {
    let pharos = env!("CARGO_BIN_EXE_pharos");
    let files = cases();
    for file in &files {
        let out = std::process::Command::new(pharos)
            .arg("ipalloc")
            .arg(file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            run(file, false).unwrap(),
            "{}",
            file.display()
        );
    }
    assert_eq!(files.len(), 36);
    let out = std::process::Command::new(pharos)
        .args(["ipalloc", "--text"])
        .arg(&files[0])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("ADDRESS"));
    let out = std::process::Command::new(pharos)
        .args(["ipalloc", "/nonexistent.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}
