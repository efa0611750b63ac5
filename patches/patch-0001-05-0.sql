-- downtime: cold
-- int to bigint rewrites the table under ACCESS EXCLUSIVE.
alter table orders alter column total_cents type bigint;
