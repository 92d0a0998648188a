"""Running the line and the dashboard on a box: systemd notify and journald, the start-up heap, install, doctor, the web server thread."""
