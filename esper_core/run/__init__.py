"""One run: wiring it (``setup.build_run``), the envs and their fault recovery (``env``, ``faults``), the
legality guard (``legality``), the loop (``runner``), what it records (``metrics``, ``telemetry``,
``progress``), reproducibility (``seeding``), and what it leaves on disk (``checkpoint``, ``rundir``)."""
