//! `trustmap report --html PATH | --dot PATH`: the inventory for people.
//!
//! Everything shown came from the network (SNI, subjects, CertificateRequest names) and is hostile:
//! HTML text and attributes go through [`html_escape`], Graphviz labels through [`dot_escape`]. The
//! HTML page is self-contained (inline CSS, no script, no external resource) so it can be mailed or
//! archived as evidence of a removal's progress.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::path::Path;

use inventory::{CaEntry, EndpointEntry, Inventory, InventoryError, RemovalInfo, RemovalStatus};
use rules::time::rfc3339_s;

/// Why a report could not be written.
#[derive(Debug)]
pub enum ReportError {
    Inventory(InventoryError),
    Io(std::io::Error),
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportError::Inventory(e) => write!(f, "{e}"),
            ReportError::Io(e) => write!(f, "writing report: {e}"),
        }
    }
}

impl std::error::Error for ReportError {}

impl From<InventoryError> for ReportError {
    fn from(e: InventoryError) -> Self {
        ReportError::Inventory(e)
    }
}

impl From<std::io::Error> for ReportError {
    fn from(e: std::io::Error) -> Self {
        ReportError::Io(e)
    }
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => {
                let _ = write!(o, "&#xfffd;");
            }
            c => o.push(c),
        }
    }
    o
}

/// Escapes text for a double-quoted Graphviz label: `"` and `\` are escaped (a trailing backslash
/// would otherwise eat the closing quote), control characters become `\n` or are dropped.
pub fn dot_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if c.is_control() => {}
            c => o.push(c),
        }
    }
    o
}

fn ep_label(ip: &str, port: u16) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #ccc;padding:.2em .5em;
text-align:left;vertical-align:top;font-size:.9em}th{background:#f0f0f0}code{font-size:.85em}
.past{color:#888}.upcoming{font-weight:bold}.rejected{color:#b00}.accepted{color:#070}
.removed{background:#fee}.ok{color:#070}.warn{color:#b00}details{margin:.3em 0}";

/// The whole HTML page.
pub fn html(
    entries: &[CaEntry],
    opaque: &[EndpointEntry],
    removals: &[RemovalStatus],
    generated_at: &str,
) -> String {
    let e = html_escape;
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
<title>trustmap report</title><style>{CSS}</style></head><body>\n<h1>trustmap: CA dependencies</h1>\n\
<p>Generated for {}. {} CAs, {} endpoints without a visible chain, {} removals.</p>\n",
        e(generated_at),
        entries.len(),
        opaque.len(),
        removals.len()
    );
    if !removals.is_empty() {
        o.push_str("<h2>Removals</h2>\n");
        for r in removals {
            let d = &r.dependencies;
            let _ = write!(
                o,
                "<h3>{} — {}</h3>\n<p>Phase <b>{}</b>, removal {} ({} days). \
<span class=\"{}\">{} endpoints and {} clients left</span>, {} migrated. \
Residual since removal: {} handshakes, {} accepted (stale trust), {} failures.</p>\n",
                e(&r.id),
                e(&r.name),
                e(r.phase),
                e(&r.removed),
                r.days_to_removal,
                if d.complete { "ok" } else { "warn" },
                d.endpoints_left,
                d.clients_left,
                d.endpoints_migrated,
                r.residual.handshakes,
                r.residual.accepted,
                r.residual.failures
            );
            o.push_str("<table><tr><th>Step</th><th>At</th><th>Status</th></tr>\n");
            for p in &r.plan {
                let _ = writeln!(
                    o,
                    "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td></tr>",
                    e(p.status),
                    e(&p.step),
                    e(&p.at),
                    e(p.status)
                );
            }
            o.push_str("</table>\n");
            if !d.by_segment.is_empty() {
                o.push_str("<table><tr><th>Segment</th><th>Endpoint</th><th>Names</th><th>Handshakes</th><th>Last seen</th></tr>\n");
                for s in &d.by_segment {
                    for ep in &s.endpoints {
                        let _ = writeln!(
                            o,
                            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                            e(&s.segment),
                            e(&ep_label(&ep.ip, ep.port)),
                            e(&ep.server_names.join(", ")),
                            ep.handshakes,
                            e(&ep.last_seen)
                        );
                    }
                }
                o.push_str("</table>\n");
            }
            if !r.burndown.is_empty() {
                o.push_str("<table><tr><th>Day</th><th>Endpoints</th><th>Clients</th><th>Handshakes</th></tr>\n");
                for b in &r.burndown {
                    let _ = writeln!(
                        o,
                        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        e(&b.day),
                        b.endpoints,
                        b.clients,
                        b.handshakes
                    );
                }
                o.push_str("</table>\n");
            }
        }
    }
    o.push_str("<h2>CAs</h2>\n");
    for c in entries {
        let removed = !c.ca.removals.is_empty();
        let _ = write!(
            o,
            "<details{}><summary{}><b>{}</b> ({}) <code>{}</code> — {} endpoints{}</summary>\n\
<p>Stores: {}. Removals: {}.</p>\n",
            if removed { " open" } else { "" },
            if removed { " class=\"removed\"" } else { "" },
            e(&c.ca.subject),
            e(&c.ca.role),
            e(&c.ca.sha256),
            c.endpoints.len(),
            if c.client_auth_trusted_by.is_empty() {
                String::new()
            } else {
                format!(
                    ", trusted for client auth by {} servers",
                    c.client_auth_trusted_by.len()
                )
            },
            e(&c.ca.stores.join(", ")),
            e(&c.ca.removals.join(", "))
        );
        if !c.endpoints.is_empty() {
            o.push_str("<table><tr><th>Endpoint</th><th>Names</th><th>Segments</th><th>First seen</th><th>Last seen</th><th>Handshakes</th><th>Chain</th><th>Clients</th></tr>\n");
            for ep in &c.endpoints {
                let mut clients = String::new();
                for cl in &ep.clients {
                    let _ = write!(
                        clients,
                        "<span class=\"{}\">{} ({}, last {})</span><br>",
                        e(&cl.outcome),
                        e(&cl.ip),
                        e(&cl.outcome),
                        e(&cl.last_seen)
                    );
                }
                let chain = if ep.chain_visible {
                    "visible".to_string()
                } else {
                    format!(
                        "hidden{}",
                        ep.last_visible_chain_seen
                            .as_ref()
                            .map(|t| format!(" (last seen {})", e(t)))
                            .unwrap_or_default()
                    )
                };
                let _ = writeln!(
                    o,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    e(&ep_label(&ep.ip, ep.port)),
                    e(&ep.server_names.join(", ")),
                    e(&ep.segments.join(", ")),
                    e(&ep.first_seen),
                    e(&ep.last_seen),
                    ep.handshakes,
                    chain,
                    clients
                );
            }
            o.push_str("</table>\n");
        }
        if !c.client_auth_trusted_by.is_empty() {
            let list: Vec<String> = c
                .client_auth_trusted_by
                .iter()
                .map(|x| e(&ep_label(&x.ip, x.port)))
                .collect();
            let _ = writeln!(o, "<p>Client-auth trusted by: {}</p>", list.join(", "));
        }
        o.push_str("</details>\n");
    }
    if !opaque.is_empty() {
        o.push_str("<h2>Endpoints without a visible chain (TLS 1.3 only)</h2>\n<table><tr><th>Endpoint</th><th>Names</th><th>Segments</th><th>First seen</th><th>Last seen</th><th>Handshakes</th></tr>\n");
        for ep in opaque {
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                e(&ep_label(&ep.ip, ep.port)),
                e(&ep.server_names.join(", ")),
                e(&ep.segments.join(", ")),
                e(&ep.first_seen),
                e(&ep.last_seen),
                ep.handshakes
            );
        }
        o.push_str("</table>\n");
    }
    o.push_str("</body></html>\n");
    o
}

/// Graphviz digraph: CA -> endpoint -> client. Client-auth trust is a dashed CA -> endpoint edge.
/// Node ids are generated (`ca0`, `ep0`, `cl0`); only labels carry network text, escaped.
pub fn dot(entries: &[CaEntry]) -> String {
    let mut o = String::from(
        "digraph trustmap {\n  rankdir=LR;\n  node [fontname=\"Helvetica\", fontsize=10];\n",
    );
    let mut eps: HashMap<(String, u16), String> = HashMap::new();
    let mut cls: HashMap<String, String> = HashMap::new();
    let mut edges: Vec<String> = Vec::new();
    let mut ep_id = |o: &mut String, ip: &str, port: u16, names: &[String]| -> String {
        let n = eps.len();
        eps.entry((ip.to_string(), port))
            .or_insert_with(|| {
                let id = format!("ep{n}");
                let mut label = ep_label(ip, port);
                for nm in names.iter().take(3) {
                    label.push('\n');
                    label.push_str(nm);
                }
                let _ = writeln!(o, "  {id} [shape=box, label=\"{}\"];", dot_escape(&label));
                id
            })
            .clone()
    };
    for (i, c) in entries.iter().enumerate() {
        let ca = format!("ca{i}");
        let _ = writeln!(
            o,
            "  {ca} [shape=ellipse, style=filled, fillcolor=\"{}\", label=\"{}\"];",
            if c.ca.removals.is_empty() {
                "#ddeeff"
            } else {
                "#ffcccc"
            },
            dot_escape(&format!(
                "{}\n{} {}",
                c.ca.subject,
                c.ca.role,
                c.ca.sha256.get(..16).unwrap_or(&c.ca.sha256)
            ))
        );
        for ep in &c.endpoints {
            let id = ep_id(&mut o, &ep.ip, ep.port, &ep.server_names);
            edges.push(format!(
                "  {ca} -> {id} [label=\"{}\"{}];",
                ep.handshakes,
                if ep.chain_visible {
                    ""
                } else {
                    ", style=dotted"
                }
            ));
            for cl in &ep.clients {
                let n = cls.len();
                let cid = cls
                    .entry(cl.ip.clone())
                    .or_insert_with(|| {
                        let cid = format!("cl{n}");
                        let _ = writeln!(
                            o,
                            "  {cid} [shape=plaintext, label=\"{}\"];",
                            dot_escape(&cl.ip)
                        );
                        cid
                    })
                    .clone();
                let e = format!(
                    "  {id} -> {cid} [label=\"{}\"{}];",
                    dot_escape(&cl.outcome),
                    if cl.outcome == "rejected" {
                        ", color=red"
                    } else {
                        ""
                    }
                );
                if !edges.contains(&e) {
                    edges.push(e);
                }
            }
        }
        for x in &c.client_auth_trusted_by {
            let id = ep_id(&mut o, &x.ip, x.port, &[]);
            edges.push(format!(
                "  {ca} -> {id} [style=dashed, label=\"client-auth\"];"
            ));
        }
    }
    for e in edges {
        o.push_str(&e);
        o.push('\n');
    }
    o.push_str("}\n");
    o
}

/// Writes the HTML report of `inv`, with the status of `removals` at `instant` (Unix seconds).
pub fn write_html(
    inv: &Inventory,
    removals: &[RemovalInfo],
    instant: i64,
    path: &Path,
) -> Result<(), ReportError> {
    let entries = inv.query(None)?;
    let opaque = inv.opaque_endpoints()?;
    let statuses = removals
        .iter()
        .map(|r| inv.removal_status(r, instant))
        .collect::<Result<Vec<_>, _>>()?;
    std::fs::write(
        path,
        html(&entries, &opaque, &statuses, &rfc3339_s(instant)),
    )?;
    Ok(())
}

/// Writes the Graphviz report of `inv`.
pub fn write_dot(inv: &Inventory, path: &Path) -> Result<(), ReportError> {
    std::fs::write(path, dot(&inv.query(None)?))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escape_neutralises_markup() {
        assert_eq!(
            html_escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }

    #[test]
    fn dot_escape_quotes_and_backslashes() {
        assert_eq!(dot_escape("a\"b\\"), "a\\\"b\\\\");
        assert_eq!(dot_escape("x\ny\u{7}"), "x\\ny");
    }

    #[test]
    fn html_report_escapes_a_hostile_sni() {
        use inventory::{CaRef, Observation, Outcome, Role};
        let mut inv = Inventory::open(":memory:").unwrap();
        let removals = vec![RemovalInfo {
            id: "r<1>".into(),
            name: "<img src=x>".into(),
            ca_sha256s: vec!["aa".repeat(32)],
            announced: None,
            removed: 2_000,
        }];
        inv.record(&Observation {
            ts_ns: 1_000_000_000_000,
            client_ip: "10.0.0.5".parse().unwrap(),
            server_ip: "10.0.0.9".parse().unwrap(),
            server_port: 443,
            server_name: Some("<script>alert(1)</script>\"\\".into()),
            segments: vec!["a\"b".into()],
            chain_visible: true,
            evidence: None,
            resumed: false,
            outcome: Outcome::Accepted,
            cas: vec![CaRef {
                sha256: [0xaa; 32],
                subject: "CN=<b>Evil</b> & Co".into(),
                role: Role::Root,
                stores: vec![],
                removals: vec![],
            }],
            leaf_sha256: None,
            client_auth_ca_names: vec![],
            client_auth_outcome: None,
            algorithms: Default::default(),
        })
        .unwrap();
        inv.flush().unwrap();
        let dir = testkit::TempDir::new("report");
        let hp = dir.join("r.html");
        write_html(&inv, &removals, 1_500, &hp).unwrap();
        let page = std::fs::read_to_string(&hp).unwrap();
        assert!(!page.contains("<script"), "{page}");
        assert!(!page.contains("<b>Evil"));
        assert!(!page.contains("<img"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;"));
        assert!(page.contains("CN=&lt;b&gt;Evil&lt;/b&gt; &amp; Co"));
        assert!(page.contains("r&lt;1&gt;"));
        assert!(page.contains("10.0.0.9:443"));
        let dp = dir.join("r.dot");
        write_dot(&inv, &dp).unwrap();
        let d = std::fs::read_to_string(&dp).unwrap();
        assert!(d.starts_with("digraph trustmap {"));
        assert!(d.contains("<script>alert(1)</script>\\\"\\\\\""), "{d}");
        assert!(d.contains("ca0 -> ep0"));
        assert!(d.contains("ep0 -> cl0 [label=\"accepted\"]"));
    }
}
