use super::*;
use serde_json::json;

/// Nine unit vectors (4 decimals) and what scipy 1.17 computes for them:
/// `linkage(squareform(clip(1 - e @ e.T, 0, 2)), method="ward")` and `fcluster` (1-based).
fn points() -> Vec<Vec<f32>> {
    [
        [0.003, 0.7368, -0.6761],
        [-0.6324, -0.3229, -0.7042],
        [0.0421, 0.9379, -0.3444],
        [-0.7154, 0.5648, 0.4115],
        [0.1125, -0.9932, -0.0312],
        [0.4398, -0.8502, -0.2894],
        [-0.6457, -0.438, -0.6255],
        [-0.1785, -0.9622, 0.2059],
        [0.062, -0.0739, -0.9953],
    ]
    .iter()
    .map(|r| r.to_vec())
    .collect()
}

const SCIPY_Z: [(usize, usize, f64); 8] = [
    (1, 6, 0.009752),
    (4, 7, 0.070848),
    (0, 2, 0.07598),
    (5, 10, 0.269978),
    (8, 9, 0.405907),
    (3, 11, 0.877987),
    (12, 13, 1.30129),
    (14, 15, 2.618089),
];

fn one_based(labels: Vec<usize>) -> Vec<usize> {
    labels.into_iter().map(|l| l + 1).collect()
}

#[test]
fn ward_tree_is_scipys() {
    let z = ward_linkage(&points());
    assert_eq!(z.len(), SCIPY_Z.len());
    for (got, &(a, b, h)) in z.iter().zip(&SCIPY_Z) {
        assert_eq!((got.a, got.b), (a, b), "{z:?}");
        assert!((got.height - h).abs() < 2e-6, "{} vs {h}", got.height);
    }
}

#[test]
fn flat_clusters_are_numbered_as_scipy_numbers_them() {
    let z = ward_linkage(&points());
    let by_count = [
        (1, vec![1, 1, 1, 1, 1, 1, 1, 1, 1]),
        (2, vec![1, 2, 1, 1, 2, 2, 2, 2, 2]),
        (3, vec![1, 3, 1, 1, 2, 2, 3, 2, 3]),
        (4, vec![1, 4, 1, 2, 3, 3, 4, 3, 4]),
        (8, vec![1, 7, 2, 3, 4, 6, 7, 5, 8]),
    ];
    for (k, want) in by_count {
        assert_eq!(
            one_based(flat_clusters(&z, Cut::Count(k))),
            want,
            "maxclust {k}"
        );
    }
    let by_height = [
        (0.3, vec![1, 4, 1, 2, 3, 3, 4, 3, 5]),
        (0.8, vec![1, 4, 1, 2, 3, 3, 4, 3, 4]),
    ];
    for (t, want) in by_height {
        assert_eq!(
            one_based(flat_clusters(&z, Cut::Height(t))),
            want,
            "distance {t}"
        );
    }
}

fn config(v: serde_json::Value) -> Result<TokenPooling> {
    TokenPooling::from_json(&v, Path::new("4_HierarchicalTokenPooling/config.json"))
}

#[test]
fn pooling_keeps_protected_tokens_and_means_clusters() {
    let p = config(json!({"pool_factor": 2, "num_protected_tokens": 1,
                          "normalize_embeddings": false}))
    .unwrap();
    let pts = points();
    let out = p.pool(pts.clone());
    // 1 protected + floor(8 / 2) clusters of the other eight points.
    assert_eq!(out.len(), 5);
    assert_eq!(out[0], pts[0]);
    // The rest are scipy's four clusters of points 1..9, in its order.
    let labels = flat_clusters(&ward_linkage(&pts[1..]), Cut::Count(4));
    for (c, v) in out[1..].iter().enumerate() {
        let members: Vec<&Vec<f32>> = pts[1..]
            .iter()
            .zip(&labels)
            .filter(|(_, l)| **l == c)
            .map(|(p, _)| p)
            .collect();
        for d in 0..3 {
            let mean = members.iter().map(|m| m[d] as f64).sum::<f64>() / members.len() as f64;
            assert!((v[d] as f64 - mean).abs() < 1e-6);
        }
    }
    let normalized = config(json!({"pool_factor": 2, "normalize_embeddings": true}))
        .unwrap()
        .pool(pts.clone());
    for v in &normalized {
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }
    // Short documents and a factor of 1 pass through.
    let p1 = config(json!({})).unwrap();
    assert_eq!(p1.pool(pts.clone()), pts);
    assert_eq!(p.pool(pts[..2].to_vec()), pts[..2]);
    let capped = config(json!({"max_tokens": 3})).unwrap().pool(pts.clone());
    assert_eq!(capped.len(), 3);
}

#[test]
fn configs_are_checked_as_sentence_transformers_checks_them() {
    let c = config(json!({"pool_factor": 1.5, "tasks": ["query", "document"]})).unwrap();
    assert!(c.applies(true) && c.applies(false) && !c.normalize);
    assert!(!config(json!({})).unwrap().applies(true));
    for bad in [
        json!({"pool_factor": 0.5}),
        json!({"pool_factor": 2, "max_tokens": 4}),
        json!({"max_tokens": 1}),
        json!({"distance_threshold": -1.0}),
        json!({"tasks": 3}),
    ] {
        let e = config(bad.clone()).unwrap_err().to_string();
        assert!(
            e.contains("HierarchicalTokenPooling/config.json"),
            "{bad}: {e}"
        );
    }
}
