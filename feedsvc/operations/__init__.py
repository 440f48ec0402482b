"""Running the service: the command, live reload, WebSub, logs and metrics."""
