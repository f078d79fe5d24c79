//! Helpers shared by the load tester's tests: running the binary, checking
//! a page's HTML, rendering it in headless Chromium.

#![allow(dead_code)]

use scraper::{Html, Selector};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Runs `loadtest` with `args` plus `--report-dir dir --quiet`; returns its
/// exit status, the report and stdout.
pub fn loadtest(args: &[&str], dir: &Path) -> (ExitStatus, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(args)
        .args(["--report-dir", dir.to_str().unwrap(), "--quiet"])
        .output()
        .unwrap();
    let text = std::fs::read_to_string(dir.join("report.json"))
        .unwrap_or_else(|e| panic!("no report.json ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    let report: Value = serde_json::from_str(&text).unwrap();
    (out.status, report, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The longest run of decimals of any number in `text`.
pub fn max_decimals(text: &str) -> usize {
    let b = text.as_bytes();
    let mut longest = 0;
    for i in 1..b.len() {
        if b[i] == b'.' && b[i - 1].is_ascii_digit() {
            longest = longest.max(b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count());
        }
    }
    longest
}

pub fn select<'a>(doc: &'a Html, css: &str) -> Vec<scraper::ElementRef<'a>> {
    doc.select(&Selector::parse(css).unwrap()).collect()
}

pub fn text(e: &scraper::ElementRef) -> String {
    e.text().collect::<String>()
}

/// Parses a page and checks what every page of ours must be: parsed
/// without errors an HTML5 parser reports, at least `svgs` SVG plots each
/// with labelled axes and ticks, no number with more than four decimals,
/// nothing fetched from elsewhere.
pub fn check_page(html: &str, svgs: usize) -> Html {
    let doc = Html::parse_document(html);
    assert!(doc.errors.is_empty(), "HTML parse errors: {:?}", doc.errors);
    let charts = select(&doc, "svg.chart");
    assert!(charts.len() >= svgs, "{} plots", charts.len());
    for svg in &charts {
        let name = svg.value().attr("aria-label").unwrap_or("?").to_string();
        let labels: Vec<String> = svg
            .select(&Selector::parse("text.axis-label").unwrap())
            .map(|t| text(&t))
            .collect();
        assert!(labels.len() >= 2, "{name}: axis labels {labels:?}");
        assert!(labels.iter().all(|l| !l.trim().is_empty()), "{name}: {labels:?}");
        let ticks = svg.select(&Selector::parse("text.tick").unwrap()).count();
        assert!(ticks >= 2, "{name}: {ticks} ticks");
    }
    let longest = max_decimals(html);
    assert!(longest <= 4, "a number with {longest} decimals");
    assert!(!html.contains("NaN"), "NaN in the page");
    for attr in ["src", "href"] {
        for e in select(&doc, &format!("[{attr}]")) {
            let v = e.value().attr(attr).unwrap();
            assert!(!v.contains("://") || v.starts_with("file://"), "fetches {v}");
        }
    }
    doc
}

/// What headless Chromium made of a page.
pub struct Rendered {
    pub console_errors: Vec<Value>,
    pub page_errors: Vec<Value>,
    pub requests: Vec<Value>,
    pub svgs: u64,
    pub drawn: u64,
}

/// Opens `page` in headless Chromium (playwright-core from e2e/browser),
/// optionally saving a screenshot; at most a minute.
pub fn render(page: &Path, screenshot: Option<&Path>) -> Rendered {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        root.join("../e2e/browser/node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `npm ci --prefix e2e/browser` (scripts/setup.sh does)"
    );
    let mut cmd = Command::new("node");
    cmd.arg(root.join("tests/browser/render.mjs")).arg(page);
    if let Some(s) = screenshot {
        cmd.arg(s);
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("render.mjs took over a minute");
        }
        // The poll interval of a wait bounded by `deadline`.
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "render.mjs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = |k: &str| v[k].as_array().cloned().unwrap_or_default();
    Rendered {
        console_errors: list("consoleErrors"),
        page_errors: list("pageErrors"),
        requests: list("requests"),
        svgs: v["svgs"].as_u64().unwrap_or(0),
        drawn: v["drawn"].as_u64().unwrap_or(0),
    }
}

/// Chromium rendered `page` cleanly: no console error or warning, no page
/// error, no request, every SVG drawn.
pub fn assert_renders_cleanly(page: &Path, screenshot: Option<&Path>, svgs: u64) {
    let r = render(page, screenshot);
    assert!(r.console_errors.is_empty(), "console: {:?}", r.console_errors);
    assert!(r.page_errors.is_empty(), "page errors: {:?}", r.page_errors);
    assert!(r.requests.is_empty(), "requests: {:?}", r.requests);
    assert!(
        r.svgs >= svgs && r.drawn == r.svgs,
        "{} svgs, {} drawn",
        r.svgs,
        r.drawn
    );
}
