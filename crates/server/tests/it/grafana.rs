//! The shipped Grafana dashboard only queries metrics the server really exports.

#[test]
fn dashboard_queries_only_exported_metrics() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let dash = std::fs::read_to_string(format!("{root}/grafana/ferrocast-dashboard.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&dash).unwrap();
    let mut sources = String::new();
    for dir in ["crates/server/src"] {
        for e in std::fs::read_dir(format!("{root}/{dir}")).unwrap() {
            sources.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap());
        }
    }
    let mut names = vec![];
    for p in v["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(i) = rest.find("ferrocast_") {
                let name: String = rest[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                rest = &rest[i + name.len()..];
                // Histogram series are exported under the metric's own name.
                let base = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).map_or(name.clone(), str::to_string);
                names.push(base);
            }
        }
    }
    assert!(names.len() >= 8, "{names:?}");
    for n in names {
        let exported = sources.match_indices(&n).any(|(i, _)| {
            let next = sources[i + n.len()..].chars().next().unwrap_or(' ');
            !(next.is_ascii_alphanumeric() || next == '_')
        });
        assert!(exported, "the dashboard queries {n}, which the server does not export");
    }
}
