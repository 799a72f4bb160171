//! Reads template.yaml: the resources to create locally and the functions' routes and
//! environment, so the local stack never keeps a second copy of either.
//!
//! CloudFormation short-form tags (`!Ref`, `!Sub`, `!GetAtt`, ...) are turned into their
//! long JSON form (`{"Ref": ..}`, `{"Fn::Sub": ..}`) and resolved against local names.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::BoxError;

mod websocket;
pub use websocket::{WsApiSpec, WsRouteSpec, selection_path};

/// Stack name used for `${AWS::StackName}` locally.
pub const LOCAL_STACK_NAME: &str = "chatroom-local";
/// Account id moto uses by default.
pub const LOCAL_ACCOUNT_ID: &str = "123456789012";

/// The parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    parameters: Map<String, Value>,
    rules: Map<String, Value>,
    globals: Value,
    resources: Map<String, Value>,
    region: String,
}

/// A DynamoDB table as declared (the subset of `AWS::DynamoDB::Table` the emulator needs).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct TableSpec {
    /// Logical id in the template.
    #[serde(skip)]
    pub logical_id: String,
    /// Local physical name.
    #[serde(skip)]
    pub name: String,
    /// `AttributeDefinitions`.
    pub attribute_definitions: Vec<AttributeDefinition>,
    /// `KeySchema`.
    pub key_schema: Vec<KeyElement>,
    /// `GlobalSecondaryIndexes`.
    #[serde(default)]
    pub global_secondary_indexes: Vec<IndexSpec>,
    /// `TimeToLiveSpecification`.
    #[serde(default)]
    pub time_to_live_specification: Option<TtlSpec>,
}

/// One attribute definition.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct AttributeDefinition {
    /// Name.
    pub attribute_name: String,
    /// `S`, `N` or `B`.
    pub attribute_type: String,
}

/// One key schema element.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct KeyElement {
    /// Name.
    pub attribute_name: String,
    /// `HASH` or `RANGE`.
    pub key_type: String,
}

/// A global secondary index.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct IndexSpec {
    /// Name.
    pub index_name: String,
    /// Keys.
    pub key_schema: Vec<KeyElement>,
    /// Projection.
    pub projection: ProjectionSpec,
}

/// An index projection.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct ProjectionSpec {
    /// `ALL`, `KEYS_ONLY` or `INCLUDE`.
    pub projection_type: String,
    /// For `INCLUDE`.
    #[serde(default)]
    pub non_key_attributes: Vec<String>,
}

/// TTL settings.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct TtlSpec {
    /// The epoch-seconds attribute.
    pub attribute_name: String,
    /// Whether TTL is on.
    pub enabled: bool,
}

/// A Lambda function: which binary, its environment, its HTTP routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSpec {
    /// Logical id in the template.
    pub logical_id: String,
    /// `Metadata.BuildProperties.Binary` (the cargo binary name).
    pub binary: String,
    /// Environment as declared (globals merged), values unresolved.
    pub environment: BTreeMap<String, Value>,
    /// `HttpApi` events.
    pub routes: Vec<RouteSpec>,
    /// `EventBridgeRule` events: `(pattern, EventBusName)`, unresolved (no bus: default).
    pub event_rules: Vec<(Value, Option<Value>)>,
}

/// One `HttpApi` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// Upper-case method, or `ANY`.
    pub method: String,
    /// Path with `{param}` / `{proxy+}` segments.
    pub path: String,
    /// `Auth.Authorizer: NONE`: no token needed.
    pub public: bool,
}

fn to_json(value: serde_yaml_ng::Value) -> Result<Value, BoxError> {
    use serde_yaml_ng::Value as Y;
    Ok(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => serde_json::to_value(n)?,
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => {
            Value::Array(items.into_iter().map(to_json).collect::<Result<_, _>>()?)
        }
        Y::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = match k {
                    Y::String(s) => s,
                    other => serde_yaml_ng::to_string(&other)?.trim().to_owned(),
                };
                out.insert(key, to_json(v)?);
            }
            Value::Object(out)
        }
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let inner = to_json(tagged.value)?;
            let (key, inner) = match name {
                "Ref" | "Condition" => (name.to_owned(), inner),
                // `!GetAtt A.B` is `{"Fn::GetAtt": ["A", "B"]}`.
                "GetAtt" => match inner {
                    Value::String(s) => {
                        let (a, b) = s.split_once('.').ok_or("bad !GetAtt")?;
                        ("Fn::GetAtt".to_owned(), serde_json::json!([a, b]))
                    }
                    other => ("Fn::GetAtt".to_owned(), other),
                },
                other => (format!("Fn::{other}"), inner),
            };
            Value::Object(Map::from_iter([(key, inner)]))
        }
    })
}

/// What a value resolves to locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// A plain value.
    Text(String),
    /// A `{{resolve:...}}` dynamic reference (a secret): only the local stack can supply it.
    Secret,
}

impl Template {
    /// Reads and parses a template file.
    pub fn load(path: &Path, region: &str) -> Result<Self, BoxError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text, region)
    }

    /// Parses template text.
    pub fn parse(text: &str, region: &str) -> Result<Self, BoxError> {
        let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(text)?;
        let Value::Object(mut root) = to_json(yaml)? else {
            return Err("template is not a mapping".into());
        };
        let take_map = |root: &mut Map<String, Value>, key: &str| match root.remove(key) {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        Ok(Self {
            parameters: take_map(&mut root, "Parameters"),
            rules: take_map(&mut root, "Rules"),
            resources: take_map(&mut root, "Resources"),
            globals: root.remove("Globals").unwrap_or(Value::Null),
            region: region.to_owned(),
        })
    }

    /// The template's `Rules` (parameter checks CloudFormation makes before deploying),
    /// by name, intrinsic functions as `{"Fn::…": …}` / `{"Ref": …}`.
    pub fn rules(&self) -> &Map<String, Value> {
        &self.rules
    }

    /// `(logical id, resource)` for every resource of a type, by logical id.
    pub fn resources_of<'a>(
        &'a self,
        kind: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a Value)> + 'a {
        self.resources
            .iter()
            .filter(move |(_, r)| r["Type"] == kind)
            .map(|(id, r)| (id.as_str(), r))
    }

    fn resource(&self, logical_id: &str) -> Option<&Value> {
        self.resources.get(logical_id)
    }

    /// The local physical name of a resource: its name property when the template sets one,
    /// else the logical id (lower-cased and prefixed for buckets, whose names are global).
    pub fn local_name(&self, logical_id: &str) -> Result<String, BoxError> {
        let resource = self
            .resource(logical_id)
            .ok_or_else(|| format!("no resource {logical_id} in the template"))?;
        let kind = resource["Type"].as_str().unwrap_or_default();
        let name_property = match kind {
            "AWS::DynamoDB::Table" => "TableName",
            "AWS::S3::Bucket" => "BucketName",
            _ => "Name",
        };
        if let Some(name) = resource["Properties"].get(name_property) {
            return match self.resolve(name)? {
                Resolved::Text(s) => Ok(s),
                Resolved::Secret => Err(format!("{logical_id} is named by a secret").into()),
            };
        }
        Ok(match kind {
            "AWS::S3::Bucket" => format!("{LOCAL_STACK_NAME}-{logical_id}").to_lowercase(),
            _ => logical_id.to_owned(),
        })
    }

    fn arn(&self, logical_id: &str) -> Result<String, BoxError> {
        let name = self.local_name(logical_id)?;
        let region = &self.region;
        let kind = self
            .resource(logical_id)
            .and_then(|r| r["Type"].as_str())
            .unwrap_or_default();
        Ok(match kind {
            "AWS::DynamoDB::Table" => {
                format!("arn:aws:dynamodb:{region}:{LOCAL_ACCOUNT_ID}:table/{name}")
            }
            "AWS::S3::Bucket" => format!("arn:aws:s3:::{name}"),
            "AWS::Events::EventBus" => {
                format!("arn:aws:events:{region}:{LOCAL_ACCOUNT_ID}:event-bus/{name}")
            }
            "AWS::Scheduler::ScheduleGroup" => {
                format!("arn:aws:scheduler:{region}:{LOCAL_ACCOUNT_ID}:schedule-group/{name}")
            }
            // Neither exists locally (moto checks no role, and the schedule stand-in fires
            // schedules itself): their ARNs are only passed along.
            "AWS::IAM::Role" => format!("arn:aws:iam::{LOCAL_ACCOUNT_ID}:role/{name}"),
            "AWS::SQS::Queue" => format!("arn:aws:sqs:{region}:{LOCAL_ACCOUNT_ID}:{name}"),
            other => return Err(format!("no local ARN for {other} ({logical_id})").into()),
        })
    }

    fn reference(&self, name: &str) -> Result<String, BoxError> {
        match name {
            "AWS::Region" => return Ok(self.region.clone()),
            "AWS::AccountId" => return Ok(LOCAL_ACCOUNT_ID.to_owned()),
            "AWS::StackName" => return Ok(LOCAL_STACK_NAME.to_owned()),
            "AWS::Partition" => return Ok("aws".to_owned()),
            "AWS::URLSuffix" => return Ok("amazonaws.com".to_owned()),
            _ => {}
        }
        if let Some(param) = self.parameters.get(name) {
            return match &param["Default"] {
                Value::String(s) => Ok(s.clone()),
                Value::Null => {
                    Err(format!("parameter {name} has no default for the local stack").into())
                }
                other => Ok(other.to_string()),
            };
        }
        self.local_name(name)
    }

    fn sub(&self, text: &str, vars: &Map<String, Value>) -> Result<String, BoxError> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find('}').ok_or("unterminated ${ in !Sub")? + start;
            let expr = &rest[start + 2..end];
            let value = if let Some(v) = vars.get(expr) {
                match self.resolve(v)? {
                    Resolved::Text(s) => s,
                    Resolved::Secret => return Err("secret in !Sub variable".into()),
                }
            } else if let Some((id, attr)) = expr.split_once('.') {
                self.get_att(id, attr)?
            } else {
                self.reference(expr)?
            };
            out.push_str(&value);
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn get_att(&self, id: &str, attr: &str) -> Result<String, BoxError> {
        match attr {
            "Arn" => self.arn(id),
            "Name" => self.local_name(id),
            other => Err(format!("no local value for !GetAtt {id}.{other}").into()),
        }
    }

    /// Resolves a property value (string, `Ref`, `Fn::Sub`, `Fn::GetAtt`) to its local value.
    pub fn resolve(&self, value: &Value) -> Result<Resolved, BoxError> {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Object(m) if m.len() == 1 => {
                let (k, v) = m.iter().next().ok_or("empty intrinsic")?;
                match (k.as_str(), v) {
                    ("Ref", Value::String(name)) => self.reference(name)?,
                    ("Fn::GetAtt", Value::Array(parts)) if parts.len() == 2 => {
                        let id = parts[0].as_str().ok_or("bad GetAtt")?;
                        let attr = parts[1].as_str().ok_or("bad GetAtt")?;
                        self.get_att(id, attr)?
                    }
                    ("Fn::Sub", Value::String(s)) => self.sub(s, &Map::new())?,
                    ("Fn::Sub", Value::Array(parts)) if parts.len() == 2 => {
                        let s = parts[0].as_str().ok_or("bad Sub")?;
                        let vars = parts[1].as_object().ok_or("bad Sub variables")?;
                        self.sub(s, vars)?
                    }
                    (other, _) => {
                        return Err(format!("intrinsic {other} is not supported locally").into());
                    }
                }
            }
            other => return Err(format!("cannot resolve {other}").into()),
        };
        if text.contains("{{resolve:") {
            return Ok(Resolved::Secret);
        }
        Ok(Resolved::Text(text))
    }

    /// Resolves every intrinsic inside a JSON value (event patterns, policies).
    pub fn resolve_deep(&self, value: &Value) -> Result<Value, BoxError> {
        Ok(match value {
            Value::Object(m)
                if m.len() == 1 && m.keys().all(|k| k == "Ref" || k.starts_with("Fn::")) =>
            {
                match self.resolve(value)? {
                    Resolved::Text(s) => Value::String(s),
                    Resolved::Secret => return Err("secret inside a structured value".into()),
                }
            }
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| Ok((k.clone(), self.resolve_deep(v)?)))
                    .collect::<Result<_, BoxError>>()?,
            ),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.resolve_deep(v))
                    .collect::<Result<_, _>>()?,
            ),
            other => other.clone(),
        })
    }

    /// Every DynamoDB table with its local name.
    pub fn tables(&self) -> Result<Vec<TableSpec>, BoxError> {
        self.resources_of("AWS::DynamoDB::Table")
            .map(|(id, r)| {
                let mut spec: TableSpec = serde_json::from_value(r["Properties"].clone())
                    .map_err(|e| format!("table {id}: {e}"))?;
                spec.logical_id = id.to_owned();
                spec.name = self.local_name(id)?;
                Ok(spec)
            })
            .collect()
    }

    /// Local names of every resource of a type.
    pub fn names_of(&self, kind: &str) -> Result<Vec<String>, BoxError> {
        self.resources_of(kind)
            .map(|(id, _)| self.local_name(id))
            .collect()
    }

    /// Every function with its binary, merged environment and HTTP routes.
    pub fn functions(&self) -> Result<Vec<FunctionSpec>, BoxError> {
        let global_env = self.globals["Function"]["Environment"]["Variables"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        self.resources_of("AWS::Serverless::Function")
            .map(|(id, r)| {
                let binary = r["Metadata"]["BuildProperties"]["Binary"]
                    .as_str()
                    .ok_or_else(|| format!("function {id} has no Metadata.BuildProperties.Binary"))?
                    .to_owned();
                let mut environment: BTreeMap<String, Value> =
                    global_env.clone().into_iter().collect();
                if let Some(vars) = r["Properties"]["Environment"]["Variables"].as_object() {
                    environment.extend(vars.clone());
                }
                let mut routes = Vec::new();
                let mut event_rules = Vec::new();
                if let Some(events) = r["Properties"]["Events"].as_object() {
                    for event in events.values().filter(|e| e["Type"] == "EventBridgeRule") {
                        let p = &event["Properties"];
                        event_rules.push((p["Pattern"].clone(), p.get("EventBusName").cloned()));
                    }
                    for event in events.values().filter(|e| e["Type"] == "HttpApi") {
                        let p = &event["Properties"];
                        routes.push(RouteSpec {
                            method: p["Method"].as_str().unwrap_or("ANY").to_uppercase(),
                            path: p["Path"]
                                .as_str()
                                .ok_or_else(|| format!("{id}: HttpApi event without Path"))?
                                .to_owned(),
                            public: p["Auth"]["Authorizer"] == "NONE",
                        });
                    }
                }
                Ok(FunctionSpec {
                    logical_id: id.to_owned(),
                    binary,
                    environment,
                    routes,
                    event_rules,
                })
            })
            .collect()
    }

    /// A function's environment resolved for the local stack. `local` supplies values the
    /// template takes from secrets or deploy parameters (e.g. `META_APP_SECRET`) and wins
    /// for every variable the template declares; a secret with no local value is an error.
    pub fn resolve_environment(
        &self,
        function: &FunctionSpec,
        local: &HashMap<String, String>,
    ) -> Result<HashMap<String, String>, BoxError> {
        let mut env = HashMap::new();
        for (name, value) in &function.environment {
            let resolved = match local.get(name) {
                Some(v) => v.clone(),
                None => match self.resolve(value)? {
                    Resolved::Text(s) => s,
                    Resolved::Secret => {
                        return Err(format!(
                            "{}: {name} comes from a secret in AWS; the local stack must set it",
                            function.logical_id
                        )
                        .into());
                    }
                },
            };
            env.insert(name.clone(), resolved);
        }
        Ok(env)
    }
}

/// The template at the workspace root.
pub fn default_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
Parameters:
  Graph:
    Type: String
    Default: https://graph.example
  Secret:
    Type: String
    Default: s
Globals:
  Function:
    Environment:
      Variables:
        TABLE_NAME: !Ref Table
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
  Bucket:
    Type: AWS::S3::Bucket
  Bus:
    Type: AWS::Events::EventBus
    Properties:
      Name: !Sub ${AWS::StackName}-events
  Fn:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: thing
    Properties:
      Environment:
        Variables:
          GRAPH: !Ref Graph
          ARN: !GetAtt Table.Arn
          INDEX: !Sub ${Table.Arn}/index/*
          SECRET: !Sub "{{resolve:secretsmanager:${Secret}:SecretString:k}}"
      Events:
        Open:
          Type: HttpApi
          Properties: {Path: /health, Method: get, Auth: {Authorizer: NONE}}
        Closed:
          Type: HttpApi
          Properties: {Path: "/items/{id}", Method: POST}
"#;

    fn sample() -> Template {
        Template::parse(SAMPLE, "us-east-1").unwrap()
    }

    #[test]
    fn names_come_from_properties_or_logical_ids() {
        let t = sample();
        assert_eq!(t.local_name("Table").unwrap(), "Table");
        assert_eq!(t.local_name("Bucket").unwrap(), "chatroom-local-bucket");
        assert_eq!(t.local_name("Bus").unwrap(), "chatroom-local-events");
    }

    #[test]
    fn environment_resolves_refs_getatt_and_sub_and_demands_secrets() {
        let t = sample();
        let f = &t.functions().unwrap()[0];
        assert!(t.resolve_environment(f, &HashMap::new()).is_err());
        let local = HashMap::from([("SECRET".to_owned(), "dev".to_owned())]);
        let env = t.resolve_environment(f, &local).unwrap();
        assert_eq!(env["TABLE_NAME"], "Table");
        assert_eq!(env["GRAPH"], "https://graph.example");
        assert_eq!(
            env["ARN"],
            "arn:aws:dynamodb:us-east-1:123456789012:table/Table"
        );
        assert_eq!(
            env["INDEX"],
            "arn:aws:dynamodb:us-east-1:123456789012:table/Table/index/*"
        );
        assert_eq!(env["SECRET"], "dev");
    }

    #[test]
    fn routes_carry_method_path_and_auth() {
        let f = &sample().functions().unwrap()[0];
        assert_eq!(f.binary, "thing");
        let mut routes = f.routes.clone();
        routes.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(
            routes,
            vec![
                RouteSpec {
                    method: "GET".into(),
                    path: "/health".into(),
                    public: true
                },
                RouteSpec {
                    method: "POST".into(),
                    path: "/items/{id}".into(),
                    public: false
                },
            ]
        );
    }

    #[test]
    fn the_real_template_parses() {
        let t = Template::load(&default_path(), "us-east-1").unwrap();
        assert!(!t.tables().unwrap().is_empty());
        assert!(
            t.functions()
                .unwrap()
                .iter()
                .any(|f| f.binary == "chatroom")
        );
        // The WebSocket API, once declared, is one the dev server can serve.
        t.websocket_apis().unwrap();
    }

    #[test]
    fn openapi_document_lists_exactly_the_template_routes() {
        use std::collections::BTreeSet;
        let t = Template::load(&default_path(), "us-east-1").unwrap();
        let routes: BTreeSet<(String, String, bool)> = t
            .functions()
            .unwrap()
            .into_iter()
            .flat_map(|f| f.routes)
            .map(|r| (r.method.to_lowercase(), r.path, r.public))
            .collect();
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.yaml");
        let doc: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let doc = to_json(doc).unwrap();
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                if method == "parameters" || method.starts_with("x-") {
                    continue;
                }
                let public = op["security"] == serde_json::json!([]);
                documented.insert((method.clone(), path.clone(), public));
            }
        }
        assert_eq!(documented, routes);
    }
}
