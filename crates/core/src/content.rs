//! What a version holds: the template body (text or chat), its parameter
//! schema and free-form config.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::names::{Identifier, Role};
use crate::schema::ParameterSchema;

/// Largest template text (or sum of chat message contents) accepted.
pub const MAX_TEMPLATE_BYTES: usize = 256 * 1024;
/// Most items a chat template may have.
pub const MAX_CHAT_ITEMS: usize = 256;
/// Largest serialized `config` accepted.
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateKind {
    Text,
    Chat,
}

impl TemplateKind {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Chat => "chat",
        }
    }
}

/// One message of a chat template; its content is a template too.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

/// An item of a chat template: a message, or a named placeholder that the
/// caller fills with a list of messages when rendering (e.g. the history).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ChatItem {
    Message(ChatMessage),
    Placeholder { name: Identifier },
}

impl Serialize for ChatItem {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ChatItem::Message(m) => m.serialize(s),
            ChatItem::Placeholder { name } => {
                #[derive(Serialize)]
                struct P<'a> {
                    r#type: &'static str,
                    name: &'a Identifier,
                }
                P { r#type: "placeholder", name }.serialize(s)
            }
        }
    }
}

impl<'de> Deserialize<'de> for ChatItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Accept Langfuse's shapes: `{role, content}` (optionally with
        // `type: "message"` / `"chatmessage"`) and `{type: "placeholder", name}`.
        let mut map = Map::deserialize(d)?;
        let kind = match map.remove("type") {
            None => None,
            Some(Value::String(t)) => Some(t),
            Some(_) => return Err(D::Error::custom("chat item `type` must be a string")),
        };
        match kind.as_deref() {
            Some("placeholder") => {
                let name =
                    map.remove("name").ok_or_else(|| D::Error::custom("a placeholder needs a `name`"))?;
                let name: Identifier = serde_json::from_value(name).map_err(D::Error::custom)?;
                if let Some(extra) = map.keys().next() {
                    return Err(D::Error::custom(format!("unknown field `{extra}` in a placeholder")));
                }
                Ok(ChatItem::Placeholder { name })
            }
            None | Some("message" | "chatmessage") => {
                let msg: ChatMessage =
                    serde_json::from_value(Value::Object(map)).map_err(D::Error::custom)?;
                Ok(ChatItem::Message(msg))
            }
            Some(other) => Err(D::Error::custom(format!(
                "unknown chat item type {other:?}; expected \"message\" or \"placeholder\""
            ))),
        }
    }
}

/// The template itself.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum TemplateBody {
    Text(String),
    Chat(Vec<ChatItem>),
}

impl TemplateBody {
    #[must_use]
    pub fn kind(&self) -> TemplateKind {
        match self {
            Self::Text(_) => TemplateKind::Text,
            Self::Chat(_) => TemplateKind::Chat,
        }
    }

    /// The template sources in order: the text, or each message's content.
    pub fn sources(&self) -> impl Iterator<Item = &str> {
        let (text, items) = match self {
            Self::Text(t) => (Some(t.as_str()), &[][..]),
            Self::Chat(items) => (None, items.as_slice()),
        };
        text.into_iter().chain(items.iter().filter_map(|i| match i {
            ChatItem::Message(m) => Some(m.content.as_str()),
            ChatItem::Placeholder { .. } => None,
        }))
    }

    /// Names of the chat placeholders, in order.
    pub fn placeholders(&self) -> impl Iterator<Item = &Identifier> {
        let items = match self {
            Self::Text(_) => &[][..],
            Self::Chat(items) => items.as_slice(),
        };
        items.iter().filter_map(|i| match i {
            ChatItem::Placeholder { name } => Some(name),
            ChatItem::Message(_) => None,
        })
    }

    /// A plain-text rendering of the body for diffs and search.
    #[must_use]
    pub fn display_text(&self) -> String {
        match self {
            Self::Text(t) => t.clone(),
            Self::Chat(items) => {
                let mut out = String::new();
                for item in items {
                    if !out.is_empty() {
                        out.push('\n');
                    }
                    match item {
                        ChatItem::Message(m) => {
                            out.push_str(&format!("[{}]\n{}\n", m.role, m.content));
                        }
                        ChatItem::Placeholder { name } => {
                            out.push_str(&format!("[placeholder: {name}]\n"));
                        }
                    }
                }
                out
            }
        }
    }
}

/// Why content was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    #[error("the template is {size} bytes; the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("a chat template needs at least one message")]
    EmptyChat,
    #[error("a chat template may have at most {MAX_CHAT_ITEMS} items")]
    TooManyItems,
    #[error("placeholder {0:?} appears more than once")]
    DuplicatePlaceholder(String),
    #[error("`config` must be a JSON object")]
    ConfigNotObject,
    #[error("{0} contains a NUL character, which is not accepted")]
    Nul(&'static str),
    #[error("`config` is {size} bytes; the limit is {MAX_CONFIG_BYTES}")]
    ConfigTooLarge { size: usize },
}

/// Free-form JSON object stored with a version (model, temperature, tools…).
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize)]
#[serde(transparent)]
pub struct Config(Map<String, Value>);

impl Config {
    pub fn parse(value: Value) -> Result<Self, ContentError> {
        match value {
            Value::Object(map) => {
                if crate::text::find_nul(&Value::Object(map.clone())).is_some() {
                    return Err(ContentError::Nul("`config`"));
                }
                let size = serde_json::to_vec(&map).map(|v| v.len()).unwrap_or(usize::MAX);
                if size > MAX_CONFIG_BYTES {
                    return Err(ContentError::ConfigTooLarge { size });
                }
                Ok(Self(map))
            }
            Value::Null => Ok(Self::default()),
            _ => Err(ContentError::ConfigNotObject),
        }
    }

    #[must_use]
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    #[must_use]
    pub fn to_value(&self) -> Value {
        Value::Object(self.0.clone())
    }
}

impl<'de> Deserialize<'de> for Config {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Config::parse(Value::deserialize(d)?).map_err(D::Error::custom)
    }
}

/// Everything that makes up a version's content; what the content hash covers.
#[derive(Clone, PartialEq, Debug)]
pub struct VersionContent {
    pub body: TemplateBody,
    pub parameter_schema: ParameterSchema,
    pub config: Config,
}

impl VersionContent {
    /// Checks the size and shape rules that do not need the template engine.
    pub fn check_shape(body: &TemplateBody) -> Result<(), ContentError> {
        if body.sources().any(|s| s.contains('\0')) {
            return Err(ContentError::Nul("the template"));
        }
        let size: usize = body.sources().map(str::len).sum();
        if size > MAX_TEMPLATE_BYTES {
            return Err(ContentError::TooLarge { size, limit: MAX_TEMPLATE_BYTES });
        }
        if let TemplateBody::Chat(items) = body {
            if items.is_empty() {
                return Err(ContentError::EmptyChat);
            }
            if items.len() > MAX_CHAT_ITEMS {
                return Err(ContentError::TooManyItems);
            }
            let mut seen = std::collections::BTreeSet::new();
            for p in body.placeholders() {
                if !seen.insert(p.as_str()) {
                    return Err(ContentError::DuplicatePlaceholder(p.to_string()));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chat_items_accept_langfuse_shapes() {
        let items: Vec<ChatItem> = serde_json::from_value(json!([
            {"role": "system", "content": "You are {{ persona }}."},
            {"type": "chatmessage", "role": "user", "content": "hi"},
            {"type": "placeholder", "name": "history"}
        ]))
        .unwrap();
        assert_eq!(items.len(), 3);
        assert!(matches!(&items[2], ChatItem::Placeholder { name } if name.as_str() == "history"));
        // Serialization is canonical: messages without `type`, placeholders with it.
        assert_eq!(
            serde_json::to_value(&items).unwrap(),
            json!([
                {"role": "system", "content": "You are {{ persona }}."},
                {"role": "user", "content": "hi"},
                {"type": "placeholder", "name": "history"}
            ])
        );
    }

    #[test]
    fn bad_chat_items_are_refused_clearly() {
        let err = serde_json::from_value::<ChatItem>(json!({"type": "image"})).unwrap_err();
        assert!(err.to_string().contains("unknown chat item type"));
        let err = serde_json::from_value::<ChatItem>(json!({"type": "placeholder"})).unwrap_err();
        assert!(err.to_string().contains("needs a `name`"));
        let err = serde_json::from_value::<ChatItem>(json!({"role": "user"})).unwrap_err();
        assert!(err.to_string().contains("content"));
    }

    #[test]
    fn shape_rules() {
        assert_eq!(VersionContent::check_shape(&TemplateBody::Chat(vec![])), Err(ContentError::EmptyChat));
        let big = TemplateBody::Text("x".repeat(MAX_TEMPLATE_BYTES + 1));
        assert!(matches!(VersionContent::check_shape(&big), Err(ContentError::TooLarge { .. })));
        let dup = TemplateBody::Chat(vec![
            ChatItem::Placeholder { name: Identifier::parse("h").unwrap() },
            ChatItem::Placeholder { name: Identifier::parse("h").unwrap() },
        ]);
        assert_eq!(VersionContent::check_shape(&dup), Err(ContentError::DuplicatePlaceholder("h".into())));
    }

    #[test]
    fn nul_characters_are_refused() {
        assert_eq!(
            VersionContent::check_shape(&TemplateBody::Text("a\0b".into())),
            Err(ContentError::Nul("the template"))
        );
        assert_eq!(Config::parse(json!({"k": ["x\u{0}"]})), Err(ContentError::Nul("`config`")));
    }

    #[test]
    fn config_must_be_an_object() {
        assert!(Config::parse(json!({"model": "gpt"})).is_ok());
        assert_eq!(Config::parse(Value::Null).unwrap(), Config::default());
        assert_eq!(Config::parse(json!([1])), Err(ContentError::ConfigNotObject));
    }
}
