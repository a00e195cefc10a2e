"""Readers' feedback on the information pages: "was this page useful / report a problem".

Below the blueprints so that the public pages store it and the admin page lists it (blueprints
never import each other); it only stores feedback and tells the clinic that some arrived.
"""
