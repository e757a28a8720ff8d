-- The analysts' model: a star schema over the saga's events, documented
-- column by column in docs/analytics.md.
--
-- Dimensions (dim_*) are small lookup tables; dim_day and dim_sku grow as
-- events bring new days and SKUs. Facts: fact_orders (one row per order,
-- filled in as its stages arrive), stage_events (one row per stage event;
-- the view fact_stages adds the duration since the order's previous stage
-- and the order's dimensions) and fact_order_lines (one row per line of an
-- order). Events of one order come from several topics, so they may arrive
-- in any order: whatever depends on more than one event is computed when it
-- is read (a view or a generated column), never when an event arrives.

CREATE TABLE dim_channel (
    channel     TEXT PRIMARY KEY,
    description TEXT NOT NULL
);
INSERT INTO dim_channel VALUES
    ('mobile', 'The mobile app'),
    ('web', 'The web shop'),
    ('pos', 'A point of sale in a store'),
    ('marketplace', 'A marketplace partner'),
    ('unspecified', 'Placed without a channel'),
    ('unknown', 'Not known yet: analytics has not received the order''s OrderPlaced');

CREATE TABLE dim_stage (
    stage       TEXT PRIMARY KEY,
    -- 1 to 4 along the happy path; NULL for the stages off it.
    funnel_step SMALLINT UNIQUE,
    event_type  TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL
);
INSERT INTO dim_stage VALUES
    ('placed', 1, 'OrderPlaced', 'The order was accepted'),
    ('paid', 2, 'PaymentAuthorized', 'The payment provider authorised the payment'),
    ('ready_for_shipment', 3, 'OrderReadyForShipment', 'Picked and packed'),
    ('shipped', 4, 'OrderShipped', 'Handed to the carrier'),
    ('payment_declined', NULL, 'PaymentFailed', 'A payment attempt failed (the customer may retry)'),
    ('payment_voided', NULL, 'PaymentVoided', 'An authorisation was voided because the order was cancelled'),
    ('cancelled', NULL, 'OrderCancelled', 'The order was cancelled');

CREATE TABLE dim_payment_outcome (
    payment_outcome   TEXT PRIMARY KEY,
    counts_as_success BOOLEAN,
    description       TEXT NOT NULL
);
INSERT INTO dim_payment_outcome VALUES
    ('authorized', TRUE, 'At least one attempt was authorised, whatever failed before it'),
    ('declined', FALSE, 'Every attempt so far failed'),
    ('none', NULL, 'No payment answer yet; not counted in the success share');

CREATE TABLE dim_day (
    day         DATE PRIMARY KEY,
    year        SMALLINT NOT NULL,
    quarter     SMALLINT NOT NULL,
    month       SMALLINT NOT NULL,
    iso_year    SMALLINT NOT NULL,
    iso_week    SMALLINT NOT NULL,
    -- 1 (Monday) to 7 (Sunday).
    iso_weekday SMALLINT NOT NULL,
    is_weekend  BOOLEAN NOT NULL
);

CREATE TABLE dim_sku (
    sku  TEXT PRIMARY KEY,
    -- The name the latest order gave it.
    name TEXT NOT NULL
);

-- The accumulating snapshot: one row per order, each stage's first time.
ALTER TABLE order_stages RENAME TO fact_orders;
ALTER TABLE fact_orders
    ADD COLUMN channel TEXT REFERENCES dim_channel,
    ADD COLUMN placed_day DATE REFERENCES dim_day,
    ADD COLUMN items INT,
    ADD COLUMN total_minor_units BIGINT,
    ADD COLUMN currency TEXT,
    ADD COLUMN payment_voids INT NOT NULL DEFAULT 0,
    ADD COLUMN payment_outcome TEXT NOT NULL REFERENCES dim_payment_outcome GENERATED ALWAYS AS (
        CASE WHEN paid_at IS NOT NULL THEN 'authorized'
             WHEN payment_failures > 0 THEN 'declined'
             ELSE 'none' END) STORED;
CREATE INDEX fact_orders_placed_at ON fact_orders (placed_at);
-- The orders still under way, for the dashboard's stuck orders.
CREATE INDEX fact_orders_open ON fact_orders (placed_at) WHERE shipped_at IS NULL AND cancelled_at IS NULL;

-- One row per stage event received.
CREATE TABLE stage_events (
    event_id    UUID PRIMARY KEY,
    order_id    UUID        NOT NULL,
    stage       TEXT        NOT NULL REFERENCES dim_stage,
    occurred_at TIMESTAMPTZ NOT NULL,
    day         DATE        NOT NULL REFERENCES dim_day
);
CREATE INDEX stage_events_order ON stage_events (order_id, occurred_at);

CREATE TABLE fact_order_lines (
    order_id          UUID   NOT NULL,
    line              INT    NOT NULL,
    sku               TEXT   NOT NULL REFERENCES dim_sku,
    quantity          INT    NOT NULL,
    unit_price_minor_units BIGINT NOT NULL,
    currency          TEXT   NOT NULL,
    PRIMARY KEY (order_id, line)
);
CREATE INDEX fact_order_lines_sku ON fact_order_lines (sku);

-- Stage events with the order's dimensions and the seconds since the
-- order's previous stage event (NULL for its first; never negative, though
-- the clocks of different services may disagree).
CREATE VIEW fact_stages AS
SELECT event_id, order_id, stage, occurred_at, day, channel, payment_outcome,
       -- greatest() would turn the first stage's NULL into 0.
       CASE WHEN previous_at IS NOT NULL
            THEN greatest(0, extract(epoch FROM occurred_at - previous_at))::float8 END AS seconds_since_previous
FROM (SELECT s.event_id, s.order_id, s.stage, s.occurred_at, s.day,
             coalesce(o.channel, 'unknown') AS channel,
             coalesce(o.payment_outcome, 'none') AS payment_outcome,
             lag(s.occurred_at) OVER (PARTITION BY s.order_id
                                      ORDER BY s.occurred_at, d.funnel_step NULLS LAST, s.event_id) AS previous_at
      FROM stage_events s
      JOIN dim_stage d USING (stage)
      LEFT JOIN fact_orders o USING (order_id)) staged;

-- The events received before this migration: their stages (channel, lines
-- and totals came only in payloads, which were not kept).
INSERT INTO dim_day (day, year, quarter, month, iso_year, iso_week, iso_weekday, is_weekend)
SELECT DISTINCT d, extract(year FROM d), extract(quarter FROM d), extract(month FROM d),
       extract(isoyear FROM d), extract(week FROM d), extract(isodow FROM d), extract(isodow FROM d) >= 6
FROM (SELECT (occurred_at AT TIME ZONE 'UTC')::date AS d FROM received_events) days;
INSERT INTO stage_events (event_id, order_id, stage, occurred_at, day)
SELECT r.event_id, r.order_id, d.stage, r.occurred_at, (r.occurred_at AT TIME ZONE 'UTC')::date
FROM received_events r JOIN dim_stage d USING (event_type);
UPDATE fact_orders o SET payment_voids = v.n
FROM (SELECT order_id, count(*) AS n FROM received_events
      WHERE event_type = 'PaymentVoided' GROUP BY order_id) v
WHERE o.order_id = v.order_id;
