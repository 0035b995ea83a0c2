//! The built-in roles. They cannot be changed or deleted; custom roles are
//! made of the same permissions.
//!
//! | role | may |
//! |---|---|
//! | viewer | read templates, types, labels, usage, workflows, checks |
//! | consumer | read and render templates, record outcomes of renders |
//! | author | what a viewer may, create templates, new versions, edit drafts, submit for review, move unprotected labels |
//! | reviewer | what a viewer may, approve or reject versions under review |
//! | publisher | what a viewer may, move protected labels, deprecate, archive and restore versions, move unprotected labels |
//! | admin | everything |
//! | auditor | read the audit trail, users, roles, keys, and what a viewer may |

use super::{Action, Permission, Resource, RoleDef};

pub const VIEWER: &str = "viewer";
pub const CONSUMER: &str = "consumer";
pub const AUTHOR: &str = "author";
pub const REVIEWER: &str = "reviewer";
pub const PUBLISHER: &str = "publisher";
pub const ADMIN: &str = "admin";
pub const AUDITOR: &str = "auditor";

/// Every built-in role's name.
pub const NAMES: [&str; 7] = [VIEWER, CONSUMER, AUTHOR, REVIEWER, PUBLISHER, ADMIN, AUDITOR];

use Action::*;
use Resource::*;

const VIEW: &[(Resource, Action)] =
    &[(Template, Read), (Type, Read), (Label, Read), (Prompt, Read), (Workflow, Read), (Check, Read)];

fn role(name: &str, description: &str, grants: &[&[(Resource, Action)]]) -> RoleDef {
    let mut permissions: Vec<Permission> =
        grants.iter().flat_map(|g| g.iter()).map(|(r, a)| Permission::global(*r, *a)).collect();
    permissions.sort_by_key(|p| (p.resource, p.action));
    permissions.dedup();
    RoleDef { name: name.to_owned(), description: description.to_owned(), permissions, builtin: true }
}

/// The built-in roles, in the order of [`NAMES`].
#[must_use]
pub fn roles() -> Vec<RoleDef> {
    let all: Vec<(Resource, Action)> =
        Resource::ALL.iter().flat_map(|r| Action::ALL.iter().map(move |a| (*r, *a))).collect();
    vec![
        role(VIEWER, "Reads templates, types, labels, usage, workflows and checks.", &[VIEW]),
        role(
            CONSUMER,
            "Reads and renders templates and records the outcome of its renders; changes nothing else.",
            &[&[(Template, Read), (Template, Execute), (Type, Read), (Label, Read), (Prompt, Update)]],
        ),
        role(
            AUTHOR,
            "Creates templates and versions, edits drafts, submits them for review, moves unprotected labels.",
            &[
                VIEW,
                &[
                    (Template, Create),
                    (Template, Update),
                    (Template, Execute),
                    (Label, Update),
                    (Label, Delete),
                ],
            ],
        ),
        role(
            REVIEWER,
            "Approves or rejects versions under review.",
            &[VIEW, &[(Template, Approve), (Template, Execute)]],
        ),
        role(
            PUBLISHER,
            "Moves protected labels such as production; deprecates, archives and restores versions.",
            &[
                VIEW,
                &[
                    (Label, Update),
                    (Label, Delete),
                    (Label, Publish),
                    (Template, Publish),
                    (Template, Execute),
                ],
            ],
        ),
        role(ADMIN, "Everything.", &[&all]),
        role(
            AUDITOR,
            "Reads and verifies the audit trail; reads users, roles and keys.",
            &[VIEW, &[(Audit, Read), (User, Read), (Role, Read), (Key, Read)]],
        ),
    ]
}

/// A built-in role by name.
#[must_use]
pub fn role_named(name: &str) -> Option<RoleDef> {
    roles().into_iter().find(|r| r.name == name)
}
