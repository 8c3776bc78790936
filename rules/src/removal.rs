//! `[[removal]]` and `[[segment]]` rules: the data model and the TOML reader (DESIGN.md §5).
//!
//! The reader walks a parsed `toml::Table` by hand instead of deriving serde: every error then
//! names the file, the rule (by id) and the key, and unknown keys are rejected — a misspelt
//! `issued_afer` must not silently turn a grandfathered removal into a full one.

use crate::error::RulesError;
use crate::segment::{Cidr, NamePattern, Segment};
use crate::time::parse_rfc3339;
use serde::Serialize;

use crate::digest::Sha256;
use std::fmt;
use std::str::FromStr;

/// Largest rules file read, so a wrong `--rules` path (a pcap, /dev/zero) fails fast.
pub const MAX_RULES_FILE_BYTES: u64 = 8 * 1024 * 1024;
/// Most `[[removal]]` plus `[[segment]]` tables in one file.
pub const MAX_RULES_PER_FILE: usize = 10_000;
/// Most CA selectors (`cas` plus `exempt`) in one removal.
pub const MAX_CAS_PER_RULE: usize = 4_096;
/// Longest rule id / segment name.
pub const MAX_ID_LEN: usize = 128;

/// Which root program's behaviour a built-in distrust entry describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Program {
    /// Chrome Root Program / Chromium (blocklists, SCTNotAfter constraints, Symantec lists).
    Chrome,
    /// Mozilla / NSS (certdata.txt trust bits, distrust-after, removals).
    Mozilla,
    /// Apple trust store (only events with a dated, published cut-off).
    Apple,
}

impl Program {
    /// Lower-case name, as in the TOML files.
    pub fn as_str(self) -> &'static str {
        match self {
            Program::Chrome => "chrome",
            Program::Mozilla => "mozilla",
            Program::Apple => "apple",
        }
    }
}

impl fmt::Display for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Program {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "chrome" => Ok(Program::Chrome),
            "mozilla" => Ok(Program::Mozilla),
            "apple" => Ok(Program::Apple),
            _ => Err(format!("unknown program {s:?} (chrome, mozilla or apple)")),
        }
    }
}

/// One way of naming a CA. Several keys may be given; any one that matches identifies the CA
/// (the built-in history gives both the certificate and the SPKI hash, so a cross-signed copy of
/// a distrusted key counts as the same CA, as in Chromium's SPKI blocklists).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CaSelector {
    /// SHA-256 of the CA certificate DER.
    #[serde(serialize_with = "crate::digest::ser::hex_opt")]
    pub sha256: Option<Sha256>,
    /// SHA-256 of the DER SubjectPublicKeyInfo.
    #[serde(serialize_with = "crate::digest::ser::hex_opt")]
    pub spki_sha256: Option<Sha256>,
    /// Subject DN as trustmap prints it (`CN=...,O=...`); compared after [`normalize_dn`].
    pub subject: Option<String>,
}

/// Canonical form for subject comparison: lower case, no spaces around `,` `=` `+`, trimmed.
/// Different tools print DNs with different spacing and case; the order of RDNs is kept.
pub fn normalize_dn(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.trim().chars().peekable();
    while let Some(c) = chars.next() {
        if matches!(c, ',' | '=' | '+') {
            while out.ends_with(' ') {
                out.pop();
            }
            out.push(c);
            while chars.peek() == Some(&' ') {
                chars.next();
            }
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// A CA removal or distrust: from `removed` on, chains through the CA are residual use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Removal {
    /// Rule id; the finding's `rule`. Built-in events repeat their id over several entries
    /// (one per program and stage).
    pub id: String,
    /// Human name.
    pub name: String,
    /// The CAs being removed (`ca` and `cas` together).
    pub cas: Vec<CaSelector>,
    /// Sub-CAs whose presence anywhere in the chain exempts it (Chrome's Symantec exceptions).
    pub exempt: Vec<CaSelector>,
    /// Start of the transition window (`pending` findings), Unix seconds.
    pub announced: Option<i64>,
    /// From this instant any non-grandfathered use is residual, Unix seconds.
    pub removed: i64,
    /// NSS style: only leaves with notBefore after this are affected.
    pub issued_after: Option<i64>,
    /// Chrome 66 style (Symantec stage 1): only leaves with notBefore before this are affected.
    pub issued_before: Option<i64>,
    /// Chrome style: only leaves whose earliest embedded SCT is after this are affected.
    pub sct_after: Option<i64>,
    /// Root program this entry describes; `None` applies under every `--distrust-policy`.
    pub program: Option<Program>,
    /// Informational: stage name of a built-in entry.
    pub stage: Option<String>,
    /// Informational: the program's mechanism, as described by the source data.
    pub mechanism: Option<String>,
    /// Informational: where the `removed` date comes from.
    pub date_basis: Option<String>,
    /// Informational: `second`, `day`, `month` or `year`.
    pub date_precision: Option<String>,
    /// Informational: whether the source data marks the dates as verified.
    pub verified: Option<bool>,
    /// File the rule came from (`builtin:<event>` for the embedded history).
    pub origin: String,
}

/// The contents of one rules file.
#[derive(Debug, Clone, Default)]
pub struct RuleFile {
    /// `[[removal]]` tables, in file order.
    pub removals: Vec<Removal>,
    /// `[[segment]]` tables, in file order.
    pub segments: Vec<Segment>,
    /// `[event]` (built-in distrust files only).
    pub event: Option<EventInfo>,
    /// `[[certificate]]` (built-in distrust files only).
    pub certificates: Vec<EventCert>,
}

/// `[event]` of a built-in distrust file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventInfo {
    /// Event id, e.g. `entrust-2024`.
    pub id: String,
    /// Human name.
    pub name: String,
    /// Year of the event.
    pub year: i64,
    /// One-paragraph summary from the source data.
    pub summary: String,
}

/// `[[certificate]]` of a built-in distrust file: one affected certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventCert {
    /// `root`, `intermediate`, `end-entity` or `exception-*` (exempted sub-CA).
    pub role: String,
    /// Subject DN as in the source data.
    pub subject: String,
    /// SHA-256 of the DER.
    #[serde(serialize_with = "crate::digest::ser::hex")]
    pub sha256: Sha256,
    /// SHA-256 of the SPKI.
    #[serde(serialize_with = "crate::digest::ser::hex")]
    pub spki_sha256: Sha256,
    /// notBefore, Unix seconds.
    pub not_before: i64,
    /// notAfter, Unix seconds.
    pub not_after: i64,
    /// Path of the PEM copy under `rules/distrust/` (absent when the DER is not known).
    pub pem: Option<String>,
}

struct Ctx<'a> {
    file: &'a str,
    rule: Option<String>,
}

impl Ctx<'_> {
    fn err(&self, field: Option<&str>, msg: impl Into<String>) -> RulesError {
        RulesError {
            file: self.file.to_string(),
            rule: self.rule.clone(),
            field: field.map(str::to_string),
            message: msg.into(),
        }
    }
    fn check_keys(&self, t: &toml::Table, allowed: &[&str]) -> Result<(), RulesError> {
        for k in t.keys() {
            if !allowed.contains(&k.as_str()) {
                return Err(self.err(
                    Some(k),
                    format!("unknown key (allowed: {})", allowed.join(", ")),
                ));
            }
        }
        Ok(())
    }
    fn str_opt<'t>(&self, t: &'t toml::Table, k: &str) -> Result<Option<&'t str>, RulesError> {
        match t.get(k) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.err(
                Some(k),
                format!("expected a string, found {}", v.type_str()),
            )),
        }
    }
    fn str_req<'t>(&self, t: &'t toml::Table, k: &str) -> Result<&'t str, RulesError> {
        self.str_opt(t, k)?
            .ok_or_else(|| self.err(Some(k), "required key missing"))
    }
    fn bool_opt(&self, t: &toml::Table, k: &str) -> Result<Option<bool>, RulesError> {
        match t.get(k) {
            None => Ok(None),
            Some(toml::Value::Boolean(b)) => Ok(Some(*b)),
            Some(v) => Err(self.err(
                Some(k),
                format!("expected true or false, found {}", v.type_str()),
            )),
        }
    }
    /// RFC 3339 UTC instant, given as a string or as a TOML offset date-time literal.
    fn time_opt(&self, t: &toml::Table, k: &str) -> Result<Option<i64>, RulesError> {
        let text = match t.get(k) {
            None => return Ok(None),
            Some(toml::Value::String(s)) => s.clone(),
            Some(toml::Value::Datetime(d)) => d.to_string(),
            Some(v) => {
                return Err(self.err(
                    Some(k),
                    format!("expected an RFC 3339 time, found {}", v.type_str()),
                ))
            }
        };
        parse_rfc3339(&text).map(Some).map_err(|e| {
            self.err(
                Some(k),
                format!("{e} (got {text:?}; example \"2026-06-01T00:00:00Z\")"),
            )
        })
    }
    fn str_array(&self, t: &toml::Table, k: &str) -> Result<Vec<String>, RulesError> {
        match t.get(k) {
            None => Ok(Vec::new()),
            Some(toml::Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    toml::Value::String(s) => Ok(s.clone()),
                    v => Err(self.err(
                        Some(&format!("{k}[{i}]")),
                        format!("expected a string, found {}", v.type_str()),
                    )),
                })
                .collect(),
            Some(v) => Err(self.err(
                Some(k),
                format!("expected an array of strings, found {}", v.type_str()),
            )),
        }
    }
}

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/'))
}

fn hex64(ctx: &Ctx<'_>, field: &str, s: &str) -> Result<Sha256, RulesError> {
    crate::digest::parse_hex(s).ok_or_else(|| {
        ctx.err(
            Some(field),
            format!("expected 64 hex digits (SHA-256), got {:?}", s.trim()),
        )
    })
}

fn ca_selector(ctx: &Ctx<'_>, field: &str, v: &toml::Value) -> Result<CaSelector, RulesError> {
    let t = match v {
        toml::Value::Table(t) => t,
        v => {
            return Err(ctx.err(
                Some(field),
                format!(
                    "expected a table like {{ sha256 = \"...\" }}, found {}",
                    v.type_str()
                ),
            ))
        }
    };
    for k in t.keys() {
        if !["sha256", "spki_sha256", "subject"].contains(&k.as_str()) {
            return Err(ctx.err(
                Some(&format!("{field}.{k}")),
                "unknown key (allowed: sha256, spki_sha256, subject)",
            ));
        }
    }
    let get = |k: &str| -> Result<Option<&str>, RulesError> {
        match t.get(k) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.as_str())),
            Some(v) => Err(ctx.err(
                Some(&format!("{field}.{k}")),
                format!("expected a string, found {}", v.type_str()),
            )),
        }
    };
    let sel = CaSelector {
        sha256: get("sha256")?
            .map(|s| hex64(ctx, &format!("{field}.sha256"), s))
            .transpose()?,
        spki_sha256: get("spki_sha256")?
            .map(|s| hex64(ctx, &format!("{field}.spki_sha256"), s))
            .transpose()?,
        subject: match get("subject")? {
            Some(s) if s.trim().is_empty() => {
                return Err(ctx.err(Some(&format!("{field}.subject")), "empty subject"))
            }
            s => s.map(str::to_string),
        },
    };
    if sel.sha256.is_none() && sel.spki_sha256.is_none() && sel.subject.is_none() {
        return Err(ctx.err(Some(field), "a CA needs sha256, spki_sha256 or subject"));
    }
    Ok(sel)
}

fn ca_list(ctx: &Ctx<'_>, t: &toml::Table, k: &str) -> Result<Vec<CaSelector>, RulesError> {
    match t.get(k) {
        None => Ok(Vec::new()),
        Some(toml::Value::Array(a)) => {
            if a.len() > MAX_CAS_PER_RULE {
                return Err(ctx.err(Some(k), format!("more than {MAX_CAS_PER_RULE} entries")));
            }
            a.iter()
                .enumerate()
                .map(|(i, v)| ca_selector(ctx, &format!("{k}[{i}]"), v))
                .collect()
        }
        Some(v) => Err(ctx.err(
            Some(k),
            format!("expected an array of CA tables, found {}", v.type_str()),
        )),
    }
}

const REMOVAL_KEYS: &[&str] = &[
    "id",
    "name",
    "ca",
    "cas",
    "exempt",
    "announced",
    "removed",
    "issued_after",
    "issued_before",
    "sct_after",
    "program",
    "stage",
    "mechanism",
    "date_basis",
    "date_precision",
    "verified",
    "note",
];

fn parse_removal(file: &str, idx: usize, v: &toml::Value) -> Result<Removal, RulesError> {
    let mut ctx = Ctx {
        file,
        rule: Some(format!("[[removal]] #{}", idx + 1)),
    };
    let t = match v {
        toml::Value::Table(t) => t,
        _ => return Err(ctx.err(None, "expected a table")),
    };
    let id = ctx.str_req(t, "id")?;
    if !valid_id(id) {
        return Err(ctx.err(
            Some("id"),
            format!("invalid id {id:?}: 1..={MAX_ID_LEN} characters of A-Z a-z 0-9 - _ . : /"),
        ));
    }
    ctx.rule = Some(format!("[[removal]] {id:?}"));
    ctx.check_keys(t, REMOVAL_KEYS)?;
    let mut cas = Vec::new();
    if let Some(v) = t.get("ca") {
        cas.push(ca_selector(&ctx, "ca", v)?);
    }
    cas.extend(ca_list(&ctx, t, "cas")?);
    if cas.is_empty() {
        return Err(ctx.err(
            Some("ca"),
            "a removal needs `ca = { ... }` or `cas = [ ... ]`",
        ));
    }
    let exempt = ca_list(&ctx, t, "exempt")?;
    let removed = ctx
        .time_opt(t, "removed")?
        .ok_or_else(|| ctx.err(Some("removed"), "required key missing"))?;
    let announced = ctx.time_opt(t, "announced")?;
    if let Some(a) = announced {
        if a > removed {
            return Err(ctx.err(Some("announced"), "announced is after removed"));
        }
    }
    let program = match ctx.str_opt(t, "program")? {
        None => None,
        Some(p) => Some(
            p.parse::<Program>()
                .map_err(|e| ctx.err(Some("program"), e))?,
        ),
    };
    let _ = ctx.str_opt(t, "note")?;
    Ok(Removal {
        id: id.to_string(),
        name: ctx.str_opt(t, "name")?.unwrap_or(id).to_string(),
        cas,
        exempt,
        announced,
        removed,
        issued_after: ctx.time_opt(t, "issued_after")?,
        issued_before: ctx.time_opt(t, "issued_before")?,
        sct_after: ctx.time_opt(t, "sct_after")?,
        program,
        stage: ctx.str_opt(t, "stage")?.map(str::to_string),
        mechanism: ctx.str_opt(t, "mechanism")?.map(str::to_string),
        date_basis: ctx.str_opt(t, "date_basis")?.map(str::to_string),
        date_precision: ctx.str_opt(t, "date_precision")?.map(str::to_string),
        verified: ctx.bool_opt(t, "verified")?,
        origin: file.to_string(),
    })
}

fn parse_segment(file: &str, idx: usize, v: &toml::Value) -> Result<Segment, RulesError> {
    let mut ctx = Ctx {
        file,
        rule: Some(format!("[[segment]] #{}", idx + 1)),
    };
    let t = match v {
        toml::Value::Table(t) => t,
        _ => return Err(ctx.err(None, "expected a table")),
    };
    let name = ctx.str_req(t, "name")?;
    if name.trim().is_empty() || name.len() > MAX_ID_LEN {
        return Err(ctx.err(
            Some("name"),
            format!("name must be 1..={MAX_ID_LEN} characters"),
        ));
    }
    ctx.rule = Some(format!("[[segment]] {name:?}"));
    ctx.check_keys(t, &["name", "cidrs", "server_names", "internal", "note"])?;
    let mut cidrs = Vec::new();
    for (i, s) in ctx.str_array(t, "cidrs")?.iter().enumerate() {
        cidrs.push(
            s.parse::<Cidr>()
                .map_err(|e| ctx.err(Some(&format!("cidrs[{i}]")), e))?,
        );
    }
    let mut server_names = Vec::new();
    for (i, s) in ctx.str_array(t, "server_names")?.iter().enumerate() {
        server_names.push(
            NamePattern::new(s).map_err(|e| ctx.err(Some(&format!("server_names[{i}]")), e))?,
        );
    }
    let internal = ctx.bool_opt(t, "internal")?;
    if cidrs.is_empty() && server_names.is_empty() {
        return Err(ctx.err(Some("cidrs"), "a segment needs `cidrs` or `server_names`"));
    }
    let _ = ctx.str_opt(t, "note")?;
    Ok(Segment {
        name: name.to_string(),
        cidrs,
        server_names,
        internal,
        origin: file.to_string(),
    })
}

fn parse_event(file: &str, v: &toml::Value) -> Result<EventInfo, RulesError> {
    let ctx = Ctx {
        file,
        rule: Some("[event]".into()),
    };
    let t = match v {
        toml::Value::Table(t) => t,
        _ => return Err(ctx.err(None, "expected a table")),
    };
    ctx.check_keys(t, &["id", "name", "year", "summary"])?;
    Ok(EventInfo {
        id: ctx.str_req(t, "id")?.to_string(),
        name: ctx.str_req(t, "name")?.to_string(),
        year: match t.get("year") {
            Some(toml::Value::Integer(y)) => *y,
            _ => return Err(ctx.err(Some("year"), "expected an integer")),
        },
        summary: ctx.str_opt(t, "summary")?.unwrap_or_default().to_string(),
    })
}

fn parse_cert(file: &str, idx: usize, v: &toml::Value) -> Result<EventCert, RulesError> {
    let ctx = Ctx {
        file,
        rule: Some(format!("[[certificate]] #{}", idx + 1)),
    };
    let t = match v {
        toml::Value::Table(t) => t,
        _ => return Err(ctx.err(None, "expected a table")),
    };
    ctx.check_keys(
        t,
        &[
            "role",
            "subject",
            "sha256",
            "spki_sha256",
            "not_before",
            "not_after",
            "pem",
        ],
    )?;
    let need_time = |k: &str| {
        ctx.time_opt(t, k)?
            .ok_or_else(|| ctx.err(Some(k), "required key missing"))
    };
    Ok(EventCert {
        role: ctx.str_req(t, "role")?.to_string(),
        subject: ctx.str_req(t, "subject")?.to_string(),
        sha256: hex64(&ctx, "sha256", ctx.str_req(t, "sha256")?)?,
        spki_sha256: hex64(&ctx, "spki_sha256", ctx.str_req(t, "spki_sha256")?)?,
        not_before: need_time("not_before")?,
        not_after: need_time("not_after")?,
        pem: ctx.str_opt(t, "pem")?.map(str::to_string),
    })
}

fn array<'t>(file: &str, t: &'t toml::Table, k: &str) -> Result<&'t [toml::Value], RulesError> {
    match t.get(k) {
        None => Ok(&[]),
        Some(toml::Value::Array(a)) => Ok(a.as_slice()),
        Some(_) => Err(RulesError {
            file: file.into(),
            rule: None,
            field: Some(k.into()),
            message: format!("expected an array of tables: write [[{k}]]"),
        }),
    }
}

/// Parse the text of one rules file. `file` names it in errors.
pub fn parse_rules_str(text: &str, file: &str) -> Result<RuleFile, RulesError> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        RulesError::file(file, format!("TOML syntax: {}", e.to_string().trim_end()))
    })?;
    for k in table.keys() {
        if !["removal", "segment", "event", "certificate"].contains(&k.as_str()) {
            return Err(RulesError {
                file: file.into(),
                rule: None,
                field: Some(k.clone()),
                message: "unknown top-level key (expected [[removal]] or [[segment]])".into(),
            });
        }
    }
    let removals = array(file, &table, "removal")?;
    let segments = array(file, &table, "segment")?;
    let certs = array(file, &table, "certificate")?;
    if removals.len() + segments.len() + certs.len() > MAX_RULES_PER_FILE {
        return Err(RulesError::file(
            file,
            format!("more than {MAX_RULES_PER_FILE} rules in one file"),
        ));
    }
    Ok(RuleFile {
        removals: removals
            .iter()
            .enumerate()
            .map(|(i, v)| parse_removal(file, i, v))
            .collect::<Result<_, _>>()?,
        segments: segments
            .iter()
            .enumerate()
            .map(|(i, v)| parse_segment(file, i, v))
            .collect::<Result<_, _>>()?,
        event: table
            .get("event")
            .map(|v| parse_event(file, v))
            .transpose()?,
        certificates: certs
            .iter()
            .enumerate()
            .map(|(i, v)| parse_cert(file, i, v))
            .collect::<Result<_, _>>()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dn_normalization() {
        assert_eq!(
            normalize_dn(" CN = Corp Root G1 , O=Corp "),
            "cn=corp root g1,o=corp"
        );
        assert_eq!(normalize_dn("CN=A+OU=B"), normalize_dn("cn=a + ou=b"));
    }

    #[test]
    fn design_example_parses() {
        let text = r#"
[[removal]]
id = "corp-root-g1-retirement"
name = "Retire Corp Root G1"
ca = { sha256 = "AA:aa:HEX" }
announced = "2026-03-01T00:00:00Z"
removed = 2026-06-01T00:00:00Z

[[segment]]
name = "embedded"
cidrs = ["10.40.0.0/16"]

[[segment]]
name = "saas:salesforce"
server_names = ["*.salesforce.com", "*.force.com"]
"#
        .replace("HEX", &"a".repeat(60));
        let f = parse_rules_str(&text, "corp.toml").expect("parses");
        let r = &f.removals[0];
        assert_eq!(r.cas[0].sha256, Some([0xaa; 32]));
        assert_eq!(r.removed, 1_780_272_000);
        assert_eq!(r.announced, Some(1_772_323_200));
        assert_eq!(f.segments.len(), 2);
    }
}
