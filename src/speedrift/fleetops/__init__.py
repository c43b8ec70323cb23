"""Fleet operations: standing agents in layers, their durable state and schedules, the nightwatch
drift monitor and compound review — all dispatching through the supervisor as ordinary tasks."""
