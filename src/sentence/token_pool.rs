//! sentence-transformers 6's `HierarchicalTokenPooling`: a multi-vector model's document
//! vectors clustered with Ward linkage on cosine distances and each cluster replaced by its
//! mean, so that an index holds fewer vectors per document.
//!
//! Per document (the vectors the model keeps, after its mask): the first
//! `num_protected_tokens` stay as they are; the rest are clustered into
//! `floor(n / pool_factor)` groups (at least one, at most n), into `max_tokens - protected`
//! groups, or by cutting the tree at `distance_threshold`. Distances are `1 - cos` clamped to
//! [0, 2] (float32, as torch computes them); the tree is scipy's `linkage(method="ward")`
//! (the nearest-neighbour chain, merges sorted by height, clusters renumbered) and the groups
//! are scipy's `fcluster` (`maxclust` or `distance`), numbered in the tree's depth-first
//! order, which is the order of the pooled vectors. With `normalize_embeddings` every output
//! vector is L2-normalized. Only the tasks named in `tasks` are pooled (documents by default).

use std::path::Path;

use serde_json::Value;

use super::layout_err;
use crate::Result;

/// A `HierarchicalTokenPooling` module's settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TokenPooling {
    /// Keep about `1 / pool_factor` of the tokens (1: no clustering).
    pub pool_factor: f64,
    /// At most this many output vectors, protected ones included.
    pub max_tokens: Option<usize>,
    /// Cut the tree at this height instead.
    pub distance_threshold: Option<f64>,
    /// Leading vectors left out of the clustering (`[CLS]`).
    pub num_protected_tokens: usize,
    /// L2-normalize every output vector.
    pub normalize: bool,
    /// Whether queries and documents are pooled.
    pub queries: bool,
    pub documents: bool,
    /// Whether a Normalize module comes before this one (else one may come after it).
    pub normalized_input: bool,
}

impl TokenPooling {
    /// Parses the module's `config.json`, with the defaults sentence-transformers loads a
    /// saved module with (`normalize_embeddings` false when absent) and its checks.
    pub fn from_json(v: &Value, path: &Path) -> Result<Self> {
        let err = |m: String| layout_err(path, m);
        let number = |key: &str| -> Result<Option<f64>> {
            match v.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(x) => x
                    .as_f64()
                    .filter(|f| f.is_finite())
                    .map(Some)
                    .ok_or_else(|| err(format!("{key} must be a finite number, got {x}"))),
            }
        };
        let count = |key: &str| -> Result<Option<usize>> {
            match v.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(x) => x
                    .as_u64()
                    .map(|n| Some(n as usize))
                    .ok_or_else(|| err(format!("{key} must be a whole number >= 0, got {x}"))),
            }
        };
        let pool_factor = number("pool_factor")?.unwrap_or(1.0);
        if pool_factor < 1.0 {
            return Err(err(format!("pool_factor must be >= 1, got {pool_factor}")));
        }
        let max_tokens = count("max_tokens")?;
        let distance_threshold = number("distance_threshold")?;
        let num_protected_tokens = count("num_protected_tokens")?.unwrap_or(1);
        if distance_threshold.is_some_and(|t| t < 0.0) {
            return Err(err("distance_threshold must be >= 0".into()));
        }
        let exclusive = [
            pool_factor != 1.0,
            max_tokens.is_some(),
            distance_threshold.is_some(),
        ];
        if exclusive.iter().filter(|&&b| b).count() > 1 {
            return Err(err(
                "distance_threshold, max_tokens and a pool_factor other than 1 are mutually exclusive"
                    .into(),
            ));
        }
        if max_tokens.is_some_and(|m| m <= num_protected_tokens) {
            return Err(err(format!(
                "max_tokens must exceed num_protected_tokens ({num_protected_tokens})"
            )));
        }
        let normalize = match v.get("normalize_embeddings") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(x) => {
                return Err(err(format!(
                    "normalize_embeddings must be true or false, got {x}"
                )));
            }
        };
        let tasks: Vec<String> = match v.get("tasks") {
            None | Some(Value::Null) => vec!["document".into()],
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .map(|t| {
                    t.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| err(format!("tasks holds a non-string {t}")))
                })
                .collect::<Result<_>>()?,
            Some(x) => return Err(err(format!("tasks must be a list of names, got {x}"))),
        };
        Ok(TokenPooling {
            pool_factor,
            max_tokens,
            distance_threshold,
            num_protected_tokens,
            normalize,
            queries: tasks.iter().any(|t| t == "query"),
            documents: tasks.iter().any(|t| t == "document"),
            normalized_input: true,
        })
    }

    /// Whether the vectors of a query (`query: true`) or a document are pooled.
    pub fn applies(&self, query: bool) -> bool {
        if query { self.queries } else { self.documents }
    }

    /// Pools one document's vectors (see the module's documentation).
    pub fn pool(&self, vectors: Vec<Vec<f32>>) -> Vec<Vec<f32>> {
        let mut out = self.cluster(vectors);
        if self.normalize {
            out.iter_mut().for_each(|v| crate::vector::l2_normalize(v));
        }
        out
    }

    fn cluster(&self, mut vectors: Vec<Vec<f32>>) -> Vec<Vec<f32>> {
        let clustering = self.pool_factor > 1.0
            || self.max_tokens.is_some()
            || self.distance_threshold.is_some();
        let protected = self.num_protected_tokens.min(vectors.len());
        let n = vectors.len() - protected;
        if !clustering || n <= 1 {
            return vectors;
        }
        let target = match self.max_tokens {
            Some(m) => m.saturating_sub(protected),
            None => (n as f64 / self.pool_factor).floor() as usize,
        }
        .clamp(1, n);
        let rest = vectors.split_off(protected);
        if self.distance_threshold.is_none() && target >= n {
            vectors.extend(rest);
            return vectors;
        }
        let labels = match self.distance_threshold {
            Some(t) => flat_clusters(&ward_linkage(&rest), Cut::Height(t)),
            None if target == 1 => vec![0; n],
            None => flat_clusters(&ward_linkage(&rest), Cut::Count(target)),
        };
        let k = labels.iter().max().map_or(0, |m| m + 1);
        let dim = rest[0].len();
        let mut sums = vec![vec![0f64; dim]; k];
        let mut sizes = vec![0usize; k];
        for (v, &l) in rest.iter().zip(&labels) {
            sizes[l] += 1;
            sums[l].iter_mut().zip(v).for_each(|(s, &x)| *s += x as f64);
        }
        vectors.extend(sums.into_iter().zip(sizes).map(|(s, c)| {
            s.into_iter()
                .map(|x| (x / c.max(1) as f64) as f32)
                .collect()
        }));
        vectors
    }
}

/// One merge of a linkage tree: the two clusters joined (ids below n are points, n + i the
/// cluster of merge i) and the height.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Merge {
    a: usize,
    b: usize,
    height: f64,
}

fn condensed(n: usize, i: usize, j: usize) -> usize {
    let (i, j) = if i < j { (i, j) } else { (j, i) };
    n * i - i * (i + 1) / 2 + (j - i - 1)
}

/// Ward linkage on `1 - cos` distances of unit vectors, as scipy computes it: the
/// nearest-neighbour chain with the Lance-Williams update, merges sorted by height (stable),
/// then relabelled in that order.
fn ward_linkage(vectors: &[Vec<f32>]) -> Vec<Merge> {
    let n = vectors.len();
    let mut d = vec![0f64; n * (n - 1) / 2];
    for i in 0..n {
        for j in i + 1..n {
            let dot: f64 = vectors[i]
                .iter()
                .zip(&vectors[j])
                .map(|(&x, &y)| x as f64 * y as f64)
                .sum();
            // torch computes the distance matrix in float32.
            d[condensed(n, i, j)] = (1.0f32 - dot as f32).clamp(0.0, 2.0) as f64;
        }
    }
    let mut size = vec![1usize; n];
    let mut chain: Vec<usize> = Vec::with_capacity(n);
    let mut merges = Vec::with_capacity(n - 1);
    for _ in 0..n - 1 {
        if chain.is_empty() {
            chain.extend((0..n).find(|&i| size[i] > 0));
        }
        let (x, y, height) = loop {
            let x = chain[chain.len() - 1];
            let prev = chain.len().checked_sub(2).map(|p| chain[p]);
            let (mut y, mut best) = match prev {
                Some(p) => (p, d[condensed(n, x, p)]),
                None => (x, f64::INFINITY),
            };
            for i in (0..n).filter(|&i| size[i] > 0 && i != x) {
                if d[condensed(n, x, i)] < best {
                    best = d[condensed(n, x, i)];
                    y = i;
                }
            }
            if prev == Some(y) {
                break (x, y, best);
            }
            chain.push(y);
        };
        chain.truncate(chain.len() - 2);
        let (x, y) = (x.min(y), x.max(y));
        let (nx, ny) = (size[x] as f64, size[y] as f64);
        merges.push(Merge { a: x, b: y, height });
        size[y] += size[x];
        size[x] = 0;
        for i in (0..n).filter(|&i| size[i] > 0 && i != y) {
            let ni = size[i] as f64;
            let t = 1.0 / (nx + ny + ni);
            let (dxi, dyi) = (d[condensed(n, i, x)], d[condensed(n, i, y)]);
            let v =
                (ni + nx) * t * dxi * dxi + (ni + ny) * t * dyi * dyi - ni * t * height * height;
            d[condensed(n, i, y)] = v.sqrt();
        }
    }
    merges.sort_by(|p, q| p.height.total_cmp(&q.height));
    // Union-find relabelling: merge i forms cluster n + i.
    let mut parent: Vec<usize> = (0..2 * n - 1).collect();
    let find = |parent: &mut Vec<usize>, mut x: usize| {
        while parent[x] != x {
            x = parent[x];
        }
        x
    };
    for (i, m) in merges.iter_mut().enumerate() {
        let (ra, rb) = (find(&mut parent, m.a), find(&mut parent, m.b));
        (m.a, m.b) = (ra.min(rb), ra.max(rb));
        parent[ra] = n + i;
        parent[rb] = n + i;
    }
    merges
}

enum Cut {
    /// At most this many clusters (scipy's `maxclust`).
    Count(usize),
    /// Clusters whose tree height is at most this (scipy's `distance`).
    Height(f64),
}

/// scipy's `fcluster`: a zero-based cluster number per point, numbered in the depth-first
/// order of the tree.
fn flat_clusters(merges: &[Merge], cut: Cut) -> Vec<usize> {
    let n = merges.len() + 1;
    // The tallest merge under each node (monotone for Ward, as scipy's max_dists).
    let mut tallest = vec![0f64; n - 1];
    for (i, m) in merges.iter().enumerate() {
        let under = |c: usize| {
            if c >= n {
                tallest[c - n]
            } else {
                f64::NEG_INFINITY
            }
        };
        tallest[i] = m.height.max(under(m.a)).max(under(m.b));
    }
    let cutoff = match cut {
        Cut::Height(h) => h,
        Cut::Count(k) if k >= n => return (0..n).collect(),
        Cut::Count(k) => {
            // The lowest of the heights at which at most k clusters form (scipy searches the
            // same list the same way; the count falls as the cutoff rises).
            let (mut lo, mut hi) = (-1isize, n as isize - 1);
            while hi - lo > 1 {
                let mid = (lo + hi) / 2;
                if count_clusters(merges, &tallest, tallest[mid as usize]) > k {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            tallest[hi as usize]
        }
    };
    // scipy's cluster_monocrit, step for step: a node's internal children are visited
    // (left, then right) before its leaf children are numbered, so the numbering is not a
    // plain depth-first order.
    let mut labels = vec![0usize; n];
    let mut count = 0usize;
    let mut leader: Option<usize> = None;
    let mut visited = vec![false; 2 * n - 1];
    let mut stack = vec![2 * n - 2];
    while let Some(&node) = stack.last() {
        let m = merges[node - n];
        if leader.is_none() && tallest[node - n] <= cutoff {
            leader = Some(node);
            count += 1;
        }
        if let Some(child) = [m.a, m.b].into_iter().find(|&c| c >= n && !visited[c]) {
            visited[child] = true;
            stack.push(child);
            continue;
        }
        for leaf in [m.a, m.b].into_iter().filter(|&c| c < n) {
            if leader.is_none() {
                count += 1;
            }
            labels[leaf] = count - 1;
        }
        if leader == Some(node) {
            leader = None;
        }
        stack.pop();
    }
    labels
}

fn count_clusters(merges: &[Merge], tallest: &[f64], cutoff: f64) -> usize {
    let n = merges.len() + 1;
    let mut count = 0;
    let mut stack = vec![2 * n - 2];
    while let Some(node) = stack.pop() {
        if node < n || tallest[node - n] <= cutoff {
            count += 1;
            continue;
        }
        let m = merges[node - n];
        stack.push(m.b);
        stack.push(m.a);
    }
    count
}

#[cfg(test)]
mod tests;
