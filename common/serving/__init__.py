"""``serve``: gunicorn + Flask answering /ping, /invocations and /execution-parameters."""
