//! The deployment's own guards, read from `template.yaml` (IAM is not enforced by the
//! emulator, so this is where least privilege is checked):
//!
//! - every policy a function or role is given allows only named actions (no wildcards, no
//!   managed policies) on this stack's own resources: the table and its indexes, the media
//!   bucket by prefix, the schedule group, the scheduler's role, queue and function, the
//!   event bus and the signaling API's connections;
//! - the user pool the stack creates lets its app client read the tenant and role
//!   attributes and write neither, and the tenant cannot change.

use local_stack::LOCAL_REGION;
use local_stack::template::{self, Template};
use serde_json::Value;

fn template() -> Template {
    Template::load(&template::default_path(), LOCAL_REGION).expect("template.yaml parses")
}

/// A resource reference in a readable form: `GetAtt:ChatTable.Arn`, `Sub:<text>`, or the
/// literal.
fn reference(value: &Value) -> String {
    if let Some(s) = value.as_str() {
        return s.to_owned();
    }
    if let Some(parts) = value.get("Fn::GetAtt").and_then(Value::as_array) {
        let parts: Vec<&str> = parts.iter().filter_map(Value::as_str).collect();
        return format!("GetAtt:{}", parts.join("."));
    }
    if let Some(text) = value.get("Fn::Sub").and_then(Value::as_str) {
        return format!("Sub:{text}");
    }
    format!("unreadable:{value}")
}

fn list(value: &Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

/// Whether `action` may be allowed on `resource`.
fn allowed(action: &str, resource: &str) -> bool {
    let schedule_group = "Sub:arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule/${ScheduleGroup}/*";
    let (service, _) = action.split_once(':').unwrap_or((action, ""));
    match service {
        "dynamodb" => {
            resource == "GetAtt:ChatTable.Arn" || resource == "Sub:${ChatTable.Arn}/index/*"
        }
        "s3" if action == "s3:ListBucket" => resource == "GetAtt:MediaBucket.Arn",
        "s3" => resource
            .strip_prefix("Sub:${MediaBucket.Arn}/")
            .and_then(|rest| rest.strip_suffix("/*"))
            .is_some_and(|prefix| {
                !prefix.is_empty() && prefix.chars().all(|c| c.is_ascii_lowercase() || c == '-')
            }),
        "scheduler" => resource == schedule_group,
        "iam" => action == "iam:PassRole" && resource == "GetAtt:SchedulerInvokeRole.Arn",
        "events" => resource == "GetAtt:ChatEventBus.Arn",
        "execute-api" => {
            action == "execute-api:ManageConnections"
                && resource.starts_with("Sub:arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${SignalingApi}/")
                && resource.ends_with("/POST/@connections/*")
        }
        "lambda" => {
            action == "lambda:InvokeFunction"
                && resource
                    == "Sub:arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${AWS::StackName}-scheduler"
        }
        "sqs" => action == "sqs:SendMessage" && resource == "GetAtt:ScheduleDeadLetterQueue.Arn",
        _ => false,
    }
}

/// Every `Allow` statement of `policies` (a function's `Policies` or a role's), with a
/// finding for each broken rule.
fn check_policies(owner: &str, policies: &Value, findings: &mut Vec<String>) {
    for policy in list(policies) {
        if let Some(name) = policy.as_str() {
            findings.push(format!("{owner}: managed or SAM policy {name}"));
            continue;
        }
        let document = policy.get("PolicyDocument").unwrap_or(&policy);
        for statement in list(&document["Statement"]) {
            if statement["Effect"] != "Allow" {
                continue;
            }
            if statement.get("NotAction").is_some() || statement.get("NotResource").is_some() {
                findings.push(format!("{owner}: NotAction/NotResource"));
            }
            let actions: Vec<String> = list(&statement["Action"])
                .iter()
                .map(|a| a.as_str().unwrap_or("?").to_owned())
                .collect();
            let resources: Vec<String> =
                list(&statement["Resource"]).iter().map(reference).collect();
            if resources.is_empty() {
                findings.push(format!("{owner}: {actions:?} on no resource"));
            }
            for action in &actions {
                if action.contains('*') {
                    findings.push(format!("{owner}: wildcard action {action}"));
                }
                for resource in &resources {
                    if !allowed(action, resource) {
                        findings.push(format!("{owner}: {action} on {resource}"));
                    }
                }
            }
        }
    }
}

#[test]
fn every_policy_names_only_its_own_actions_on_this_stacks_resources() {
    let template = template();
    let mut findings = Vec::new();
    let mut checked = 0;
    for (id, function) in template.resources_of("AWS::Serverless::Function") {
        check_policies(id, &function["Properties"]["Policies"], &mut findings);
        checked += 1;
    }
    for (id, role) in template.resources_of("AWS::IAM::Role") {
        check_policies(id, &role["Properties"]["Policies"], &mut findings);
        assert!(
            role["Properties"].get("ManagedPolicyArns").is_none(),
            "{id}: managed policies"
        );
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} functions and roles found");
    assert!(findings.is_empty(), "{}", findings.join("\n"));
}

#[test]
fn the_rules_catch_what_they_are_for() {
    let mut findings = Vec::new();
    let policies: Value = serde_json::json!([
        "AmazonDynamoDBFullAccess",
        {"Statement": [
            {"Effect": "Allow", "Action": "dynamodb:*", "Resource": {"Fn::GetAtt": ["ChatTable", "Arn"]}},
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": {"Fn::Sub": "${MediaBucket.Arn}/*"}},
            {"Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": "*"},
            {"Effect": "Allow", "Action": ["scheduler:DeleteSchedule"], "Resource": {"Fn::Sub": "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule/default/*"}},
            {"Effect": "Allow", "Action": ["iam:PassRole"], "Resource": "*"},
            {"Effect": "Deny", "Action": "s3:*", "Resource": "*"}
        ]}
    ]);
    check_policies("Sample", &policies, &mut findings);
    assert_eq!(findings.len(), 6, "{findings:#?}");
    assert!(allowed(
        "s3:PutObject",
        "Sub:${MediaBucket.Arn}/quarantine/*"
    ));
    assert!(!allowed(
        "s3:PutObject",
        "Sub:${MediaBucket.Arn}/quarantine*/*"
    ));
}

#[test]
fn the_created_user_pool_lets_nobody_write_their_tenant_or_role() {
    let template = template();
    let (_, pool) = template
        .resources_of("AWS::Cognito::UserPool")
        .next()
        .expect("the stack can create a user pool");
    assert_eq!(
        pool["Properties"]["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"],
        true
    );
    let schema = list(&pool["Properties"]["Schema"]);
    let attribute = |name: &str| {
        schema
            .iter()
            .find(|a| a["Name"] == name)
            .unwrap_or_else(|| panic!("custom:{name} in the schema"))
            .clone()
    };
    assert_eq!(attribute("tenant_id")["Mutable"], false);
    attribute("role");
    let clients: Vec<_> = template
        .resources_of("AWS::Cognito::UserPoolClient")
        .collect();
    assert!(!clients.is_empty());
    for (id, client) in clients {
        let names = |key: &str| -> Vec<String> {
            list(&client["Properties"][key])
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        };
        // Without an explicit list a client may write every writable attribute.
        let writes = names("WriteAttributes");
        assert!(!writes.is_empty(), "{id} lists its WriteAttributes");
        for claim in ["custom:tenant_id", "custom:role"] {
            assert!(!writes.iter().any(|w| w == claim), "{id} may write {claim}");
            assert!(
                names("ReadAttributes").iter().any(|r| r == claim),
                "{id} reads {claim}"
            );
        }
    }
}

#[test]
fn an_existing_user_pool_cannot_be_given_without_its_app_client() {
    let template = template();
    let guarded = template.rules().values().any(|rule| {
        let condition = rule["RuleCondition"].to_string();
        let assertions = rule["Assertions"].to_string();
        condition.contains("CognitoUserPoolId") && assertions.contains("CognitoAppClientId")
    });
    assert!(
        guarded,
        "a rule requires CognitoAppClientId (the JWT audience) with CognitoUserPoolId: {:?}",
        template.rules()
    );
}
