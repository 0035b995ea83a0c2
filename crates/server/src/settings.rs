//! Settings: defaults, then a TOML file, then `PROMPTVAULT_*` environment
//! variables, then command-line flags, loaded into one struct that is passed
//! explicitly (no global configuration).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use promptvault_core::LabelName;
use promptvault_core::render::RenderLimits;
use serde::Deserialize;
use thiserror::Error;

use crate::secret::Secret;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory for the SQLite database and the admin token file.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://…`; empty means SQLite in `data_dir`.
    pub database_url: Option<Secret>,
    /// A file holding the database URL (it may contain a password).
    pub database_url_file: Option<PathBuf>,
    /// PostgreSQL schema for the tables.
    pub pg_schema: String,
    /// Most database connections.
    pub max_connections: u32,
    /// Label resolved when a read names neither label nor version.
    pub default_label: String,
    /// Labels that may point only at approved versions and that only
    /// principals allowed to publish may move or remove.
    pub protected_labels: Vec<String>,
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// Admin token for the first start (when the database has no keys).
    pub admin_token: Option<Secret>,
    /// A file holding the admin token.
    pub admin_token_file: Option<PathBuf>,
    pub render: RenderSettings,
    pub usage: UsageSettings,
    pub cache: CacheSettings,
    pub log: LogSettings,
    pub audit: AuditSettings,
    pub auth: AuthSettings,
    pub governance: GovernanceSettings,
    /// `[deployment_rules.<classification>]`: which deployments receive
    /// templates of each classification (`deployments`), and which receive
    /// them only when the template is offline-allowed (`when_offline_allowed`).
    pub deployment_rules: promptvault_core::authz::delivery::DeliveryRules,
    /// `[tls]`: serve HTTPS from these certificate and key files.
    pub tls: crate::tls::TlsSettings,
    /// Serve plain HTTP on a non-loopback address anyway (behind a proxy
    /// that terminates TLS). Without TLS or this, the server refuses.
    pub allow_insecure_http: bool,
    /// `[rate_limit]`: a token bucket per credential (off by default).
    pub rate_limit: crate::ratelimit::RateLimitSettings,
    pub encryption: crate::encryption::EncryptionSettings,
    /// `[content]`: scanning on save, render inputs, output filters.
    pub content: crate::content::ContentSettings,
}

/// `[auth]`: the ways in besides API keys.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// `[auth.jwt]`: bearer JWTs from an identity provider.
    pub jwt: crate::jwt::JwtSettings,
    /// `[auth.sessions]`: web sessions from password sign-in.
    pub sessions: crate::session::SessionSettings,
}

/// Approval workflows and compliance checks configured at start.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GovernanceSettings {
    /// A TOML file of approval workflows (`[[workflow]]` with
    /// `[[workflow.step]]`), applied at every start: it is authoritative for
    /// the names it lists.
    pub workflows_file: Option<PathBuf>,
    /// A TOML file of custom compliance checks (`[[check]]`), applied at
    /// every start like the workflows file.
    pub checks_file: Option<PathBuf>,
    /// The built-in compliance checks: enabled, severity, applies_to and
    /// their parameters, per check.
    pub checks: promptvault_core::compliance::BuiltinsConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSettings {
    /// How much context events keep: `basic`, `detailed` or `comprehensive`.
    pub detail: promptvault_core::audit::DetailLevel,
    /// Events older than this many days are purged (a checkpoint keeps the
    /// chain verifiable); 0 keeps everything.
    pub retention_days: u32,
    /// Alert thresholds, e.g. 10 denied attempts by one principal in 5
    /// minutes.
    pub alerts: Vec<promptvault_core::audit::AlertRule>,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            detail: promptvault_core::audit::DetailLevel::default(),
            retention_days: 0,
            alerts: vec![promptvault_core::audit::AlertRule {
                name: "repeated-denials".into(),
                outcome: promptvault_core::audit::AuditOutcome::Denied,
                action_prefix: None,
                threshold: 10,
                window_minutes: 5,
            }],
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RenderSettings {
    pub fuel: u64,
    pub max_output_bytes: usize,
    pub recursion_limit: usize,
    /// `process` (each render in a worker process capped in memory and
    /// time, the default) or `none` (in the server's process).
    pub isolation: crate::isolation::Isolation,
    /// Worker processes at most; 0 means one per CPU.
    pub workers: usize,
    /// Address space a worker may use, in MiB.
    pub memory_limit_mb: u64,
    /// Longest a render may run in a worker before it is killed.
    pub timeout_ms: u64,
    /// The worker program and its arguments; empty means this program with
    /// `render-worker`.
    pub worker_command: Vec<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UsageSettings {
    /// Renders written per transaction at most.
    pub batch_size: usize,
    /// Longest a recorded render waits before it is written.
    pub flush_interval_ms: u64,
    /// Renders waiting to be written; when full, renders wait for room.
    pub queue_capacity: usize,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSettings {
    /// Resolved versions and compiled templates kept in memory.
    pub max_entries: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `text` or `json`.
    pub format: String,
    /// A tracing filter such as `info` or `promptvault=debug,info`.
    pub level: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: default_data_dir(),
            database_url: None,
            database_url_file: None,
            pg_schema: "prometheus".into(),
            max_connections: 8,
            default_label: "production".into(),
            protected_labels: vec!["production".into()],
            body_limit_bytes: 1024 * 1024,
            admin_token: None,
            admin_token_file: None,
            render: RenderSettings::default(),
            usage: UsageSettings::default(),
            cache: CacheSettings::default(),
            log: LogSettings::default(),
            audit: AuditSettings::default(),
            auth: AuthSettings::default(),
            governance: GovernanceSettings::default(),
            deployment_rules: promptvault_core::authz::delivery::DeliveryRules::default(),
            tls: crate::tls::TlsSettings::default(),
            allow_insecure_http: false,
            rate_limit: crate::ratelimit::RateLimitSettings::default(),
            encryption: crate::encryption::EncryptionSettings::default(),
            content: crate::content::ContentSettings::default(),
        }
    }
}

impl Default for RenderSettings {
    fn default() -> Self {
        let l = RenderLimits::default();
        Self {
            fuel: l.fuel,
            max_output_bytes: l.max_output_bytes,
            recursion_limit: l.recursion_limit,
            isolation: crate::isolation::Isolation::Process,
            workers: 0,
            memory_limit_mb: 512,
            timeout_ms: 5_000,
            worker_command: Vec::new(),
        }
    }
}

impl Default for UsageSettings {
    fn default() -> Self {
        Self { batch_size: 512, flush_interval_ms: 100, queue_capacity: 16_384 }
    }
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self { max_entries: 10_000 }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self { format: "text".into(), level: "info".into() }
    }
}

fn default_data_dir() -> PathBuf {
    dirs::data_dir().map(|d| d.join("promptvault")).unwrap_or_else(|| PathBuf::from("promptvault-data"))
}

/// Settings that cannot work, with what to change.
#[derive(Debug, Error)]
pub enum SettingsError {
    #[error("configuration: {0}")]
    Load(String),
    #[error("configuration: {0}")]
    Invalid(String),
}

/// Values given on the command line; `None` leaves the layer below alone.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_insecure_http: Option<bool>,
}

/// Environment variables the client uses; the server ignores them.
///
/// The master key variables (`PROMPTVAULT_MASTER_KEY`, `…_FILE`,
/// `…_KEYRING` and the previous key's) are read by [`crate::encryption`]
/// itself, never kept in the settings.
const CLIENT_ENV: &[&str] = &[
    "url",
    "token",
    "test_database_url",
    "config",
    "output",
    "master_key",
    "master_key_file",
    "master_key_keyring",
    "previous_master_key",
    "previous_master_key_file",
    "previous_master_key_keyring",
];

impl Settings {
    /// Loads the layers. `file` is read when given (it must exist) and
    /// otherwise when `PROMPTVAULT_CONFIG` names one.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Settings, SettingsError> {
        let mut fig = Figment::new();
        let file =
            file.map(Path::to_path_buf).or_else(|| std::env::var_os("PROMPTVAULT_CONFIG").map(PathBuf::from));
        if let Some(path) = &file {
            if !path.is_file() {
                return Err(SettingsError::Load(format!("config file {} does not exist", path.display())));
            }
            fig = fig.merge(Toml::file(path));
        }
        fig = fig
            .merge(Env::prefixed("PROMPTVAULT_").split("__").ignore(CLIENT_ENV))
            .merge(Serialized::defaults(overrides));
        let settings: Settings = fig.extract().map_err(|e| SettingsError::Load(e.to_string()))?;
        settings.validate()
    }

    fn validate(mut self) -> Result<Settings, SettingsError> {
        let invalid = |m: String| Err(SettingsError::Invalid(m));
        if LabelName::parse(&self.default_label).is_err() {
            return invalid(format!(
                "default_label {:?} is not a valid label (1-36 of a-z 0-9 _ - .)",
                self.default_label
            ));
        }
        for l in &self.protected_labels {
            match LabelName::parse(l) {
                Ok(n) if n.is_latest() => {
                    return invalid("protected_labels cannot name `latest`: it moves by itself".into());
                }
                Ok(_) => {}
                Err(_) => {
                    return invalid(format!(
                        "protected_labels: {l:?} is not a valid label (1-36 of a-z 0-9 _ - .)"
                    ));
                }
            }
        }
        if self.body_limit_bytes < 1024 {
            return invalid("body_limit_bytes must be at least 1024".into());
        }
        if self.render.fuel == 0 || self.render.max_output_bytes == 0 || self.render.recursion_limit == 0 {
            return invalid(
                "render.fuel, render.max_output_bytes and render.recursion_limit must be positive".into(),
            );
        }
        if self.render.memory_limit_mb < 128 || self.render.timeout_ms == 0 {
            return invalid(
                "render.memory_limit_mb must be at least 128 and render.timeout_ms positive".into(),
            );
        }
        if self.usage.batch_size == 0 || self.usage.queue_capacity == 0 {
            return invalid("usage.batch_size and usage.queue_capacity must be positive".into());
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return invalid(format!("log.format must be \"text\" or \"json\", not {:?}", self.log.format));
        }
        let sessions = &self.auth.sessions;
        if sessions.idle_timeout_minutes == 0
            || sessions.max_age_hours == 0
            || sessions.reauth_after_minutes == 0
        {
            return invalid(
                "auth.sessions.idle_timeout_minutes, auth.sessions.max_age_hours and \
                 auth.sessions.reauth_after_minutes must be positive"
                    .into(),
            );
        }
        let excluded = self.deployment_rules.web_excluded();
        if !excluded.is_empty() {
            let names: Vec<&str> = excluded.iter().map(|c| c.as_str()).collect();
            return invalid(format!(
                "deployment_rules.{}.deployments must include \"web_application\": the central deployment \
                 manages every template",
                names.join(", deployment_rules.")
            ));
        }
        self.tls.files().map_err(SettingsError::Invalid)?;
        self.rate_limit.limiter().map_err(SettingsError::Invalid)?;
        if let Err(e) = crate::content::ContentPolicy::new(
            self.content.clone(),
            crate::content::FilterRegistry::default(),
        ) {
            return invalid(e);
        }
        if self.max_connections == 0 {
            return invalid("max_connections must be at least 1".into());
        }
        if let Some(path) = &self.database_url_file {
            self.database_url = Some(read_secret_file(path, "database_url_file")?);
        }
        if let Some(path) = &self.admin_token_file {
            self.admin_token = Some(read_secret_file(path, "admin_token_file")?);
        }
        if let Some(token) = &self.admin_token
            && token.expose().len() < 32
        {
            return invalid("the admin token must be at least 32 characters".into());
        }
        let url = self.database_url();
        let url = url.expose();
        if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return invalid("database_url must start with sqlite:// or postgres://".into());
        }
        Ok(self)
    }

    /// The database URL, defaulting to SQLite in the data directory.
    #[must_use]
    pub fn database_url(&self) -> Secret {
        match &self.database_url {
            Some(url) if !url.expose().is_empty() => url.clone(),
            _ => Secret::new(format!("sqlite://{}", self.data_dir.join("promptvault.db").display())),
        }
    }

    #[must_use]
    pub fn render_limits(&self) -> RenderLimits {
        RenderLimits {
            fuel: self.render.fuel,
            max_output_bytes: self.render.max_output_bytes,
            recursion_limit: self.render.recursion_limit,
        }
    }

    /// How render workers run, or `None` when renders stay in process.
    pub fn render_workers(&self) -> Result<Option<crate::isolation::WorkerConfig>, SettingsError> {
        if self.render.isolation == crate::isolation::Isolation::None {
            return Ok(None);
        }
        let (program, args) = match self.render.worker_command.split_first() {
            Some((program, args)) => (PathBuf::from(program), args.to_vec()),
            None => (this_program()?, vec!["render-worker".to_owned()]),
        };
        let workers = match self.render.workers {
            0 => std::thread::available_parallelism().map_or(2, std::num::NonZero::get).max(2),
            n => n,
        };
        Ok(Some(crate::isolation::WorkerConfig {
            program,
            args,
            workers,
            memory_limit_mb: self.render.memory_limit_mb,
            timeout: std::time::Duration::from_millis(self.render.timeout_ms),
        }))
    }

    #[must_use]
    pub fn protected_labels(&self) -> Vec<LabelName> {
        self.protected_labels.iter().filter_map(|l| LabelName::parse(l).ok()).collect()
    }

    #[must_use]
    pub fn default_label(&self) -> LabelName {
        LabelName::parse(&self.default_label).unwrap_or_else(|_| LabelName::latest())
    }
}

/// The running program. On Linux `/proc/self/exe`, which stays the running
/// binary even when the file was replaced by an upgrade since it started
/// (a worker of another version would not speak the same protocol).
fn this_program() -> Result<PathBuf, SettingsError> {
    let proc_exe = Path::new("/proc/self/exe");
    if cfg!(target_os = "linux") && proc_exe.exists() {
        return Ok(proc_exe.to_path_buf());
    }
    std::env::current_exe()
        .map_err(|e| SettingsError::Invalid(format!("render.worker_command: this program's path: {e}")))
}

fn read_secret_file(path: &Path, what: &str) -> Result<Secret, SettingsError> {
    std::fs::read_to_string(path)
        .map(|s| Secret::new(s.trim().to_owned()))
        .map_err(|e| SettingsError::Invalid(format!("{what} {}: {e}", path.display())))
}

/// An annotated example configuration (`promptvault config example`).
pub const EXAMPLE: &str = include_str!("../promptvault.example.toml");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_mentions_every_setting() {
        let parsed: Settings = toml::from_str(EXAMPLE).expect("example parses");
        assert_eq!(parsed.default_label, "production");
        assert_eq!(parsed.deployment_rules, promptvault_core::authz::delivery::DeliveryRules::default());
        assert!(!parsed.rate_limit.enabled && !parsed.allow_insecure_http && parsed.tls.cert_file.is_none());
        let s: Settings =
            toml::from_str("[rate_limit]\nenabled = true\nrequests_per_second = 2\nburst = 4").unwrap();
        assert!((s.rate_limit.requests_per_second - 2.0).abs() < f64::EPSILON, "an integer rate is accepted");
        assert_eq!(parsed.governance.checks, promptvault_core::compliance::BuiltinsConfig::default());
        for key in [
            "listen",
            "data_dir",
            "database_url",
            "database_url_file",
            "pg_schema",
            "max_connections",
            "default_label",
            "body_limit_bytes",
            "admin_token_file",
            "[render]",
            "fuel",
            "max_output_bytes",
            "recursion_limit",
            "isolation",
            "workers",
            "memory_limit_mb",
            "timeout_ms",
            "worker_command",
            "[usage]",
            "batch_size",
            "flush_interval_ms",
            "queue_capacity",
            "[cache]",
            "max_entries",
            "[log]",
            "format",
            "level",
            "[audit]",
            "detail",
            "retention_days",
            "[[audit.alerts]]",
            "protected_labels",
            "[auth.sessions]",
            "idle_timeout_minutes",
            "reauth_after_minutes",
            "[auth.jwt]",
            "hs256_secret_file",
            "jwks_url",
            "issuer",
            "audience",
            "algorithms",
            "leeway_seconds",
            "jwks_cache_seconds",
            "jwks_min_refresh_seconds",
            "user_claim",
            "email_claim",
            "auto_provision",
            "default_role",
            "[governance]",
            "workflows_file",
            "checks_file",
            "[governance.checks.description_present]",
            "[governance.checks.declared_variables]",
            "[governance.checks.length_limit]",
            "[governance.checks.forbidden_phrases]",
            "[governance.checks.classification_tags]",
            "[deployment_rules.confidential]",
            "when_offline_allowed",
            "allow_insecure_http",
            "[tls]",
            "cert_file",
            "key_file",
            "[rate_limit]",
            "requests_per_second",
            "burst",
            "[encryption]",
            "master_key_file",
            "master_key_keyring",
            "previous_master_key_file",
            "previous_master_key_keyring",
            "scope",
            "reencrypt_batch",
            "reencrypt_interval_seconds",
            "[governance.checks.content_scan]",
            "[content.on_save.public]",
            "[content.render.sensitive]",
            "[content.render.injection]",
            "[content.output]",
        ] {
            assert!(EXAMPLE.contains(key), "example config should mention {key}");
        }
    }

    #[test]
    fn governance_settings_name_files_and_configure_builtins() {
        let s: Settings = toml::from_str(
            "[governance]\nworkflows_file = \"wf.toml\"\n\
             [governance.checks.forbidden_phrases]\nphrases = [\"guaranteed returns\"]\n\
             [governance.checks.length_limit]\nseverity = \"error\"\n",
        )
        .unwrap();
        assert_eq!(s.governance.workflows_file, Some(PathBuf::from("wf.toml")));
        assert_eq!(s.governance.checks_file, None);
        assert_eq!(s.governance.checks.forbidden_phrases.phrases, vec!["guaranteed returns".to_owned()]);
        assert_eq!(s.governance.checks.length_limit.severity, promptvault_core::compliance::Severity::Error);
        assert_eq!(s.governance.checks.length_limit.max_chars, 32_000, "unset parameters keep their default");
        let err = toml::from_str::<Settings>("[governance.checks.length_limit]\nmax_char = 1").unwrap_err();
        assert!(err.to_string().contains("max_char"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<Settings>("lsten = \"x\"").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        let err = toml::from_str::<Settings>("[auth.jwt]\nsecret = \"x\"").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        let err = toml::from_str::<Settings>("[auth]\nsession = 1").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        let err = toml::from_str::<Settings>("[auth.sessions]\nidle_minutes = 5").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn jwt_settings_are_off_by_default_and_read_from_auth_jwt() {
        let s = Settings::default();
        assert!(!s.auth.jwt.enabled);
        let s: Settings = toml::from_str(
            "[auth.jwt]\nenabled = true\njwks_url = \"https://idp.example.com/jwks.json\"\n\
             audience = \"authenticated\"\nauto_provision = true\ndefault_role = \"viewer\"",
        )
        .expect("parses");
        let jwt = &s.auth.jwt;
        assert!(jwt.enabled && jwt.auto_provision);
        assert_eq!(jwt.jwks_url.as_deref(), Some("https://idp.example.com/jwks.json"));
        assert_eq!(jwt.audience.as_deref(), Some(&["authenticated".to_owned()][..]));
        assert_eq!(jwt.default_role.as_deref(), Some("viewer"));
        assert_eq!(jwt.user_claim, "sub", "unset keys keep their defaults");
    }

    #[test]
    fn validation_says_what_to_change() {
        let s = Settings { default_label: "Prod!".into(), ..Settings::default() };
        assert!(s.validate().unwrap_err().to_string().contains("default_label"));
        let s = Settings { database_url: Some(Secret::new("mysql://x".into())), ..Settings::default() };
        assert!(s.validate().unwrap_err().to_string().contains("sqlite:// or postgres://"));
        let s = Settings { admin_token: Some(Secret::new("short".into())), ..Settings::default() };
        assert!(s.validate().unwrap_err().to_string().contains("32 characters"));
        let s: Settings =
            toml::from_str("[deployment_rules.restricted]\ndeployments = [\"electron_local\"]").unwrap();
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("deployment_rules.restricted.deployments"), "{err}");
    }

    #[test]
    fn render_isolation_settings_are_checked() {
        let s: Settings = toml::from_str("[render]\nmemory_limit_mb = 64").unwrap();
        assert!(
            s.validate().unwrap_err().to_string().contains("render.memory_limit_mb must be at least 128")
        );
        let s: Settings = toml::from_str("[render]\ntimeout_ms = 0").unwrap();
        assert!(s.validate().unwrap_err().to_string().contains("render.timeout_ms positive"));
        let err = toml::from_str::<Settings>("[render]\nisolation = \"thread\"").unwrap_err().to_string();
        assert!(err.contains("process") && err.contains("none"), "{err}");
        // Workers: this program by default, at least two; none without isolation.
        let w = Settings::default().render_workers().unwrap().expect("process isolation by default");
        assert_eq!(w.args, ["render-worker"]);
        assert!(w.workers >= 2);
        let s: Settings = toml::from_str("[render]\nisolation = \"none\"").unwrap();
        assert!(s.render_workers().unwrap().is_none());
        let s: Settings =
            toml::from_str("[render]\nworker_command = [\"/opt/w\", \"go\"]\nworkers = 3").unwrap();
        let w = s.render_workers().unwrap().unwrap();
        assert_eq!(
            (w.program.to_str(), w.args.as_slice(), w.workers),
            (Some("/opt/w"), &["go".to_owned()][..], 3)
        );
    }

    #[test]
    fn keyring_entries_are_read_as_service_slash_account() {
        let s: Settings = toml::from_str(
            "[encryption]\nmaster_key_keyring = \"promptvault/master\"\n\
             previous_master_key_keyring = \"promptvault/master-old\"",
        )
        .expect("parses");
        let entry = s.encryption.master_key_keyring.expect("set");
        assert_eq!((entry.service(), entry.account()), ("promptvault", "master"));
        assert_eq!(
            s.encryption.previous_master_key_keyring.expect("set").to_string(),
            "promptvault/master-old"
        );
        assert!(Settings::default().encryption.master_key_keyring.is_none(), "no keyring unless configured");
        let err =
            toml::from_str::<Settings>("[encryption]\nmaster_key_keyring = \"promptvault\"").unwrap_err();
        assert!(err.to_string().contains("expected service/account"), "{err}");
        let err = toml::from_str::<Settings>("[encryption]\nmaster_keyring = \"a/b\"").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn sqlite_in_the_data_dir_by_default() {
        let s = Settings { data_dir: PathBuf::from("/tmp/pv"), ..Settings::default() };
        assert_eq!(s.database_url().expose(), "sqlite:///tmp/pv/promptvault.db");
    }
}
