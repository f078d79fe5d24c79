//! The comparison page: `loadtest-compare` over real runs' reports, and
//! `loadtest/compare.sh` end to end (edge, nginx and Varnish in front of a
//! real origin) on small, short steps.

mod common;

use common::{assert_renders_cleanly, check_page, loadtest, select, text};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use testkit::Process;
use testkit::{free_addr, wait_until};

#[test]
fn the_page_puts_runs_side_by_side_and_links_them() {
    let out = tempfile::tempdir().unwrap();
    let dead = free_addr();
    let url = format!("http://{dead}/s/index.m3u8");
    let mut dirs = Vec::new();
    for (label, viewers) in [("edge", "2"), ("edge", "4"), ("nginx", "2")] {
        let dir = out.path().join(format!("{label}-{viewers}"));
        let args = [
            "--url",
            &url,
            "--viewers",
            viewers,
            "--ramp",
            "1s",
            "--duration",
            "2s",
            "--label",
            label,
        ];
        let (_, report, _) = loadtest(&args, &dir);
        assert_eq!(report["label"], label);
        dirs.push(dir);
    }
    let page = out.path().join("compare.html");
    let status = Command::new(env!("CARGO_BIN_EXE_loadtest-compare"))
        .arg("--out")
        .arg(&page)
        .args(&dirs)
        .status()
        .unwrap();
    assert!(status.success());
    let html = std::fs::read_to_string(&page).unwrap();
    let doc = check_page(&html, 5);
    let runs = select(&doc, "table#runs tbody tr");
    assert_eq!(runs.len(), 3);
    for a in select(&doc, "table#runs a") {
        let href = a.value().attr("href").unwrap();
        assert!(out.path().join(href).is_file(), "{href}");
    }
    // Dead targets: no cache has a clean step.
    let best: Vec<String> = select(&doc, "table#best tbody tr").iter().map(text).collect();
    assert_eq!(best.len(), 2);
    assert!(best.iter().all(|r| r.contains("none")), "{best:?}");
    assert_renders_cleanly(&page, None, 5);

    // Something that is not a report is refused, naming the file.
    let bogus = out.path().join("bogus.json");
    std::fs::write(&bogus, "{}").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_loadtest-compare"))
        .arg("--out")
        .arg(out.path().join("x.html"))
        .arg(&bogus)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("bogus.json"));
}

/// Where `cargo test` put the binaries (target/debug).
fn bin_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_BIN_EXE_loadtest"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn compare_sh_writes_its_page() {
    for tool in ["nginx", "varnishd", "jq"] {
        assert!(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .status()
                .unwrap()
                .success(),
            "{tool} is missing: scripts/setup.sh installs it"
        );
    }
    let bins = bin_dir();
    for b in [
        "router-api",
        "origin",
        "discovery",
        "edge",
        "loadtest",
        "loadtest-compare",
    ] {
        assert!(
            bins.join(b).exists(),
            "{b} is not built: cargo build --workspace --bins"
        );
    }
    let out = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("compare.sh");
    let out_dir = out.path().join("cmp");
    let mut run = Process::spawn(
        "compare.sh",
        "bash",
        [script.to_str().unwrap(), "4", "5", "10"],
        &[
            ("BIN", bins.to_str().unwrap()),
            ("SETUP", "0"),
            ("COMPARE_OUT", out_dir.to_str().unwrap()),
        ],
    );
    // Start-up, then three caches by two steps of 4 s.
    wait_until("compare.sh to finish", Duration::from_secs(240), || !run.is_running());
    let log = run.log();
    assert_eq!(run.stop(), Some(0), "{log}");
    for cache in ["edge", "nginx", "varnish"] {
        assert!(log.contains(&format!("| {cache} | ")), "{log}");
        assert!(out_dir.join(format!("{cache}-5/report.html")).is_file(), "{log}");
    }
    let page = out_dir.join("compare.html");
    let html = std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{e}: {log}"));
    let doc = check_page(&html, 5);
    let best: Vec<String> = select(&doc, "table#best tbody tr td:first-child")
        .iter()
        .map(text)
        .collect();
    assert_eq!(best, ["edge", "nginx", "varnish"]);
    for a in select(&doc, "a") {
        let href = a.value().attr("href").unwrap();
        assert!(out_dir.join(href).is_file(), "{href}");
    }
    // Every cache plays 5 viewers cleanly from one origin.
    let clean: Vec<String> = select(&doc, "table#best tbody tr td:nth-child(2)")
        .iter()
        .map(text)
        .collect();
    assert!(clean.iter().all(|c| c != "none"), "{clean:?}\n{log}");
    assert_renders_cleanly(&page, None, 5);
}
