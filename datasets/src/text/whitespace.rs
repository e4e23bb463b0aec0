//! Whitespace collapsed: line endings unified, runs of spaces and tabs to one space, invisible
//! characters (zero-width space, byte-order mark, soft hyphen) dropped, at most one blank line
//! in a row, nothing at either end. Models split words on whitespace anyway; what this buys
//! is texts that compare equal when they read the same, and no padding eating a length budget.

/// Characters that show nothing and separate nothing.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200b}' | '\u{feff}' | '\u{ad}' | '\u{2060}')
}

/// CRLF and lone CR as LF, so every later step splits lines one way.
pub fn unify_line_endings(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\r') {
        std::borrow::Cow::Owned(text.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// The text with its whitespace collapsed (see the module comment).
pub fn collapse_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_lines = 0usize;
    for line in unify_line_endings(text).split('\n') {
        // The separator owed before this line, taken back if the line turns out blank.
        let mark = out.len();
        out.push_str(match (mark, blank_lines) {
            (0, _) => "",
            (_, 0) => "\n",
            _ => "\n\n",
        });
        let start = out.len();
        let mut space = false;
        for c in line.chars() {
            if is_invisible(c) {
                continue;
            }
            if c.is_whitespace() {
                space = true;
            } else {
                if space && out.len() > start {
                    out.push(' ');
                }
                space = false;
                out.push(c);
            }
        }
        if out.len() == start {
            out.truncate(mark);
            blank_lines += 1;
        } else {
            blank_lines = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_collapse_and_ends_are_trimmed() {
        assert_eq!(
            collapse_whitespace("  \r\n a \t\u{a0} b  \r\n\r\n\r\n\n c\u{200b}d \n\n"),
            "a b\n\ncd"
        );
    }

    #[test]
    fn single_line_breaks_are_kept() {
        assert_eq!(collapse_whitespace("a\nb\n\nc"), "a\nb\n\nc");
    }

    #[test]
    fn nothing_but_whitespace_is_empty() {
        assert_eq!(collapse_whitespace(" \n\t\u{feff}\n "), "");
    }
}
