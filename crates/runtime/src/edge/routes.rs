//! A service's routes, each declared with the scope it needs: [`Routes::route`]
//! puts the scope check on the route itself (403 without the scope), so no
//! route can be added open to any valid token, and the scope decides the
//! listener the route is served on ([`Listener::of`]): the public one (what
//! the Ingress forwards) or the admin one (`ADMIN_HTTP_ADDR`), which only
//! the cluster reaches. The scope declared here is the one the route's
//! `#[utoipa::path(security(...))]` names; a test per service
//! (`testing::scopes`) calls every operation of the OpenAPI document without
//! its scope and expects 403, so a route whose two declarations differ fails.

use std::convert::Infallible;

use axum::{
    extract::Request,
    middleware,
    response::IntoResponse,
    routing::{MethodRouter, Route},
    Router,
};
use omnisaga_auth::Scope;
use tower::{Layer, Service};

use crate::edge::auth;

/// Which listener serves a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// `HTTP_ADDR`: the customers' and analysts' API.
    Public,
    /// `ADMIN_HTTP_ADDR`: operators' and services' routes, inside the cluster.
    Admin,
}

/// The admin listener's default beside `http`: the same host, the port +
/// 100 (0 stays 0: any free port).
pub fn admin_addr(http: std::net::SocketAddr) -> std::net::SocketAddr {
    let port = match http.port() {
        0 => 0,
        port => port.saturating_add(100),
    };
    std::net::SocketAddr::new(http.ip(), port)
}

impl Listener {
    /// The listener of a route needing `scope`: operators' (`admin`),
    /// services' (`stock:read`, `payment-methods:read`), reconciliation's
    /// (`reconcile:read`) and the stock import's (`stock:import`) routes are
    /// internal.
    pub fn of(scope: Scope) -> Listener {
        match scope {
            Scope::OrdersRead | Scope::OrdersWrite | Scope::AnalyticsRead => Listener::Public,
            Scope::StockRead
            | Scope::PaymentMethodsRead
            | Scope::Admin
            | Scope::ReconcileRead
            | Scope::StockImport => Listener::Admin,
        }
    }
}

/// Routes split by listener, each behind its scope.
pub struct Routes<S = ()> {
    pub(crate) public: Router<S>,
    pub(crate) admin: Router<S>,
}

impl<S: Clone + Send + Sync + 'static> Default for Routes<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    pub fn new() -> Self {
        Self {
            public: Router::new(),
            admin: Router::new(),
        }
    }

    /// `method` at `path`, for holders of `scope` only (others get 403), on
    /// the listener of `scope`. A path may be declared again with other
    /// methods (e.g. `GET` and `POST` needing different scopes).
    pub fn route(mut self, path: &str, scope: Scope, method: MethodRouter<S>) -> Self {
        let method = method.route_layer(middleware::from_fn_with_state(scope, auth::require_scope));
        match Listener::of(scope) {
            Listener::Public => self.public = self.public.route(path, method),
            Listener::Admin => self.admin = self.admin.route(path, method),
        }
        self
    }

    /// `method` at `path` on the public listener for anyone, token or not
    /// (the path also given to `Base::open_path`): only for pages that show
    /// nothing about any one customer or order.
    pub fn open(mut self, path: &str, method: MethodRouter<S>) -> Self {
        self.public = self.public.route(path, method);
        self
    }

    /// A router whose routes already check their scope (the runtime's admin
    /// routes, behind one `require_scope` layer), served on `listener`.
    pub fn checked(mut self, listener: Listener, router: Router<S>) -> Self {
        match listener {
            Listener::Public => self.public = self.public.merge(router),
            Listener::Admin => self.admin = self.admin.merge(router),
        }
        self
    }

    pub fn merge(self, other: Routes<S>) -> Self {
        Self {
            public: self.public.merge(other.public),
            admin: self.admin.merge(other.admin),
        }
    }

    /// Both routers with `state`.
    pub fn with_state<S2>(self, state: S) -> Routes<S2> {
        Routes {
            public: self.public.with_state(state.clone()),
            admin: self.admin.with_state(state),
        }
    }

    /// `layer` around every route of both listeners.
    pub fn layer<L>(self, layer: L) -> Self
    where
        L: Layer<Route> + Clone + Send + Sync + 'static,
        L::Service: Service<Request> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Response: IntoResponse + 'static,
        <L::Service as Service<Request>>::Error: Into<Infallible> + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static,
    {
        Self {
            public: self.public.layer(layer.clone()),
            admin: self.admin.layer(layer),
        }
    }
}
