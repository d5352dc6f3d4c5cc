//! `rediss://`: calls over TLS to a Redis that only speaks TLS, trusting a
//! private certificate authority made for the test.

#![cfg(feature = "tls")]
#![allow(missing_docs)] // test contracts

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rota::ServeOptions;
use rota_redis::{RedisBroker, RedisOptions};

#[rota::contract]
pub trait Echo {
    async fn echo(&self, text: String) -> String;
}

struct Impl;

impl Echo for Impl {
    async fn echo(&self, text: String) -> String {
        text
    }
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl must be installed");
    assert!(status.success(), "openssl {args:?} failed");
}

/// A CA, and a server certificate for 127.0.0.1 signed by it.
fn certificates(dir: &std::path::Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-subj",
            "/CN=rota-test-ca",
            "-days",
            "1",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
        ],
    );
}

struct TlsRedis(Child);

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_travel_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let port = support::free_port();
    let _redis = TlsRedis(
        Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .args([
                "--tls-cert-file",
                "server.crt",
                "--tls-key-file",
                "server.key",
            ])
            .args(["--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "no"])
            .args(["--save", "", "--appendonly", "no"])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let until = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "TLS redis-server did not come up");
        std::thread::sleep(Duration::from_millis(10));
    }

    let ca = std::fs::read(dir.path().join("ca.crt")).unwrap();
    let url = format!("rediss://127.0.0.1:{port}");
    let broker = RedisBroker::connect_with(RedisOptions::new(&url).tls_root_cert(ca))
        .await
        .expect("TLS connect");
    let server = EchoServer::new(Impl).spawn(broker.clone(), "echo", ServeOptions::default());
    let echo = EchoClient::new(rota::Client::new(broker.clone()), "echo");
    assert_eq!(echo.echo("over tls".into()).await.unwrap(), "over tls");
    server.shutdown().await.unwrap();

    // Without trusting the private CA, the handshake is refused.
    let err = RedisBroker::connect(&url).await.unwrap_err();
    assert!(!err.to_string().is_empty());
}
