use clap::Parser;
use claude_graphql::{
    app::{shutdown_signal, App},
    config::{Cli, Command},
    graphql, telemetry,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Schema) => {
            print!("{}", graphql::sdl());
            return Ok(());
        }
        Some(Command::Token { sub, ttl }) => {
            println!("{}", claude_graphql::http::auth::mint(&cli.config, &sub, ttl).map_err(anyhow::Error::msg)?);
            return Ok(());
        }
        None => {}
    }
    telemetry::init(cli.config.log_format);
    let app = App::build(cli.config).await?;
    app.run_until_stopped(shutdown_signal()).await?;
    Ok(())
}
