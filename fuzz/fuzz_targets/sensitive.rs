//! The sensitive-data scanner and redaction.
//!
//! Properties: no panic; findings are in order, within the text, on char
//! boundaries, never overlapping, with the right line and column;
//! `contains_sensitive` agrees with `scan`; redaction removes exactly the
//! findings (text without findings is unchanged, and no finding's text
//! survives in place).
#![no_main]

use libfuzzer_sys::fuzz_target;
use promptvault_core::sensitive::{contains_sensitive, redact, scan};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let findings = scan(&text);
    let mut prev_end = 0;
    for f in &findings {
        assert!(f.start < f.end && f.end <= text.len(), "{f:?} out of bounds");
        assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end), "{f:?} splits a char");
        assert!(f.start >= prev_end, "{f:?} overlaps the previous finding");
        prev_end = f.end;
        let before = &text[..f.start];
        assert_eq!(f.line, before.matches('\n').count() + 1, "{f:?} line");
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        assert_eq!(f.column, col, "{f:?} column");
    }
    assert_eq!(contains_sensitive(&text), !findings.is_empty());
    let redacted = redact(&text);
    if findings.is_empty() {
        assert_eq!(redacted, text, "text without findings changed");
    } else {
        let marker_bytes: usize = findings.iter().map(|f| "[REDACTED:]".len() + f.kind.as_str().len()).sum();
        let removed: usize = findings.iter().map(|f| f.end - f.start).sum();
        assert_eq!(redacted.len(), text.len() - removed + marker_bytes, "redaction length");
        assert!(redacted.contains("[REDACTED:"));
    }
});
