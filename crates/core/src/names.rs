//! Validated names. Each newtype can only hold a value that passed its rules,
//! so code that receives one never re-checks it.

use std::fmt;

use thiserror::Error;

/// Why a name was refused. The message is written for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid {what} {value:?}: {reason}")]
pub struct NameError {
    pub what: &'static str,
    pub value: String,
    pub reason: String,
}

impl NameError {
    fn new(what: &'static str, value: &str, reason: impl Into<String>) -> Self {
        // Keep the echoed value short: names arrive from untrusted input.
        let value: String = value.chars().take(80).collect();
        Self { what, value, reason: reason.into() }
    }
}

macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }

            #[must_use]
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Path segments that the REST API uses after a template name
/// (`/templates/{name}/versions/…`). A template name may not contain them as
/// a segment, so a raw `/` in a URL stays unambiguous.
pub const RESERVED_NAME_SEGMENTS: &[&str] =
    &["versions", "labels", "render", "diff", "metrics", "rollback", "prompts"];

/// Longest template name accepted (the limit Langfuse applies too).
pub const TEMPLATE_NAME_MAX: usize = 255;

/// A template name: unique, and `/` separates folders (`support/greeting`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct TemplateName(String);
string_newtype!(TemplateName);

impl TemplateName {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let err = |reason: &str| Err(NameError::new("template name", s, reason));
        if s.is_empty() {
            return err("must not be empty");
        }
        if s.chars().count() > TEMPLATE_NAME_MAX {
            return err("must be at most 255 characters");
        }
        if s.trim() != s {
            return err("must not start or end with whitespace");
        }
        if s.chars().any(char::is_control) {
            return err("must not contain control characters");
        }
        if s.contains('|') {
            return err("must not contain '|' (it separates a name from its label or version in includes)");
        }
        if s.starts_with('/') || s.ends_with('/') {
            return err("must not start or end with '/'");
        }
        for segment in s.split('/') {
            if segment.is_empty() {
                return err("must not contain an empty folder ('//')");
            }
            if segment.trim() != segment {
                return err("folder and name segments must not start or end with whitespace");
            }
            if segment == "." || segment == ".." {
                return err("'.' and '..' are not allowed as segments");
            }
            if RESERVED_NAME_SEGMENTS.contains(&segment) {
                return Err(NameError::new(
                    "template name",
                    s,
                    format!("'{segment}' is reserved as a path segment by the API"),
                ));
            }
        }
        Ok(Self(s.to_owned()))
    }

    /// The folder part (`support/en` for `support/en/greeting`), if any.
    #[must_use]
    pub fn folder(&self) -> Option<&str> {
        self.0.rsplit_once('/').map(|(folder, _)| folder)
    }
}

/// The key of a prompt type: lower-case, stable, used in URLs and filters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct PromptTypeKey(String);
string_newtype!(PromptTypeKey);

impl PromptTypeKey {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let valid_start = s.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let valid_rest =
            s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.'));
        if !valid_start || !valid_rest || s.len() > 64 {
            return Err(NameError::new(
                "prompt type key",
                s,
                "use 1-64 characters: a-z, 0-9, '_', '-', '.', starting with a letter or digit",
            ));
        }
        Ok(Self(s.to_owned()))
    }
}

/// The name a label goes by (`production`, `staging`, `latest`, …).
/// The syntax is Langfuse's, so labels travel between the two unchanged.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct LabelName(String);
string_newtype!(LabelName);

impl LabelName {
    /// The label that always points at the newest version. It moves by itself.
    pub const LATEST: &'static str = "latest";

    pub fn parse(s: &str) -> Result<Self, NameError> {
        let ok = (1..=36).contains(&s.len())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.'));
        if !ok {
            return Err(NameError::new("label", s, "use 1-36 characters: a-z, 0-9, '_', '-', '.'"));
        }
        Ok(Self(s.to_owned()))
    }

    #[must_use]
    pub fn latest() -> Self {
        Self(Self::LATEST.to_owned())
    }

    #[must_use]
    pub fn is_latest(&self) -> bool {
        self.0 == Self::LATEST
    }
}

/// A free-form tag on a template.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Tag(String);
string_newtype!(Tag);

impl Tag {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.is_empty() || s.chars().count() > 64 {
            return Err(NameError::new("tag", s, "must be 1-64 characters"));
        }
        if s.trim() != s || s.chars().any(char::is_control) {
            return Err(NameError::new(
                "tag",
                s,
                "must not contain control characters or surrounding whitespace",
            ));
        }
        Ok(Self(s.to_owned()))
    }
}

/// The role of a chat message (`system`, `user`, `assistant`, `tool`, …).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Role(String);
string_newtype!(Role);

impl Role {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let ok = (1..=64).contains(&s.len())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
        if !ok {
            return Err(NameError::new("role", s, "use 1-64 characters: letters, digits, '_', '-'"));
        }
        Ok(Self(s.to_owned()))
    }
}

/// The name of a variable or of a chat placeholder: an identifier as Jinja
/// understands one, so it can be used as `{{ name }}`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Identifier(String);
string_newtype!(Identifier);

impl Identifier {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let mut chars = s.chars();
        let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && s.len() <= 128;
        if !ok {
            return Err(NameError::new(
                "identifier",
                s,
                "use letters, digits and '_', not starting with a digit (at most 128)",
            ));
        }
        Ok(Self(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("greeting")]
    #[case("support/en/greeting")]
    #[case("Grüße an alle")]
    #[case("a/b-c_d.e")]
    fn valid_template_names(#[case] name: &str) {
        assert_eq!(TemplateName::parse(name).unwrap().as_str(), name);
    }

    #[rstest]
    #[case("", "empty")]
    #[case("/abs", "start or end with '/'")]
    #[case("trail/", "start or end with '/'")]
    #[case("a//b", "empty folder")]
    #[case("a|b", "'|'")]
    #[case(" pad", "whitespace")]
    #[case("a/ b", "whitespace")]
    #[case("a/../b", "'..'")]
    #[case("tab\there", "control")]
    #[case("x/versions", "reserved")]
    #[case("render", "reserved")]
    fn invalid_template_names(#[case] name: &str, #[case] why: &str) {
        let err = TemplateName::parse(name).unwrap_err();
        assert!(err.to_string().contains(why), "{err} should mention {why}");
    }

    #[test]
    fn long_names_are_refused() {
        assert!(TemplateName::parse(&"x".repeat(255)).is_ok());
        assert!(TemplateName::parse(&"x".repeat(256)).is_err());
    }

    #[test]
    fn folder_of_a_name() {
        let n = TemplateName::parse("support/en/greeting").unwrap();
        assert_eq!(n.folder(), Some("support/en"));
        assert_eq!(TemplateName::parse("top").unwrap().folder(), None);
    }

    #[rstest]
    #[case("production", true)]
    #[case("canary-2.v1_x", true)]
    #[case("Production", false)]
    #[case("", false)]
    #[case("with space", false)]
    #[case("abcdefghijklmnopqrstuvwxyz0123456789", true)]
    #[case("abcdefghijklmnopqrstuvwxyz0123456789x", false)]
    fn label_names(#[case] s: &str, #[case] ok: bool) {
        assert_eq!(LabelName::parse(s).is_ok(), ok);
    }

    #[rstest]
    #[case("chat", true)]
    #[case("agent.system-v2", true)]
    #[case("Chat", false)]
    #[case("-x", false)]
    #[case("", false)]
    fn type_keys(#[case] s: &str, #[case] ok: bool) {
        assert_eq!(PromptTypeKey::parse(s).is_ok(), ok);
    }

    #[rstest]
    #[case("user_name", true)]
    #[case("_x1", true)]
    #[case("1x", false)]
    #[case("a-b", false)]
    fn identifiers(#[case] s: &str, #[case] ok: bool) {
        assert_eq!(Identifier::parse(s).is_ok(), ok);
    }

    #[test]
    fn names_deserialize_with_validation() {
        let ok: TemplateName = serde_json::from_str("\"a/b\"").unwrap();
        assert_eq!(ok.as_str(), "a/b");
        assert!(serde_json::from_str::<TemplateName>("\"a//b\"").is_err());
    }
}
