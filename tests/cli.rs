//! The real binary (docs/contract.md §1, §10): exit codes (0, 64 usage, 78 config), the one-line
//! `file:line:column` message of `check`, `explain`, `hash-token`, and `run` with a SIGTERM that
//! lets a slow request finish, SIGHUP reloads, plus the JSON access log. Config validation itself
//! (every field, position and file error) is tested in-process in `src/config/tests.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use common::upstream::Upstream;
use common::within;

const BIN: &str = env!("CARGO_BIN_EXE_vpcguard");

fn vpcguard(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn write_config(dir: &std::path::Path, config: &str, policy: &str) -> String {
    std::fs::write(dir.join("vpcguard.yaml"), config).unwrap();
    std::fs::write(dir.join("policy.yaml"), policy).unwrap();
    dir.join("vpcguard.yaml").to_str().unwrap().to_owned()
}

#[test]
fn check_shipped_example_config_is_valid() {
    let (code, out, err) = vpcguard(&["check", "-c", "config/vpcguard.yaml"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("tenants:     2"), "{out}");
    assert!(out.contains("ip entries:  4"), "{out}");
    assert!(out.contains("policy sha256: "), "{out}");
}

#[test]
fn check_invalid_config_exits_78_with_one_file_line_column_line() {
    // Which error is reported at which field and position is tested in-process, one case per
    // validation site (src/config/tests.rs). Here: the binary's contract for all of them.
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        dir.path(),
        "listen:\n  adress: \"0.0.0.0:1\"\n",
        common::OPEN_POLICY,
    );
    let (code, out, err) = vpcguard(&["check", "-c", &path]);
    assert_eq!(code, 78, "{err}");
    assert_eq!(out, "", "no summary for an invalid config");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(lines[0].starts_with(&format!("{path}:2:3: ")), "{err}");
    assert!(lines[0].contains("adress"), "{err}");
    // The position is printed once, as `file:line:col`, not again in serde's words.
    assert!(!lines[0].contains("line 2"), "{err}");
}

#[test]
fn check_empty_config_exits_78_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    for text in ["", "# nothing but a comment\n"] {
        let path = write_config(dir.path(), text, common::OPEN_POLICY);
        let (code, out, err) = vpcguard(&["check", "-c", &path]);
        assert_eq!(code, 78, "{text:?}: {err}");
        assert_eq!(out, "", "{text:?}: no summary for an invalid config");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{text:?}: one line: {err}");
        assert!(
            lines[0].starts_with(&format!("{path}: ")),
            "{text:?}: {err}"
        );
    }
}

#[test]
fn usage_error_exits_64() {
    let (code, _, _) = vpcguard(&["frobnicate"]);
    assert_eq!(code, 64);
    let (code, out, _) = vpcguard(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn hash_token_prints_sha256_of_stdin() {
    let mut child = Command::new(BIN)
        .arg("hash-token")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"secret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    // sha256("secret")
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        "sha256:2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
    );
}

#[test]
fn explain_prints_decision_json_with_matched_rule() {
    const CASES: &[(&str, &[&str], &str, Option<&str>)] = &[
        (
            "loopback may upload",
            &["--ip", "127.0.0.1", "--method", "POST"],
            "Allow",
            None,
        ),
        (
            "10.1 may not upload",
            &["--ip", "10.1.2.3", "--method", "POST"],
            "Deny",
            Some("VG.00040303"),
        ),
        (
            "unlisted",
            &["--ip", "192.0.2.1"],
            "Deny",
            Some("VG.00040302"),
        ),
    ];
    for (name, args, result, reason) in CASES {
        let mut all = vec![
            "explain",
            "-c",
            "config/vpcguard.yaml",
            "--tenant",
            "389efb76b1354e4482eabeed00000000",
        ];
        all.extend_from_slice(args);
        let (code, out, err) = vpcguard(&all);
        assert_eq!(code, 0, "case {name}: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["status"], "ok", "case {name}");
        assert_eq!(v["data"]["result"], *result, "case {name}");
        assert_eq!(v["data"]["reason"].as_str(), *reason, "case {name}");
        assert!(v["matched"]["right"].is_string(), "case {name}");
    }
}

/// Reads the binary's stdout lines (JSON logs) on a thread and forwards them.
fn log_lines(stdout: std::process::ChildStdout) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

async fn wait_for_log(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    loop {
        let line = rx.recv().await.expect("binary exited");
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
            && pred(&v)
        {
            return v;
        }
    }
}

#[tokio::test]
async fn run_sigterm_drains_slow_request_then_exits_0_with_access_log() {
    sigterm_drains("2").await;
}

/// One worker runs tokio's single-threaded scheduler: the same run, signal and drain.
#[tokio::test]
async fn run_with_one_worker_thread_serves_and_drains_the_same() {
    sigterm_drains("1").await;
}

#[test]
fn run_with_an_invalid_worker_count_fails_and_says_why() {
    for bad in ["0", "many", ""] {
        let out = Command::new(BIN)
            .args(["run", "-c", "/nonexistent/vpcguard.yaml"])
            .env("TOKIO_WORKER_THREADS", bad)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(78), "TOKIO_WORKER_THREADS={bad:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("TOKIO_WORKER_THREADS"),
            "TOKIO_WORKER_THREADS={bad:?}: {err}"
        );
    }
}

async fn sigterm_drains(workers: &str) {
    common::install_provider();
    let mut up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "listen:\n  address: \"127.0.0.1:0\"\n  tls: {{}}\nadmin:\n  address: \"127.0.0.1:0\"\nupstream:\n  url: \"http://{}\"\ntenant:\n  - static: \"389efb76b1354e4482eabeed00000000\"\nlimits:\n  shutdown_grace: 20s\n",
        up.addr
    );
    let path = write_config(dir.path(), &config, common::OPEN_POLICY);
    let mut child = Command::new(BIN)
        .args(["run", "-c", &path])
        .env("TOKIO_WORKER_THREADS", workers)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut logs = log_lines(child.stdout.take().unwrap());
    // The self-signed warning, then the bound addresses.
    let listening = within(
        30,
        wait_for_log(&mut logs, |v| v["message"] == "vpcguard listening"),
    )
    .await;
    let data: std::net::SocketAddr = listening["data"].as_str().unwrap().parse().unwrap();
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let url = format!("https://127.0.0.1:{}/hold", data.port());
    let slow = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .get(url)
                .header("x-request-id", "slow-1")
                .send()
                .await
        }
    });
    within(10, up.held.recv()).await.unwrap();
    // SIGTERM while the request is in flight.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    within(
        10,
        wait_for_log(&mut logs, |v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains("shutdown signal"))
        }),
    )
    .await;
    up.release();
    let resp = within(10, slow).await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "released");
    let access = within(10, wait_for_log(&mut logs, |v| v["message"] == "access")).await;
    assert_eq!(access["request_id"], "slow-1");
    assert_eq!(access["method"], "GET");
    assert_eq!(access["path"], "/hold");
    assert_eq!(access["status"], 200);
    assert_eq!(access["decision"], "allow");
    assert_eq!(access["client_ip"], "127.0.0.1");
    assert!(access["duration_ms"].as_f64().unwrap() > 0.0);
    let code = within(30, tokio::task::spawn_blocking(move || child.wait()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(code.code(), Some(0));
}

#[tokio::test]
async fn run_sighup_reloads_and_an_invalid_file_is_logged_with_its_position() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "listen:\n  address: \"127.0.0.1:0\"\nadmin:\n  address: \"127.0.0.1:0\"\nupstream:\n  url: \"http://{}\"\n",
        up.addr
    );
    let path = write_config(dir.path(), &config, common::OPEN_POLICY);
    let mut child = Command::new(BIN)
        .args(["run", "-c", &path])
        .env("VPCGUARD_WATCH", "off")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut logs = log_lines(child.stdout.take().unwrap());
    within(
        30,
        wait_for_log(&mut logs, |v| v["message"] == "vpcguard listening"),
    )
    .await;
    let hup = |pid: u32| {
        let ok = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    };
    std::fs::write(
        dir.path().join("policy.yaml"),
        "tenants:\n  - enterprise_id: other\n",
    )
    .unwrap();
    hup(child.id());
    let reloaded = within(10, wait_for_log(&mut logs, |v| v["message"] == "reloaded")).await;
    assert_eq!(reloaded["generation"], 2, "{reloaded}");
    assert_eq!(reloaded["trigger"], "signal");

    std::fs::write(
        dir.path().join("policy.yaml"),
        "tenants:\n  - enterprise_id: other\n    trusted_ips:\n      - { id: \"1\", ip_range: \"10.0.0.0/33\" }\n",
    )
    .unwrap();
    hup(child.id());
    let failed = within(
        10,
        wait_for_log(&mut logs, |v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("reload failed"))
        }),
    )
    .await;
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains("policy.yaml:4:"), "{failed}");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Start `run` on a plain-HTTP config in front of `up`, with extra environment; returns the child,
/// its stdout lines and the data address (read from the "vpcguard listening" line, so the filter
/// must let `vpcguard` INFO through).
async fn run_plain(
    dir: &std::path::Path,
    up: std::net::SocketAddr,
    env: &[(&str, &str)],
) -> (
    std::process::Child,
    tokio::sync::mpsc::UnboundedReceiver<String>,
    std::net::SocketAddr,
) {
    let config = format!(
        "listen:\n  address: \"127.0.0.1:0\"\nadmin:\n  address: \"127.0.0.1:0\"\nupstream:\n  url: \"http://{up}\"\ntenant:\n  - static: \"389efb76b1354e4482eabeed00000000\"\n"
    );
    let path = write_config(dir, &config, common::OPEN_POLICY);
    let mut child = Command::new(BIN)
        .args(["run", "-c", &path])
        .env("VPCGUARD_WATCH", "off")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut logs = log_lines(child.stdout.take().unwrap());
    let listening = within(
        30,
        wait_for_log(&mut logs, |v| v["message"] == "vpcguard listening"),
    )
    .await;
    let data = listening["data"].as_str().unwrap().parse().unwrap();
    (child, logs, data)
}

/// SIGTERM, then every remaining stdout line up to EOF, and the exit code.
async fn terminate_and_collect(
    mut child: std::process::Child,
    mut logs: tokio::sync::mpsc::UnboundedReceiver<String>,
) -> (Vec<String>, Option<i32>) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut lines = Vec::new();
    within(30, async {
        while let Some(line) = logs.recv().await {
            lines.push(line);
        }
    })
    .await;
    let code = within(30, tokio::task::spawn_blocking(move || child.wait()))
        .await
        .unwrap()
        .unwrap();
    (lines, code.code())
}

#[tokio::test]
async fn run_concurrent_requests_each_give_one_whole_access_line_before_exit() {
    const N: usize = 300;
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (child, logs, data) = run_plain(dir.path(), up.addr, &[]).await;
    let client = reqwest::Client::new();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..N {
        let client = client.clone();
        // The path is logged as sent (percent-encoded); JSON escaping has its unit tests.
        let url = format!("http://{data}/c/{i}/%22/é");
        tasks.spawn(async move {
            let resp = client
                .get(url)
                .header("x-request-id", format!("req-{i}"))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
        });
    }
    within(60, async {
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
    })
    .await;
    // Right away: lines still queued when the signal lands must be written before exit.
    let (lines, code) = terminate_and_collect(child, logs).await;
    assert_eq!(code, Some(0));
    let mut ids = Vec::new();
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}"));
        if v["message"] == "access" {
            let id = v["request_id"].as_str().unwrap();
            let i: usize = id.strip_prefix("req-").unwrap().parse().unwrap();
            assert_eq!(v["path"], format!("/c/{i}/%22/%C3%A9"), "{line}");
            assert_eq!(v["status"], 200, "{line}");
            ids.push(i);
        }
    }
    ids.sort_unstable();
    assert_eq!(ids, (0..N).collect::<Vec<_>>());
    assert_eq!(
        lines
            .last()
            .map(String::as_str)
            .map(|l| l.contains("shutdown complete")),
        Some(true),
        "access lines are written before the last line: {lines:?}"
    );
}

#[tokio::test]
async fn run_filter_hiding_the_access_target_writes_no_access_line() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let env = [("RUST_LOG", "info,vpcguard::access=off")];
    let (child, logs, data) = run_plain(dir.path(), up.addr, &env).await;
    let resp = reqwest::get(format!("http://{data}/hidden")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let (lines, code) = terminate_and_collect(child, logs).await;
    assert_eq!(code, Some(0));
    assert!(
        lines.iter().any(|l| l.contains("shutdown complete")),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.contains("\"access\"")), "{lines:?}");
}

/// `vpcguard demo` (docs/contract.md §1): every printed curl line, run as printed, gets the
/// status and error code its `# expect` line says (one allow and each documented deny, the
/// accept through the admin API, the self check); SIGTERM ends it with 0 and removes its files.
#[test]
fn demo_walkthrough_lines_give_what_they_promise() {
    let mut child = Command::new(BIN)
        .args(["demo", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut text = String::new();
    // The walkthrough ends with this line; reading is bounded by the demo printing it.
    while !text.contains("Ctrl-C stops the demo.") {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "demo exited: {text}");
        text.push_str(&line);
    }
    let files = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("files:"))
        .map(|f| std::path::PathBuf::from(f.trim()))
        .expect("files line");
    assert!(files.join("policy.yaml").exists());
    let mut lines = text.lines();
    let mut steps = 0;
    let mut codes = Vec::new();
    while let Some(line) = lines.next() {
        let Some(expect) = line.strip_prefix("# expect ") else {
            continue;
        };
        let (want, what) = expect.split_once(": ").unwrap();
        let cmd = lines.next().unwrap();
        assert!(cmd.starts_with("curl "), "{cmd}");
        let run = Command::new("sh")
            .args(["-c", &format!("{cmd} --max-time 10 -w '\\n%{{http_code}}'")])
            .output()
            .expect("curl is installed (see .ci/run)");
        let got = String::from_utf8(run.stdout).unwrap();
        let (body, status) = got.rsplit_once('\n').unwrap();
        let mut want = want.split(' ');
        assert_eq!(Some(status), want.next(), "{what}: {cmd} -> {body}");
        if let Some(code) = want.next() {
            assert_eq!(common::error_code(body), code, "{what}");
            codes.push(code.to_owned());
        }
        steps += 1;
    }
    codes.sort();
    assert_eq!(
        codes,
        [
            "VG.00040301",
            "VG.00040302",
            "VG.00040303",
            "VG.00040304",
            "VG.00040305",
            "VG.00040306"
        ],
        "each documented deny once"
    );
    assert!(steps >= 10, "{steps} steps");
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert!(!files.exists(), "{} left behind", files.display());
}
