//! End-to-end: the real server on 127.0.0.1:0, over HTTP, against SQLite
//! and (with PROMPTVAULT_TEST_DATABASE_URL) PostgreSQL.

mod api;
mod bombs;
mod catalog;
mod content;
mod deployments;
mod encryption;
mod governance;
mod input;
mod jwt;
mod policy;
mod ratelimit;
mod render;
mod sessions;
mod support;
mod tls;
mod versions;
mod workflows;

fn main() {
    // The server under test starts its render workers from this program:
    // `e2e render-worker --memory-limit-mb N`.
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("render-worker") {
        let limit = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(512);
        std::process::exit(match promptvault_server::isolation::worker::run(limit) {
            code if code == std::process::ExitCode::SUCCESS => 0,
            _ => 1,
        });
    }
    promptvault_testkit::run_suite(
        promptvault_testkit::cases![
            catalog::templates_round_trip_with_folder_names,
            catalog::reads_resolve_the_default_label_or_say_what_is_missing,
            catalog::metadata_updates_need_the_current_etag,
            catalog::listing_filters_pages_and_search,
            catalog::prompt_types_and_contracts,
            catalog::deleting_a_template_keeps_its_renderings,
            catalog::first_start_creates_an_admin_key_once,
            versions::semantic_versions_are_computed,
            versions::stale_bases_and_unchanged_content_are_refused,
            versions::drafts_are_edited_in_place_with_if_match,
            versions::labels_move_with_history_and_optimistic_concurrency,
            versions::rollback_moves_a_label_back_or_restores_content,
            versions::diffs_show_text_and_schema_changes,
            render::renders_validate_and_record,
            render::chat_templates_fill_placeholders,
            render::includes_resolve_at_render_time,
            render::render_bombs_end_with_a_clear_error,
            bombs::recursion_bombs_are_refused,
            bombs::loop_bombs_are_refused,
            bombs::exponential_output_is_refused,
            bombs::huge_inputs_are_refused,
            bombs::renders_past_the_memory_cap_are_stopped,
            bombs::list_doubling_is_stopped,
            bombs::renders_past_the_time_limit_are_killed,
            bombs::renders_behind_a_runaway_are_answered,
            render::outcomes_and_metrics,
            render::graceful_shutdown_loses_no_usage_record,
            render::concurrent_renders_are_all_recorded,
            input::malformed_requests_are_refused_and_change_nothing,
            input::oversized_bodies_are_refused,
            input::unknown_names_are_404_problems,
            input::every_api_route_requires_a_key,
            api::openapi_document_matches_the_routes,
            api::health_ready_and_metrics,
            governance::roles_decide_and_every_refusal_is_audited,
            governance::users_keys_and_custom_roles_through_the_api,
            governance::lifecycle_with_four_eyes_and_deprecation,
            governance::reviewers_racing_on_the_last_approval,
            governance::protected_labels_hold_only_approved_versions,
            sessions::passwords_sign_in_to_sessions_that_end,
            sessions::activity_extends_sessions_and_restricted_work_needs_a_recent_password,
            policy::every_route_and_role_follow_the_policy,
            workflows::a_workflow_set_through_the_api_governs_approval,
            workflows::custom_checks_block_submission_and_show_in_review,
            workflows::invalid_definitions_are_refused_with_a_code,
            workflows::only_admins_change_workflows_and_checks,
            workflows::files_given_at_start_are_in_force,
            jwt::known_users_sign_in_with_hs256_tokens,
            jwt::auto_provisioning_creates_each_user_once,
            jwt::refused_tokens_are_audited_and_change_nothing,
            jwt::asymmetric_tokens_verify_against_a_jwks,
            jwt::bad_jwt_settings_stop_the_start,
            deployments::classification_decides_which_deployments_receive_a_template,
            deployments::delivery_rules_are_configurable,
            tls::https_serves_content_with_hsts,
            tls::plain_http_beyond_loopback_is_refused,
            ratelimit::a_burst_beyond_the_limit_gets_429_and_other_keys_are_unaffected,
            encryption::confidential_content_never_reaches_the_disk_in_the_clear,
            encryption::a_wrong_or_exposed_master_key_stops_the_start,
            encryption::data_keys_rotate_through_the_api,
            encryption::renders_carry_a_signature_the_public_key_verifies,
            encryption::forged_retention_checkpoints_fail_verification,
            content::saving_blocks_or_warns_by_classification,
            content::render_inputs_are_allowed_redacted_or_refused,
            content::output_filters_redact_block_or_pass,
            content::secrets_stay_out_of_errors_audit_and_logs,
        ],
        promptvault_testkit::cases![
            catalog::servers_sharing_postgres_see_each_others_writes,
            workflows::servers_sharing_postgres_follow_workflow_changes,
        ],
    )
}
