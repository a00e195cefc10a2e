"""The staff's own pages (blueprint ``staff``, under ``/staff``): signing in, two-factor,
password reset, and the administrators' list of staff accounts. The accounts themselves, roles,
sessions and passwords are ``booking.staff``, a layer below, which every staff page uses."""
