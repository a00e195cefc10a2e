"""gunicorn settings read automatically from the project folder (``gunicorn wsgi:app``).

Anything here can be overridden on the command line or with GUNICORN_CMD_ARGS.
"""

# Access logs never hold private-link tokens, reset tokens or search terms (booking/accesslog.py).
logger_class = "booking.accesslog.RedactingLogger"
accesslog = "-"
access_log_format = '%(h)s %(t)s "%(r)s" %(s)s %(b)s %(M)sms req=%({x-request-id}o)s'
# gunicorn 27's control socket has one fixed path per user: several app servers on one machine
# (the scale-out test, a blue/green deploy) would fight over it. We do not use it.
control_socket_disable = True
