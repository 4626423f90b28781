//! Debian's nginx on loopback, serving a folder as a model mirror would:
//! the pull and catalogue tests and the catalogue benchmark fetch from it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// nginx on 127.0.0.1 (stopped when dropped) serving a folder: `/m/` at full
/// speed, `/slow/` at 4 MiB/s, `/paced/` at 24 MiB/s, `/deny/` forbidden,
/// `/r1/NAME` → `/r2/NAME` → `/m/NAME`.
pub struct Nginx {
    child: Child,
    pub port: u16,
}

impl Nginx {
    /// Serve `root`, with nginx's own files (config, pid, logs) in `dir`.
    pub fn serve(dir: &Path, root: &Path) -> Nginx {
        let port = heiwa_config::free_loopback_port().unwrap();
        let (d, root) = (dir.display(), root.display());
        let conf = dir.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log;\nevents {{}}\nhttp {{\n\
                 access_log off;\nclient_body_temp_path {d}/b;\nproxy_temp_path {d}/p;\nfastcgi_temp_path {d}/f;\n\
                 uwsgi_temp_path {d}/u;\nscgi_temp_path {d}/s;\n\
                 server {{\n listen 127.0.0.1:{port};\n\
                 location /m/ {{ alias {root}/; }}\n\
                 location /slow/ {{ alias {root}/; limit_rate 4m; }}\n\
                 location /paced/ {{ alias {root}/; limit_rate 24m; }}\n\
                 location /deny/ {{ return 403; }}\n\
                 location ~ ^/r1/(.*)$ {{ return 302 /r2/$1; }}\n\
                 location ~ ^/r2/(.*)$ {{ return 301 /m/$1; }}\n }}\n}}\n"
            ),
        )
        .unwrap();
        let binary = std::env::var("HEIWA_NGINX").expect("HEIWA_NGINX names nginx (source scripts/lib/env.sh)");
        let child = Command::new(binary)
            .args(["-e", "stderr", "-p", &d.to_string(), "-c", &conf.display().to_string(), "-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx { child, port }
    }

    /// `http://127.0.0.1:PORT/PATH`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{}", self.port, path.trim_start_matches('/'))
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
