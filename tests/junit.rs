//! junit.xml of real drills, as a CI tool reads it: valid against Jenkins' JUnit schema
//! (`xmllint --schema`, tests/schemas/README.md), the same test identities in every drill,
//! and one fault counted once.

use std::path::{Path, PathBuf};
use std::process::Command;

use quick_junit::{NonSuccessKind, Report as JUnit, TestCaseStatus};

use crate::support::{redact, Pgdrill, Run};

/// Jenkins' JUnit schema, which scripts/setup.sh puts into tests/schemas/.
fn schema() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemas/junit-10.xsd");
    assert!(
        p.is_file(),
        "{} is missing: run scripts/setup.sh, which fetches Jenkins' JUnit schema (tests/schemas/README.md)",
        p.display()
    );
    p
}

/// `xmllint --noout --schema junit-10.xsd FILE`: its verdict and what it said.
fn xmllint(file: &Path) -> (bool, String) {
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(schema())
        .arg(file)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run xmllint ({e}): run scripts/setup.sh (Debian package libxml2-utils)")
        });
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn junit(run: &Run) -> (String, JUnit) {
    let text = std::fs::read_to_string(run.out.path().join("junit.xml")).expect("junit.xml");
    let parsed = JUnit::deserialize_from_str(&text).expect("junit.xml parses");
    (text, parsed)
}

/// A test case's identity: `suite/classname/name`.
fn id(s: &quick_junit::TestSuite, c: &quick_junit::TestCase) -> String {
    format!(
        "{}/{}/{}",
        s.name.as_str(),
        c.classname.as_ref().map_or("", |c| c.as_str()),
        c.name.as_str()
    )
}

/// Every test case's identity.
fn identities(j: &JUnit) -> Vec<String> {
    j.test_suites
        .iter()
        .flat_map(|s| s.test_cases.iter().map(move |c| id(s, c)))
        .collect()
}

/// The test cases that are a `<failure>` or an `<error>`, by identity.
fn faults(j: &JUnit) -> Vec<String> {
    j.test_suites
        .iter()
        .flat_map(|s| {
            s.test_cases
                .iter()
                .filter(|c| matches!(c.status, TestCaseStatus::NonSuccess { .. }))
                .map(move |c| id(s, c))
        })
        .collect()
}

/// The test case `suite/classname/name`.
fn case<'a>(j: &'a JUnit, wanted: &str) -> &'a quick_junit::TestCase {
    j.test_suites
        .iter()
        .flat_map(|s| s.test_cases.iter().map(move |c| (s, c)))
        .find(|(s, c)| id(s, c) == wanted)
        .map(|(_, c)| c)
        .unwrap_or_else(|| panic!("no test case {wanted} in {:?}", identities(j)))
}

fn skipped_message(c: &quick_junit::TestCase) -> String {
    match &c.status {
        TestCaseStatus::Skipped { message, .. } => {
            message.as_ref().map(|m| m.to_string()).unwrap_or_default()
        }
        other => panic!("{} is not skipped: {other:?}", c.name.as_str()),
    }
}

/// junit.xml with what varies between drills redacted: ids, paths, versions, numbers.
fn for_snapshot(run: &Run, text: &str) -> String {
    let r = run.report();
    let mut s = text
        .replace(&run.out.path().display().to_string(), "<out>")
        .replace(r["drill_id"].as_str().unwrap(), "<drill-id>")
        .replace(
            r["environment"]["server_version"].as_str().unwrap(),
            "<server-version>",
        )
        .replace(
            r["environment"]["pgdrill_version"].as_str().unwrap(),
            "<pgdrill-version>",
        );
    // The drill's server directories end in a random suffix (`…-target-Ab3xYz`).
    for marker in ["-source-", "-target-", "-controls-"] {
        let mut out = String::new();
        let mut rest = s.as_str();
        while let Some(i) = rest.find(marker) {
            let start = i + marker.len();
            out.push_str(&rest[..start]);
            let tail = &rest[start..];
            let n = tail
                .find(|c: char| !c.is_ascii_alphanumeric())
                .unwrap_or(tail.len());
            out.push_str("<tmp>");
            rest = &tail[n..];
        }
        out.push_str(rest);
        s = out;
    }
    redact(&s)
}

/// The schema check fails on a file that breaks the schema, so it can fail for junit.xml too.
#[test]
fn the_schema_check_rejects_what_breaks_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.xml");
    std::fs::write(
        &bad,
        "<testsuites><testsuite name=\"s\" tests=\"1\" failures=\"0\" errors=\"0\"><testcase classname=\"c\"/></testsuite></testsuites>",
    )
    .unwrap();
    let (ok, said) = xmllint(&bad);
    assert!(!ok, "a testcase without a name must be refused: {said}");
    assert!(said.contains("name"), "{said}");
}

#[test]
fn junit_of_a_passing_and_a_failing_drill_is_valid_stable_and_counts_one_fault_once() {
    let pass = Pgdrill::native(Vec::<String>::new()).run();
    pass.assert_pass();
    let fail = Pgdrill::native([
        "--tamper-sql",
        "UPDATE users SET full_name = 'Mallory' WHERE id = 1; DELETE FROM payments WHERE id = 1",
    ])
    .run();
    assert_eq!(fail.code(), 1, "{}", fail.text());
    for run in [&pass, &fail] {
        let file = run.out.path().join("junit.xml");
        let (ok, said) = xmllint(&file);
        assert!(
            ok,
            "junit.xml does not validate against junit-10.xsd:\n{said}\n{}",
            std::fs::read_to_string(&file).unwrap()
        );
    }
    let (pass_text, p) = junit(&pass);
    let (fail_text, f) = junit(&fail);

    // The identities are the drill's, never its id: the same tests in every drill.
    let suites: Vec<&str> = p.test_suites.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        suites,
        [
            "pgdrill.phases",
            "pgdrill.objectives",
            "pgdrill.controls",
            "pgdrill.checklist"
        ]
    );
    let id = pass.report()["drill_id"].as_str().unwrap();
    assert!(
        identities(&p).iter().all(|i| !i.contains(id)),
        "the drill id is a property, never part of a test's identity"
    );
    let mut expected = identities(&p);
    expected.retain(|i| !i.starts_with("pgdrill.controls/"));
    let mut got = identities(&f);
    got.retain(|i| i != "pgdrill.phases/drill/tamper_hook" && !i.starts_with("pgdrill.controls/"));
    assert_eq!(
        got, expected,
        "the failing drill has the passing one's tests"
    );
    for j in [&p, &f] {
        for s in &j.test_suites {
            for c in &s.test_cases {
                assert!(
                    c.classname.is_some(),
                    "{} has no classname",
                    c.name.as_str()
                );
            }
        }
    }
    assert_eq!(
        case(&p, "pgdrill.phases/database_restore/pg_restore")
            .classname
            .as_ref()
            .unwrap()
            .as_str(),
        "database_restore"
    );
    case(&p, "pgdrill.phases/verification/compare");
    case(&p, "pgdrill.phases/drill/provision");
    case(&p, "pgdrill.objectives/budgets/total");
    assert!(faults(&p).is_empty(), "{:?}", faults(&p));

    // Timestamp and properties: when, which drill, which backup, where.
    for (run, j) in [(&pass, &p), (&fail, &f)] {
        let r = run.report();
        for s in &j.test_suites {
            let started =
                chrono::DateTime::parse_from_rfc3339(r["started_at"].as_str().unwrap()).unwrap();
            assert_eq!(s.timestamp, Some(started), "{}", s.name.as_str());
            let prop = |k: &str| {
                s.properties
                    .iter()
                    .find(|p| p.name.as_str() == k)
                    .map(|p| p.value.to_string())
                    .unwrap_or_else(|| panic!("{}: no property {k}", s.name.as_str()))
            };
            assert_eq!(prop("drill_id"), r["drill_id"].as_str().unwrap());
            assert_eq!(
                prop("backup_sha256"),
                r["backup"]["sha256"].as_str().unwrap()
            );
            assert_eq!(prop("backend"), "native");
            assert_eq!(
                prop("server_version"),
                r["environment"]["server_version"].as_str().unwrap()
            );
            assert_eq!(
                prop("pgdrill_version"),
                r["environment"]["pgdrill_version"].as_str().unwrap()
            );
        }
    }

    // One fault, one failure: the compare, with the whole first line as its message and every
    // difference in its body. What failed only because of it is skipped and names it.
    assert_eq!(
        faults(&f),
        ["pgdrill.phases/verification/compare"],
        "{fail_text}"
    );
    let compare = fail.phase("compare")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    match &case(&f, "pgdrill.phases/verification/compare").status {
        TestCaseStatus::NonSuccess {
            kind,
            message,
            ty,
            description,
            ..
        } => {
            assert_eq!(*kind, NonSuccessKind::Failure);
            assert_eq!(ty.as_ref().map(|t| t.as_str()), Some("integrity_mismatch"));
            let first = compare.lines().next().unwrap();
            let message = message.as_ref().unwrap().as_str();
            assert!(message.starts_with(first), "{message}");
            assert_eq!(description.as_ref().unwrap().as_str(), compare);
            for table in ["public.users", "public.payments"] {
                assert!(compare.contains(table), "{compare}");
            }
        }
        other => panic!("compare is not a failure: {other:?}"),
    }
    for id in [
        "pgdrill.checklist/checklist/User data integrity verified",
        "pgdrill.checklist/checklist/Payment data integrity verified",
    ] {
        let m = skipped_message(case(&f, id));
        assert!(m.contains("failure of phase compare"), "{id}: {m}");
    }
    let m = skipped_message(case(&f, "pgdrill.phases/verification/checklist"));
    assert!(m.contains("pgdrill.checklist"), "{m}");

    insta::assert_snapshot!("junit_pass", for_snapshot(&pass, &pass_text));
    insta::assert_snapshot!("junit_fail", for_snapshot(&fail, &fail_text));
}
