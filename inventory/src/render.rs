//! Output of `trustmap inventory` and `trustmap removal status`: JSON (the §6 contract), an aligned
//! table for people, CSV for spreadsheets. Every string may come from the network, so the table
//! neutralises control and bidi characters (terminal escape injection) and CSV neutralises formula
//! prefixes (spreadsheet injection).

use std::fmt::Write as _;

use super::query::CaEntry;
use super::removal::RemovalStatus;

/// The §6 JSON array (pretty-printed, newline-terminated).
pub fn render_json(entries: &[CaEntry]) -> String {
    let mut s = serde_json::to_string_pretty(entries).unwrap_or_else(|_| "[]".into());
    s.push('\n');
    s
}

/// A removal status as JSON (newline-terminated).
pub fn render_removal_json(st: &RemovalStatus) -> String {
    let mut s = serde_json::to_string_pretty(st).unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}

/// Makes a network string safe to print on a terminal: control characters and bidi overrides are
/// shown as `\u{..}` escapes.
pub fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let bidi = matches!(c as u32, 0x200E | 0x200F | 0x202A..=0x202E | 0x2066..=0x2069);
        if c.is_control() || bidi {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// `ip:port`, with IPv6 addresses in brackets.
pub fn ep_label(ip: &str, port: u16) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// Cuts to `max` characters with an ellipsis, for table cells.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut o: String = s.chars().take(max.saturating_sub(1)).collect();
    o.push('…');
    o
}

/// Renders rows as left-aligned columns separated by two spaces.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(x) = w.get_mut(i) {
                *x = (*x).max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: &mut dyn Iterator<Item = &str>, out: &mut String| {
        let mut l = String::new();
        for (i, c) in cells.enumerate() {
            let width = w.get(i).copied().unwrap_or(0);
            let pad = width.saturating_sub(c.chars().count());
            l.push_str(c);
            l.extend(std::iter::repeat_n(' ', pad + 2));
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied(), &mut out);
    for r in rows {
        line(&mut r.iter().map(String::as_str), &mut out);
    }
    out
}

/// One line per CA x endpoint, clients summarised; CAs with no endpoint get one line.
pub fn render_table(entries: &[CaEntry]) -> String {
    let header = [
        "CA",
        "ROLE",
        "SHA256",
        "ENDPOINT",
        "NAMES",
        "SEGMENTS",
        "HS",
        "CHAIN",
        "CLIENTS",
        "ACC/REJ/UNK",
        "LAST SEEN",
    ];
    let mut rows = Vec::new();
    for e in entries {
        let ca = cut(&clean(&e.ca.subject), 48);
        let sha = e.ca.sha256.get(..16).unwrap_or(&e.ca.sha256).to_string();
        if e.endpoints.is_empty() {
            rows.push(vec![
                ca.clone(),
                e.ca.role.clone(),
                sha.clone(),
                "-".into(),
                String::new(),
                String::new(),
                "0".into(),
                String::new(),
                "0".into(),
                String::new(),
                String::new(),
            ]);
        }
        for ep in &e.endpoints {
            let (mut a, mut r, mut u) = (0u64, 0u64, 0u64);
            for c in &ep.clients {
                a += c.counts.accepted;
                r += c.counts.rejected;
                u += c.counts.unknown;
            }
            let ip = ep_label(&ep.ip, ep.port);
            rows.push(vec![
                ca.clone(),
                e.ca.role.clone(),
                sha.clone(),
                ip,
                cut(&clean(&ep.server_names.join(",")), 40),
                cut(&clean(&ep.segments.join(",")), 30),
                ep.handshakes.to_string(),
                if ep.chain_visible {
                    "visible".into()
                } else {
                    "hidden".into()
                },
                ep.clients.len().to_string(),
                format!("{a}/{r}/{u}"),
                ep.last_seen.clone(),
            ]);
        }
        if !e.client_auth_trusted_by.is_empty() {
            let list: Vec<String> = e
                .client_auth_trusted_by
                .iter()
                .map(|x| format!("{}({})", ep_label(&x.ip, x.port), x.evidence))
                .collect();
            rows.push(vec![
                ca.clone(),
                e.ca.role.clone(),
                sha.clone(),
                "client-auth".into(),
                cut(&list.join(","), 40),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ]);
        }
        if !e.side_signal_clients.is_empty() {
            // One row for the clients that named the CA in OCSP / CA certificate / CRL requests.
            let list: Vec<String> = e
                .side_signal_clients
                .iter()
                .map(|c| format!("{}({})", c.ip, c.evidence))
                .collect();
            let requests: u64 = e.side_signal_clients.iter().map(|c| c.requests).sum();
            let last = e.side_signal_clients.iter().map(|c| &c.last_seen).max();
            rows.push(vec![
                ca.clone(),
                e.ca.role.clone(),
                sha.clone(),
                "side-signals".into(),
                cut(&list.join(","), 40),
                String::new(),
                requests.to_string(),
                String::new(),
                e.side_signal_clients.len().to_string(),
                String::new(),
                last.cloned().unwrap_or_default(),
            ]);
        }
    }
    table(&header, &rows)
}

/// Quotes a CSV field (RFC 4180) and defuses spreadsheet formulas (`=`, `+`, `-`, `@`, tab, CR).
pub fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) || s.starts_with('\'') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// One row per CA x endpoint x client (empty client columns when an endpoint has none), then one
/// per client that named the CA through side signals (empty endpoint columns). `evidence` is how
/// the endpoint's chains were known (`observed;keylog;...`), or the signal (`ocsp`, `aia`).
pub fn render_csv(entries: &[CaEntry]) -> String {
    let mut out = String::from(
        "ca_sha256,ca_subject,ca_role,ca_stores,ca_removals,endpoint_ip,endpoint_port,server_names,\
segments,endpoint_first_seen,endpoint_last_seen,handshakes,chain_visible,client_ip,\
client_first_seen,client_last_seen,client_outcome,accepted,rejected,unknown,resumed,evidence\n",
    );
    for e in entries {
        let ca = [
            csv_field(&e.ca.sha256),
            csv_field(&e.ca.subject),
            csv_field(&e.ca.role),
            csv_field(&e.ca.stores.join(";")),
            csv_field(&e.ca.removals.join(";")),
        ]
        .join(",");
        for ep in &e.endpoints {
            let epc = [
                csv_field(&ep.ip),
                ep.port.to_string(),
                csv_field(&ep.server_names.join(";")),
                csv_field(&ep.segments.join(";")),
                csv_field(&ep.first_seen),
                csv_field(&ep.last_seen),
                ep.handshakes.to_string(),
                ep.chain_visible.to_string(),
            ]
            .join(",");
            let evidence = csv_field(&ep.evidence.join(";"));
            if ep.clients.is_empty() {
                let _ = writeln!(out, "{ca},{epc},,,,,,,,,{evidence}");
            }
            for c in &ep.clients {
                let _ = writeln!(
                    out,
                    "{ca},{epc},{},{},{},{},{},{},{},{},{evidence}",
                    csv_field(&c.ip),
                    csv_field(&c.first_seen),
                    csv_field(&c.last_seen),
                    csv_field(&c.outcome),
                    c.counts.accepted,
                    c.counts.rejected,
                    c.counts.unknown,
                    c.counts.resumed
                );
            }
        }
        for c in &e.side_signal_clients {
            let _ = writeln!(
                out,
                "{ca},,,,,,,,,{},{},{},,,,,,{}",
                csv_field(&c.ip),
                csv_field(&c.first_seen),
                csv_field(&c.last_seen),
                csv_field(&c.evidence)
            );
        }
    }
    out
}

/// A removal status for people.
pub fn render_removal_table(st: &RemovalStatus) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "Removal {} — {}", clean(&st.id), clean(&st.name));
    let _ = writeln!(
        o,
        "As of {}: phase {}, removal {} ({} days){}",
        st.as_of,
        st.phase,
        st.removed,
        st.days_to_removal,
        st.announced
            .as_ref()
            .map(|a| format!(", announced {a}"))
            .unwrap_or_default()
    );
    for c in &st.cas {
        let _ = writeln!(o, "  CA {}  {}", c.sha256, clean(&c.subject));
    }
    let d = &st.dependencies;
    let _ = writeln!(
        o,
        "\nDependencies left: {} endpoints, {} clients ({} endpoints migrated){}",
        d.endpoints_left,
        d.clients_left,
        d.endpoints_migrated,
        if d.complete { " — none left" } else { "" }
    );
    if !d.side_signal_clients.is_empty() {
        let list: Vec<String> = d
            .side_signal_clients
            .iter()
            .map(|c| {
                format!(
                    "{} ({} {}, last {})",
                    c.ip, c.evidence, c.requests, c.last_seen
                )
            })
            .collect();
        let _ = writeln!(
            o,
            "Side signals (OCSP / CA certificate / CRL requests naming a removed CA): {}",
            list.join(", ")
        );
    }
    let mut rows = Vec::new();
    for s in &d.by_segment {
        for e in &s.endpoints {
            rows.push(vec![
                clean(&s.segment),
                ep_label(&e.ip, e.port),
                cut(&clean(&e.server_names.join(",")), 40),
                e.handshakes.to_string(),
                e.last_seen.clone(),
            ]);
        }
        if !s.clients.is_empty() {
            rows.push(vec![
                clean(&s.segment),
                format!("clients: {}", s.clients.len()),
                cut(&s.clients.join(","), 60),
                String::new(),
                String::new(),
            ]);
        }
    }
    if !rows.is_empty() {
        o.push_str(&table(
            &["SEGMENT", "ENDPOINT", "NAMES", "HS", "LAST SEEN"],
            &rows,
        ));
    }
    let r = &st.residual;
    let _ = writeln!(
        o,
        "\nResidual since {} (per {}): {} handshakes, {} accepted (stale trust), {} failures, {} unknown, {} resumed",
        r.since, r.granularity, r.handshakes, r.accepted, r.failures, r.unknown, r.resumed
    );
    if !st.burndown.is_empty() {
        o.push_str("\nBurndown\n");
        let rows: Vec<Vec<String>> = st
            .burndown
            .iter()
            .map(|b| {
                vec![
                    b.day.clone(),
                    b.endpoints.to_string(),
                    b.clients.to_string(),
                    b.handshakes.to_string(),
                ]
            })
            .collect();
        o.push_str(&table(&["DAY", "ENDPOINTS", "CLIENTS", "HS"], &rows));
    }
    o.push_str("\nPlan\n");
    let rows: Vec<Vec<String>> = st
        .plan
        .iter()
        .map(|p| vec![p.step.clone(), p.at.clone(), p.status.to_string()])
        .collect();
    o.push_str(&table(&["STEP", "AT", "STATUS"], &rows));
    o
}
