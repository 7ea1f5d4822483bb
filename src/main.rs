use clap::Parser;
use claude_graphql::{
    app::{shutdown_signal, App},
    claude::sandbox,
    config::{Cli, Command},
    graphql, telemetry,
};

fn main() -> anyhow::Result<()> {
    let mut cli = Cli::parse();
    if let Some(Command::Token { signing, .. }) = &mut cli.command {
        std::mem::take(signing).apply(&mut cli.config);
    }
    cli.config.load_secret_files()?;
    // Read once, into the config: from here on the secrets are nowhere in
    // the environment (where a child could find them).
    sandbox::scrub_environment();
    match cli.command {
        Some(Command::Schema) => {
            print!("{}", graphql::sdl());
            Ok(())
        }
        Some(Command::Token { sub, ttl, .. }) => {
            println!("{}", claude_graphql::http::auth::mint(&cli.config, &sub, ttl).map_err(anyhow::Error::msg)?);
            Ok(())
        }
        None => tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(async {
            telemetry::init(cli.config.log_format);
            let app = App::build(cli.config).await?;
            app.run_until_stopped(shutdown_signal()).await?;
            Ok(())
        }),
    }
}
