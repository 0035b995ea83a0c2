//! Identifier newtypes. Every id is a UUID v7, so ids sort by creation time.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            #[must_use]
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            #[must_use]
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            #[must_use]
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.0.serialize(s)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Uuid::deserialize(d).map(Self)
            }
        }
    };
}

id_type!(
    /// Identifies a prompt type.
    PromptTypeId
);
id_type!(
    /// Identifies a template (the named, owned thing; not one of its versions).
    TemplateId
);
id_type!(
    /// Identifies one version of a template.
    VersionId
);
id_type!(
    /// Identifies one rendering (a row of the `prompt` table).
    PromptId
);
id_type!(
    /// Identifies a user.
    UserId
);
id_type!(
    /// Identifies an API key.
    ApiKeyId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_creation() {
        let a = TemplateId::new();
        let b = TemplateId::new();
        assert!(a < b);
    }

    #[test]
    fn id_round_trips_through_text() {
        let a = VersionId::new();
        let parsed: VersionId = a.to_string().parse().unwrap();
        assert_eq!(a, parsed);
        assert!("not-a-uuid".parse::<VersionId>().is_err());
    }
}
