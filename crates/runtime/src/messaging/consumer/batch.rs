//! Applying a fetched batch in one transaction, one commit for all its
//! records, or nothing at all so that they are handled one by one. A
//! handler that [`Handler::batches`] gets the batch's new records at once.

use opentelemetry::trace::TraceContextExt as _;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::{decode, observe::count, Consumer, Handler, HandlerError, Incoming, Raw};
use crate::es::event::event_id;

impl<H: Handler> Consumer<H> {
    /// Applies all `raws` in one transaction; false (and nothing written)
    /// unless every one decodes, is not parked and applies at the first try.
    pub(super) async fn try_batch(&self, raws: &[Raw]) -> bool {
        let mut decoded = Vec::with_capacity(raws.len());
        for raw in raws {
            match decode(&raw.payload) {
                Ok(env) => match event_id(&env) {
                    Some(id) => decoded.push((id, raw.incoming(env))),
                    None => return false,
                },
                Err(_) => return false,
            }
        }
        let started = std::time::Instant::now();
        let name = self.applier.name.as_str();
        let mut links = Vec::with_capacity(raws.len());
        let mut outcomes = Vec::with_capacity(raws.len());
        let applied = crate::work::noting(crate::es::store::preloading(async {
            let mut tx = self.applier.pool.begin().await?;
            // One statement for the whole batch: is any key parked, and
            // which event ids are new to the inbox.
            let keys: Vec<&str> = raws.iter().map(|r| r.key.as_str()).collect();
            let batch: Vec<(uuid::Uuid, &Incoming)> = decoded.iter().map(|(id, i)| (*id, i)).collect();
            let (parked, mut fresh) = self.applier.record(&mut tx, &keys, &batch).await?;
            if parked {
                return Err(HandlerError::Transient(anyhow::anyhow!(
                    "a key of the batch is parked"
                )));
            }
            let at_once = self.applier.handler.batches();
            let mut new = Vec::with_capacity(raws.len());
            for (raw, (id, incoming)) in raws.iter().zip(&decoded) {
                let span = self.record_span(raw, Some(&incoming.envelope));
                links.push(span.context().span().span_context().clone());
                // An id twice in one batch: only its first record is new.
                if fresh.remove(id) {
                    if at_once {
                        new.push(incoming);
                    } else {
                        let handled = self.applier.handle(&mut tx, incoming);
                        crate::base::db::counted(&span, handled)
                            .instrument(span.clone())
                            .await?;
                    }
                    outcomes.push("ok");
                } else {
                    outcomes.push("duplicate");
                }
            }
            if !new.is_empty() {
                let handle = tracing::info_span!(
                    "handle batch",
                    messaging.batch.message_count = new.len(),
                    omnisaga.db.statement_count = tracing::field::Empty,
                );
                for link in &links {
                    handle.add_link(link.clone());
                }
                let handled = self.applier.handle_batch(&mut tx, &new);
                crate::base::db::counted(&handle, handled)
                    .instrument(handle.clone())
                    .await?;
            }
            // One commit for the batch; its span links every record's span
            // and counts the batch's statements, the commit's included.
            let commit = tracing::info_span!(
                "commit batch",
                messaging.batch.message_count = raws.len(),
                omnisaga.db.statement_count = tracing::field::Empty,
            );
            for link in links.drain(..) {
                commit.add_link(link);
            }
            crate::base::db::count_statement();
            commit.record(
                crate::base::db::STATEMENT_COUNT,
                crate::base::db::statements_so_far(),
            );
            tx.commit().instrument(commit).await?;
            Ok::<_, HandlerError>(())
        }));
        let (applied, written) = crate::base::db::counted(&tracing::Span::none(), applied).await;
        if let Err(e) = applied {
            tracing::debug!(error = %e, records = raws.len(), "batch rolled back, handling its records one by one");
            return false;
        }
        self.applier.waker.wake_for(written);
        let per_record = started.elapsed().as_secs_f64() / raws.len() as f64;
        let m = crate::base::metrics::get();
        for (raw, outcome) in raws.iter().zip(outcomes) {
            count(name, &raw.topic, outcome);
            m.consumer_duration
                .with_label_values(&[name, raw.topic.as_str(), &raw.partition.to_string()])
                .observe(per_record);
        }
        true
    }
}
