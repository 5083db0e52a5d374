"""Escalation channels (Slack, PagerDuty, Opsgenie) and the outbox sender that drives them."""
