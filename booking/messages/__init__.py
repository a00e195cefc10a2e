"""Secure messages between the clinic and the patient, one thread per request.

The text is stored encrypted; emails say only that a message is waiting (with the patient's
private link, or the record's address for the clinic); every message written and every read
of a thread is audited; a patient's attachment becomes a document of the request.
The routes live in the blueprints whose access checks they reuse: the staff record's
(``booking.dashboard.views``) and the private manage page's (``booking.manage.views``).
"""
