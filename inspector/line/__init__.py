"""The line itself: the pipeline that wires the stages, the judge, and the line's socket with the dashboard's link to it."""
