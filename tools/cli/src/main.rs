//! `omnisaga`: operator commands against a running stack. The events on the
//! topics decoded (`events tail`), the topic catalog with consumer lag
//! (`topics`), one order as every service sees it (`order timeline`),
//! dead letters (`dlq`), the chat messages notification gave up
//! (`messages`), tokens of the local key (`token mint`), and the broker's
//! topics, users and ACLs (`kafka provision`), catalog entries and stock
//! imported from files (`catalog import`, `stock import`), and the saga's
//! invariants checked on the live stack (`reconcile`), every customer's
//! orders found by status, age and more (`orders find`), and what one
//! order waits for and on whom (`order why`), and what analysts and a CRM
//! read from analytics (`summary`, `export orders`, `customer payments`).
//! `cli` holds the command line;
//! each command has its module; `settings` says where the stack is.

mod analytics;
mod cli;
mod decode;
mod dlq;
mod events;
mod find;
mod http;
mod import;
mod kafka;
mod messages;
mod output;
mod provision;
mod rebuild;
mod reconcile;
mod redrive;
mod settings;
mod since;
mod timeline;
mod token;
mod topics;
mod why;

use std::process::ExitCode;

use clap::Parser;

use crate::{
    cli::{
        CatalogCommand, Cli, Command, EventsCommand, KafkaCommand, OrderCommand, OrdersCommand, StockCommand,
        TokenCommand,
    },
    settings::Settings,
};

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(&cli.global);
    let json = cli.global.json;
    match &cli.command {
        // The one command whose exit code says what it found.
        Command::Reconcile(args) => return reconcile::run(args, &settings, json).await,
        Command::Rebuild(args) => return rebuild::run(args, &settings, json).await,
        Command::Events(EventsCommand::Tail(args)) => events::tail(args, &settings, json).await,
        Command::Topics => topics::run(&settings, json).await,
        Command::Order(OrderCommand::Timeline(args)) | Command::Timeline(args) => {
            timeline::run(&args.id, &settings, json).await
        }
        Command::Order(OrderCommand::Why(args)) => why::run(&args.id, &settings, json).await,
        Command::Orders(OrdersCommand::Find(args)) => find::run(args, &settings, json).await,
        Command::Dlq(command) => dlq::run(command, &settings, json).await,
        Command::Messages(command) => messages::run(command, &settings, json).await,
        Command::Token(TokenCommand::Mint(args)) => token::mint(args),
        Command::Token(TokenCommand::Keygen(args)) => token::keygen(args),
        Command::Kafka(KafkaCommand::Provision(args)) => provision::run(args, &settings, json).await,
        Command::Catalog(CatalogCommand::Import(args)) => {
            import::run(import::Kind::Catalog, args, &settings, json).await
        }
        Command::Stock(StockCommand::Import(args)) => {
            import::run(import::Kind::Stock, args, &settings, json).await
        }
        Command::Summary(args) => analytics::summary(args, &settings, json).await,
        Command::Export(analytics::args::ExportCommand::Orders(args)) => {
            analytics::export(args, &settings).await
        }
        Command::Customer(analytics::args::CustomerCommand::Payments(args)) => {
            analytics::payments(args, &settings, json).await
        }
    }
    .map(|()| ExitCode::SUCCESS)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("omnisaga: {e:#}");
            ExitCode::FAILURE
        }
    }
}
