//! HTML mail to plain text: tags dropped, entities decoded, block elements to line breaks,
//! script and style dropped, `<blockquote>` rendered as `> ` lines so the quoted-reply step
//! treats HTML and plain-text mail alike. One forward pass, no backtracking: a 5 MB paste
//! costs what its length costs.

/// Tags whose presence (at least [`MIN_TAGS`] times) marks a text as HTML mail. Plain text
/// with a stray `<` (`a < b`, `List<String>`) has none of them.
const KNOWN_TAGS: &[&str] = &[
    "a",
    "b",
    "blockquote",
    "body",
    "br",
    "div",
    "em",
    "font",
    "h1",
    "h2",
    "h3",
    "head",
    "hr",
    "html",
    "i",
    "img",
    "li",
    "meta",
    "ol",
    "p",
    "pre",
    "span",
    "strong",
    "style",
    "table",
    "td",
    "tr",
    "u",
    "ul",
];

/// How many known tags make a text HTML: one `<br>` in a plain-text ticket that quotes a
/// template does not.
const MIN_TAGS: usize = 2;

/// A `<` further than this from the next `>` is text, not the start of a tag.
const MAX_TAG_BYTES: usize = 2048;

/// Elements whose content is never shown.
const HIDDEN: &[&str] = &["head", "noscript", "script", "style", "template", "title"];

/// Elements that end a paragraph: a blank line around them.
const PARAGRAPHS: &[&str] = &[
    "blockquote",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "ol",
    "p",
    "pre",
    "table",
    "ul",
];

/// Elements that start a new line.
const LINES: &[&str] = &[
    "address", "article", "br", "dd", "div", "dl", "dt", "footer", "header", "hr", "li", "section",
    "tr",
];

/// Whether `text` is HTML mail rather than plain text that happens to contain `<`.
pub fn looks_like_html(text: &str) -> bool {
    let mut found = 0;
    let mut rest = text;
    while let Some(at) = rest.find('<') {
        let after = &rest[at + 1..];
        let after = after.strip_prefix('/').unwrap_or(after);
        let name = tag_name(after);
        let ends = after[name.len()..]
            .chars()
            .next()
            .is_some_and(|c| c == '>' || c == '/' || c.is_ascii_whitespace());
        if ends && KNOWN_TAGS.contains(&name.to_ascii_lowercase().as_str()) {
            found += 1;
            if found >= MIN_TAGS {
                return true;
            }
        }
        rest = &rest[at + 1..];
    }
    false
}

/// The ASCII letters and digits that open `s` (a tag's name), at most 16.
fn tag_name(s: &str) -> &str {
    let end = s
        .bytes()
        .take(16)
        .take_while(u8::is_ascii_alphanumeric)
        .count();
    &s[..end]
}

/// Plain text of an HTML document (see the module comment).
pub fn html_to_text(html: &str) -> String {
    let mut out = TextWriter::default();
    let mut next_gt: Option<usize> = None;
    let mut at = 0;
    while at < html.len() {
        let Some(lt) = html[at..].find('<').map(|i| at + i) else {
            out.text(&html[at..]);
            break;
        };
        out.text(&html[at..lt]);
        let rest = &html[lt + 1..];
        if let Some(comment) = rest.strip_prefix("!--") {
            at = comment
                .find("-->")
                .map_or(html.len(), |end| lt + 4 + end + 3);
            continue;
        }
        let opens_tag = rest
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'/' || b == b'!' || b == b'?');
        // The next `>` is found once and reused, so a text of many `<` stays linear.
        if next_gt.is_none_or(|gt| gt <= lt) {
            next_gt = Some(html[lt..].find('>').map_or(usize::MAX, |i| lt + i));
        }
        let gt = next_gt.unwrap_or(usize::MAX);
        if !opens_tag || gt == usize::MAX || gt - lt > MAX_TAG_BYTES {
            out.text("<");
            at = lt + 1;
            continue;
        }
        let inside = &html[lt + 1..gt];
        at = gt + 1;
        let closing = inside.starts_with('/');
        let name = tag_name(inside.trim_start_matches('/')).to_ascii_lowercase();
        if !closing && !inside.ends_with('/') && HIDDEN.contains(&name.as_str()) {
            at = end_of_element(html, at, &name);
            continue;
        }
        out.tag(&name, closing);
    }
    out.finish()
}

/// Where the element `name` opened before `from` ends: after its closing tag, or at the end
/// of the document when it is never closed (as a browser reads it).
fn end_of_element(html: &str, from: usize, name: &str) -> usize {
    let mut at = from;
    while let Some(lt) = html[at..].find("</").map(|i| at + i) {
        let candidate = &html.as_bytes()[lt + 2..];
        if candidate.len() >= name.len()
            && candidate[..name.len()].eq_ignore_ascii_case(name.as_bytes())
        {
            return html[lt..].find('>').map_or(html.len(), |i| lt + i + 1);
        }
        at = lt + 2;
    }
    html.len()
}

/// Builds the text: HTML whitespace collapsed, line breaks from elements, `> ` prefixes
/// inside blockquotes.
#[derive(Default)]
struct TextWriter {
    out: String,
    /// Blockquotes open around the current position.
    quote_depth: usize,
    /// `<pre>` elements open: their whitespace is kept.
    pre_depth: usize,
    /// Nothing but the quote prefix written on the current line yet.
    line_start: bool,
    /// A space is owed before the next word.
    space: bool,
}

impl TextWriter {
    fn text(&mut self, html: &str) {
        let mut rest = html;
        while let Some(amp) = rest.find('&') {
            self.chars(&rest[..amp]);
            let (decoded, used) = decode_entity(&rest[amp..]);
            match decoded {
                Some(c) => self.chars(c.encode_utf8(&mut [0; 4])),
                None => self.chars("&"),
            }
            rest = &rest[amp + used..];
        }
        self.chars(rest);
    }

    fn chars(&mut self, text: &str) {
        for c in text.chars() {
            if self.pre_depth > 0 && c == '\n' {
                self.newline();
            } else if c.is_whitespace() && self.pre_depth == 0 {
                self.space = !self.line_start;
            } else {
                if self.line_start || self.out.is_empty() {
                    self.begin_line();
                } else if self.space {
                    self.out.push(' ');
                }
                self.space = false;
                self.out.push(c);
            }
        }
    }

    fn begin_line(&mut self) {
        for _ in 0..self.quote_depth {
            self.out.push_str("> ");
        }
        self.line_start = false;
    }

    fn newline(&mut self) {
        // More than one blank line in a row carries nothing.
        if !self.out.is_empty() && !self.out.ends_with("\n\n") {
            self.out.push('\n');
        }
        self.line_start = true;
        self.space = false;
    }

    fn tag(&mut self, name: &str, closing: bool) {
        match name {
            "blockquote" => {
                self.newline();
                if closing {
                    self.quote_depth = self.quote_depth.saturating_sub(1);
                } else {
                    self.quote_depth += 1;
                }
                self.newline();
            }
            "pre" => {
                self.newline();
                self.pre_depth = if closing {
                    self.pre_depth.saturating_sub(1)
                } else {
                    self.pre_depth + 1
                };
            }
            "td" | "th" => self.space = !self.line_start,
            _ if PARAGRAPHS.contains(&name) => {
                if !self.line_start {
                    self.newline();
                }
                self.newline();
            }
            _ if LINES.contains(&name) && (name == "br" || !self.line_start) => self.newline(),
            _ => {}
        }
    }

    fn finish(self) -> String {
        self.out
    }
}

/// Named entities that real mail uses; any other name is left as written.
const ENTITIES: &[(&str, char)] = &[
    ("amp", '&'),
    ("lt", '<'),
    ("gt", '>'),
    ("quot", '"'),
    ("apos", '\''),
    ("nbsp", ' '),
    ("shy", '\u{ad}'),
    ("copy", '©'),
    ("reg", '®'),
    ("trade", '™'),
    ("hellip", '…'),
    ("mdash", '—'),
    ("ndash", '–'),
    ("lsquo", '‘'),
    ("rsquo", '’'),
    ("ldquo", '“'),
    ("rdquo", '”'),
    ("laquo", '«'),
    ("raquo", '»'),
    ("bull", '•'),
    ("middot", '·'),
    ("euro", '€'),
    ("pound", '£'),
    ("yen", '¥'),
    ("cent", '¢'),
    ("sect", '§'),
    ("deg", '°'),
    ("times", '×'),
    ("auml", 'ä'),
    ("ouml", 'ö'),
    ("uuml", 'ü'),
    ("Auml", 'Ä'),
    ("Ouml", 'Ö'),
    ("Uuml", 'Ü'),
    ("szlig", 'ß'),
    ("aacute", 'á'),
    ("agrave", 'à'),
    ("acirc", 'â'),
    ("ccedil", 'ç'),
    ("eacute", 'é'),
    ("egrave", 'è'),
    ("ecirc", 'ê'),
    ("Eacute", 'É'),
    ("iacute", 'í'),
    ("ntilde", 'ñ'),
    ("oacute", 'ó'),
    ("uacute", 'ú'),
    ("iexcl", '¡'),
    ("iquest", '¿'),
];

/// The character an entity at the start of `s` stands for, and the bytes it takes; `None`
/// (and 1 byte, the `&`) when it is not one.
fn decode_entity(s: &str) -> (Option<char>, usize) {
    let Some(end) = s.bytes().take(12).position(|b| b == b';') else {
        return (None, 1);
    };
    let body = &s[1..end];
    let decoded = if let Some(number) = body.strip_prefix('#') {
        let value = match number.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => number.parse::<u32>().ok(),
        };
        value.map(|v| match char::from_u32(v) {
            Some('\0') | None => '\u{fffd}',
            Some(c) => c,
        })
    } else {
        ENTITIES
            .iter()
            .find(|(name, _)| *name == body)
            .map(|(_, c)| *c)
    };
    match decoded {
        Some(c) => (Some(c), end + 1),
        None => (None, 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_with_angle_brackets_is_not_html() {
        assert!(!looks_like_html("if a < b then List<String> is empty"));
        assert!(!looks_like_html("paste <br> once"));
        assert!(looks_like_html("<p>Hello</p>"));
        assert!(looks_like_html("<DIV class=x>a<BR>b</DIV>"));
    }

    #[test]
    fn paragraphs_and_breaks_become_lines() {
        let text = html_to_text("<p>First   line<br>second\nline</p><p>Next</p>");
        assert_eq!(text, "First line\nsecond line\n\nNext\n\n");
    }

    #[test]
    fn entities_are_decoded_and_unknown_ones_kept() {
        let text = html_to_text("<p>a &amp; b &lt;x&gt; &#233;t&#xE9; &nbsp;&bogus; AT&T</p>");
        assert_eq!(text.trim(), "a & b <x> été &bogus; AT&T");
    }

    #[test]
    fn script_style_head_and_comments_are_dropped() {
        let html = "<html><head><title>T</title><style>p{color:red}</style></head>\
                    <body><!-- hidden --><script>alert('x<y')</script><p>Shown</p></body></html>";
        assert_eq!(html_to_text(html).trim(), "Shown");
    }

    #[test]
    fn blockquotes_become_quoted_lines() {
        let html =
            "<div>Reply</div><blockquote>Old<br>text<blockquote>older</blockquote></blockquote>";
        let text = html_to_text(html);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines, ["Reply", "> Old", "> text", "> > older"]);
    }

    #[test]
    fn pre_keeps_its_lines() {
        let text = html_to_text("<pre>at a.B(C.java:1)\n  at d.E(F.java:2)</pre>");
        assert!(
            text.contains("at a.B(C.java:1)\n  at d.E(F.java:2)"),
            "{text:?}"
        );
    }

    #[test]
    fn stray_and_unclosed_angle_brackets_are_text() {
        assert_eq!(html_to_text("<p>1 < 2</p>").trim(), "1 < 2");
        assert_eq!(
            html_to_text("<p>x</p><b unclosed").trim(),
            "x\n\n<b unclosed"
        );
        assert_eq!(html_to_text("<p>a</p><script>never closed").trim(), "a");
    }

    #[test]
    fn many_unclosed_tags_are_text() {
        // Quadratic scanning would make this hang; linear scanning keeps every byte.
        let html = "<a".repeat(200_000);
        assert_eq!(html_to_text(&html), html);
    }
}
