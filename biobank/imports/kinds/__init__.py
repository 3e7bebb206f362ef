"""The import kinds: donors, consents, treatment lines, autopsies, lesions, sampling sites, specimens, storage
containers and placements, derived models and their passages.

Each is one :class:`~biobank.imports.spec.Kind`: its columns (the template), natural key, the services' rules
for one row (:meth:`check`), set-based reference resolution building the table record (:meth:`resolve`), and the
current table in template format (:meth:`export_rows`, for the round trip). Rules are the services' rules, called
through the same helpers (``biobank.services.checks``, ``biobank.domain.codes``, the collection service's time checks).

One module per area, each importing only :mod:`biobank.imports.spec`, :mod:`biobank.imports.columns`,
:mod:`biobank.imports.coerce` and the helpers they share (:mod:`~biobank.imports.kinds._shared`):

- :mod:`~biobank.imports.kinds.donors`: ``donors``, ``consents``, ``treatment_lines``;
- :mod:`~biobank.imports.kinds.collection`: ``autopsies``, ``lesions``, ``sampling_sites``;
- :mod:`~biobank.imports.kinds.specimens`: ``specimens`` and ``passage_descendants`` (what was made from the
  specimens a passage produced: aliquots, DNA, with the specimens columns);
- :mod:`~biobank.imports.kinds.storage`: ``containers`` and ``placements`` (last, so every specimen exists before
  it is placed);
- :mod:`~biobank.imports.kinds.derived`: ``models``, ``passages``, ``model_qc`` and ``passage_specimens`` (the
  specimens a passage produced, ``specimen.passage_id``, imported after the models and passages they come from).

The kinds are listed, and looked up by name, in :mod:`biobank.imports.registry`. Not (yet) kinds: check-outs and
distributions (they are recorded through their services).
"""
