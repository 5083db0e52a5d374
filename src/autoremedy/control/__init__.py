"""Who may steer automation, and the one implementation of steering it: credentials with scopes and the control
service (approve, deny, pause, resume, close the breaker, status) that every transport calls. No transport here."""
