use anyhow::Result;
use omnisaga_runtime::{shutdown, telemetry};
use omnisaga_warehouse::{app::App, config::Config};

#[tokio::main]
async fn main() -> Result<()> {
    let telemetry = telemetry::init("warehouse");
    let config = Config::from_env()?;
    let app = App::build(config).await?;
    let result = app.run_until_stopped(shutdown::on_signal()).await;
    telemetry.shutdown();
    result
}
