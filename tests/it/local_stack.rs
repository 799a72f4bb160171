//! The local stack is built from template.yaml, not from a second copy of the schemas.

use std::collections::BTreeSet;

use integration_tests::stack;

#[tokio::test]
async fn tables_match_the_template_key_schema_and_indexes() {
    let stack = stack();
    let dynamo = aws_sdk_dynamodb::Client::new(&stack.settings.sdk_config());
    let tables = stack.template.tables().unwrap();
    assert!(!tables.is_empty());
    for spec in tables {
        let described = dynamo
            .describe_table()
            .table_name(&spec.name)
            .send()
            .await
            .unwrap();
        let table = described.table().expect("table exists");
        let keys = |k: &[aws_sdk_dynamodb::types::KeySchemaElement]| {
            k.iter()
                .map(|e| {
                    (
                        e.attribute_name().to_owned(),
                        e.key_type().as_str().to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        };
        let want = |k: &[integration_tests::local_stack::template::KeyElement]| {
            k.iter()
                .map(|e| (e.attribute_name.clone(), e.key_type.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            keys(table.key_schema()),
            want(&spec.key_schema),
            "{}",
            spec.name
        );
        let attributes: BTreeSet<_> = table
            .attribute_definitions()
            .iter()
            .map(|a| {
                (
                    a.attribute_name().to_owned(),
                    a.attribute_type().as_str().to_owned(),
                )
            })
            .collect();
        let declared: BTreeSet<_> = spec
            .attribute_definitions
            .iter()
            .map(|a| (a.attribute_name.clone(), a.attribute_type.clone()))
            .collect();
        assert_eq!(attributes, declared);
        let indexes = table.global_secondary_indexes();
        assert_eq!(indexes.len(), spec.global_secondary_indexes.len());
        for index in &spec.global_secondary_indexes {
            let got = indexes
                .iter()
                .find(|i| i.index_name() == Some(index.index_name.as_str()))
                .unwrap_or_else(|| panic!("index {} exists", index.index_name));
            assert_eq!(keys(got.key_schema()), want(&index.key_schema));
            assert_eq!(
                got.projection()
                    .and_then(|p| p.projection_type())
                    .map(|p| p.as_str().to_owned()),
                Some(index.projection.projection_type.clone())
            );
        }
        if let Some(ttl) = &spec.time_to_live_specification {
            let described = dynamo
                .describe_time_to_live()
                .table_name(&spec.name)
                .send()
                .await
                .unwrap();
            let got = described
                .time_to_live_description()
                .and_then(|d| d.attribute_name());
            assert_eq!(got, Some(ttl.attribute_name.as_str()));
        }
    }
}

#[tokio::test]
async fn bucket_bus_and_schedule_group_exist_with_their_template_names() {
    let stack = stack();
    let sdk = stack.settings.sdk_config();
    let s3 = integration_tests::s3_client();
    for bucket in stack.template.names_of("AWS::S3::Bucket").unwrap() {
        s3.head_bucket().bucket(&bucket).send().await.unwrap();
        let enc = s3
            .get_bucket_encryption()
            .bucket(&bucket)
            .send()
            .await
            .unwrap();
        assert!(enc.server_side_encryption_configuration().is_some());
        let block = s3
            .get_public_access_block()
            .bucket(&bucket)
            .send()
            .await
            .unwrap();
        let config = block.public_access_block_configuration().unwrap();
        assert_eq!(config.block_public_acls(), Some(true));
        assert_eq!(config.restrict_public_buckets(), Some(true));
    }
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    for bus in stack.template.names_of("AWS::Events::EventBus").unwrap() {
        events.describe_event_bus().name(&bus).send().await.unwrap();
    }
    let scheduler = aws_sdk_scheduler::Client::new(&sdk);
    for group in stack
        .template
        .names_of("AWS::Scheduler::ScheduleGroup")
        .unwrap()
    {
        scheduler
            .get_schedule_group()
            .name(&group)
            .send()
            .await
            .unwrap();
    }
}
