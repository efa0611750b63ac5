-- downtime: live
-- Step 2 of 2: validating on its own takes SHARE UPDATE EXCLUSIVE only.
alter table orders validate constraint orders_coupon_fk;
