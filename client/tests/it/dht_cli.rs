//! `rivulet dht ...` and `rivulet tracker`, run as a user would, on loopback.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_and_read_line(args: &[&str]) -> (Killed, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rivulet"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn rivulet");
    let out = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(out)
        .read_line(&mut line)
        .expect("first line");
    (Killed(child), line)
}

fn rivulet(args: &[&str]) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_rivulet"))
        .args(args)
        .output()
        .expect("run rivulet");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

#[test]
fn dht_announce_get_peers_put_get_through_a_bootstrap_node() {
    let (_node, line) = spawn_and_read_line(&[
        "dht",
        "node",
        "--listen",
        "127.0.0.1:0",
        "--no-bootstrap",
        "--timeout",
        "60",
    ]);
    // "listening on 127.0.0.1:PORT id HEX"
    let addr = line.split_whitespace().nth(2).expect("address").to_string();
    let common = [
        "--listen",
        "127.0.0.1:0",
        "--bootstrap",
        addr.as_str(),
        "--timeout",
        "20",
    ];

    let mut args = vec![
        "dht",
        "announce",
        "--name",
        "rivulet test room",
        "--port",
        "4242",
    ];
    args.extend(common);
    let (ok, out) = rivulet(&args);
    assert!(ok, "{out}");
    assert!(out.contains("to 1 nodes"), "{out}");

    let mut args = vec![
        "dht",
        "get-peers",
        "--name",
        "rivulet test room",
        "--max",
        "1",
    ];
    args.extend(common);
    let (ok, out) = rivulet(&args);
    assert!(ok, "{out}");
    assert_eq!(out.lines().next(), Some("127.0.0.1:4242"), "{out}");

    // A key nobody announced: no peers, exit 4.
    let mut args = vec![
        "dht",
        "get-peers",
        "0123456789abcdef0123456789abcdef01234567",
    ];
    args.extend([
        "--listen",
        "127.0.0.1:0",
        "--bootstrap",
        addr.as_str(),
        "--timeout",
        "3",
    ]);
    let (ok, out) = rivulet(&args);
    assert!(!ok, "{out}");

    let mut args = vec!["dht", "put", "hello from rivulet"];
    args.extend(common);
    let (ok, out) = rivulet(&args);
    assert!(ok, "{out}");
    let target = out.split_whitespace().nth(1).expect("target").to_string();
    let mut args = vec!["dht", "get", target.as_str()];
    args.extend(common);
    let (ok, out) = rivulet(&args);
    assert!(ok, "{out}");
    assert_eq!(out.lines().next(), Some("hello from rivulet"), "{out}");

    // Mutable item, signed with a fixed seed.
    let secret = "11".repeat(32);
    let mut args = vec![
        "dht",
        "put",
        "version 2",
        "--secret",
        secret.as_str(),
        "--seq",
        "2",
        "--salt",
        "s",
    ];
    args.extend(common);
    let (ok, out) = rivulet(&args);
    assert!(ok, "{out}");
    let target = out.split_whitespace().nth(1).expect("target").to_string();
    let mut args = vec!["dht", "get", target.as_str(), "--salt", "s"];
    args.extend(common);
    let (ok, out) = rivulet(&args);
    assert!(ok, "{out}");
    assert!(out.starts_with("version 2\n"), "{out}");
    assert!(out.contains("seq 2"), "{out}");
}

#[test]
fn tracker_command_serves_udp_and_http() {
    let (_t, first) = spawn_and_read_line(&[
        "tracker",
        "--udp",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--timeout",
        "30",
    ]);
    assert!(first.starts_with("udp://127.0.0.1:"), "{first}");
    let (ok, out) = rivulet(&["tracker", "--http", "127.0.0.1:1", "--ws", "127.0.0.1:2"]);
    assert!(!ok && out.contains("--ws"), "{out}");
}
