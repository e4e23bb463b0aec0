//! A ticket's text as every model reads it: HTML mail to text, quoted earlier messages and
//! signatures cut, long stack traces and logs compacted, whitespace collapsed, length capped.
//! Each step is its own pure function; [`normalise_body`] runs them in order. The stored
//! ticket keeps its raw text: only what models read (`ticket::model_text`) is normalised.

pub mod entities;
pub mod glossary;
pub mod html;
pub mod key_phrases;
pub mod quoted;
pub mod traces;
pub mod whitespace;

use std::borrow::Cow;

/// The most bytes of a normalised body a model reads; the rest is cut at a word boundary.
/// A ticket's first 16 KiB say what it is about; a 5 MB paste would only slow every model
/// and drown the customer's own words.
pub const MAX_NORMALISED_BODY_BYTES: usize = 16 * 1024;

/// A ticket body as models read it (see the module comment).
pub fn normalise_body(body: &str) -> String {
    let text = whitespace::unify_line_endings(body);
    let text = if html::looks_like_html(&text) {
        Cow::Owned(html::html_to_text(&text))
    } else {
        text
    };
    let text = quoted::strip_quoted(&text);
    let text = traces::compact_traces(&text);
    let mut text = whitespace::collapse_whitespace(&text);
    truncate_at_word(&mut text, MAX_NORMALISED_BODY_BYTES);
    text
}

/// A subject as models read it: one line, whitespace collapsed.
pub fn normalise_subject(subject: &str) -> String {
    whitespace::collapse_whitespace(subject).replace('\n', " ")
}

/// Cuts `text` to at most `max` bytes, before the last whitespace if there is one in the
/// final 64 bytes, else at a character boundary.
pub fn truncate_at_word(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let window = end.saturating_sub(64);
    if let Some(space) = text[window..end].rfind(char::is_whitespace) {
        end = window + space;
    }
    text.truncate(end);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixture of `datasets/tests/fixtures/normalise`.
    fn fixture(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/normalise")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Each fixture, what must survive normalisation and what must not.
    const CASES: &[(&str, &[&str], &[&str])] = &[
        (
            "gmail_reply.txt",
            &["still shows the old VAT number", "Best,\nMarta"],
            &[
                "Finance Lead",
                "wrote:",
                "Thanks for reaching out",
                "> Hello",
            ],
        ),
        (
            "outlook_reply.txt",
            &[
                "unable to sync the calendar",
                "IT Operations | Northwind Traders",
            ],
            &["____", "From:", "Please reconnect", "stopped this morning"],
        ),
        (
            "outlook_original_message.txt",
            &["duplicate charge of 49.00 EUR", "Laura"],
            &["Original Message", "payment of 49.00 EUR was received"],
        ),
        (
            "apple_mail_reply.txt",
            &["crashes as soon as I open the photo gallery"],
            &["Sent from my iPhone", "version 5.2.1", "wrote:"],
        ),
        (
            "zendesk_reply.txt",
            &["missing the \"region\" column"],
            &["##-", "Your request", "could you check", "takes hours"],
        ),
        (
            "inline_reply.txt",
            &[
                "Firefox 123 on Windows 11.",
                "Yes, same blank page after login.",
            ],
            &["wrote:", "Which browser", "private window"],
        ),
        (
            "forwarded_all_quoted.txt",
            &[
                "The password reset link you sent me says \"expired\"",
                "cannot log in",
            ],
            &["> "],
        ),
        (
            "gmail_reply.html",
            &[
                "every report export fails with \"Quota exceeded\" although we're on the Business plan & used only 12 GB of 100 GB.",
                "Thanks,\nOlivia",
            ],
            &["<", "wrote:", "quota was raised", "&quot;", "gmail"],
        ),
        (
            "outlook_reply.html",
            &[
                "Two of our users cannot sign in with single sign-on",
                "“SAML response signature invalid”",
                "Daniel Moreau",
            ],
            &[
                "From:",
                "certificate is live",
                "Cambria",
                "trackOpen",
                "<o:p>",
                "MsoNormal",
            ],
        ),
        (
            "apple_mail_reply.html",
            &["blank screen after I enter my PIN"],
            &["Sent from my iPad", "reinstall", "wrote:"],
        ),
        (
            "java_trace.txt",
            &[
                "uploading attachments larger than 10 MB fails",
                "java.lang.IllegalStateException: Stream closed before the multipart boundary was read",
                "at com.acme.connector.upload.MultipartReader.readBoundary(MultipartReader.java:211)",
                "[Java stack trace: 14 more lines]",
                "Files under 10 MB work fine.",
            ],
            &["NioEndpoint", "Broken pipe", "24 more"],
        ),
        (
            "python_trace.txt",
            &[
                "Traceback (most recent call last):",
                "[Python traceback: 7 more lines]",
                "Is this change intended?",
            ],
            &["pagination.py"],
        ),
        (
            "dotnet_trace.txt",
            &[
                "System.NullReferenceException: Object reference not set to an instance of an object.",
                "PdfWriter.WriteHeader(ReportContext context)",
                "[.NET stack trace: 5 more lines]",
                "Version 7.4.2, Windows 11.",
            ],
            &["TaskAwaiter", "End of stack trace"],
        ),
        (
            "javascript_trace.txt",
            &[
                "Uncaught TypeError: Cannot read properties of undefined (reading 'currency')",
                "[JavaScript stack trace: 4 more lines]",
                // Four Firefox frames are under the block length: they stay.
                "mount@https://shop.example.org/assets/checkout.js:212:5",
            ],
            &["CartView.render", "async mount"],
        ),
        (
            "log_dump.txt",
            &[
                "The scheduled sync has been failing since 02:00.",
                "processed batch 0 of 400",
                "[log: 398 more lines]",
                "Our warehouse depends on it.",
            ],
            &["processed batch 3 of 400", "giving up"],
        ),
        (
            "mixed_language_de.txt",
            &[
                "keine Rechnungen mehr als PDF herunterladen",
                "\"Error 502: Bad Gateway\"",
            ],
            &["Von:", "Gesendet:", "deployed a fix"],
        ),
        (
            "mixed_language_fr.txt",
            &[
                "Nous n'arrivons plus à synchroniser nos contacts",
                "« Token expired »",
            ],
            &["a écrit", "reconnect your CRM"],
        ),
        (
            "mixed_language_es_en.txt",
            &["Hola, the dashboard no carga desde esta mañana."],
            &[],
        ),
    ];

    #[test]
    fn fixtures_keep_the_new_message_and_drop_the_rest() {
        let mut failures = Vec::new();
        for (name, keep, drop) in CASES {
            let normalised = normalise_body(&fixture(name));
            for phrase in *keep {
                if !normalised.contains(phrase) {
                    failures.push(format!("{name}: lost {phrase:?} in\n{normalised}\n"));
                }
            }
            for phrase in *drop {
                if normalised.contains(phrase) {
                    failures.push(format!("{name}: kept {phrase:?} in\n{normalised}\n"));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn every_fixture_is_tested() {
        let folder =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/normalise");
        let mut names: Vec<String> = std::fs::read_dir(folder)
            .expect("fixtures folder")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut tested: Vec<String> = CASES.iter().map(|c| c.0.to_string()).collect();
        tested.sort();
        assert_eq!(names, tested);
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        for (name, _, _) in CASES {
            let once = normalise_body(&fixture(name));
            assert_eq!(normalise_body(&once), once, "{name}");
        }
    }

    #[test]
    fn a_huge_paste_is_capped_at_a_word() {
        let body = "word ".repeat(1_000_000);
        let normalised = normalise_body(&body);
        assert!(normalised.len() <= MAX_NORMALISED_BODY_BYTES);
        assert!(normalised.len() > MAX_NORMALISED_BODY_BYTES - 64);
        assert!(
            normalised.ends_with("word"),
            "{:?}",
            &normalised[normalised.len() - 10..]
        );
    }

    #[test]
    fn truncation_respects_character_boundaries() {
        let mut text = "é".repeat(100);
        truncate_at_word(&mut text, 51);
        assert_eq!(text.len(), 50);
    }

    #[test]
    fn subjects_become_one_line() {
        assert_eq!(
            normalise_subject("  RE:\tLogin\r\n fails  "),
            "RE: Login fails"
        );
    }

    #[test]
    fn clean_text_passes_unchanged() {
        let text = "I cannot log in since Monday.\n\nThe page says \"invalid password\".";
        assert_eq!(normalise_body(text), text);
    }
}
