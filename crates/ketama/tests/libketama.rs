//! The ring against the real libketama: `data/libketama.tsv` holds, for a few
//! rings, the point and node that last.fm's C library gives to each of 600
//! keys (`data/trace.sh` made it). Every line must come out the same here.

use ketama::{hash_key, Ring};

const TRACE: &str = include_str!("data/libketama.tsv");

struct TraceRing {
    id: String,
    points: usize,
    ring: Ring,
    /// (point, node, key) per traced key.
    keys: Vec<(u32, String, String)>,
}

fn parse() -> Vec<TraceRing> {
    let mut rings: Vec<TraceRing> = Vec::new();
    for (n, line) in TRACE.lines().enumerate() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let f: Vec<&str> = line.splitn(4, '\t').collect();
        assert_eq!(f.len(), 4, "line {}: {line:?}", n + 1);
        if f[0] == "ring" {
            let nodes: Vec<(String, u32)> = f[3]
                .split(',')
                .map(|nw| {
                    let (name, w) = nw.rsplit_once('=').expect("name=weight");
                    (name.to_owned(), w.parse().expect("weight"))
                })
                .collect();
            rings.push(TraceRing {
                id: f[1].to_owned(),
                points: f[2].parse().expect("point count"),
                ring: Ring::new(nodes),
                keys: Vec::new(),
            });
        } else {
            let ring = rings.last_mut().expect("a ring line first");
            assert_eq!(f[0], ring.id, "line {}", n + 1);
            ring.keys.push((
                f[1].parse().expect("point"),
                f[2].to_owned(),
                f[3].to_owned(),
            ));
        }
    }
    rings
}

#[test]
fn every_traced_key_lands_where_libketama_puts_it() {
    let rings = parse();
    assert_eq!(rings.len(), 8);
    let mut checked = 0;
    for r in &rings {
        assert_eq!(
            r.ring.point_count(),
            r.points,
            "ring {}: continuum size",
            r.id
        );
        assert_eq!(r.keys.len(), 600, "ring {}", r.id);
        for (point, node, key) in &r.keys {
            assert_eq!(
                r.ring.point(key),
                Some((*point, node.as_str())),
                "ring {} key {key:?} (hash {:#010x})",
                r.id,
                hash_key(key.as_bytes())
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 8 * 600);
}

/// The trace reaches the lookup's edge: keys hashing above the last point
/// wrap to the first one (libketama's "roll back to zeroth").
#[test]
fn trace_includes_keys_that_wrap() {
    for r in parse() {
        let wrapped: Vec<u32> = r
            .keys
            .iter()
            .filter(|(p, _, k)| hash_key(k.as_bytes()) > *p)
            .map(|(p, _, _)| *p)
            .collect();
        assert!(
            wrapped.len() >= 5,
            "ring {}: {} wrapping keys",
            r.id,
            wrapped.len()
        );
        let lowest = r.keys.iter().map(|(p, _, _)| *p).min().unwrap();
        assert!(wrapped.iter().all(|p| *p == lowest), "ring {}", r.id);
    }
}
