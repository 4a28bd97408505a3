-- Where a former member can still be reached, recorded when they were removed (shown while
-- they are removed, overwritten at the next removal, wiped by erasure).
ALTER TABLE members ADD COLUMN contact_email TEXT;
