//! A real server on 127.0.0.1:0 and the built `promptvault` binary run
//! against it.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use promptvault_server::secret::Secret;
use promptvault_server::{Server, Settings};
use promptvault_testkit::TestDb;
use serde_json::Value;

pub type Db = Arc<TestDb>;

/// The admin token the server is started with.
pub const TOKEN: &str = "pv_0123456789_c1i0c1i0c1i0c1i0c1i0c1i0c1i0c1i0c1i0c1i0c1i0c1i0";

/// The longest one run of the binary may take before the test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// Render settings for a server started by a test: workers are the binary
/// under test (`promptvault render-worker`), not the test program.
pub fn render_settings() -> promptvault_server::settings::RenderSettings {
    promptvault_server::settings::RenderSettings {
        worker_command: vec![env!("CARGO_BIN_EXE_promptvault").into(), "render-worker".into()],
        ..Default::default()
    }
}

/// A server for one test, a directory for input files, and the binary.
pub struct Cli {
    server: Option<Server>,
    pub url: String,
    files: tempfile::TempDir,
}

impl Cli {
    pub async fn start(db: &TestDb) -> Cli {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let settings = Settings {
            listen: "127.0.0.1:0".parse().expect("address"),
            data_dir: db.dir.path().to_path_buf(),
            database_url: Some(Secret::new(db.options.url.clone())),
            pg_schema: db.options.pg_schema.clone(),
            max_connections: 4,
            admin_token: Some(Secret::new(TOKEN.into())),
            render: render_settings(),
            ..Settings::default()
        };
        let server = promptvault_server::start(settings).await.expect("server starts");
        let url = format!("http://{}", server.local_addr());
        Cli { server: Some(server), url, files: tempfile::tempdir().expect("temporary directory") }
    }

    /// Stops the server, waiting for it to finish cleanly.
    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await.expect("clean shutdown");
        }
    }

    /// Writes an input file and returns its path as an argument.
    pub fn file(&self, name: &str, content: &str) -> String {
        let path: PathBuf = self.files.path().join(name);
        std::fs::write(&path, content).expect("write input file");
        path.to_str().expect("UTF-8 path").to_owned()
    }

    /// A run of the binary with this server's URL and the admin token.
    pub fn cmd(&self, args: &[&str]) -> Call {
        Call::new(args).url(&self.url).token(Some(TOKEN))
    }

    /// Runs the binary with `args` and nothing on standard input.
    pub async fn run(&self, args: &[&str]) -> Run {
        self.cmd(args).run().await
    }
}

/// One invocation of the binary, to adjust before running it.
pub struct Call {
    args: Vec<String>,
    stdin: Option<String>,
    url: Option<String>,
    token: Option<String>,
    no_color: bool,
    envs: Vec<(String, String)>,
}

impl Call {
    /// A run with no server URL and no token.
    pub fn new(args: &[&str]) -> Call {
        Call {
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            stdin: None,
            url: None,
            token: None,
            no_color: true,
            envs: Vec::new(),
        }
    }

    /// Leaves out `--no-color`, which every other run gets.
    pub fn colour_allowed(mut self) -> Self {
        self.no_color = false;
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Pipes `text` into standard input.
    pub fn stdin(mut self, text: &str) -> Self {
        self.stdin = Some(text.to_owned());
        self
    }

    pub fn url(mut self, url: &str) -> Self {
        self.url = Some(url.to_owned());
        self
    }

    /// Another token, or none.
    pub fn token(mut self, token: Option<&str>) -> Self {
        self.token = token.map(str::to_owned);
        self
    }

    fn command(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_promptvault"));
        // Only what the test sets: no NO_COLOR, PROMPTVAULT_* or RUST_LOG
        // from the environment running the tests.
        cmd.env_clear();
        if self.no_color {
            cmd.arg("--no-color");
        }
        cmd.args(&self.args).envs(self.envs.iter().map(|(k, v)| (k, v)));
        if let Some(url) = &self.url {
            cmd.env("PROMPTVAULT_URL", url);
        }
        if let Some(token) = &self.token {
            cmd.env("PROMPTVAULT_TOKEN", token);
        }
        cmd
    }

    /// Runs the binary (on a blocking thread) and collects what it printed.
    pub async fn run(self) -> Run {
        let what = format!("promptvault {}", self.args.join(" "));
        let output = tokio::task::spawn_blocking(move || {
            let mut cmd = assert_cmd::Command::from_std(self.command());
            // Standard input is always a pipe; without input it is closed at once.
            cmd.write_stdin(self.stdin.unwrap_or_default()).timeout(RUN_TIMEOUT).output()
        })
        .await
        .expect("the blocking task runs")
        .unwrap_or_else(|e| panic!("{what}: cannot run the binary: {e}"));
        Run::new(what, output)
    }

    /// Runs the binary with a terminal as standard input and output (a
    /// pseudo-terminal from util-linux's `script`); standard error is merged
    /// into standard output there, with `\r\n` line ends turned back to `\n`.
    pub async fn run_in_terminal(self) -> Run {
        let what = format!("promptvault {} (in a terminal)", self.args.join(" "));
        let inner = self.command();
        let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_str().expect("UTF-8").replace('\'', r"'\''"));
        let line: Vec<String> =
            std::iter::once(quote(inner.get_program())).chain(inner.get_args().map(quote)).collect();
        let mut cmd = std::process::Command::new("script");
        cmd.env_clear()
            .envs(inner.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .args(["--quiet", "--return", "--command"])
            .arg(line.join(" "))
            .arg("/dev/null");
        let output = tokio::task::spawn_blocking(move || {
            assert_cmd::Command::from_std(cmd).timeout(RUN_TIMEOUT).output()
        })
        .await
        .expect("the blocking task runs")
        .unwrap_or_else(|e| panic!("{what}: cannot run `script` (util-linux): {e}"));
        let mut run = Run::new(what, output);
        run.stdout = run.stdout.replace("\r\n", "\n");
        run
    }

    /// Runs the binary with standard output closed by the reader before
    /// anything is written, as `promptvault … | head -0` would.
    pub async fn run_with_stdout_closed(self) -> Run {
        let what = format!("promptvault {} | (closed)", self.args.join(" "));
        let output = tokio::task::spawn_blocking(move || {
            let mut child =
                self.command().stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
            drop(child.stdout.take());
            child.wait_with_output()
        })
        .await
        .expect("the blocking task runs")
        .unwrap_or_else(|e| panic!("{what}: cannot run the binary: {e}"));
        Run::new(what, output)
    }
}

/// What a run printed and how it exited.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    what: String,
}

impl Run {
    fn new(what: String, output: std::process::Output) -> Run {
        Run {
            code: output.status.code().unwrap_or_else(|| panic!("{what}: killed by a signal")),
            stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
            stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
            what,
        }
    }

    /// Asserts success and returns standard output.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "{self}");
        &self.stdout
    }

    /// Asserts success and returns the run.
    #[track_caller]
    pub fn success(&self) -> &Self {
        self.ok();
        self
    }

    /// Asserts exit `code` with exactly one line on standard error, `error: …`,
    /// and nothing on standard output; returns that line.
    #[track_caller]
    pub fn fails(&self, code: i32) -> &str {
        assert_eq!(self.code, code, "{self}");
        assert_eq!(self.stderr.lines().count(), 1, "the error is one line: {self}");
        assert!(self.stderr.ends_with('\n'), "{self}");
        assert!(self.stderr.starts_with("error: "), "{self}");
        assert!(self.stdout.is_empty(), "a failure prints nothing on stdout: {self}");
        self.stderr.trim_end()
    }

    /// Asserts success and parses standard output as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        let out = self.ok();
        serde_json::from_str(out).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self}"))
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` exited {}\n--- stdout\n{}--- stderr\n{}---",
            self.what, self.code, self.stdout, self.stderr
        )
    }
}

/// Replaces what changes from run to run (timestamps, ids) with fixed text
/// of the same width, so that tables stay aligned.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if is_timestamp(&chars[i..]) {
            out.push_str("YYYY-MM-DD hh:mm:ss");
            i += 19;
        } else if is_uuid(&chars[i..]) {
            out.push_str("xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx");
            i += 36;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

fn shaped(s: &[char], pattern: &str, digit: fn(char) -> bool) -> bool {
    s.len() >= pattern.len() && pattern.chars().zip(s).all(|(p, &c)| if p == '9' { digit(c) } else { p == c })
}

fn is_timestamp(s: &[char]) -> bool {
    shaped(s, "9999-99-99 99:99:99", |c| c.is_ascii_digit())
}

fn is_uuid(s: &[char]) -> bool {
    shaped(s, "99999999-9999-9999-9999-999999999999", |c| c.is_ascii_hexdigit())
}

/// The prompt id a human-readable render printed on standard error.
#[track_caller]
pub fn prompt_id(run: &Run) -> String {
    let line = run.stderr.lines().find(|l| l.starts_with("prompt ")).unwrap_or_else(|| panic!("{run}"));
    let id = line["prompt ".len()..].split_whitespace().next().unwrap_or_default().to_owned();
    assert!(is_uuid(&id.chars().collect::<Vec<_>>()) && id.len() == 36, "{run}");
    id
}

/// The names in a `--json` list.
#[track_caller]
pub fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {list:#}"))
        .iter()
        .map(|t| t["name"].as_str().expect("a name").to_owned())
        .collect()
}

/// A server that is not promptvault: it answers every request with
/// `response` (raw HTTP, or anything else) and closes the connection.
pub struct FakeServer {
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl FakeServer {
    pub async fn start(response: impl Into<String>) -> FakeServer {
        let response: Arc<str> = response.into().into();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let response = response.clone();
                tokio::spawn(async move {
                    // Read the request head, then answer.
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = conn.write_all(response.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        FakeServer { url, task }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An HTTP/1.1 response with this status line, content type and body.
pub fn http_response(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Takes a version through review: the admin submits it and a new reviewer
/// (another person, so four eyes hold) approves it.
pub async fn release(cli: &Cli, name: &str, version: &str) {
    cli.run(&["submit", name, version]).await.ok();
    let email = format!("reviewer-{}@example.com", uuid::Uuid::now_v7().simple());
    let user = cli.run(&["--json", "users", "create", "--email", &email, "--role", "reviewer"]).await.json();
    let id = user["id"].as_str().unwrap().to_owned();
    let token = cli.run(&["keys", "create", "r", "--user", &id]).await.ok().trim().to_owned();
    Call::new(&["approve", name, version]).url(&cli.url).token(Some(&token)).run().await.ok();
}
