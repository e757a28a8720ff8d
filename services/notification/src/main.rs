use anyhow::Result;
use omnisaga_notification::{app::App, config::Config};
use omnisaga_runtime::{shutdown, telemetry};

#[tokio::main]
async fn main() -> Result<()> {
    // First: `--help` and a wrong setting stop here, before anything starts.
    let config = Config::load();
    let telemetry = telemetry::init("notification");
    let app = App::build(config).await?;
    let result = app.run_until_stopped(shutdown::on_signal()).await;
    telemetry.shutdown();
    result
}
