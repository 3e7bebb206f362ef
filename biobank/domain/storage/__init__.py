"""Storage as data and pure functions: container kinds, grid coordinates, format/temperature compatibility.

Nothing here touches the database; the services in :mod:`biobank.services.storage` use it.
"""
