//! The built `promptvault` binary against a real server on 127.0.0.1:0, on
//! SQLite and (with PROMPTVAULT_TEST_DATABASE_URL) PostgreSQL: what it
//! prints, on which stream, and how it exits.

mod audit;
mod catalog;
mod encryption;
mod governance;
mod identity;
mod keyring;
mod misc;
mod render;
mod serve;
mod support;
mod versions;

fn main() {
    promptvault_testkit::run_cases(promptvault_testkit::cases![
        catalog::templates_are_created_from_files_and_stdin,
        catalog::templates_are_listed_filtered_paged_and_searched,
        catalog::templates_are_shown_updated_and_deleted,
        catalog::prompt_types_are_managed,
        catalog::offline_allowed_is_set_shown_and_explained,
        versions::versions_are_computed_refused_listed_and_compared,
        versions::drafts_are_edited_and_deleted,
        versions::labels_are_set_listed_and_removed,
        versions::rollback_moves_a_label_back_or_restores_content,
        render::render_takes_parameters_from_flags_files_and_stdin,
        render::chat_templates_render_messages,
        render::outcomes_are_recorded_and_counted,
        misc::refusals_map_to_exit_codes,
        misc::offline_verbs_print_documents,
        encryption::encryption_keys_from_the_command_line,
        keyring::keyring_key_serves_and_survives_a_restart,
        keyring::keyring_entry_with_another_key_is_refused,
        keyring::missing_or_unusable_keyring_entries_stop_the_start,
        keyring::rekeying_from_a_keyring_entry,
        misc::answers_that_are_not_the_api_are_one_line_errors,
        misc::a_closed_stdout_ends_quietly,
        serve::rotation_killed_mid_way_resumes_and_loses_nothing,
        serve::serve_layers_settings_and_stops_gracefully,
        serve::jwt_settings_from_the_environment_are_checked_at_start,
        serve::self_signed_pair_serves_https_and_plain_http_beyond_loopback_is_refused,
        audit::the_audit_trail_is_listed_exported_and_verified,
        identity::users_keys_and_roles_are_managed,
        identity::versions_go_through_review,
        identity::sign_in_with_a_password,
        governance::workflows_and_checks_are_set_listed_and_deleted,
    ])
}
