-- Schema version 5: Slack request signatures already seen, so a replayed request is refused by every replica.
-- Kept a little longer than Slack's 5-minute timestamp window, then pruned.

CREATE TABLE slack_requests (
    signature TEXT        PRIMARY KEY,
    at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX slack_requests_at ON slack_requests (at);
