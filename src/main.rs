use clap::Parser;
use claude_graphql::{
    app::{shutdown_signal, App},
    config::{Cli, Command},
    graphql, telemetry,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Schema) = cli.command {
        print!("{}", graphql::sdl());
        return Ok(());
    }
    telemetry::init(cli.config.log_format);
    let app = App::build(cli.config).await?;
    app.run_until_stopped(shutdown_signal()).await?;
    Ok(())
}
