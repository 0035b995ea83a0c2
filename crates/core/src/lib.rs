//! The promptvault domain: templates, versions, semantic versioning,
//! rendering, validation and policy decisions.
//!
//! Invariant: no I/O. Nothing here touches files, the network, a database or
//! an async runtime; every function is pure given its inputs (reading the
//! clock is left to callers too). That keeps the rules fast to test and
//! usable from every layer.

pub mod audit;
pub mod authz;
pub mod classification;
pub mod compliance;
pub mod content;
pub mod diff;
pub mod hash;
pub mod ids;
pub mod model;
pub mod names;
pub mod refs;
pub mod render;
pub mod scan;
pub mod schema;
pub mod schema_diff;
pub mod sensitive;
pub mod status;
pub mod text;
pub mod versioning;
pub mod workflow;

pub use classification::{DeploymentModel, SecurityClassification};
pub use content::{ChatItem, ChatMessage, Config, TemplateBody, TemplateKind, VersionContent};
pub use hash::ContentHash;
pub use ids::{ApiKeyId, PromptId, PromptTypeId, TemplateId, UserId, VersionId};
pub use names::{Identifier, LabelName, NameError, PromptTypeKey, Role, Tag, TemplateName};
pub use schema::ParameterSchema;
pub use status::VersionStatus;
pub use versioning::Bump;
