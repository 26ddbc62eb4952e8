//! A plain caching edge (`ferrocast edge --origin …`) in front of test origins, in-process on
//! a loopback port, and a GET that reads its `X-Cache`.

use std::time::Duration;

use ferrocast::edge_http::{self, EdgeState};

pub struct TestEdge {
    pub port: u16,
    pub state: EdgeState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

pub async fn start_edge(origins: &[String]) -> TestEdge {
    let state = EdgeState::new(origins).unwrap();
    let l = ferrocast::listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(edge_http::run(l, state.clone(), async {
        let _ = rx.await;
    }));
    TestEdge {
        port,
        state,
        stop: Some(tx),
    }
}

impl Drop for TestEdge {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Status, X-Cache and body of a GET.
pub async fn get_full(port: u16, path: &str) -> (u16, String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut v = vec![];
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut v))
        .await
        .unwrap()
        .unwrap();
    let head_end = v
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(v.len(), |p| p + 4);
    let head = String::from_utf8_lossy(&v[..head_end]).to_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let xcache = head
        .lines()
        .find_map(|l| l.strip_prefix("x-cache: "))
        .unwrap_or("")
        .trim()
        .to_uppercase();
    (status, xcache, v[head_end..].to_vec())
}
