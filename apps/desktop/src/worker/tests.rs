//! Ranking files by their best chunk.

use super::*;

fn chunk(file: &str) -> Chunk {
    Chunk {
        file: file.into(),
        lines: [1, 1],
        text: String::new(),
    }
}

#[test]
fn files_rank_by_their_best_chunk() {
    let chunks = [chunk("a"), chunk("a"), chunk("b"), chunk("c")];
    let vectors = vec![
        vec![1.0, 0.0],
        vec![0.0, 1.0],
        vec![0.6, 0.8],
        vec![-1.0, 0.0],
    ];
    let hits = rank(&chunks, &vectors, &[0.0, 1.0], 10);
    let order: Vec<(&str, usize)> = hits.iter().map(|h| (h.file.as_str(), h.chunk)).collect();
    assert_eq!(order, [("a", 1), ("b", 2), ("c", 3)]);
    assert_eq!(hits[1].score, 0.8);
    assert_eq!(rank(&chunks, &vectors, &[0.0, 1.0], 1).len(), 1);
}
