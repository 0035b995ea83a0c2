//! Sensitive-data detection: e-mail addresses, phone numbers, payment card
//! numbers (Luhn), IBANs (mod-97 checksum), national identifiers, IP
//! addresses, private keys (PEM), JWTs, provider credentials, and a
//! high-entropy heuristic for secrets of no known shape.
//!
//! One pass of a [`RegexSet`] tells which kinds occur at all; only those are
//! then located, and each candidate is validated (checksums, ranges) before
//! it becomes a [`Finding`]. Overlapping candidates keep the most specific
//! kind (a Stripe key is a credential, not a high-entropy string).
//!
//! Precision and recall are measured on the labelled corpus in
//! `sensitive/corpus.tsv` (see the tests and docs/security.md).

use std::sync::OnceLock;

use regex::{Regex, RegexSet};
use serde::{Deserialize, Serialize};

/// What was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensitiveKind {
    PrivateKey,
    Credential,
    Jwt,
    PaymentCard,
    Iban,
    NationalId,
    Email,
    Phone,
    IpAddress,
    HighEntropy,
}

impl SensitiveKind {
    pub const ALL: [Self; 10] = [
        Self::PrivateKey,
        Self::Credential,
        Self::Jwt,
        Self::PaymentCard,
        Self::Iban,
        Self::NationalId,
        Self::Email,
        Self::Phone,
        Self::IpAddress,
        Self::HighEntropy,
    ];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::PrivateKey => "private_key",
            Self::Credential => "credential",
            Self::Jwt => "jwt",
            Self::PaymentCard => "payment_card",
            Self::Iban => "iban",
            Self::NationalId => "national_id",
            Self::Email => "email",
            Self::Phone => "phone",
            Self::IpAddress => "ip_address",
            Self::HighEntropy => "high_entropy",
        }
    }

    /// Secrets grant access by themselves; personal data identifies people.
    #[must_use]
    pub const fn is_secret(self) -> bool {
        matches!(self, Self::PrivateKey | Self::Credential | Self::Jwt | Self::HighEntropy)
    }
}

impl std::fmt::Display for SensitiveKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SensitiveKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| format!("unknown sensitive kind {s:?}"))
    }
}

/// One occurrence, by byte range into the scanned text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: SensitiveKind,
    /// What exactly: `aws_access_key`, `ssn`, `ipv6`, …
    pub detail: &'static str,
    pub start: usize,
    pub end: usize,
    /// 1-based line and column (in characters) of the start.
    pub line: usize,
    pub column: usize,
}

/// A detector: its pattern, its kind, and how a candidate is confirmed.
struct Detector {
    kind: SensitiveKind,
    detail: &'static str,
    pattern: &'static str,
    /// Checks a candidate; `None` keeps every match.
    confirm: Option<fn(&str) -> bool>,
}

const DETECTORS: &[Detector] = &[
    Detector {
        kind: SensitiveKind::PrivateKey,
        detail: "pem_private_key",
        pattern: r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",
        confirm: None,
    },
    Detector {
        kind: SensitiveKind::Credential,
        detail: "aws_access_key",
        pattern: r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[0-9A-Z]{16}\b",
        confirm: None,
    },
    Detector {
        kind: SensitiveKind::Credential,
        detail: "aws_secret_key",
        pattern: r#"(?i)aws(?:.{0,20})?(?:secret|private)?(?:.{0,20})?['"=: ]+[A-Za-z0-9/+]{40}\b"#,
        confirm: Some(aws_secret),
    },
    Detector {
        kind: SensitiveKind::Credential,
        detail: "anthropic_key",
        pattern: r"\bsk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_-]{20,}",
        confirm: None,
    },
    Detector {
        kind: SensitiveKind::Credential,
        detail: "openai_key",
        pattern: r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}",
        confirm: Some(openai_key),
    },
    Detector {
        kind: SensitiveKind::Credential,
        detail: "github_token",
        pattern: r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b",
        confirm: None,
    },
    Detector {
        kind: SensitiveKind::Credential,
        detail: "slack_token",
        pattern: r"\bxox[abposre]-(?:[0-9]+-)*[A-Za-z0-9-]{10,}\b",
        confirm: None,
    },
    Detector {
        kind: SensitiveKind::Credential,
        detail: "slack_webhook",
        pattern: r"https://hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+",
        confirm: None,
    },
    Detector {
        kind: SensitiveKind::Credential,
        detail: "google_api_key",
        pattern: r"\bAIza[0-9A-Za-z_-]{35}\b",
        confirm: None,
    },
    Detector {
        kind: SensitiveKind::Credential,
        detail: "stripe_key",
        pattern: r"\b(?:sk|rk|pk|whsec)_(?:live|test)_[0-9A-Za-z]{16,}\b",
        confirm: None,
    },
    Detector {
        kind: SensitiveKind::Jwt,
        detail: "jwt",
        pattern: r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}",
        confirm: None,
    },
    Detector {
        kind: SensitiveKind::PaymentCard,
        detail: "payment_card",
        pattern: r"\b\d(?:[ -]?\d){12,18}\b",
        confirm: Some(payment_card),
    },
    Detector {
        kind: SensitiveKind::Iban,
        detail: "iban",
        pattern: r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b",
        confirm: Some(iban),
    },
    Detector {
        kind: SensitiveKind::NationalId,
        detail: "us_ssn",
        pattern: r"\b\d{3}-\d{2}-\d{4}\b",
        confirm: Some(us_ssn),
    },
    Detector {
        kind: SensitiveKind::NationalId,
        detail: "uk_nino",
        pattern: r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b",
        confirm: Some(uk_nino),
    },
    Detector {
        kind: SensitiveKind::Email,
        detail: "email",
        pattern: r"\b[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}\b",
        confirm: None,
    },
    Detector {
        kind: SensitiveKind::Phone,
        detail: "phone",
        pattern: r"(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){1,4}\b|\+\d{8,15}\b",
        confirm: Some(phone),
    },
    Detector {
        kind: SensitiveKind::IpAddress,
        detail: "ipv4",
        pattern: r"\b(?:\d{1,3}\.){3}\d{1,3}\b",
        confirm: Some(ipv4),
    },
    Detector {
        kind: SensitiveKind::IpAddress,
        detail: "ipv6",
        pattern: r"(?i)(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}",
        confirm: Some(ipv6),
    },
    Detector {
        kind: SensitiveKind::HighEntropy,
        detail: "high_entropy",
        pattern: r"[A-Za-z0-9+/_=.-]{24,}",
        confirm: Some(high_entropy),
    },
];

struct Compiled {
    set: RegexSet,
    each: Vec<Regex>,
}

fn compiled() -> &'static Compiled {
    static C: OnceLock<Compiled> = OnceLock::new();
    C.get_or_init(|| {
        let patterns: Vec<&str> = DETECTORS.iter().map(|d| d.pattern).collect();
        Compiled {
            set: RegexSet::new(&patterns).expect("the detector patterns are valid"),
            each: patterns.iter().map(|p| Regex::new(p).expect("a valid detector pattern")).collect(),
        }
    })
}

/// Every sensitive thing in `text`, in order, without overlaps.
#[must_use]
pub fn scan(text: &str) -> Vec<Finding> {
    let c = compiled();
    let mut candidates: Vec<(usize, usize, usize)> = Vec::new(); // (start, end, detector)
    for i in c.set.matches(text).iter() {
        let d = &DETECTORS[i];
        for m in c.each[i].find_iter(text) {
            // "+4915112345678" is an international phone number, whatever
            // its digits' checksum says.
            let after_plus = text[..m.start()].ends_with('+');
            if d.kind == SensitiveKind::PaymentCard && after_plus {
                continue;
            }
            if d.confirm.is_none_or(|ok| ok(m.as_str())) {
                candidates.push((m.start(), m.end(), i));
            }
        }
    }
    // Most specific first (detector order), then longest; a candidate that
    // overlaps one already kept is dropped.
    candidates.sort_by_key(|&(s, e, i)| (DETECTORS[i].kind, i, s, usize::MAX - (e - s)));
    // Kept ranges never overlap, so only the one starting last before a
    // candidate's end can overlap it: a lookup, not a scan of all kept
    // (which made many findings quadratic).
    let mut kept: std::collections::BTreeMap<usize, (usize, usize)> = std::collections::BTreeMap::new();
    for (start, end, i) in candidates {
        let overlaps = kept.range(..end).next_back().is_some_and(|(_, &(k_end, _))| k_end > start);
        if !overlaps {
            kept.insert(start, (end, i));
        }
    }
    let mut at = Position::default();
    kept.into_iter()
        .map(|(start, (end, i))| {
            at.advance(text, start);
            Finding {
                kind: DETECTORS[i].kind,
                detail: DETECTORS[i].detail,
                start,
                end,
                line: at.line,
                column: at.column,
            }
        })
        .collect()
}

/// A 1-based line and column (in characters) moved forward through a text,
/// so positions in order cost one pass in all.
struct Position {
    byte: usize,
    line: usize,
    column: usize,
}

impl Default for Position {
    fn default() -> Self {
        Self { byte: 0, line: 1, column: 1 }
    }
}

impl Position {
    fn advance(&mut self, text: &str, to: usize) {
        let segment = &text[self.byte..to];
        match segment.rfind('\n') {
            Some(last) => {
                self.line += segment.matches('\n').count();
                self.column = segment[last + 1..].chars().count() + 1;
            }
            None => self.column += segment.chars().count(),
        }
        self.byte = to;
    }
}

/// Whether `text` holds anything sensitive (cheaper than [`scan`] when
/// nothing is there, which is the common case).
#[must_use]
pub fn contains_sensitive(text: &str) -> bool {
    !scan(text).is_empty()
}

/// `text` with each finding replaced by `[REDACTED:<kind>]`.
#[must_use]
pub fn redact(text: &str) -> String {
    redact_findings(text, &scan(text))
}

/// `text` with the given findings (from [`scan`] of the same text) replaced.
#[must_use]
pub fn redact_findings(text: &str, findings: &[Finding]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for f in findings {
        if f.start < at || f.end > text.len() {
            continue;
        }
        out.push_str(&text[at..f.start]);
        out.push_str("[REDACTED:");
        out.push_str(f.kind.as_str());
        out.push(']');
        at = f.end;
    }
    out.push_str(&text[at..]);
    out
}

fn digits(s: &str) -> Vec<u8> {
    s.bytes().filter(u8::is_ascii_digit).map(|b| b - b'0').collect()
}

/// The Luhn checksum.
#[must_use]
pub fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(*d);
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

fn payment_card(s: &str) -> bool {
    let d = digits(s);
    if !(13..=19).contains(&d.len()) || !luhn(&d) {
        return false;
    }
    // Separators, when present, come in the usual groups (4-4-4-4, 4-6-5).
    let groups: Vec<usize> = s.split([' ', '-']).map(str::len).collect();
    if groups.len() > 1 && !(groups.iter().all(|g| *g <= 4) || groups == [4, 6, 5] || groups == [4, 6, 4]) {
        return false;
    }
    // A known issuer range: Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay, Maestro.
    let p = |n: usize| d[..n].iter().fold(0u32, |a, x| a * 10 + u32::from(*x));
    let len = d.len();
    matches!(p(1), 4) && matches!(len, 13 | 16 | 19)
        || (51..=55).contains(&p(2)) && len == 16
        || (2221..=2720).contains(&p(4)) && len == 16
        || matches!(p(2), 34 | 37) && len == 15
        || (p(4) == 6011 || p(2) == 65 || (644..=649).contains(&p(3))) && (16..=19).contains(&len)
        || (3528..=3589).contains(&p(4)) && (16..=19).contains(&len)
        || (matches!(p(2), 36 | 38 | 39) || (300..=305).contains(&p(3))) && (14..=19).contains(&len)
        || p(2) == 62 && (16..=19).contains(&len)
        || matches!(p(2), 50 | 56 | 57 | 58 | 67 | 68) && (12..=19).contains(&len)
}

/// IBAN lengths by country (the registry's common ones).
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BR", 29),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NL", 18),
    ("NO", 15),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("SA", 24),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VG", 24),
    ("XK", 20),
];

/// The IBAN checksum (ISO 13616: mod 97 = 1) and the country's length.
#[must_use]
pub fn iban_valid(s: &str) -> bool {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(&(_, len)) = IBAN_LENGTHS.iter().find(|(c, _)| compact.starts_with(c)) else {
        return false;
    };
    if compact.len() != len || !compact.is_ascii() {
        return false;
    }
    let rearranged = compact[4..].chars().chain(compact[..4].chars());
    let mut rem = 0u32;
    for c in rearranged {
        let v = match c {
            '0'..='9' => c as u32 - '0' as u32,
            'A'..='Z' => c as u32 - 'A' as u32 + 10,
            _ => return false,
        };
        rem = if v >= 10 { (rem * 100 + v) % 97 } else { (rem * 10 + v) % 97 };
    }
    rem == 1
}

fn iban(s: &str) -> bool {
    iban_valid(s)
}

fn us_ssn(s: &str) -> bool {
    let area: u32 = s[..3].parse().unwrap_or(0);
    let group: u32 = s[4..6].parse().unwrap_or(0);
    let serial: u32 = s[7..].parse().unwrap_or(0);
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

fn uk_nino(s: &str) -> bool {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    !matches!(&compact[..2], "BG" | "GB" | "NK" | "KN" | "TN" | "NT" | "ZZ")
}

fn phone(s: &str) -> bool {
    let d = digits(s);
    let international = s.starts_with('+');
    // Dates, versions and times are not phone numbers.
    let separators: Vec<char> = s.chars().filter(|c| matches!(c, ' ' | '.' | '-')).collect();
    if !international && separators.iter().all(|c| *c == '.') && !separators.is_empty() {
        return false;
    }
    if !international && d.len() == 8 && s.len() == 10 && s.chars().filter(|c| *c == '-').count() == 2 {
        return false; // 2024-01-15
    }
    if international {
        (8..=15).contains(&d.len())
    } else {
        (10..=13).contains(&d.len()) && s.contains(['(', ' ', '-'])
    }
}

fn ipv4(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| p.parse::<u16>().is_ok_and(|v| v <= 255) && (p.len() == 1 || !p.starts_with('0')))
        // 1.2.3.4-like version numbers with small parts are common: require
        // one part above 9.
        && parts.iter().any(|p| p.len() > 1)
}

fn ipv6(s: &str) -> bool {
    s.matches(':').count() >= 2
        && s.len() >= 6
        && s.parse::<std::net::Ipv6Addr>().is_ok()
        && s.chars().any(|c| c.is_ascii_alphanumeric())
}

fn aws_secret(s: &str) -> bool {
    let key = s.rsplit(['\'', '"', '=', ':', ' ']).next().unwrap_or("");
    key.len() == 40 && shannon(key) >= 4.0
}

fn openai_key(s: &str) -> bool {
    // Anthropic keys have their own detector; words like sk-learn-style names are no keys.
    !s.starts_with("sk-ant-")
        && s.chars().any(|c| c.is_ascii_digit())
        && s.chars().any(|c| c.is_ascii_uppercase())
}

/// Shannon entropy in bits per character.
#[must_use]
pub fn shannon(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[usize::from(b)] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = f64::from(*c) / n;
            -p * p.log2()
        })
        .sum()
}

fn high_entropy(s: &str) -> bool {
    let s = s.trim_matches(['.', '-', '=', '/']);
    if s.len() < 24 || s.contains("..") {
        return false;
    }
    let upper = s.chars().any(|c| c.is_ascii_uppercase());
    let lower = s.chars().any(|c| c.is_ascii_lowercase());
    let digit = s.chars().filter(char::is_ascii_digit).count();
    // Paths, dotted names and URLs are not secrets.
    if s.matches('/').count() > 2 || s.matches('.').count() > 1 {
        return false;
    }
    upper && lower && digit >= 2 && shannon(s) >= 4.2
}

#[cfg(test)]
mod tests;
