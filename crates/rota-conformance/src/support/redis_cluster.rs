//! A Redis Cluster of the test's own: 3 primaries with a replica each, 6
//! `redis-server` processes on free ports in a temporary directory, killed
//! when dropped.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::redis_server::{RedisServer, free_port};

/// How long a node may be unreachable before the Cluster fails it over
/// (ms): short, so a test of an unplanned fail-over does not wait long.
pub const NODE_TIMEOUT_MS: u64 = 1_000;

/// A private Redis Cluster: 3 primaries, 1 replica each.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts 6 nodes, makes them a Cluster (`redis-cli --cluster create
    /// … --cluster-replicas 1`) and waits until every node says
    /// `cluster_state:ok` and every replica is in sync; panics with a hint
    /// if `redis-server` or `redis-cli` is missing.
    pub fn start() -> Self {
        let timeout = NODE_TIMEOUT_MS.to_string();
        let nodes: Vec<RedisServer> = (0..6)
            .map(|_| {
                // The bus port on a free port too: the default, the port
                // plus 10 000, may be taken or past 65 535.
                let bus = free_port().to_string();
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus,
                    "--cluster-node-timeout",
                    &timeout,
                    // A replica takes over however long it was cut off.
                    "--cluster-replica-validity-factor",
                    "0",
                ])
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli must be installed (apt-get install -y redis-tools)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let this = Self { nodes };
        this.wait_healthy(Duration::from_secs(30));
        this
    }

    /// The one Cluster of this test process, started by the first caller;
    /// the others share it while any holds it (each under a key prefix of
    /// its own), and the last to drop it stops it.
    pub fn shared() -> Arc<Self> {
        static SHARED: Mutex<Weak<RedisCluster>> = Mutex::new(Weak::new());
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cluster) = shared.upgrade() {
            return cluster;
        }
        let cluster = Arc::new(Self::start());
        *shared = Arc::downgrade(&cluster);
        cluster
    }

    /// `redis+cluster://` with every node as a seed.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// The nodes, by index (0 to 5).
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The node at `port`.
    pub fn node(&mut self, port: u16) -> &mut RedisServer {
        self.nodes
            .iter_mut()
            .find(|n| n.port() == port)
            .expect("a node of the cluster")
    }

    /// `redis-cli -p <port> <args>`'s output, or `None` if the node does
    /// not answer.
    pub fn cli(port: u16, args: &[&str]) -> Option<String> {
        let out = Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
            .filter(|s| !s.starts_with("Could not connect"))
    }

    /// The (primary, replica) port pairs, from the node at `port`'s
    /// `CLUSTER NODES`.
    pub fn pairs_seen_by(port: u16) -> Vec<(u16, u16)> {
        let nodes = Self::cli(port, &["cluster", "nodes"]).unwrap_or_default();
        // <id> <ip:port@cport> <flags> <primary id or -> …
        let rows: Vec<Vec<&str>> = nodes
            .lines()
            .map(|l| l.split_whitespace().collect())
            .filter(|r: &Vec<&str>| r.len() >= 8)
            .collect();
        let port_of = |address: &str| -> Option<u16> {
            address.split('@').next()?.rsplit(':').next()?.parse().ok()
        };
        let mut pairs = Vec::new();
        for primary in rows
            .iter()
            .filter(|r| r[2].contains("master") && !r[2].contains("fail"))
        {
            for replica in rows
                .iter()
                .filter(|r| r[3] == primary[0] && !r[2].contains("fail"))
            {
                if let (Some(p), Some(r)) = (port_of(primary[1]), port_of(replica[1])) {
                    pairs.push((p, r));
                }
            }
        }
        pairs.sort_unstable();
        pairs
    }

    /// Waits until every live node says `cluster_state:ok` and every one of
    /// 3 primaries has a replica in sync with it (`master_link_status:up`).
    pub fn wait_healthy(&self, within: Duration) {
        let until = Instant::now() + within;
        loop {
            let live: Vec<u16> = self
                .nodes
                .iter()
                .filter(|n| n.is_running())
                .map(|n| n.port())
                .collect();
            let ok = live.iter().all(|p| {
                Self::cli(*p, &["cluster", "info"]).is_some_and(|i| i.contains("cluster_state:ok"))
            });
            let pairs = live
                .first()
                .map(|p| Self::pairs_seen_by(*p))
                .unwrap_or_default();
            let synced = pairs.len() == 3
                && pairs.iter().all(|(_, r)| {
                    Self::cli(*r, &["info", "replication"])
                        .is_some_and(|i| i.contains("master_link_status:up"))
                });
            if ok && synced {
                return;
            }
            assert!(
                Instant::now() < until,
                "the cluster did not become healthy: {:?}",
                live.first()
                    .and_then(|p| Self::cli(*p, &["cluster", "nodes"]))
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
