//! Creates the template's tables, buckets, event buses and schedule groups in the emulator.

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_s3::types::{
    EventBridgeConfiguration, NotificationConfiguration, PublicAccessBlockConfiguration,
    ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
    ServerSideEncryptionRule,
};

use crate::BoxError;
use crate::template::{KeyElement, TableSpec, Template};

fn key_schema(keys: &[KeyElement]) -> Result<Vec<KeySchemaElement>, BoxError> {
    keys.iter()
        .map(|k| {
            Ok(KeySchemaElement::builder()
                .attribute_name(&k.attribute_name)
                .key_type(KeyType::from(k.key_type.as_str()))
                .build()?)
        })
        .collect()
}

async fn create_table(client: &aws_sdk_dynamodb::Client, spec: &TableSpec) -> Result<(), BoxError> {
    let mut request = client
        .create_table()
        .table_name(&spec.name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(key_schema(&spec.key_schema)?));
    for attribute in &spec.attribute_definitions {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(&attribute.attribute_name)
                .attribute_type(ScalarAttributeType::from(attribute.attribute_type.as_str()))
                .build()?,
        );
    }
    for index in &spec.global_secondary_indexes {
        let projection = Projection::builder()
            .projection_type(ProjectionType::from(
                index.projection.projection_type.as_str(),
            ))
            .set_non_key_attributes(
                (!index.projection.non_key_attributes.is_empty())
                    .then(|| index.projection.non_key_attributes.clone()),
            )
            .build();
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(&index.index_name)
                .set_key_schema(Some(key_schema(&index.key_schema)?))
                .projection(projection)
                .build()?,
        );
    }
    request.send().await?;
    if let Some(ttl) = spec
        .time_to_live_specification
        .as_ref()
        .filter(|t| t.enabled)
    {
        client
            .update_time_to_live()
            .table_name(&spec.name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(&ttl.attribute_name)
                    .enabled(true)
                    .build()?,
            )
            .send()
            .await?;
    }
    Ok(())
}

async fn create_bucket(client: &aws_sdk_s3::Client, name: &str) -> Result<(), BoxError> {
    client.create_bucket().bucket(name).send().await?;
    let rule = ServerSideEncryptionRule::builder()
        .apply_server_side_encryption_by_default(
            ServerSideEncryptionByDefault::builder()
                .sse_algorithm(ServerSideEncryption::Aes256)
                .build()?,
        )
        .build();
    client
        .put_bucket_encryption()
        .bucket(name)
        .server_side_encryption_configuration(
            ServerSideEncryptionConfiguration::builder()
                .rules(rule)
                .build()?,
        )
        .send()
        .await?;
    client
        .put_public_access_block()
        .bucket(name)
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .block_public_policy(true)
                .ignore_public_acls(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await?;
    // As in the template: "Object Created" events go to EventBridge.
    client
        .put_bucket_notification_configuration()
        .bucket(name)
        .notification_configuration(
            NotificationConfiguration::builder()
                .event_bridge_configuration(EventBridgeConfiguration::builder().build())
                .build(),
        )
        .send()
        .await?;
    Ok(())
}

/// Creates every table, bucket, event bus and schedule group the template declares.
pub async fn create_resources(template: &Template, sdk: &SdkConfig) -> Result<(), BoxError> {
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    for table in template.tables()? {
        create_table(&dynamo, &table)
            .await
            .map_err(|e| format!("create table {}: {}", table.name, err_text(e)))?;
    }
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            .build(),
    );
    for bucket in template.names_of("AWS::S3::Bucket")? {
        create_bucket(&s3, &bucket)
            .await
            .map_err(|e| format!("create bucket {bucket}: {}", err_text(e)))?;
    }
    let events = aws_sdk_eventbridge::Client::new(sdk);
    for bus in template.names_of("AWS::Events::EventBus")? {
        events
            .create_event_bus()
            .name(&bus)
            .send()
            .await
            .map_err(|e| format!("create event bus {bus}: {}", err_text(e)))?;
    }
    let scheduler = aws_sdk_scheduler::Client::new(sdk);
    for group in template.names_of("AWS::Scheduler::ScheduleGroup")? {
        scheduler
            .create_schedule_group()
            .name(&group)
            .send()
            .await
            .map_err(|e| format!("create schedule group {group}: {}", err_text(e)))?;
    }
    Ok(())
}

fn err_text(e: impl Into<BoxError>) -> String {
    let e: BoxError = e.into();
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
