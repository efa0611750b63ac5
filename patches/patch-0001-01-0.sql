-- downtime: live
-- A new table and its index: nothing that exists is touched.
create table coupon (
  id bigserial primary key,
  code text not null unique,
  percent_off int not null check (percent_off between 1 and 100)
);
