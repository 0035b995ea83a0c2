//! Security classification and deployment models (the seed's enums).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How sensitive a template is. The order matters: `Public < Internal <
/// Confidential < Restricted`, so policy can say "at most internal".
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SecurityClassification {
    Public,
    #[default]
    Internal,
    Confidential,
    Restricted,
}

impl SecurityClassification {
    pub const ALL: [Self; 4] = [Self::Public, Self::Internal, Self::Confidential, Self::Restricted];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Internal => "internal",
            Self::Confidential => "confidential",
            Self::Restricted => "restricted",
        }
    }
}

/// Where a request comes from: the seed's three deployment models.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentModel {
    ElectronLocal,
    ElectronRemote,
    #[default]
    WebApplication,
}

impl DeploymentModel {
    pub const ALL: [Self; 3] = [Self::ElectronLocal, Self::ElectronRemote, Self::WebApplication];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ElectronLocal => "electron_local",
            Self::ElectronRemote => "electron_remote",
            Self::WebApplication => "web_application",
        }
    }
}

/// An unknown enum spelling; lists what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}; expected one of: {expected}")]
pub struct UnknownVariant {
    pub what: &'static str,
    pub value: String,
    pub expected: String,
}

macro_rules! text_enum {
    ($ty:ty, $what:literal) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = UnknownVariant;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| UnknownVariant {
                    what: $what,
                    value: s.chars().take(40).collect(),
                    expected: Self::ALL.map(|v| v.as_str()).join(", "),
                })
            }
        }
    };
}

text_enum!(SecurityClassification, "security classification");
text_enum!(DeploymentModel, "deployment model");
pub(crate) use text_enum;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_is_ordered() {
        use SecurityClassification::*;
        assert!(Public < Internal && Internal < Confidential && Confidential < Restricted);
    }

    #[test]
    fn text_round_trip() {
        for c in SecurityClassification::ALL {
            assert_eq!(c.as_str().parse::<SecurityClassification>().unwrap(), c);
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
        for d in DeploymentModel::ALL {
            assert_eq!(d.as_str().parse::<DeploymentModel>().unwrap(), d);
        }
        let err = "secret".parse::<SecurityClassification>().unwrap_err();
        assert!(err.to_string().contains("public, internal, confidential, restricted"));
    }
}
