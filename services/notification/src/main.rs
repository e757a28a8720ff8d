use anyhow::Result;
use omnisaga_notification::app::App;
use omnisaga_runtime::{
    config::{CommonConfig, Fetch},
    shutdown, telemetry,
};

#[tokio::main]
async fn main() -> Result<()> {
    let telemetry = telemetry::init("notification");
    let config = CommonConfig::from_env_with("notification", 8083, Fetch::Batched)?;
    let app = App::build(config).await?;
    let result = app.run_until_stopped(shutdown::on_signal()).await;
    telemetry.shutdown();
    result
}
