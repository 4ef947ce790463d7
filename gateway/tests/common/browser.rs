//! A real browser for tests of the technician's page: Debian's chromium, headless, a fresh
//! profile each run, bounded in time. Used by `page.rs` and `drill.rs`.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs headless Chromium on `args` with a fresh profile in `dir`; its standard output.
/// Bounded: a browser still running after 60 s is killed and the test fails.
pub fn chromium(dir: &Path, args: &[String]) -> String {
    let profile = tempfile::tempdir_in(dir).unwrap();
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            // Without these it reaches for the network, which a closed site does not have.
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-crash-reporter",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {args:?} still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().unwrap()
}

/// The page's DOM once its script has fetched `/status` and drawn it.
pub fn dom(dir: &Path, url: &str) -> String {
    chromium(
        dir,
        &[
            "--virtual-time-budget=3000".to_string(),
            "--dump-dom".to_string(),
            url.to_string(),
        ],
    )
}
