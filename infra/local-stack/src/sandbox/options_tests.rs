use serde_json::{Value, json};

use super::*;

fn buttons(buttons: Value) -> Value {
    json!({"type": "button", "body": {"text": "What do you need?"}, "action": {"buttons": buttons}})
}

fn button(id: &str, title: &str) -> Value {
    json!({"type": "reply", "reply": {"id": id, "title": title}})
}

fn list(sections: Value) -> Value {
    json!({"type": "list", "body": {"text": "Pick a slot"},
        "action": {"button": "Choose", "sections": sections}})
}

fn rows(n: usize, from: usize) -> Vec<Value> {
    (from..from + n)
        .map(|i| json!({"id": format!("row-{i}"), "title": format!("Slot {i}")}))
        .collect()
}

fn refused(interactive: &Value) -> Refusal {
    whatsapp_interactive(interactive).expect_err(&interactive.to_string())
}

#[test]
fn reply_buttons_and_lists_as_meta_documents_them_are_accepted() {
    for ok in [
        buttons(json!([button("yes", "Yes"), button("no", "No")])),
        buttons(json!([
            button(&"i".repeat(256), &"t".repeat(20)),
            button("b", "Zurück 🔙"),
            button("c", "Hablar con alguien"),
        ])),
        json!({"type": "button", "header": {"type": "text", "text": "Hi"},
            "body": {"text": "x".repeat(1024)}, "footer": {"text": "f"},
            "action": {"buttons": [button("a", "A")]}}),
        list(json!([{"title": "Options", "rows": rows(10, 0)}])),
        list(json!([{"rows": rows(4, 0)}])),
        list(json!([{"title": "Morning", "rows": rows(5, 0)},
            {"title": "Afternoon", "rows": rows(5, 5)}])),
        list(json!([{"title": "t".repeat(24), "rows": [
            {"id": "r".repeat(200), "title": "x".repeat(24), "description": "d".repeat(72)}
        ]}])),
        // Other interactive types are not checked here.
        json!({"type": "cta_url", "action": {"name": "cta_url"}}),
    ] {
        assert_eq!(whatsapp_interactive(&ok), Ok(()), "{ok}");
    }
}

#[test]
fn reply_button_values_meta_refuses_are_131009_with_its_details() {
    let cases = [
        (
            buttons(json!([button("a", &"t".repeat(21))])),
            "Button title length invalid. Min length: 1, Max length: 20",
        ),
        (
            buttons(json!([button("a", "  ")])),
            "Button title length invalid",
        ),
        (
            buttons(json!([button(&"i".repeat(257), "A")])),
            "Button id length invalid. Min length: 1, Max length: 256",
        ),
        (
            buttons(json!([button(" a", "A")])),
            "leading or trailing spaces",
        ),
        (
            buttons(json!([button("a", "A"), button("a", "B")])),
            "Duplicate button id",
        ),
        (
            buttons(json!([button("a", "Same"), button("b", "Same")])),
            "Duplicate button title",
        ),
        (buttons(json!([])), "Invalid buttons count"),
        (
            buttons(json!([
                button("a", "A"),
                button("b", "B"),
                button("c", "C"),
                button("d", "D")
            ])),
            "Max allowed buttons: 3",
        ),
        (
            json!({"type": "button", "body": {"text": "x".repeat(1025)},
                "action": {"buttons": [button("a", "A")]}}),
            "Body text length invalid. Min length: 1, Max length: 1024",
        ),
    ];
    for (interactive, details) in cases {
        let r = refused(&interactive);
        assert_eq!(r.code, PARAMETER_VALUE_NOT_VALID, "{interactive}: {r:?}");
        assert_eq!(r.title(), "Parameter value is not valid");
        assert!(r.details.contains(details), "{interactive}: {r:?}");
    }
}

#[test]
fn list_values_meta_refuses_are_131009_with_its_details() {
    let cases = [
        (
            list(json!([{"title": "A", "rows": rows(6, 0)}, {"title": "B", "rows": rows(5, 6)}])),
            "Total row count exceed max allowed count: 10",
        ),
        (
            list(json!([{"rows": rows(11, 0)}])),
            "Total row count exceed max allowed count: 10",
        ),
        (
            list(json!([{"rows": [{"id": "a", "title": "x".repeat(25)}]}])),
            "Row title length invalid. Min length: 1, Max length: 24",
        ),
        (
            list(json!([{"rows": [{"id": "r".repeat(201), "title": "A"}]}])),
            "Row id length invalid. Min length: 1, Max length: 200",
        ),
        (
            list(json!([{"rows": [{"id": "a", "title": "A"}, {"id": "a", "title": "B"}]}])),
            "Duplicate row id",
        ),
        (
            list(json!([{"rows": [{"id": "a", "title": "A", "description": "d".repeat(73)}]}])),
            "Row description length invalid",
        ),
        (
            list(json!([{"title": "t".repeat(25), "rows": rows(1, 0)}])),
            "Section title length invalid. Min length: 1, Max length: 24",
        ),
        (list(json!([{"rows": []}])), "at least 1 row"),
        (list(json!([])), "1 to 10 sections"),
        (
            json!({"type": "list", "body": {"text": "x"},
                "action": {"button": "b".repeat(21), "sections": [{"rows": rows(1, 0)}]}}),
            "Button text length invalid. Min length: 1, Max length: 20",
        ),
    ];
    for (interactive, details) in cases {
        let r = refused(&interactive);
        assert_eq!(r.code, PARAMETER_VALUE_NOT_VALID, "{interactive}: {r:?}");
        assert!(r.details.contains(details), "{interactive}: {r:?}");
    }
}

#[test]
fn missing_or_unknown_parameters_are_100() {
    let cases = [
        (
            buttons(json!([{"type": "reply"}])),
            "interactive['action']['buttons'][0]['reply'] is required",
        ),
        (
            buttons(json!([{"type": "reply", "reply": {"title": "A"}}])),
            "['reply']['id'] is required",
        ),
        (
            buttons(json!([{"reply": {"id": "a", "title": "A"}}])),
            "['type'] is required",
        ),
        (
            buttons(json!([{"type": "url", "reply": {"id": "a", "title": "A"}}])),
            "must be \"reply\"",
        ),
        (
            buttons(json!([{"type": "reply", "reply": {"id": "a", "title": "A", "payload": "p"}}])),
            "Unexpected key \"payload\"",
        ),
        (
            json!({"type": "button", "action": {"buttons": [button("a", "A")]}}),
            "interactive['body'] is required",
        ),
        (
            list(json!([{"title": "A", "rows": rows(1, 0)}, {"rows": rows(1, 1)}])),
            "['title'] is required when there is more than one section",
        ),
        (
            list(json!([{"rows": [{"title": "A"}]}])),
            "['rows'][0]['id'] is required",
        ),
        (
            json!({"type": "list", "body": {"text": "x"}, "action": {"sections": [{"rows": rows(1, 0)}]}}),
            "interactive['action']['button'] is required",
        ),
        (
            json!({"type": "button"}),
            "interactive['action'] is required",
        ),
    ];
    for (interactive, details) in cases {
        let r = refused(&interactive);
        assert_eq!(r.code, INVALID_PARAMETER, "{interactive}: {r:?}");
        assert_eq!(r.title(), "Invalid parameter");
        assert!(r.details.contains(details), "{interactive}: {r:?}");
    }
}

fn quick(reply: Value) -> Result<(), String> {
    messenger_quick_replies(&json!([reply]))
}

#[test]
fn quick_replies_as_meta_documents_them_are_accepted() {
    let thirteen: Vec<Value> = (0..13)
        .map(|i| json!({"content_type": "text", "title": format!("Option {i}"), "payload": i}))
        .collect();
    assert_eq!(messenger_quick_replies(&json!(thirteen)), Ok(()));
    for ok in [
        json!({"content_type": "text", "title": "Red", "payload": "COLOR_RED"}),
        json!({"content_type": "text", "title": "t".repeat(20), "payload": "p".repeat(1000),
            "image_url": "https://example.com/red.png"}),
        json!({"content_type": "text", "title": "Green", "payload": "",
            "image_url": "http://example.com/green.png"}),
        json!({"content_type": "user_email"}),
        json!({"content_type": "user_phone_number"}),
    ] {
        assert_eq!(quick(ok.clone()), Ok(()), "{ok}");
    }
}

#[test]
fn quick_replies_meta_refuses_are_refused_naming_the_field() {
    let fourteen: Vec<Value> = (0..14)
        .map(|i| json!({"content_type": "text", "title": format!("Option {i}"), "payload": i}))
        .collect();
    let too_many = messenger_quick_replies(&json!(fourteen)).unwrap_err();
    assert!(too_many.contains("1 to 13"), "{too_many}");
    assert!(messenger_quick_replies(&json!([])).is_err());
    assert!(messenger_quick_replies(&json!({"title": "A"})).is_err());
    let cases = [
        (
            json!({"title": "Red", "payload": "R"}),
            "[quick_replies][0][content_type] is required",
        ),
        (
            json!({"content_type": "location"}),
            "must be one of text, user_phone_number, user_email",
        ),
        (
            json!({"content_type": "text", "payload": "R"}),
            "[title] is required",
        ),
        (
            json!({"content_type": "text", "title": " ", "payload": "R"}),
            "[title] is required",
        ),
        (
            json!({"content_type": "text", "title": "Red"}),
            "[payload] is required",
        ),
        (
            json!({"content_type": "text", "title": "Red", "payload": ""}),
            "empty only with an image_url",
        ),
        (
            json!({"content_type": "text", "title": "t".repeat(21), "payload": "R"}),
            "20 character limit",
        ),
        (
            json!({"content_type": "text", "title": "Red", "payload": "p".repeat(1001)}),
            "1000 character limit",
        ),
        (
            json!({"content_type": "text", "title": "Red", "payload": {"a": 1}}),
            "string or a number",
        ),
        (
            json!({"content_type": "text", "title": "Red", "payload": "R", "image_url": "ftp://x"}),
            "[image_url]",
        ),
        (
            json!({"content_type": "text", "title": "Red", "payload": "R", "id": "x"}),
            "[id] is not a valid parameter",
        ),
    ];
    for (reply, needle) in cases {
        let message = quick(reply.clone()).expect_err(&reply.to_string());
        assert!(message.contains(needle), "{reply}: {message}");
        assert!(
            message.starts_with("param message[quick_replies]"),
            "{message}"
        );
    }
}
