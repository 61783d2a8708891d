"""Time: the clock, the dispatcher and the APScheduler runner."""
