//! Stack traces and log dumps pasted into a ticket, kept as their first lines and a short
//! marker: the exception's name and first frames say what broke; the hundred frames below
//! would drown the customer's words and slow every model. Java, Python, .NET and JavaScript
//! traces and timestamped or levelled log lines; each line is looked at once.

/// A block shorter than this is left as it is.
pub const MIN_BLOCK_LINES: usize = 6;

/// How many of a block's lines are kept before its marker.
pub const KEPT_LINES: usize = 3;

/// What kind of block a run of lines is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    Java,
    Python,
    DotNet,
    JavaScript,
    /// Exception lines without frames of a known language.
    Exceptions,
    Log,
}

impl BlockKind {
    /// The words of the marker that replaces the block's hidden lines.
    pub fn label(self) -> &'static str {
        match self {
            Self::Java => "Java stack trace",
            Self::Python => "Python traceback",
            Self::DotNet => ".NET stack trace",
            Self::JavaScript => "JavaScript stack trace",
            Self::Exceptions => "stack trace",
            Self::Log => "log",
        }
    }
}

/// What one line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineKind {
    Frame(BlockKind),
    Exception,
    Log,
    Text,
}

/// The text with every long trace or log block compacted (see the module comment).
pub fn compact_traces(text: &str) -> String {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut kinds = Vec::with_capacity(lines.len());
    let mut previous = LineKind::Text;
    for line in &lines {
        let kind = classify(line, previous);
        kinds.push(kind);
        previous = kind;
    }
    let mut out = String::with_capacity(text.len().min(1 << 20));
    let mut i = 0;
    while i < lines.len() {
        let end = (i..lines.len())
            .find(|&j| kinds[j] == LineKind::Text)
            .unwrap_or(lines.len());
        if end - i >= MIN_BLOCK_LINES {
            for line in &lines[i..i + KEPT_LINES] {
                out.push_str(line);
                out.push('\n');
            }
            let kind = block_kind(&kinds[i..end]);
            out.push_str(&format!(
                "[{}: {} more lines]\n",
                kind.label(),
                end - i - KEPT_LINES
            ));
            i = end;
        } else {
            let stop = if end == i { i + 1 } else { end };
            for line in &lines[i..stop] {
                out.push_str(line);
                out.push('\n');
            }
            i = stop;
        }
    }
    out.pop();
    out
}

/// The lines people wrote: `text` without stack frames, exception and log lines and the
/// markers [`compact_traces`] leaves. A trace's identifiers (classes, files, line numbers)
/// are new in nearly every ticket; whether a ticket is like those a model learned from is
/// judged on its words, not on them.
pub fn prose(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut previous = LineKind::Text;
    for line in text.split('\n') {
        let kind = classify(line, previous);
        previous = kind;
        if kind == LineKind::Text && !is_marker(line.trim()) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.pop();
    out
}

/// The line `compact_traces` puts in place of a block's hidden lines.
fn is_marker(t: &str) -> bool {
    t.starts_with('[') && t.ends_with(" more lines]")
}

/// The language of a block's first frame; a log when it has log lines and no frames.
fn block_kind(kinds: &[LineKind]) -> BlockKind {
    kinds
        .iter()
        .find_map(|k| match k {
            LineKind::Frame(kind) => Some(*kind),
            _ => None,
        })
        .unwrap_or(if kinds.contains(&LineKind::Log) {
            BlockKind::Log
        } else {
            BlockKind::Exceptions
        })
}

fn classify(line: &str, previous: LineKind) -> LineKind {
    let t = line.trim();
    if t.is_empty() {
        return LineKind::Text;
    }
    if let Some(kind) = frame_kind(t) {
        return LineKind::Frame(kind);
    }
    // Python prints the source line, indented, under each `File "…", line N` frame.
    if previous == LineKind::Frame(BlockKind::Python)
        && line.starts_with([' ', '\t'])
        && !t.starts_with("File ")
    {
        return LineKind::Frame(BlockKind::Python);
    }
    if is_exception(t) {
        return LineKind::Exception;
    }
    if is_log(t) {
        return LineKind::Log;
    }
    LineKind::Text
}

/// A stack frame, or a line only traces have ("... 12 more", "Traceback (…):").
fn frame_kind(t: &str) -> Option<BlockKind> {
    if t.starts_with("Traceback (most recent call last)")
        || t.starts_with("During handling of the above exception")
        || t.starts_with("The above exception was the direct cause")
        || (t.starts_with("File \"") && t.contains("\", line "))
    {
        return Some(BlockKind::Python);
    }
    if t.starts_with("... ") && t.ends_with(" more") {
        return Some(BlockKind::Java);
    }
    if t.starts_with("--- End of ") {
        return Some(BlockKind::DotNet);
    }
    if let Some(call) = t.strip_prefix("at ") {
        return at_frame_kind(call);
    }
    // Firefox and Safari: `name@https://host/app.js:10:15`.
    let (name, place) = t.split_once('@')?;
    (!name.contains(' ') && !place.contains(' ') && ends_with_line_and_column(place))
        .then_some(BlockKind::JavaScript)
}

/// Which language's frame `at CALL` is, if any.
fn at_frame_kind(call: &str) -> Option<BlockKind> {
    if ends_with_line_and_column(call.trim_end_matches(')')) {
        return Some(BlockKind::JavaScript);
    }
    let open = call.find('(')?;
    let name = &call[..open];
    if name.ends_with(' ') {
        // V8 puts a space before the place: `at handler (index.js:5:3)`, `(<anonymous>)`.
        let place = &call[open..];
        return (place.contains("<anonymous>") || place.contains("(index ") || place == "(native)")
            .then_some(BlockKind::JavaScript);
    }
    if name.contains(' ') || !name.contains('.') {
        return None;
    }
    let close = call.rfind(')')?;
    let arguments = &call[open + 1..close];
    let java = [
        ".java:",
        ".kt:",
        ".scala:",
        ".groovy:",
        "Native Method",
        "Unknown Source",
    ]
    .iter()
    .any(|m| arguments.contains(m))
        || arguments.ends_with(".java");
    if java {
        Some(BlockKind::Java)
    } else if call[close..].contains(":line ") || arguments.is_empty() || arguments.contains(' ') {
        // .NET lists parameter types and names, and `in File.cs:line N` after the call.
        Some(BlockKind::DotNet)
    } else {
        Some(BlockKind::Java)
    }
}

/// Whether `s` ends with `:LINE:COLUMN` (both numbers).
fn ends_with_line_and_column(s: &str) -> bool {
    let mut parts = s.rsplit(':');
    let number =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    number(parts.next()) && number(parts.next()) && parts.next().is_some()
}

/// An exception's own line: `java.lang.IllegalStateException: …`, `TypeError: …`,
/// `Caused by: …`, .NET's ` ---> System.Exception: …`.
fn is_exception(t: &str) -> bool {
    if t.starts_with("Caused by: ")
        || t.starts_with("Suppressed: ")
        || t.starts_with("---> ")
        || t.starts_with("Exception in thread \"")
    {
        return true;
    }
    let t = t.strip_prefix("Uncaught ").unwrap_or(t);
    let name_end = t.find(':').unwrap_or(t.len());
    let name = &t[..name_end];
    !name.is_empty()
        && name.len() <= 200
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'$')
        && (name.ends_with("Exception") || name.ends_with("Error") || name.ends_with("Warning"))
}

/// Levels that open log lines.
const LEVELS: &[&str] = &[
    "TRACE", "DEBUG", "INFO", "WARN", "WARNING", "ERROR", "FATAL", "CRITICAL",
];

/// Timestamps that open log lines; `d` is any digit.
const TIMESTAMPS: &[&str] = &[
    "dddd-dd-dd",
    "dddd/dd/dd",
    "dd/dd/dddd",
    "dd.dd.dddd dd:dd",
    "dd:dd:dd",
];

const MONTHS: &[&str] = &[
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A log line: a timestamp or a level first (`2024-03-04 10:00:01 ERROR …`,
/// `[INFO] …`, `Mar  4 10:00:01 host …`).
fn is_log(t: &str) -> bool {
    let t = t.trim_start_matches('[');
    if TIMESTAMPS.iter().any(|p| matches_pattern(t, p)) {
        return true;
    }
    let word_end = t
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(t.len());
    let (word, after) = t.split_at(word_end);
    if LEVELS.contains(&word) && after.starts_with([' ', ']', ':', '\t']) {
        return true;
    }
    MONTHS.contains(&word)
        && matches_pattern(
            after
                .trim_start()
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .trim_start(),
            "dd:dd:dd",
        )
}

fn matches_pattern(s: &str, pattern: &str) -> bool {
    s.len() >= pattern.len()
        && s.bytes().zip(pattern.bytes()).all(|(c, p)| {
            if p == b'd' {
                c.is_ascii_digit()
            } else {
                c == p
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(line: &str) -> LineKind {
        classify(line, LineKind::Text)
    }

    #[test]
    fn frames_of_each_language_are_told_apart() {
        use BlockKind::*;
        for (line, expected) in [
            ("\tat com.acme.Billing.charge(Billing.java:42)", Java),
            ("\tat java.base/java.lang.Thread.run(Thread.java:833)", Java),
            (
                "\tat sun.reflect.NativeMethodAccessorImpl.invoke0(Native Method)",
                Java,
            ),
            ("\t... 23 more", Java),
            ("  File \"/app/billing.py\", line 12, in charge", Python),
            ("Traceback (most recent call last):", Python),
            (
                "   at Acme.Billing.Charge(Decimal amount) in C:\\src\\Billing.cs:line 42",
                DotNet,
            ),
            ("   at System.Threading.Tasks.Task.Execute()", DotNet),
            ("--- End of stack trace from previous location ---", DotNet),
            ("    at charge (/app/src/billing.js:10:15)", JavaScript),
            ("    at async Promise.all (index 0)", JavaScript),
            (
                "    at /app/node_modules/express/lib/router.js:284:7",
                JavaScript,
            ),
            ("charge@https://app.example.com/main.js:10:15", JavaScript),
        ] {
            assert_eq!(kind(line), LineKind::Frame(expected), "{line}");
        }
    }

    #[test]
    fn exceptions_logs_and_prose_are_told_apart() {
        assert_eq!(
            kind("java.lang.IllegalStateException: no session"),
            LineKind::Exception
        );
        assert_eq!(
            kind("TypeError: Cannot read properties of undefined"),
            LineKind::Exception
        );
        assert_eq!(
            kind("Caused by: java.io.IOException: closed"),
            LineKind::Exception
        );
        assert_eq!(
            kind("2024-03-04 10:00:01,123 ERROR [main] failed"),
            LineKind::Log
        );
        assert_eq!(kind("[INFO] Building project"), LineKind::Log);
        assert_eq!(
            kind("Mar  4 10:00:01 host sshd[12]: refused"),
            LineKind::Log
        );
        assert_eq!(kind("10:00:01.123 WARN slow"), LineKind::Log);
        for prose in [
            "at the moment nothing works",
            "Error when I click save, please help",
            "Information about my account",
            "I looked at it (twice)",
        ] {
            assert_eq!(kind(prose), LineKind::Text, "{prose}");
        }
    }

    #[test]
    fn prose_keeps_the_words_people_wrote_and_drops_frames_exceptions_logs_and_markers() {
        let text = "The export fails since Monday.\n\
            java.lang.NullPointerException: total was null\n\
            \tat com.acme.billing.InvoiceView.render(InvoiceView.java:88)\n\
            \tat com.acme.billing.InvoiceView.open(InvoiceView.java:41)\n\
            [Java stack trace: 40 more lines]\n\
            2026-12-01 10:00:01 ERROR export failed\n\
            Please help, we need the invoices today.";
        assert_eq!(
            prose(text),
            "The export fails since Monday.\nPlease help, we need the invoices today."
        );
        assert_eq!(prose("no trace at all"), "no trace at all");
        let mut long = String::from("Saving fails:\njava.lang.IllegalStateException: closed\n");
        for i in 0..40 {
            long.push_str(&format!("\tat com.acme.Layer{i}.call(Layer{i}.java:{i})\n"));
        }
        long.push_str("Please help");
        assert_eq!(prose(&compact_traces(&long)), "Saving fails:\nPlease help");
    }

    #[test]
    fn a_long_java_trace_keeps_its_first_lines_and_a_marker() {
        let mut text = String::from("Saving fails:\njava.lang.IllegalStateException: closed\n");
        for i in 0..40 {
            text.push_str(&format!("\tat com.acme.Layer{i}.call(Layer{i}.java:{i})\n"));
        }
        text.push_str("Please help");
        let compact = compact_traces(&text);
        assert_eq!(
            compact,
            "Saving fails:\njava.lang.IllegalStateException: closed\n\
             \tat com.acme.Layer0.call(Layer0.java:0)\n\tat com.acme.Layer1.call(Layer1.java:1)\n\
             [Java stack trace: 38 more lines]\nPlease help"
        );
    }

    #[test]
    fn a_python_traceback_with_source_lines_is_one_block() {
        let text = "Traceback (most recent call last):\n  File \"a.py\", line 1, in <module>\n    main()\n  File \"a.py\", line 5, in main\n    charge(0)\n  File \"b.py\", line 9, in charge\n    raise ValueError(\"zero\")\nValueError: zero\nThanks";
        let compact = compact_traces(text);
        assert!(
            compact.ends_with("[Python traceback: 5 more lines]\nThanks"),
            "{compact}"
        );
    }

    #[test]
    fn short_blocks_and_plain_text_are_unchanged() {
        let text = "Hello\n\nError: disk full\n\tat a.B.c(B.java:1)\n\nbye\n";
        assert_eq!(compact_traces(text), text);
    }
}
