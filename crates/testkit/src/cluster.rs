//! A real Redis Cluster: several `redis-server --cluster-enabled yes` masters on free loopback
//! ports, slots split evenly, joined and checked healthy on every node.

use std::io;
use std::thread;
use std::time::{Duration, Instant};

use crate::process;
use crate::redis::{RedisOptions, RedisServer};
use crate::tls::TestPki;

/// Slots in a Redis Cluster.
const SLOTS: usize = 16384;
/// Joining three nodes takes about a second (gossip every 100 ms); leave room for a busy machine.
const JOIN_TIMEOUT: Duration = Duration::from_secs(20);
const BUS_PORT_ATTEMPTS: usize = 3;

/// How to start a [`RedisCluster`].
#[derive(Default)]
pub struct ClusterOptions<'a> {
    /// Every node speaks only TLS (client port and cluster bus) with this CA's server
    /// certificate; [`RedisCluster::seeds`] then gives `rediss://` URLs.
    pub tls: Option<&'a TestPki>,
    /// Extra `redis-server` arguments for every node, after the harness's own (e.g. ACL users).
    pub extra_args: Vec<String>,
    /// The ACL user and password the harness's own `redis-cli` calls use, needed when
    /// `extra_args` switches the default user off.
    pub cli_user: Option<(String, String)>,
}

impl std::fmt::Debug for ClusterOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterOptions")
            .field("tls", &self.tls)
            .field("extra_args", &self.extra_args)
            .field("cli_user", &self.cli_user.as_ref().map(|(user, _)| user))
            .finish()
    }
}

/// A Redis Cluster of masters only (no replicas) on `127.0.0.1`, each master a
/// [`RedisServer`] with its own directory. Dropping it kills every node.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `masters` plain-text masters and waits (bounded) until every node reports
    /// `cluster_state:ok` with all slots covered and every other node known.
    pub fn start(masters: usize) -> io::Result<RedisCluster> {
        Self::start_with(masters, ClusterOptions::default())
    }

    /// Like [`RedisCluster::start`], with TLS, extra arguments or an ACL user.
    ///
    /// Slots are split into `masters` contiguous ranges (`CLUSTER ADDSLOTSRANGE`), each node gets
    /// its own config epoch and the nodes `CLUSTER MEET` the first one: what
    /// `redis-cli --cluster create --cluster-replicas 0` does, without its unbounded wait. Works
    /// for any number of masters from one up.
    pub fn start_with(masters: usize, options: ClusterOptions<'_>) -> io::Result<RedisCluster> {
        if masters == 0 || masters > SLOTS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a cluster needs 1 to {SLOTS} masters, not {masters}"),
            ));
        }
        let mut nodes = Vec::with_capacity(masters);
        let mut bus_ports = Vec::with_capacity(masters);
        for _ in 0..masters {
            let (node, bus_port) = start_node(&options)?;
            nodes.push(node);
            bus_ports.push(bus_port);
        }
        for (i, node) in nodes.iter().enumerate() {
            let first = i * SLOTS / masters;
            let last = (i + 1) * SLOTS / masters - 1;
            expect_ok(
                node,
                &[
                    "CLUSTER",
                    "ADDSLOTSRANGE",
                    &first.to_string(),
                    &last.to_string(),
                ],
            )?;
            // Distinct epochs from the start spare the nodes the collision-resolution round.
            expect_ok(node, &["CLUSTER", "SET-CONFIG-EPOCH", &(i + 1).to_string()])?;
        }
        let first_port = nodes[0].port().to_string();
        let first_bus_port = bus_ports[0].to_string();
        for node in &nodes[1..] {
            expect_ok(
                node,
                &["CLUSTER", "MEET", "127.0.0.1", &first_port, &first_bus_port],
            )?;
        }
        let cluster = RedisCluster { nodes };
        cluster.wait_healthy(JOIN_TIMEOUT)?;
        Ok(cluster)
    }

    /// Every master, in slot order (node 0 owns the lowest slots).
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Every master, mutable (to stop or restart one).
    pub fn nodes_mut(&mut self) -> &mut [RedisServer] {
        &mut self.nodes
    }

    /// The seed list a cluster client takes: `redis://127.0.0.1:A/,redis://127.0.0.1:B/,...`
    /// (`rediss://` for a TLS cluster).
    pub fn seeds(&self) -> String {
        self.nodes
            .iter()
            .map(RedisServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `CLUSTER KEYSLOT key`, asked of the first node.
    pub fn keyslot(&self, key: &str) -> io::Result<u16> {
        let reply = self.nodes[0].redis_cli(&["CLUSTER", "KEYSLOT", key])?;
        reply
            .trim()
            .parse()
            .map_err(|_| io::Error::other(format!("CLUSTER KEYSLOT {key} answered {reply:?}")))
    }

    /// The node that owns `slot` (slots are split evenly in node order).
    pub fn node_for_slot(&self, slot: u16) -> &RedisServer {
        let n = self.nodes.len();
        // ADDSLOTSRANGE gave node i the slots from i*SLOTS/n up to the next node's first slot.
        let owner = (0..n)
            .rev()
            .find(|&i| i * SLOTS / n <= usize::from(slot))
            .unwrap_or(0);
        &self.nodes[owner]
    }

    /// Waits until every node says `cluster_state:ok`, covers all slots and knows every node.
    pub fn wait_healthy(&self, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        let want_nodes = format!("cluster_known_nodes:{}", self.nodes.len());
        let want_slots = format!("cluster_slots_ok:{SLOTS}");
        loop {
            let mut last = String::new();
            let mut healthy = true;
            for node in &self.nodes {
                let info = node.redis_cli(&["CLUSTER", "INFO"]).unwrap_or_default();
                let fine = info.contains("cluster_state:ok")
                    && info.lines().any(|l| l.trim() == want_nodes)
                    && info.lines().any(|l| l.trim() == want_slots);
                if !fine {
                    healthy = false;
                    last = format!(
                        "node on port {}: {}",
                        node.port(),
                        info.replace("\r\n", " ")
                    );
                    break;
                }
            }
            if healthy {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("cluster not healthy within {timeout:?}; {last}"),
                ));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

/// One cluster node. The bus port is chosen explicitly (`--cluster-port`): the default, client
/// port + 10000, may be taken or above 65535.
fn start_node(options: &ClusterOptions<'_>) -> io::Result<(RedisServer, u16)> {
    let mut last = None;
    for _ in 0..BUS_PORT_ATTEMPTS {
        let bus_port = process::try_free_port()?;
        let mut extra_args: Vec<String> = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "2000",
            "--cluster-announce-ip",
            "127.0.0.1",
            "--cluster-port",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        extra_args.push(bus_port.to_string());
        extra_args.extend(options.extra_args.iter().cloned());
        let redis_options = RedisOptions {
            appendonly: false,
            extra_args,
        };
        let started = match options.tls {
            Some(pki) => RedisServer::start_tls(pki, redis_options),
            None => RedisServer::start_with(redis_options),
        };
        match started {
            Ok(mut node) => {
                if let Some((user, password)) = &options.cli_user {
                    node.set_cli_user(user, password);
                }
                return Ok((node, bus_port));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("cluster node did not start")))
}

fn expect_ok(node: &RedisServer, args: &[&str]) -> io::Result<()> {
    let reply = node.redis_cli(args)?;
    if reply.trim() == "OK" {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{} on port {} answered {reply:?}",
            args.join(" "),
            node.port()
        )))
    }
}
