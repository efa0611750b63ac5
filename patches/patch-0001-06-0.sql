-- downtime: live
-- Step 1 of 2: the foreign key NOT VALID checks no existing rows.
set lock_timeout = '2s';
alter table orders add constraint orders_coupon_fk
  foreign key (coupon_id) references coupon (id) not valid;
