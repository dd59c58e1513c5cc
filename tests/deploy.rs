//! The deploy files stay valid: both HAProxy configs pass `haproxy -c`, the compose file passes
//! `docker-compose config` (the test script installs Debian's docker-compose; no Docker engine
//! is needed to validate), and the Dockerfile builds the binary the contract names.

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn haproxy_configs_are_valid() {
    for config in ["deploy/haproxy.cfg", "deploy/haproxy-compose.cfg"] {
        let out = Command::new("haproxy")
            .args(["-c", "-f"])
            .arg(root().join(config))
            .output()
            .expect("haproxy is installed by scripts/test.sh");
        assert!(
            out.status.success(),
            "{config}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(root().join(config)).unwrap();
        for needed in [
            "balance roundrobin",
            "option forwardfor",
            "option httpchk GET /readyz",
            "option redispatch",
            "retries",
            // Finding 8: the balancer sets the scheme itself, never passing a client's on.
            "http-request set-header X-Forwarded-Proto http if !{ ssl_fc }",
        ] {
            assert!(text.contains(needed), "{config} lacks {needed}");
        }
    }
}

#[test]
fn compose_file_is_valid() {
    let file = root().join("deploy/docker-compose.yml");
    // Compose v2 as a docker plugin when present, else Debian's docker-compose.
    let v2 = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    let out = if v2 {
        Command::new("docker")
            .args(["compose", "-f"])
            .arg(&file)
            .arg("config")
            .output()
    } else {
        Command::new("docker-compose")
            .arg("-f")
            .arg(&file)
            .arg("config")
            .output()
    }
    .expect("docker-compose is installed by scripts/test.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = String::from_utf8_lossy(&out.stdout);
    for service in ["redis", "postgres", "node1", "node2", "haproxy"] {
        assert!(
            config.contains(&format!("  {service}:")),
            "service {service} missing"
        );
    }
}

#[test]
fn dockerfile_builds_the_release_binary_and_serves() {
    let text = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    assert!(text.contains("cargo build --release --locked --bin ringfence"));
    assert!(text.matches("FROM ").count() >= 2, "multi-stage");
    assert!(text.contains("CMD [\"serve\"]"));
}
