//! A real etcd for tests (Debian `etcd-server` 3.4, `etcdctl` from `etcd-client`): one member or
//! a cluster on loopback ports picked by binding 127.0.0.1:0, a temporary data directory, killed
//! on drop. Plus [`Relay`], a TCP relay between one vpcguard and etcd that a test can cut, so that
//! one instance loses etcd while the others keep it.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One member's fixed facts.
pub struct Member {
    pub name: String,
    pub client: u16,
    pub peer: u16,
    data: PathBuf,
    child: Option<Child>,
}

/// A running etcd (one member or several).
pub struct Etcd {
    pub members: Vec<Member>,
    cluster: String,
    _dir: tempfile::TempDir,
}

impl Etcd {
    /// One member.
    pub async fn start() -> Etcd {
        Self::cluster(1).await
    }

    /// `n` members on loopback, started together; returns once every member answers.
    pub async fn cluster(n: usize) -> Etcd {
        let dir = tempfile::tempdir().unwrap();
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                name: format!("n{i}"),
                client: free_port(),
                peer: free_port(),
                data: dir.path().join(format!("n{i}")),
                child: None,
            })
            .collect();
        let cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        let mut e = Etcd {
            members,
            cluster,
            _dir: dir,
        };
        for i in 0..n {
            e.spawn(i);
        }
        for i in 0..n {
            e.wait_healthy(i).await;
        }
        e
    }

    fn spawn(&mut self, i: usize) {
        let m = &self.members[i];
        let client = format!("http://127.0.0.1:{}", m.client);
        let peer = format!("http://127.0.0.1:{}", m.peer);
        let log = std::fs::File::create(format!("{}.log", m.data.display())).unwrap();
        let child = Command::new("etcd")
            .args(["--name", &m.name])
            .args(["--data-dir", &m.data.display().to_string()])
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.cluster])
            .args(["--initial-cluster-token", "vpcguard-test"])
            // Fast elections on loopback, so a leader loss is over in well under a second.
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd (Debian etcd-server) must be installed");
        self.members[i].child = Some(child);
    }

    /// Kill member `i` (SIGKILL) and wait for it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start member `i` again on its data directory and ports.
    pub async fn restart(&mut self, i: usize) {
        self.spawn(i);
        self.wait_healthy(i).await;
    }

    /// `http://127.0.0.1:P` of every member.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("http://127.0.0.1:{}", m.client))
            .collect()
    }

    /// The client address of member `i`.
    pub fn addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.members[i].client))
    }

    /// Run `etcdctl` (API v3) against the running members; returns stdout, panics on failure.
    pub fn ctl(&self, args: &[&str]) -> String {
        let out = self.ctl_raw(args);
        assert!(
            out.status.success(),
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn ctl_raw(&self, args: &[&str]) -> std::process::Output {
        let eps: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.child.is_some())
            .map(|m| format!("http://127.0.0.1:{}", m.client))
            .collect();
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", eps.join(",")))
            .arg("--command-timeout=5s")
            .args(args)
            .output()
            .expect("etcdctl (Debian etcd-client) must be installed")
    }

    /// The current revision of the store.
    pub fn revision(&self) -> i64 {
        let out = self.ctl(&["get", "--write-out=json", "x-no-such-key"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["header"]["revision"].as_i64().unwrap()
    }

    /// The index of the member that is leader now.
    pub fn leader(&self) -> usize {
        for (i, m) in self.members.iter().enumerate() {
            if m.child.is_none() {
                continue;
            }
            let out = Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .arg(format!("--endpoints=http://127.0.0.1:{}", m.client))
                .args(["endpoint", "status", "--write-out=json"])
                .output()
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            let st = &v[0]["Status"];
            if st["header"]["member_id"] == st["leader"] && !st["leader"].is_null() {
                return i;
            }
        }
        panic!("no leader");
    }

    /// The keys under `prefix` (relative) and values, from etcd itself.
    pub fn keys(&self, prefix: &str) -> Vec<(String, String)> {
        let out = self.ctl(&["get", "--prefix", prefix]);
        let lines: Vec<&str> = out.lines().collect();
        lines
            .chunks(2)
            .filter(|c| c.len() == 2)
            .map(|c| (c[0][prefix.len()..].to_owned(), c[1].to_owned()))
            .collect()
    }

    #[allow(clippy::disallowed_methods)] // reason: polling a child process's readiness; it sends no event
    async fn wait_healthy(&self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let ep = format!("http://127.0.0.1:{}", self.members[i].client);
        loop {
            let ok = Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .arg(format!("--endpoints={ep}"))
                .args(["--command-timeout=1s", "endpoint", "health"])
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "etcd member {i} did not become healthy"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// A TCP relay to one etcd member that a test can cut (every connection through it closes and
/// new ones are refused) and restore.
pub struct Relay {
    pub addr: SocketAddr,
    cut: watch::Sender<bool>,
    _task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// A relay on 127.0.0.1:0 to `target`.
    pub async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, cut_rx) = watch::channel(false);
        let cut_rx = Arc::new(cut_rx);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if *cut_rx.borrow() {
                    drop(inbound);
                    continue;
                }
                let mut rx = (*cut_rx).clone();
                tokio::spawn(async move {
                    let Ok(mut out) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut out) => {}
                        _ = rx.wait_for(|c| *c) => {}
                    }
                });
            }
        });
        Relay {
            addr,
            cut,
            _task: task,
        }
    }

    /// `http://ADDR`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Close every connection through the relay and refuse new ones.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Let connections through again.
    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}

/// `policy:` config for the etcd store on `endpoints` under `prefix`, with short timeouts.
pub fn etcd_policy_block(endpoints: &[String], prefix: &str) -> String {
    let eps: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    format!(
        "policy:\n  store: etcd\n  etcd:\n    endpoints: [{}]\n    prefix: \"{prefix}\"\n    dial_timeout: 1s\n    request_timeout: 5s\n",
        eps.join(", ")
    )
}

/// Put the records of `policy` (YAML) under `prefix`, as `vpcguard policy push` would.
pub async fn seed(endpoints: &[String], prefix: &str, policy: &str) {
    let cfg = etcd_policy_block(endpoints, prefix);
    let config = vpcguard::config::parse(&cfg, std::path::Path::new("/tmp/seed.yaml")).unwrap();
    let vpcguard::config::model::Store::Etcd(s) = &config.policy.store else {
        panic!("not etcd");
    };
    let file = vpcguard::policy::parse_policy(policy).unwrap();
    let records = vpcguard::store::records::encode(&file).unwrap();
    let client = vpcguard::store::etcd::connect(s).await.unwrap();
    vpcguard::store::etcd::push(&client, prefix, &records, s.request_timeout)
        .await
        .unwrap();
}

/// Poll `cond` until it holds (bounded by `secs`); for effects on *another* instance, which sends
/// this test no event (its watch of etcd is internal).
#[allow(clippy::disallowed_methods)] // reason: no event crosses instances; bounded polling
pub async fn eventually<F, Fut>(secs: u64, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
