//! Where texts come from: arguments, `--input FILE` (`.jsonl`: one object per line with a
//! `text` field, other fields carried along; any other file: one text per line), or stdin
//! (one text per line). Texts are yielded lazily so big files stream with bounded memory.

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// One input text and, for JSONL input, the other fields of its object.
#[derive(Debug, Clone)]
pub struct TextItem {
    pub text: String,
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A lazy source of texts.
pub struct Texts {
    inner: Box<dyn Iterator<Item = Result<TextItem>>>,
}

impl Iterator for Texts {
    type Item = Result<TextItem>;
    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next()
    }
}

impl Texts {
    /// Arguments win; else `--input`; else stdin (refused when it is a terminal).
    pub fn open(args: &[String], input: Option<&Path>) -> Result<Texts> {
        if !args.is_empty() && input.is_some() {
            bail!("give texts either as arguments or with --input, not both");
        }
        if !args.is_empty() {
            let items: Vec<Result<TextItem>> = args
                .iter()
                .map(|t| {
                    Ok(TextItem {
                        text: t.clone(),
                        extra: Default::default(),
                    })
                })
                .collect();
            return Ok(Texts {
                inner: Box::new(items.into_iter()),
            });
        }
        match input {
            Some(path) => {
                let file = File::open(path)
                    .with_context(|| format!("cannot open input file {}", path.display()))?;
                let jsonl = path.extension().is_some_and(|e| e == "jsonl");
                Ok(Texts {
                    inner: Box::new(lines(
                        Box::new(BufReader::new(file)),
                        path.to_path_buf(),
                        jsonl,
                    )),
                })
            }
            None => {
                let stdin = std::io::stdin();
                if stdin.is_terminal() {
                    bail!(
                        "no texts: pass them as arguments, with --input FILE, or on stdin (one per line)"
                    );
                }
                Ok(Texts {
                    inner: Box::new(lines(
                        Box::new(stdin.lock()),
                        PathBuf::from("<stdin>"),
                        false,
                    )),
                })
            }
        }
    }
}

fn lines(
    reader: Box<dyn BufRead>,
    path: PathBuf,
    jsonl: bool,
) -> impl Iterator<Item = Result<TextItem>> {
    let mut reader = reader;
    let mut lineno = 0usize;
    std::iter::from_fn(move || {
        loop {
            let mut buf = Vec::new();
            lineno += 1;
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => {
                    return Some(Err(anyhow::anyhow!(
                        "{}: line {lineno}: {e}",
                        path.display()
                    )));
                }
            }
            while buf.last().is_some_and(|&c| c == b'\n' || c == b'\r') {
                buf.pop();
            }
            let line = match String::from_utf8(buf) {
                Ok(s) => s,
                Err(e) => {
                    return Some(Err(anyhow::anyhow!(
                        "{}: line {lineno} is not valid UTF-8 (byte {})",
                        path.display(),
                        e.utf8_error().valid_up_to()
                    )));
                }
            };
            if jsonl {
                if line.trim().is_empty() {
                    continue;
                }
                return Some(parse_jsonl(&line, &path, lineno));
            }
            return Some(Ok(TextItem {
                text: line,
                extra: Default::default(),
            }));
        }
    })
}

fn parse_jsonl(line: &str, path: &Path, lineno: usize) -> Result<TextItem> {
    let value: serde_json::Value = serde_json::from_str(line)
        .with_context(|| format!("{}: line {lineno} is not a JSON object", path.display()))?;
    let serde_json::Value::Object(mut map) = value else {
        bail!("{}: line {lineno} is not a JSON object", path.display());
    };
    match map.remove("text") {
        Some(serde_json::Value::String(text)) => Ok(TextItem { text, extra: map }),
        Some(_) => bail!(
            "{}: line {lineno}: \"text\" is not a string",
            path.display()
        ),
        None => bail!("{}: line {lineno} has no \"text\" field", path.display()),
    }
}
