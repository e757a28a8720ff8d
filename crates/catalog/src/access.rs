//! Who may do what on the broker, derived from the catalog: one SASL user
//! per service and one for analysts, named `<prefix><who>` (the prefix of the
//! stack's topics, so stacks sharing a broker never share a user), and the
//! ACLs that let each do its work and nothing more:
//!
//! - a service writes the topic it owns and the dead-letter topics of the
//!   topics it consumes (where it parks what it cannot apply), reads the
//!   topics it consumes, and joins only consumer groups named after it
//!   (`<prefix><service>` and any `KAFKA_GROUP_SUFFIX` after it);
//! - the analyst reads the saga topics, which carry no personal data, in
//!   consumer groups named `<prefix>analyst…`; not the dead-letter topics
//!   (operations' business), and writes nothing.
//!
//! Nobody but the broker's admin creates topics or changes ACLs:
//! `omnisaga kafka provision` does both, as the admin, before the services
//! start.

use std::collections::BTreeSet;

use crate::Catalog;

/// The analysts' user, after the prefix.
pub const ANALYST: &str = "analyst";

/// What a grant allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    /// Consume a topic, or join a consumer group.
    Read,
    /// Produce to a topic.
    Write,
}

/// What a grant is on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resource {
    /// The topic of exactly this name.
    Topic(String),
    /// Every consumer group whose id starts with this.
    GroupsStartingWith(String),
}

/// One ACL: `user` may do `operation` on `resource`, from any host.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    pub user: String,
    pub resource: Resource,
    pub operation: Operation,
}

/// The user name of `who` (a service, or [`ANALYST`]) in a stack under `prefix`.
pub fn user(prefix: &str, who: &str) -> String {
    format!("{prefix}{who}")
}

impl Catalog {
    /// Every service the catalog names as owner or consumer, in order.
    pub fn services(&self) -> Vec<&str> {
        let mut services = BTreeSet::new();
        for t in self.topics() {
            services.insert(t.owner.as_str());
            services.extend(t.consumers.iter().map(String::as_str));
        }
        services.into_iter().collect()
    }

    /// Everyone who gets a user: the services and the analyst.
    pub fn principals(&self) -> Vec<&str> {
        let mut all = self.services();
        all.push(ANALYST);
        all
    }

    /// The ACLs of a stack under `prefix`, sorted, each once.
    pub fn grants(&self, prefix: &str) -> Vec<Grant> {
        let mut grants = BTreeSet::new();
        let mut grant = |who: &str, resource: Resource, operation| {
            grants.insert(Grant {
                user: user(prefix, who),
                resource,
                operation,
            });
        };
        for service in self.services() {
            if let Some(own) = self.owned_by(service) {
                grant(service, Resource::Topic(own.name(prefix)), Operation::Write);
            }
            for consumed in self.consumed_by(service) {
                grant(service, Resource::Topic(consumed.name(prefix)), Operation::Read);
                grant(
                    service,
                    Resource::Topic(consumed.dead_letter_name(prefix)),
                    Operation::Write,
                );
            }
            grant(
                service,
                Resource::GroupsStartingWith(user(prefix, service)),
                Operation::Read,
            );
        }
        for t in self.topics() {
            grant(ANALYST, Resource::Topic(t.name(prefix)), Operation::Read);
        }
        grant(
            ANALYST,
            Resource::GroupsStartingWith(user(prefix, ANALYST)),
            Operation::Read,
        );
        grants.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog;

    fn allowed(grants: &[Grant], user: &str, resource: Resource, operation: Operation) -> bool {
        grants
            .iter()
            .any(|g| g.user == user && g.resource == resource && g.operation == operation)
    }

    #[test]
    fn every_service_writes_its_own_topic_and_no_other() {
        let c = catalog();
        let grants = c.grants("p.");
        for service in c.services() {
            for t in c.topics() {
                let writes = allowed(
                    &grants,
                    &user("p.", service),
                    Resource::Topic(t.name("p.")),
                    Operation::Write,
                );
                assert_eq!(writes, t.owner == service, "{service} writing {}", t.base_name());
            }
        }
    }

    #[test]
    fn a_service_reads_what_it_consumes_and_parks_in_its_dead_letter_topic() {
        let c = catalog();
        let grants = c.grants("p.");
        let payment = user("p.", "payment");
        for t in c.topics() {
            let consumes = t.is_consumed_by("payment");
            assert_eq!(
                allowed(&grants, &payment, Resource::Topic(t.name("p.")), Operation::Read),
                consumes
            );
            assert_eq!(
                allowed(
                    &grants,
                    &payment,
                    Resource::Topic(t.dead_letter_name("p.")),
                    Operation::Write
                ),
                consumes
            );
            assert!(!allowed(
                &grants,
                &payment,
                Resource::Topic(t.dead_letter_name("p.")),
                Operation::Read
            ));
        }
        assert!(allowed(
            &grants,
            &payment,
            Resource::GroupsStartingWith("p.payment".into()),
            Operation::Read
        ));
    }

    #[test]
    fn the_analyst_reads_the_saga_topics_only() {
        let c = catalog();
        let grants = c.grants("omnisaga.");
        let analyst: Vec<_> = grants.iter().filter(|g| g.user == "omnisaga.analyst").collect();
        assert!(
            analyst.iter().all(|g| g.operation == Operation::Read),
            "{analyst:?}"
        );
        let topics: Vec<_> = analyst
            .iter()
            .filter_map(|g| match &g.resource {
                Resource::Topic(t) => Some(t.as_str()),
                Resource::GroupsStartingWith(_) => None,
            })
            .collect();
        let mut saga: Vec<_> = c.topics().iter().map(|t| t.name("omnisaga.")).collect();
        saga.sort();
        assert_eq!(topics, saga.iter().map(String::as_str).collect::<Vec<_>>());
    }

    #[test]
    fn every_service_and_the_analyst_has_a_user() {
        assert_eq!(
            catalog().principals(),
            [
                "analytics",
                "notification",
                "order",
                "payment",
                "warehouse",
                "analyst"
            ]
        );
    }
}
