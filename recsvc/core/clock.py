"""Time as the project counts it: epoch seconds, days of 86,400 of them."""

SECONDS_PER_DAY = 86_400.0
