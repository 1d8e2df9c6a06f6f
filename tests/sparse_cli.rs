//! Sparse (SPLADE) models in the command line and the server: `wgbert embed` as JSONL and
//! as CSR matrices (npz as scipy writes it, safetensors), `--top-k-terms`, `wgbert rerank`
//! by sparse dot product, and `POST /embed_sparse` in TEI's format, which equals the CLI and
//! is a 424 naming the model's kind on any other model (TEI's Backend error).

mod common;
mod serve_util;

use std::io::Read;

use common::model_dir::{expected, floats, uints, wgbert};
use serde_json::{Value, json};
use serve_util::{Server, cli_lines};

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn embed_writes_sparse_jsonl_that_matches_sentence_transformers() {
    let (dir, exp) = expected("splade_max");
    let texts = strings(&exp["texts"]);
    for (c, flags) in [(0, vec![]), (1, vec!["--prompt-name", "query"])] {
        let mut args = vec!["--dtype", "f32", "embed"];
        args.extend(flags.iter().copied());
        args.extend(texts.iter().map(String::as_str));
        let lines = cli_lines(&dir, &args);
        assert_eq!(lines.len(), texts.len());
        for (i, line) in lines.iter().enumerate() {
            let want = &exp["cases"][c]["vectors"][i];
            assert_eq!(line["index"], i);
            assert!(line["n_tokens"].as_u64().unwrap() >= 2);
            assert_eq!(
                uints(&line["indices"]),
                uints(&want["indices"]),
                "case {c} text {i}"
            );
            let got: Vec<f32> = floats(&line["values"]).iter().map(|&v| v as f32).collect();
            common::assert_close(
                &format!("case {c} text {i}"),
                &got,
                &floats(&want["values"]),
                1e-4,
                0.0,
            );
        }
    }
    // --top-k-terms as max_active_dims; --terms decodes the indices.
    let lines = cli_lines(
        &dir,
        &[
            "--dtype",
            "f32",
            "embed",
            "--top-k-terms",
            "5",
            "--terms",
            &texts[1],
        ],
    );
    let want = &exp["cases"][3]["vectors"][1];
    assert_eq!(uints(&lines[0]["indices"]), uints(&want["indices"]));
    let terms = strings(&lines[0]["terms"]);
    assert_eq!(terms.len(), 5);
    let tok: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer.json")).unwrap())
            .unwrap();
    for (t, id) in terms.iter().zip(uints(&want["indices"])) {
        assert_eq!(tok["model"]["vocab"][t.as_str()], id, "term {t}");
    }
}

/// A little-endian array of `n` values of `size` bytes at `data[at..]`.
fn le_words(data: &[u8], size: usize) -> Vec<u64> {
    data.chunks_exact(size)
        .map(|c| {
            let mut b = [0u8; 8];
            b[..size].copy_from_slice(c);
            u64::from_le_bytes(b)
        })
        .collect()
}

/// The entries of a stored zip, by its central directory, each checked against its CRC.
fn zip_entries(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = data
        .windows(4)
        .position(|w| w == [0x50, 0x4b, 0x01, 0x02])
        .expect("a central directory");
    while data[at..at + 4] == [0x50, 0x4b, 0x01, 0x02] {
        let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]) as usize;
        let name_len = u16_at(at + 28);
        let extra_len = u16_at(at + 30);
        let comment_len = u16_at(at + 32);
        let name = String::from_utf8(data[at + 46..at + 46 + name_len].to_vec()).unwrap();
        let extra = &data[at + 46 + name_len..at + 46 + name_len + extra_len];
        // zip64 extra: id 1, size 24: sizes and offset.
        assert_eq!(&extra[..4], &[1, 0, 24, 0]);
        let size = le_words(&extra[4..12], 8)[0] as usize;
        let offset = le_words(&extra[20..28], 8)[0] as usize;
        let crc = u32::from_le_bytes(data[at + 16..at + 20].try_into().unwrap());
        let local_name = u16_at(offset + 26);
        let local_extra = u16_at(offset + 28);
        let start = offset + 30 + local_name + local_extra;
        let body = data[start..start + size].to_vec();
        let mut c = !0u32;
        for &b in &body {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0xEDB8_8320
                } else {
                    c >> 1
                };
            }
        }
        assert_eq!(!c, crc, "{name}: crc");
        out.push((name, body));
        at += 46 + name_len + extra_len + comment_len;
    }
    out
}

/// An npy body: its header dict and data.
fn npy(body: &[u8]) -> (String, &[u8]) {
    assert_eq!(&body[..8], b"\x93NUMPY\x01\x00");
    let len = u16::from_le_bytes([body[8], body[9]]) as usize;
    assert_eq!((10 + len) % 64, 0, "aligned");
    (
        String::from_utf8_lossy(&body[10..10 + len]).to_string(),
        &body[10 + len..],
    )
}

#[test]
fn embed_writes_csr_matrices() {
    let (dir, exp) = expected("splade_sum");
    let texts = strings(&exp["texts"]);
    let want = exp["cases"][0]["vectors"].as_array().unwrap();
    let mut indptr = vec![0u64];
    let mut indices = Vec::new();
    let mut values = Vec::new();
    for v in want {
        indices.extend(uints(&v["indices"]));
        values.extend(floats(&v["values"]));
        indptr.push(indices.len() as u64);
    }
    let vocab = 81;
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("texts.txt");
    std::fs::write(&input, texts.join("\n") + "\n").unwrap();

    let npz = tmp.path().join("v.npz");
    wgbert(&dir)
        .args(["--dtype", "f32", "embed", "--format", "npz", "--chunk", "4"])
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&npz)
        .assert()
        .success();
    let data = std::fs::read(&npz).unwrap();
    let entries = zip_entries(&data);
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "indices.npy",
            "indptr.npy",
            "format.npy",
            "shape.npy",
            "data.npy"
        ]
    );
    let get = |name: &str| &entries.iter().find(|e| e.0 == name).unwrap().1;
    let (h, d) = npy(get("indptr.npy"));
    assert!(
        h.contains("'<i8'") && h.contains(&format!("({},)", texts.len() + 1)),
        "{h}"
    );
    assert_eq!(le_words(d, 8), indptr);
    let (h, d) = npy(get("indices.npy"));
    assert!(h.contains("'<i4'"), "{h}");
    assert_eq!(le_words(d, 4), indices);
    let (h, d) = npy(get("format.npy"));
    assert!(h.contains("'|S3'") && h.contains("()"), "{h}");
    assert_eq!(d, b"csr");
    let (_, d) = npy(get("shape.npy"));
    assert_eq!(le_words(d, 8), [texts.len() as u64, vocab]);
    let (h, d) = npy(get("data.npy"));
    assert!(h.contains("'<f4'"), "{h}");
    let got: Vec<f32> = d
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    common::assert_close("npz data", &got, &values, 1e-4, 0.0);

    let st = tmp.path().join("v.safetensors");
    wgbert(&dir)
        .args([
            "--dtype",
            "f32",
            "embed",
            "--format",
            "safetensors",
            "--top-k-terms",
            "5",
        ])
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&st)
        .assert()
        .success();
    let mut bytes = Vec::new();
    std::fs::File::open(&st)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let m = meta.metadata().as_ref().unwrap();
    assert_eq!(m["format"], "csr");
    assert_eq!(m["shape"], format!("[{}, {vocab}]", texts.len()));
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let ptr = le_words(file.tensor("indptr").unwrap().data(), 8);
    let idx = le_words(file.tensor("indices").unwrap().data(), 4);
    assert_eq!(ptr.len(), texts.len() + 1);
    let top5 = &exp["cases"][3]["vectors"];
    for i in 0..texts.len() {
        let row = &idx[ptr[i] as usize..ptr[i + 1] as usize];
        assert_eq!(row, uints(&top5[i]["indices"]).as_slice(), "text {i}");
    }
    assert_eq!(file.tensor("values").unwrap().data().len(), idx.len() * 4);

    // npy needs a dense matrix; npz is for sparse models only.
    common::model_dir::fails(
        &dir,
        &["embed", "--format", "npy", "--output", "x.npy", "a"],
        &["npz"],
    );
}

#[test]
fn rerank_ranks_by_sparse_dot_product() {
    let (dir, exp) = expected("splade_max");
    let rr = &exp["rerank"];
    let docs = strings(&rr["documents"]);
    let mut args = vec![
        "--dtype",
        "f32",
        "rerank",
        "--json",
        "--query",
        rr["query"].as_str().unwrap(),
    ];
    args.extend(docs.iter().map(String::as_str));
    let lines = cli_lines(&dir, &args);
    let want = floats(&rr["scores"]);
    assert_eq!(lines.len(), docs.len());
    for pair in lines.windows(2) {
        assert!(pair[0]["score"].as_f64() >= pair[1]["score"].as_f64());
    }
    for l in &lines {
        let i = l["index"].as_u64().unwrap() as usize;
        let s = l["score"].as_f64().unwrap();
        assert!(
            (s - want[i]).abs() <= 1e-4 * (1.0 + want[i].abs()),
            "doc {i}: {s} want {}",
            want[i]
        );
    }
}

#[test]
fn embed_sparse_serves_tei_format_equal_to_the_cli() {
    let (dir, exp) = expected("splade_max");
    let texts = strings(&exp["texts"]);
    let s = Server::start(&dir, &["--dtype", "f32"], &[]);
    let body = json!({ "inputs": texts, "prompt_name": "query" });
    let got = s.ok("/embed_sparse", &body);
    let mut args = vec!["--dtype", "f32", "embed", "--prompt-name", "query"];
    args.extend(texts.iter().map(String::as_str));
    let cli = cli_lines(&dir, &args);
    let got = got.as_array().unwrap();
    assert_eq!(got.len(), cli.len());
    for (i, (g, c)) in got.iter().zip(&cli).enumerate() {
        let terms = g.as_array().unwrap();
        let idx: Vec<u64> = terms.iter().map(|t| t["index"].as_u64().unwrap()).collect();
        // The same f32 values (JSON writes them with fewer digits than the CLI's f64 form).
        let val: Vec<f32> = terms
            .iter()
            .map(|t| t["value"].as_f64().unwrap() as f32)
            .collect();
        let cli_val: Vec<f32> = floats(&c["values"]).iter().map(|&v| v as f32).collect();
        assert_eq!(idx, uints(&c["indices"]), "text {i}");
        assert_eq!(val, cli_val, "text {i}");
        for t in terms {
            assert_eq!(t.as_object().unwrap().len(), 2, "{{index, value}}: {t}");
        }
    }
    // One text; and POST / serves the model's kind.
    let one = s.ok("/embed_sparse", &json!({ "inputs": texts[0] }));
    assert_eq!(one.as_array().unwrap().len(), 1);
    assert_eq!(s.ok("/", &json!({ "inputs": texts[0] })), one);
    // Token ids (as /tokenize gives them) are the same input.
    let toks = s.ok("/tokenize", &json!({ "inputs": texts[0] }));
    let ids: Vec<u64> = toks[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect();
    assert_eq!(s.ok("/embed_sparse", &json!({ "inputs": [ids] })), one);
    let info: Value = serde_json::from_str(&s.get("/info").1).unwrap();
    assert!(info.to_string().contains("splade"), "{info}");
    // A dense embedding of a sparse model is refused, naming why.
    let m = s.fails("/embed", &json!({ "inputs": "fish" }), 424);
    assert!(m.contains("sparse"), "{m}");
    assert!(s.terminate().success());

    let (dense, _) = expected("st_mean_dense");
    let s = Server::start(&dense, &["--dtype", "f32"], &[]);
    let m = s.fails("/embed_sparse", &json!({ "inputs": "fish" }), 424);
    assert!(
        m.contains("/embed_sparse") && m.contains("embeddings"),
        "{m}"
    );
    assert!(s.terminate().success());
}
