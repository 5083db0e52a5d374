pytest_plugins = [
    "tests.support.fixtures",
    "tests.support.slack",
    "tests.support.pagerduty",
    "tests.support.opsgenie",
    "tests.support.postgres",
    "tests.support.crowdsec",
]
