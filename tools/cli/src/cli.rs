//! The command line as clap types: every command, its flags and its help.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Operator commands against a running omnisaga stack.
///
/// Service URLs, the broker and the topic prefix come from the flags, else
/// the environment (`ORDER_URL`, ..., `KAFKA_BROKERS`, `KAFKA_TOPIC_PREFIX`,
/// `KAFKA_GROUP_SUFFIX`, `TRACES_URL`), else `.omnisaga/env` (written by
/// `make run`), else the local defaults. `https://` services' certificates
/// are checked against the system's CAs and those of `TLS_CA_FILE` (PEM).
#[derive(Debug, Parser)]
#[command(name = "omnisaga", version, about, long_about)]
#[command(after_help = "Examples:
  omnisaga events tail orders --from-beginning --order 0193c0de-...
  omnisaga topics
  omnisaga order timeline 0193c0de-... --json
  omnisaga orders find --status PLACED --older-than 10m --channel pos
  omnisaga orders find --stuck --json
  omnisaga order why 0193c0de-...
  omnisaga dlq list payment
  omnisaga dlq redrive all --type OrderPlaced --since 1h --dry-run
  omnisaga messages dead
  omnisaga reconcile --since 1h --until 5m
  omnisaga summary --from 1d
  omnisaga export orders --from 2026-12-01T00:00:00Z --to 2026-12-02T00:00:00Z > orders.csv
  omnisaga customer payments customer-1")]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Print data as JSON (one document, or JSON lines for `events tail`) and no progress.
    #[arg(long, global = true)]
    pub json: bool,
    /// Kafka bootstrap servers [env: KAFKA_BROKERS; default 127.0.0.1:9092].
    #[arg(long, global = true, value_name = "HOST:PORT,...")]
    pub brokers: Option<String>,
    /// Prefix of every topic and consumer group [env: KAFKA_TOPIC_PREFIX; default "omnisaga."].
    #[arg(long, global = true, value_name = "PREFIX")]
    pub topic_prefix: Option<String>,
    /// Bearer token sent to the services [env: OMNISAGA_TOKEN, else ADMIN_TOKEN as in .omnisaga/env].
    #[arg(long, global = true, value_name = "JWT")]
    pub token: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read records off the topics, decoded from protobuf to JSON lines.
    #[command(subcommand)]
    Events(EventsCommand),
    /// The topic catalog, with each consumer group's lag per topic.
    #[command(after_help = "Examples:
  omnisaga topics
  omnisaga topics --json | jq '.topics[].consumers'")]
    Topics,
    /// One order as every service sees it, and what it waits for.
    #[command(subcommand)]
    Order(OrderCommand),
    /// Every customer's orders, as operators find them.
    #[command(subcommand)]
    Orders(OrdersCommand),
    /// Same as `order timeline`.
    #[command(after_help = "Example:
  omnisaga timeline 0193c0de-7c4e-7d2a-9f10-2b3c4d5e6f70")]
    Timeline(TimelineArgs),
    /// Dead letters a service kept: list, show, replay, discard, skip, redrive.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Chat messages the notification service gave up (dead): list, retry.
    #[command(subcommand)]
    Messages(MessagesCommand),
    /// Bearer tokens of the local signing key (`make run`'s).
    #[command(subcommand)]
    Token(TokenCommand),
    /// The broker as its admin: topics, users and ACLs.
    #[command(subcommand)]
    Kafka(KafkaCommand),
    /// The order service's catalog: import entries from a file.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// The warehouse's stock: import goods received from a file.
    #[command(subcommand)]
    Stock(StockCommand),
    /// Check the saga's invariants on the live stack over a window of time.
    ///
    /// Every service that owns data checks its part in one read-only
    /// snapshot (POST /v1/admin/reconcile, `reconcile:read`): every outbox row
    /// published, no order stuck past its deadline, the provider's ledger
    /// against the payment streams, every order shipped in the window paid
    /// and its customer told, stock conserved. Prints each counterexample
    /// with its order; exits 2 when there is one, 1 when it cannot check.
    /// The window ends before now (--until) so that sagas still in flight
    /// are not taken for counterexamples.
    #[command(after_help = "Examples:
  omnisaga reconcile
  omnisaga reconcile --since 2h --until 10m --json
  omnisaga reconcile --since 20m --until 5m --push http://pushgateway:9091")]
    Reconcile(ReconcileArgs),
    /// Stage counts, payment success and fulfilment time of the orders
    /// placed in a window, overall and per channel (GET /v1/summary,
    /// `analytics:read`).
    ///
    /// Without --from and --to, of every order.
    #[command(after_help = "Examples:
  omnisaga summary --from 1d
  omnisaga summary --from 2026-12-01T00:00:00Z --to 2026-12-08T00:00:00Z --json")]
    Summary(crate::analytics::args::SummaryArgs),
    /// The analytics service's order facts as CSV.
    #[command(subcommand)]
    Export(crate::analytics::args::ExportCommand),
    /// One customer's payments, for a CRM.
    #[command(subcommand)]
    Customer(crate::analytics::args::CustomerCommand),
    /// Make a service's read models again from its own events, online.
    ///
    /// Each projection the service keeps (the order view, the payment
    /// view, stock levels and the pick backlog, the sent messages, the
    /// analytics star schema) is folded anew from the service's event
    /// store into copies while the service runs, then merged into the live
    /// tables in one short transaction (appenders wait for it; readers do
    /// not). With --verify, only compared: prints what differs and exits 2
    /// when anything does. POST /v1/admin/rebuilds (`admin`).
    #[command(after_help = "Examples:
  omnisaga rebuild order --verify
  omnisaga rebuild warehouse --projection stock
  omnisaga rebuild all --verify --json")]
    Rebuild(RebuildArgs),
}

/// `rebuild`'s service and what to rebuild.
#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// The service whose read models are rebuilt, or `all` for every one.
    pub service: ServiceOrAll,
    /// Compare what the events give with the live tables and change
    /// nothing; exits 2 when they differ.
    #[arg(long)]
    pub verify: bool,
    /// Only this projection (repeatable), e.g. order_view, stock.
    #[arg(long = "projection", value_name = "NAME")]
    pub projections: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// The window's start: RFC 3339 or an age (90s, 10m, 2h, 1d).
    #[arg(long, value_name = "TIME", default_value = "1h", value_parser = crate::since::parse)]
    pub since: chrono::DateTime<chrono::Utc>,
    /// The window's end: RFC 3339 or an age; the settle margin, so keep it
    /// longer than a saga takes.
    #[arg(long, value_name = "TIME", default_value = "5m", value_parser = crate::since::parse)]
    pub until: chrono::DateTime<chrono::Utc>,
    /// Send the counts to the Prometheus Pushgateway at URL
    /// (omnisaga_reconcile_counterexamples{invariant,service}), replacing
    /// the last run's.
    #[arg(long, value_name = "URL")]
    pub push: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Add or change catalog entries: a row per SKU with sku, name,
    /// unit_price_minor and currency (POST /v1/catalog/batch, `admin`).
    ///
    /// FILE is CSV with a header line, JSON lines, or a JSON array of
    /// objects (the seed catalog, infra/seed/catalog.json). Each batch is
    /// applied whole or not at all; a refused one is printed with each
    /// problem's line, field and what is wrong. The same file sent again
    /// applies nothing twice.
    #[command(after_help = "Examples:
  omnisaga catalog import infra/seed/catalog.json
  omnisaga catalog import spring.csv --batch-id spring-2027")]
    Import(ImportArgs),
}

#[derive(Debug, Subcommand)]
pub enum StockCommand {
    /// Add goods received: a row per SKU with sku and quantity, added to
    /// what is on hand (POST /v1/stock/batch, `stock:import`).
    ///
    /// FILE is CSV with a header line, JSON lines, or a JSON array of
    /// objects (the seed catalog: its `stock` is the quantity). Each batch
    /// is applied whole or not at all. The same file sent again adds
    /// nothing: a second delivery with the same rows needs its own
    /// --batch-id.
    #[command(after_help = "Examples:
  omnisaga stock import infra/seed/catalog.json
  omnisaga stock import delivery-0412.csv --batch-id delivery-0412")]
    Import(ImportArgs),
}

/// How a file to import is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImportFormat {
    /// CSV with a header line naming the fields.
    Csv,
    /// JSON lines: an object per line.
    Jsonl,
    /// A JSON array of objects (the seed catalog's form).
    Json,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Its format [default: from its extension: .csv, .jsonl or .ndjson, .json].
    #[arg(long)]
    pub format: Option<ImportFormat>,
    /// The batch id [default: the kind and the file's SHA-256]; a file of
    /// several batches numbers them after it.
    #[arg(long, value_name = "ID")]
    pub batch_id: Option<String>,
    /// Rows sent in one batch, 1 to 20000.
    #[arg(long, value_name = "N", default_value_t = 5000)]
    pub rows_per_batch: usize,
}

#[derive(Debug, Subcommand)]
pub enum KafkaCommand {
    /// Create the catalog's topics, a SCRAM user per service and for the
    /// analyst, and the ACLs that let each do its work and no more.
    ///
    /// Runs as the broker's admin (KAFKA_USERNAME and KAFKA_PASSWORD or
    /// KAFKA_PASSWORD_FILE). Users are `<prefix><service>` and
    /// `<prefix>analyst`; each one's password is DIR/<name>.password, made
    /// (owner-only) when missing and kept otherwise, so a second run changes
    /// nothing. Services log in with KAFKA_USERNAME=<prefix><service> and
    /// KAFKA_PASSWORD_FILE=DIR/<service>.password.
    #[command(after_help = "Example:
  KAFKA_USERNAME=admin KAFKA_PASSWORD_FILE=.omnisaga/broker/admin.password \\
    omnisaga kafka provision --credentials .omnisaga/kafka-users")]
    Provision(ProvisionArgs),
}

#[derive(Debug, clap::Args)]
pub struct ProvisionArgs {
    /// Where each user's password file is kept.
    #[arg(long, value_name = "DIR")]
    pub credentials: PathBuf,
    /// Partitions of a topic created here [default: the catalog's].
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=10_000))]
    pub partitions: Option<i32>,
    /// Replicas of each partition of a topic created here (min.insync.replicas
    /// one fewer, at least 1, at most 2) [default: the catalog's].
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=16))]
    pub replication_factor: Option<i32>,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Mint a token with the local key (.omnisaga/auth/signing-key.pem), printed on stdout.
    ///
    /// Services started by `make run` verify tokens against that key's JWKS.
    /// A customer's token: --scope orders:read --scope orders:write; an
    /// operator's: --scope admin; an analyst's: --scope analytics:read.
    #[command(after_help = "Examples:
  omnisaga token mint --sub customer-7 --scope orders:read --scope orders:write
  curl -H \"Authorization: Bearer $(omnisaga token mint --sub ops --scope admin)\" $PAYMENT_ADMIN_URL/v1/admin/provider")]
    Mint(MintArgs),
    /// Create a local signing key and its JWKS in a directory (kept if there is one).
    ///
    /// For a deployment without an identity provider (docker compose): the
    /// services verify against DIR/jwks.json; `token mint --key-dir DIR` signs.
    #[command(after_help = "Example:
  omnisaga token keygen --dir ./auth")]
    Keygen(KeygenArgs),
}

#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Where to keep signing-key.pem (owner-only) and jwks.json.
    #[arg(long, value_name = "DIR")]
    pub dir: std::path::PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct MintArgs {
    /// The subject: for a customer, the customer id.
    #[arg(long)]
    pub sub: String,
    /// A scope to grant (repeat for more): orders:read, orders:write, analytics:read, stock:read, admin, reconcile:read, stock:import.
    #[arg(long = "scope", required = true, value_parser = parse_scope)]
    pub scopes: Vec<omnisaga_auth::Scope>,
    /// How long it is valid, in seconds.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub ttl: u64,
    /// Where the local key is.
    #[arg(long, default_value = ".omnisaga/auth", value_name = "DIR")]
    pub key_dir: std::path::PathBuf,
}

fn parse_scope(s: &str) -> Result<omnisaga_auth::Scope, String> {
    s.parse()
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Print the records of one or more topics as JSON lines.
    ///
    /// Partitions are assigned directly (no consumer group, nothing
    /// committed). Without --follow it stops at the end each partition had
    /// when it started; by default it starts at that end, so only --follow
    /// shows anything then. Records that do not decode are printed with an
    /// "error" field and their raw bytes.
    #[command(after_help = "Examples:
  omnisaga events tail orders --from-beginning --order 0193c0de-7c4e-7d2a-9f10-2b3c4d5e6f70
  omnisaga events tail orders payments warehouse --since 10m --type PaymentFailed
  omnisaga events tail omnisaga.orders.v1.dlq --from-beginning --limit 5
  omnisaga events tail orders --follow --schemas new/omnisaga_v1.binpb")]
    Tail(TailArgs),
}

#[derive(Debug, Args)]
pub struct TailArgs {
    /// Topics: a catalog name (`orders`, `orders.v1`, `orders.dlq`) or a full name.
    #[arg(required = true, value_name = "TOPIC")]
    pub topics: Vec<String>,
    /// Start at each partition's first record.
    #[arg(long, conflicts_with = "since")]
    pub from_beginning: bool,
    /// Start at the first record at or after TIME: RFC 3339 or an age such as 90s, 10m, 2h, 1d.
    #[arg(long, value_name = "TIME", value_parser = crate::since::parse)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only records of this order (the envelope's order_id; the key if it does not decode).
    #[arg(long, value_name = "ID")]
    pub order: Option<String>,
    /// Only records of this event type, e.g. OrderPlaced.
    #[arg(long = "type", value_name = "EventType")]
    pub event_type: Option<String>,
    /// Keep reading new records until Ctrl-C.
    #[arg(long)]
    pub follow: bool,
    /// A protobuf FileDescriptorSet to decode with instead of the built-in schemas/omnisaga_v1.binpb.
    #[arg(long, value_name = "FILE")]
    pub schemas: Option<PathBuf>,
    /// Stop after printing N records.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum OrderCommand {
    /// Status, events, payment, fulfilment, messages, stage times and trace of one order.
    #[command(after_help = "Example:
  omnisaga order timeline 0193c0de-7c4e-7d2a-9f10-2b3c4d5e6f70 --json")]
    Timeline(TimelineArgs),
    /// What the order waits for and on whom, from the services' own APIs.
    ///
    /// The next event expected and the service that owes it, whether a
    /// consumer on the way is parked behind a dead letter of this order
    /// (which one), the lag of the order's partition, the next deadline and
    /// what happens at it, and the trace link. Needs an operator's token
    /// (`admin`).
    #[command(after_help = "Examples:
  omnisaga order why 0193c0de-7c4e-7d2a-9f10-2b3c4d5e6f70
  omnisaga order why 0193c0de-7c4e-7d2a-9f10-2b3c4d5e6f70 --json")]
    Why(TimelineArgs),
}

#[derive(Debug, Subcommand)]
pub enum OrdersCommand {
    /// Find orders of every customer by status, customer, channel, age and
    /// whether they are stuck, newest first (GET /v1/admin/orders, `admin`).
    ///
    /// "Stuck" is what the SagaStuck and SagasStuckPastDeadline alerts
    /// count: awaiting payment past its deadline, or PLACED, PAID or
    /// READY_FOR_SHIPMENT unchanged for longer than ORDER_STUCK_AFTER_MS.
    /// "Escalated" is what the SagaEscalated alert counts: waiting in
    /// PLACED, PAID or READY_FOR_SHIPMENT past that stage's deadline.
    #[command(after_help = "Examples:
  omnisaga orders find --status PLACED --older-than 10m --channel pos
  omnisaga orders find --stuck
  omnisaga orders find --escalated --status PAID
  omnisaga orders find --customer customer-1 --since 1d --limit 200 --json")]
    Find(FindArgs),
}

#[derive(Debug, Args)]
pub struct FindArgs {
    /// Only orders in this status.
    #[arg(long, value_parser = ["PLACED", "AWAITING_PAYMENT", "PAID", "READY_FOR_SHIPMENT", "SHIPPED", "CANCELLED"])]
    pub status: Option<String>,
    /// Only this customer's orders.
    #[arg(long, value_name = "ID")]
    pub customer: Option<String>,
    /// Only orders placed through this channel.
    #[arg(long, value_parser = ["mobile", "web", "pos", "marketplace"])]
    pub channel: Option<String>,
    /// Only orders placed before TIME: an age (90s, 10m, 2h, 1d) or RFC 3339.
    #[arg(long, value_name = "TIME", value_parser = crate::since::parse)]
    pub older_than: Option<chrono::DateTime<chrono::Utc>>,
    /// Only orders placed at or after TIME: an age or RFC 3339.
    #[arg(long, value_name = "TIME", value_parser = crate::since::parse)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only orders past their stage's limit, as the stuck-saga alerts count them.
    #[arg(long)]
    pub stuck: bool,
    /// Only orders escalated at their stage's deadline and still waiting there (alert SagaEscalated).
    #[arg(long)]
    pub escalated: bool,
    /// Most orders printed (pages of up to 100 are fetched until then).
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub limit: u32,
}

#[derive(Debug, Args)]
pub struct TimelineArgs {
    /// The order id (UUID).
    #[arg(value_name = "ORDER_ID")]
    pub id: String,
}

/// The services that keep dead letters.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Service {
    Order,
    Payment,
    Warehouse,
    Notification,
    Analytics,
}

impl Service {
    /// Its name, as in `ORDER_URL` and the catalog.
    pub fn name(self) -> &'static str {
        match self {
            Service::Order => "order",
            Service::Payment => "payment",
            Service::Warehouse => "warehouse",
            Service::Notification => "notification",
            Service::Analytics => "analytics",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Dead letters a service keeps, and its parked keys.
    #[command(after_help = "Examples:
  omnisaga dlq list payment
  omnisaga dlq list payment --key 0193c0de-7c4e-7d2a-9f10-2b3c4d5e6f70 --json")]
    List {
        service: Service,
        /// Only the dead letters of this key (order id).
        #[arg(long)]
        key: Option<String>,
    },
    /// One dead letter with its headers and decoded payload (JSON).
    #[command(after_help = "Example:
  omnisaga dlq show payment 12")]
    Show { service: Service, id: i64 },
    /// Apply a parked key's dead letters in order, then unpark it (prints the report as JSON).
    #[command(after_help = "Example:
  omnisaga dlq replay payment 0193c0de-7c4e-7d2a-9f10-2b3c4d5e6f70")]
    Replay { service: Service, key: String },
    /// Set a dead letter aside for good, with the reason (kept and audited),
    /// then replay its key's later dead letters so the order goes on (prints
    /// the report as JSON).
    #[command(after_help = "Example:
  omnisaga dlq discard order 12 --reason \"a corrupt record, the event it stands for was applied by hand\"")]
    Discard {
        service: Service,
        id: i64,
        /// Why it is never to be applied.
        #[arg(long)]
        reason: String,
    },
    /// Pass a dead letter's event over as if applied, with the reason: its
    /// event id goes into the consumer's inbox, so a copy of it that comes
    /// again is dropped too (a discard marks nothing); the record is kept and
    /// audited, then its key's later dead letters are replayed so the order
    /// goes on (prints the report as JSON). A record that does not decode
    /// cannot be skipped: discard it.
    #[command(after_help = "Example:
  omnisaga dlq skip notification 7 --reason \"a bogus PaymentAuthorized of a test producer; the order goes on without it\"")]
    Skip {
        service: Service,
        id: i64,
        /// Why its event is passed over.
        #[arg(long)]
        reason: String,
    },
    /// Replay, after a fix, every parked key whose first dead letter matches
    /// the filters, at one service or all: each key whole and oldest first,
    /// so every order's records keep their order. A matching record behind a
    /// first one the filters leave out is held, not replayed, and listed.
    #[command(after_help = "Examples:
  omnisaga dlq redrive payment --topic orders.v1 --type OrderPlaced --since 2h --dry-run
  omnisaga dlq redrive payment --topic orders.v1 --type OrderPlaced --since 2h
  omnisaga dlq redrive all --since 2026-12-07T10:00:00Z --until 2026-12-07T10:30:00Z --json")]
    Redrive(RedriveArgs),
}

/// `dlq redrive`'s filters.
#[derive(Debug, Args)]
pub struct RedriveArgs {
    /// The service whose dead letters are replayed, or `all` for every one.
    pub service: ServiceOrAll,
    /// Only keys whose first dead letter came from this topic: `orders.v1` or its full name.
    #[arg(long)]
    pub topic: Option<String>,
    /// Only keys whose first dead letter is of this event type, e.g. OrderPlaced.
    #[arg(long = "type", value_name = "EventType")]
    pub event_type: Option<String>,
    /// Only keys whose first dead letter was kept at or after TIME: RFC 3339 or an age such as 90s, 10m, 2h, 1d.
    #[arg(long, value_name = "TIME", value_parser = crate::since::parse)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only keys whose first dead letter was kept before TIME (RFC 3339 or an age).
    #[arg(long, value_name = "TIME", value_parser = crate::since::parse)]
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// List what would be replayed, and replay nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// A service that keeps dead letters, or all of them.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ServiceOrAll {
    All,
    Order,
    Payment,
    Warehouse,
    Notification,
    Analytics,
}

impl ServiceOrAll {
    /// The services it names.
    pub fn services(self) -> Vec<Service> {
        match self {
            Self::All => vec![
                Service::Order,
                Service::Payment,
                Service::Warehouse,
                Service::Notification,
                Service::Analytics,
            ],
            Self::Order => vec![Service::Order],
            Self::Payment => vec![Service::Payment],
            Self::Warehouse => vec![Service::Warehouse],
            Self::Notification => vec![Service::Notification],
            Self::Analytics => vec![Service::Analytics],
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum MessagesCommand {
    /// Messages the chat channel refused NOTIFICATION_MAX_ATTEMPTS times, with the last refusal.
    #[command(after_help = "Examples:
  omnisaga messages dead
  omnisaga messages dead --limit 500 --json")]
    Dead {
        /// Most messages listed, 1 to 500 [default: 100].
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Queue a dead message again as new (no attempts, sent at once); prints it as JSON.
    #[command(after_help = "Example:
  omnisaga messages retry 0193c0de-7c4e-7d2a-9f10-2b3c4d5e6f70")]
    Retry {
        /// The message's notification_id.
        id: String,
    },
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("omnisaga").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn tail_takes_several_topics_and_its_filters() {
        let cli = parse(&[
            "events",
            "tail",
            "orders",
            "payments",
            "--order",
            "o-1",
            "--type",
            "OrderPlaced",
            "--json",
        ])
        .unwrap();
        let Command::Events(EventsCommand::Tail(tail)) = cli.command else {
            panic!("not tail: {:?}", cli.command)
        };
        assert_eq!(tail.topics, ["orders", "payments"]);
        assert_eq!(tail.order.as_deref(), Some("o-1"));
        assert_eq!(tail.event_type.as_deref(), Some("OrderPlaced"));
        assert!(cli.global.json);
    }

    #[test]
    fn from_beginning_and_since_exclude_each_other() {
        assert!(parse(&["events", "tail", "orders", "--from-beginning", "--since", "5m"]).is_err());
    }

    #[test]
    fn orders_find_takes_its_filters_and_ages() {
        let cli = parse(&[
            "orders",
            "find",
            "--status",
            "PLACED",
            "--older-than",
            "10m",
            "--channel",
            "pos",
            "--stuck",
            "--escalated",
        ])
        .unwrap();
        let Command::Orders(OrdersCommand::Find(find)) = cli.command else {
            panic!("not find: {:?}", cli.command)
        };
        assert_eq!(find.status.as_deref(), Some("PLACED"));
        assert_eq!(find.channel.as_deref(), Some("pos"));
        assert!(find.stuck && find.escalated && find.older_than.is_some() && find.since.is_none());
        assert_eq!(find.limit, 50);
        assert!(parse(&["orders", "find", "--status", "STUCK"]).is_err());
        assert!(parse(&["orders", "find", "--older-than", "yesterday"]).is_err());
        let cli = parse(&["order", "why", "abc"]).unwrap();
        assert!(
            matches!(cli.command, Command::Order(OrderCommand::Why(TimelineArgs { ref id })) if id == "abc")
        );
    }

    #[test]
    fn timeline_is_also_a_top_level_command() {
        let cli = parse(&["timeline", "abc"]).unwrap();
        assert!(matches!(cli.command, Command::Timeline(TimelineArgs { ref id }) if id == "abc"));
        let cli = parse(&["order", "timeline", "abc"]).unwrap();
        assert!(matches!(cli.command, Command::Order(OrderCommand::Timeline(_))));
    }

    #[test]
    fn dead_messages_are_listed_and_retried_by_id() {
        let cli = parse(&["messages", "dead", "--limit", "5"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Messages(MessagesCommand::Dead { limit: Some(5) })
        ));
        let cli = parse(&["messages", "retry", "abc"]).unwrap();
        assert!(matches!(cli.command, Command::Messages(MessagesCommand::Retry { ref id }) if id == "abc"));
        assert!(parse(&["messages", "retry"]).is_err());
    }

    #[test]
    fn a_redrive_takes_a_service_or_all_with_its_filters_and_a_skip_needs_a_reason() {
        let cli = parse(&[
            "dlq",
            "redrive",
            "all",
            "--topic",
            "orders.v1",
            "--type",
            "OrderPlaced",
            "--since",
            "1h",
            "--dry-run",
        ])
        .unwrap();
        match cli.command {
            Command::Dlq(DlqCommand::Redrive(args)) => {
                assert_eq!(args.service.services().len(), 5);
                assert_eq!(args.event_type.as_deref(), Some("OrderPlaced"));
                assert!(args.dry_run && args.since.is_some() && args.until.is_none());
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(&["dlq", "redrive", "payment", "--since", "yesterday"]).is_err());
        assert!(parse(&["dlq", "skip", "order", "3"]).is_err(), "no reason");
        assert!(parse(&["dlq", "skip", "order", "3", "--reason", "bogus"]).is_ok());
    }

    #[test]
    fn the_analytics_verbs_take_a_window_and_a_customer() {
        let cli = parse(&["summary", "--from", "1d", "--to", "2026-12-01T00:00:00Z"]).unwrap();
        assert!(matches!(cli.command, Command::Summary(ref s) if s.from.is_some() && s.to.is_some()));
        assert!(parse(&["summary", "--from", "yesterday"]).is_err());
        let cli = parse(&["export", "orders", "--from", "2h", "--output", "o.csv"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Export(crate::analytics::args::ExportCommand::Orders(ref e)) if e.to.is_none() && e.output.is_some()
        ));
        assert!(parse(&["export", "orders"]).is_err(), "--from is required");
        let cli = parse(&["customer", "payments", "c-1", "--limit", "500"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Customer(crate::analytics::args::CustomerCommand::Payments(ref p)) if p.id == "c-1" && p.limit == 500
        ));
    }

    #[test]
    fn an_unknown_service_is_refused() {
        let e = parse(&["dlq", "list", "billing"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::InvalidValue);
    }
}
