//! The test network: hosts in network namespaces, nginx terminating TLS, faults
//! by iptables and signals. Shared by the network tests and the network benchmark
//! (`benches/network.rs`), so each uses only some of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const HEIWA: &str = env!("CARGO_BIN_EXE_heiwa");
pub const HUB_NAME: &str = "hub.heiwa.test";
pub const LEASE_SECS: u32 = 4;

pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program} cannot run: {e}"));
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A process and every line it printed on stdout and stderr.
pub struct Proc {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    pub fn spawn(mut command: Command) -> Proc {
        let mut child =
            command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("it starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let sink = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    sink.lock().unwrap().push(line);
                }
            });
        }
        Proc { child, lines }
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn count(&self, prefix: &str) -> usize {
        self.lines().iter().filter(|l| l.starts_with(prefix)).count()
    }

    pub fn wait_for(&self, prefix: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.count(prefix) == 0 {
            assert!(Instant::now() < deadline, "never printed {prefix:?}: {:#?}", self.lines());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    pub fn kill(&mut self, signal: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal);
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test's network: a hub host and `limbs` limb hosts, each joined to the
/// hub host by its own veth pair (10.231.N.1 on the hub side, .2 on the limb's).
pub struct Net {
    tag: String,
    dir: tempfile::TempDir,
    pub hub_port: u16,
    pub hub: Option<Proc>,
    pub proxy: Option<Proc>,
}

impl Net {
    pub fn new(limbs: usize) -> Net {
        assert!(nix::unistd::Uid::effective().is_root(), "the network test makes namespaces: run it as root");
        // Unique per test (they run in parallel threads of one process) and short: veth names are ≤ 15 bytes.
        static NETS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NETS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tag = format!("hw{}{n}", std::process::id() % 100_000);
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let net = Net { tag, dir, hub_port: 3000, hub: None, proxy: None };
        net.teardown_namespaces();
        run("ip", &["netns", "add", &net.host("hub")]);
        net.exec_ok("hub", &["ip", "link", "set", "lo", "up"]);
        for n in 1..=limbs {
            let (host, a, b) = (net.limb(n), format!("{}h{n}", net.tag), format!("{}l{n}", net.tag));
            run("ip", &["netns", "add", &host]);
            run(
                "ip",
                &["link", "add", &a, "netns", &net.host("hub"), "type", "veth", "peer", "name", &b, "netns", &host],
            );
            net.exec_ok("hub", &["ip", "addr", "add", &format!("10.231.{n}.1/24"), "dev", &a]);
            net.exec_ok("hub", &["ip", "link", "set", &a, "up"]);
            net.exec_ok(&format!("l{n}"), &["ip", "addr", "add", &format!("10.231.{n}.2/24"), "dev", &b]);
            net.exec_ok(&format!("l{n}"), &["ip", "link", "set", &b, "up"]);
            net.exec_ok(&format!("l{n}"), &["ip", "link", "set", "lo", "up"]);
            // `ip netns exec` mounts /etc/netns/NAME/hosts over /etc/hosts: the hub's name, on this host only.
            let etc = PathBuf::from("/etc/netns").join(&host);
            std::fs::create_dir_all(&etc).unwrap();
            std::fs::write(etc.join("hosts"), format!("127.0.0.1 localhost\n10.231.{n}.1 {HUB_NAME}\n")).unwrap();
        }
        net.make_certificates();
        net
    }

    pub fn host(&self, name: &str) -> String {
        format!("{}-{name}", self.tag)
    }

    pub fn limb(&self, n: usize) -> String {
        self.host(&format!("l{n}"))
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `ip netns exec` on the host called `short` ("hub", "l1", …).
    pub fn exec(&self, short: &str, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.host(short)]).args(args);
        command
    }

    pub fn exec_ok(&self, short: &str, args: &[&str]) -> String {
        let out = self.exec(short, args).output().unwrap();
        assert!(out.status.success(), "{short}: {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A CA of the test's own, and the hub's certificate for `hub.heiwa.test` signed by it; a second CA nobody trusts.
    pub fn make_certificates(&self) {
        let p = |name: &str| self.path(name).display().to_string();
        for ca in ["ca", "other-ca"] {
            run(
                "openssl",
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-days",
                    "1",
                    "-subj",
                    &format!("/CN=heiwa test {ca}"),
                    "-keyout",
                    &p(&format!("{ca}.key")),
                    "-out",
                    &p(&format!("{ca}.pem")),
                ],
            );
        }
        run(
            "openssl",
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                &format!("/CN={HUB_NAME}"),
                "-keyout",
                &p("hub.key"),
                "-out",
                &p("hub.csr"),
            ],
        );
        std::fs::write(self.path("san.ext"), format!("subjectAltName=DNS:{HUB_NAME}\n")).unwrap();
        run(
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                &p("hub.csr"),
                "-CA",
                &p("ca.pem"),
                "-CAkey",
                &p("ca.key"),
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                &p("san.ext"),
                "-out",
                &p("hub.pem"),
            ],
        );
    }

    /// The hub's server, on the hub host's loopback only.
    pub fn start_hub(&mut self) {
        let data = self.path("hub-data");
        let mut command = self.exec("hub", &[HEIWA, "hub", "up", "--listen", &format!("127.0.0.1:{}", self.hub_port)]);
        command.env("HEIWA_DATA_DIR", &data);
        let hub = Proc::spawn(command);
        hub.wait_for("hub up", Duration::from_secs(30));
        self.hub = Some(hub);
    }

    /// nginx on the hub host: TLS on 443 for every link, WebSocket upgrades passed to the hub's loopback port.
    /// An upstream quiet for 5 s is closed (a live limb heartbeats every lease/3): a limb cut off is then
    /// gone from the hub too before it comes back. With SpacetimeDB 1.2, a limb's new connection that
    /// overlaps its old, silently dead one got no subscription updates (seen here: it reconnected and
    /// never heard of the tasks the hub gave it); a front must not keep dead WebSockets open.
    pub fn start_proxy(&mut self) {
        let conf = self.path("nginx.conf");
        let d = self.dir.path().display();
        std::fs::write(
            &conf,
            format!(
                "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log;\nevents {{}}\nhttp {{\n\
                 access_log off;\nclient_body_temp_path {d}/nginx-body;\nproxy_temp_path {d}/nginx-proxy;\n\
                 fastcgi_temp_path {d}/nginx-fastcgi;\nuwsgi_temp_path {d}/nginx-uwsgi;\nscgi_temp_path {d}/nginx-scgi;\n\
                 map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}\n\
                 server {{\n listen 443 ssl;\n server_name {HUB_NAME};\n ssl_certificate {d}/hub.pem;\n\
                 ssl_certificate_key {d}/hub.key;\n location / {{\n  proxy_pass http://127.0.0.1:{port};\n\
                 proxy_http_version 1.1;\n  proxy_set_header Upgrade $http_upgrade;\n\
                 proxy_set_header Connection $connection_upgrade;\n  proxy_set_header Host $host;\n\
                 proxy_read_timeout 5s;\n }}\n }}\n}}\n",
                port = self.hub_port
            ),
        )
        .unwrap();
        let nginx = std::env::var("HEIWA_NGINX").expect("HEIWA_NGINX names nginx (source scripts/lib/env.sh)");
        let proxy = Proc::spawn(self.exec(
            "hub",
            &[&nginx, "-e", "stderr", "-p", &d.to_string(), "-c", &conf.display().to_string(), "-g", "daemon off;"],
        ));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.exec_ok("hub", &["ss", "-ltnH"]).contains(":443") {
            assert!(Instant::now() < deadline, "nginx did not listen: {:?}", proxy.lines());
            std::thread::sleep(Duration::from_millis(50));
        }
        self.proxy = Some(proxy);
    }

    /// `heiwa` as the tenant's owner, on the hub host (its token stays there).
    pub fn owner(&self, args: &[&str]) -> String {
        let out = self
            .exec("hub", &[&[HEIWA], args].concat())
            .env("HEIWA_DATA_DIR", self.path("owner"))
            .env("HEIWA_HUB", format!("http://127.0.0.1:{}", self.hub_port))
            .output()
            .unwrap();
        assert!(out.status.success(), "heiwa {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `heiwa limb run` on limb host `n`, reaching the hub at `hub` and trusting `ca`;
    /// `extra` arguments after the defaults (an echo executor, a 4 s lease unless given).
    pub fn limb_with(&self, n: usize, hub: &str, ca: &str, invite: &str, extra: &[&str]) -> Proc {
        let (lease, name) = (LEASE_SECS.to_string(), format!("limb{n}"));
        let mut args = vec![HEIWA, "limb", "run", "--invite", invite, "--name", &name, "--executor", "echo"];
        if !extra.contains(&"--lease-secs") {
            args.extend(["--lease-secs", &lease]);
        }
        args.extend(extra);
        let mut command = self.exec(&format!("l{n}"), &args);
        command
            .env("HEIWA_HUB", hub)
            .env("HEIWA_DATA_DIR", self.path(&name))
            .env("SSL_CERT_FILE", self.path(ca))
            .env_remove("SSL_CERT_DIR");
        Proc::spawn(command)
    }

    pub fn start_limb(&self, n: usize, invite: &str) -> Proc {
        self.start_limb_with(n, invite, &[])
    }

    pub fn start_limb_with(&self, n: usize, invite: &str, extra: &[&str]) -> Proc {
        let limb = self.limb_with(n, &format!("https://{HUB_NAME}"), "ca.pem", invite, extra);
        limb.wait_for("ready", Duration::from_secs(60));
        limb
    }

    /// Drop packets on limb host `n`'s link: all of them (`None`) or at random.
    pub fn drop_packets(&self, n: usize, probability: Option<f32>) {
        let host = format!("l{n}");
        for chain in ["INPUT", "OUTPUT"] {
            let mut rule = vec!["iptables", "-A", chain, "!", if chain == "INPUT" { "-i" } else { "-o" }, "lo"];
            let p = probability.map(|p| p.to_string());
            if let Some(p) = &p {
                rule.extend(["-m", "statistic", "--mode", "random", "--probability", p]);
            }
            rule.extend(["-j", "DROP"]);
            self.exec_ok(&host, &rule);
        }
    }

    pub fn heal(&self, n: usize) {
        for chain in ["INPUT", "OUTPUT"] {
            self.exec_ok(&format!("l{n}"), &["iptables", "-F", chain]);
        }
    }

    /// Every task and its result, as the owner exports them: (state, has a result) by task id.
    pub fn tasks(&self) -> HashMap<u64, (String, bool)> {
        self.owner(&["task", "export"])
            .lines()
            .map(|line| {
                let row: serde_json::Value = serde_json::from_str(line).unwrap();
                let id = row["task"]["id"].as_u64().unwrap();
                let state = row["task"]["state"].as_str().unwrap_or_default().to_string();
                (id, (state, !row["result"].is_null()))
            })
            .collect()
    }

    /// Wait until all `count` tasks are done, then check each was done exactly once.
    pub fn expect_all_done(&self, count: usize, limit: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let tasks = self.tasks();
            let done = tasks.values().filter(|(state, result)| state == "done" && *result).count();
            if done == count {
                assert_eq!(tasks.len(), count, "no task appeared twice or vanished");
                return started.elapsed();
            }
            assert!(started.elapsed() < limit, "{done} of {count} tasks done: {tasks:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Send `signal` to every process on host `short` whose name (as /proc/PID/comm has it) is `comm`.
    pub fn kill_in(&self, short: &str, comm: &str, signal: &str) {
        let pids = run("ip", &["netns", "pids", &self.host(short)]);
        let mut killed = 0;
        for pid in pids.split_whitespace() {
            if std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm) {
                run("kill", &[signal, pid]);
                killed += 1;
            }
        }
        assert!(killed > 0, "no {comm} ran on {short}");
    }

    pub fn teardown_namespaces(&self) {
        let names = run("ip", &["netns", "list"]);
        for name in names
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with(&format!("{}-", self.tag)))
        {
            // Whatever still runs in a test host goes with it.
            if let Ok(pids) = Command::new("ip").args(["netns", "pids", name]).output() {
                // (not this process: the benchmark measures from inside the hub host)
                let me = std::process::id().to_string();
                for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace().filter(|pid| *pid != me) {
                    let _ = Command::new("kill").args(["-9", pid]).stderr(Stdio::null()).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "delete", name]).status();
            let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(name));
        }
    }
}

impl Drop for Net {
    /// Namespaces, their processes and their /etc/netns files go even when the test fails.
    fn drop(&mut self) {
        self.proxy.take();
        self.hub.take();
        self.teardown_namespaces();
    }
}

pub fn tenant(net: &Net, limbs: usize) -> String {
    net.owner(&["tenant", "create", "network"]);
    net.owner(&["tenant", "invite", "--uses", &limbs.to_string()])
}

/// Tasks `from..from + count`, each under its own key: sending one again (after
/// a hub crash may have lost its last half second) never makes a second task.
pub fn submit(net: &Net, from: usize, count: usize) {
    for i in from..from + count {
        net.owner(&["task", "submit", &format!("task {i}"), "--key", &format!("k{i}")]);
    }
}
