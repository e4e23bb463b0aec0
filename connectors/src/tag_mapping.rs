//! Our tag names in each system's format, and the way back from a vendor's tag or label to a
//! project tag. Zendesk tags and Jira labels cannot hold spaces (Zendesk splits on them, Jira
//! refuses them) and are best lower-case (Zendesk folds case, Jira's labels are
//! case-sensitive): `Feature Request` becomes `feature_request`. ServiceNow values (a field we
//! own, or a category) keep the name, without the commas that separate list values.

use crate::System;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A project tag's name in `system`'s format, by the default rule.
pub fn vendor_label(system: System, tag: &str) -> String {
    match system {
        System::Zendesk | System::Jira => {
            let mut label = String::with_capacity(tag.len());
            for c in tag.trim().chars().flat_map(char::to_lowercase) {
                let keep = c.is_alphanumeric() || c == '-' || c == '_';
                let next = if keep { c } else { '_' };
                // One separator for a run of spaces or punctuation.
                if next == '_' && label.ends_with('_') {
                    continue;
                }
                label.push(next);
            }
            label.trim_matches('_').to_string()
        }
        System::ServiceNow => tag.replace(',', " ").trim().to_string(),
    }
}

/// A connector's mapping between project tags and the vendor's labels: the default rule,
/// with per-tag overrides an admin sets (`"Billing" → "finance-billing"`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelMapping {
    /// Project tag name → vendor label, where the default rule is not wanted.
    #[serde(default)]
    pub overrides: BTreeMap<String, String>,
}

impl LabelMapping {
    /// The label written to `system` for a project tag.
    pub fn to_vendor(&self, system: System, tag: &str) -> String {
        self.overrides
            .iter()
            .find(|(name, _)| {
                name.eq_ignore_ascii_case(tag) || name.to_lowercase() == tag.to_lowercase()
            })
            .map_or_else(|| vendor_label(system, tag), |(_, label)| label.clone())
    }

    /// The project tag a vendor label stands for: the tag whose vendor form it is, or whose
    /// name it is (case ignored); `None` for labels that mean nothing to the project.
    pub fn to_project<'t>(
        &self,
        system: System,
        label: &str,
        tags: &'t [impl AsRef<str>],
    ) -> Option<&'t str> {
        let label = label.trim().to_lowercase();
        if label.is_empty() {
            return None;
        }
        tags.iter().map(|tag| -> &str { tag.as_ref() }).find(|tag| {
            self.to_vendor(system, tag).to_lowercase() == label || tag.to_lowercase() == label
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_lower_case_labels_without_spaces() {
        for system in [System::Zendesk, System::Jira] {
            assert_eq!(vendor_label(system, "Feature Request"), "feature_request");
            assert_eq!(vendor_label(system, " Login / SSO  "), "login_sso");
            assert_eq!(vendor_label(system, "how-to"), "how-to");
            assert_eq!(vendor_label(system, "Facturación"), "facturación");
        }
        assert_eq!(
            vendor_label(System::ServiceNow, "Billing, Refunds"),
            "Billing  Refunds"
        );
    }

    #[test]
    fn vendor_labels_map_back_to_project_tags() {
        let tags = ["Billing", "Feature Request", "Bug"];
        let mut mapping = LabelMapping::default();
        mapping.overrides.insert("Bug".into(), "defect".into());
        assert_eq!(
            mapping.to_project(System::Zendesk, "feature_request", &tags),
            Some("Feature Request")
        );
        assert_eq!(
            mapping.to_project(System::Jira, "BILLING", &tags),
            Some("Billing")
        );
        assert_eq!(
            mapping.to_project(System::Jira, "defect", &tags),
            Some("Bug")
        );
        assert_eq!(mapping.to_vendor(System::Jira, "bug"), "defect");
        assert_eq!(
            mapping.to_project(System::ServiceNow, "Feature Request", &tags),
            Some("Feature Request")
        );
        assert_eq!(mapping.to_project(System::Zendesk, "vip", &tags), None);
        assert_eq!(mapping.to_project(System::Zendesk, " ", &tags), None);
    }
}
