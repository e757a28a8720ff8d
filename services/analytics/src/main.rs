use anyhow::Result;
use omnisaga_analytics::app::App;
use omnisaga_runtime::{
    config::{CommonConfig, Fetch},
    shutdown, telemetry,
};

#[tokio::main]
async fn main() -> Result<()> {
    let telemetry = telemetry::init("analytics");
    let config = CommonConfig::from_env_with("analytics", 8084, Fetch::Batched)?;
    let app = App::build(config).await?;
    let result = app.run_until_stopped(shutdown::on_signal()).await;
    telemetry.shutdown();
    result
}
