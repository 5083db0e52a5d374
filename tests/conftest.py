pytest_plugins = [
    "tests.support.fixtures",
    "tests.support.saas",
    "tests.support.postgres",
    "tests.support.crowdsec",
]
