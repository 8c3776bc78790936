//! Rule files: loading from files and directories, and error messages that carry file, rule id
//! and field.

use rules::{DistrustPolicy, RuleSet, RulesError};

const SHA: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

fn err(text: &str) -> RulesError {
    let mut set = RuleSet::builtin(DistrustPolicy::Chrome).unwrap();
    set.add_str(text, "corp.toml")
        .expect_err("must be rejected")
}

fn removal(body: &str) -> String {
    format!("[[removal]]\nid = \"corp-g1\"\nca = {{ sha256 = \"{SHA}\" }}\n{body}\n")
}

#[test]
fn errors_name_file_rule_and_field() {
    let e = err(&removal(r#"removed = "2026-06-31T00:00:00Z""#));
    assert_eq!(e.file, "corp.toml");
    assert_eq!(e.rule.as_deref(), Some("[[removal]] \"corp-g1\""));
    assert_eq!(e.field.as_deref(), Some("removed"));
    let shown = e.to_string();
    assert!(
        shown.starts_with("corp.toml: [[removal]] \"corp-g1\": field `removed`: "),
        "{shown}"
    );

    let e = err(&removal(""));
    assert_eq!(
        (e.field.as_deref(), e.message.as_str()),
        (Some("removed"), "required key missing")
    );

    let e = err(&removal(
        "removed = \"2026-06-01T00:00:00Z\"\nissued_afer = \"2026-01-01T00:00:00Z\"",
    ));
    assert_eq!(e.field.as_deref(), Some("issued_afer"));
    assert!(e.message.contains("unknown key"));

    let e = err(&removal(
        "removed = \"2026-06-01T00:00:00Z\"\nannounced = \"2026-07-01T00:00:00Z\"",
    ));
    assert_eq!(e.field.as_deref(), Some("announced"));

    let e = err(&removal("removed = 2026"));
    assert_eq!(e.field.as_deref(), Some("removed"));
    assert!(e.message.contains("integer"), "{}", e.message);

    let e = err("[[removal]]\nid = \"corp-g1\"\ncas = [{ sha256 = \"abc\" }]\nremoved = \"2026-06-01T00:00:00Z\"\n");
    assert_eq!(e.field.as_deref(), Some("cas[0].sha256"));

    let e = err("[[removal]]\nid = \"corp-g1\"\ncas = [{ sha256 = \"abc\" }]\n");
    assert_eq!(e.rule.as_deref(), Some("[[removal]] \"corp-g1\""));

    let e = err("[[removal]]\nid = \"corp-g1\"\nremoved = \"2026-06-01T00:00:00Z\"\n");
    assert_eq!(e.field.as_deref(), Some("ca"));

    let e = err("[[removal]]\nname = \"no id\"\n");
    assert_eq!(e.rule.as_deref(), Some("[[removal]] #1"));
    assert_eq!(e.field.as_deref(), Some("id"));

    let e = err(&format!(
        "{}\n[[removal]]\nid = \"bad id!\"\n",
        removal("removed = \"2026-06-01T00:00:00Z\"")
    ));
    assert_eq!(e.rule.as_deref(), Some("[[removal]] #2"));

    let e = err(&removal(
        "removed = \"2026-06-01T00:00:00Z\"\nprogram = \"edge\"",
    ));
    assert_eq!(e.field.as_deref(), Some("program"));

    let e = err("[[segment]]\nname = \"lab\"\ncidrs = [\"10.0.0.0/8\", \"10.1.0.0/8\"]\n");
    assert_eq!(
        (e.rule.as_deref(), e.field.as_deref()),
        (Some("[[segment]] \"lab\""), Some("cidrs[1]"))
    );

    let e = err("[[segment]]\nname = \"saas\"\nserver_names = [\"a..b\"]\n");
    assert_eq!(e.field.as_deref(), Some("server_names[0]"));

    let e = err("[removal]\nid = 1\n");
    assert_eq!(e.field.as_deref(), Some("removal"));

    let e = err("[[removal]\n");
    assert!(
        e.rule.is_none() && e.message.starts_with("TOML syntax"),
        "{e}"
    );

    let e = err("[[removals]]\nid = \"x\"\n");
    assert_eq!(e.field.as_deref(), Some("removals"));
}

#[test]
fn duplicate_ids_are_rejected() {
    let e = err(&format!(
        "{}{}",
        removal("removed = \"2026-06-01T00:00:00Z\""),
        removal("removed = \"2026-07-01T00:00:00Z\"")
    ));
    assert_eq!(e.field.as_deref(), Some("id"));
    assert!(e.message.contains("duplicate"));
    // a user rule may not shadow a built-in event
    let e = err(&format!(
        "[[removal]]\nid = \"entrust-2024\"\nca = {{ sha256 = \"{SHA}\" }}\nremoved = \"2026-06-01T00:00:00Z\"\n"
    ));
    assert!(e.message.contains("builtin:entrust-2024"), "{e}");
}

#[test]
fn load_file_and_directory() {
    let d = testkit::TempDir::new("rules-dir");
    std::fs::write(
        d.join("a.toml"),
        removal("removed = \"2026-06-01T00:00:00Z\""),
    )
    .unwrap();
    std::fs::write(
        d.join("b.toml"),
        "[[segment]]\nname = \"embedded\"\ncidrs = [\"10.40.0.0/16\"]\n[[segment]]\nname = \"saas:sf\"\nserver_names = [\"*.force.com\"]\n",
    )
    .unwrap();
    std::fs::write(d.join("notes.txt"), "not rules").unwrap();
    let set = RuleSet::load(DistrustPolicy::Mozilla, &[&d]).unwrap();
    assert_eq!(set.removal("corp-g1").len(), 1);
    assert_eq!(set.segments().len(), 2);
    assert_eq!(
        set.segments_for("10.40.2.3".parse().unwrap(), Some("x.force.com")),
        ["embedded", "saas:sf"]
    );
    assert!(
        set.rule_ids().contains(&"entrust-2024"),
        "built-ins are always loaded"
    );
    let single = RuleSet::load(DistrustPolicy::Chrome, &[d.join("a.toml")]).unwrap();
    assert_eq!(
        single.removal("corp-g1")[0].origin,
        d.join("a.toml").display().to_string()
    );

    // an error in the second file names that file
    std::fs::write(
        d.join("c.toml"),
        "[[removal]]\nid = \"late\"\nca = { subject = \"CN=X\" }\nremoved = \"tomorrow\"\n",
    )
    .unwrap();
    let e = RuleSet::load(DistrustPolicy::Chrome, &[&d]).unwrap_err();
    assert_eq!(e.file, d.join("c.toml").display().to_string());
    assert_eq!(e.rule.as_deref(), Some("[[removal]] \"late\""));
    assert_eq!(e.field.as_deref(), Some("removed"));

    let missing = RuleSet::load(DistrustPolicy::Chrome, &[d.join("nope.toml")]).unwrap_err();
    assert!(missing.message.starts_with("cannot read"));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn program_scoped_user_rules_follow_the_policy() {
    let text = removal("removed = \"2026-06-01T00:00:00Z\"\nprogram = \"mozilla\"");
    let mut chrome = RuleSet::builtin(DistrustPolicy::Chrome).unwrap();
    chrome.add_str(&text, "p.toml").unwrap();
    assert!(chrome.removal("corp-g1").is_empty());
    let mut strict = RuleSet::builtin(DistrustPolicy::Strict).unwrap();
    strict.add_str(&text, "p.toml").unwrap();
    assert_eq!(strict.removal("corp-g1").len(), 1);
    assert_eq!(
        "strict".parse::<DistrustPolicy>(),
        Ok(DistrustPolicy::Strict)
    );
    assert!("edge".parse::<DistrustPolicy>().is_err());
}

#[test]
fn shipped_example_loads() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/corp-rules.toml");
    let set = RuleSet::load(DistrustPolicy::Chrome, &[path]).unwrap();
    assert_eq!(set.removal("corp-issuing-2019-rotation")[0].cas.len(), 2);
    assert_eq!(set.segments().len(), 2);
    let l = set.locality("10.40.0.1".parse().unwrap(), None);
    assert!(l.internal && l.basis == "segment:embedded");
}
