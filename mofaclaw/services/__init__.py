"""Work the agent does on its own time: scheduled jobs (cron) and the periodic heartbeat."""
