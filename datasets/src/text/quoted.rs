//! Earlier messages and signatures cut from a reply, so a model reads what the customer wrote
//! this time: Gmail's and Apple Mail's "On … wrote:", Outlook's "From: … Sent: …" header and
//! "-----Original Message-----", `>` quoting, Zendesk's reply marker, "Sent from my iPhone"
//! and the "-- " signature separator. Line by line with a few lines of look-ahead: linear.

/// A reply's attribution line ("On … wrote:") is at most this long; longer lines are text.
const MAX_ATTRIBUTION_BYTES: usize = 300;

/// How many lines after "From:" may hold the "Sent:" or "Date:" that makes it a header.
const HEADER_LOOKAHEAD: usize = 4;

/// How attribution lines open and the verb they contain, in the languages mail clients write.
const ATTRIBUTIONS: &[(&str, &str)] = &[
    ("On ", "wrote"),
    ("Am ", "schrieb"),
    ("Le ", "écrit"),
    ("El ", "escribió"),
    ("Em ", "escreveu"),
    ("Op ", "schreef"),
    ("Il ", "scritto"),
];

/// Lines that separate a reply from the message it quotes.
const SEPARATORS: &[&str] = &[
    "-----Original Message-----",
    "----- Original Message -----",
    "-----Ursprüngliche Nachricht-----",
    "-----Message d'origine-----",
    "-----Mensaje original-----",
    "##- Please type your reply above this line -##",
    "##- Bitte geben Sie Ihre Antwort über dieser Zeile ein. -##",
];

/// Outlook's header fields: "From:" then, within a few lines, "Sent:" or "Date:".
const HEADER_FROM: &[&str] = &["From:", "Von:", "De :", "De:", "Da:", "Van:"];
const HEADER_SENT: &[&str] = &[
    "Sent:",
    "Date:",
    "Gesendet:",
    "Datum:",
    "Envoyé :",
    "Envoyé:",
    "Enviado:",
    "Inviato:",
    "Verzonden:",
];

/// Lines mobile mail apps append; what follows them is the quoted thread.
const DEVICE_SIGNATURES: &[&str] = &[
    "Sent from my ",
    "Sent from Outlook",
    "Sent from Mail for Windows",
    "Sent from Yahoo Mail",
    "Get Outlook for ",
    "Von meinem iPhone gesendet",
    "Von meinem iPad gesendet",
    "Envoyé de mon iPhone",
    "Enviado desde mi iPhone",
];

/// The reply without the messages it quotes and without its signature. When nothing with a
/// letter would be left (a forwarded ticket is all quote), the quote is the ticket: it is
/// kept, without its `>` marks.
pub fn strip_quoted(text: &str) -> String {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut kept: Vec<&str> = Vec::with_capacity(lines.len());
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim();
        if is_separator(line, trimmed) || is_outlook_header(&lines, i) {
            break;
        }
        if let Some(used) = attribution_lines(&lines, i) {
            // Quoted below with `>`: drop the attribution and go on, an answer may follow
            // the quote. Not marked: everything after it is the earlier message.
            match next_text_line(&lines, i + used) {
                Some(next) if lines[next].trim_start().starts_with('>') => {
                    i += used;
                    continue;
                }
                _ => break,
            }
        }
        if !trimmed.starts_with('>') {
            kept.push(line);
        }
        i += 1;
    }
    while kept.last().is_some_and(|l| is_rule(l.trim())) {
        kept.pop();
    }
    if kept.iter().any(|l| l.chars().any(char::is_alphabetic)) {
        return kept.join("\n");
    }
    lines
        .iter()
        .map(|line| unquote(line))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The line without its leading `>` marks.
fn unquote(line: &str) -> &str {
    let mut rest = line.trim_start();
    while let Some(after) = rest.strip_prefix('>') {
        rest = after.trim_start();
    }
    if rest.len() == line.trim_start().len() {
        line
    } else {
        rest
    }
}

/// Whether this line ends the reply: a quote separator, a signature separator, or a mobile
/// app's signature.
fn is_separator(line: &str, trimmed: &str) -> bool {
    // RFC 3676's separator is "-- " exactly; editors often strip the trailing space.
    line.trim_end_matches('\r') == "-- "
        || trimmed == "--"
        || SEPARATORS.iter().any(|s| trimmed.eq_ignore_ascii_case(s))
        || (trimmed.len() < 80 && DEVICE_SIGNATURES.iter().any(|s| trimmed.starts_with(s)))
}

/// How many lines (1 or 2) the attribution at line `i` takes, if there is one: mail clients
/// wrap a long "On … <address> wrote:" onto a second line.
fn attribution_lines(lines: &[&str], i: usize) -> Option<usize> {
    let first = lines[i].trim();
    if first.len() > MAX_ATTRIBUTION_BYTES {
        return None;
    }
    let opener = ATTRIBUTIONS
        .iter()
        .find(|(open, _)| first.starts_with(open))?;
    if is_attribution(first, opener.1) {
        return Some(1);
    }
    let second = lines.get(i + 1)?.trim();
    if first.len() + second.len() >= MAX_ATTRIBUTION_BYTES {
        return None;
    }
    let joined = format!("{first} {second}");
    is_attribution(&joined, opener.1).then_some(2)
}

fn is_attribution(line: &str, verb: &str) -> bool {
    line.len() <= MAX_ATTRIBUTION_BYTES && line.ends_with(':') && line.contains(verb)
}

/// Outlook's header: "From:" at line `i` with "Sent:" (or "Date:") a few lines below.
fn is_outlook_header(lines: &[&str], i: usize) -> bool {
    let line = lines[i].trim_start_matches(['*', ' ', '\t']);
    if !HEADER_FROM.iter().any(|f| line.starts_with(f)) {
        return false;
    }
    lines
        .iter()
        .skip(i + 1)
        .take(HEADER_LOOKAHEAD)
        .map(|l| l.trim_start_matches(['*', ' ', '\t']))
        .any(|l| HEADER_SENT.iter().any(|s| l.starts_with(s)))
}

/// The first line from `from` on that is not blank.
fn next_text_line(lines: &[&str], from: usize) -> Option<usize> {
    (from..lines.len()).find(|&i| !lines[i].trim().is_empty())
}

/// A line drawn with one repeated character (Outlook's underscores above its header).
fn is_rule(line: &str) -> bool {
    line.is_empty() || (line.len() >= 10 && line.chars().all(|c| c == '_' || c == '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gmail_attribution_with_quoted_lines_is_dropped_and_an_answer_below_kept() {
        let text = "Top answer\n\nOn Mon, 4 Mar 2024 at 10:00, Ana <ana@example.com> wrote:\n> old question\n> more\n\nInline answer";
        assert_eq!(strip_quoted(text), "Top answer\n\n\nInline answer");
    }

    #[test]
    fn wrapped_attribution_is_recognised() {
        let text = "New text\nOn Tue, Mar 5, 2024 at 9:12 AM Jane Smith <\njane@example.com> wrote:\n\nOld text";
        assert_eq!(strip_quoted(text), "New text");
    }

    #[test]
    fn outlook_header_cuts_the_rest_with_its_rule() {
        let text = "Still broken.\n\n________________________________\nFrom: Support <help@example.com>\nSent: Monday, March 4, 2024 10:00 AM\nTo: Me\nSubject: RE: x\n\nOld";
        assert_eq!(strip_quoted(text), "Still broken.");
    }

    #[test]
    fn a_from_line_without_a_date_below_is_text() {
        let text = "From: the login page\nI get an error.\n\nThanks";
        assert_eq!(strip_quoted(text), text);
    }

    #[test]
    fn separators_and_device_signatures_cut() {
        for (text, expected) in [
            ("Hi\n-----Original Message-----\nold", "Hi"),
            (
                "Hi\n##- Please type your reply above this line -##\nold",
                "Hi",
            ),
            ("Hi\n\nSent from my iPhone\n\n> old", "Hi"),
            ("Hi\n-- \nJane Doe\nACME", "Hi"),
            ("Hi\n--\nJane", "Hi"),
        ] {
            assert_eq!(strip_quoted(text), expected, "{text:?}");
        }
    }

    #[test]
    fn a_reply_that_is_all_quote_keeps_the_quote_unmarked() {
        let text = "> The printer is offline\n> since Monday";
        assert_eq!(strip_quoted(text), "The printer is offline\nsince Monday");
    }

    #[test]
    fn german_attribution_is_recognised() {
        let text = "Danke\n\nAm 04.03.2024 um 10:00 schrieb Max Muster <max@example.de>:\n\nAlt";
        assert_eq!(strip_quoted(text), "Danke");
    }

    #[test]
    fn a_sentence_starting_with_on_is_text() {
        let text = "On Monday the export failed.\nIt wrote: nothing";
        assert_eq!(strip_quoted(text), text);
    }
}
