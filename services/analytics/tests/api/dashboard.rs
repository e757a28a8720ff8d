//! `GET /dashboard`: the page for people, its figures read from the same
//! tables as the summary. (The e2e suite loads it in a real browser.)

use std::time::Duration;

use omnisaga_proto::v1::Channel;
use omnisaga_runtime::testing;
use uuid::Uuid;

use crate::helpers::{placed_through, spawn_app};

/// The `data-value` of the element whose `data-figure` is `name`.
fn figure(html: &str, name: &str) -> Option<f64> {
    let at = html.find(&format!(r#"data-figure="{name}" data-value=""#))?;
    let rest = &html[at..];
    let value = rest.split("data-value=\"").nth(1)?.split('"').next()?;
    value.parse().ok()
}

#[tokio::test]
async fn the_dashboard_shows_the_figures_and_a_chart_for_each_view() {
    let app = spawn_app().await;
    for channel in [Channel::Mobile, Channel::Mobile, Channel::Web] {
        let order_id = Uuid::new_v4();
        app.publish(
            &app.kafka.topics().orders,
            &placed_through(order_id, channel, &[("SKU-TEA", 1, 450)]),
        )
        .await;
        app.pay(order_id, channel == Channel::Mobile).await;
    }
    let html = testing::wait_for("six events on the dashboard", Duration::from_secs(30), || async {
        let resp = app.get("/dashboard").await;
        assert_eq!(resp.status(), 200);
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let html = resp.text().await.unwrap();
        let counted = figure(&html, "placed") == Some(3.0)
            && figure(&html, "paid.all") == Some(2.0)
            && figure(&html, "success_share.web").is_some();
        counted.then_some(html)
    })
    .await
    .unwrap();
    assert_eq!(figure(&html, "placed.mobile"), Some(2.0));
    assert_eq!(figure(&html, "placed.web"), Some(1.0));
    assert_eq!(figure(&html, "placed_last_hour"), Some(3.0));
    let share = figure(&html, "success_share").unwrap();
    assert!((share - 2.0 / 3.0).abs() < 1e-9, "{share}");
    assert_eq!(figure(&html, "success_share.web"), Some(0.0));
    assert_eq!(figure(&html, "stuck"), Some(0.0), "none has waited 300 s");
    for chart in [
        "orders_per_minute",
        "funnel",
        "fulfilment",
        "success_share",
        "stuck",
    ] {
        let at = html
            .find(&format!(r#"<figure data-chart="{chart}"><svg"#))
            .unwrap_or_else(|| panic!("no {chart} chart"));
        let figure = html[at..].split("</figure>").next().unwrap();
        assert!(
            figure.contains("</svg>") && figure.contains("<figcaption>"),
            "{chart}"
        );
    }
    assert!(html.contains(r#"<meta http-equiv="refresh" content="10">"#));
    assert!(html.contains("an order declined and then paid counts as a success"));
}
