//! The webhook channel to a receiver that speaks HTTPS only, with a
//! certificate issued by a CA the test made: with that CA trusted
//! (`TLS_CA_FILE`), every message arrives signed; with the system's CAs
//! alone, the send fails on the certificate and nothing arrives.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{extract::State, http::HeaderMap, http::StatusCode};
use omnisaga_notification::{
    channel::{Channel, Message},
    webhook::{self, WebhookChannel},
};
use omnisaga_runtime::{http_client::Trust, testing::https::TestCa};
use uuid::Uuid;

const SECRET: &[u8] = b"a secret of 32 bytes, for tests!";

/// Verified deliveries (webhook-id, body) and the count of unverified ones.
#[derive(Default)]
struct Taken {
    verified: Mutex<Vec<(String, serde_json::Value)>>,
    forged: Mutex<usize>,
}

/// Checks the signature as docs/operations.md tells receivers to.
async fn receive(State(taken): State<Arc<Taken>>, headers: HeaderMap, body: axum::body::Bytes) -> StatusCode {
    use base64::Engine as _;
    use hmac::Mac as _;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (id, timestamp) = (header("webhook-id"), header("webhook-timestamp"));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    if !header("webhook-signature")
        .split(' ')
        .any(|s| s == format!("v1,{expected}"))
    {
        *taken.forged.lock().unwrap() += 1;
        return StatusCode::UNAUTHORIZED;
    }
    let body = serde_json::from_slice(&body).unwrap();
    taken.verified.lock().unwrap().push((id, body));
    StatusCode::NO_CONTENT
}

fn channel(url: &str, trust: &Trust) -> WebhookChannel {
    use base64::Engine as _;
    let secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(SECRET)
    );
    WebhookChannel::new(
        format!("{url}/hooks/chat"),
        webhook::secrets(&secret).unwrap(),
        Duration::from_secs(5),
        trust,
    )
    .unwrap()
}

fn message() -> Message {
    Message {
        notification_id: Uuid::new_v4(),
        order_id: Uuid::new_v4(),
        customer_id: "c-1".into(),
        template: "order_created".into(),
        text: "Your order is placed.".into(),
    }
}

#[tokio::test]
async fn an_https_webhook_receiver_with_a_certificate_of_the_configured_ca_gets_every_message_signed() {
    let ca = TestCa::new().unwrap();
    let taken = Arc::new(Taken::default());
    let app = axum::Router::new()
        .route("/hooks/chat", axum::routing::post(receive))
        .with_state(taken.clone());
    let url = ca.serve(app).await.unwrap();
    assert!(url.starts_with("https://"), "{url}");

    let trusted = channel(&url, &Trust::ca_file(&ca.ca_file).unwrap());
    let sent: Vec<Message> = (0..3).map(|_| message()).collect();
    for msg in &sent {
        trusted.send(msg).await.expect("delivered over HTTPS");
    }
    let verified = taken.verified.lock().unwrap().clone();
    let ids: Vec<String> = sent.iter().map(|m| m.notification_id.to_string()).collect();
    assert_eq!(verified.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(), ids);
    assert_eq!(verified[0].1["customer_id"], "c-1");
    assert_eq!(*taken.forged.lock().unwrap(), 0);

    // The system's CAs do not know the test's: refused, and said why.
    let untrusting = channel(&url, &Trust::system());
    let e = untrusting.send(&message()).await.unwrap_err().to_string();
    assert!(e.contains("certificate"), "{e}");
    assert_eq!(taken.verified.lock().unwrap().len(), 3, "nothing more arrived");
}
