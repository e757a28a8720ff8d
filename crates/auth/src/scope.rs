//! The scopes a token may grant (the space-separated `scope` claim).

use std::{fmt, str::FromStr};

/// What a token lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Read one's own orders and the catalog.
    OrdersRead,
    /// Place, cancel and retry the payment of one's own orders.
    OrdersWrite,
    /// Analysts: read the analytics API.
    AnalyticsRead,
    /// Services: read stock levels (the order service's catalog does).
    StockRead,
    /// Services: read an order's payment method (the payment service does;
    /// the topics do not carry it).
    PaymentMethodsRead,
    /// Operators: the admin endpoints (dead letters, audit, imports...), and
    /// every order where the route's own scope is held too; no other scope.
    Admin,
    /// Reconciliation: read each service's counterexamples of the saga's
    /// invariants, and nothing else (the reconcile CronJob's token, kept in
    /// the cluster as the services' own are; operators add it to theirs).
    ReconcileRead,
    /// Stock imports: add goods received (`POST /v1/stock/batch` on the
    /// warehouse), and nothing else (the stock import CronJob's token, kept
    /// in the cluster as reconciliation's is; operators add it to theirs).
    StockImport,
}

impl Scope {
    pub const ALL: [Scope; 8] = [
        Scope::OrdersRead,
        Scope::OrdersWrite,
        Scope::AnalyticsRead,
        Scope::StockRead,
        Scope::PaymentMethodsRead,
        Scope::Admin,
        Scope::ReconcileRead,
        Scope::StockImport,
    ];

    /// The scopes only the services' own identities hold: a caller holding
    /// one is a service (it continues its trace, and has no rate limit).
    pub const SERVICE: [Scope; 2] = [Scope::StockRead, Scope::PaymentMethodsRead];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::OrdersRead => "orders:read",
            Scope::OrdersWrite => "orders:write",
            Scope::AnalyticsRead => "analytics:read",
            Scope::StockRead => "stock:read",
            Scope::PaymentMethodsRead => "payment-methods:read",
            Scope::Admin => "admin",
            Scope::ReconcileRead => "reconcile:read",
            Scope::StockImport => "stock:import",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown scope {s:?} (known: {})", known.join(", "))
            })
    }
}
