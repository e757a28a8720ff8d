use anyhow::Result;
use omnisaga_notification::{app::App, config::Config};
use omnisaga_runtime::{shutdown, telemetry};

#[tokio::main]
async fn main() -> Result<()> {
    let telemetry = telemetry::init("notification");
    let config = Config::from_env()?;
    let app = App::build(config).await?;
    let result = app.run_until_stopped(shutdown::on_signal()).await;
    telemetry.shutdown();
    result
}
