//! The settings every service has, as one `#[command(flatten)]` struct:
//! each an environment variable (and a flag), with its default and meaning,
//! turned into [`crate::boot::config::CommonConfig`] by `CommonArgs::into_config`
//! (`convert.rs`).

use std::net::SocketAddr;

use clap::Args;

use crate::catalog::catalog;

#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Print the effective configuration (environment and defaults; secrets redacted) and exit.
    #[arg(long)]
    pub print_config: bool,

    /// The service's own PostgreSQL database, as the role it runs as; its password may instead come from `PGPASSWORD` (the PostgreSQL client's own variable, taken when the URL names none), as infra/k8s does, or from the password file (`~/.pgpass`, `PGPASSFILE`), as `make run` does.
    #[arg(long, env = "DATABASE_URL", value_name = "URL", help_heading = "Database")]
    pub database_url: String,
    /// The same database as its owner: the service migrates over it at start, grants `DATABASE_URL`'s role the rows of the tables (docs/security.md, Database roles) and closes it. Unset: migrations run over `DATABASE_URL`.
    #[arg(
        long,
        env = "DATABASE_MIGRATION_URL",
        value_name = "URL",
        help_heading = "Database"
    )]
    pub database_migration_url: Option<String>,
    /// Pool size.
    #[arg(
        long,
        env = "DATABASE_MAX_CONNECTIONS",
        value_name = "N",
        default_value_t = 10,
        help_heading = "Database"
    )]
    pub database_max_connections: u32,
    /// PostgreSQL's `statement_timeout` on every connection of the pool: a statement running longer is cancelled and retried as any failure (0: none; migrations run without it).
    #[arg(
        long,
        env = "DATABASE_STATEMENT_TIMEOUT_MS",
        value_name = "MS",
        default_value_t = 30_000,
        help_heading = "Database"
    )]
    pub database_statement_timeout_ms: u64,
    /// PostgreSQL's `idle_in_transaction_session_timeout` on every connection: a transaction left idle longer (its holder hung or paused) ends with its session, so the rows it locked are free again (0: none). No service waits on anything outside the database inside a transaction.
    #[arg(
        long,
        env = "DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS",
        value_name = "MS",
        default_value_t = 30_000,
        help_heading = "Database"
    )]
    pub database_idle_in_transaction_timeout_ms: u64,

    /// Bootstrap servers.
    #[arg(
        long,
        env = "KAFKA_BROKERS",
        value_name = "HOST:PORT,...",
        default_value = "127.0.0.1:9092",
        help_heading = "Kafka"
    )]
    pub kafka_brokers: String,
    /// Prefix of every topic and consumer group.
    #[arg(
        long,
        env = "KAFKA_TOPIC_PREFIX",
        value_name = "PREFIX",
        default_value = "omnisaga.",
        help_heading = "Kafka"
    )]
    pub kafka_topic_prefix: String,
    /// The service's SASL user (`<prefix><service>`, made by `omnisaga kafka provision`); `make run` sets it. Unset: no user.
    #[arg(long, env = "KAFKA_USERNAME", value_name = "USER", help_heading = "Kafka")]
    pub kafka_username: Option<String>,
    /// The SASL user's password; `make run` sets it.
    #[arg(long, env = "KAFKA_PASSWORD", value_name = "PASSWORD", help_heading = "Kafka")]
    pub kafka_password: Option<String>,
    /// `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl` (librdkafka's TLS on OpenSSL). Unset: `sasl_plaintext` with a user, else `plaintext`.
    #[arg(
        long,
        env = "KAFKA_SECURITY_PROTOCOL",
        value_name = "PROTOCOL",
        help_heading = "Kafka"
    )]
    pub kafka_security_protocol: Option<String>,
    /// The SASL mechanism. Unset: `SCRAM-SHA-512`.
    #[arg(
        long,
        env = "KAFKA_SASL_MECHANISM",
        value_name = "MECHANISM",
        help_heading = "Kafka"
    )]
    pub kafka_sasl_mechanism: Option<String>,
    /// The CA (PEM) that signed the broker's certificate. Unset: the system's CAs.
    #[arg(long, env = "KAFKA_SSL_CA_FILE", value_name = "PATH", help_heading = "Kafka")]
    pub kafka_ssl_ca_file: Option<String>,
    /// Appended to consumer group ids (a new one re-reads every topic from the start; the inbox keeps it harmless). Unset: empty.
    #[arg(
        long,
        env = "KAFKA_GROUP_SUFFIX",
        value_name = "SUFFIX",
        help_heading = "Kafka"
    )]
    pub kafka_group_suffix: Option<String>,
    /// Bytes a consumer's fetch waits for before the broker answers it. Kafka answers as soon as it holds them, so with 1 each record of the saga's steps (order, payment, warehouse) travels alone and at once; the followers (notification, analytics: default 1000000), which nothing waits on, take what gathers in `KAFKA_FETCH_WAIT_MAX_MS` and apply it in one transaction.
    #[arg(
        long,
        env = "KAFKA_FETCH_MIN_BYTES",
        value_name = "BYTES",
        default_value_t = 1,
        help_heading = "Kafka"
    )]
    pub kafka_fetch_min_bytes: u32,
    /// Longest a fetch waits for `KAFKA_FETCH_MIN_BYTES`: for the saga's steps only the wait of an idle consumer, for the followers (notification, analytics: default 100) how much later a customer message or an analytics row may come.
    #[arg(
        long,
        env = "KAFKA_FETCH_WAIT_MAX_MS",
        value_name = "MS",
        default_value_t = 500,
        help_heading = "Kafka"
    )]
    pub kafka_fetch_wait_max_ms: u32,
    /// Partitions of a topic the service creates because it is missing (the catalog's, `schemas/topics.json`); existing topics keep theirs.
    #[arg(long, env = "KAFKA_TOPIC_PARTITIONS", value_name = "N", default_value_t = catalog().partitions(), help_heading = "Kafka")]
    pub kafka_topic_partitions: i32,
    /// Replicas of each partition of a topic the service creates (the catalog's: a development broker; `omnisaga kafka provision --replication-factor` likewise); `min.insync.replicas` is one fewer, at least 1 and at most 2, so on a three-broker cluster (set 3) an acknowledged write survives a lost broker and writes go on with one down.
    #[arg(long, env = "KAFKA_TOPIC_REPLICATION_FACTOR", value_name = "N", default_value_t = catalog().replication_factor(), help_heading = "Kafka")]
    pub kafka_topic_replication_factor: i32,
    /// Most already-fetched records applied in one transaction (1 turns batching off).
    #[arg(
        long,
        env = "CONSUMER_BATCH_MAX",
        value_name = "N",
        default_value_t = 64,
        help_heading = "Kafka"
    )]
    pub consumer_batch_max: usize,
    /// How long the inbox remembers an applied event; a record redelivered or replayed later than that would be applied again. Unset: the longest retention of the consumed topics and their dead-letter topics plus a day (696: 29 days).
    #[arg(
        long,
        env = "INBOX_RETENTION_HOURS",
        value_name = "HOURS",
        help_heading = "Kafka"
    )]
    pub inbox_retention_hours: Option<u64>,
    /// Relay poll interval when not woken (a commit wakes it at once; the poll catches a lost wake).
    #[arg(
        long,
        env = "OUTBOX_POLL_MS",
        value_name = "MS",
        default_value_t = 1000,
        help_heading = "Kafka"
    )]
    pub outbox_poll_ms: u64,

    /// The public listener: the customers' and analysts' routes, the documents, the probes, `/metrics`. Unset: 127.0.0.1 and the service's port, 8080 to 8084 (order, payment, warehouse, notification, analytics).
    #[arg(long, env = "HTTP_ADDR", value_name = "HOST:PORT", help_heading = "HTTP")]
    pub http_addr: Option<SocketAddr>,
    /// The admin listener: the operators' and services' routes (docs/security.md, Two listeners), and the probes. Unset: `HTTP_ADDR`'s host, its port + 100 (8180 to 8184).
    #[arg(
        long,
        env = "ADMIN_HTTP_ADDR",
        value_name = "HOST:PORT",
        help_heading = "HTTP"
    )]
    pub admin_http_addr: Option<SocketAddr>,
    /// Requests per second one client (a token's subject) may make over all instances of the service (the buckets are in its database, table `rate_limits`); over it: 429 `rate_limited` with `Retry-After` (operators' tokens and the services' own identities are not limited).
    #[arg(
        long,
        env = "HTTP_RATE_LIMIT_PER_SECOND",
        value_name = "RATE",
        default_value_t = 50.0,
        help_heading = "HTTP"
    )]
    pub http_rate_limit_per_second: f64,
    /// Requests one client may make at once after idling (at least 1).
    #[arg(
        long,
        env = "HTTP_RATE_LIMIT_BURST",
        value_name = "N",
        default_value_t = 100.0,
        help_heading = "HTTP"
    )]
    pub http_rate_limit_burst: f64,
    /// Requests one instance serves at once; more get 503 `overloaded` at once.
    #[arg(
        long,
        env = "HTTP_MAX_CONCURRENT_REQUESTS",
        value_name = "N",
        default_value_t = 512,
        help_heading = "HTTP"
    )]
    pub http_max_concurrent_requests: usize,
    /// A request's deadline: 503 `timeout` past it (reading the body included).
    #[arg(
        long,
        env = "HTTP_REQUEST_TIMEOUT_MS",
        value_name = "MS",
        default_value_t = 10_000,
        help_heading = "HTTP"
    )]
    pub http_request_timeout_ms: u64,
    /// Longest from a connection's opening, or its previous answer, to the end of the next request's headers; past it the connection is closed (a slow client, an idle keep-alive connection).
    #[arg(
        long,
        env = "HTTP_HEADER_READ_TIMEOUT_MS",
        value_name = "MS",
        default_value_t = 10_000,
        help_heading = "HTTP"
    )]
    pub http_header_read_timeout_ms: u64,
    /// Connections one instance keeps open at once; beyond it new ones wait in the listen backlog until one closes.
    #[arg(
        long,
        env = "HTTP_MAX_CONNECTIONS",
        value_name = "N",
        default_value_t = 1024,
        help_heading = "HTTP"
    )]
    pub http_max_connections: usize,
    /// A keep-alive connection older than this is closed once its request in flight is answered.
    #[arg(
        long,
        env = "HTTP_CONNECTION_MAX_AGE_SECS",
        value_name = "SECONDS",
        default_value_t = 300,
        help_heading = "HTTP"
    )]
    pub http_connection_max_age_secs: u64,
    /// PEM certificate chain of the listener: it serves HTTPS only (rustls, TLS 1.2 and 1.3); with `TLS_KEY_FILE`, both or neither. Unset: plain HTTP.
    #[arg(long, env = "TLS_CERT_FILE", value_name = "PATH", help_heading = "HTTP")]
    pub tls_cert_file: Option<String>,
    /// PEM private key of the listener's certificate.
    #[arg(long, env = "TLS_KEY_FILE", value_name = "PATH", help_heading = "HTTP")]
    pub tls_key_file: Option<String>,
    /// PEM CA certificates the outbound HTTPS calls trust besides the system's (webhook, `ORDER_URL`, `WAREHOUSE_URL`; the CLI reads it too); a file that cannot be read or holds no certificate stops the service at start. Unset: the system's CAs.
    #[arg(long, env = "TLS_CA_FILE", value_name = "PATH", help_heading = "HTTP")]
    pub tls_ca_file: Option<String>,

    /// The JWKS bearer tokens are verified against, usually from a file (`AUTH_JWKS_FILE`); `make run` uses `.omnisaga/auth/jwks.json`. Unset: the service does not start.
    #[arg(long, env = "AUTH_JWKS", value_name = "JWKS", help_heading = "Auth")]
    pub auth_jwks: Option<String>,
    /// The `iss` a token must carry.
    #[arg(long, env = "AUTH_ISSUER", value_name = "ISSUER", default_value = omnisaga_auth::LOCAL_ISSUER, help_heading = "Auth")]
    pub auth_issuer: String,
    /// The `aud` a token must carry.
    #[arg(long, env = "AUTH_AUDIENCE", value_name = "AUDIENCE", default_value = omnisaga_auth::LOCAL_AUDIENCE, help_heading = "Auth")]
    pub auth_audience: String,

    /// A client span for each statement the runtime makes (the event store's, the inbox's, the outbox's, commits): `on` or `off`. Off, the spans are not made, at next to no cost, and each step's span (`process <topic>`, a worker's, an HTTP request's) still carries how many statements it made, `omnisaga.db.statement_count` (docs/observability.md).
    #[arg(
        long,
        env = "TRACE_DB_SPANS",
        value_name = "on|off",
        default_value = "on",
        value_parser = clap::builder::BoolishValueParser::new(),
        action = clap::ArgAction::Set,
        help_heading = "Tracing"
    )]
    pub trace_db_spans: bool,
    /// A `process <topic>` span for each record a consumer passes over unread (of a type its handler never acts on, as payment and notification pass over the warehouse's `PickTaskCreated`): `on` or `off`. Off, the order's trace no longer shows that consumer's hop for such records (the e2e trace checks need `on`); `omnisaga_consumer_handled_total{outcome="ignored"}` still counts them.
    #[arg(
        long,
        env = "TRACE_IGNORED_RECORDS",
        value_name = "on|off",
        default_value = "on",
        value_parser = clap::builder::BoolishValueParser::new(),
        action = clap::ArgAction::Set,
        help_heading = "Tracing"
    )]
    pub trace_ignored_records: bool,

    /// Longest a graceful stop takes from SIGTERM, whether or not the broker answers; work still in hand then is handed back (docs/architecture.md, Shutdown); at least 1000.
    #[arg(
        long,
        env = "SHUTDOWN_GRACE_MS",
        value_name = "MS",
        default_value_t = 8000,
        help_heading = "Process"
    )]
    pub shutdown_grace_ms: u64,
    /// Tests only: the process's wall clock set this many seconds off (negative: behind), at most a day; leases and deadlines use the database's clock, so it changes only records' times.
    #[arg(
        long,
        env = "CLOCK_SKEW_SECS",
        value_name = "SECONDS",
        default_value_t = 0,
        allow_negative_numbers = true,
        help_heading = "Process"
    )]
    pub clock_skew_secs: i64,
}
