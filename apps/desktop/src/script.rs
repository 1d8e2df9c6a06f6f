//! The scripted mode (`--script FILE`): what a person would do, one step a line, played
//! against the live window so that tests drive the real app under a real X server.
//!
//! ```text
//! # comments and blank lines are ignored
//! folder tests/fixtures/desktop_docs   # type a folder and press Index
//! wait indexed                         # until indexing ends (an error fails the script)
//! query the cat sleeps by the river    # type a query and press Search
//! wait results                         # until its results are shown
//! tab fill-mask                        # switch tabs (search | fill-mask)
//! mask the cat [MASK] on the tree      # type a masked text and press Fill
//! wait masks                           # until its predictions are shown
//! screenshot target/shot.png           # save the window as PNG
//! exit                                 # print the JSON report and close
//! ```

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Folder(String),
    WaitIndexed,
    Query(String),
    WaitResults,
    Tab(crate::app::Tab),
    Mask(String),
    WaitMasks,
    Screenshot(String),
    Exit,
}

/// Parses a script; errors name the line.
pub fn parse(text: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim();
        let need = |what: &str| -> Result<String, String> {
            if rest.is_empty() {
                Err(format!("script line {}: '{word}' needs {what}", n + 1))
            } else {
                Ok(rest.to_string())
            }
        };
        let step = match (word, rest) {
            ("folder", _) => Step::Folder(need("a folder")?),
            ("query", _) => Step::Query(need("a query")?),
            ("mask", _) => Step::Mask(need("a text with [MASK]")?),
            ("screenshot", _) => Step::Screenshot(need("a PNG path")?),
            ("wait", "indexed") => Step::WaitIndexed,
            ("wait", "results") => Step::WaitResults,
            ("wait", "masks") => Step::WaitMasks,
            ("tab", "search") => Step::Tab(crate::app::Tab::Search),
            ("tab", "fill-mask") => Step::Tab(crate::app::Tab::FillMask),
            ("exit", "") => Step::Exit,
            _ => return Err(format!("script line {}: cannot read '{line}'", n + 1)),
        };
        steps.push(step);
    }
    if steps.last() != Some(&Step::Exit) {
        steps.push(Step::Exit);
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_step_and_ends_with_exit() {
        let s = parse("# a test\nfolder docs dir\n\nwait indexed\nquery the cat\nwait results\ntab fill-mask\nmask a [MASK]\nwait masks\nscreenshot out.png\n").unwrap();
        assert_eq!(
            s,
            [
                Step::Folder("docs dir".into()),
                Step::WaitIndexed,
                Step::Query("the cat".into()),
                Step::WaitResults,
                Step::Tab(crate::app::Tab::FillMask),
                Step::Mask("a [MASK]".into()),
                Step::WaitMasks,
                Step::Screenshot("out.png".into()),
                Step::Exit,
            ]
        );
        assert!(parse("wait forever").unwrap_err().contains("line 1"));
        assert!(parse("\nquery").unwrap_err().contains("line 2"));
    }
}
