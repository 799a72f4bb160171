//! Contract conformance (issue 18): schemathesis, pinned in `infra/requirements.txt`,
//! generates requests from `docs/openapi.yaml` for every operation against the local stack
//! (examples, the coverage phase's edge and missing-auth cases, then random data), with a
//! tenant's real ids in every path that names one, and checks each answer: never a 5xx,
//! only statuses the document lists, bodies and content types as it describes them.

use std::fmt::Write as _;

use integration_tests::{stack, token};

/// Random cases per operation (besides the examples and coverage cases).
const MAX_EXAMPLES: usize = 10;

fn quoted(value: &str) -> String {
    serde_json::to_string(value).expect("a string is JSON")
}

#[tokio::test]
async fn every_operation_answers_as_the_openapi_document_says() {
    let (tenant, operations) = super::tenancy::tenant_with_ids().await;
    let mut config = String::new();
    for (name, parameters) in &operations {
        let filled: Vec<String> = parameters
            .iter()
            .map(|(p, v)| format!("{} = {}", quoted(&format!("path.{p}")), quoted(v)))
            .collect();
        writeln!(
            config,
            "[[operations]]\ninclude-name = {}\nparameters = {{ {} }}\n",
            quoted(name),
            filled.join(", ")
        )
        .unwrap();
    }
    let dir = TempDir::new();
    let config_path = dir.0.join("schemathesis.toml");
    std::fs::write(&config_path, &config).unwrap();
    // schemathesis is pinned beside moto in the project's venv (`infra/requirements.txt`).
    let schemathesis =
        integration_tests::local_stack::moto::python().with_file_name("schemathesis");
    let document = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.yaml");
    let admin = token(&tenant, "admin");
    let output = tokio::process::Command::new(&schemathesis)
        .current_dir(&dir.0)
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_HOOKS", "")
        .arg("--config-file")
        .arg(&config_path)
        .arg("run")
        .arg(&document)
        .args(["--url", &stack().base_url])
        .args(["--header", &format!("Authorization: Bearer {admin}")])
        .args([
            "--checks",
            // CONFORMANCE_CHECKS adds checks when exploring (e.g. positive_data_acceptance:
            // where the document is looser than the server).
            &std::env::var("CONFORMANCE_CHECKS").unwrap_or_else(|_| {
                "not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance".to_owned()
            }),
        ])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", &MAX_EXAMPLES.to_string()])
        .args(["--seed", "20261130", "--workers", "2", "--no-color"])
        .args(["--request-timeout", "30"])
        .output()
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", schemathesis.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    if output.status.success() {
        let summary: String = stdout
            .lines()
            .skip_while(|l| !l.contains("WARNINGS") && !l.contains("SUMMARY"))
            .collect::<Vec<_>>()
            .join("\n");
        eprintln!("{summary}");
    }
    // On failure, schemathesis's report from its failures on (its warnings come again in
    // the summary). Its `curl` lines name a port that ended with the test: run the same
    // request against `make dev` with a `make token` bearer to see it again.
    let report: String = stdout
        .lines()
        .skip_while(|l| !l.contains("FAILURES"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        output.status.success(),
        "schemathesis found answers the document does not describe:\n{}\n{}",
        if report.is_empty() {
            stdout.as_ref()
        } else {
            report.as_str()
        },
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("Tested:"), "{stdout}");
}

/// A folder of this run's own, removed however the test ends.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("conformance-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
