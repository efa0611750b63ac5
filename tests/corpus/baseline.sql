-- The public acceptance corpus baseline (a small bug tracker), scaled to a
-- tenth of its rows so the test suite stays fast: the classification is by
-- mechanism, so the verdicts do not depend on the size.
create table person (
  id serial primary key,
  name varchar(64) not null,
  display_name text,
  karma integer not null default 0,
  date_created timestamp without time zone not null default now()
);
create table bug (
  id serial primary key,
  owner integer not null references person(id),
  title varchar(200) not null,
  description text,
  heat integer not null default 0,
  date_last_updated timestamp without time zone not null default now()
);
create table bugtask (
  id serial primary key,
  bug integer not null references bug(id),
  assignee integer,
  status integer not null,
  importance integer not null default 999
);
create table message (
  id serial primary key,
  bug integer not null,
  owner integer not null,
  subject text,
  body text not null
);
insert into person (name, display_name, karma)
  select 'p' || g, 'Person ' || g, g % 500 from generate_series(1, 10000) g;
insert into bug (owner, title, description, heat)
  select 1 + g % 10000, 'Bug ' || g, repeat('x', 40), g % 1000 from generate_series(1, 30000) g;
insert into bugtask (bug, assignee, status, importance)
  select 1 + g % 30000, case when g % 4 = 0 then null else 1 + g % 10000 end, g % 7, g % 5
  from generate_series(1, 50000) g;
insert into message (bug, owner, subject, body)
  select 1 + g % 30000, 1 + g % 10000, 'Re: bug', md5(g::text) from generate_series(1, 80000) g;
analyze;
