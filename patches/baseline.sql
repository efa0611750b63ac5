-- Example staging data for the bundled patches: a small shop with enough
-- rows that a rewrite or an index build takes a visible fraction of a second.
-- `downtime check` loads it once into a template database and patches copies.
create table customer (
  id bigserial primary key,
  email text not null,
  name text,
  created_at timestamptz not null default now()
);
create table orders (
  id bigserial primary key,
  customer_id bigint not null references customer (id),
  total_cents int not null,
  status smallint not null default 0,
  placed_at timestamptz not null default now()
);
insert into customer (email, name)
  select 'c' || g || '@example.com', 'Customer ' || g from generate_series(1, 100000) g;
insert into orders (customer_id, total_cents, status, placed_at)
  select 1 + g % 100000, (g * 37) % 50000, g % 4, timestamptz '2026-01-01' - (g % 5000) * interval '1 hour'
  from generate_series(1, 600000) g;
analyze;
