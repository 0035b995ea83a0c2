//! Differences between two versions, for people: a unified text diff and
//! the list of changes with the bump each needs.

use similar::TextDiff;

use crate::content::VersionContent;
use crate::versioning::{Bump, Change, analyze};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionDiff {
    /// Unified diff of the template text (chat templates as `[role]` blocks).
    pub text_diff: String,
    /// Unified diff of the config, pretty-printed.
    pub config_diff: String,
    /// Every change, parameter-schema changes included.
    pub changes: Vec<Change>,
    /// The least bump that covers the changes; `None` when identical.
    pub required_bump: Option<Bump>,
}

/// Diffs `from` → `to`; `labels` name the two sides in the diff headers.
#[must_use]
pub fn diff_versions(from: &VersionContent, to: &VersionContent, labels: (&str, &str)) -> VersionDiff {
    let changes = analyze(from, to);
    let unified = |a: &str, b: &str| -> String {
        TextDiff::from_lines(a, b).unified_diff().context_radius(3).header(labels.0, labels.1).to_string()
    };
    let pretty =
        |c: &crate::content::Config| serde_json::to_string_pretty(&c.to_value()).unwrap_or_default() + "\n";
    VersionDiff {
        text_diff: unified(&from.body.display_text(), &to.body.display_text()),
        config_diff: unified(&pretty(&from.config), &pretty(&to.config)),
        required_bump: changes.required_bump(),
        changes: changes.changes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::{Config, TemplateBody};
    use crate::schema::ParameterSchema;
    use serde_json::json;

    #[test]
    fn diff_shows_text_and_schema_changes() {
        let a = VersionContent {
            body: TemplateBody::Text("Hello {{ name }}.\nBye.\n".into()),
            parameter_schema: ParameterSchema::parse(
                json!({"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}),
            )
            .unwrap(),
            config: Config::default(),
        };
        let b = VersionContent {
            body: TemplateBody::Text("Hello {{ name }}!\nBye.\n".into()),
            parameter_schema: ParameterSchema::parse(json!({"type":"object","properties":{"name":{"type":"string"},"mood":{"type":"string"}},"required":["name"]})).unwrap(),
            config: Config::parse(json!({"temperature": 0.2})).unwrap(),
        };
        let d = diff_versions(&a, &b, ("v1", "v2"));
        assert!(d.text_diff.contains("--- v1\n+++ v2\n"), "{}", d.text_diff);
        assert!(d.text_diff.contains("-Hello {{ name }}.\n+Hello {{ name }}!\n"));
        assert!(d.config_diff.contains("+  \"temperature\": 0.2"), "{}", d.config_diff);
        assert_eq!(d.required_bump, Some(Bump::Minor));
        let summaries: Vec<&str> = d.changes.iter().map(|c| c.summary.as_str()).collect();
        assert!(summaries.contains(&"parameter `mood` added (optional, string)"), "{summaries:?}");
    }
}
