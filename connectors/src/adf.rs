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
}
