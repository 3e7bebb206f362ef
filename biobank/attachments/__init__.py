"""The attachment store (issue 22): files named by their SHA-256 (:mod:`biobank.attachments.store`) and the checks
that decide what may enter it (:mod:`biobank.attachments.media`: media type by content, images decoded and re-encoded
without EXIF, thumbnails). The metadata and the rules of who sees what are in :mod:`biobank.services.attachments`."""
