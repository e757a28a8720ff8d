//! `omnisaga order timeline`: one order as every service sees it, on one
//! page. The order service must know the order; any other service that
//! does not answer, or knows nothing of it, is shown as "no view".

use anyhow::{bail, Result};
use serde::Serialize;
use serde_json::Value;

use crate::{
    http::{self, Failure},
    output::{self, text},
    settings::Settings,
};

/// What one service said about the order.
#[derive(Debug, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
enum View {
    /// Its answer, as it gave it.
    Found { view: Value },
    /// Why there is none: it knows nothing of the order, or did not answer.
    None { reason: String },
}

/// The whole page.
#[derive(Debug, Serialize)]
struct Timeline {
    order_id: String,
    order: Value,
    payment: View,
    warehouse: View,
    notification: View,
    analytics: View,
    /// The trace viewer's page of the order's trace, if the order has one.
    trace_url: Option<String>,
}

/// Runs `order timeline <id>`.
pub async fn run(id: &str, settings: &Settings, json: bool) -> Result<()> {
    let spinner = output::spinner("asking the services", json);
    let timeline = fetch(id, settings).await;
    spinner.finish_and_clear();
    let timeline = timeline?;
    if json {
        return output::print_json(&timeline);
    }
    print_page(&timeline);
    Ok(())
}

/// Asks every service at once; fails only when the order service does.
async fn fetch(id: &str, settings: &Settings) -> Result<Timeline> {
    let client = http::client(settings)?;
    let get = |service: &str, path: String| client.get(format!("{}{path}", settings.service_url(service)));
    // The operators' views of payment and warehouse are on their admin listeners.
    let admin = |service: &str, path: String| client.get(format!("{}{path}", settings.admin_url(service)));
    let notifications = get("notification", format!("/v1/orders/{id}/notifications"));
    let (order, payment, warehouse, notification, analytics) = tokio::join!(
        http::try_call(get("order", format!("/v1/orders/{id}"))),
        view("payment", admin("payment", format!("/v1/payments/{id}"))),
        view(
            "warehouse",
            admin("warehouse", format!("/v1/orders/{id}/fulfilment"))
        ),
        view("notification", notifications),
        view("analytics", get("analytics", format!("/v1/orders/{id}/stages"))),
    );
    let order = match order {
        Ok(order) => order,
        Err(Failure::Status(status, message)) if status == 404 => bail!("order {id} not found: {message}"),
        Err(Failure::Status(status, message)) => {
            bail!("order {id}: the order service answered {status}: {message}")
        }
        Err(e @ Failure::Unreachable(_)) => {
            bail!(
                "the order service at {}: {e} (set ORDER_URL)",
                settings.service_url("order")
            )
        }
    };
    let trace_url = order["trace_id"]
        .as_str()
        .map(|t| format!("{}/trace/{t}", settings.traces_url.trim_end_matches('/')));
    Ok(Timeline {
        order_id: id.to_owned(),
        order,
        payment,
        warehouse,
        notification,
        analytics,
        trace_url,
    })
}

/// `service`'s answer, or why there is none.
async fn view(service: &str, req: reqwest::RequestBuilder) -> View {
    match http::try_call(req).await {
        Ok(view) => View::Found { view },
        Err(Failure::Status(status, _)) if status == 404 => View::None {
            reason: format!("{service} knows nothing of this order"),
        },
        Err(e) => View::None {
            reason: format!("{service}: {e}"),
        },
    }
}

fn print_page(t: &Timeline) {
    let o = &t.order;
    println!(
        "order {} ({})  status {}",
        text(&o["order_number"]),
        t.order_id,
        text(&o["status"])
    );
    if let Some(url) = &t.trace_url {
        println!("trace {url}");
    }
    let mut events = output::table(["AT", "SERVICE", "EVENT"]);
    for e in o["timeline"].as_array().into_iter().flatten() {
        events.add_row([
            text(&e["occurred_at"]),
            text(&e["service"]),
            text(&e["event_type"]),
        ]);
    }
    println!("{events}");
    section("payment", &t.payment, |p| {
        println!(
            "  status {}  attempts {}",
            text(&p["status"]),
            text(&p["attempts"])
        );
    });
    section("warehouse", &t.warehouse, print_fulfilment);
    section("messages", &t.notification, |n| {
        let mut table = output::table(["AT", "CHANNEL", "TEMPLATE", "STATUS", "TEXT"]);
        for m in n["items"].as_array().into_iter().flatten() {
            table.add_row([
                text(&m["created_at"]),
                text(&m["channel"]),
                text(&m["template"]),
                text(&m["status"]),
                text(&m["text"]),
            ]);
        }
        println!("{table}");
    });
    section("stages", &t.analytics, |a| {
        let mut table = output::table(["STAGE", "AT", "SECONDS SINCE PREVIOUS"]);
        for s in a["stages"].as_array().into_iter().flatten() {
            table.add_row([
                text(&s["stage"]),
                text(&s["at"]),
                text(&s["seconds_since_previous"]),
            ]);
        }
        println!("{table}");
    });
}

fn print_fulfilment(w: &Value) {
    let task = &w["pick_task"];
    if task.is_null() {
        println!("  no pick task");
    } else {
        let items: Vec<String> = task["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| format!("{} x{}", text(&i["sku"]), text(&i["quantity"])))
            .collect();
        println!(
            "  pick task {}  {}  {}  (created {}, updated {})",
            text(&task["pick_task_id"]),
            text(&task["status"]),
            items.join(", "),
            text(&task["created_at"]),
            text(&task["updated_at"])
        );
    }
    let stock = &w["stock"];
    println!(
        "  stock: reserved {}  unavailable {}  released {}  shipped {}",
        stock["reserved"].as_bool().unwrap_or(false),
        stock["unavailable"].as_bool().unwrap_or(false),
        stock["released"].as_bool().unwrap_or(false),
        stock["shipped"].as_bool().unwrap_or(false)
    );
}

/// A titled section: `show` its view, or the reason it has none.
fn section(title: &str, view: &View, show: impl FnOnce(&Value)) {
    println!("\n{title}");
    match view {
        View::Found { view } => show(view),
        View::None { reason } => println!("  no view: {reason}"),
    }
}
