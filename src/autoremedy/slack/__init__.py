"""The Slack Web API as its two users share it: notify's Slack channel (posts escalations with Approve and Deny
buttons) and chatops (answers the buttons by updating that message). Neither imports the other: what both need
of Slack is here, below them."""
