use serde_json::json;

use super::*;

#[test]
fn personal_data_and_secrets_are_redacted_everywhere_in_a_body() {
    let body = json!({
        "channel": "mobile",
        "items": [{"sku": "SKU-MUG", "quantity": 2}],
        "shipping_address": {"name": "Ada", "line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"},
        "payment_method": "tok_visa",
        "nested": [{"Token": "abc"}],
    });
    let kept = redacted(body.to_string().as_bytes()).unwrap();
    assert_eq!(kept["shipping_address"]["name"], "***");
    assert_eq!(kept["shipping_address"]["line1"], "***");
    assert_eq!(kept["shipping_address"]["postal_code"], "***");
    assert_eq!(kept["shipping_address"]["city"], "Berlin");
    assert_eq!(kept["payment_method"], "***");
    assert_eq!(kept["nested"][0]["Token"], "***");
    assert_eq!(kept["items"], body["items"]);
    assert_eq!(redacted(b"not json"), Some(json!({"unparsed_bytes": 8})));
    assert_eq!(redacted(b""), None);
}

#[test]
fn a_small_body_is_kept_whole_and_redacted() {
    let body = json!({"items": [{"sku": "SKU-MUG", "quantity": 1}], "payment_method": "tok_visa"});
    let kept = excerpt(&tap::seen(body.to_string().as_bytes())).unwrap();
    assert_eq!(kept["items"], body["items"]);
    assert_eq!(kept["payment_method"], "***");
    assert_eq!(excerpt(&tap::seen(b"")), None);
}

#[test]
fn a_large_body_keeps_a_bounded_excerpt_redacted_before_it_was_cut() {
    let lines: Vec<_> = (0..1000)
        .map(|i| json!({"sku": format!("SKU-{i}"), "email": "ada@example.com"}))
        .collect();
    let body = json!({ "rows": lines }).to_string();
    assert!(body.len() > EXCERPT && body.len() <= tap::KEPT, "{}", body.len());
    let kept = excerpt(&tap::seen(body.as_bytes())).unwrap();
    assert_eq!(kept["truncated"], true);
    let text = kept["excerpt"].as_str().unwrap();
    assert!(text.len() <= EXCERPT, "{}", text.len());
    assert!(
        text.contains("SKU-0") && !text.contains("ada@example.com"),
        "{text}"
    );
}

#[test]
fn a_body_over_what_the_tap_keeps_leaves_only_its_size_and_hash() {
    let body = vec![b' '; tap::KEPT + 1];
    let seen = tap::seen(&body);
    assert_eq!(excerpt(&seen), Some(json!({"omitted": "larger than 64 KiB"})));
    assert_eq!(seen.bytes, body.len() as u64);
    assert_eq!(seen.sha256().map(|h| h.len()), Some(64));
}
