//! The Store conformance suite: every case runs against SQLite, and against
//! PostgreSQL when `PROMPTVAULT_TEST_DATABASE_URL` is set.

mod audit;
mod catalog;
mod encryption;
mod fixtures;
mod governance;
mod identity;
mod lifecycle;
mod notices;
mod usage;
mod versions;

use audit::*;
use catalog::*;
use encryption::*;
use governance::*;
use identity::*;
use lifecycle::*;
use notices::*;
use usage::*;
use versions::*;

fn main() {
    promptvault_testkit::run_cases(promptvault_testkit::cases![
        prompt_types_round_trip,
        prompt_type_conflicts_and_stale_writes,
        prompt_type_in_use_cannot_be_deleted,
        template_create_get_and_first_version,
        template_names_are_unique,
        template_update_checks_revision,
        template_delete_keeps_renders_detached,
        listing_pages_cover_everything_once,
        listing_filters,
        search_finds_words_and_follows_new_versions,
        search_queries_cannot_inject_syntax,
        invalid_cursors_are_refused,
        versions_append_with_sequence_and_base_check,
        concurrent_versions_on_one_base_one_wins,
        drafts_edit_in_place_only_while_newest,
        non_drafts_are_immutable,
        draft_deletion_rules,
        selectors_find_versions,
        version_listing_is_newest_first_and_paged,
        labels_move_and_keep_history,
        label_writes_check_revision,
        concurrent_label_moves_with_one_revision_one_wins,
        corrupted_version_rows_are_errors,
        content_round_trips_exactly,
        confidential_content_is_sealed_and_reads_back,
        a_ciphertext_copied_to_another_row_does_not_open,
        another_master_key_is_refused_unless_rekeying,
        rotation_reencrypts_in_resumable_steps,
        reclassified_templates_are_sealed,
        without_a_master_key_confidential_content_is_refused,
        retention_checkpoints_are_signed_with_the_instance_key,
        usage_records_renders_outcomes_and_metrics,
        usage_keeps_renders_of_deleted_versions,
        usage_races_with_draft_deletion,
        bootstrap_admin_happens_once,
        timestamps_round_trip_to_the_microsecond,
        change_notices_reach_subscribers,
        change_notices_reach_other_stores,
        audit_events_chain_and_ride_in_write_transactions,
        audit_tampering_is_found_at_the_first_broken_event,
        audit_swaps_and_truncation_are_found,
        audit_purge_leaves_a_verifiable_checkpoint,
        concurrent_audited_writes_keep_one_chain,
        users_round_trip_with_every_seed_field,
        user_patches_leave_set_or_clear_each_field,
        disabled_users_are_reported_and_lose_their_sessions,
        user_role_sets_replace_and_users_delete_with_their_things,
        custom_roles_crud_with_revisions_and_in_use_refusal,
        api_keys_create_list_revoke_and_authenticate,
        sessions_create_find_touch_expire_and_delete,
        identity_writes_carry_their_audit_events,
        concurrent_identity_writes_keep_identities_unique_and_roles_held,
        lifecycle_submit_starts_a_round_and_records_it,
        lifecycle_invalid_transitions_are_refused_with_from_and_to,
        lifecycle_stale_expect_is_refused,
        lifecycle_two_step_workflow_approves_with_two_people,
        lifecycle_review_refusals_write_nothing,
        lifecycle_rejection_returns_to_draft_and_resubmission_starts_over,
        lifecycle_deprecate_undo_and_archive,
        lifecycle_racing_last_approvals_complete_once,
        lifecycle_same_user_racing_approves_once,
        workflows_crud_with_revisions_and_classification_conflicts,
        workflows_cannot_be_taken_from_versions_in_review,
        workflow_files_are_authoritative_for_the_names_they_list,
        checks_crud_and_files,
        concurrent_workflow_claims_one_wins,
    ])
}
