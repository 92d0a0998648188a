"""Small helpers with no knowledge of the line: files that survive crashes and power cuts, hashing, secrets and their redaction, the bundled files, reading user images safely."""
