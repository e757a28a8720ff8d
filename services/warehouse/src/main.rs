use anyhow::Result;
use omnisaga_runtime::{shutdown, telemetry};
use omnisaga_warehouse::{app::App, config::Config};

#[tokio::main]
async fn main() -> Result<()> {
    // First: `--help` and a wrong setting stop here, before anything starts.
    let config = Config::load();
    let telemetry = telemetry::init("warehouse");
    let app = App::build(config).await?;
    let result = app.run_until_stopped(shutdown::on_signal()).await;
    telemetry.shutdown();
    result
}
