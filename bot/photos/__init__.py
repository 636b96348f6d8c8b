"""Photos as evidence: fetched, checked and stored (files, in the place media_store names),
fingerprinted (hashing), their EXIF read (exif), placed against a grid's geofence (geo), and
compared with the check-in photos already stored (duplicates; checks for the handler, on either
store; pg_fingerprints for several processes on PostgreSQL). Callers import from the module
that holds a name."""
