//! A folder's text and code files, split into chunks of whole lines: what the index embeds.
//! Binary files, files too large and unreadable ones are skipped with a note for the window.

use std::path::{Path, PathBuf};

/// Files larger than this are skipped (logs, dumps, generated data).
pub const MAX_FILE_BYTES: u64 = 2 << 20;
/// At most this many files are read from one folder.
pub const MAX_FILES: usize = 20_000;
/// A chunk holds at most this many lines...
pub const CHUNK_LINES: usize = 24;
/// ...and about this many characters (a longer single line is a chunk of its own).
pub const CHUNK_CHARS: usize = 1200;

/// Folders never indexed: version control, build outputs, dependencies.
const SKIP_DIRS: &[&str] = &["target", "node_modules", "__pycache__", "build", "dist"];

/// One piece of one file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Chunk {
    /// The file, relative to the folder.
    pub file: String,
    /// First and last line (1-based, inclusive).
    pub lines: [usize; 2],
    pub text: String,
}

/// A folder read into chunks.
#[derive(Debug, Default)]
pub struct Corpus {
    pub chunks: Vec<Chunk>,
    /// Files indexed.
    pub files: usize,
    /// What was left out, one line each ("binary file skipped: logo.png").
    pub skipped: Vec<String>,
}

/// Reads `folder`'s text files (recursively, in path order) into chunks. A folder that
/// cannot be read, or that holds no text at all, is an error in words for the window.
pub fn read_folder(folder: &Path) -> Result<Corpus, String> {
    if !folder.is_dir() {
        return Err(format!("{} is not a folder", folder.display()));
    }
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    walk(folder, &mut files, &mut skipped)?;
    files.sort();
    let mut corpus = Corpus {
        skipped,
        ..Default::default()
    };
    for path in files {
        let rel = path
            .strip_prefix(folder)
            .unwrap_or(&path)
            .to_string_lossy()
            .replace('\\', "/");
        match read_text(&path) {
            Ok(Some(text)) => {
                let chunks = chunk_text(&rel, &text);
                if !chunks.is_empty() {
                    corpus.files += 1;
                    corpus.chunks.extend(chunks);
                }
            }
            Ok(None) => corpus.skipped.push(format!("binary file skipped: {rel}")),
            Err(e) => corpus.skipped.push(format!("{rel}: {e}")),
        }
    }
    if corpus.chunks.is_empty() {
        return Err(format!(
            "{} holds no text files to index{}",
            folder.display(),
            if corpus.skipped.is_empty() {
                String::new()
            } else {
                format!(" ({} skipped)", corpus.skipped.len())
            }
        ));
    }
    Ok(corpus)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>, skipped: &mut Vec<String>) -> Result<(), String> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if d == dir => return Err(format!("cannot read {}: {e}", d.display())),
            Err(e) => {
                skipped.push(format!("{}: {e}", d.display()));
                continue;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if !SKIP_DIRS.contains(&name.as_str()) {
                    stack.push(path);
                }
            } else if kind.is_file() {
                if files.len() >= MAX_FILES {
                    skipped.push(format!("more than {MAX_FILES} files: the rest skipped"));
                    return Ok(());
                }
                match entry.metadata() {
                    Ok(m) if m.len() > MAX_FILE_BYTES => skipped.push(format!(
                        "{name}: {} KiB, larger than {} KiB, skipped",
                        m.len() >> 10,
                        MAX_FILE_BYTES >> 10
                    )),
                    _ => files.push(path),
                }
            }
        }
    }
    Ok(())
}

/// A file's text, or `None` for a binary file (a NUL byte, or not UTF-8).
fn read_text(path: &Path) -> std::io::Result<Option<String>> {
    let bytes = std::fs::read(path)?;
    if bytes.contains(&0) {
        return Ok(None);
    }
    Ok(String::from_utf8(bytes).ok())
}

/// Splits a file into chunks of whole lines (at most [`CHUNK_LINES`] lines and about
/// [`CHUNK_CHARS`] characters), breaking at blank lines where one is near. Blank chunks are
/// dropped.
pub fn chunk_text(file: &str, text: &str) -> Vec<Chunk> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut start = 0;
    while start < lines.len() {
        let mut end = start;
        let mut chars = 0;
        while end < lines.len() && end - start < CHUNK_LINES {
            let len = lines[end].chars().count() + 1;
            if end > start && chars + len > CHUNK_CHARS {
                break;
            }
            chars += len;
            end += 1;
        }
        // Prefer to end after a blank line in the chunk's second half.
        if end < lines.len()
            && let Some(blank) = (start + (end - start) / 2..end)
                .rev()
                .find(|&i| lines[i].trim().is_empty())
        {
            end = blank + 1;
        }
        let body = lines[start..end].join("\n");
        if !body.trim().is_empty() {
            out.push(Chunk {
                file: file.to_string(),
                lines: [start + 1, end],
                text: body,
            });
        }
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_line_once_and_keep_limits() {
        let text: String = (1..=100)
            .map(|i| {
                if i % 10 == 0 {
                    String::new()
                } else {
                    format!("line {i}")
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let chunks = chunk_text("a.txt", &text);
        assert!(chunks.len() >= 100 / CHUNK_LINES);
        let mut next = 1;
        for c in &chunks {
            assert_eq!(c.lines[0], next, "{c:?}");
            assert!(c.lines[1] - c.lines[0] < CHUNK_LINES);
            assert_eq!(c.text.split('\n').count(), c.lines[1] - c.lines[0] + 1);
            next = c.lines[1] + 1;
        }
        assert_eq!(next, text.lines().count() + 1);
        assert!(chunk_text("b.txt", "\n  \n\n").is_empty());
    }

    #[test]
    fn a_long_line_is_a_chunk_of_its_own() {
        let long = "x".repeat(CHUNK_CHARS * 2);
        let chunks = chunk_text("c.txt", &format!("short\n{long}\nshort"));
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[1].text, long);
    }

    #[test]
    fn binary_files_are_skipped_with_a_note_and_an_empty_folder_is_an_error() {
        let dir =
            std::env::temp_dir().join(format!("desktop-search-corpus-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("logo.png"), [0x89, b'P', b'N', b'G', 0, 1, 2]).unwrap();
        let err = read_folder(&dir).unwrap_err();
        assert!(
            err.contains("holds no text files") && err.contains("1 skipped"),
            "{err}"
        );
        std::fs::write(dir.join("sub/notes.txt"), "the cat\nthe dog\n").unwrap();
        let c = read_folder(&dir).unwrap();
        assert_eq!(c.files, 1);
        assert_eq!(c.chunks[0].file, "sub/notes.txt");
        assert_eq!(c.skipped, vec!["binary file skipped: logo.png".to_string()]);
        assert!(read_folder(&dir.join("missing")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
