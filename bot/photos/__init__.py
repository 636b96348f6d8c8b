"""Photos as evidence: fetched, checked and stored (files), fingerprinted (hashing), their EXIF
read (exif), placed against a grid's geofence (geo), and compared with the check-in photos
already stored (duplicates). Callers import from the module that holds a name."""
