"""The alvh daemon: the replay engine's Kernel and strategies, driven by a schedule, trading through IB.

Modules: `daemon` (wiring, connection callbacks, running), `jobs` (the scheduled jobs), `scheduler` (session
jobs on the exchange calendar), `killswitch` (halt/resume, confirmed), `account` (which account may be
traded), `state` / `schema` / `codec` (the SQLite store: order journal, fills, ledger, strategy states),
`pump` (events into the engine, one transaction each), `status` (`alvh status`), `paper_replay` (rehearse a
historical day against the loopback server). Crash points for the fault tests live in engine.crashpoints.
See docs/daemon.md.
"""
