-- downtime: live
-- CONCURRENTLY: runs outside the transaction, takes SHARE UPDATE EXCLUSIVE.
create index concurrently orders_customer_idx on orders (customer_id);
