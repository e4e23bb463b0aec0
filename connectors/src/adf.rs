//! The Atlassian document format (Jira REST v3 descriptions) as plain text: the words of
//! every `text` node, block nodes on their own lines. Marks, media and unknown nodes are
//! skipped rather than refused.

use serde_json::Value;

/// Nodes after which a line ends.
const BLOCKS: [&str; 8] = [
    "paragraph",
    "heading",
    "listItem",
    "codeBlock",
    "blockquote",
    "tableRow",
    "rule",
    "panel",
];

/// The plain text of an ADF document (or any ADF node).
pub fn plain_text(document: &Value) -> String {
    let mut text = String::new();
    collect(document, &mut text);
    text.trim().to_string()
}

fn collect(node: &Value, out: &mut String) {
    match node.get("type").and_then(Value::as_str) {
        Some("text") => {
            if let Some(words) = node.get("text").and_then(Value::as_str) {
                out.push_str(words);
            }
        }
        Some("hardBreak") => out.push('\n'),
        Some("mention" | "emoji" | "status" | "date" | "inlineCard") => {
            if let Some(words) = node
                .get("attrs")
                .and_then(|a| {
                    a.get("text")
                        .or_else(|| a.get("shortName"))
                        .or_else(|| a.get("url"))
                })
                .and_then(Value::as_str)
            {
                out.push_str(words);
            }
        }
        _ => {}
    }
    if let Some(children) = node.get("content").and_then(Value::as_array) {
        for child in children {
            collect(child, out);
        }
    }
    let is_block = node
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|kind| BLOCKS.contains(&kind));
    if is_block && !out.ends_with('\n') {
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paragraphs_and_lists_become_lines_of_text() {
        let document = json!({"type": "doc", "version": 1, "content": [
            {"type": "paragraph", "content": [
                {"type": "text", "text": "Export "},
                {"type": "text", "text": "times out", "marks": [{"type": "strong"}]}]},
            {"type": "bulletList", "content": [
                {"type": "listItem", "content": [{"type": "paragraph", "content": [
                    {"type": "text", "text": "CSV"}, {"type": "hardBreak"},
                    {"type": "mention", "attrs": {"id": "1", "text": "@Dana"}}]}]}]},
            {"type": "mediaSingle", "content": [{"type": "media", "attrs": {"id": "x"}}]}
        ]});
        assert_eq!(plain_text(&document), "Export times out\nCSV\n@Dana");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Any JSON, with the node names and fields the converter reads made likely.
        fn node() -> impl Strategy<Value = Value> {
            let kind = prop_oneof![
                prop::sample::select(vec![
                    "doc",
                    "text",
                    "paragraph",
                    "hardBreak",
                    "mention",
                    "emoji",
                    "listItem",
                    "codeBlock",
                    "mediaSingle",
                    "rule",
                ])
                .prop_map(|k| json!(k)),
                any::<String>().prop_map(|k| json!(k)),
                Just(json!(null)),
                any::<i64>().prop_map(|n| json!(n)),
            ];
            let text = prop_oneof![any::<String>().prop_map(|t| json!(t)), Just(json!([]))];
            let leaf = (kind.clone(), text.clone(), text)
                .prop_map(|(kind, text, short)| json!({"type": kind, "text": text, "attrs": {"shortName": short}}));
            leaf.prop_recursive(6, 64, 6, move |inner| {
                (kind.clone(), prop::collection::vec(inner, 0..6))
                    .prop_map(|(kind, content)| json!({"type": kind, "content": content}))
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn any_document_becomes_trimmed_text(document in node()) {
                let text = plain_text(&document);
                prop_assert_eq!(text.trim(), text.as_str());
            }

            #[test]
            fn paragraphs_of_words_become_one_line_each(
                paragraphs in prop::collection::vec(
                    prop::collection::vec("[a-zA-Z0-9]{1,8}( [a-zA-Z0-9.,]{1,8}){0,3}", 1..4),
                    0..6,
                ),
            ) {
                let document = json!({"type": "doc", "version": 1, "content": paragraphs
                    .iter()
                    .map(|runs| json!({"type": "paragraph", "content": runs
                        .iter()
                        .map(|run| json!({"type": "text", "text": run}))
                        .collect::<Vec<_>>()}))
                    .collect::<Vec<_>>()});
                let expected = paragraphs.iter().map(|runs| runs.concat()).collect::<Vec<_>>().join("\n");
                prop_assert_eq!(plain_text(&document), expected);
            }
        }
    }
}
