//! Approval workflows: which approvals a version in `review` needs before it
//! may become `approved`, and whether one more decision may be taken.
//!
//! A [`WorkflowDefinition`] is an ordered list of [`WorkflowStep`]s and the
//! security classifications it applies to. A [`WorkflowSet`] holds the
//! configured workflows and answers "which workflow governs a template of this
//! classification"; no classification may be claimed by two workflows.
//!
//! # Rules
//!
//! - **Steps run in order.** A decision is always taken in the *current*
//!   step: the first one that does not yet have its required approvals.
//! - **Four eyes.** The author of a version never approves it, in any step.
//! - **One person counts once.** Within one review round a user approves at
//!   most once across the whole workflow, so a two-step workflow needs two
//!   different people besides the author.
//! - **Roles are explicit.** The approver must hold one of the current step's
//!   `approver_roles`; `admin` gets no bypass unless the step lists it.
//! - **A complete workflow is final.** Once every step has its approvals, no
//!   further approval or rejection is accepted; the caller moves the version
//!   to `approved`.
//! - **Rejection** is a decision of the current step too: it needs one of the
//!   step's roles and a non-empty comment, and the author cannot reject (the
//!   author withdraws the version to `draft` instead).
//!
//! # Review rounds
//!
//! The approvals passed to these functions are those of the *current review
//! round* of one version: everything recorded since the version was last
//! submitted. When a version is rejected or withdrawn, its round ends; on
//! resubmission the caller starts a new round and passes only its approvals
//! (for instance by keying approvals on a round number, or by deleting them).
//! Approvals naming a step the definition no longer has are ignored for
//! counting but still mark their user as having approved (failing closed).
//!
//! # Concurrency
//!
//! Everything here is pure: it decides from the approvals it is given. Two
//! decisions on one version that run concurrently could each see the other's
//! approval missing (two people completing a one-approval step, or one person
//! approving twice from two sessions). The caller must therefore serialise
//! decisions on one version — take a row lock on the version (`SELECT … FOR
//! UPDATE` on PostgreSQL; SQLite's single writer with `BEGIN IMMEDIATE`) —
//! then, inside that transaction, read the round's approvals, re-run
//! [`check_approval`] / [`check_rejection`] on what it read, insert the
//! approval, and move the version to `approved` when [`is_final`] says so,
//! before committing. A check made before the transaction (for instance to
//! render the UI) is advice only.
//!
//! # Time
//!
//! Nothing here reads the clock: callers pass `now` and the instants at which
//! decisions were taken.

use std::collections::HashSet;
use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::classification::SecurityClassification;

/// Longest workflow or step name accepted.
pub const WORKFLOW_NAME_MAX: usize = 64;
/// Longest approver role name accepted.
pub const ROLE_NAME_MAX: usize = 64;
/// The most approvals one step may require (a guard against typos such as
/// `required_approvals = 100000`, which no team could satisfy).
pub const MAX_REQUIRED_APPROVALS: u32 = 100;
/// The longest SLA one step may have: 365 days.
pub const MAX_SLA_HOURS: u32 = 24 * 365;

/// The role that reviews content in the default workflows.
pub const ROLE_REVIEWER: &str = "reviewer";
/// The role that signs off sensitive content in the default workflows.
pub const ROLE_PUBLISHER: &str = "publisher";
/// The administrator role. It is an approver only where a step lists it.
pub const ROLE_ADMIN: &str = "admin";

/// An approval workflow: ordered steps, applied to the listed classifications.
///
/// Deserializing checks the shape only; call [`validate`](Self::validate)
/// (or use [`from_json`](Self::from_json) / [`parse_workflows_toml`] /
/// [`WorkflowSet::new`], which do) before relying on a definition.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct WorkflowDefinition {
    /// `a-z`, `0-9`, `_`, `-`, starting with a letter, at most 64 characters.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The classifications whose templates this workflow governs.
    pub classifications: Vec<SecurityClassification>,
    /// The steps, in the order they must be completed.
    pub steps: Vec<WorkflowStep>,
}

/// One step of a workflow.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct WorkflowStep {
    /// Unique within its workflow; same syntax as a workflow name.
    pub name: String,
    /// Role names; an approver must hold at least one of them.
    pub approver_roles: Vec<String>,
    /// How many different people must approve this step (1 when left out).
    #[serde(default = "one")]
    pub required_approvals: u32,
    /// How long the step may wait for its approvals, in hours, if bounded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla_hours: Option<u32>,
}

const fn one() -> u32 {
    1
}

/// Why a workflow definition or a set of them was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WorkflowError {
    #[error("invalid workflow name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("workflow \"{workflow}\" has no steps; it needs at least one")]
    NoSteps { workflow: String },
    #[error(
        "workflow \"{workflow}\" applies to no security classification; list at least one of \
         public, internal, confidential, restricted"
    )]
    NoClassifications { workflow: String },
    #[error("workflow \"{workflow}\" lists the classification {classification} twice")]
    RepeatedClassification { workflow: String, classification: SecurityClassification },
    #[error("workflow \"{workflow}\": invalid step name {step:?}: {reason}")]
    InvalidStepName { workflow: String, step: String, reason: &'static str },
    #[error("workflow \"{workflow}\" has two steps named \"{step}\"; step names must be unique")]
    DuplicateStep { workflow: String, step: String },
    #[error("step \"{step}\" of workflow \"{workflow}\" has no approver role; list at least one")]
    NoApproverRoles { workflow: String, step: String },
    #[error("step \"{step}\" of workflow \"{workflow}\": invalid role {role:?}: {reason}")]
    InvalidRole { workflow: String, step: String, role: String, reason: &'static str },
    #[error("step \"{step}\" of workflow \"{workflow}\" lists the role \"{role}\" twice")]
    RepeatedRole { workflow: String, step: String, role: String },
    #[error(
        "step \"{step}\" of workflow \"{workflow}\" requires {required} approvals; it must require \
         between 1 and {max}",
        max = MAX_REQUIRED_APPROVALS
    )]
    RequiredApprovalsOutOfRange { workflow: String, step: String, required: u32 },
    #[error(
        "step \"{step}\" of workflow \"{workflow}\" has an SLA of {hours} hours; it must be between \
         1 and {max} hours, or left out for no SLA",
        max = MAX_SLA_HOURS
    )]
    SlaOutOfRange { workflow: String, step: String, hours: u32 },
    #[error("two workflows are named \"{name}\"; workflow names must be unique")]
    DuplicateWorkflow { name: String },
    #[error(
        "the classification {classification} is claimed by workflow \"{first}\" and by workflow \
         \"{second}\"; each classification may have only one workflow"
    )]
    ClassificationClaimedTwice { classification: SecurityClassification, first: String, second: String },
    #[error("cannot read workflows from {format}: {message}")]
    Parse { format: &'static str, message: String },
}

impl WorkflowError {
    /// A stable machine-readable code naming the problem (for problem+json).
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::InvalidName { .. } => "invalid_workflow_name",
            Self::NoSteps { .. } => "workflow_without_steps",
            Self::NoClassifications { .. } => "workflow_without_classifications",
            Self::RepeatedClassification { .. } => "repeated_classification",
            Self::InvalidStepName { .. } => "invalid_step_name",
            Self::DuplicateStep { .. } => "duplicate_step",
            Self::NoApproverRoles { .. } => "step_without_approver_roles",
            Self::InvalidRole { .. } => "invalid_approver_role",
            Self::RepeatedRole { .. } => "repeated_approver_role",
            Self::RequiredApprovalsOutOfRange { .. } => "required_approvals_out_of_range",
            Self::SlaOutOfRange { .. } => "sla_out_of_range",
            Self::DuplicateWorkflow { .. } => "duplicate_workflow",
            Self::ClassificationClaimedTwice { .. } => "classification_claimed_twice",
            Self::Parse { .. } => "invalid_workflow",
        }
    }
}

/// Names arrive from untrusted input: keep what is echoed back short.
fn short(s: &str) -> String {
    s.chars().take(80).collect()
}

const NAME_RULE: &str = "use 1-64 characters: a-z, 0-9, '_', '-', starting with a letter";
const ROLE_RULE: &str = "use 1-64 characters: letters, digits, '_', '-', '.', ':'";

fn name_ok(s: &str) -> bool {
    let mut chars = s.chars();
    s.len() <= WORKFLOW_NAME_MAX
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'))
}

fn role_ok(s: &str) -> bool {
    (1..=ROLE_NAME_MAX).contains(&s.len())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
}

impl WorkflowDefinition {
    /// Checks the rules a usable workflow meets: a valid name, at least one
    /// classification (none listed twice), at least one step, unique valid
    /// step names, and in every step at least one valid approver role (none
    /// listed twice), `1..=`[`MAX_REQUIRED_APPROVALS`] required approvals
    /// and an SLA, if any, of `1..=`[`MAX_SLA_HOURS`] hours.
    pub fn validate(&self) -> Result<(), WorkflowError> {
        if !name_ok(&self.name) {
            return Err(WorkflowError::InvalidName { name: short(&self.name), reason: NAME_RULE });
        }
        let workflow = || self.name.clone();
        if self.classifications.is_empty() {
            return Err(WorkflowError::NoClassifications { workflow: workflow() });
        }
        let mut seen_classifications = HashSet::new();
        for &classification in &self.classifications {
            if !seen_classifications.insert(classification) {
                return Err(WorkflowError::RepeatedClassification { workflow: workflow(), classification });
            }
        }
        if self.steps.is_empty() {
            return Err(WorkflowError::NoSteps { workflow: workflow() });
        }
        let mut step_names = HashSet::new();
        for step in &self.steps {
            if !name_ok(&step.name) {
                return Err(WorkflowError::InvalidStepName {
                    workflow: workflow(),
                    step: short(&step.name),
                    reason: NAME_RULE,
                });
            }
            if !step_names.insert(step.name.as_str()) {
                return Err(WorkflowError::DuplicateStep { workflow: workflow(), step: step.name.clone() });
            }
            if step.approver_roles.is_empty() {
                return Err(WorkflowError::NoApproverRoles { workflow: workflow(), step: step.name.clone() });
            }
            let mut roles = HashSet::new();
            for role in &step.approver_roles {
                if !role_ok(role) {
                    return Err(WorkflowError::InvalidRole {
                        workflow: workflow(),
                        step: step.name.clone(),
                        role: short(role),
                        reason: ROLE_RULE,
                    });
                }
                if !roles.insert(role.as_str()) {
                    return Err(WorkflowError::RepeatedRole {
                        workflow: workflow(),
                        step: step.name.clone(),
                        role: role.clone(),
                    });
                }
            }
            if !(1..=MAX_REQUIRED_APPROVALS).contains(&step.required_approvals) {
                return Err(WorkflowError::RequiredApprovalsOutOfRange {
                    workflow: workflow(),
                    step: step.name.clone(),
                    required: step.required_approvals,
                });
            }
            if let Some(hours) = step.sla_hours
                && !(1..=MAX_SLA_HOURS).contains(&hours)
            {
                return Err(WorkflowError::SlaOutOfRange {
                    workflow: workflow(),
                    step: step.name.clone(),
                    hours,
                });
            }
        }
        Ok(())
    }

    /// Reads one definition from JSON (the API's shape) and validates it.
    pub fn from_json(json: &str) -> Result<Self, WorkflowError> {
        let def: Self = serde_json::from_str(json)
            .map_err(|e| WorkflowError::Parse { format: "JSON", message: e.to_string() })?;
        def.validate()?;
        Ok(def)
    }

    /// Whether this workflow governs templates of `classification`.
    #[must_use]
    pub fn applies_to(&self, classification: SecurityClassification) -> bool {
        self.classifications.contains(&classification)
    }

    /// The index of the step called `name`.
    #[must_use]
    pub fn step_index(&self, name: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.name == name)
    }
}

/// The workflows file: `[[workflow]]` tables, each with `[[workflow.step]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkflowsFile {
    #[serde(default)]
    workflow: Vec<TomlWorkflow>,
}

/// A workflow as the TOML file spells it: `step` (singular) reads naturally
/// as `[[workflow.step]]`; `steps` is accepted too.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlWorkflow {
    name: String,
    #[serde(default)]
    description: Option<String>,
    classifications: Vec<SecurityClassification>,
    #[serde(alias = "steps")]
    step: Vec<WorkflowStep>,
}

/// Reads the workflows file (TOML) and validates every definition in it.
///
/// ```toml
/// [[workflow]]
/// name = "standard"
/// classifications = ["public", "internal"]
///
/// [[workflow.step]]
/// name = "review"
/// approver_roles = ["reviewer", "admin"]
/// required_approvals = 1
/// sla_hours = 48
/// ```
///
/// Unknown keys are refused. An empty file yields no workflows. Conflicts
/// between workflows (a classification claimed twice) are checked by
/// [`WorkflowSet::new`].
pub fn parse_workflows_toml(text: &str) -> Result<Vec<WorkflowDefinition>, WorkflowError> {
    let file: WorkflowsFile =
        toml::from_str(text).map_err(|e| WorkflowError::Parse { format: "TOML", message: e.to_string() })?;
    let defs: Vec<WorkflowDefinition> = file
        .workflow
        .into_iter()
        .map(|w| WorkflowDefinition {
            name: w.name,
            description: w.description,
            classifications: w.classifications,
            steps: w.step,
        })
        .collect();
    for def in &defs {
        def.validate()?;
    }
    Ok(defs)
}

/// The default workflows, used when none are configured:
///
/// | workflow | classifications | steps |
/// | --- | --- | --- |
/// | `standard` | public, internal | `review`: reviewer or admin, 1 approval, SLA 48 h |
/// | `sensitive` | confidential, restricted | `review`: reviewer or admin, 1 approval, SLA 48 h; then `security`: publisher or admin, 1 approval, SLA 24 h |
///
/// So a public or internal version needs one person other than its author;
/// a confidential or restricted one needs two different people other than
/// its author, the second holding a publishing role. `admin` is listed in
/// every step so that a fresh installation, where `admin` is the only role,
/// can approve anything at all.
#[must_use]
pub fn default_workflows() -> Vec<WorkflowDefinition> {
    let step = |name: &str, roles: &[&str], sla: u32| WorkflowStep {
        name: name.to_owned(),
        approver_roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        required_approvals: 1,
        sla_hours: Some(sla),
    };
    use SecurityClassification::*;
    vec![
        WorkflowDefinition {
            name: "standard".to_owned(),
            description: Some("One review by someone other than the author.".to_owned()),
            classifications: vec![Public, Internal],
            steps: vec![step("review", &[ROLE_REVIEWER, ROLE_ADMIN], 48)],
        },
        WorkflowDefinition {
            name: "sensitive".to_owned(),
            description: Some(
                "A review, then a security sign-off: two different people, neither of them the author."
                    .to_owned(),
            ),
            classifications: vec![Confidential, Restricted],
            steps: vec![
                step("review", &[ROLE_REVIEWER, ROLE_ADMIN], 48),
                step("security", &[ROLE_PUBLISHER, ROLE_ADMIN], 24),
            ],
        },
    ]
}

/// The configured workflows: each valid, names unique, and no classification
/// governed by two of them.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct WorkflowSet {
    workflows: Vec<WorkflowDefinition>,
}

impl WorkflowSet {
    pub fn new(workflows: Vec<WorkflowDefinition>) -> Result<Self, WorkflowError> {
        for (i, def) in workflows.iter().enumerate() {
            def.validate()?;
            for earlier in &workflows[..i] {
                if earlier.name == def.name {
                    return Err(WorkflowError::DuplicateWorkflow { name: def.name.clone() });
                }
                if let Some(&classification) = def.classifications.iter().find(|c| earlier.applies_to(**c)) {
                    return Err(WorkflowError::ClassificationClaimedTwice {
                        classification,
                        first: earlier.name.clone(),
                        second: def.name.clone(),
                    });
                }
            }
        }
        Ok(Self { workflows })
    }

    /// The workflows in force when `configured` are the stored ones: every
    /// configured workflow, then each [default workflow](default_workflows)
    /// whose name is not configured, restricted to the classifications no
    /// configured workflow covers (and left out when none remain).
    ///
    /// So configuring a workflow for `confidential` only leaves `restricted`
    /// with the default `sensitive` workflow; configuring a workflow *named*
    /// `sensitive` replaces that default entirely, and a classification it
    /// does not list is then governed by no workflow (approval is refused).
    pub fn with_defaults(configured: Vec<WorkflowDefinition>) -> Result<Self, WorkflowError> {
        let mut all = configured;
        let covered: HashSet<SecurityClassification> =
            all.iter().flat_map(|w| w.classifications.iter().copied()).collect();
        for mut default in default_workflows() {
            if all.iter().any(|w| w.name == default.name) {
                continue;
            }
            default.classifications.retain(|c| !covered.contains(c));
            if !default.classifications.is_empty() {
                all.push(default);
            }
        }
        Self::new(all)
    }

    /// The workflow governing templates of `classification`, if one does.
    ///
    /// `None` means no workflow is configured for it. The caller decides what
    /// that means; denying approval (deny by default) is the safe answer.
    #[must_use]
    pub fn for_classification(&self, classification: SecurityClassification) -> Option<&WorkflowDefinition> {
        self.workflows.iter().find(|w| w.applies_to(classification))
    }

    /// The workflow called `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&WorkflowDefinition> {
        self.workflows.iter().find(|w| w.name == name)
    }

    #[must_use]
    pub fn workflows(&self) -> &[WorkflowDefinition] {
        &self.workflows
    }

    /// The classifications no workflow governs, in order.
    #[must_use]
    pub fn uncovered(&self) -> Vec<SecurityClassification> {
        SecurityClassification::ALL.into_iter().filter(|c| self.for_classification(*c).is_none()).collect()
    }
}

impl Default for WorkflowSet {
    /// The set of [`default_workflows`].
    fn default() -> Self {
        Self { workflows: default_workflows() }
    }
}

/// One approval recorded in the current review round of a version.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct Approval {
    /// The name of the step the approval was given in.
    pub step: String,
    pub user_id: String,
    pub decided_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// Where a review round stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
pub struct ReviewProgress {
    /// The index of the step awaiting approvals; `None` once all are done
    /// (or, with `complete == false`, for a definition without steps, which
    /// [`WorkflowDefinition::validate`] refuses).
    pub current_step: Option<usize>,
    /// Approvals counted so far in the current step (0 when there is none).
    pub approvals_in_step: u32,
    /// Approvals the current step requires (0 when there is none).
    pub required: u32,
    /// Every step has its approvals.
    pub complete: bool,
}

/// The approvals one step counts, and when it got the last one it needed.
#[derive(Clone, Copy, Default)]
struct StepTally {
    count: u32,
    completed_at: Option<DateTime<Utc>>,
}

/// A step that somehow requires 0 approvals is treated as requiring 1, so a
/// definition that skipped validation fails closed.
fn required(step: &WorkflowStep) -> u32 {
    step.required_approvals.max(1)
}

/// Counts approvals per step in the order they were decided: each user
/// counts once (their earliest approval), approvals naming unknown steps
/// count nowhere.
fn tally(def: &WorkflowDefinition, approvals: &[Approval]) -> Vec<StepTally> {
    let mut ordered: Vec<&Approval> = approvals.iter().collect();
    ordered.sort_by_key(|a| a.decided_at);
    let mut seen = HashSet::new();
    let mut steps = vec![StepTally::default(); def.steps.len()];
    for approval in ordered {
        if !seen.insert(approval.user_id.as_str()) {
            continue;
        }
        let Some(i) = def.step_index(&approval.step) else { continue };
        let t = &mut steps[i];
        t.count = t.count.saturating_add(1);
        if t.completed_at.is_none() && t.count >= required(&def.steps[i]) {
            t.completed_at = Some(approval.decided_at);
        }
    }
    steps
}

fn progress_of(def: &WorkflowDefinition, tallies: &[StepTally]) -> ReviewProgress {
    if def.steps.is_empty() {
        return ReviewProgress { current_step: None, approvals_in_step: 0, required: 0, complete: false };
    }
    match def.steps.iter().zip(tallies).position(|(s, t)| t.count < required(s)) {
        Some(i) => ReviewProgress {
            current_step: Some(i),
            approvals_in_step: tallies[i].count,
            required: required(&def.steps[i]),
            complete: false,
        },
        None => ReviewProgress { current_step: None, approvals_in_step: 0, required: 0, complete: true },
    }
}

impl ReviewProgress {
    /// Where the round stands given its approvals (see the module's rules:
    /// a user counts once, the first step short of approvals is current).
    ///
    /// This trusts that the approvals were admitted by [`check_approval`]
    /// (it does not know the author).
    #[must_use]
    pub fn compute(def: &WorkflowDefinition, approvals: &[Approval]) -> Self {
        progress_of(def, &tally(def, approvals))
    }

    /// The step awaiting approvals, if any.
    #[must_use]
    pub fn step<'a>(&self, def: &'a WorkflowDefinition) -> Option<&'a WorkflowStep> {
        self.current_step.and_then(|i| def.steps.get(i))
    }
}

/// Whether the round has every approval its workflow requires, so the
/// version may move to `approved`. An invalid definition is never final.
#[must_use]
pub fn is_final(def: &WorkflowDefinition, approvals: &[Approval]) -> bool {
    def.validate().is_ok() && ReviewProgress::compute(def, approvals).complete
}

/// When the current step started: the submission for the first step, else
/// the moment the previous step got its last required approval. `None` once
/// the workflow is complete. Feed it to [`overdue`].
#[must_use]
pub fn current_step_started_at(
    def: &WorkflowDefinition,
    submitted_at: DateTime<Utc>,
    approvals: &[Approval],
) -> Option<DateTime<Utc>> {
    let tallies = tally(def, approvals);
    let current = progress_of(def, &tallies).current_step?;
    Some(tallies[..current].iter().filter_map(|t| t.completed_at).fold(submitted_at, DateTime::max))
}

/// What an admissible approval will do once recorded.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct ApprovalOutcome {
    /// The step the approval counts for (record it under this name).
    pub step: String,
    /// The step has its required approvals with this one.
    pub step_complete: bool,
    /// The whole workflow is complete with this one: move the version to
    /// `approved`.
    pub workflow_complete: bool,
    /// The step that waits for approvals next, when this one completes a
    /// step but not the workflow; `None` otherwise.
    pub next_step: Option<String>,
    /// Approvals the step has with this one.
    pub approvals_in_step: u32,
    /// Approvals the step requires.
    pub required: u32,
}

/// Why a decision (approval or rejection) was refused. The message names the
/// rule, for the person who tried.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ApprovalRefused {
    #[error("the author of a version cannot approve it (four-eyes rule)")]
    AuthorCannotApprove,
    #[error("the author of a version cannot reject it; the author withdraws it to draft instead")]
    AuthorCannotReject,
    #[error("you already approved this version in step \"{step}\"; one person counts once")]
    AlreadyApproved { step: String },
    #[error("step \"{step}\" needs {}", RoleList(.roles))]
    MissingRole { step: String, roles: Vec<String> },
    #[error(
        "this version already has every approval workflow \"{workflow}\" requires; no further decision \
         is taken on it"
    )]
    WorkflowComplete { workflow: String },
    #[error("a rejection needs a comment saying what to change")]
    CommentRequired,
    #[error("workflow \"{workflow}\" is invalid, so no decision can be taken under it: {reason}")]
    InvalidWorkflow { workflow: String, reason: String },
}

impl ApprovalRefused {
    /// A stable machine-readable code (for problem+json).
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::AuthorCannotApprove => "four_eyes",
            Self::AuthorCannotReject => "author_cannot_reject",
            Self::AlreadyApproved { .. } => "already_approved",
            Self::MissingRole { .. } => "missing_approver_role",
            Self::WorkflowComplete { .. } => "workflow_complete",
            Self::CommentRequired => "comment_required",
            Self::InvalidWorkflow { .. } => "invalid_workflow",
        }
    }
}

/// "the role reviewer" / "one of the roles publisher, admin".
struct RoleList<'a>(&'a [String]);

impl fmt::Display for RoleList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [only] => write!(f, "the role {only}"),
            roles => write!(f, "one of the roles {}", roles.join(", ")),
        }
    }
}

/// Where the round stands when a decision can be taken in it (a current
/// step exists), or why none can: the definition is invalid or complete.
fn decision_step(
    def: &WorkflowDefinition,
    approvals: &[Approval],
) -> Result<ReviewProgress, ApprovalRefused> {
    def.validate().map_err(|e| ApprovalRefused::InvalidWorkflow {
        workflow: short(&def.name),
        reason: e.to_string(),
    })?;
    let progress = ReviewProgress::compute(def, approvals);
    if progress.current_step.is_none() {
        return Err(ApprovalRefused::WorkflowComplete { workflow: def.name.clone() });
    }
    Ok(progress)
}

fn require_role(step: &WorkflowStep, approver_roles: &[String]) -> Result<(), ApprovalRefused> {
    if step.approver_roles.iter().any(|r| approver_roles.contains(r)) {
        Ok(())
    } else {
        Err(ApprovalRefused::MissingRole { step: step.name.clone(), roles: step.approver_roles.clone() })
    }
}

/// Whether `approver_id` (holding `approver_roles`) may approve the version
/// written by `author_id`, given the round's `approvals`, and what that
/// approval would do.
///
/// Refused, in this order of checks: the definition is invalid; the workflow
/// is already complete; the approver is the author (four eyes); the approver
/// already approved any step of this round (one person counts once); the
/// approver holds none of the current step's roles (no `admin` bypass unless
/// listed). User ids are compared exactly; pass them in one canonical form.
///
/// See the module's *Concurrency* section: re-run this inside the
/// transaction that records the approval.
pub fn check_approval(
    def: &WorkflowDefinition,
    author_id: &str,
    approvals: &[Approval],
    approver_id: &str,
    approver_roles: &[String],
) -> Result<ApprovalOutcome, ApprovalRefused> {
    let progress = decision_step(def, approvals)?;
    let Some(index) = progress.current_step else {
        return Err(ApprovalRefused::WorkflowComplete { workflow: def.name.clone() });
    };
    if approver_id == author_id {
        return Err(ApprovalRefused::AuthorCannotApprove);
    }
    if let Some(earlier) = approvals.iter().find(|a| a.user_id == approver_id) {
        return Err(ApprovalRefused::AlreadyApproved { step: earlier.step.clone() });
    }
    let step = &def.steps[index];
    require_role(step, approver_roles)?;

    // What the round looks like with this approval: the approver is new to
    // the round, so it counts wherever it is placed in time.
    let mut after = approvals.to_vec();
    after.push(Approval {
        step: step.name.clone(),
        user_id: approver_id.to_owned(),
        decided_at: DateTime::<Utc>::MAX_UTC,
        comment: None,
    });
    let next = ReviewProgress::compute(def, &after);
    let step_complete = next.current_step != Some(index);
    Ok(ApprovalOutcome {
        step: step.name.clone(),
        step_complete,
        workflow_complete: next.complete,
        next_step: if step_complete { next.step(def).map(|s| s.name.clone()) } else { None },
        approvals_in_step: progress.approvals_in_step.saturating_add(1),
        required: progress.required,
    })
}

/// Whether `approver_id` may reject the version written by `author_id`
/// (sending it back to `draft`) in the current step of the round.
///
/// Refused when the definition is invalid, the workflow is already complete,
/// the rejecter is the author (who withdraws instead), the rejecter holds
/// none of the current step's roles, or `comment` is missing or blank.
/// Someone who approved earlier in the round may still reject if they hold
/// a role of the current step: a rejection is a veto, never counted.
pub fn check_rejection(
    def: &WorkflowDefinition,
    author_id: &str,
    approvals: &[Approval],
    approver_id: &str,
    approver_roles: &[String],
    comment: Option<&str>,
) -> Result<(), ApprovalRefused> {
    let progress = decision_step(def, approvals)?;
    let Some(step) = progress.step(def) else {
        return Err(ApprovalRefused::WorkflowComplete { workflow: def.name.clone() });
    };
    if approver_id == author_id {
        return Err(ApprovalRefused::AuthorCannotReject);
    }
    require_role(step, approver_roles)?;
    if comment.is_none_or(|c| c.trim().is_empty()) {
        return Err(ApprovalRefused::CommentRequired);
    }
    Ok(())
}

/// A step past its SLA.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct Overdue {
    pub step: String,
    pub due_at: DateTime<Utc>,
    /// Whole hours past `due_at` (0: less than an hour late).
    pub hours_over: u64,
}

/// When step `step` is due if it started at `step_started_at`; `None` when
/// the step has no SLA (or does not exist).
#[must_use]
pub fn step_due_at(
    def: &WorkflowDefinition,
    step: usize,
    step_started_at: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let hours = def.steps.get(step)?.sla_hours?;
    step_started_at.checked_add_signed(TimeDelta::hours(i64::from(hours)))
}

/// Whether the current step is past its SLA at `now`. Exactly at the due
/// instant it is not overdue yet; one moment later it is.
#[must_use]
pub fn overdue(
    def: &WorkflowDefinition,
    step_started_at: DateTime<Utc>,
    current_step: usize,
    now: DateTime<Utc>,
) -> Option<Overdue> {
    let due_at = step_due_at(def, current_step, step_started_at)?;
    if now <= due_at {
        return None;
    }
    let hours_over = u64::try_from((now - due_at).num_hours()).unwrap_or(0);
    Some(Overdue { step: def.steps[current_step].name.clone(), due_at, hours_over })
}

#[cfg(test)]
mod tests {
    use super::*;
    use SecurityClassification::*;
    use chrono::TimeZone;

    const AUTHOR: &str = "u-author";

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 1, 9, 0, 0).unwrap()
    }

    fn at(minutes: i64) -> DateTime<Utc> {
        t0() + TimeDelta::minutes(minutes)
    }

    fn roles(r: &[&str]) -> Vec<String> {
        r.iter().map(|s| (*s).to_owned()).collect()
    }

    fn step(name: &str, r: &[&str], required: u32, sla: Option<u32>) -> WorkflowStep {
        WorkflowStep {
            name: name.to_owned(),
            approver_roles: roles(r),
            required_approvals: required,
            sla_hours: sla,
        }
    }

    fn sensitive() -> WorkflowDefinition {
        default_workflows().into_iter().find(|w| w.name == "sensitive").unwrap()
    }

    /// Two steps, the first needing two people.
    fn two_by_two() -> WorkflowDefinition {
        WorkflowDefinition {
            name: "strict".to_owned(),
            description: None,
            classifications: vec![Restricted],
            steps: vec![
                step("review", &["reviewer"], 2, Some(48)),
                step("security", &["publisher"], 1, None),
            ],
        }
    }

    /// Checks an approval and records it when admitted.
    fn approve(
        def: &WorkflowDefinition,
        approvals: &mut Vec<Approval>,
        user: &str,
        user_roles: &[&str],
        minute: i64,
    ) -> Result<ApprovalOutcome, ApprovalRefused> {
        let outcome = check_approval(def, AUTHOR, approvals, user, &roles(user_roles))?;
        approvals.push(Approval {
            step: outcome.step.clone(),
            user_id: user.to_owned(),
            decided_at: at(minute),
            comment: None,
        });
        Ok(outcome)
    }

    #[test]
    fn two_step_workflow_end_to_end() {
        let def = sensitive();
        let mut approvals = Vec::new();
        assert_eq!(
            ReviewProgress::compute(&def, &approvals),
            ReviewProgress { current_step: Some(0), approvals_in_step: 0, required: 1, complete: false }
        );
        assert!(!is_final(&def, &approvals));
        assert_eq!(current_step_started_at(&def, t0(), &approvals), Some(t0()));

        let first = approve(&def, &mut approvals, "u-rev", &["reviewer"], 60).unwrap();
        assert_eq!(
            first,
            ApprovalOutcome {
                step: "review".to_owned(),
                step_complete: true,
                workflow_complete: false,
                next_step: Some("security".to_owned()),
                approvals_in_step: 1,
                required: 1,
            }
        );
        let progress = ReviewProgress::compute(&def, &approvals);
        assert_eq!(progress.current_step, Some(1));
        assert_eq!(progress.step(&def).unwrap().name, "security");
        assert_eq!((progress.approvals_in_step, progress.required, progress.complete), (0, 1, false));
        assert!(!is_final(&def, &approvals));
        // The security step started when the review step was completed.
        assert_eq!(current_step_started_at(&def, t0(), &approvals), Some(at(60)));

        // A reviewer cannot sign off security.
        let err = approve(&def, &mut approvals, "u-rev2", &["reviewer"], 90).unwrap_err();
        assert_eq!(err.to_string(), "step \"security\" needs one of the roles publisher, admin");

        let second = approve(&def, &mut approvals, "u-pub", &["publisher"], 120).unwrap();
        assert_eq!(
            second,
            ApprovalOutcome {
                step: "security".to_owned(),
                step_complete: true,
                workflow_complete: true,
                next_step: None,
                approvals_in_step: 1,
                required: 1,
            }
        );
        let done = ReviewProgress::compute(&def, &approvals);
        assert_eq!(
            done,
            ReviewProgress { current_step: None, approvals_in_step: 0, required: 0, complete: true }
        );
        assert!(is_final(&def, &approvals));
        assert_eq!(current_step_started_at(&def, t0(), &approvals), None);
        assert_eq!(approvals.len(), 2);
    }

    #[test]
    fn a_step_needing_two_people_stays_open_after_one() {
        let def = two_by_two();
        let mut approvals = Vec::new();
        let one = approve(&def, &mut approvals, "a", &["reviewer"], 1).unwrap();
        assert_eq!(
            (one.step_complete, one.approvals_in_step, one.required, one.next_step),
            (false, 1, 2, None)
        );
        assert_eq!(ReviewProgress::compute(&def, &approvals).current_step, Some(0));
        let two = approve(&def, &mut approvals, "b", &["reviewer"], 2).unwrap();
        assert_eq!(two.next_step.as_deref(), Some("security"));
        assert!(two.step_complete && !two.workflow_complete);
        let three = approve(&def, &mut approvals, "c", &["publisher"], 3).unwrap();
        assert!(three.workflow_complete);
        assert!(is_final(&def, &approvals));
    }

    #[test]
    fn the_author_never_approves_even_with_every_role() {
        let def = sensitive();
        let err = check_approval(&def, AUTHOR, &[], AUTHOR, &roles(&["reviewer", "publisher", "admin"]))
            .unwrap_err();
        assert_eq!(err, ApprovalRefused::AuthorCannotApprove);
        assert_eq!(err.to_string(), "the author of a version cannot approve it (four-eyes rule)");
        assert_eq!(err.code(), "four_eyes");

        // Nor in a later step.
        let mut approvals = Vec::new();
        approve(&def, &mut approvals, "u-rev", &["reviewer"], 1).unwrap();
        let err = check_approval(&def, AUTHOR, &approvals, AUTHOR, &roles(&["admin"])).unwrap_err();
        assert_eq!(err, ApprovalRefused::AuthorCannotApprove);
    }

    #[test]
    fn one_person_counts_once_within_a_step() {
        let def = two_by_two();
        let mut approvals = Vec::new();
        approve(&def, &mut approvals, "a", &["reviewer"], 1).unwrap();
        let err = approve(&def, &mut approvals, "a", &["reviewer"], 2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "you already approved this version in step \"review\"; one person counts once"
        );
        assert_eq!(err.code(), "already_approved");
        assert_eq!(approvals.len(), 1);
    }

    #[test]
    fn one_person_counts_once_across_steps() {
        let def = sensitive();
        let mut approvals = Vec::new();
        approve(&def, &mut approvals, "boss", &["admin"], 1).unwrap();
        // The same admin is listed in the security step too, but has approved already.
        let err = approve(&def, &mut approvals, "boss", &["admin"], 2).unwrap_err();
        assert_eq!(err, ApprovalRefused::AlreadyApproved { step: "review".to_owned() });
        assert!(!is_final(&def, &approvals));
    }

    #[test]
    fn duplicate_records_are_counted_once() {
        // Records that bypassed check_approval (a race the caller failed to
        // serialise) still do not let one person complete two steps.
        let def = sensitive();
        let approvals = vec![
            Approval { step: "review".into(), user_id: "x".into(), decided_at: at(1), comment: None },
            Approval { step: "security".into(), user_id: "x".into(), decided_at: at(2), comment: None },
        ];
        let p = ReviewProgress::compute(&def, &approvals);
        assert_eq!(p.current_step, Some(1));
        assert!(!is_final(&def, &approvals));

        let def = two_by_two();
        let approvals = vec![
            Approval { step: "review".into(), user_id: "x".into(), decided_at: at(1), comment: None },
            Approval { step: "review".into(), user_id: "x".into(), decided_at: at(2), comment: None },
        ];
        assert_eq!(ReviewProgress::compute(&def, &approvals).approvals_in_step, 1);
    }

    #[test]
    fn approvals_for_unknown_steps_do_not_count() {
        let def = sensitive();
        let approvals =
            vec![Approval { step: "legal".into(), user_id: "x".into(), decided_at: at(1), comment: None }];
        assert_eq!(ReviewProgress::compute(&def, &approvals).current_step, Some(0));
        // …but the person has taken part in the round.
        let err = check_approval(&def, AUTHOR, &approvals, "x", &roles(&["reviewer"])).unwrap_err();
        assert_eq!(err, ApprovalRefused::AlreadyApproved { step: "legal".to_owned() });
    }

    #[test]
    fn roles_must_match_the_current_step_and_admin_has_no_bypass() {
        let def = two_by_two();
        let err = check_approval(&def, AUTHOR, &[], "root", &roles(&["admin"])).unwrap_err();
        assert_eq!(err.to_string(), "step \"review\" needs the role reviewer");
        assert_eq!(err.code(), "missing_approver_role");
        // A role of a later step does not help in the current one.
        let err = check_approval(&def, AUTHOR, &[], "p", &roles(&["publisher"])).unwrap_err();
        assert_eq!(err, ApprovalRefused::MissingRole { step: "review".into(), roles: roles(&["reviewer"]) });
        // No roles at all.
        assert!(check_approval(&def, AUTHOR, &[], "p", &[]).is_err());
        // Roles match exactly.
        assert!(check_approval(&def, AUTHOR, &[], "p", &roles(&["Reviewer"])).is_err());
        assert!(check_approval(&def, AUTHOR, &[], "p", &roles(&["viewer", "reviewer"])).is_ok());
    }

    #[test]
    fn a_complete_workflow_refuses_further_decisions() {
        let def = default_workflows().remove(0);
        let mut approvals = Vec::new();
        assert!(approve(&def, &mut approvals, "r", &["reviewer"], 1).unwrap().workflow_complete);
        let err = approve(&def, &mut approvals, "r2", &["reviewer"], 2).unwrap_err();
        assert_eq!(err, ApprovalRefused::WorkflowComplete { workflow: "standard".into() });
        assert_eq!(err.code(), "workflow_complete");
        let err =
            check_rejection(&def, AUTHOR, &approvals, "r2", &roles(&["reviewer"]), Some("no")).unwrap_err();
        assert_eq!(err.code(), "workflow_complete");
    }

    #[test]
    fn rejection_rules() {
        let def = sensitive();
        let reviewer = roles(&["reviewer"]);
        // A current-step role and a comment: allowed.
        assert_eq!(check_rejection(&def, AUTHOR, &[], "r", &reviewer, Some("tone is off")), Ok(()));
        // The author withdraws instead.
        let err = check_rejection(&def, AUTHOR, &[], AUTHOR, &reviewer, Some("oops")).unwrap_err();
        assert_eq!(err, ApprovalRefused::AuthorCannotReject);
        assert!(err.to_string().contains("withdraws it to draft"));
        // A comment is required and must say something.
        for comment in [None, Some(""), Some("  \n\t")] {
            let err = check_rejection(&def, AUTHOR, &[], "r", &reviewer, comment).unwrap_err();
            assert_eq!(err, ApprovalRefused::CommentRequired, "{comment:?}");
        }
        // Needs a role of the current step.
        let err = check_rejection(&def, AUTHOR, &[], "p", &roles(&["publisher"]), Some("no")).unwrap_err();
        assert_eq!(err.to_string(), "step \"review\" needs one of the roles reviewer, admin");

        // In the security step, a reviewer can no longer reject; a publisher can,
        // and so can the admin who approved the review step (a veto is not counted).
        let mut approvals = Vec::new();
        approve(&def, &mut approvals, "boss", &["admin"], 1).unwrap();
        assert!(check_rejection(&def, AUTHOR, &approvals, "r", &reviewer, Some("no")).is_err());
        assert!(
            check_rejection(&def, AUTHOR, &approvals, "p", &roles(&["publisher"]), Some("leaks a key"))
                .is_ok()
        );
        assert!(
            check_rejection(&def, AUTHOR, &approvals, "boss", &roles(&["admin"]), Some("on reflection"))
                .is_ok()
        );
    }

    #[test]
    fn an_invalid_definition_takes_no_decision_and_is_never_final() {
        let mut def = sensitive();
        def.steps.clear();
        let err = check_approval(&def, AUTHOR, &[], "r", &roles(&["reviewer"])).unwrap_err();
        assert_eq!(err.code(), "invalid_workflow");
        assert!(err.to_string().contains("has no steps"), "{err}");
        assert!(check_rejection(&def, AUTHOR, &[], "r", &roles(&["reviewer"]), Some("x")).is_err());
        assert!(!is_final(&def, &[]));
        let p = ReviewProgress::compute(&def, &[]);
        assert!(!p.complete && p.current_step.is_none());

        // A step requiring 0 approvals is treated as requiring 1.
        let mut def = sensitive();
        def.steps[0].required_approvals = 0;
        assert!(!is_final(&def, &[]));
        assert_eq!(ReviewProgress::compute(&def, &[]).current_step, Some(0));
    }

    #[test]
    fn overdue_at_the_boundary() {
        let def = sensitive(); // review: 48 h, security: 24 h
        let start = t0();
        let due = start + TimeDelta::hours(48);
        assert_eq!(step_due_at(&def, 0, start), Some(due));
        assert_eq!(overdue(&def, start, 0, start), None);
        assert_eq!(overdue(&def, start, 0, due - TimeDelta::seconds(1)), None);
        assert_eq!(overdue(&def, start, 0, due), None, "exactly at the due instant is not overdue");
        assert_eq!(
            overdue(&def, start, 0, due + TimeDelta::seconds(1)),
            Some(Overdue { step: "review".into(), due_at: due, hours_over: 0 })
        );
        let late = overdue(&def, start, 0, due + TimeDelta::minutes(59) + TimeDelta::seconds(59)).unwrap();
        assert_eq!(late.hours_over, 0);
        assert_eq!(overdue(&def, start, 0, due + TimeDelta::hours(1)).unwrap().hours_over, 1);
        assert_eq!(overdue(&def, start, 0, due + TimeDelta::minutes(150)).unwrap().hours_over, 2);
        // The second step has its own SLA.
        let second = overdue(&def, start, 1, start + TimeDelta::hours(25)).unwrap();
        assert_eq!((second.step.as_str(), second.hours_over), ("security", 1));
        assert_eq!(second.due_at, start + TimeDelta::hours(24));
        // No SLA, or no such step: never overdue.
        let def = two_by_two();
        assert_eq!(overdue(&def, start, 1, start + TimeDelta::days(1000)), None);
        assert_eq!(overdue(&def, start, 7, start + TimeDelta::days(1000)), None);
        // Clock skew (now before the start) is not overdue.
        assert_eq!(overdue(&def, start, 0, start - TimeDelta::hours(100)), None);
    }

    #[test]
    fn default_workflows_are_valid_and_cover_every_classification() {
        let set = WorkflowSet::new(default_workflows()).unwrap();
        assert!(set.uncovered().is_empty());
        assert_eq!(set, WorkflowSet::default());
        assert_eq!(set.for_classification(Public).unwrap().name, "standard");
        assert_eq!(set.for_classification(Internal).unwrap().name, "standard");
        assert_eq!(set.for_classification(Confidential).unwrap().name, "sensitive");
        assert_eq!(set.for_classification(Restricted).unwrap().steps.len(), 2);
        assert_eq!(set.get("sensitive").unwrap().steps[1].approver_roles, roles(&["publisher", "admin"]));
        assert!(set.get("nope").is_none());
    }

    fn valid() -> WorkflowDefinition {
        WorkflowDefinition {
            name: "w".to_owned(),
            description: None,
            classifications: vec![Internal],
            steps: vec![step("review", &["reviewer"], 1, Some(8))],
        }
    }

    #[test]
    fn validation_errors() {
        assert_eq!(valid().validate(), Ok(()));
        type Mutation = fn(&mut WorkflowDefinition);
        let cases: &[(Mutation, &str)] = &[
            (|d| d.name = "Bad Name".into(), "invalid workflow name"),
            (|d| d.name = String::new(), "invalid workflow name"),
            (|d| d.name = "1st".into(), "starting with a letter"),
            (|d| d.name = "x".repeat(65), "invalid workflow name"),
            (|d| d.classifications.clear(), "applies to no security classification"),
            (|d| d.classifications.push(Internal), "lists the classification internal twice"),
            (|d| d.steps.clear(), "has no steps"),
            (|d| d.steps[0].name = "re view".into(), "invalid step name"),
            (|d| d.steps.push(step("review", &["x"], 1, None)), "two steps named \"review\""),
            (|d| d.steps[0].approver_roles.clear(), "has no approver role"),
            (|d| d.steps[0].approver_roles = roles(&["a b"]), "invalid role"),
            (|d| d.steps[0].approver_roles = roles(&[""]), "invalid role"),
            (|d| d.steps[0].approver_roles = roles(&["x", "x"]), "lists the role \"x\" twice"),
            (|d| d.steps[0].required_approvals = 0, "requires 0 approvals"),
            (|d| d.steps[0].required_approvals = 101, "between 1 and 100"),
            (|d| d.steps[0].sla_hours = Some(0), "SLA of 0 hours"),
            (|d| d.steps[0].sla_hours = Some(MAX_SLA_HOURS + 1), "SLA of 8761 hours"),
        ];
        for (mutate, expected) in cases {
            let mut def = valid();
            mutate(&mut def);
            let err = def.validate().expect_err(expected);
            assert!(err.to_string().contains(expected), "{err} should contain {expected}");
        }
        // The limits themselves are accepted.
        let mut def = valid();
        def.steps[0].required_approvals = MAX_REQUIRED_APPROVALS;
        def.steps[0].sla_hours = Some(MAX_SLA_HOURS);
        def.name = "a".repeat(64);
        assert_eq!(def.validate(), Ok(()));
    }

    #[test]
    fn defaults_fill_the_classifications_nothing_configured_covers() {
        // Nothing configured: the defaults.
        assert_eq!(WorkflowSet::with_defaults(vec![]).unwrap(), WorkflowSet::default());

        // A workflow for confidential only: restricted keeps the default.
        let mut strict = valid();
        strict.name = "strict".into();
        strict.classifications = vec![Confidential];
        let set = WorkflowSet::with_defaults(vec![strict.clone()]).unwrap();
        assert_eq!(set.for_classification(Confidential).unwrap().name, "strict");
        let sensitive = set.for_classification(Restricted).unwrap();
        assert_eq!(
            (sensitive.name.as_str(), &sensitive.classifications[..]),
            ("sensitive", &[Restricted][..])
        );
        assert_eq!(set.for_classification(Public).unwrap().name, "standard");
        assert!(set.uncovered().is_empty());

        // Covering both of a default's classifications drops that default.
        strict.classifications = vec![Confidential, Restricted];
        let set = WorkflowSet::with_defaults(vec![strict.clone()]).unwrap();
        assert!(set.get("sensitive").is_none());
        assert_eq!(set.workflows().len(), 2);

        // A workflow named like a default replaces it entirely: what it does
        // not list is governed by nothing.
        let mut standard = valid();
        standard.name = "standard".into();
        standard.classifications = vec![Public];
        let set = WorkflowSet::with_defaults(vec![standard]).unwrap();
        assert_eq!(set.uncovered(), vec![Internal]);
        assert_eq!(set.get("standard").unwrap().classifications, vec![Public]);

        // Configured workflows still may not collide with each other.
        let mut a = valid();
        a.name = "a".into();
        let mut b = valid();
        b.name = "b".into();
        let err = WorkflowSet::with_defaults(vec![a, b]).unwrap_err();
        assert_eq!(err.code(), "classification_claimed_twice");
    }

    #[test]
    fn every_error_has_a_code() {
        let mut def = valid();
        def.steps.clear();
        assert_eq!(def.validate().unwrap_err().code(), "workflow_without_steps");
        let mut def = valid();
        def.steps[0].required_approvals = 0;
        assert_eq!(def.validate().unwrap_err().code(), "required_approvals_out_of_range");
        let mut def = valid();
        def.steps[0].approver_roles = roles(&["a b"]);
        assert_eq!(def.validate().unwrap_err().code(), "invalid_approver_role");
        assert_eq!(WorkflowDefinition::from_json("{").unwrap_err().code(), "invalid_workflow");
    }

    #[test]
    fn workflow_set_refuses_collisions() {
        let mut a = valid();
        a.name = "a".into();
        a.classifications = vec![Public, Internal];
        let mut b = valid();
        b.name = "b".into();
        b.classifications = vec![Confidential, Internal];
        let err = WorkflowSet::new(vec![a.clone(), b.clone()]).unwrap_err();
        assert_eq!(
            err,
            WorkflowError::ClassificationClaimedTwice {
                classification: Internal,
                first: "a".into(),
                second: "b".into()
            }
        );
        assert!(err.to_string().contains("claimed by workflow \"a\" and by workflow \"b\""));

        b.classifications = vec![Confidential];
        let set = WorkflowSet::new(vec![a.clone(), b.clone()]).unwrap();
        assert_eq!(set.uncovered(), vec![Restricted]);
        assert!(set.for_classification(Restricted).is_none());
        assert_eq!(set.for_classification(Confidential).unwrap().name, "b");

        let mut same_name = b.clone();
        same_name.name = "a".into();
        same_name.classifications = vec![Restricted];
        assert_eq!(
            WorkflowSet::new(vec![a.clone(), same_name]).unwrap_err(),
            WorkflowError::DuplicateWorkflow { name: "a".into() }
        );

        // Each member is validated.
        b.steps.clear();
        assert!(matches!(WorkflowSet::new(vec![a, b]), Err(WorkflowError::NoSteps { .. })));
    }

    const TOML_FILE: &str = r#"
[[workflow]]
name = "standard"
description = "One review."
classifications = ["public", "internal"]

[[workflow.step]]
name = "review"
approver_roles = ["reviewer", "admin"]
required_approvals = 1
sla_hours = 48

[[workflow]]
name = "sensitive"
classifications = ["confidential", "restricted"]

[[workflow.step]]
name = "review"
approver_roles = ["reviewer", "admin"]
sla_hours = 48

[[workflow.step]]
name = "security"
approver_roles = ["publisher", "admin"]
required_approvals = 1
sla_hours = 24
"#;

    #[test]
    fn toml_file_parses() {
        let defs = parse_workflows_toml(TOML_FILE).unwrap();
        let mut expected = default_workflows();
        expected[0].description = Some("One review.".into());
        expected[1].description = None;
        assert_eq!(defs, expected);
        assert!(WorkflowSet::new(defs).is_ok());
        assert_eq!(parse_workflows_toml("").unwrap(), Vec::new());
        // `steps` is accepted as a spelling too.
        let alt = TOML_FILE.replace("[[workflow.step]]", "[[workflow.steps]]");
        assert_eq!(parse_workflows_toml(&alt).unwrap().len(), 2);
    }

    #[test]
    fn toml_refuses_unknown_keys_and_invalid_workflows() {
        let cases = [
            (TOML_FILE.replace("sla_hours = 24", "sla_hours = 24\nbypass = true"), "bypass"),
            (TOML_FILE.replace("name = \"sensitive\"", "name = \"sensitive\"\nprority = 1"), "prority"),
            (format!("{TOML_FILE}\n[settings]\nx = 1\n"), "settings"),
            (TOML_FILE.replace("\"restricted\"", "\"secret\""), "secret"),
            (TOML_FILE.replace("sla_hours = 24", "sla_hours = -1"), "sla_hours"),
        ];
        for (text, needle) in cases {
            let err = parse_workflows_toml(&text).unwrap_err();
            assert!(matches!(err, WorkflowError::Parse { format: "TOML", .. }), "{err}");
            assert!(err.to_string().contains(needle), "{err} should mention {needle}");
        }
        let invalid = TOML_FILE.replace("required_approvals = 1\nsla_hours = 24", "required_approvals = 0");
        assert!(matches!(
            parse_workflows_toml(&invalid),
            Err(WorkflowError::RequiredApprovalsOutOfRange { required: 0, .. })
        ));
    }

    #[test]
    fn json_shape_round_trips_and_refuses_unknown_fields() {
        let json = serde_json::json!({
            "name": "sensitive",
            "description": "A review, then a security sign-off: two different people, neither of them the author.",
            "classifications": ["confidential", "restricted"],
            "steps": [
                {"name": "review", "approver_roles": ["reviewer", "admin"], "required_approvals": 1, "sla_hours": 48},
                {"name": "security", "approver_roles": ["publisher", "admin"], "required_approvals": 1, "sla_hours": 24}
            ]
        });
        assert_eq!(serde_json::to_value(sensitive()).unwrap(), json);
        assert_eq!(WorkflowDefinition::from_json(&json.to_string()).unwrap(), sensitive());

        // Defaults: description, sla_hours absent; required_approvals 1.
        let minimal =
            r#"{"name":"m","classifications":["public"],"steps":[{"name":"r","approver_roles":["a"]}]}"#;
        let def = WorkflowDefinition::from_json(minimal).unwrap();
        assert_eq!(def.steps[0].required_approvals, 1);
        assert_eq!(def.steps[0].sla_hours, None);
        assert_eq!(def.description, None);

        let unknown_top = minimal.replace("\"name\":\"m\"", "\"name\":\"m\",\"admin_bypass\":true");
        let unknown_step = minimal.replace("\"name\":\"r\"", "\"name\":\"r\",\"roles\":[\"x\"]");
        let singular = minimal.replace("\"steps\"", "\"step\"");
        for (text, needle) in [(unknown_top, "admin_bypass"), (unknown_step, "roles"), (singular, "step")] {
            let err = WorkflowDefinition::from_json(&text).unwrap_err();
            assert!(matches!(err, WorkflowError::Parse { format: "JSON", .. }), "{err}");
            assert!(err.to_string().contains(needle), "{err} should mention {needle}");
        }
        // Parsed but invalid.
        let no_roles = minimal.replace("[\"a\"]", "[]");
        assert!(matches!(
            WorkflowDefinition::from_json(&no_roles),
            Err(WorkflowError::NoApproverRoles { .. })
        ));
    }

    #[test]
    fn approvals_serialize_and_refuse_unknown_fields() {
        let a = Approval {
            step: "review".into(),
            user_id: "u1".into(),
            decided_at: t0(),
            comment: Some("ok".into()),
        };
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"step":"review","user_id":"u1","decided_at":"2025-03-01T09:00:00Z","comment":"ok"})
        );
        assert_eq!(serde_json::from_value::<Approval>(v).unwrap(), a);
        let extra =
            serde_json::json!({"step":"review","user_id":"u1","decided_at":"2025-03-01T09:00:00Z","x":1});
        assert!(serde_json::from_value::<Approval>(extra).is_err());
    }

    #[test]
    fn approval_order_in_the_slice_does_not_matter() {
        let def = two_by_two();
        let c = Approval { step: "security".into(), user_id: "c".into(), decided_at: at(30), comment: None };
        let b = Approval { step: "review".into(), user_id: "b".into(), decided_at: at(20), comment: None };
        let a = Approval { step: "review".into(), user_id: "a".into(), decided_at: at(10), comment: None };
        assert!(is_final(&def, &[c.clone(), b.clone(), a.clone()]));
        assert!(is_final(&def, &[a.clone(), b.clone(), c.clone()]));
        // The review step completed with the later of its two approvals.
        assert_eq!(current_step_started_at(&def, t0(), &[b.clone(), a.clone()]), Some(at(20)));
        // With the review step short of one approval, it is still current.
        assert_eq!(current_step_started_at(&def, t0(), &[c, b]), Some(t0()));
    }
}
