"""Chat operations: Slack slash commands and Approve/Deny buttons, over HTTP or Socket Mode, all over the control
service. rights.py says who may run which command, commands.py runs them, text.py writes the answers, and
slack_http.py / socketmode.py carry them."""
