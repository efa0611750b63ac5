-- downtime: live
-- A nullable column is catalogue-only; the lock is brief and bounded.
set lock_timeout = '2s';
alter table orders add column coupon_id bigint;
