"""Outcomes after the visit (issue #19): the plan decided at completion, follow-up
questionnaires at the clinic's time points, each patient's change against published thresholds,
and the clinic's results.

``models``, ``schedule``, ``measures``, ``services`` and ``emails`` sit below the blueprints
(the dashboard's record page and the treatments page use them); ``views`` and ``forms`` are the
blueprint (the patient's questionnaire, the staff outcomes page, its settings and export).
"""
