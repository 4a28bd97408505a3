-- Invitation emails no longer keep their accept link at rest. The body holds a placeholder where
-- the link's token goes; the token itself sits in `link_token` only until the email is sent,
-- given up, cancelled or its link expires (`expires_at`), and is wiped then.

ALTER TABLE outbox ADD COLUMN link_token TEXT;
ALTER TABLE outbox ADD COLUMN expires_at TIMESTAMPTZ;

-- Emails that are done with carried their link in the body: it is not kept.
UPDATE outbox SET body = '(the invitation link is not kept after delivery)'
WHERE kind IN ('invite', 'resend', 'reminder')
  AND (sent_at IS NOT NULL OR failed_at IS NOT NULL OR cancelled_at IS NOT NULL);
