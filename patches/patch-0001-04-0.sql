-- downtime: cold
-- A plain index build blocks writes to orders until it ends.
create index orders_placed_at_idx on orders (placed_at);
