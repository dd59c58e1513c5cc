//! The deploy files stay valid: both HAProxy configs pass `haproxy -c`, the compose file passes
//! `docker-compose config` (the test script installs Debian's docker-compose; no Docker engine
//! is needed to validate) and holds no secret, and the Dockerfile builds the binary the contract
//! names.

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

/// `docker compose config` (Compose v2 as a docker plugin when present, else Debian's
/// docker-compose) on the compose file, with exactly the secrets in `envs` and an empty env
/// file, so a deploy/.env generated on this machine cannot stand in for them.
fn compose_config(envs: &[(&str, &str)]) -> std::process::Output {
    let file = root().join("deploy/docker-compose.yml");
    let empty = tempfile::NamedTempFile::new().unwrap();
    let v2 = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    let mut command = if v2 {
        let mut c = Command::new("docker");
        c.arg("compose");
        c
    } else {
        Command::new("docker-compose")
    };
    command
        .arg("--env-file")
        .arg(empty.path())
        .arg("-f")
        .arg(&file)
        .arg("config")
        .env_remove("POSTGRES_PASSWORD")
        .env_remove("REDIS_PASSWORD")
        .envs(envs.iter().copied())
        .output()
        .expect("docker-compose is installed by scripts/test.sh")
}

/// The compose configuration with test secrets, which must be valid.
fn config_with_secrets() -> String {
    let out = compose_config(&[
        ("POSTGRES_PASSWORD", "pg-test-secret"),
        ("REDIS_PASSWORD", "redis-test-secret"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn compose_file_is_valid() {
    let config = config_with_secrets();
    for service in ["redis", "postgres", "node1", "node2", "haproxy"] {
        assert!(
            config.contains(&format!("  {service}:")),
            "service {service} missing"
        );
    }
}

/// Finding 13 of issue 13: the compose file commits no password. Compose refuses it without
/// the secrets (naming the script that makes them), uses the given ones everywhere they are
/// needed, and deploy/compose-secrets.sh generates them into a 0600 file, keeping existing ones.
#[test]
fn finding_13_the_compose_file_holds_no_secret() {
    let out = compose_config(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "config without secrets succeeded");
    assert!(err.contains("compose-secrets.sh"), "{err}");
    for (name, other) in [
        ("POSTGRES_PASSWORD", "REDIS_PASSWORD"),
        ("REDIS_PASSWORD", "POSTGRES_PASSWORD"),
    ] {
        let out = compose_config(&[(other, "given")]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "config without {name} succeeded");
        assert!(err.contains(name), "{err}");
    }

    let config = config_with_secrets();
    // The database, the nodes' URLs and Redis all get the secrets given, and nothing else.
    assert_eq!(
        config
            .matches("postgres://ringfence:pg-test-secret@postgres")
            .count(),
        2,
        "{config}"
    );
    assert_eq!(
        config
            .matches("redis://:redis-test-secret@redis:6379/")
            .count(),
        2,
        "{config}"
    );
    assert!(
        config.contains("POSTGRES_PASSWORD: pg-test-secret"),
        "{config}"
    );
    assert!(
        config.contains("REDISCLI_AUTH: redis-test-secret"),
        "{config}"
    );
    assert!(config.contains("--requirepass"), "{config}");
    let text = std::fs::read_to_string(root().join("deploy/docker-compose.yml")).unwrap();
    assert!(
        !text.contains("ringfence:ringfence@"),
        "a committed password"
    );

    // The generator: 0600, 256-bit URL-safe secrets, existing values kept.
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join(".env");
    let generate = || {
        let out = Command::new(root().join("deploy/compose-secrets.sh"))
            .env("COMPOSE_ENV_FILE", &env_file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read_to_string(&env_file).unwrap()
    };
    let first = generate();
    let mode = std::fs::metadata(&env_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let values: Vec<&str> = first
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(values.len(), 2, "{first}");
    assert_ne!(values[0], values[1]);
    for value in &values {
        assert_eq!(value.len(), 64, "{value}");
        assert!(value.chars().all(|c| c.is_ascii_hexdigit()), "{value}");
    }
    assert_eq!(generate(), first, "existing secrets are kept");
}

#[test]
fn dockerfile_builds_the_release_binary_and_serves() {
    let text = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    assert!(text.contains("cargo build --release --locked --bin ringfence"));
    assert!(text.matches("FROM ").count() >= 2, "multi-stage");
    assert!(text.contains("CMD [\"serve\"]"));
}
