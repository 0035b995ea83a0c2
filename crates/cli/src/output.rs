//! Printing: tables for people, JSON for scripts.

use std::io::{IsTerminal, Write};

use comfy_table::{ContentArrangement, Table, presets};
use owo_colors::OwoColorize;
use serde_json::Value;

/// How results are shown.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    pub json: bool,
    pub color: bool,
}

impl Out {
    pub fn new(json: bool, no_color: bool) -> Self {
        let color = !no_color && std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal();
        Self { json, color }
    }

    /// Prints `body` as JSON when asked, otherwise calls `human`.
    pub fn show(&self, body: &Value, human: impl FnOnce(&Value)) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(body).unwrap_or_default());
        } else {
            human(body);
        }
    }

    pub fn table(&self, header: &[&str], rows: Vec<Vec<String>>) {
        let mut t = Table::new();
        t.load_style(presets::NOTHING).set_content_arrangement(ContentArrangement::Dynamic);
        t.set_header(header.iter().map(|h| h.to_uppercase()).collect::<Vec<_>>());
        for r in rows {
            t.add_row(r);
        }
        println!("{}", t.trim_fmt());
    }

    /// `key: value` lines.
    pub fn fields(&self, rows: &[(&str, String)]) {
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (k, v) in rows {
            let key = format!("{k:width$}");
            if self.color {
                println!("{}  {v}", key.bold());
            } else {
                println!("{key}  {v}");
            }
        }
    }

    pub fn heading(&self, text: &str) {
        if self.color {
            println!("{}", text.bold().underline());
        } else {
            println!("{text}");
        }
    }

    /// A unified diff, coloured on terminals.
    pub fn diff(&self, text: &str) {
        for line in text.lines() {
            if !self.color {
                println!("{line}");
            } else if line.starts_with("+++") || line.starts_with("---") {
                println!("{}", line.bold());
            } else if line.starts_with('+') {
                println!("{}", line.green());
            } else if line.starts_with('-') {
                println!("{}", line.red());
            } else if line.starts_with("@@") {
                println!("{}", line.cyan());
            } else {
                println!("{line}");
            }
        }
    }

    pub fn warn(&self, text: &str) {
        if self.color {
            eprintln!("{} {text}", "warning:".yellow().bold());
        } else {
            eprintln!("warning: {text}");
        }
    }
}

/// Writes to standard output (what `print!` and `println!` do in this crate).
/// When the reader has gone (`| head`) the process ends quietly with success;
/// any other write failure is reported.
pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(i32::from(crate::client::exit::FAILURE));
    }
}

/// A string field, or `-`.
pub fn s(v: &Value, key: &str) -> String {
    match v.get(key) {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// A timestamp shortened to the second.
pub fn time(v: &Value, key: &str) -> String {
    let t = s(v, key);
    if t.len() >= 19 { t[..19].replace('T', " ") } else { t }
}

pub fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}
