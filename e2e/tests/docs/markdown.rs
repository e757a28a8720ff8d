//! What the docs check reads from a Markdown file: its headings (as GitHub
//! makes their anchors), its links and its inline code spans. Text inside
//! fenced code blocks is neither a link nor a code reference: it holds shell
//! sessions and examples.

/// A piece of a Markdown file and the line it starts on (1-based).
#[derive(Debug, Clone, PartialEq)]
pub struct At<T> {
    pub line: usize,
    pub item: T,
}

/// The parts of one Markdown file the check looks at.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The anchors of its headings, as GitHub makes them.
    pub anchors: Vec<String>,
    /// Link targets, as written (`docs/x.md#y`, `#y`, `https://...`).
    pub links: Vec<At<String>>,
    /// The text of every inline code span.
    pub code: Vec<At<String>>,
}

pub fn parse(text: &str) -> Parsed {
    let prose = blank_fences(text);
    let mut parsed = Parsed::default();
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for line in prose.lines() {
        if let Some(heading) = heading(line) {
            let slug = slug(&heading);
            let n = seen.entry(slug.clone()).or_insert(0);
            parsed.anchors.push(if *n == 0 {
                slug.clone()
            } else {
                format!("{slug}-{n}")
            });
            *n += 1;
        }
    }
    let (without_code, code) = code_spans(&prose);
    parsed.code = code;
    parsed.links = links(&without_code);
    parsed
}

/// The text with every line of a fenced code block made empty, so offsets
/// and line numbers stay those of the file.
fn blank_fences(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut fence: Option<String> = None;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let marker: String = trimmed.chars().take_while(|&c| c == '`' || c == '~').collect();
        let opens = marker.len() >= 3 && marker.chars().all(|c| c == marker.chars().next().unwrap());
        match &fence {
            None if opens => fence = Some(marker),
            Some(open) if opens && marker.starts_with(open.as_str()) && trimmed.trim() == marker => {
                fence = None
            }
            None => {
                out.push_str(line);
                continue;
            }
            Some(_) => {}
        }
        out.push_str(if line.ends_with('\n') { "\n" } else { "" });
    }
    out
}

/// An ATX heading's text (`## Two commands` gives `Two commands`).
fn heading(line: &str) -> Option<String> {
    let hashes = line.chars().take_while(|&c| c == '#').count();
    if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
        return None;
    }
    Some(line[hashes..].trim().trim_end_matches('#').trim().to_owned())
}

/// GitHub's anchor for a heading: the rendered text lower-cased, every
/// character but letters, digits, `_`, `-` and spaces dropped, spaces made
/// `-`. Inline code and emphasis marks go; a link keeps its text.
pub fn slug(heading: &str) -> String {
    let mut text = String::new();
    let mut rest = heading;
    while let Some(open) = rest.find('[') {
        match rest[open..]
            .find("](")
            .and_then(|mid| rest[open + mid..].find(')').map(|end| (mid, end)))
        {
            Some((mid, end)) => {
                text.push_str(&rest[..open]);
                text.push_str(&rest[open + 1..open + mid]);
                rest = &rest[open + mid + end + 1..];
            }
            None => break,
        }
    }
    text.push_str(rest);
    text.to_lowercase()
        .chars()
        .filter(|&c| c.is_alphanumeric() || c == '_' || c == '-' || c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The inline code spans (a run of backticks to the next run as long), and
/// the text with each span blanked, so a link inside code is no link.
fn code_spans(text: &str) -> (String, Vec<At<String>>) {
    let bytes = text.as_bytes();
    let mut blanked = text.to_owned().into_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'`' {
            i += 1;
            continue;
        }
        let run = bytes[i..].iter().take_while(|&&b| b == b'`').count();
        let start = i + run;
        let close = find_run(&bytes[start..], run).map(|at| start + at);
        match close {
            // A span does not cross a blank line (a new paragraph).
            Some(end) if !text[start..end].contains("\n\n") => {
                let inner = text[start..end].replace('\n', " ");
                spans.push(At {
                    line: line_of(text, i),
                    item: inner.trim().to_owned(),
                });
                for b in &mut blanked[i..end + run] {
                    if *b != b'\n' {
                        *b = b' ';
                    }
                }
                i = end + run;
            }
            _ => i = start,
        }
    }
    (String::from_utf8(blanked).expect("blanked ASCII only"), spans)
}

fn find_run(bytes: &[u8], run: usize) -> Option<usize> {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'`' {
            let n = bytes[i..].iter().take_while(|&&b| b == b'`').count();
            if n == run {
                return Some(i);
            }
            i += n;
        } else {
            i += 1;
        }
    }
    None
}

/// Link and image targets: what follows `](` up to its `)`, and the
/// target of a reference definition (`[label]: target`).
fn links(text: &str) -> Vec<At<String>> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find("](") {
        let start = from + at + 2;
        let mut depth = 0;
        let mut end = None;
        for (k, c) in text[start..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' if depth == 0 => {
                    end = Some(start + k);
                    break;
                }
                ')' => depth -= 1,
                '\n' => break,
                _ => {}
            }
        }
        if let Some(end) = end {
            let target = text[start..end].split_whitespace().next().unwrap_or("");
            out.push(At {
                line: line_of(text, start),
                item: target.trim_matches(|c| c == '<' || c == '>').to_owned(),
            });
        }
        from = start;
    }
    // Reference definitions: `[label]: target`.
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed
            .strip_prefix('[')
            .filter(|_| line.len() - trimmed.len() <= 3)
        {
            if let Some((_, target)) = rest.split_once("]:") {
                if let Some(target) = target.split_whitespace().next() {
                    out.push(At {
                        line: n + 1,
                        item: target.trim_matches(|c| c == '<' || c == '>').to_owned(),
                    });
                }
            }
        }
    }
    out
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset].matches('\n').count() + 1
}
