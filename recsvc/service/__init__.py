"""The HTTP service: the app factory, dependencies, one router per area, the use cases
behind them (plain functions), the fast path, the running state and telemetry."""
