"""Queue and actor names: the contract between producers and workers.

Producers send Dramatiq messages by these names without importing the workers.
"""

BROKER_NAMESPACE = "genq"
JOBS_QUEUE = "genq.jobs"
RUN_JOB = "run_job"
POLL_JOB = "poll_job"
