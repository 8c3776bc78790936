#!/usr/bin/env python3
"""Generate the built-in distrust history of trustmap (stdlib only).

Input : rules/data/distrust_events.json (copy of shared/data/trust/distrust_events.json from the
        shared folder beside the repository, see rules/data/SOURCE) and the PEM files it names
        (under that folder, or --roots DIR).
Output: rules/distrust/<event-id>.toml   one file per event, `[[removal]]` form (DESIGN.md §5)
        rules/distrust/certs/<event-id>/*.pem   copies of the affected certificates
        rules/distrust/index.rs          include_str! manifest compiled into the `rules` crate

Usage:  python3 rules/distrust/generate.py [--roots ../shared/data/trust] [--check] [--no-pems]
        --check regenerates in memory and exits 1 if any generated file differs (CI).

How the JSON's per-program prose becomes rules
----------------------------------------------
Every event becomes several `[[removal]]` entries that all carry the event id as `id` and a
`program` key (chrome | mozilla | apple). `--distrust-policy chrome` keeps the chrome entries,
`mozilla` the mozilla entries, `strict` all of them (a chain is flagged as soon as ANY program's
entry flags it: earliest date and widest scope). Microsoft is skipped: no dated, verified data.

Program level (programs.<p>):
  * effective_date  "YYYY", "YYYY-MM" or "YYYY-MM-DD" -> first instant of that period
    (date_precision says which).
  * a `cutoff` / `grandfathering_cutoff` of type "earliest SCT ..." -> sct_after;
    of type notBefore / issuance / DISTRUST_AFTER -> issued_after. Date-only values: "after D"
    means after the end of day D (D 23:59:59Z, the NSS encoding); "on or after D" means D-1s.
  * a `grandfathering_cutoff` with an effective date more than a day later: the program first
    grandfathered (from the cut-off) and later distrusted fully (at the effective date): two
    stages. A `cutoff` (the cut-off IS the lasting mechanism, e.g. NSS distrust-after, Chrome
    SCTNotAfter): one grandfathered stage from max(effective, cut-off).
  * no cut-off: full distrust from the effective date.
  * `stages` (Symantec/Chrome): each stage's leading date; rule text "notBefore before D" ->
    issued_before = D (Chrome 66 distrusted OLD certificates), otherwise full distrust.
  * an unknown date (null) while the program did act: the earliest dated program of the same
    event is borrowed (date_basis says so); if none, the event year's first instant.
  * mechanism starting with "no " (no action found): the program gets no entry.
  * `announced` (start of the `pending` window) only where the data dates the decision before it
    took effect, the earliest of: a later stage of a staged plan (`stages`, or grandfathering
    followed by full distrust) is announced by the plan's first stage; an explicit
    "announcement of/on YYYY-MM-DD" in the program's date_basis/note/announcement text; an
    event summary "<Program> ... (announced YYYY-MM-DD)" for that program; an NSS
    distrust-after value set by a commit that landed before it (announced = commit). Only when
    strictly before `removed`; otherwise no window (most events: the data has no such date).
Scope: chrome -> certificates with a Chromium marker (blocklist, kSymantecRoots, v17
  constraints, dropped from the Chrome Root Store), or all non-exception certificates when none
  has a marker; mozilla -> all non-exception certificates, or those named by cutoff.applies_to;
  apple -> certificates listed in Apple support 121668 when the event has that field, else all
  non-exception certificates. Roles `exception-*` become `exempt` (matched by SPKI, like
  Chromium's kSymantecExceptions / kSymantecManagedCAs).
Mozilla per certificate (mozilla_nss): the final NSS state counts, not transient ones:
  * last server_distrust_after value -> grandfathered entry, issued_after = value, removed =
    max(commit that set it, value);
  * the untrusted period (MUST_VERIFY / NOT_TRUSTED) that lasts until the end of the history,
    or the removal commit -> full distrust from its start.
Every CA is matched by SHA-256 of the certificate OR SHA-256 of its SPKI (cross-signed copies
of a distrusted key are the same CA for a dependency map, and Chromium blocks by SPKI).
Entries that differ only in scope are merged (cas united, stage names joined with '+').
"""
import argparse
import datetime as dt
import json
import os
import re
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RULES = os.path.dirname(HERE)
DATA = os.path.join(RULES, "data", "distrust_events.json")
# The shared folder beside the repository (only needed to refresh the PEM copies).
DEFAULT_ROOTS = os.path.join(os.path.dirname(os.path.dirname(RULES)), "shared", "data", "trust")
PROGRAMS = ("chrome", "mozilla", "apple")
UNTRUSTED = ("CKT_NSS_MUST_VERIFY_TRUST", "CKT_NSS_NOT_TRUSTED")
TRUSTED = ("CKT_NSS_TRUSTED_DELEGATOR",)


def utc(ts):
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_instant(s):
    """RFC 3339 with offset -> unix seconds."""
    s = s.strip().replace("Z", "+00:00")
    return int(dt.datetime.fromisoformat(s).timestamp())


def parse_period(s):
    """Leading 'YYYY[-MM[-DD]]' of a free-text date -> (unix start, precision) or None."""
    if not s:
        return None
    m = re.match(r"^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?(T\S+)?", str(s))
    if not m:
        return None
    if m.group(4):
        return parse_instant(m.group(0)), "second"
    y, mo, d = int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1)
    prec = "day" if m.group(3) else ("month" if m.group(2) else "year")
    return int(dt.datetime(y, mo, d, tzinfo=dt.timezone.utc).timestamp()), prec


def cutoff_instant(value, text=""):
    """Cut-off value -> instant after which leaves are affected (see module doc)."""
    if "T" in value:
        return parse_instant(value)
    start, _ = parse_period(value)
    if "on or after" in text:
        return start - 1
    return start + 86400 - 1


def cutoff_kind(ctype):
    ctype = (ctype or "").lower()
    return "sct_after" if "sct" in ctype else "issued_after"


def ca_of(c):
    return {"sha256": c["sha256"], "spki_sha256": c["spki_sha256"]}


def has_chrome_marker(c):
    ch = c.get("chrome") or {}
    sym = ch.get("chromium_symantec") or {}
    return bool(
        ch.get("chromium_blocklist")
        or sym.get("spki_in_kSymantecRoots")
        or ch.get("chrome_root_store_v17_constraints")
        or ch.get("chrome_root_store_removed_in_version")
    )


def program_date(ev, pname):
    p = ev["programs"].get(pname) or {}
    got = parse_period(p.get("effective_date"))
    if got:
        return got[0], got[1], p.get("date_basis") or "programs.%s.effective_date" % pname
    return None


def borrowed_date(ev, pname):
    for other in ("mozilla", "chrome", "apple"):
        if other == pname:
            continue
        got = program_date(ev, other)
        if got:
            return got[0], got[1], "%s date not in data; the event's %s date is used" % (pname, other)
    start, _ = parse_period(str(ev["year"]))
    return start, "year", "%s date not in data; first instant of the event year" % pname


ANNOUNCE_TEXT = re.compile(r"announce\w*\s+(?:of\s+|on\s+)?(\d{4}-\d{2}-\d{2})")
ANNOUNCE_SUMMARY = re.compile(r"\b(Chrome|Mozilla|Apple)\b[^()]*\(announced (\d{4}-\d{2}-\d{2})\)")


def explicit_announcement(ev, pname):
    """(instant, basis) of the earliest announcement date the data states for a program."""
    p = ev["programs"].get(pname) or {}
    found = []
    for key in ("date_basis", "note", "announcement"):
        for m in ANNOUNCE_TEXT.finditer(str(p.get(key) or "")):
            found.append((parse_period(m.group(1))[0], "programs.%s.%s: announcement of %s" % (pname, key, m.group(1))))
    for m in ANNOUNCE_SUMMARY.finditer(ev.get("summary") or ""):
        if m.group(1).lower() == pname:
            found.append((parse_period(m.group(2))[0], "summary: %s announced %s" % (m.group(1), m.group(2))))
    return min(found) if found else None


def announce(e, when, basis):
    """Set e["announced"] to `when` if it opens a window before `removed` and is earlier."""
    if when is None or when >= e["removed"]:
        return
    if "announced" not in e or when < e["announced"]:
        e["announced"] = when
        e["date_basis"] += "; announced: " + basis


def entry(ev, program, stage, cas, removed, prec, basis, mech, verified, exempt, **cut):
    e = {
        "id": ev["id"],
        "name": "%s (%s)" % (ev["name"], program),
        "program": program,
        "stage": stage,
        "mechanism": mech,
        "date_basis": basis,
        "date_precision": prec,
        "verified": bool(verified),
        "removed": removed,
        "cas": cas,
        "exempt": exempt,
    }
    e.update({k: v for k, v in cut.items() if v is not None})
    return e


def program_entries(ev, pname, scope, exempt):
    """Entries from programs.<pname> (dates, cut-offs, stages)."""
    p = ev["programs"].get(pname)
    if not p or not scope:
        return []
    mech = p.get("mechanism", "")
    if mech.lower().startswith("no ") or "not checked" in mech.lower():
        return []
    verified = p.get("verified", False)
    out = []
    if p.get("stages"):
        for i, st in enumerate(p["stages"], 1):
            got = parse_period(st.get("stable_date"))
            if not got:
                continue
            m = re.search(r"notBefore before (\d{4}-\d{2}-\d{2})", st.get("rule", ""))
            ib = parse_period(m.group(1))[0] if m else None
            basis = "stage %d: Chrome %s stable %s (%s)" % (
                i, st.get("chrome_version"), st.get("stable_date"), st.get("rule"))
            out.append(entry(ev, pname, "stage-%d" % i, scope, got[0], got[1], basis,
                             mech, st.get("verified", False), exempt, issued_before=ib))
        first = min(out, key=lambda e: e["removed"]) if out else None
        for e in out:
            if e is not first:
                announce(e, first["removed"], "no later than %s (first stage of the same plan)" % utc(first["removed"]))
        add_explicit_announcement(ev, pname, out)
        return out
    cut = p.get("cutoff") or p.get("grandfathering_cutoff")
    date = program_date(ev, pname)
    if date is None and not (cut and cut.get("value")):
        date = borrowed_date(ev, pname)
    if cut and cut.get("value"):
        kind = cutoff_kind(cut.get("type"))
        ci = cutoff_instant(cut["value"], mech)
        cverified = cut.get("verified", verified)
        if date is None:
            out.append(entry(ev, pname, "grandfathered", scope, ci, "second",
                             "cut-off (effective date not in data)", mech, cverified, exempt,
                             **{kind: ci}))
        elif p.get("grandfathering_cutoff") and date[0] > ci + 86400:
            out.append(entry(ev, pname, "grandfathered", scope, ci, "second",
                             "cut-off; the grandfathering release date is not in data",
                             mech, cverified, exempt, **{kind: ci}))
            full = entry(ev, pname, "full", scope, date[0], date[1], date[2], mech,
                         verified, exempt)
            announce(full, ci, "no later than %s (grandfathering stage of the same plan)" % utc(ci))
            out.append(full)
        else:
            out.append(entry(ev, pname, "grandfathered", scope, max(date[0], ci),
                             "second" if ci >= date[0] else date[1], date[2], mech,
                             verified and cverified, exempt, **{kind: ci}))
    else:
        out.append(entry(ev, pname, "full", scope, date[0], date[1], date[2], mech, verified,
                         exempt))
    add_explicit_announcement(ev, pname, out)
    return out


def add_explicit_announcement(ev, pname, entries):
    got = explicit_announcement(ev, pname)
    if got:
        for e in entries:
            announce(e, got[0], got[1])


def nss_entries(ev, c):
    """Per-certificate Mozilla entries from the NSS certdata history (final state)."""
    m = c.get("mozilla_nss") or {}
    hist = m.get("trust_history") or []
    out = []
    cas = [ca_of(c)]
    mech = "NSS certdata.txt (per-certificate history)"
    sda, sda_commit = None, None
    for h in hist:
        v = h.get("server_distrust_after")
        if v and v != sda:
            sda, sda_commit = v, h["commit_date"]
        elif not v:
            sda = None
    if sda:
        cut = parse_instant(sda)
        removed = max(parse_instant(sda_commit), cut)
        e = entry(ev, "mozilla", "nss-distrust-after", cas, removed, "second",
                  "CKA_NSS_SERVER_DISTRUST_AFTER %s set by NSS commit of %s" % (sda, sda_commit),
                  mech, True, [], issued_after=cut)
        announce(e, parse_instant(sda_commit), "NSS commit of %s (distrust-after set in advance)" % sda_commit)
        out.append(e)
    # untrusted period lasting to the end of the history
    start = None
    for h in hist:
        t = h.get("trust_server_auth")
        if t in UNTRUSTED:
            if start is None:
                start = h["commit_date"]
        elif t in TRUSTED:
            start = None
    removed = (m.get("removed") or {}).get("commit_date")
    if start:
        out.append(entry(ev, "mozilla", "nss-untrusted", cas, parse_instant(start), "second",
                         "NSS server-auth trust %s since commit of %s" % ("/".join(UNTRUSTED), start),
                         mech, True, []))
    elif removed:
        out.append(entry(ev, "mozilla", "nss-removed", cas, parse_instant(removed), "second",
                         "removed from NSS by commit %s of %s" % (m["removed"]["nss_commit"][:10], removed),
                         mech, True, []))
    return out


def event_entries(ev):
    certs = ev["affected_certificates"]
    normal = [c for c in certs if not c["role"].startswith("exception-")]
    exempt = [{"spki_sha256": c["spki_sha256"]} for c in certs if c["role"].startswith("exception-")]
    out = []
    # chrome
    marked = [c for c in normal if has_chrome_marker(c)]
    scope = [ca_of(c) for c in (marked or normal)]
    out += program_entries(ev, "chrome", scope, exempt)
    # mozilla
    mz = ev["programs"].get("mozilla") or {}
    applies = ((mz.get("cutoff") or {}).get("applies_to")) or ""
    mscope = [c for c in normal if not applies or c["subject_cn"] in applies]
    out += program_entries(ev, "mozilla", [ca_of(c) for c in mscope], [])
    for c in normal:
        out += nss_entries(ev, c)
    # apple (only with a date or a cut-off)
    ap = ev["programs"].get("apple") or {}
    if ap.get("effective_date") or ap.get("cutoff") or ap.get("grandfathering_cutoff"):
        listed = [c for c in normal if c.get("listed_with_sha256_in_apple_support_121668")]
        out += program_entries(ev, "apple", [ca_of(c) for c in (listed or normal)], [])
    # merge entries that differ only in scope: same program, dates, cut-offs and exemptions
    groups, order = {}, []
    for e in out:
        key = json.dumps({k: v for k, v in e.items() if k in ("program", "removed", "issued_after", "issued_before", "sct_after", "exempt")}, sort_keys=True)
        if key not in groups:
            groups[key] = dict(e, cas=list(e["cas"]))
            order.append(key)
            continue
        g = groups[key]
        for ca in e["cas"]:
            if ca not in g["cas"]:
                g["cas"].append(ca)
        if e["stage"] not in g["stage"].split("+"):
            g["stage"] += "+" + e["stage"]
        if e["date_basis"] not in g["date_basis"]:
            g["date_basis"] += "; " + e["date_basis"]
        g["verified"] = g["verified"] and e["verified"]
        if "announced" in e and ("announced" not in g or e["announced"] < g["announced"]):
            g["announced"] = e["announced"]
    merged = [groups[k] for k in order]
    return merged


def q(s):
    return json.dumps(s, ensure_ascii=False)


def ca_inline(ca):
    return "{ " + ", ".join("%s = %s" % (k, q(v)) for k, v in ca.items()) + " }"


def pem_name(c):
    return os.path.basename(c["pem"]) if c.get("pem") else None


def render(ev, src_note):
    L = []
    L.append("# GENERATED by rules/distrust/generate.py from rules/data/distrust_events.json. Do not edit.")
    L.append("# SOURCE: %s" % src_note)
    L.append("# Event sources: " + "; ".join(str(s) if not isinstance(s, dict) else s.get("url") or s.get("what") or json.dumps(s) for s in ev.get("sources", []))[:2000])
    L.append("")
    L.append("[event]")
    L.append("id = %s" % q(ev["id"]))
    L.append("name = %s" % q(ev["name"]))
    L.append("year = %d" % ev["year"])
    L.append("summary = %s" % q(ev["summary"]))
    L.append("")
    for c in ev["affected_certificates"]:
        L.append("[[certificate]]")
        L.append("role = %s" % q(c["role"]))
        L.append("subject = %s" % q(c["subject"]))
        L.append("sha256 = %s" % q(c["sha256"]))
        L.append("spki_sha256 = %s" % q(c["spki_sha256"]))
        L.append("not_before = %s" % q(c["not_before"]))
        L.append("not_after = %s" % q(c["not_after"]))
        if pem_name(c):
            L.append("pem = %s" % q("certs/%s/%s" % (ev["id"], pem_name(c))))
        L.append("")
    for e in event_entries(ev):
        L.append("[[removal]]")
        for k in ("id", "name", "program", "stage", "mechanism", "date_basis", "date_precision", "verified"):
            v = e[k]
            L.append("%s = %s" % (k, "true" if v is True else "false" if v is False else q(v)))
        if "announced" in e:
            L.append("announced = %s" % q(utc(e["announced"])))
        L.append("removed = %s" % q(utc(e["removed"])))
        for k in ("issued_after", "issued_before", "sct_after"):
            if k in e:
                L.append("%s = %s" % (k, q(utc(e[k]))))
        L.append("cas = [")
        for ca in e["cas"]:
            L.append("  %s," % ca_inline(ca))
        L.append("]")
        if e["exempt"]:
            L.append("exempt = [")
            for ca in e["exempt"]:
                L.append("  %s," % ca_inline(ca))
            L.append("]")
        L.append("")
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--roots", default=DEFAULT_ROOTS, help="directory holding roots/<event>/*.pem")
    ap.add_argument("--check", action="store_true", help="exit 1 if generated files are stale")
    ap.add_argument("--no-pems", action="store_true", help="skip copying/checking the PEM files")
    a = ap.parse_args()
    with open(DATA, encoding="utf-8") as f:
        data = json.load(f)
    src_note = "distrust_events.json generated %s (shared/data/trust, see rules/data/SOURCE)" % data.get("generated")
    files = {}
    index = ["// GENERATED by rules/distrust/generate.py. Do not edit.",
             "/// (event id, TOML text) of every built-in distrust event.",
             "pub(crate) static EVENTS: &[(&str, &str)] = &["]
    for ev in data["events"]:
        files["%s.toml" % ev["id"]] = render(ev, src_note)
        index.append('    ("%s", include_str!("%s.toml")),' % (ev["id"], ev["id"]))
    index.append("];")
    index.append("/// (event id, role, sha256, PEM) of every affected certificate whose DER is known.")
    index.append("pub(crate) static CERTS: &[(&str, &str, &str, &str)] = &[")
    pems = []
    for ev in data["events"]:
        for c in ev["affected_certificates"]:
            if pem_name(c):
                rel = "certs/%s/%s" % (ev["id"], pem_name(c))
                pems.append((os.path.join(a.roots, c["pem"]), rel))
                index.append('    ("%s", "%s", "%s", include_str!("%s")),' % (ev["id"], c["role"], c["sha256"], rel))
    index.append("];")
    files["index.rs"] = "\n".join(index) + "\n"
    stale = []
    for name, text in files.items():
        path = os.path.join(HERE, name)
        old = open(path, encoding="utf-8").read() if os.path.exists(path) else None
        if old != text:
            stale.append(name)
            if not a.check:
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
    for src, rel in ([] if a.no_pems else pems):
        dst = os.path.join(HERE, rel)
        if not os.path.exists(dst) or open(dst, "rb").read() != open(src, "rb").read():
            stale.append(rel)
            if not a.check:
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copyfile(src, dst)
    if a.check and stale:
        print("stale: " + ", ".join(stale), file=sys.stderr)
        return 1
    print("%d events, %d PEMs, %d files %s" % (len(data["events"]), len(pems), len(stale), "stale" if a.check else "written"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
