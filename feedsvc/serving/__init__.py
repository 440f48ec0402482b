"""Running the service: the production gunicorn settings (gunicorn_conf.py) and `feedsvc serve`."""
