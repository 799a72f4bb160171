use proptest::prelude::*;

use super::*;

fn values() -> RenderValues {
    RenderValues {
        customer_name: Some("Zoë".into()),
        customer_phone: Some("+15551234567".into()),
        agent_name: Some("Ana".into()),
        business_name: Some("Café Luna".into()),
    }
}

fn input(title: &str, text: &str, shortcut: Option<&str>) -> FaqInput {
    FaqInput {
        title: title.into(),
        text: text.into(),
        shortcut: shortcut.map(str::to_owned),
    }
}

fn unknown(text: &str) -> String {
    let err = check_placeholders(text).unwrap_err();
    assert_eq!(err.code(), "unknown_placeholder", "{text}");
    err.to_string()
}

#[test]
fn every_placeholder_is_filled_with_or_without_spaces_inside_the_braces() {
    let text = "Hi {{customer.name}} ({{ customer.phone }}), this is {{agent.name\t}} of {{  business.name}}.";
    check_placeholders(text).unwrap();
    assert_eq!(
        render(text, &values()),
        "Hi Zoë (+15551234567), this is Ana of Café Luna."
    );
}

#[test]
fn missing_values_render_as_empty_text_never_as_braces() {
    let text = "Hi {{customer.name}}, call {{customer.phone}} - {{agent.name}}@{{business.name}}";
    assert_eq!(render(text, &RenderValues::default()), "Hi , call  - @");
}

#[test]
fn adjacent_placeholders_are_each_filled() {
    assert_eq!(
        render(
            "{{customer.name}}{{agent.name}}{{customer.name}}",
            &values()
        ),
        "ZoëAnaZoë"
    );
}

#[test]
fn unknown_placeholders_are_refused_naming_them() {
    assert!(unknown("Dear {{customer.email}}!").contains("{{customer.email}}"));
    assert!(unknown("{{Customer.Name}}").contains("{{Customer.Name}}"));
    assert!(unknown("{{}}").contains("{{}}"));
    assert!(unknown("{{ }}").contains("{{ }}"));
    assert!(unknown("{{customer. name}}").contains("{{customer. name}}"));
}

#[test]
fn unbalanced_and_nested_braces_are_refused() {
    assert!(unknown("Hi {{customer.name").contains("unclosed"));
    assert!(unknown("Hi {{customer.name}").contains("unclosed"));
    assert!(unknown("{{ {{customer.name}} }}").contains("{{ {{customer.name}}"));
    assert!(unknown("{{{customer.name}}}").contains("{{{customer.name}}"));
    assert!(unknown("ok {{agent.name}} then {{").contains("unclosed"));
}

#[test]
fn single_braces_and_a_lone_closing_pair_are_plain_text() {
    for text in [
        "{customer.name}",
        "a } b { c",
        "set }} done",
        "{ {agent.name} }",
    ] {
        check_placeholders(text).unwrap();
        assert_eq!(render(text, &values()), text);
    }
    check_placeholders("{{customer.name}}}").unwrap();
    assert_eq!(render("{{customer.name}}}", &values()), "Zoë}");
}

#[test]
fn a_long_unknown_placeholder_is_quoted_short() {
    let message = unknown(&format!("{{{{{}}}}}", "x".repeat(500)));
    assert!(message.len() < 300, "{message}");
    assert!(message.contains('…'));
}

#[test]
fn values_are_not_filled_again() {
    let v = RenderValues {
        customer_name: Some("{{agent.name}}".into()),
        ..values()
    };
    assert_eq!(render("Hi {{customer.name}}", &v), "Hi {{agent.name}}");
}

#[test]
fn unicode_around_placeholders_is_kept() {
    let text = "你好{{customer.name}}👋🏽，我是{{agent.name}}ـــ";
    check_placeholders(text).unwrap();
    assert_eq!(render(text, &values()), "你好Zoë👋🏽，我是Anaـــ");
}

#[test]
fn texts_saved_before_a_rule_changed_render_without_their_unknown_parts() {
    assert_eq!(
        render("a {{old.thing}} b {{customer.name", &values()),
        "a  b "
    );
}

#[test]
fn bodies_are_bounded() {
    assert!(
        input("Opening hours", "We open at 9.", Some("hours"))
            .parse()
            .is_ok()
    );
    let code = |i: FaqInput| i.parse().unwrap_err().code();
    assert_eq!(code(input("", "t", None)), "invalid_title");
    assert_eq!(code(input("  ", "t", None)), "invalid_title");
    assert_eq!(code(input("a\nb", "t", None)), "invalid_title");
    assert_eq!(
        code(input(&"é".repeat(TITLE_MAX + 1), "t", None)),
        "invalid_title"
    );
    assert_eq!(code(input("t", "", None)), "invalid_text");
    assert_eq!(code(input("t", " \n ", None)), "invalid_text");
    assert_eq!(code(input("t", "a\u{0}b", None)), "invalid_text");
    assert_eq!(
        code(input("t", &"é".repeat(TEXT_MAX + 1), None)),
        "invalid_text"
    );
    assert!(input("t", &"é".repeat(TEXT_MAX), None).parse().is_ok());
    assert!(input("t", "line 1\r\n\tline 2", None).parse().is_ok());
    for bad in [
        "",
        "Hours",
        "a b",
        "café",
        "x/y",
        &"a".repeat(SHORTCUT_MAX + 1),
    ] {
        assert_eq!(
            code(input("t", "x", Some(bad))),
            "invalid_shortcut",
            "{bad:?}"
        );
    }
    assert!(
        input("t", "x", Some(&"a".repeat(SHORTCUT_MAX)))
            .parse()
            .is_ok()
    );
    assert_eq!(code(input("t", "{{x}}", None)), "unknown_placeholder");
}

fn faq(title: &str, shortcut: Option<&str>, text: &str) -> Faq {
    let at = Utc::now();
    Faq {
        id: "01J".into(),
        title: title.into(),
        text: text.into(),
        shortcut: shortcut.map(|s| Shortcut::parse(s).unwrap()),
        created_at: at,
        updated_at: at,
    }
}

#[test]
fn search_ignores_case_and_accents_in_title_shortcut_and_text() {
    let entry = faq(
        "Menu du Café",
        Some("menu-fr"),
        "Nos CRÊPES sont faites maison.",
    );
    let q = |text: &str| FaqQuery::parse(Some(text)).unwrap().unwrap();
    assert!(q("cafe").matches(&entry));
    assert!(q("CAFÉ").matches(&entry));
    assert!(q("menu-fr").matches(&entry));
    assert!(q("crepes sont").matches(&entry));
    assert!(!q("tea").matches(&entry));
    assert!(!q("cafe menu").matches(&entry), "no match across fields");
}

#[test]
fn a_blank_query_lists_everything_and_a_long_one_is_refused() {
    assert_eq!(FaqQuery::parse(None).unwrap(), None);
    assert_eq!(FaqQuery::parse(Some("  ")).unwrap(), None);
    let long = "a".repeat(QUERY_MAX + 1);
    assert_eq!(
        FaqQuery::parse(Some(&long)).unwrap_err().code(),
        "invalid_query"
    );
}

#[test]
fn the_phone_is_the_recorded_one_else_the_whatsapp_number() {
    let whatsapp = CustomerContact {
        wa_id: Some("15551234567".into()),
        external_id: Some("15551234567".into()),
        channel_type: Some(ChannelType::Whatsapp),
        ..Default::default()
    };
    assert_eq!(whatsapp.display_phone().as_deref(), Some("+15551234567"));
    let recorded = CustomerContact {
        phone: Some("+85290000000".into()),
        ..whatsapp.clone()
    };
    assert_eq!(recorded.display_phone().as_deref(), Some("+85290000000"));
    let username_only = CustomerContact {
        external_id: Some("US.13491208655302741918".into()),
        channel_type: Some(ChannelType::Whatsapp),
        ..Default::default()
    };
    assert_eq!(username_only.display_phone(), None);
    let messenger = CustomerContact {
        external_id: Some("24567890123456789".into()),
        channel_type: Some(ChannelType::Messenger),
        ..Default::default()
    };
    assert_eq!(messenger.display_phone(), None);
}

proptest! {
    #[test]
    fn rendering_never_panics_and_never_leaves_a_placeholder(text in "[a-z{} .é你👋]{0,60}") {
        let out = render(&text, &RenderValues::default());
        if check_placeholders(&text).is_ok() {
            for p in Placeholder::ALL {
                let raw = format!("{{{{{}}}}}", p.name());
                prop_assert!(!out.contains(&raw));
            }
        }
    }

    #[test]
    fn text_without_double_braces_renders_as_itself(text in "[^{]*|[^}]*") {
        if !text.contains("{{") {
            prop_assert!(check_placeholders(&text).is_ok());
            prop_assert_eq!(render(&text, &values()), text);
        }
    }

    #[test]
    fn a_known_placeholder_between_any_plain_texts_is_filled(
        before in "[^{}]{0,20}", after in "[^{}]{0,20}", p in 0usize..4, pad in " {0,3}",
    ) {
        let p = Placeholder::ALL[p];
        let text = format!("{before}{{{{{pad}{}{pad}}}}}{after}", p.name());
        prop_assert!(check_placeholders(&text).is_ok());
        let v = values();
        prop_assert_eq!(render(&text, &v), format!("{before}{}{after}", v.get(p)));
    }
}
