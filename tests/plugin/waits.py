"""How long the plugin tests wait for a worker, a child process or a turn of Qt's event loop.

A hang bound, not a speed bound: the wait ends as soon as its condition holds; on CI's two
loaded cores a worker or a child importing matplotlib may wait seconds for a core, and a bound
of a few seconds failed tests by chance. Speed is the heartbeat bench's and the CPU-time
assertions' business.
"""

HANG_MS = 60_000
