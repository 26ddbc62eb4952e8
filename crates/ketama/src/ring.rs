//! The continuum and its lookups (see the crate documentation for the scheme).
//!
//! Properties tested below: ≈ 1/(N+1) of keys move when a node joins (only
//! to the new node), a pinned placement table so that any change to the
//! algorithm fails a test, and the spread. On the spread, be aware: 160
//! points per node give each node a share within about ±6 % of even on
//! average, but the worst of 10 nodes is typically ~14 % off (up to ~40 %
//! for unlucky names). ±10 % across 10 nodes holds for some node sets (the
//! test uses one), not for every set; a tighter spread needs more points
//! per node, which would no longer be libketama's ring. Agreement with the
//! real libketama is tested in `tests/libketama.rs`.

use md5::{Digest, Md5};

/// Digests per node for an average weight (libketama's `40`).
const DIGESTS_PER_SHARE: f64 = 40.0;

/// One point on the continuum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Point {
    hash: u32,
    node: u32,
}

/// A consistent-hash ring (continuum) over named nodes.
#[derive(Debug, Clone, Default)]
pub struct Ring {
    nodes: Vec<String>,
    points: Vec<Point>,
}

impl Ring {
    /// Builds the ring from `(name, weight)` pairs.
    ///
    /// A name given twice keeps its first weight; nodes of weight 0 get no
    /// point (they are never chosen) and do not count in libketama's node
    /// count, so draining a node moves only its own keys.
    pub fn new<I, S>(nodes: I) -> Ring
    where
        I: IntoIterator<Item = (S, u32)>,
        S: Into<String>,
    {
        let mut list: Vec<(String, u32)> = Vec::new();
        for (name, weight) in nodes {
            let name = name.into();
            if !list.iter().any(|(n, _)| *n == name) {
                list.push((name, weight));
            }
        }
        let total: u64 = list.iter().map(|(_, w)| u64::from(*w)).sum();
        // Nodes of weight 0 (drained) do not count, so that the ring is the
        // same as without them.
        let count = list.iter().filter(|(_, w)| *w > 0).count();
        let mut points = Vec::with_capacity(count * 160);
        for (idx, (name, weight)) in list.iter().enumerate() {
            if *weight == 0 {
                continue;
            }
            // libketama: `float pct = (float)w / (float)total;
            //             unsigned ks = floorf(pct * 40.0 * (float)n);`
            // `pct * 40.0` is evaluated in double, then narrowed for floorf.
            let pct = *weight as f32 / total as f32;
            let ks = ((f64::from(pct) * DIGESTS_PER_SHARE * f64::from(count as f32)) as f32).floor()
                as u32;
            for k in 0..ks {
                let digest = Md5::digest(format!("{name}-{k}").as_bytes());
                for group in digest.chunks_exact(4) {
                    let hash = u32::from_le_bytes([group[0], group[1], group[2], group[3]]);
                    points.push(Point {
                        hash,
                        node: idx as u32,
                    });
                }
            }
        }
        points.sort_unstable();
        Ring {
            nodes: list.into_iter().map(|(n, _)| n).collect(),
            points,
        }
    }

    /// Builds a ring where every node has weight 1.
    pub fn uniform<I, S>(nodes: I) -> Ring
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Ring::new(nodes.into_iter().map(|n| (n, 1)))
    }

    /// The node names, in the order given to [`Ring::new`] (duplicates removed).
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// Number of points on the continuum (160 per node with equal weights).
    pub fn point_count(&self) -> usize {
        self.points.len()
    }

    /// True when no node has a point (empty list or all weights 0).
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The node that owns `key`, or `None` for an empty ring.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Option<&str> {
        self.point(key).map(|(_, node)| node)
    }

    /// The point of the continuum that `key` lands on, and its node: what
    /// libketama's `ketama_get_server` returns (`mcs.point`, `mcs.ip`).
    pub fn point(&self, key: impl AsRef<[u8]>) -> Option<(u32, &str)> {
        let p = self.points[self.position(key.as_ref())?];
        Some((p.hash, &self.nodes[p.node as usize]))
    }

    /// Up to `n` distinct nodes for `key`, in ring order from its owner: the
    /// first is [`Ring::get`], the next ones are the failover (or hot-standby)
    /// choices, each the next distinct node met walking clockwise.
    pub fn get_n(&self, key: impl AsRef<[u8]>, n: usize) -> Vec<&str> {
        let Some(start) = self.position(key.as_ref()) else {
            return Vec::new();
        };
        let want = n.min(self.nodes.len());
        let mut seen = vec![false; self.nodes.len()];
        let mut out = Vec::with_capacity(want);
        let len = self.points.len();
        for i in 0..len {
            if out.len() == want {
                break;
            }
            let node = self.points[(start + i) % len].node as usize;
            if !seen[node] {
                seen[node] = true;
                out.push(self.nodes[node].as_str());
            }
        }
        out
    }

    /// Index of the first point `>= hash(key)`, wrapping to 0.
    fn position(&self, key: &[u8]) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let h = hash_key(key);
        let i = self.points.partition_point(|p| p.hash < h);
        Some(if i == self.points.len() { 0 } else { i })
    }
}

/// libketama's key hash (`ketama_hashi`): the little-endian `u32` of the
/// first four bytes of `MD5(key)`.
pub fn hash_key(key: &[u8]) -> u32 {
    let d = Md5::digest(key);
    u32::from_le_bytes([d[0], d[1], d[2], d[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10.0.0.{}:8080", i + 1)).collect()
    }

    #[test]
    fn equal_weights_give_160_points_per_node() {
        for n in [1, 3, 7, 10, 11] {
            let ring = Ring::uniform(names(n));
            assert_eq!(ring.point_count(), 160 * n, "{n} nodes");
        }
    }

    #[test]
    fn weights_are_relative_shares() {
        // Same relative weights → same ring.
        let a = Ring::new([("a", 1), ("b", 1)]);
        let b = Ring::new([("a", 5), ("b", 5)]);
        assert_eq!(a.points, b.points);
        // a:b = 3:1 over two nodes → 60 and 20 digests.
        let r = Ring::new([("a", 3), ("b", 1), ("z", 0)]);
        let count = |node| r.points.iter().filter(|p| p.node == node).count();
        assert_eq!(count(0), 60 * 4);
        assert_eq!(count(1), 20 * 4);
        assert_eq!(count(2), 0);
        assert_ne!(r.get("k"), Some("z"));
    }

    #[test]
    fn key_hash_is_md5_little_endian() {
        // MD5("") = d41d8cd98f00b204e9800998ecf8427e
        assert_eq!(hash_key(b""), 0xd98c_1dd4);
    }

    #[test]
    fn empty_ring() {
        let r = Ring::uniform(Vec::<String>::new());
        assert!(r.is_empty());
        assert_eq!(r.get("x"), None);
        assert!(r.get_n("x", 3).is_empty());
    }

    #[test]
    fn lookup_is_first_point_at_or_after_hash_with_wrap() {
        let r = Ring::uniform(names(3));
        for key in ["a", "b", "stream-42", "zzz"] {
            let h = hash_key(key.as_bytes());
            let expect = r
                .points
                .iter()
                .find(|p| p.hash >= h)
                .unwrap_or(&r.points[0]);
            assert_eq!(r.get(key), Some(r.nodes[expect.node as usize].as_str()));
        }
    }

    /// Each node's exact share of the circle (sum of the arcs its points
    /// close), relative to an even share: 0.0 is even.
    fn share_deviation(ring: &Ring) -> Vec<f64> {
        let mut arcs = vec![0u64; ring.nodes.len()];
        let last = ring.points.last().unwrap().hash;
        let mut prev = u64::from(last).wrapping_sub(1 << 32);
        for p in &ring.points {
            arcs[p.node as usize] += u64::from(p.hash).wrapping_sub(prev) & 0xffff_ffff;
            prev = u64::from(p.hash);
        }
        let even = (1u64 << 32) as f64 / ring.nodes.len() as f64;
        arcs.iter().map(|a| *a as f64 / even - 1.0).collect()
    }

    /// ±10 % for 10 nodes (the CI target) holds for this node set,
    /// the names a gateway gives its encoders. It is *not* a guarantee of
    /// 160 points per node: over many 10-node sets the worst node is off by
    /// about 14 % (median) and up to ~40 %; `spread_over_many_node_sets`
    /// pins that general behaviour.
    #[test]
    fn distribution_within_ten_percent_of_even() {
        let ring = Ring::uniform((1..=10).map(|i| format!("encoder-{i}")));
        let mut counts = std::collections::HashMap::new();
        let keys = 100_000;
        for i in 0..keys {
            *counts
                .entry(ring.get(format!("stream-{i}")).unwrap().to_string())
                .or_insert(0usize) += 1;
        }
        assert_eq!(counts.len(), 10);
        let even = keys as f64 / 10.0;
        for (node, c) in counts {
            let dev = (c as f64 - even).abs() / even;
            assert!(
                dev <= 0.10,
                "{node} got {c} keys ({:.1} % off)",
                dev * 100.0
            );
        }
        for d in share_deviation(&ring) {
            assert!(d.abs() <= 0.10, "{d}");
        }
    }

    /// The spread of libketama's 160 points per node, over 100 fixed
    /// 10-node sets (exact arc shares, no sampling): per node the mean
    /// deviation from even is about 6 %, the worst node of a set about 14 %.
    #[test]
    fn spread_over_many_node_sets() {
        let mut worst = Vec::new();
        let mut sum_abs = 0.0;
        for set in 0..100 {
            let ring = Ring::uniform((0..10).map(|i| format!("set{set}-node{i}")));
            let dev = share_deviation(&ring);
            assert!(dev.iter().sum::<f64>().abs() < 1e-9);
            sum_abs += dev.iter().map(|d| d.abs()).sum::<f64>();
            worst.push(dev.iter().fold(0.0f64, |m, d| m.max(d.abs())));
        }
        worst.sort_by(f64::total_cmp);
        let mean_abs = sum_abs / 1000.0;
        assert!(mean_abs < 0.07, "mean |deviation| {mean_abs:.3}");
        assert!(worst[50] < 0.17, "median worst node {:.3}", worst[50]);
        assert!(worst[99] < 0.45, "worst node of all sets {:.3}", worst[99]);
    }

    #[test]
    fn adding_a_node_moves_about_one_in_n_plus_one() {
        for n in [3usize, 4, 9] {
            let before = Ring::uniform(names(n));
            let after = Ring::uniform(names(n + 1));
            let new_node = names(n + 1).pop().unwrap();
            let keys = 20_000;
            let mut moved = 0;
            for i in 0..keys {
                let k = format!("/live/s{i}");
                let (a, b) = (before.get(&k).unwrap(), after.get(&k).unwrap());
                if a != b {
                    moved += 1;
                    // Keys only move *to* the new node.
                    assert_eq!(b, new_node);
                }
            }
            let frac = moved as f64 / keys as f64;
            let ideal = 1.0 / (n + 1) as f64;
            assert!(
                (frac - ideal).abs() < 0.35 * ideal,
                "{n}→{}: moved {:.3}, ideal {ideal:.3}",
                n + 1,
                frac
            );
        }
    }

    #[test]
    fn removing_a_node_moves_only_its_keys() {
        let all = Ring::uniform(names(5));
        let gone = names(5)[2].clone();
        let fewer = Ring::uniform(names(5).into_iter().filter(|n| *n != gone));
        for i in 0..5_000 {
            let k = format!("k{i}");
            if all.get(&k).unwrap() != gone {
                assert_eq!(all.get(&k), fewer.get(&k));
            }
        }
    }

    #[test]
    fn get_n_is_distinct_in_ring_order_and_starts_with_get() {
        let ring = Ring::uniform(names(5));
        for i in 0..200 {
            let k = format!("k{i}");
            let list = ring.get_n(&k, 10);
            assert_eq!(list.len(), 5);
            assert_eq!(Some(list[0]), ring.get(&k));
            let mut sorted = list.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), 5);
            // Failover: without the owner, the key goes to the second choice.
            let without = Ring::uniform(names(5).into_iter().filter(|n| n != list[0]));
            assert_eq!(without.get(&k), Some(list[1]));
        }
        assert_eq!(ring.get_n("x", 2).len(), 2);
        assert_eq!(ring.get_n("x", 0).len(), 0);
    }

    #[test]
    fn duplicate_names_keep_the_first() {
        let r = Ring::new([("a", 1), ("b", 1), ("a", 9)]);
        assert_eq!(r.nodes(), ["a", "b"]);
        assert_eq!(r.point_count(), 320);
    }

    /// Placement pinned once from this implementation: a change of the
    /// hashing, the point layout or the lookup rule fails here.
    #[test]
    fn pinned_placement() {
        let ring = Ring::uniform([
            "origin-a:8080",
            "origin-b:8080",
            "origin-c:8080",
            "origin-d:8080",
        ]);
        let got: Vec<(&str, &str)> = PINNED
            .iter()
            .map(|(k, _)| (*k, ring.get(k).unwrap()))
            .collect();
        assert_eq!(got, PINNED);
        assert_eq!(ring.get_n("cam1", 4), PINNED_CAM1_ORDER);
    }

    // Computed once, and cross-checked with an independent script (Python
    // hashlib + the same single-precision share arithmetic).
    const PINNED: &[(&str, &str)] = &[
        ("cam1", "origin-b:8080"),
        ("cam2", "origin-c:8080"),
        ("live/news", "origin-a:8080"),
        ("live/sports/v720/1234.m4s", "origin-b:8080"),
        ("stream-0", "origin-c:8080"),
        ("stream-1", "origin-c:8080"),
        ("stream-2", "origin-c:8080"),
        ("", "origin-b:8080"),
        ("x", "origin-b:8080"),
    ];
    const PINNED_CAM1_ORDER: [&str; 4] = [
        "origin-b:8080",
        "origin-a:8080",
        "origin-d:8080",
        "origin-c:8080",
    ];
}
