use anyhow::Result;
use omnisaga_notification::app::App;
use omnisaga_runtime::{
    config::{CommonConfig, Urgency},
    shutdown, telemetry,
};

#[tokio::main]
async fn main() -> Result<()> {
    let telemetry = telemetry::init("notification");
    let config = CommonConfig::from_env_for("notification", 8083, Urgency::Follower)?;
    let app = App::build(config).await?;
    let result = app.run_until_stopped(shutdown::on_signal()).await;
    telemetry.shutdown();
    result
}
