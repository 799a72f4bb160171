//! The template's API Gateway WebSocket APIs (`AWS::ApiGatewayV2::Api` with `ProtocolType:
//! WEBSOCKET`): their stages, route selection expression and routes, each route traced
//! through its `AWS_PROXY` integration to the function it invokes.
//!
//! References are read symbolically (`!Ref X` is `${X}`, `!GetAtt X.Arn` is `${X.Arn}`), so
//! `Target: !Sub integrations/${SignalingIntegration}` and `!Join ['/', [integrations, !Ref
//! SignalingIntegration]]` both name the integration, and an `IntegrationUri` of
//! `…/functions/${CallsFunction.Arn}/invocations` names the function resource.

use serde_json::Value;

use super::Template;
use crate::BoxError;

/// A WebSocket API as the dev server serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsApiSpec {
    /// Logical id of the `AWS::ApiGatewayV2::Api`.
    pub logical_id: String,
    /// `RouteSelectionExpression`, e.g. `$request.body.action`.
    pub route_selection_expression: String,
    /// `StageName` of every `AWS::ApiGatewayV2::Stage` of the API (the URL's first segment).
    pub stages: Vec<String>,
    /// The API's routes, by route key.
    pub routes: Vec<WsRouteSpec>,
}

/// One `AWS::ApiGatewayV2::Route` of a WebSocket API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsRouteSpec {
    /// `RouteKey`: `$connect`, `$disconnect`, `$default` or a custom key (`signal`).
    pub route_key: String,
    /// Logical id of the `AWS::Serverless::Function` its integration invokes.
    pub function: String,
}

const API: &str = "AWS::ApiGatewayV2::Api";
const ROUTE: &str = "AWS::ApiGatewayV2::Route";
const STAGE: &str = "AWS::ApiGatewayV2::Stage";
const INTEGRATION: &str = "AWS::ApiGatewayV2::Integration";

/// A value with its references written as `${Name}` / `${Name.Attr}` (what `Fn::Sub` text
/// already looks like).
fn symbolic(value: &Value) -> Result<String, BoxError> {
    Ok(match value {
        Value::String(s) => s.clone(),
        Value::Object(m) if m.len() == 1 => match m.iter().next() {
            Some((k, Value::String(name))) if k == "Ref" => format!("${{{name}}}"),
            Some((k, Value::Array(parts))) if k == "Fn::GetAtt" && parts.len() == 2 => {
                format!(
                    "${{{}.{}}}",
                    parts[0].as_str().ok_or("bad !GetAtt")?,
                    parts[1].as_str().ok_or("bad !GetAtt")?
                )
            }
            Some((k, Value::String(text))) if k == "Fn::Sub" => text.clone(),
            Some((k, Value::Array(parts))) if k == "Fn::Join" && parts.len() == 2 => {
                let separator = parts[0].as_str().ok_or("bad !Join separator")?;
                let items = parts[1].as_array().ok_or("bad !Join list")?;
                items
                    .iter()
                    .map(symbolic)
                    .collect::<Result<Vec<_>, _>>()?
                    .join(separator)
            }
            _ => return Err(format!("cannot read {value} locally").into()),
        },
        other => return Err(format!("cannot read {other} locally").into()),
    })
}

/// The logical id a `${Name}` (or `!Ref Name`) value names.
fn referenced(value: &Value) -> Option<String> {
    let text = symbolic(value).ok()?;
    let name = text.strip_prefix("${")?.strip_suffix('}')?;
    (!name.contains(['.', '$', '{'])).then(|| name.to_owned())
}

impl Template {
    /// Every WebSocket API of the template with its stages and routes, by logical id.
    ///
    /// # Errors
    /// A stage-less API, a route without a `Target` naming an integration of the template,
    /// an integration that is not `AWS_PROXY` to a function of the template (`IntegrationUri`
    /// `…/functions/${Function.Arn}/invocations`), or a route selection expression other
    /// than `$request.body.<field>`.
    pub fn websocket_apis(&self) -> Result<Vec<WsApiSpec>, BoxError> {
        let websocket = self
            .resources_of(API)
            .filter(|(_, r)| r["Properties"]["ProtocolType"] == "WEBSOCKET");
        let mut apis = Vec::new();
        for (id, api) in websocket {
            let expression = api["Properties"]["RouteSelectionExpression"]
                .as_str()
                .ok_or_else(|| format!("{id}: no RouteSelectionExpression"))?
                .to_owned();
            selection_path(&expression).map_err(|e| format!("{id}: {e}"))?;
            let of_api = |r: &Value| referenced(&r["Properties"]["ApiId"]).as_deref() == Some(id);
            let stages = self
                .resources_of(STAGE)
                .filter(|(_, r)| of_api(r))
                .map(
                    |(sid, r)| match self.resolve(&r["Properties"]["StageName"]) {
                        Ok(super::Resolved::Text(name)) => Ok(name),
                        _ => Err(format!("{sid}: StageName cannot be read locally")),
                    },
                )
                .collect::<Result<Vec<_>, _>>()?;
            if stages.is_empty() {
                return Err(format!("WebSocket API {id} has no AWS::ApiGatewayV2::Stage").into());
            }
            let routes = self
                .resources_of(ROUTE)
                .filter(|(_, r)| of_api(r))
                .map(|(rid, r)| self.websocket_route(rid, r))
                .collect::<Result<Vec<_>, _>>()?;
            apis.push(WsApiSpec {
                logical_id: id.to_owned(),
                route_selection_expression: expression,
                stages,
                routes,
            });
        }
        Ok(apis)
    }

    fn websocket_route(&self, id: &str, route: &Value) -> Result<WsRouteSpec, BoxError> {
        let p = &route["Properties"];
        let route_key = p["RouteKey"]
            .as_str()
            .ok_or_else(|| format!("{id}: no RouteKey"))?
            .to_owned();
        let target = symbolic(&p["Target"]).map_err(|e| format!("{id}: Target: {e}"))?;
        let integration = target
            .strip_prefix("integrations/${")
            .and_then(|t| t.strip_suffix('}'))
            .ok_or_else(|| format!("{id}: Target must be integrations/${{Integration}}"))?;
        let resource = self
            .resource(integration)
            .filter(|r| r["Type"] == INTEGRATION)
            .ok_or_else(|| format!("{id}: no integration {integration} in the template"))?;
        let ip = &resource["Properties"];
        if ip["IntegrationType"] != "AWS_PROXY" {
            return Err(format!("{integration}: only AWS_PROXY integrations run locally").into());
        }
        let uri = symbolic(&ip["IntegrationUri"])
            .map_err(|e| format!("{integration}: IntegrationUri: {e}"))?;
        let function = uri
            .split_once("/functions/${")
            .and_then(|(_, rest)| rest.split_once(".Arn}/invocations"))
            .map(|(name, _)| name.to_owned())
            .ok_or_else(|| {
                format!("{integration}: IntegrationUri must end …/functions/${{Function.Arn}}/invocations")
            })?;
        match self.resource(&function).map(|r| &r["Type"]) {
            Some(t) if t == "AWS::Serverless::Function" => Ok(WsRouteSpec {
                route_key,
                function,
            }),
            _ => Err(format!("{integration}: {function} is not a function of the template").into()),
        }
    }
}

/// The body path a route selection expression reads: `$request.body.action` is
/// `["action"]`, `$request.body.a.b` is `["a", "b"]`.
///
/// # Errors
/// Any other expression (header or query selection is not supported locally).
pub fn selection_path(expression: &str) -> Result<Vec<String>, BoxError> {
    let path = expression
        .strip_prefix("$request.body.")
        .filter(|p| !p.is_empty() && p.split('.').all(|s| !s.is_empty()))
        .ok_or_else(|| {
            format!("route selection expression {expression} is not $request.body.<field>")
        })?;
    Ok(path.split('.').map(str::to_owned).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape the calls function's resources take in template.yaml.
    const SAMPLE: &str = r#"
Resources:
  CallsFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: calls
  OtherFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: other
  HttpApi:
    Type: AWS::Serverless::HttpApi
  SignalingApi:
    Type: AWS::ApiGatewayV2::Api
    Properties:
      Name: signaling
      ProtocolType: WEBSOCKET
      RouteSelectionExpression: "$request.body.action"
  SignalingIntegration:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref SignalingApi
      IntegrationType: AWS_PROXY
      IntegrationUri: !Sub arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${CallsFunction.Arn}/invocations
  OtherIntegration:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref SignalingApi
      IntegrationType: AWS_PROXY
      IntegrationUri: !Join
        - ""
        - - "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/"
          - !GetAtt OtherFunction.Arn
          - "/invocations"
  ConnectRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties:
      ApiId: !Ref SignalingApi
      RouteKey: $connect
      Target: !Sub integrations/${SignalingIntegration}
  DisconnectRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties:
      ApiId: !Ref SignalingApi
      RouteKey: $disconnect
      Target: !Sub integrations/${SignalingIntegration}
  SignalRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties:
      ApiId: !Ref SignalingApi
      RouteKey: signal
      Target: !Join ["/", [integrations, !Ref OtherIntegration]]
  SignalingStage:
    Type: AWS::ApiGatewayV2::Stage
    Properties:
      ApiId: !Ref SignalingApi
      StageName: ws
      AutoDeploy: true
"#;

    fn sample(text: &str) -> Result<Vec<WsApiSpec>, BoxError> {
        Template::parse(text, "us-east-1")?.websocket_apis()
    }

    #[test]
    fn routes_are_traced_through_their_integration_to_the_function() {
        let apis = sample(SAMPLE).unwrap();
        assert_eq!(apis.len(), 1);
        let api = &apis[0];
        assert_eq!(api.logical_id, "SignalingApi");
        assert_eq!(api.route_selection_expression, "$request.body.action");
        assert_eq!(api.stages, vec!["ws".to_owned()]);
        let mut routes: Vec<_> = api
            .routes
            .iter()
            .map(|r| (r.route_key.as_str(), r.function.as_str()))
            .collect();
        routes.sort();
        assert_eq!(
            routes,
            vec![
                ("$connect", "CallsFunction"),
                ("$disconnect", "CallsFunction"),
                ("signal", "OtherFunction"),
            ]
        );
    }

    #[test]
    fn a_template_without_websocket_api_has_none() {
        let text = "Resources:\n  HttpApi:\n    Type: AWS::ApiGatewayV2::Api\n    Properties: {ProtocolType: HTTP}\n";
        assert_eq!(sample(text).unwrap(), vec![]);
    }

    #[test]
    fn inconsistent_templates_are_refused_with_the_resource_named() {
        let no_stage = SAMPLE.replace("AWS::ApiGatewayV2::Stage", "AWS::Other::Thing");
        assert!(sample(&no_stage).unwrap_err().to_string().contains("Stage"));
        let missing = SAMPLE.replace(
            "integrations/${SignalingIntegration}",
            "integrations/${Nowhere}",
        );
        assert!(
            sample(&missing)
                .unwrap_err()
                .to_string()
                .contains("Nowhere")
        );
        let mock = SAMPLE.replacen("IntegrationType: AWS_PROXY", "IntegrationType: MOCK", 1);
        assert!(sample(&mock).unwrap_err().to_string().contains("AWS_PROXY"));
        let header = SAMPLE.replace("$request.body.action", "$request.header.x");
        assert!(sample(&header).is_err());
    }

    #[test]
    fn selection_paths_read_body_fields_only() {
        assert_eq!(selection_path("$request.body.action").unwrap(), ["action"]);
        assert_eq!(selection_path("$request.body.a.b").unwrap(), ["a", "b"]);
        assert!(selection_path("$request.body.").is_err());
        assert!(selection_path("${request.body.action}").is_err());
    }
}
